-- Ingested events: one row per Kafka record that parsed. (topic, partition, offset) is the
-- record's identity, so a duplicate write is impossible.
CREATE TABLE events (
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    "offset"        bigint      NOT NULL,
    key             bytea,
    event_id        text,
    source          text,
    type            text,
    subject         text,
    time            timestamptz,
    datacontenttype text,
    data            jsonb,
    headers         jsonb       NOT NULL DEFAULT '{}',
    kafka_timestamp timestamptz,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);

-- Records that could not become events, kept whole with the reason.
CREATE TABLE dead_letters (
    topic           text        NOT NULL,
    partition       integer     NOT NULL,
    "offset"        bigint      NOT NULL,
    key             bytea,
    payload         bytea,
    headers         jsonb       NOT NULL DEFAULT '{}',
    reason          text        NOT NULL,
    detail          text        NOT NULL,
    sqlstate        text,
    kafka_timestamp timestamptz,
    failed_at       timestamptz NOT NULL DEFAULT now(),
    redriven_at     timestamptz,
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX dead_letters_reason ON dead_letters (reason) WHERE redriven_at IS NULL;

-- Progress: the next offset to ingest per group and partition. Advanced in the same
-- transaction as the rows, behind a fence on the previous value.
CREATE TABLE consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);
