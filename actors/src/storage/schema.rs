//! Diesel table definitions; the same logical schema on PostgreSQL and SQLite (see
//! `migrations/`). Written by hand once from the migrations and kept in step with them.

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
        time -> Nullable<Timestamptz>,
        datacontenttype -> Nullable<Text>,
        data -> Nullable<Text>,
        headers -> Text,
        kafka_timestamp -> Nullable<Timestamptz>,
        ingested_at -> Timestamptz,
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
        kafka_timestamp -> Nullable<Timestamptz>,
        failed_at -> Timestamptz,
        redriven_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    consumer_offsets (group_id, topic, partition) {
        group_id -> Text,
        topic -> Text,
        partition -> Integer,
        next_offset -> BigInt,
        updated_at -> Timestamptz,
    }
}
