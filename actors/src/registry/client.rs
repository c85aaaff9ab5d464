//! Confluent's Schema Registry REST API, the subset a reader needs: a schema by id
//! (`GET /schemas/ids/{id}`) and the schemas it references (`GET /subjects/{s}/versions/{v}`).
//! Karapace, Redpanda and Apicurio's `ccompat` API serve the same.

use std::time::{Duration, Instant};

use base64::Engine as _;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

use super::options::RegistryOptions;

/// A schema as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawSchema {
    /// `AVRO` (the registry's default when it names none), `PROTOBUF` or `JSON`.
    pub(crate) schema_type: String,
    pub(crate) schema: String,
    /// Every schema it references, transitively, each once: (the name it is referenced by, its
    /// text), dependencies before the schemas that need them.
    pub(crate) references: Vec<(String, String)>,
}

/// Why a fetch gave no schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// The registry answered 404: it does not know the id (or a reference).
    #[error("{0}")]
    NotFound(String),
    /// No usable answer (unreachable, timeout, 5xx, refused credentials, a body that is not a
    /// schema): an outage, retried, never the message's fault.
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct SchemaBody {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Reference>,
}

#[derive(Deserialize)]
struct Reference {
    name: String,
    subject: String,
    version: i64,
}

/// References deeper than this are refused as a registry fault (a cycle, or worse).
const MAX_REFERENCES: usize = 256;

pub(crate) struct Client {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
}

