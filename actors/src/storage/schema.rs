//! Diesel table definitions: the same logical schema on PostgreSQL and SQLite (see
//! `migrations/`), written once; only the timestamps' SQL type differs (SQLite stores RFC 3339
//! text). Kept in step with the migrations by hand.

/// The three tables, with `$stamp` as the SQL type of their timestamps.
macro_rules! tables {
    ($stamp:ident) => {
        diesel::table! {
            events (topic, partition, offset) {
                topic -> Text,
                partition -> Integer,
                #[sql_name = "offset"]
                offset -> BigInt,
                key -> Nullable<Binary>,
                event_id -> Nullable<Text>,
                source -> Nullable<Text>,
                #[sql_name = "type"]
                event_type -> Nullable<Text>,
                subject -> Nullable<Text>,
                time -> Nullable<$stamp>,
                datacontenttype -> Nullable<Text>,
                data -> Nullable<Text>,
                headers -> Text,
                kafka_timestamp -> Nullable<$stamp>,
                ingested_at -> $stamp,
            }
        }

        diesel::table! {
            dead_letters (topic, partition, offset) {
                topic -> Text,
                partition -> Integer,
                #[sql_name = "offset"]
                offset -> BigInt,
                key -> Nullable<Binary>,
                payload -> Nullable<Binary>,
                headers -> Text,
                reason -> Text,
                detail -> Text,
                sqlstate -> Nullable<Text>,
                kafka_timestamp -> Nullable<$stamp>,
                failed_at -> $stamp,
                redriven_at -> Nullable<$stamp>,
            }
        }

        diesel::table! {
            consumer_offsets (group_id, topic, partition) {
                group_id -> Text,
                topic -> Text,
                partition -> Integer,
                next_offset -> BigInt,
                updated_at -> $stamp,
            }
        }
    };
}

/// PostgreSQL: `timestamptz`.
pub(super) mod pg {
    tables!(Timestamptz);
}

/// SQLite: timestamps as text.
pub(super) mod sqlite {
    tables!(Text);
}
