//! Configuration: typed settings, layered defaults < TOML < `TRIBUTARY_*` env < CLI flags.
//!
//! Everything is validated once at start; a bad value fails with the key, what is wrong and how
//! to fix it. Secrets (database URL password, admin token, librdkafka passwords) are wrapped so
//! they never reach logs, `/status` or `check-config` output.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use tributary_actors::redact;
use tributary_actors::Backend;
use tributary_actors::Format;
use tributary_actors::{EventsSpec, ProjectionSpec};

/// Environment variable prefix; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "TRIBUTARY_";
/// librdkafka properties in the environment: `TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD`.
const LIBRDKAFKA_ENV_PREFIX: &str = "TRIBUTARY_KAFKA__LIBRDKAFKA__";

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
    pub events: EventsSpec,
    #[serde(rename = "projection")]
    pub projections: Vec<ProjectionSpec>,
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list, like librdkafka's `bootstrap.servers`.
    pub brokers: String,
    pub group_id: String,
    #[serde(deserialize_with = "string_or_list")]
    pub topics: Vec<String>,
    /// Any librdkafka property, passed through (e.g. `security.protocol`, `sasl.password`).
    /// Numbers and booleans are accepted and passed as their text.
    #[serde(deserialize_with = "map_of_scalars")]
    pub librdkafka: BTreeMap<String, String>,
    /// How long a revoked partition waits for its in-flight batches.
    pub revoke_timeout_ms: u64,
}

/// By hand: `librdkafka` may hold `sasl.password` and friends, which `{:?}` must not print.
impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("librdkafka", &redact::properties(&self.librdkafka))
            .field("revoke_timeout_ms", &self.revoke_timeout_ms)
            .finish()
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            group_id: "tributary".into(),
            topics: Vec::new(),
            librdkafka: BTreeMap::new(),
            revoke_timeout_ms: 10_000,
        }
    }
}

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
    /// How long a partial batch may wait for more messages.
    pub linger_ms: u64,
    /// Batches parsed or being written at once, across partitions.
    pub max_in_flight: usize,
    /// Bytes of messages in those batches (bounds memory).
    pub max_in_flight_bytes: usize,
    /// Run embedded migrations at start-up.
    pub migrate_on_start: bool,
    pub connect_timeout_ms: u64,
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
            linger_ms: 50,
            max_in_flight: 64,
            max_in_flight_bytes: 4 * 1024 * 1024,
            migrate_on_start: true,
            connect_timeout_ms: 5000,
            breaker_threshold: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ParserSettings {
    pub format: Format,
    pub max_message_bytes: usize,
    pub max_depth: usize,
    /// Parser threads.
    pub workers: usize,
}

impl Default for ParserSettings {
    fn default() -> Self {
        Self { format: Format::Auto, max_message_bytes: 1024 * 1024, max_depth: 64, workers: 2 }
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

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthSettings {
    /// Lag above zero and no commit for this long ⇒ `/ready` 503 `stalled`.
    pub stall_after_secs: u64,
    /// Restart the Kafka reader (a fresh consumer) when a partition has had lag and no commit
    /// this long while the database answered (0: never). librdkafka can leave a partition
    /// fetching from a broker that is no longer its leader after leadership moves, with no
    /// error reaching the application.
    pub restart_reader_after_secs: u64,
    /// Restarts within `restart_window_secs` beyond which an actor counts as failed.
    pub restart_budget: u32,
    pub restart_window_secs: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self { stall_after_secs: 60, restart_reader_after_secs: 120, restart_budget: 5, restart_window_secs: 60 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShutdownSettings {
    /// How long SIGTERM may take to commit in-flight batches.
    pub timeout_secs: u64,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { timeout_secs: 30 }
    }
}

/// Accept `["a","b"]` or `"a,b"` (handy in environment variables).
fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Either::deserialize(d)? {
        Either::One(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        Either::Many(v) => v,
    })
}

/// librdkafka takes every property as text; let TOML and the environment give numbers too.
fn map_of_scalars<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Float(f64),
        Bool(bool),
    }
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Scalar::Text(s) => s,
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            };
            (k, v)
        })
        .collect())
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase())
}

