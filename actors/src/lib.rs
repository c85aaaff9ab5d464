//! tributary's actors and the logic they run.
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

pub mod backoff;
pub mod batch;
pub mod batches;
pub mod breaker;
pub mod health;
pub mod lifecycle;
pub mod metrics;
pub mod parse;
pub mod parser;
pub mod project;
pub mod reader;
pub mod records;
pub mod redact;
pub mod redrive;
pub mod storage;
pub mod throttle;
pub mod writer;
