//! The operator console: the page and its snapshot over HTTP, and a real headless Chromium
//! (tests/console/drive.mjs, playwright-core driving Debian's /usr/bin/chromium) going through
//! it against a live mock-cluster ingest. Screenshots land in target/console-screenshots/.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::*;
use tributary::app;

const TOKEN: &str = "console-admin-token-0123456789";
const PARTITIONS: i32 = 3;

#[test]
fn the_page_and_its_snapshot_are_served_strictly_and_a_browser_can_operate_it() {
    let Some(mut f) = Fixture::new(Kind::Sqlite, "console", PARTITIONS, 1) else { return };
    f.produce(2_000);
    let mut s = f.settings();
    s.http.admin_token = Some(TOKEN.to_string().into());
    // A template projection of change events on a topic of its own, for the tables it reaches.
    let changes = format!("{}-cdc", f.topic);
    f.kafka.create_topic(&changes, 1).unwrap();
    sql(&f.db.url, "CREATE TABLE widgets (id INTEGER PRIMARY KEY, name TEXT)");
    s.kafka.topics.push(changes.clone());
    s.projections = serde_json::from_value(serde_json::json!([
        {"name": "replica", "table": "${source.table}", "topics": [changes], "envelope": "debezium"}
    ]))
    .unwrap();
    let change = r#"{"before":null,"after":{"id":1,"name":"bolt"},"source":{"table":"widgets"},"op":"c","ts_ms":1}"#;
    f.kafka.send(&changes, Some(0), Some(br#"{"id":1}"#), Some(change.as_bytes()), &[]).unwrap();
    f.kafka.flush().unwrap();
    let running = app::spawn(s, tributary::telemetry::discard()).unwrap();

    let (status, page) = http("GET", running.port, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<script src=\"/console.js\" defer></script>") && !page.contains("<script>"), "no inline script");
    let answer = request("GET", running.port, "/", &[], b"");
    let (kind, csp) = (answer.header("content-type").unwrap_or_default(), answer.header("content-security-policy").unwrap_or_default());
    assert!(kind.starts_with("text/html"), "{:?}", answer.headers);
    assert!(csp.starts_with("default-src 'none'; script-src 'self'"), "{:?}", answer.headers);
    for asset in ["/console.js", "/console.css"] {
        assert_eq!(http("GET", running.port, asset).0, 200, "{asset}");
    }
    wait_until("the first snapshot", Duration::from_secs(30), || get_json(running.port, "/console/snapshot").0 == 200);
    let (_, snap) = get_json(running.port, "/console/snapshot");
    assert_eq!(snap["admin"], true);
    assert!(snap["status"]["actors"].is_object(), "{snap}");
    let weight: usize = ["/", "/console.js", "/console.css"].iter().map(|p| http("GET", running.port, p).1.len()).sum();
    eprintln!("console page weight: {weight} bytes (HTML, script and style, uncompressed)");
    assert!(weight < 64 * 1024, "the page stays small: {weight} bytes");

    // Events keep flowing while the browser looks.
    let stop = AtomicBool::new(false);
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../console-screenshots");
    let out = std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut i = 2_000;
            while !stop.load(Ordering::SeqCst) {
                produce_mixed(&f.kafka, &f.topic, PARTITIONS, i, 500);
                i += 500;
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        let out = std::process::Command::new("node")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/drive.mjs"))
            .env("CONSOLE_URL", format!("http://127.0.0.1:{}", running.port))
            .env("CONSOLE_TOKEN", TOKEN)
            .env("CONSOLE_PARTITIONS", (PARTITIONS + 1).to_string())
            .env("CONSOLE_REASON", "invalid_json")
            .env("CONSOLE_TABLE", "replica: widgets")
            .env("CONSOLE_SHOTS", &shots)
            .output()
            .expect("node runs (scripts/install-deps.sh installs Node's playwright-core and Chromium)");
        stop.store(true, Ordering::SeqCst);
        out
    });
    assert!(
        out.status.success(),
        "the browser's checks:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for shot in ["console-1280x800.png", "console-dead-letter.png", "console-phone-dark.png"] {
        assert!(shots.join(shot).metadata().is_ok_and(|m| m.len() > 1000), "{shot} saved");
    }
    running.stop().unwrap();
}
