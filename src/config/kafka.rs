//! `[kafka]`: the brokers, the group, the topics and librdkafka's own properties, checked by
//! librdkafka itself (a client is created when TLS or SASL is configured).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use tributary_actors::redact;

use super::error::{duration, set_it, within, ConfigError};

/// librdkafka properties in the environment: `TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD`.
const LIBRDKAFKA_ENV_PREFIX: &str = "TRIBUTARY_KAFKA__LIBRDKAFKA__";

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
    /// How long a revoked partition waits for its in-flight batches (`revoke_timeout_ms`).
    #[serde(rename = "revoke_timeout_ms", deserialize_with = "duration::millis::deserialize")]
    pub revoke_timeout: Duration,
}

/// By hand: `librdkafka` may hold `sasl.password` and friends, which `{:?}` must not print.
impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("group_id", &self.group_id)
            .field("topics", &self.topics)
            .field("librdkafka", &redact::properties(&self.librdkafka))
            .field("revoke_timeout", &self.revoke_timeout)
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
            revoke_timeout: Duration::from_secs(10),
        }
    }
}

impl KafkaSettings {
    /// Check the section; normalises librdkafka keys given through the environment.
    pub(super) fn check(&mut self) -> Result<(), ConfigError> {
        // Environment names cannot hold dots: TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD means sasl.password.
        self.librdkafka = std::mem::take(&mut self.librdkafka).into_iter().map(|(k, v)| (k.replace('_', "."), v)).collect();
        let has_bootstrap = self.librdkafka.contains_key("bootstrap.servers") || self.librdkafka.contains_key("test.mock.num.brokers");
        if self.brokers.trim().is_empty() && !has_bootstrap {
            return Err(ConfigError::new("kafka.brokers", "is empty", set_it("kafka.brokers", "\"kafka-1:9092,kafka-2:9092\"")));
        }
        if let Some(bad) = self.brokers.split(',').map(str::trim).filter(|b| !b.is_empty()).find(|b| !is_host_port(b)) {
            return Err(ConfigError::new(
                "kafka.brokers",
                format!("{:?} is not host:port", redact::database_url(bad)),
                set_it("kafka.brokers", "\"kafka-1:9092,kafka-2:9092\""),
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(ConfigError::new("kafka.group_id", "is empty", set_it("kafka.group_id", "\"tributary\"")));
        }
        if self.topics.is_empty() || self.topics.iter().any(|t| t.trim().is_empty()) {
            return Err(ConfigError::new("kafka.topics", "names no topic", set_it("kafka.topics", "[\"events\"]")));
        }
        if let Some((t, e)) = self.topics.iter().find_map(|t| subscription(t).and_then(Result::err).map(|e| (t, e))) {
            return Err(ConfigError::new(
                "kafka.topics",
                format!("{t:?} starts with ^, so it is a regex subscription, and it does not compile: {e}"),
                "fix the regex (librdkafka's syntax: ^prefix\\..* for every topic of a prefix), or name the topic without ^",
            ));
        }
        for reserved in ["group.id", "enable.auto.commit", "enable.auto.offset.store"] {
            if self.librdkafka.contains_key(reserved) {
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
            return Err(librdkafka_error(&e, &self.librdkafka, "use a property and value librdkafka knows (see its CONFIGURATION.md)"));
        }
        // TLS and SASL are set up when a client is created (CA, certificate and key files, the
        // key's password, the SASL mechanism's provider), not when a property is set: create
        // one now, so a wrong path fails the start with librdkafka's message naming the
        // property, instead of the reader failing and restarting. Without a group.id this
        // client joins nothing; it is dropped at once.
        if self.librdkafka.keys().any(|p| p.starts_with("ssl.") || p.starts_with("sasl.") || p == "security.protocol") {
            if let Err(e) = client.create::<rdkafka::consumer::BaseConsumer>() {
                return Err(librdkafka_error(
                    &e,
                    &self.librdkafka,
                    "check the TLS/SASL properties: files named must exist and be readable, a key's password must match, \
                     sasl.mechanisms must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER (GSSAPI is not built in)",
                ));
            }
        }
        within("kafka.revoke_timeout_ms", duration::ms(self.revoke_timeout), 1, 3_600_000)
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
        if !self.brokers.trim().is_empty() {
            c.insert("bootstrap.servers".to_string(), self.brokers.trim().to_string());
        }
        c.extend(self.librdkafka.iter().map(|(k, v)| (k.clone(), v.clone())));
        c
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

/// `TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD=007` → (`sasl_password`, `007`): the property
/// as figment would name it (`check` turns `_` into `.`), the value as text.
pub(super) fn librdkafka_env(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    vars.filter_map(|(name, value)| {
        let prop = name.strip_prefix(LIBRDKAFKA_ENV_PREFIX).filter(|p| !p.is_empty())?;
        Some((prop.to_lowercase(), value))
    })
    .collect()
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

/// A `kafka.topics` entry that is a regex subscription (librdkafka's: it starts with `^`),
/// compiled; `None` for a topic's name.
pub fn subscription(topic: &str) -> Option<Result<regex::Regex, regex::Error>> {
    topic.starts_with('^').then(|| regex::Regex::new(topic))
}
