DROP TABLE consumer_offsets;
DROP TABLE dead_letters;
DROP TABLE events;
