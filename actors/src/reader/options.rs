//! What the reader is told at start: the consumer's properties and every budget and deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::batch::BatchLimits;
use crate::breaker::Breaker;

#[derive(Debug, Clone)]
pub struct ReaderOptions {
    /// librdkafka properties (bootstrap.servers, group.id and anything passed through).
    pub client_config: BTreeMap<String, String>,
    pub group_id: String,
    pub topics: Vec<String>,
    pub limits: BatchLimits,
    /// Batches handed to parser/writer and not yet committed, across all partitions.
    pub max_in_flight: usize,
    /// Bytes of messages in those batches (approximate, by message weight).
    pub max_in_flight_bytes: usize,
    /// Transactions the committer runs at once (1 for SQLite, which has one write lock).
    pub concurrent_commits: usize,
    /// Bytes of messages read but not yet handed on, across all partitions, before the reader
    /// pauses fetching.
    pub pending_budget_bytes: usize,
    /// How long a revocation waits for the partition's in-flight batches.
    pub revoke_timeout: Duration,
    /// How long a shutdown waits for in-flight batches to commit.
    pub shutdown_timeout: Duration,
    /// Delay between restarts of a failed reader.
    pub restart_backoff: Backoff,
    /// The database circuit breaker: while open, fetching is paused.
    pub breaker: Breaker,
}
