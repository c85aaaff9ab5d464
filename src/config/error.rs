//! A configuration problem, as every check reports it: which key, what is wrong, how to fix it.

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
