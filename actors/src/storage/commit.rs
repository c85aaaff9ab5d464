//! The group commit: several partitions' batches in ONE transaction, exactly once.
//!
//! Per transaction: each batch's offset fence is checked and advanced first (a batch whose
//! fence fails is left out: another member owns its partition); then the rows of every batch
//! that passed go in together, then the dead letters. One transaction per group instead of one
//! per batch is what lets many partitions ingest at the database's bulk-load rate.
//!
//! Rows the database refuses (SQLSTATE classes 22 and 23, or any other code outside the outage
//! classes) are isolated by bisection: the insert runs inside a savepoint; if it is refused, each
//! half is retried in its own savepoint, down to single rows. A refused row becomes a dead letter
//! (reason `database_rejected`, with its SQLSTATE, payload and headers kept whole) and everything
//! else commits. A poison row costs about 2·log2(n) extra statements and never blocks its
//! partition. A refusal no row causes (outside 22/23: the write is refused without rows, or every
//! row alike) is the table's: `StoreError::Unwritable`, retried as an outage.

use std::collections::HashSet;
use std::ops::Range;

use crate::batches::{CommitOutcome, Kept, ParsedBatch};
use crate::parse::dead_letter;
use crate::records::{DeadLetter, PartitionKey, RawMessage};
use crate::records::{Reason, Refusal};

use super::error::blames_data;
use super::project::lookup::Lookup;
use super::project::tables::{Msg, Tables};
use super::project::{refused_alike, Catalog, Counts, ProjectStore, Refused};
use super::store::{DeadRef, GroupStore, RowRef};
use super::StoreError;

/// The outcome of each batch of a group, in the group's order.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    pub outcomes: Vec<CommitOutcome>,
    /// Rows the database refused, as the dead letters that replaced them, per batch.
    pub rejected: Vec<Vec<DeadLetter>>,
    /// What the projections' statements did, by projection (the whole group).
    pub projections: Vec<Counts>,
}

/// Commit `batches` (of distinct partitions) in one transaction: fences, `events` rows, the
/// projections' ops (of messages whose row the database took), dead letters.
pub(crate) fn commit_group<S: ProjectStore + Catalog + Lookup>(
    store: &mut S,
    group: &str,
    tables: &mut Tables,
    batches: &[ParsedBatch],
    buf: &mut Vec<u8>,
) -> Result<GroupCommit, StoreError> {
    tables.begin();
    let committed = store.in_transaction(|s| {
        // Fences first: their row locks serialise competing members, so a loser waits and then
        // sees the moved offset instead of racing the inserts.
        let mut outcomes = Vec::with_capacity(batches.len());
        for b in batches {
            outcomes.push(if s.advance(group, &b.partition, b.fence, b.next_offset)? {
                None
            } else {
                Some(CommitOutcome::Fenced { db_next_offset: s.current_offset(group, &b.partition)? })
            });
        }
        let live = || batches.iter().enumerate().filter(|(i, _)| outcomes[*i].is_none());
        let rows: Vec<RowRef<'_>> =
            live().flat_map(|(_, b)| b.rows.iter().map(move |row| RowRef { partition: &b.partition, row })).collect();
        let refused = insert_refusing(s, &rows, buf)?;
        let mut rejected: Vec<Vec<DeadLetter>> = batches.iter().map(|_| Vec::new()).collect();
        let mut kept: Vec<usize> = batches.iter().map(|b| b.rows.len()).collect();
        let batch_of = |key: &PartitionKey| batches.iter().position(|b| &b.partition == key).unwrap_or(0);
        let mut unarchived = HashSet::new();
        for (i, sqlstate, message) in refused {
            let RowRef { partition, row } = rows[i];
            let b = batch_of(partition);
            kept[b] -= 1;
            unarchived.insert((b, row.offset));
            rejected[b].push(rejected_record(&row.original, None, sqlstate, &format!("the database refused the row: {message}")));
        }
        drop(rows);
        let mut projections = vec![Counts::default(); tables.plan().projections.len()];
        if !tables.plan().is_empty() {
            // A message whose events row was refused is a dead letter already: no projection sees it.
            let units: Vec<_> = live()
                .flat_map(|(b, batch)| batch.projected.iter().map(move |p| (b, p)))
                .filter(|(b, p)| !unarchived.contains(&(*b, p.offset)))
                .collect();
            let msgs: Vec<Msg<'_>> = units
                .iter()
                .map(|&(b, p)| Msg {
                    topic: &batches[b].partition.topic,
                    partition: batches[b].partition.partition,
                    record: batches[b].record_of(p),
                    row: match p.record {
                        Kept::Row(i) => Some(&batches[b].rows[i]),
                        Kept::Own(_) => None,
                    },
                    ops: &p.ops,
                })
                .collect();
            let applied = tables.apply(s, &msgs)?;
            projections = applied.counts;
            let mut archived = Vec::new();
            let refused = applied.refused.into_iter().map(|Refused { at, projection, sqlstate, message }| {
                let name = &tables.plan().projections[projection as usize].name;
                let detail = format!("projection {name}: the database refused the row: {message}");
                (at, rejected_record(msgs[at].record, Some(projection), sqlstate, &detail))
            });
            let unresolved = applied.unresolved.into_iter().map(|(at, projection, refusal)| {
                (at, DeadLetter { projection: Some(projection), ..dead_letter(msgs[at].record, refusal) })
            });
            for (at, dead) in refused.chain(unresolved).collect::<Vec<_>>() {
                let (b, p) = units[at];
                rejected[b].push(dead);
                if matches!(p.record, Kept::Row(_)) {
                    kept[b] -= 1;
                    archived.push((&batches[b].partition, p.offset));
                }
            }
            if !archived.is_empty() {
                s.delete_events(&archived)?;
            }
        }
        let dead: Vec<DeadRef<'_>> = live()
            .flat_map(|(i, b)| b.dead_letters.iter().chain(rejected[i].iter()).map(move |dead| DeadRef { partition: &b.partition, dead }))
            .collect();
        if !dead.is_empty() {
            s.insert_dead_letters(&dead, buf)?;
        }
        drop(dead);
        let outcomes = outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.unwrap_or(CommitOutcome::Committed { rows: kept[i], dead_letters: batches[i].dead_letters.len() + rejected[i].len() })
            })
            .collect();
        Ok(GroupCommit { outcomes, rejected, projections })
    });
    if committed.is_err() {
        // The DDL of the group rolled back with it.
        tables.rollback();
    }
    committed
}

