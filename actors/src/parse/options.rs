//! What the parser is told: the formats it accepts, its limits, the projections.

use serde::{Deserialize, Serialize};

/// Which formats the parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// CloudEvents (binary or structured) when the record says so, else plain JSON.
    #[default]
    Auto,
    /// CloudEvents only: a record that is neither binary nor structured mode is a dead letter.
    Cloudevents,
    /// Plain JSON objects; CloudEvents headers and attributes are not interpreted.
    Json,
    /// Values in the schema registry's wire format only (decoded by the registry's schema type,
    /// whichever of these is named); anything else is a `not_framed` dead letter.
    Avro,
    Protobuf,
    #[serde(rename = "json_schema")]
    JsonSchema,
}

impl Format {
    /// The name `parser.format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Cloudevents => "cloudevents",
            Format::Json => "json",
            Format::Avro => "avro",
            Format::Protobuf => "protobuf",
            Format::JsonSchema => "json_schema",
        }
    }

    /// Whether the format is one of the schema registry's: values must be framed.
    pub fn is_framed(self) -> bool {
        matches!(self, Format::Avro | Format::Protobuf | Format::JsonSchema)
    }
}

/// Limits and mode for parsing.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub format: Format,
    /// How keys are read for `key:` pointers: `Auto` decodes a framed key; a framed format
    /// refuses a key that is not framed; `Json` reads every key as it is.
    pub key_format: Format,
    /// Payloads larger than this become `oversize` dead letters.
    pub max_message_bytes: usize,
    /// JSON nested deeper than this becomes a `too_deep` dead letter.
    pub max_depth: usize,
    /// The projections and `[events]` (the default: no projection, the archive on).
    pub plan: std::sync::Arc<crate::project::Plan>,
    /// The schema registry's schemas by id (`[schema_registry]`); without it framed values are
    /// not decoded.
    pub schemas: Option<std::sync::Arc<super::framed::schemas::Schemas>>,
}

impl ParseOptions {
    /// Whether a NUL anywhere in a record refuses it: while the archive stores the whole record
    /// (PostgreSQL's text and jsonb cannot hold one). Without the archive only what is written
    /// counts: each projection's column checks the values it takes (`project::Nul`).
    pub(super) fn refuses_nul(&self) -> bool {
        self.plan.events.enabled
    }
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            key_format: Format::Auto,
            max_message_bytes: 1024 * 1024,
            max_depth: 64,
            plan: Default::default(),
            schemas: None,
        }
    }
}