fn set_it(key: &str, example: &str) -> String {
    let (section, name) = key.split_once('.').unwrap_or(("", key));
    format!("set `{name} = {example}` under [{section}] in the TOML file, or {}={}", env_name(key), example.trim_matches('"'))
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
        settings.kafka.librdkafka.extend(librdkafka_env(std::env::vars()));
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

    /// Check every value; normalises librdkafka keys given through the environment.
    pub fn validated(mut self) -> Result<Self, ConfigError> {
        // Environment names cannot hold dots: TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD means sasl.password.
        self.kafka.librdkafka = self.kafka.librdkafka.into_iter().map(|(k, v)| (k.replace('_', "."), v)).collect();
        let k = &self.kafka;
        let has_bootstrap = k.librdkafka.contains_key("bootstrap.servers") || k.librdkafka.contains_key("test.mock.num.brokers");
        if k.brokers.trim().is_empty() && !has_bootstrap {
            return Err(ConfigError::new("kafka.brokers", "is empty", set_it("kafka.brokers", "\"kafka-1:9092,kafka-2:9092\"")));
        }
        if let Some(bad) = k.brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).find(|b| !is_host_port(b)) {
            return Err(ConfigError::new(
                "kafka.brokers",
                format!("{:?} is not host:port", redact::database_url(bad)),
                set_it("kafka.brokers", "\"kafka-1:9092,kafka-2:9092\""),
            ));
        }
        if k.group_id.trim().is_empty() {
            return Err(ConfigError::new("kafka.group_id", "is empty", set_it("kafka.group_id", "\"tributary\"")));
        }
        if k.topics.is_empty() || k.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ConfigError::new("kafka.topics", "names no topic", set_it("kafka.topics", "[\"events\"]")));
        }
        for reserved in ["group.id", "enable.auto.commit", "enable.auto.offset.store"] {
            if k.librdkafka.contains_key(reserved) {
                return Err(ConfigError::new(
                    &format!("kafka.librdkafka.\"{reserved}\""),
                    "is managed by tributary (exactly-once needs it)",
                    "remove it; use kafka.group_id for the group",
                ));
            }
        }
        let mut client = rdkafka::ClientConfig::new();
        for (key, value) in self.librdkafka_config() {
            client.set(key, value);
        }
        if let Err(e) = client.create_native_config() {
            return Err(librdkafka_error(&e, &k.librdkafka, "use a property and value librdkafka knows (see its CONFIGURATION.md)"));
        }
        // TLS and SASL are set up when a client is created (CA, certificate and key files, the
        // key's password, the SASL mechanism's provider), not when a property is set: create
        // one now, so a wrong path fails the start with librdkafka's message naming the
        // property, instead of the reader failing and restarting. Without a group.id this
        // client joins nothing; it is dropped at once.
        if k.librdkafka.keys().any(|p| p.starts_with("ssl.") || p.starts_with("sasl.") || p == "security.protocol") {
            if let Err(e) = client.create::<rdkafka::consumer::BaseConsumer>() {
                return Err(librdkafka_error(
                    &e,
                    &k.librdkafka,
                    "check the TLS/SASL properties: files named must exist and be readable, a key's password must match, \
                     sasl.mechanisms must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (GSSAPI is not built in)",
                ));
            }
        }
        let url = self.database.url.expose_secret();
        if url.is_empty() {
            return Err(ConfigError::new("database.url", "is empty", set_it("database.url", "\"postgres://user:password@host:5432/db\"")));
        }
        match Backend::of_url(url) {
            None => {
                return Err(ConfigError::new(
                    "database.url",
                    format!("scheme of {} is not supported", redact::database_url(url)),
                    format!("use {}", Backend::SCHEMES),
                ));
            }
            Some(backend) => backend.check_url(url).map_err(|p| ConfigError::new("database.url", p.problem, p.fix))?,
        }
        let d = &self.database;
        let ranges: [(&str, u64, u64, u64); 7] = [
            ("database.pool_size", u64::from(d.pool_size), 1, 256),
            ("database.batch_size", d.batch_size as u64, 1, 1_000_000),
            ("database.batch_max_bytes", d.batch_max_bytes as u64, 1024, 1 << 30),
            ("database.linger_ms", d.linger_ms, 0, 60_000),
            ("database.max_in_flight", d.max_in_flight as u64, 1, 4096),
            ("database.max_in_flight_bytes", d.max_in_flight_bytes as u64, 64 * 1024, 1 << 34),
            ("database.breaker_threshold", u64::from(d.breaker_threshold), 1, 1000),
        ];
        let p = &self.parser;
        let timeouts: [(&str, u64, u64, u64); 5] = [
            // r2d2 refuses a zero connection timeout (it panics); an hour is already absurd.
            ("database.connect_timeout_ms", d.connect_timeout_ms, 1, 3_600_000),
            ("kafka.revoke_timeout_ms", self.kafka.revoke_timeout_ms, 1, 3_600_000),
            ("shutdown.timeout_secs", self.shutdown.timeout_secs, 1, 3600),
            ("health.restart_budget", u64::from(self.health.restart_budget), 1, 10_000),
            ("health.restart_window_secs", self.health.restart_window_secs, 1, 86_400),
        ];
        let more: [(&str, u64, u64, u64); 5] = [
            ("parser.workers", p.workers as u64, 1, 256),
            ("parser.max_message_bytes", p.max_message_bytes as u64, 1, 1 << 30),
            // serde_json refuses nesting beyond 128 by itself.
            ("parser.max_depth", p.max_depth as u64, 1, 127),
            ("health.stall_after_secs", self.health.stall_after_secs, 1, 86_400),
            ("health.restart_reader_after_secs", self.health.restart_reader_after_secs, 0, 86_400),
        ];
        for (key, value, lo, hi) in ranges.into_iter().chain(timeouts).chain(more) {
            if value < lo || value > hi {
                return Err(ConfigError::new(key, format!("{value} is out of range"), format!("use a value from {lo} to {hi}")));
            }
        }
        self.bind_addr()?;
        if !["trace", "debug", "info", "warn", "warning", "error", "critical"].contains(&self.log.level.to_lowercase().as_str()) {
            return Err(ConfigError::new(
                "log.level",
                format!("{:?} is not a level", self.log.level),
                "use one of trace, debug, info, warn, error",
            ));
        }
        // An empty token (e.g. `TRIBUTARY_HTTP__ADMIN_TOKEN=` from a template) means none; one of
        // blanks only is a mistake (it would be a token anyone can guess).
        if self.http.admin_token.as_ref().is_some_and(|t| t.expose_secret().is_empty()) {
            self.http.admin_token = None;
        }
        if let Some(token) = &self.http.admin_token {
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
        self.plan()?;
        Ok(self)
    }

    /// The HTTP listen address.
    pub fn bind_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.http.bind.to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| {
            ConfigError::new("http.bind", format!("{:?} is not host:port", self.http.bind), set_it("http.bind", "\"0.0.0.0:8080\""))
        })
    }

    /// librdkafka properties: pass-through plus `bootstrap.servers` from `kafka.brokers`.
    pub fn librdkafka_config(&self) -> BTreeMap<String, String> {
        let mut c = BTreeMap::new();
        // An ingest service wants history, not only what arrives after it first starts.
        c.insert("auto.offset.reset".to_string(), "earliest".to_string());
        // Bound librdkafka's prefetch so memory stays small: the queue refills faster than the
        // database drains it. Queued messages pin whole fetch responses, so the fetch size is
        // bounded too.
        c.insert("queued.max.messages.kbytes".to_string(), "1024".to_string());
        c.insert("queued.min.messages".to_string(), "20000".to_string());
        c.insert("fetch.max.bytes".to_string(), "4194304".to_string());
        // When the reader holds (the database is behind) that queue fills up; librdkafka then
        // postpones the partition's next fetch by this much (default 1 s), which would starve
        // the pipeline once room comes back. A small value refetches as soon as the queue drains.
        c.insert("fetch.queue.backoff.ms".to_string(), "10".to_string());
        // A broker answers a fetch as soon as data arrives; this only bounds an idle wait.
        c.insert("fetch.wait.max.ms".to_string(), "100".to_string());
        if !self.kafka.brokers.trim().is_empty() {
            c.insert("bootstrap.servers".to_string(), self.kafka.brokers.trim().to_string());
        }
        c.extend(self.kafka.librdkafka.iter().map(|(k, v)| (k.clone(), v.clone())));
        c
    }

    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.database.linger_ms)
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
                "revoke_timeout_ms": self.kafka.revoke_timeout_ms,
            },
            "database": {
                "url": redact::database_url(self.database.url.expose_secret()),
                "pool_size": self.database.pool_size,
                "batch_size": self.database.batch_size,
                "batch_max_bytes": self.database.batch_max_bytes,
                "linger_ms": self.database.linger_ms,
                "max_in_flight": self.database.max_in_flight,
                "max_in_flight_bytes": self.database.max_in_flight_bytes,
                "migrate_on_start": self.database.migrate_on_start,
                "connect_timeout_ms": self.database.connect_timeout_ms,
                "breaker_threshold": self.database.breaker_threshold,
            },
            "parser": self.parser,
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