/// Insert `rows`, isolating the ones the database refuses (see the module doc); returns them as
/// (index in `rows`, SQLSTATE, message). Everything else is inserted.
pub(super) fn insert_refusing<S: GroupStore>(
    s: &mut S,
    rows: &[RowRef<'_>],
    buf: &mut Vec<u8>,
) -> Result<Vec<(usize, String, String)>, StoreError> {
    let mut refused = Vec::new();
    if !rows.is_empty() {
        insert_isolating(s, rows, 0..rows.len(), buf, &mut refused)?;
    }
    if let Some(e) = refused_alike(rows.len(), refused.iter().map(|r| (&r.1, &r.2))) {
        return Err(e);
    }
    Ok(refused)
}

/// Insert `rows[range]` in a savepoint; when the database refuses the data, bisect until the
/// refused rows are single, and record them (index, SQLSTATE, message) in `refused`.
fn insert_isolating<S: GroupStore>(
    s: &mut S,
    rows: &[RowRef<'_>],
    range: Range<usize>,
    buf: &mut Vec<u8>,
    refused: &mut Vec<(usize, String, String)>,
) -> Result<(), StoreError> {
    match s.in_savepoint(|s| s.insert_events(&rows[range.clone()], buf)) {
        Ok(()) => Ok(()),
        Err(StoreError::Rejected { sqlstate, message }) => {
            if range.len() == 1 {
                if !blames_data(&sqlstate) {
                    // No row: what is refused then is the table's fault, not this message's.
                    s.in_savepoint(|s| s.insert_events(&[], buf)).map_err(StoreError::unwritable)?;
                }
                refused.push((range.start, sqlstate, message));
                return Ok(());
            }
            let mid = range.start + range.len() / 2;
            insert_isolating(s, rows, range.start..mid, buf, refused)?;
            insert_isolating(s, rows, mid..range.end, buf, refused)
        }
        Err(e) => Err(e),
    }
}

/// The dead letter that replaces a message the database refused: its record kept whole, the
/// same dead letter the parser makes, with the SQLSTATE.
fn rejected_record(record: &RawMessage, projection: Option<u16>, sqlstate: String, detail: &str) -> DeadLetter {
    let refusal = Refusal { reason: Reason::DatabaseRejected, detail: detail.to_string() };
    DeadLetter { sqlstate: Some(sqlstate), projection, ..dead_letter(record, refusal) }
}
