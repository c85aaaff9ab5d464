//! Configuration: typed settings, layered defaults < TOML < `TRIBUTARY_*` env < CLI flags.
//!
//! Everything is validated once at start; a bad value fails with the key, what is wrong and how
//! to fix it. Secrets (database URL password, admin token, librdkafka passwords, the schema
//! registry's URL and password) are wrapped so they never reach logs, `/status` or `check-config`
//! output.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{json, Value};
use tributary_actors::redact;
use tributary_actors::{EventsSpec, ProjectionSpec};

mod error;
mod kafka;
mod projections;
mod registry;
mod sections;

pub use error::{ConfigError, ENV_PREFIX};
pub use kafka::KafkaSettings;
pub use projections::{spec_error, summary as projection_summary};
pub use registry::SchemaRegistrySettings;
pub use sections::{DatabaseSettings, HealthSettings, HttpSettings, LogFormat, LogSettings, ParserSettings, ShutdownSettings};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub kafka: KafkaSettings,
    pub database: DatabaseSettings,
    pub parser: ParserSettings,
    pub http: HttpSettings,
    pub log: LogSettings,
    pub health: HealthSettings,
    pub shutdown: ShutdownSettings,
    pub schema_registry: SchemaRegistrySettings,
    pub events: EventsSpec,
    #[serde(rename = "projection")]
    pub projections: Vec<ProjectionSpec>,
}

impl Settings {
    /// Layer: defaults < TOML file < environment < `overrides` (CLI flags, as dotted keys).
    pub fn load(file: Option<&Path>, overrides: &BTreeMap<String, Value>) -> Result<Self, ConfigError> {
        Self::load_over(&BTreeMap::new(), file, overrides)
    }

    /// [`Settings::load`] with `defaults` (dotted keys) in place of the built-in defaults for
    /// those keys: a command's own defaults that the file and the environment may still change.
    pub fn load_over(
        defaults: &BTreeMap<String, Value>,
        file: Option<&Path>,
        overrides: &BTreeMap<String, Value>,
    ) -> Result<Self, ConfigError> {
        let mut fig = Figment::new();
        for (key, value) in defaults {
            fig = fig.merge(Serialized::global(key, value));
        }
        let mut fig = fig.merge(Self::figment(file)?);
        for (key, value) in overrides {
            fig = fig.merge(Serialized::global(key, value));
        }
        let mut settings: Settings = fig.extract().map_err(|e| {
            let key = e.path.join(".");
            // A type error quotes the value: not for a key that holds a secret.
            let problem = if is_secret_key(&key) { "has the wrong type (its value is not shown)".to_string() } else { e.kind.to_string() };
            ConfigError::new(
                if key.is_empty() { "(config)" } else { &key },
                problem,
                "correct the value in the TOML file or environment; see docs/configuration.md",
            )
        })?;
        // Environment over file; the verbatim text (see `figment`).
        settings.kafka.librdkafka.extend(kafka::librdkafka_env(std::env::vars()));
        settings.validated()
    }

    /// Only the `[http]` section, from the file and the environment: what `tributary
    /// healthcheck` needs to find the server, without requiring the rest to be valid.
    pub fn load_http(file: Option<&Path>) -> Result<HttpSettings, ConfigError> {
        let fig = Self::figment(file)?;
        match fig.find_value("http") {
            Ok(_) => fig.extract_inner("http").map_err(|e| ConfigError::new("http", e.kind.to_string(), "correct the [http] section")),
            Err(_) => Ok(HttpSettings::default()),
        }
    }

