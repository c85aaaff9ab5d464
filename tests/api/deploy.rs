//! The monitoring files in deploy/ speak of metrics the service really has: every `tributary_*`
//! name in the alert rules and the Grafana dashboard is a registered family, and a running
//! instance exposes them under those names (scripts/check-deploy checks the files' syntax and
//! runs the rules' unit tests with promtool).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::*;
use tributary::app;
use tributary::telemetry;

/// `tributary_*` names in `text`, without the suffixes a family's samples add.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tributary_") {
        let name: String = rest[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        rest = &rest[at + name.len()..];
        let base = ["_bucket", "_sum", "_count", "_total"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
        names.insert(base.to_string());
    }
    names
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_use_is_exposed() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
    let used: BTreeSet<String> = metric_names(&read("deploy/prometheus/alerts.yaml"))
        .into_iter()
        .chain(metric_names(&read("deploy/prometheus/alerts.test.yaml")))
        .chain(metric_names(&read("deploy/grafana/tributary.json")))
        .collect();
    assert!(used.len() >= 10, "{used:?}");

    // Families without a sample yet (a labelled counter nothing has counted) are not in
    // /metrics; the registry's own list is: every name must be registered, and what a running
    // instance exposes must be registered under the same names.
    let registered: BTreeSet<String> = tributary_actors::Metrics::new().0.families().into_iter().collect();
    assert!(registered.len() >= 20, "{registered:?}");
    let unregistered: Vec<&String> = used.difference(&registered).collect();
    assert!(unregistered.is_empty(), "named in deploy/ but not a metric of the service: {unregistered:?}");

    let mut f = Fixture::new(Kind::Sqlite, "deploy-metrics", 2, 1).unwrap();
    f.produce(300);
    let running = app::spawn(f.settings(), telemetry::discard()).unwrap();
    wait_until("everything committed", Duration::from_secs(60), || f.committed() == f.produced());
    let metrics = http("GET", running.port, "/metrics").1;
    let families: BTreeSet<String> =
        metrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")).flat_map(|l| metric_names(l.split(' ').next().unwrap_or(""))).collect();
    assert!(
        families.is_subset(&registered),
        "exposed but not in the registry's list: {:?}",
        families.difference(&registered).collect::<Vec<_>>()
    );
    let live = used.intersection(&families).count();
    assert!(live >= 10, "only {live} of {} names seen live:\n{metrics}", used.len());
    running.stop().unwrap();
}
