//! `[events]` and `[[projection]]`: checked on their own here (no database), against their
//! tables at start (`Database::prepare_projections`). Every error names `projection.<name>.<key>`.

use tributary_actors::{describe, glob_matches, EventsSpec, Plan, Projection, ProjectionSpec, SpecError};

use super::error::ConfigError;

/// The configuration key a projection's error is about.
pub fn spec_error(e: SpecError) -> ConfigError {
    let name = if e.projection.is_empty() { "?".to_string() } else { e.projection.clone() };
    ConfigError::new(&format!("projection.{name}.{}", e.key), e.problem, e.fix)
}

/// The projections, checked without the database (each topic glob against `topics`), and `[events]`.
pub fn plan(events: &EventsSpec, specs: &[ProjectionSpec], topics: &[String]) -> Result<Plan, ConfigError> {
    let mut projections: Vec<Projection> = Vec::with_capacity(specs.len());
    for spec in specs {
        let p = Projection::from_spec(spec).map_err(spec_error)?;
        if projections.iter().any(|q| q.name == p.name) {
            return Err(ConfigError::new(
                &format!("projection.{}.name", p.name),
                "names two [[projection]] tables",
                "give every projection its own name (it labels logs, metrics and dead letters)",
            ));
        }
        if let Some(g) = spec.topics.iter().find(|g| !topics.iter().any(|t| subscribes(t, g))) {
            return Err(ConfigError::new(
                &format!("projection.{}.topics", p.name),
                format!("{g:?} matches none of kafka.topics {:?}, so the projection would never see a message", topics),
                "name a subscribed topic (or a glob matching one, or one a ^regex subscription takes), or subscribe to it in kafka.topics",
            ));
        }
        projections.push(p);
    }
    if !events.enabled && projections.is_empty() {
        return Err(ConfigError::new(
            "events.enabled",
            "is false and no [[projection]] is configured, so nothing would be written",
            "set [events] enabled = true, or add a [[projection]]",
        ));
    }
    Ok(Plan { projections, events: events.clone() })
}

/// Whether the `kafka.topics` entry `t` takes topics the glob `g` names: a name the glob
/// matches, or a regex subscription that matches the glob's shortest and a longer instance (`*`
/// as nothing and as `x`, `?` as `x`) — a glob cannot be proved inside a regex, so this catches
/// the misspelt prefix, not every mismatch.
fn subscribes(t: &str, g: &str) -> bool {
    match super::kafka::subscription(t) {
        Some(Ok(re)) => [g.replace('*', "").replace('?', "x"), g.replace(['*', '?'], "x")].iter().any(|s| re.is_match(s)),
        Some(Err(_)) => false,
        None => glob_matches(g, t),
    }
}

/// `[events]` and the projections for `check-config` and `/status`.
pub fn summary(plan: &Plan) -> serde_json::Value {
    serde_json::json!({
        "events": plan.events,
        "projections": plan.projections.iter().map(describe).collect::<Vec<_>>(),
    })
}
