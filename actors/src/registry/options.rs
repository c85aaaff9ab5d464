//! What the registry's client is told (`[schema_registry]`).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::backoff::Backoff;

/// `[schema_registry]`.
#[derive(Clone)]
pub struct RegistryOptions {
    /// The REST API's base URL.
    pub url: String,
    /// HTTP basic auth (Confluent Cloud's API key and secret).
    pub username: Option<String>,
    pub password: Option<SecretString>,
    /// PEM CA certificates to verify the registry by (default: Mozilla's roots, built in).
    pub ca_location: Option<PathBuf>,
    /// A client certificate (PEM chain) and its key, for registries that ask for one.
    pub certificate_location: Option<PathBuf>,
    pub key_location: Option<PathBuf>,
    /// One request's whole time limit.
    pub timeout: Duration,
    /// Compiled schemas kept for the process (ids are immutable: an entry never goes stale).
    pub cache_capacity: usize,
    /// Between attempts while the registry is unavailable.
    pub retry: Backoff,
}

impl std::fmt::Debug for RegistryOptions {
    /// The URL may carry credentials: shown redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("url", &crate::redact::database_url(&self.url))
            .field("username", &self.username)
            .field("timeout", &self.timeout)
            .field("cache_capacity", &self.cache_capacity)
            .finish_non_exhaustive()
    }
}
