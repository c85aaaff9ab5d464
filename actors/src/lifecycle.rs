//! What every actor says about its own life, and how any of them is restarted.
//!
//! No actor owns this module: the actors tell the `HealthReporter` with these messages, the
//! HTTP layer and the `HealthReporter` restart them with [`Restart`], and each catches its
//! panics with [`catch_panic`]. With it here, the actors depend on each other one way only
//! (reader → parser, writer → health), never in a circle.

use std::panic::AssertUnwindSafe;

use actix::prelude::*;
use serde::Serialize;

/// The supervised actors, by the names `/actors` and `POST /actors/{name}/restart` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorName {
    KafkaReader,
    Parser,
    DbWriter,
    HealthReporter,
    Redriver,
}

impl ActorName {
    pub const ALL: [ActorName; 5] =
        [ActorName::KafkaReader, ActorName::Parser, ActorName::DbWriter, ActorName::HealthReporter, ActorName::Redriver];

    pub fn as_str(self) -> &'static str {
        match self {
            ActorName::KafkaReader => "kafka_reader",
            ActorName::Parser => "parser",
            ActorName::DbWriter => "db_writer",
            ActorName::HealthReporter => "health_reporter",
            ActorName::Redriver => "redriver",
        }
    }
}

impl std::fmt::Display for ActorName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is none of [`ActorName::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("no actor named {name:?}; actors: kafka_reader, parser, db_writer, health_reporter, redriver")]
pub struct UnknownActor {
    /// At most 64 characters of what was asked for.
    pub name: String,
}

impl std::str::FromStr for ActorName {
    type Err = UnknownActor;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ActorName::ALL.into_iter().find(|n| n.as_str() == s).ok_or_else(|| UnknownActor { name: s.chars().take(64).collect() })
    }
}

/// An actor started (or restarted and is running again).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActorStarted(pub ActorName);

/// An actor failed and its supervisor is restarting it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActorFailed {
    pub name: ActorName,
    pub error: String,
}

/// This actor is restarting on request (`POST /actors/{name}/restart`, or a stall).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActorRestartRequested(pub ActorName);

/// An actor stopped for good (shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ActorStopped(pub ActorName);

/// Restart this actor under its supervisor (every actor handles it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restart;

/// A database round trip, for readiness (the `DbWriter` answers).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct Ping;

/// Run `f`, turning a panic into its message: a bug in one batch must not take the worker's
/// thread down with it (the worker reports the failure and its supervisor replaces it).
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|panic| panic_message(&*panic))
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        for n in ActorName::ALL {
            assert_eq!(n.as_str().parse::<ActorName>().unwrap(), n);
            assert_eq!(serde_json::to_value(n).unwrap(), n.as_str());
        }
        let e = "x".repeat(100_000).parse::<ActorName>().unwrap_err();
        assert_eq!(e.name.len(), 64);
    }

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch_panic(|| 7), Ok(7));
        assert_eq!(catch_panic(|| -> () { panic!("boom {}", 1) }), Err("boom 1".to_string()));
    }
}
