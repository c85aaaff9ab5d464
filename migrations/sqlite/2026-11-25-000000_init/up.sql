-- The same logical schema as PostgreSQL's (see migrations/postgres): JSON is stored as TEXT,
-- timestamps as RFC 3339 TEXT in UTC, bytes as BLOB.
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
CREATE INDEX dead_letters_reason ON dead_letters (reason) WHERE redriven_at IS NULL;

CREATE TABLE consumer_offsets (
    group_id    TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
