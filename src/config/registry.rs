//! `[schema_registry]`: where the schemas of framed values (Avro, Protobuf, JSON Schema) are
//! kept, and how to reach it.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tributary_actors::{Backoff, Format, RegistryOptions};

use super::error::{duration, set_it, within, ConfigError};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchemaRegistrySettings {
    /// The REST API's base URL; none: framed values are not decoded. A secret: it may carry
    /// credentials.
    pub url: Option<SecretString>,
    /// HTTP basic auth (Confluent Cloud: the API key and secret).
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// PEM CA certificates for an `https` registry (default: the Mozilla roots built in).
    pub ca_location: Option<PathBuf>,
    /// A client certificate (PEM) and its key (PEM), for a registry that asks for one.
    pub certificate_location: Option<PathBuf>,
    pub key_location: Option<PathBuf>,
    /// One request's whole time limit (connect, send, answer).
    #[serde(rename = "timeout_ms", deserialize_with = "duration::millis::deserialize")]
    pub timeout: Duration,
    /// Compiled schemas kept by id.
    pub cache_capacity: usize,
    /// Waits between attempts while the registry is unavailable: from the first, doubling up to
    /// the most.
    #[serde(rename = "retry_backoff_ms", deserialize_with = "duration::millis::deserialize")]
    pub retry_backoff: Duration,
    #[serde(rename = "retry_backoff_max_ms", deserialize_with = "duration::millis::deserialize")]
    pub retry_backoff_max: Duration,
}

impl Default for SchemaRegistrySettings {
    fn default() -> Self {
        Self {
            url: None,
            username: None,
            password: None,
            ca_location: None,
            certificate_location: None,
            key_location: None,
            timeout: Duration::from_secs(10),
            cache_capacity: 1000,
            retry_backoff: Duration::from_millis(200),
            retry_backoff_max: Duration::from_secs(10),
        }
    }
}

impl SchemaRegistrySettings {
    /// Check the section; `framed`: the key that names a framed format, which needs a registry.
    pub(super) fn check(&mut self, framed: Option<(&str, Format)>) -> Result<(), ConfigError> {
        if self.url.as_ref().is_some_and(|u| u.expose_secret().trim().is_empty()) {
            self.url = None;
        }
        match (self.url.as_ref().map(|u| u.expose_secret()), framed) {
            (None, Some((key, format))) => {
                return Err(ConfigError::new(
                    key,
                    format!("{} is decoded by schemas kept in a schema registry, and none is configured", format.name()),
                    set_it("schema_registry.url", "\"http://registry:8081\""),
                ))
            }
            (None, None) => return Ok(()),
            (Some(url), _) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(ConfigError::new(
                    "schema_registry.url",
                    format!("{} is not an http:// or https:// URL", tributary_actors::redact::database_url(url)),
                    set_it("schema_registry.url", "\"http://registry:8081\""),
                ))
            }
            (Some(_), _) => {}
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(ConfigError::new(
                "schema_registry.password",
                "a password without a username",
                set_it("schema_registry.username", "\"<api key>\""),
            ));
        }
        if self.certificate_location.is_some() != self.key_location.is_some() {
            return Err(ConfigError::new(
                "schema_registry.certificate_location",
                "a client certificate needs its key, and a key its certificate",
                "set both certificate_location and key_location under [schema_registry], or neither",
            ));
        }
        within("schema_registry.timeout_ms", duration::ms(self.timeout), 1, 600_000)?;
        within("schema_registry.cache_capacity", self.cache_capacity as u64, 1, 1_000_000)?;
        within("schema_registry.retry_backoff_ms", duration::ms(self.retry_backoff), 1, 600_000)?;
        within("schema_registry.retry_backoff_max_ms", duration::ms(self.retry_backoff_max), duration::ms(self.retry_backoff), 3_600_000)
    }

    /// The client's options, when a registry is configured.
    pub fn options(&self) -> Option<RegistryOptions> {
        Some(RegistryOptions {
            url: self.url.as_ref()?.expose_secret().to_string(),
            username: self.username.clone(),
            password: self.password.clone(),
            ca_location: self.ca_location.clone(),
            certificate_location: self.certificate_location.clone(),
            key_location: self.key_location.clone(),
            timeout: self.timeout,
            cache_capacity: self.cache_capacity,
            retry: Backoff { initial: self.retry_backoff, max: self.retry_backoff_max },
        })
    }

    /// For `check-config` and `/status`: the URL's userinfo and the password redacted.
    pub(super) fn redacted(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url.as_ref().map(|u| tributary_actors::redact::database_url(u.expose_secret())),
            "username": self.username,
            "password": self.password.as_ref().map(|_| tributary_actors::redact::REDACTED),
            "ca_location": self.ca_location,
            "certificate_location": self.certificate_location,
            "key_location": self.key_location,
            "timeout_ms": duration::ms(self.timeout),
            "cache_capacity": self.cache_capacity,
            "retry_backoff_ms": duration::ms(self.retry_backoff),
            "retry_backoff_max_ms": duration::ms(self.retry_backoff_max),
        })
    }
}
