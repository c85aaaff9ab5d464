//! Compiled schemas by id, for the process: ids are immutable in a registry, so an entry never
//! goes stale. Each id is fetched and compiled once, however many workers need it at once (the
//! others wait for the first); the number held is bounded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::parse::avro;
use crate::parse::protobuf::ProtoSchema;
use crate::records::Reason;
use crate::registry::{FetchError, RawSchema, Registry};

/// What an id stands for.
#[derive(Debug)]
pub(crate) enum Entry {
    Avro(avro::Compiled),
    Protobuf(ProtoSchema),
    /// JSON Schema: the payload is JSON (validation against the schema is not done).
    Json,
    /// The registry does not know the id (or a schema it references). Kept briefly only: the
    /// schema may be restored, and a redrive should then find it.
    NotFound {
        detail: String,
        at: Instant,
    },
    /// The registry's schema does not compile, or is of a type this build cannot decode: every
    /// record framed with the id is refused with `reason`.
    Unusable {
        reason: Reason,
        detail: String,
    },
}

/// How long an unknown id is remembered before the registry is asked again.
const NOT_FOUND_FOR: Duration = Duration::from_secs(5);

type Slot = Arc<OnceLock<Arc<Entry>>>;

/// The registry and the schemas compiled from it.
pub struct Schemas {
    registry: Arc<Registry>,
    slots: Mutex<HashMap<u32, Slot>>,
    capacity: usize,
}

impl std::fmt::Debug for Schemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schemas").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl Schemas {
    pub fn new(registry: Arc<Registry>) -> Self {
        let capacity = registry.opts.cache_capacity.max(1);
        Self { registry, slots: Mutex::default(), capacity }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The entry for `id`: cached, or fetched (waiting through a registry outage) and compiled.
    pub(crate) fn get(&self, id: u32) -> Arc<Entry> {
        loop {
            let slot = {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                match slots.get(&id) {
                    Some(slot) => slot.clone(),
                    None => {
                        if slots.len() >= self.capacity {
                            // Any other entry makes room: what is evicted is fetched again if needed.
                            if let Some(victim) = slots.keys().next().copied() {
                                slots.remove(&victim);
                            }
                        }
                        let slot = Slot::default();
                        slots.insert(id, slot.clone());
                        // Set as the map changes, not on each record's lookup.
                        self.registry.metrics.schemas_cached.set(slots.len() as i64);
                        slot
                    }
                }
            };
            let entry = slot.get_or_init(|| Arc::new(self.load(id))).clone();
            if let Entry::NotFound { at, .. } = &*entry {
                if at.elapsed() >= NOT_FOUND_FOR {
                    let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                    if slots.get(&id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                        slots.remove(&id);
                        self.registry.metrics.schemas_cached.set(slots.len() as i64);
                    }
                    continue;
                }
            }
            return entry;
        }
    }

    /// For showing a dead letter, without waiting: the entry held for `id`, else one attempt at
    /// the registry (compiled, not kept). A 404 held is asked again: the schema may have been
    /// restored since. `Err`: the registry is unavailable and nothing is held.
    pub(crate) fn peek(&self, id: u32) -> Result<Arc<Entry>, String> {
        let held = self.slots.lock().unwrap_or_else(|e| e.into_inner()).get(&id).and_then(|s| s.get().cloned());
        if let Some(entry) = held.as_ref().filter(|e| !matches!(***e, Entry::NotFound { .. })) {
            return Ok(entry.clone());
        }
        match self.registry.fetch_once(id) {
            Ok(raw) => Ok(Arc::new(compile(id, raw))),
            Err(FetchError::NotFound(detail)) => Ok(Arc::new(Entry::NotFound { detail, at: Instant::now() })),
            Err(FetchError::Unavailable(e)) => held.ok_or_else(|| format!("the schema registry is unavailable: {e}")),
        }
    }

    /// Count a datum that did not decode with its schema.
    pub(crate) fn failed(&self, format: &'static str) {
        self.registry.metrics.decode_failed(format);
    }

    fn load(&self, id: u32) -> Entry {
        match self.registry.fetch(id) {
            Err(detail) => Entry::NotFound { detail, at: Instant::now() },
            Ok(raw) => compile(id, raw),
        }
    }
}

#[cfg(test)]
impl Schemas {
    /// Schemas held without a round trip, before any record needs them; the registry behind
    /// them is never asked (its address takes no connection).
    pub(crate) fn preloaded(entries: Vec<(u32, RawSchema)>) -> Self {
        let opts = crate::registry::RegistryOptions {
            url: "http://127.0.0.1:9".into(),
            username: None,
            password: None,
            ca_location: None,
            certificate_location: None,
            key_location: None,
            timeout: Duration::from_millis(1),
            cache_capacity: 100,
            retry: Default::default(),
        };
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let registry = Registry::new(opts, crate::registry::RegistryMetrics::new(), log).expect("no TLS files");
        let schemas = Self::new(Arc::new(registry));
        for (id, raw) in entries {
            let slot: Slot = Arc::default();
            let _ = slot.set(Arc::new(compile(id, raw)));
            schemas.slots.lock().unwrap_or_else(|e| e.into_inner()).insert(id, slot);
        }
        schemas
    }
}

fn compile(id: u32, raw: RawSchema) -> Entry {
    match raw.schema_type.as_str() {
        "AVRO" => {
            let references: Vec<String> = raw.references.into_iter().map(|(_, text)| text).collect();
            avro::compile(&raw.schema, &references).map_or_else(
                |e| Entry::Unusable { reason: Reason::InvalidAvro, detail: format!("schema {id} is not a usable Avro schema: {e}") },
                Entry::Avro,
            )
        }
        "PROTOBUF" => ProtoSchema::compile(&raw.schema, &raw.references).map_or_else(
            |e| Entry::Unusable { reason: Reason::InvalidProtobuf, detail: format!("schema {id} is not a usable Protobuf schema: {e}") },
            Entry::Protobuf,
        ),
        "JSON" => Entry::Json,
        other => Entry::Unusable {
            reason: Reason::SchemaNotFound,
            detail: format!("schema {id} has schemaType {other:?}; tributary decodes AVRO, PROTOBUF and JSON"),
        },
    }
}
