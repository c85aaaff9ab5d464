//! `[database]`, `[parser]`, `[http]`, `[log]`, `[health]` and `[shutdown]`: each section's
//! values, defaults and checks.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tributary_actors::{redact, Backend, Format};

use super::error::{duration, set_it, within, ConfigError};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// `postgres://user:password@host:port/db` or `sqlite://path/to/file.db`.
    pub url: SecretString,
    pub pool_size: u32,
    /// Messages per partition batch, and per transaction (ready batches of several partitions
    /// share one transaction up to this many messages).
    pub batch_size: usize,
    /// Payload bytes per partition batch.
    pub batch_max_bytes: usize,
    /// How long a partial batch may wait for more messages (`linger_ms`).
    #[serde(rename = "linger_ms", deserialize_with = "duration::millis::deserialize")]
    pub linger: Duration,
    /// Batches parsed or being written at once, across partitions.
    pub max_in_flight: usize,
    /// Bytes of messages in those batches (bounds memory).
    pub max_in_flight_bytes: usize,
    /// Run embedded migrations at start-up.
    pub migrate_on_start: bool,
    /// `connect_timeout_ms`.
    #[serde(rename = "connect_timeout_ms", deserialize_with = "duration::millis::deserialize")]
    pub connect_timeout: Duration,
    /// Consecutive transient database failures that open the circuit breaker (consumption
    /// pauses, `/ready` 503); the next success closes it.
    pub breaker_threshold: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("sqlite://tributary.db"),
            pool_size: 4,
            batch_size: 5000,
            batch_max_bytes: 1024 * 1024,
            linger: Duration::from_millis(50),
            max_in_flight: 64,
            max_in_flight_bytes: 4 * 1024 * 1024,
            migrate_on_start: true,
            connect_timeout: Duration::from_secs(5),
            breaker_threshold: 3,
        }
    }
}

impl DatabaseSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let url = self.url.expose_secret();
        if url.is_empty() {
            return Err(ConfigError::new("database.url", "is empty", set_it("database.url", "\"postgres://user:password@host:5432/db\"")));
        }
        match Backend::of_url(url) {
            None => {
                return Err(ConfigError::new(
                    "database.url",
                    format!("scheme of {} is not supported", redact::database_url(url)),
                    format!("use {}", Backend::schemes()),
                ));
            }
            Some(backend) => backend.check_url(url).map_err(|p| ConfigError::new("database.url", p.problem, p.fix))?,
        }
        within("database.pool_size", u64::from(self.pool_size), 1, 256)?;
        within("database.batch_size", self.batch_size as u64, 1, 1_000_000)?;
        within("database.batch_max_bytes", self.batch_max_bytes as u64, 1024, 1 << 30)?;
        within("database.linger_ms", duration::ms(self.linger), 0, 60_000)?;
        within("database.max_in_flight", self.max_in_flight as u64, 1, 4096)?;
        within("database.max_in_flight_bytes", self.max_in_flight_bytes as u64, 64 * 1024, 1 << 34)?;
        within("database.breaker_threshold", u64::from(self.breaker_threshold), 1, 1000)?;
        // r2d2 refuses a zero connection timeout (it panics); an hour is already absurd.
        within("database.connect_timeout_ms", duration::ms(self.connect_timeout), 1, 3_600_000)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParserSettings {
    pub format: Format,
    /// How keys are read by `key:` pointers: `auto` decodes a framed key, `json` reads every key
    /// as it is, `avro` / `protobuf` / `json_schema` refuse a key that is not framed.
    pub key_format: Format,
    pub max_message_bytes: usize,
    pub max_depth: usize,
    /// Parser threads.
    pub workers: usize,
}

impl Default for ParserSettings {
    fn default() -> Self {
        Self { format: Format::Auto, key_format: Format::Auto, max_message_bytes: 1024 * 1024, max_depth: 64, workers: 2 }
    }
}

