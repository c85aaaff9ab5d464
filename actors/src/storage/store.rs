//! What the group commit needs from a backend: its transaction, savepoints, the offset fence and
//! the two tables' inserts — the seam a backend fills in.

use crate::batches::Fence;
use crate::records::{DeadLetter, EventRow, PartitionKey};

use super::StoreError;

/// A row to insert and the partition it belongs to.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "bench"), allow(unreachable_pub))] // the bench's raw statements (`raw`)
pub struct RowRef<'a> {
    pub partition: &'a PartitionKey,
    pub row: &'a EventRow,
}

/// A dead letter to insert and the partition it belongs to.
#[derive(Clone, Copy)]
pub(crate) struct DeadRef<'a> {
    pub partition: &'a PartitionKey,
    pub dead: &'a DeadLetter,
}

/// What the group commit needs from a backend.
pub(crate) trait GroupStore {
    /// Run `f` in a transaction (SQLite: `BEGIN IMMEDIATE`), committing on `Ok`.
    fn in_transaction<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, StoreError>) -> Result<T, StoreError>;
    /// Run `f` in a savepoint of the current transaction, rolling back to it on `Err`.
    fn in_savepoint<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, StoreError>) -> Result<T, StoreError>;
    /// Move `consumer_offsets` of `key` from `fence` to `next`; false if the fence does not hold.
    fn advance(&mut self, group: &str, key: &PartitionKey, fence: Fence, next: i64) -> Result<bool, StoreError>;
    fn current_offset(&mut self, group: &str, key: &PartitionKey) -> Result<Option<i64>, StoreError>;
    fn insert_events(&mut self, rows: &[RowRef<'_>], buf: &mut Vec<u8>) -> Result<(), StoreError>;
    fn insert_dead_letters(&mut self, dead: &[DeadRef<'_>], buf: &mut Vec<u8>) -> Result<(), StoreError>;
}
