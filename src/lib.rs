//! tributary: Kafka → SQL ingestion, exactly once.
//!
//! Layout:
//! - [`cli`]: the command line (clap); `main.rs` only dispatches.
//! - [`config`]: layered settings and their validation.
//! - [`telemetry`]: slog set-up.
//! - [`http`]: the actix-web API, answered by the `HealthReporter`; [`answer`]: `ApiError`, the
//!   JSON error every HTTP piece answers with, and the one-method route; [`routes`]: routes and
//!   `GET /openapi.json` registered from one list, the admin gate, the body cap; [`console`]: the
//!   operator page's routes.
//! - [`starting`]: the HTTP answers while the database is awaited at start.
//! - [`app`]: builds the actor system (crate `tributary-actors`) and runs it until stopped.
//! - [`demo`]: `tributary demo`, the whole job with an in-process Kafka.
//! - [`wire`]: the HTTP server on connections of ours (JSON bodies on the codec's errors, 414).
//! - [`mock`]: librdkafka's in-process mock cluster, for the demo and the tests.

pub mod answer;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod http;
pub mod mock;
pub mod routes;
pub mod starting;
pub mod telemetry;
pub mod wire;