/// `TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD=007` → (`sasl_password`, `007`): the property
/// as figment would name it (`validated` turns `_` into `.`), the value as text.
fn librdkafka_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.filter_map(|(name, value)| {
        let prop = name.strip_prefix(LIBRDKAFKA_ENV_PREFIX).filter(|p| !p.is_empty())?;
        Some((prop.to_lowercase(), value))
    })
    .collect()
}

/// Keys whose values are secrets (or may hold one: a database URL's password).
fn is_secret_key(key: &str) -> bool {
    key == "database.url" || key == "http.admin_token" || (key.starts_with("kafka.librdkafka") && redact::is_secret_property(key))
}

/// A librdkafka error that shows no secret: never the value of an unknown property (a mistyped
/// `sasl.passwrd`) or of a secret-looking one, and no secret value anywhere in the text.
fn librdkafka_error(e: &rdkafka::error::KafkaError, props: &BTreeMap<String, String>, fix: &str) -> ConfigError {
    use rdkafka::error::KafkaError;
    use rdkafka::types::RDKafkaConfRes;
    let secret_values = || props.iter().filter(|(k, _)| redact::is_secret_property(k)).map(|(_, v)| v.as_str());
    match e {
        KafkaError::ClientConfig(res, desc, key, _) => {
            let problem = match res {
                RDKafkaConfRes::RD_KAFKA_CONF_UNKNOWN => format!("{key:?} is not a librdkafka property (its value is not shown)"),
                _ if redact::is_secret_property(key) => format!("the value of {key:?} is not valid (not shown: it may be a secret)"),
                _ => desc.clone(),
            };
            ConfigError::new("kafka.librdkafka", redact::scrub(&problem, secret_values()), fix)
        }
        other => ConfigError::new("kafka.librdkafka", redact::scrub(&other.to_string(), secret_values()), fix),
    }
}

/// `host:port` with a port from 1 to 65535 (IPv6 hosts in brackets).
fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else { return false };
    let host_ok =
        !host.is_empty() && !host.contains(char::is_whitespace) && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')));
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
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

mod error;
mod projections;
pub use error::ConfigError;
pub use projections::{spec_error, summary as projection_summary};

impl Settings {
    /// The projections, checked without the database, and `[events]`.
    pub fn plan(&self) -> Result<tributary_actors::Plan, ConfigError> {
        projections::plan(&self.events, &self.projections, &self.kafka.topics)
    }
}

#[cfg(test)]
mod tests;
