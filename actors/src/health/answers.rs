//! What `HealthReporter` answers the HTTP edge with: `/health`, `/ready`, `/status` and
//! `/actors` as typed bodies. Their field names are an outside contract (probes and dashboards
//! read them); the schemas derived here are what `GET /openapi.json` documents.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use super::verdict::ActorState;

/// One actor as `/actors` and `/status` show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Actor)]
pub struct ActorReport {
    pub(crate) state: ActorState,
    pub(crate) restarts: u64,
    pub(crate) last_error: Option<String>,
}

/// Every actor by name (`kafka_reader`, `parser`, `db_writer`, `health_reporter`, `redriver`).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(transparent)]
pub struct Actors(pub(crate) BTreeMap<&'static str, ActorReport>);

/// `/health`'s verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    Ok,
    /// An actor is down past its restart budget.
    Failing,
    /// The service waits for its database; no actor runs yet.
    Starting,
}

/// `GET /health`: 200 unless an actor failed past its restart budget.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    pub status: Liveness,
    pub failed_actors: Vec<&'static str>,
    pub actors: Actors,
}

impl Health {
    /// While no actor runs yet (the database is awaited at start).
    pub fn starting() -> Self {
        Health { status: Liveness::Starting, failed_actors: Vec::new(), actors: Actors::default() }
    }

    pub fn ok(&self) -> bool {
        self.status == Liveness::Ok
    }
}

/// `GET /ready`: ready, or the reasons it is not (each starting with its code).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Readiness {
    pub ready: bool,
    pub reasons: Vec<String>,
}

/// The database circuit breaker in `/status`.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct BreakerState {
    pub(crate) open: bool,
    pub(crate) reason: Option<String>,
}

/// The latest database round trip in `/status` (`reachable: null`: none yet).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct DatabaseState {
    pub(crate) reachable: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// The schema registry in `/status` (`null` without `[schema_registry]`).
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct RegistryState {
    /// Userinfo redacted.
    pub(crate) url: String,
    pub(crate) reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// The schema ids values were framed with, by topic.
    pub(crate) schema_ids: std::collections::BTreeMap<String, Vec<u32>>,
}

/// One assigned partition in `/status`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = Partition)]
pub struct PartitionStatus {
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) next_offset: Option<i64>,
    pub(crate) high_watermark: Option<i64>,
    pub(crate) lag: Option<i64>,
    /// RFC 3339.
    pub(crate) last_commit: Option<String>,
}

/// `GET /status`: what an operator wants to see at once.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Status {
    pub(crate) version: String,
    pub(crate) uptime_seconds: f64,
    pub(crate) group_id: String,
    pub(crate) ready: bool,
    pub(crate) reasons: Vec<String>,
    pub(crate) paused: bool,
    pub(crate) breaker: BreakerState,
    pub(crate) database: DatabaseState,
    pub(crate) schema_registry: Option<RegistryState>,
    pub(crate) actors: Actors,
    pub(crate) partitions: Vec<PartitionStatus>,
    /// The tables each template projection (`table = "${source.table}"`) has reached, by
    /// projection.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) tables_reached: std::collections::BTreeMap<String, Vec<String>>,
    /// The effective configuration, secrets redacted, with the projections as checked against
    /// their tables.
    #[schema(value_type = Object)]
    pub(crate) config: serde_json::Value,
}
