//! The command line. `--help` is the operator's reference; every flag overrides the file and
//! the environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

/// Every key, flag or not, has its variable; said once under every command's `--help`.
pub const ENV_HELP: &str = "Every configuration key can also be set in the environment as TRIBUTARY_<SECTION>__<KEY> \
(e.g. TRIBUTARY_DATABASE__URL, TRIBUTARY_HTTP__ADMIN_TOKEN, TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD); \
precedence: defaults < TOML file < environment < flags. Every key: docs/configuration.md";

#[derive(Debug, Parser)]
#[command(
    name = "tributary",
    version = crate::app::VERSION,
    about = "Ingest Kafka topics into SQL, exactly once",
    after_help = ENV_HELP
)]
pub struct Cli {
    /// TOML configuration file (default: ./tributary.toml when present).
    #[arg(long, global = true, env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Consume the configured topics into the database (the default).
    #[command(after_help = ENV_HELP)]
    Run(Overrides),
    /// The whole job on one machine: in-process mock Kafka, generated CloudEvents, the real pipeline.
    #[command(after_help = ENV_HELP)]
    Demo(crate::demo::DemoArgs),
    /// Validate the configuration and print it, secrets redacted.
    #[command(after_help = ENV_HELP)]
    CheckConfig(Overrides),
    /// Apply the embedded database migrations and exit.
    #[command(after_help = ENV_HELP)]
    Migrate(Overrides),
    /// GET /health of a running instance; exit 0 when healthy (for container health checks).
    #[command(after_help = ENV_HELP)]
    Healthcheck {
        /// URL to probe. Default: /health on the port of http.bind (file or
        /// TRIBUTARY_HTTP__BIND), on loopback when it binds every address.
        #[arg(long, env = "TRIBUTARY_HEALTHCHECK_URL")]
        url: Option<String>,
        /// Seconds to wait for an answer.
        #[arg(long, env = "TRIBUTARY_HEALTHCHECK_TIMEOUT", default_value_t = 3)]
        timeout: u64,
    },
}

/// Flags that override configuration keys.
#[derive(Debug, Args, Default, Clone)]
pub struct Overrides {
    /// kafka.brokers: bootstrap servers, host:port[,host:port].
    #[arg(long, env = "TRIBUTARY_KAFKA__BROKERS", hide_env_values = true)]
    pub brokers: Option<String>,
    /// kafka.group_id.
    #[arg(long, env = "TRIBUTARY_KAFKA__GROUP_ID", hide_env_values = true)]
    pub group_id: Option<String>,
    /// kafka.topics (comma-separated).
    #[arg(long, env = "TRIBUTARY_KAFKA__TOPICS", hide_env_values = true)]
    pub topics: Option<String>,
    /// database.url.
    #[arg(long, env = "TRIBUTARY_DATABASE__URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// http.bind (host:port).
    #[arg(long, env = "TRIBUTARY_HTTP__BIND", hide_env_values = true)]
    pub bind: Option<String>,
    /// log.format: term or json.
    #[arg(long, env = "TRIBUTARY_LOG__FORMAT", hide_env_values = true)]
    pub log_format: Option<String>,
}

impl Overrides {
    /// As dotted configuration keys, for the top configuration layer.
    pub fn to_map(&self) -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), json!(v));
            }
        };
        put("kafka.brokers", &self.brokers);
        put("kafka.group_id", &self.group_id);
        put("kafka.topics", &self.topics);
        put("database.url", &self.database_url);
        put("http.bind", &self.bind);
        put("log.format", &self.log_format);
        m
    }
}
