//! The command line. `--help` is the operator's reference; every flag overrides the file and
//! the environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(name = "tributary", version = crate::app::VERSION, about = "Ingest Kafka topics into SQL, exactly once")]
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
    Run(Overrides),
    /// The whole job on one machine: in-process mock Kafka, generated CloudEvents, the real pipeline.
    Demo(crate::demo::DemoArgs),
    /// Validate the configuration and print it, secrets redacted.
    CheckConfig(Overrides),
    /// Apply the embedded database migrations and exit.
    Migrate(Overrides),
    /// GET /health of a running instance; exit 0 when healthy (for container health checks).
    Healthcheck {
        /// URL to probe. Default: /health on the port of http.bind (file or
        /// TRIBUTARY_HTTP__BIND), on loopback when it binds every address.
        #[arg(long)]
        url: Option<String>,
        /// Seconds to wait for an answer.
        #[arg(long, default_value_t = 3)]
        timeout: u64,
    },
}

/// Flags that override configuration keys.
#[derive(Debug, Args, Default, Clone)]
pub struct Overrides {
    /// kafka.brokers: bootstrap servers, host:port[,host:port].
    #[arg(long)]
    pub brokers: Option<String>,
    /// kafka.group_id.
    #[arg(long)]
    pub group_id: Option<String>,
    /// kafka.topics (comma-separated).
    #[arg(long)]
    pub topics: Option<String>,
    /// database.url.
    #[arg(long)]
    pub database_url: Option<String>,
    /// http.bind (host:port).
    #[arg(long)]
    pub bind: Option<String>,
    /// log.format: term or json.
    #[arg(long)]
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