    /// The file and environment layers.
    fn figment(file: Option<&Path>) -> Result<Figment, ConfigError> {
        let mut fig = Figment::new();
        match file {
            Some(path) if path.is_dir() => {
                return Err(ConfigError::new(
                    "--config",
                    format!("{} is a directory", path.display()),
                    "pass a TOML file, e.g. --config /etc/tributary/tributary.toml",
                ));
            }
            Some(path) if path.exists() => fig = fig.merge(Toml::file(path)),
            Some(path) => {
                return Err(ConfigError::new(
                    "--config",
                    format!("file {} does not exist", path.display()),
                    "pass an existing TOML file, or omit --config",
                ));
            }
            None if Path::new("tributary.toml").exists() => fig = fig.merge(Toml::file("tributary.toml")),
            None => {}
        }
        // Only nested names (SECTION__KEY) are configuration; TRIBUTARY_CONFIG and the test
        // suite's TRIBUTARY_TEST_DATABASE_URL are not. librdkafka properties are read verbatim
        // in `load` instead: figment would parse a value, turning a password "007" into 7.
        let env = Env::prefixed(ENV_PREFIX).filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            k.contains("__") && !k.starts_with("kafka__librdkafka__")
        });
        Ok(fig.merge(env.split("__")))
    }

    /// Check every section, then the projections against the topics; normalises what a
    /// section reads in more than one way (librdkafka keys from the environment, an empty token).
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        self.kafka.check()?;
        self.database.check()?;
        self.parser.check()?;
        let framed = [("parser.format", self.parser.format), ("parser.key_format", self.parser.key_format)];
        self.schema_registry.check(framed.into_iter().find(|(_, f)| f.is_framed()))?;
        self.http.check()?;
        self.log.check()?;
        self.health.check()?;
        self.shutdown.check()?;
        self.plan()?;
        Ok(self)
    }

    /// The HTTP listen address.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.bind_addr()
    }

    /// librdkafka properties: pass-through plus `bootstrap.servers` from `kafka.brokers`.
    pub fn librdkafka_config(&self) -> BTreeMap<String, String> {
        self.kafka.librdkafka_config()
    }

    /// The effective configuration as JSON, secrets redacted: for `check-config` and `/status`.
    pub fn redacted(&self) -> Value {
        let librdkafka = redact::properties(&self.kafka.librdkafka);
        json!({
            "kafka": {
                "brokers": self.kafka.brokers,
                "group_id": self.kafka.group_id,
                "topics": self.kafka.topics,
                "librdkafka": librdkafka,
                "revoke_timeout_ms": error::duration::ms(self.kafka.revoke_timeout),
            },
            "database": {
                "url": redact::database_url(self.database.url.expose_secret()),
                "pool_size": self.database.pool_size,
                "batch_size": self.database.batch_size,
                "batch_max_bytes": self.database.batch_max_bytes,
                "linger_ms": error::duration::ms(self.database.linger),
                "max_in_flight": self.database.max_in_flight,
                "max_in_flight_bytes": self.database.max_in_flight_bytes,
                "migrate_on_start": self.database.migrate_on_start,
                "connect_timeout_ms": error::duration::ms(self.database.connect_timeout),
                "breaker_threshold": self.database.breaker_threshold,
            },
            "parser": self.parser,
            "schema_registry": self.schema_registry.redacted(),
            "http": {
                "bind": self.http.bind,
                "admin_token": self.http.admin_token.as_ref().map(|_| "[REDACTED]"),
            },
            "log": self.log,
            "health": self.health,
            "shutdown": self.shutdown,
            "events": self.events,
            "projections": self.plan().map(|p| projections::summary(&p)["projections"].clone()).unwrap_or_default(),
        })
    }
}

/// Keys whose values are secrets (or may hold one: a database URL's password).
fn is_secret_key(key: &str) -> bool {
    key == "database.url"
        || key == "http.admin_token"
        || key == "schema_registry.url"
        || key == "schema_registry.password"
        || (key.starts_with("kafka.librdkafka") && redact::is_secret_property(key))
}

/// Where a local probe reaches a server bound to `bind`: a wildcard address (`0.0.0.0`, `[::]`)
/// is reached on loopback; a named host as given.
pub fn health_url(bind: &str) -> String {
    let (host, port) = bind.rsplit_once(':').unwrap_or((bind, "8080"));
    let host = match host {
        "" | "0.0.0.0" => "127.0.0.1",
        "[::]" | "::" => "[::1]",
        other => other,
    };
    format!("http://{host}:{port}/health")
}

impl Settings {
    /// The projections, checked without the database, and `[events]`.
    pub fn plan(&self) -> Result<tributary_actors::Plan, ConfigError> {
        projections::plan(&self.events, &self.projections, &self.kafka.topics)
    }
}

#[cfg(test)]
mod tests;