/// What a request told: its outcome label for the metrics, and how long it took.
pub(crate) type Observe<'a> = &'a dyn Fn(&'static str, Duration);

impl Client {
    /// Fails on certificate files that cannot be read or parsed (a configuration error).
    pub(crate) fn new(o: &RegistryOptions) -> Result<Self, String> {
        let mut tls = TlsConfig::builder().provider(TlsProvider::NativeTls);
        if let Some(path) = &o.ca_location {
            tls = tls.root_certs(RootCerts::new_with_certs(&certificates(path, "schema_registry.ca_location")?));
        }
        match (&o.certificate_location, &o.key_location) {
            (Some(cert), Some(key)) => {
                let chain = certificates(cert, "schema_registry.certificate_location")?;
                let key_pem = read(key, "schema_registry.key_location")?;
                let key = PrivateKey::from_pem(&key_pem).map_err(|e| format!("schema_registry.key_location {}: {e}", key.display()))?;
                tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
            }
            (None, None) => {}
            _ => return Err("schema_registry.certificate_location and key_location go together: set both or neither".into()),
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(o.timeout))
            .http_status_as_error(false)
            .tls_config(tls.build())
            .user_agent(concat!("tributary/", env!("CARGO_PKG_VERSION")))
            .build();
        let authorization = o.username.as_ref().map(|user| {
            let password = o.password.as_ref().map_or("", |p| p.expose_secret());
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
        });
        Ok(Self { agent: config.into(), base: o.url.trim_end_matches('/').to_string(), authorization })
    }

    /// The schema with this id, and the schemas it references.
    pub(crate) fn schema(&self, id: u32, observe: Observe<'_>) -> Result<RawSchema, FetchError> {
        let body = self.get(&format!("/schemas/ids/{id}"), observe).map_err(|e| match e {
            FetchError::NotFound(_) => FetchError::NotFound(format!("the schema registry has no schema with id {id}")),
            other => other,
        })?;
        let mut references = Vec::new();
        self.resolve(&body.references, &mut references, observe)?;
        Ok(RawSchema { schema_type: body.schema_type.unwrap_or_else(|| "AVRO".into()), schema: body.schema, references })
    }

    /// The subjects (and versions) a schema id is registered under.
    pub(crate) fn subjects(&self, id: u32, observe: Observe<'_>) -> Result<Vec<String>, FetchError> {
        #[derive(Deserialize)]
        struct Version {
            subject: String,
            version: i64,
        }
        let text = self.get_text(&format!("/schemas/ids/{id}/versions"), observe)?;
        let versions: Vec<Version> =
            serde_json::from_str(&text).map_err(|e| FetchError::Unavailable(format!("the answer is not a list of versions: {e}")))?;
        Ok(versions.into_iter().map(|v| format!("{} (version {})", v.subject, v.version)).collect())
    }

    /// Fetch `refs` depth first, so a reference's own references come before it.
    fn resolve(&self, refs: &[Reference], out: &mut Vec<(String, String)>, observe: Observe<'_>) -> Result<(), FetchError> {
        for r in refs {
            if out.iter().any(|(name, _)| *name == r.name) {
                continue;
            }
            if out.len() >= MAX_REFERENCES {
                return Err(FetchError::Unavailable(format!("more than {MAX_REFERENCES} schema references")));
            }
            let path = format!("/subjects/{}/versions/{}", encode(&r.subject), r.version);
            let body = self.get(&path, observe).map_err(|e| match e {
                FetchError::NotFound(_) => FetchError::NotFound(format!(
                    "the schema registry has no version {} of subject {:?} (reference {:?})",
                    r.version, r.subject, r.name
                )),
                other => other,
            })?;
            self.resolve(&body.references, out, observe)?;
            out.push((r.name.clone(), body.schema));
        }
        Ok(())
    }

    fn get(&self, path: &str, observe: Observe<'_>) -> Result<SchemaBody, FetchError> {
        let text = self.get_text(path, observe)?;
        serde_json::from_str::<SchemaBody>(&text)
            .map_err(|e| FetchError::Unavailable(format!("GET {path}: the answer is not a schema: {e}")))
    }

    fn get_text(&self, path: &str, observe: Observe<'_>) -> Result<String, FetchError> {
        let started = Instant::now();
        let mut request =
            self.agent.get(format!("{}{path}", self.base)).header("Accept", "application/vnd.schemaregistry.v1+json, application/json");
        if let Some(auth) = &self.authorization {
            request = request.header("Authorization", auth);
        }
        let result = match request.call() {
            Err(e) => Err(FetchError::Unavailable(format!("GET {path}: {e}"))),
            Ok(mut response) => {
                let status = response.status().as_u16();
                let body = response.body_mut().with_config().limit(MAX_BODY).read_to_string();
                match (status, body) {
                    (200, Ok(text)) => Ok(text),
                    (404, _) => Err(FetchError::NotFound(format!("GET {path}: 404"))),
                    (status, Ok(text)) => Err(FetchError::Unavailable(format!("GET {path}: HTTP {status}: {}", first_line(&text)))),
                    (status, Err(e)) => Err(FetchError::Unavailable(format!("GET {path}: HTTP {status}: {e}"))),
                }
            }
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(FetchError::NotFound(_)) => "not_found",
            Err(FetchError::Unavailable(_)) => "error",
        };
        observe(outcome, started.elapsed());
        result
    }
}

/// An answer larger than this is an error: one odd answer cannot take the process's memory.
const MAX_BODY: u64 = 16 * 1024 * 1024;

/// The PEM certificates of the file `key` names: at least one, every one readable.
fn certificates(path: &std::path::Path, key: &str) -> Result<Vec<Certificate<'static>>, String> {
    let pem = read(path, key)?;
    let certs = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key} {}: no PEM certificate in it", path.display()));
    }
    Ok(certs)
}

fn read(path: &std::path::Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").chars().take(200).collect()
}

/// A subject as one path segment: everything but unreserved characters percent-encoded.
fn encode(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(ca: Option<&std::path::Path>, cert: Option<&std::path::Path>, key: Option<&std::path::Path>) -> RegistryOptions {
        RegistryOptions {
            url: "https://registry:8081".into(),
            username: None,
            password: None,
            ca_location: ca.map(Into::into),
            certificate_location: cert.map(Into::into),
            key_location: key.map(Into::into),
            timeout: Duration::from_secs(1),
            cache_capacity: 1,
            retry: Default::default(),
        }
    }

    #[test]
    fn a_ca_or_client_certificate_file_without_a_certificate_fails_naming_its_key() {
        let empty = std::env::temp_dir().join(format!("tributary-no-pem-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = |o: RegistryOptions| Client::new(&o).err().unwrap_or_default();
        assert!(error(options(Some(&empty), None, None)).starts_with("schema_registry.ca_location"));
        // The chain is read before the key: its own file is named.
        assert!(error(options(None, Some(&empty), Some(&empty))).starts_with("schema_registry.certificate_location"));
        let missing = std::path::Path::new("/nonexistent/ca.pem");
        assert!(error(options(Some(missing), None, None)).contains("/nonexistent/ca.pem"));
        let _ = std::fs::remove_file(&empty);
    }
}
