//! `consumer_offsets` — the fence, the current value, the load — written once for both backends.
//!
//! Diesel's query types are per backend and per table definition, so the statements are a macro
//! that each backend module expands with its connection and its clock; the SQL is the same.

/// Define `advance_offset`, `current_offset` and `load_offsets` for `$conn`, with `$now` as the
/// value of `updated_at`; `consumer_offsets` must be that backend's table in scope.
macro_rules! offset_statements {
    ($conn:ty, $now:expr) => {
        /// Move the partition's progress from `fence` to `next`; false if the fence does not
        /// hold (another member advanced it, or it exists when none was expected).
        pub(super) fn advance_offset(
            conn: &mut $conn,
            group: &str,
            key: &PartitionKey,
            fence: Fence,
            next: i64,
        ) -> Result<bool, StoreError> {
            use consumer_offsets::dsl as co;
            let changed = match fence {
                Fence::NextOffset(expected) => diesel::update(
                    co::consumer_offsets
                        .filter(co::group_id.eq(group))
                        .filter(co::topic.eq(&key.topic))
                        .filter(co::partition.eq(key.partition))
                        .filter(co::next_offset.eq(expected)),
                )
                .set((co::next_offset.eq(next), co::updated_at.eq($now)))
                .execute(conn)?,
                Fence::NoProgress => diesel::insert_into(co::consumer_offsets)
                    .values((
                        co::group_id.eq(group),
                        co::topic.eq(&key.topic),
                        co::partition.eq(key.partition),
                        co::next_offset.eq(next),
                        co::updated_at.eq($now),
                    ))
                    .on_conflict_do_nothing()
                    .execute(conn)?,
            };
            Ok(changed == 1)
        }

        pub(super) fn current_offset(conn: &mut $conn, group: &str, key: &PartitionKey) -> Result<Option<i64>, StoreError> {
            use consumer_offsets::dsl as co;
            Ok(co::consumer_offsets
                .filter(co::group_id.eq(group))
                .filter(co::topic.eq(&key.topic))
                .filter(co::partition.eq(key.partition))
                .select(co::next_offset)
                .first(conn)
                .optional()?)
        }

        /// The stored progress of `group` for these partitions (absent: never committed).
        pub(super) fn load_offsets(
            conn: &mut $conn,
            group: &str,
            parts: &[PartitionKey],
        ) -> Result<std::collections::HashMap<PartitionKey, i64>, StoreError> {
            use consumer_offsets::dsl as co;
            let topics: Vec<&str> = parts.iter().map(|p| p.topic.as_str()).collect();
            let rows: Vec<(String, i32, i64)> = co::consumer_offsets
                .filter(co::group_id.eq(group))
                .filter(co::topic.eq_any(topics))
                .select((co::topic, co::partition, co::next_offset))
                .load(conn)?;
            Ok(rows
                .into_iter()
                .map(|(topic, partition, next)| (PartitionKey { topic, partition }, next))
                .filter(|(k, _)| parts.contains(k))
                .collect())
        }
    };
}

pub(super) use offset_statements;
