//! A configuration problem, as every check reports it: which key, what is wrong, how to fix it;
//! and the checks every section shares.

/// Environment variable prefix; `__` separates nesting levels.
pub const ENV_PREFIX: &str = "TRIBUTARY_";

/// A configuration problem: which key, what is wrong, how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {key}: {problem}. Fix: {fix}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ConfigError {
    pub(crate) fn new(key: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { key: key.to_string(), problem: problem.into(), fix: fix.into() }
    }
}

/// How to set `key` (`section.name`) to `example`, in the file or the environment.
pub(super) fn set_it(key: &str, example: &str) -> String {
    let (section, name) = key.split_once('.').unwrap_or(("", key));
    let env = format!("{ENV_PREFIX}{}", key.replace('.', "__").to_uppercase());
    format!("set `{name} = {example}` under [{section}] in the TOML file, or {env}={}", example.trim_matches('"'))
}

/// `value` of `key` must lie in `lo..=hi`.
pub(super) fn within(key: &str, value: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if value < lo || value > hi {
        return Err(ConfigError::new(key, format!("{value} is out of range"), format!("use a value from {lo} to {hi}")));
    }
    Ok(())
}

/// A `*_ms` / `*_secs` key holds a [`std::time::Duration`] in the code and a whole number of its
/// unit in the file, the environment and `check-config`.
pub(super) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// The whole milliseconds of a `*_ms` key's `Duration` (read from a `u64` of them).
    pub(crate) fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// Read only: the sections with `*_ms` keys are written out by hand (they hold secrets).
    pub(crate) mod millis {
        use super::*;

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            u64::deserialize(d).map(Duration::from_millis)
        }
    }

    pub(crate) mod secs {
        use super::*;

        pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u64(d.as_secs())
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
            u64::deserialize(d).map(Duration::from_secs)
        }
    }
}
