//! tributary's actors and the logic they run. The modules are the crate's own; what the binary,
//! its tests and the bench use is re-exported here.
//!
//! Layout:
//! - [`records`]: records and rows — a Kafka record, its `events` row, its dead letter, a refusal.
//! - [`batches`]: the batches that travel the data path between the actors.
//! - [`parse`], [`batch`], [`backoff`], [`storage`]: pure logic and the database, no actors.
//! - [`reader`] (`KafkaReader`), [`parser`] (`Parser`), [`writer`] (`DbWriter`),
//!   [`health`] (`HealthReporter`): the four actors, one per file.
//! - [`redrive`] (`Redriver`): re-parses dead letters on an operator's request, off the data path.
//! - [`lifecycle`]: what every actor reports about itself, `Restart`, panic catching; owned by
//!   no actor, so the actors depend on each other one way only.
//! - [`breaker`]: the database circuit breaker shared by writer and reader.
//! - [`metrics`]: Prometheus handles shared by the actors.
//! - [`redact`]: what of a URL or a librdkafka property may be shown; every path uses it.
//! - [`registry`]: the schema registry's client and health (the parser's framed formats).

#![warn(unreachable_pub)]

pub(crate) mod backoff;
pub(crate) mod batch;
pub(crate) mod batches;
pub(crate) mod breaker;
pub(crate) mod health;
pub(crate) mod lifecycle;
pub(crate) mod metrics;
pub(crate) mod parse;
pub(crate) mod parser;
pub(crate) mod project;
pub(crate) mod reader;
pub(crate) mod records;
pub mod redact;
pub(crate) mod redriver;
pub(crate) mod registry;
pub(crate) mod storage;
pub(crate) mod throttle;
pub(crate) mod writer;

// What the binary, the integration tests and the bench use; everything else is the crate's own.
pub use backoff::Backoff;
pub use batch::BatchLimits;
pub use batches::{Fence, RawBatch};
pub use breaker::Breaker;
pub use health::{ActorReport, Actors, BreakerState, DatabaseState, Health, Liveness, PartitionStatus, Readiness, RegistryState, Status};
pub use health::{GetActors, GetHealth, GetMetrics, GetReadiness, GetStatus, HealthOptions, HealthReporter, SetDbProbe, SetReader};
pub use lifecycle::{ActorName, Restart};
pub use metrics::{label, projection_label, Metrics};
pub use parse::{Format, Inspected, ParseOptions, Schemas};
pub use parser::{parse_batch, Parser};
pub use project::{describe, glob_matches, EventsSpec, Plan, Projection, ProjectionSpec, SpecError, Unrouted};
pub use reader::{KafkaReader, ReaderOptions, SetPaused, Shutdown};
pub use records::{EventRow, PartitionKey, RawMessage};
pub use redriver::{GetDeadLetter, ListDeadLetters, Redrive, Redriver};
pub use registry::{Registry, RegistryHealth, RegistryMetrics, RegistryOptions};
pub use storage::browse::{DeadLetterDetail, DeadLetterPage, DeadLetterSummary, DEFAULT_PAGE, MAX_PAGE};
pub use storage::error::{Failure, StoreError};
pub use storage::project::SetupError;
#[cfg(feature = "bench")]
pub use storage::raw;
pub use storage::redrive::{DeadLetterKey, ReasonCounts, RedriveFilter, RedriveReport, Selection, DEFAULT_LIMIT, MAX_LIMIT};
pub use storage::refusal;
pub use storage::{configure_library, sqlite_path, Backend, Database, DatabaseOptions};
pub use throttle::Throttle;
pub use writer::{DbWriter, WriterOptions};
