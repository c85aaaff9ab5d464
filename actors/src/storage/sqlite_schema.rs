//! Diesel table definitions for SQLite: the same tables as [`super::schema`], with SQLite's
//! storage types (timestamps as RFC 3339 text, JSON as text).

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
        time -> Nullable<Text>,
        datacontenttype -> Nullable<Text>,
        data -> Nullable<Text>,
        headers -> Text,
        kafka_timestamp -> Nullable<Text>,
        ingested_at -> Text,
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
        kafka_timestamp -> Nullable<Text>,
        failed_at -> Text,
        redriven_at -> Nullable<Text>,
    }
}

diesel::table! {
    consumer_offsets (group_id, topic, partition) {
        group_id -> Text,
        topic -> Text,
        partition -> Integer,
        next_offset -> BigInt,
        updated_at -> Text,
    }
}
