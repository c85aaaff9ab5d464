-- Back to the WITHOUT ROWID tables of the first migration.
ALTER TABLE events RENAME TO events_rowid;
CREATE TABLE events (
    topic           TEXT    NOT NULL,
    partition       INTEGER NOT NULL,
    "offset"        INTEGER NOT NULL,
    key             BLOB,
    event_id        TEXT,
    source          TEXT,
    type            TEXT,
    subject         TEXT,
    time            TEXT,
    datacontenttype TEXT,
    data            TEXT,
    headers         TEXT    NOT NULL DEFAULT '{}',
    kafka_timestamp TEXT,
    ingested_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (topic, partition, "offset")
) WITHOUT ROWID;
INSERT INTO events SELECT * FROM events_rowid ORDER BY topic, partition, "offset";
DROP TABLE events_rowid;

ALTER TABLE dead_letters RENAME TO dead_letters_rowid;
DROP INDEX dead_letters_reason;
CREATE TABLE dead_letters (
    topic           TEXT    NOT NULL,
    partition       INTEGER NOT NULL,
    "offset"        INTEGER NOT NULL,
    key             BLOB,
    payload         BLOB,
    headers         TEXT    NOT NULL DEFAULT '{}',
    reason          TEXT    NOT NULL,
    detail          TEXT    NOT NULL,
    sqlstate        TEXT,
    kafka_timestamp TEXT,
    failed_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    redriven_at     TEXT,
    PRIMARY KEY (topic, partition, "offset")
) WITHOUT ROWID;
INSERT INTO dead_letters SELECT * FROM dead_letters_rowid ORDER BY topic, partition, "offset";
DROP TABLE dead_letters_rowid;
CREATE INDEX dead_letters_reason ON dead_letters (reason) WHERE redriven_at IS NULL;
