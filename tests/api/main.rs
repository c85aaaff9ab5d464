//! The integration tests, one binary (linked once, not once per file): real actors, the mock
//! Kafka cluster, SQLite and a real PostgreSQL (`TRIBUTARY_TEST_DATABASE_URL`).

#[macro_use]
mod common;

mod admin;
mod cdc;
mod cdc_avro;
mod cdc_kill;
mod cdc_schema;
mod cdc_stream;
mod cdc_template;
mod console;
mod crash;
mod demo;
mod deploy;
mod exact;
mod faults;
mod hardening;
mod metrics;
mod openapi;
mod pipeline;
mod projection_edges;
mod projections;
mod projections_live;
mod redrive;
mod registry;
mod registry_faults;
mod registry_kill;
mod registry_more;
mod registry_protobuf;
mod security;