impl ParserSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if self.key_format == Format::Cloudevents {
            return Err(ConfigError::new(
                "parser.key_format",
                "a key is never a CloudEvent",
                "use auto, json, avro, protobuf or json_schema",
            ));
        }
        within("parser.workers", self.workers as u64, 1, 256)?;
        within("parser.max_message_bytes", self.max_message_bytes as u64, 1, 1 << 30)?;
        // serde_json refuses nesting beyond 128 by itself.
        within("parser.max_depth", self.max_depth as u64, 1, 127)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// `host:port`; port 0 picks a free port.
    pub bind: String,
    /// Bearer token for admin endpoints; without one they answer 403.
    pub admin_token: Option<SecretString>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self { bind: "127.0.0.1:8080".into(), admin_token: None }
    }
}

impl HttpSettings {
    /// Check the section; an empty admin token becomes none.
    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        self.bind_addr()?;
        // An empty token (e.g. `TRIBUTARY_HTTP__ADMIN_TOKEN=` from a template) means none; one of
        // blanks only is a mistake (it would be a token anyone can guess).
        if self.admin_token.as_ref().is_some_and(|t| t.expose_secret().is_empty()) {
            self.admin_token = None;
        }
        if let Some(token) = &self.admin_token {
            if token.expose_secret().trim().is_empty() {
                return Err(ConfigError::new(
                    "http.admin_token",
                    "is blank",
                    "use a long random token, e.g. `openssl rand -hex 32`, or leave it unset to turn admin endpoints off",
                ));
            }
            if token.expose_secret().chars().count() < 16 {
                return Err(ConfigError::new(
                    "http.admin_token",
                    "is shorter than 16 characters",
                    "use a long random token, e.g. `openssl rand -hex 32`",
                ));
            }
        }
        Ok(())
    }

    /// The listen address.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.bind.to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| {
            ConfigError::new("http.bind", format!("{:?} is not host:port", self.bind), set_it("http.bind", "\"0.0.0.0:8080\""))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Term,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Term }
    }
}

impl LogSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        if !["trace", "debug", "info", "warn", "warning", "error", "critical"].contains(&self.level.to_lowercase().as_str()) {
            return Err(ConfigError::new(
                "log.level",
                format!("{:?} is not a level", self.level),
                "use one of trace, debug, info, warn, error",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// Lag above zero and no commit for this long ⇒ `/ready` 503 `stalled` (`stall_after_secs`).
    #[serde(rename = "stall_after_secs", with = "duration::secs")]
    pub stall_after: Duration,
    /// Restart the Kafka reader (a fresh consumer) when a partition has had lag and no commit
    /// this long while the database answered (`restart_reader_after_secs`; 0: never).
    /// librdkafka can leave a partition fetching from a broker that is no longer its leader
    /// after leadership moves, with no error reaching the application.
    #[serde(rename = "restart_reader_after_secs", with = "duration::secs")]
    pub restart_reader_after: Duration,
    /// Restarts within `restart_window_secs` beyond which an actor counts as failed.
    pub restart_budget: u32,
    #[serde(rename = "restart_window_secs", with = "duration::secs")]
    pub restart_window: Duration,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            stall_after: Duration::from_secs(60),
            restart_reader_after: Duration::from_secs(120),
            restart_budget: 5,
            restart_window: Duration::from_secs(60),
        }
    }
}

impl HealthSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        within("health.restart_budget", u64::from(self.restart_budget), 1, 10_000)?;
        within("health.restart_window_secs", self.restart_window.as_secs(), 1, 86_400)?;
        within("health.stall_after_secs", self.stall_after.as_secs(), 1, 86_400)?;
        within("health.restart_reader_after_secs", self.restart_reader_after.as_secs(), 0, 86_400)
    }

    /// When a stalled reader is restarted: `None` when `restart_reader_after_secs` is 0.
    pub fn reader_restart_due(&self) -> Option<Duration> {
        (!self.restart_reader_after.is_zero()).then_some(self.restart_reader_after)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// How long SIGTERM may take to commit in-flight batches (`timeout_secs`).
    #[serde(rename = "timeout_secs", with = "duration::secs")]
    pub timeout: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30) }
    }
}

impl ShutdownSettings {
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        within("shutdown.timeout_secs", self.timeout.as_secs(), 1, 3600)
    }
}
