//! PostgreSQL: the fence, binary `COPY` of rows and dead letters, progress, in one transaction.

use std::collections::HashMap;

use diesel::pg::CopyFormat;
use diesel::prelude::*;

use super::copy::CopyEncoder;
use super::schema::{consumer_offsets, dead_letters, events};
use super::StoreError;
use crate::messages::{CommitOutcome, EventRow, Fence, ParsedBatch, PartitionKey};

pub fn load_offsets(conn: &mut PgConnection, group: &str, parts: &[PartitionKey]) -> Result<HashMap<PartitionKey, i64>, StoreError> {
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

/// Advance the partition's progress from the batch's fence to its `next_offset`.
/// Returns false when the fence does not hold (another member moved it).
fn advance(conn: &mut PgConnection, group: &str, batch: &ParsedBatch) -> Result<bool, StoreError> {
    use consumer_offsets::dsl as co;
    let key = &batch.partition;
    let changed = match batch.fence {
        Fence::NextOffset(expected) => diesel::update(
            co::consumer_offsets
                .filter(co::group_id.eq(group))
                .filter(co::topic.eq(&key.topic))
                .filter(co::partition.eq(key.partition))
                .filter(co::next_offset.eq(expected)),
        )
        .set((co::next_offset.eq(batch.next_offset), co::updated_at.eq(diesel::dsl::now)))
        .execute(conn)?,
        Fence::NoProgress => diesel::insert_into(co::consumer_offsets)
            .values((
                co::group_id.eq(group),
                co::topic.eq(&key.topic),
                co::partition.eq(key.partition),
                co::next_offset.eq(batch.next_offset),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?,
    };
    Ok(changed == 1)
}

fn current_offset(conn: &mut PgConnection, group: &str, key: &PartitionKey) -> Result<Option<i64>, StoreError> {
    use consumer_offsets::dsl as co;
    Ok(co::consumer_offsets
        .filter(co::group_id.eq(group))
        .filter(co::topic.eq(&key.topic))
        .filter(co::partition.eq(key.partition))
        .select(co::next_offset)
        .first(conn)
        .optional()?)
}

/// Encode rows of one partition as binary COPY data for `events` (into `buf`, reused).
pub fn encode_events<'b>(topic: &str, partition: i32, rows: &[EventRow], buf: &'b mut Vec<u8>) -> &'b [u8] {
    let mut enc = CopyEncoder::new(buf);
    for r in rows {
        enc.tuple(13);
        enc.text(Some(topic));
        enc.int4(partition);
        enc.int8(r.offset);
        enc.bytes(r.key.as_deref());
        enc.text(r.event_id.as_deref());
        enc.text(r.source.as_deref());
        enc.text(r.event_type.as_deref());
        enc.text(r.subject.as_deref());
        enc.timestamptz(r.time);
        enc.text(r.datacontenttype.as_deref());
        enc.jsonb(r.data.as_deref());
        enc.jsonb(Some(&r.headers));
        enc.timestamptz(r.kafka_timestamp);
    }
    enc.finish()
}

/// `COPY events FROM STDIN (FORMAT binary)` with already encoded data.
pub fn copy_encoded_events(conn: &mut PgConnection, data: &[u8]) -> Result<usize, StoreError> {
    use events::dsl as e;
    Ok(diesel::copy_from(events::table)
        .from_raw_data(
            (
                e::topic, e::partition, e::offset, e::key, e::event_id, e::source, e::event_type, e::subject, e::time,
                e::datacontenttype, e::data, e::headers, e::kafka_timestamp,
            ),
            |w: &mut dyn std::io::Write| w.write_all(data).map_err(|err| diesel::result::Error::SerializationError(Box::new(err))),
        )
        .with_format(CopyFormat::Binary)
        .execute(conn)?)
}

fn copy_events(conn: &mut PgConnection, batch: &ParsedBatch, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    if batch.rows.is_empty() {
        return Ok(());
    }
    let data = encode_events(&batch.partition.topic, batch.partition.partition, &batch.rows, buf);
    copy_encoded_events(conn, data)?;
    Ok(())
}

fn copy_dead_letters(conn: &mut PgConnection, batch: &ParsedBatch, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    if batch.dead_letters.is_empty() {
        return Ok(());
    }
    let mut enc = CopyEncoder::new(buf);
    for d in &batch.dead_letters {
        enc.tuple(10);
        enc.text(Some(&batch.partition.topic));
        enc.int4(batch.partition.partition);
        enc.int8(d.offset);
        enc.bytes(d.key.as_deref());
        enc.bytes(d.payload.as_deref());
        enc.jsonb(Some(&d.headers));
        enc.text(Some(&d.reason));
        enc.text(Some(&d.detail));
        enc.text(d.sqlstate.as_deref());
        enc.timestamptz(d.kafka_timestamp);
    }
    let data = enc.finish();
    use dead_letters::dsl as d;
    diesel::copy_from(dead_letters::table)
        .from_raw_data(
            (d::topic, d::partition, d::offset, d::key, d::payload, d::headers, d::reason, d::detail, d::sqlstate, d::kafka_timestamp),
            |w: &mut dyn std::io::Write| w.write_all(data).map_err(|err| diesel::result::Error::SerializationError(Box::new(err))),
        )
        .with_format(CopyFormat::Binary)
        .execute(conn)?;
    Ok(())
}

pub fn commit_batch(conn: &mut PgConnection, group: &str, batch: &ParsedBatch, buf: &mut Vec<u8>) -> Result<CommitOutcome, StoreError> {
    conn.transaction::<_, StoreError, _>(|conn| {
        // The fence comes first: its row lock serialises competing members, so the loser waits
        // and then sees the moved offset instead of racing the COPY.
        if !advance(conn, group, batch)? {
            let db_next_offset = current_offset(conn, group, &batch.partition)?;
            return Ok(CommitOutcome::Fenced { db_next_offset });
        }
        copy_events(conn, batch, buf)?;
        copy_dead_letters(conn, batch, buf)?;
        Ok(CommitOutcome::Committed { rows: batch.rows.len(), dead_letters: batch.dead_letters.len() })
    })
}
