//! Faults the service must ride out without loss, duplicates or restarts: a database outage
//! (connections cut and refused through a proxy) and broker faults from the mock cluster (slow
//! round trips, fetch errors, a broker down).

#[macro_use]
mod common;

use std::time::Duration;

use common::*;
use tributary::app;
use tributary::http::metric_sum;
use tributary::telemetry;

macro_rules! stage {
    ($what:expr, $t:expr, $cond:expr) => {{
        let t0 = std::time::Instant::now();
        wait_until($what, $t, $cond);
        eprintln!("{:>6.2}s  {}", t0.elapsed().as_secs_f64(), $what);
    }};
}

#[test]
fn database_outage_opens_the_breaker_and_ingestion_resumes_by_itself() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "outage", 4, 1) else { return };
    let proxy = Proxy::start(&pg_host_port(&f.db.url));
    f.produce(10_000);

    let mut s = f.settings();
    s.database.url = proxy.url_for(&f.db.url).into();
    s.database.batch_size = 200;
    s.database.connect_timeout_ms = 1000;
    s.health.stall_after_secs = 1;
    let running = app::spawn(s, telemetry::discard()).unwrap();
    let port = running.port;
    stage!("the first batches commit", Duration::from_secs(30), || f.committed() > 0);

    proxy.down();
    f.produce(10_000);
    stage!("/ready 503 with the breaker open", Duration::from_secs(60), || {
        let (status, body) = get_json(port, "/ready");
        status == 503 && body["reasons"].to_string().contains("breaker_open")
    });
    assert_eq!(metric_sum(&http("GET", port, "/metrics").1, "tributary_breaker_open"), 1.0);
    assert_eq!(get_json(port, "/health").0, 200, "an outage is not a crash");
    // The outage lasts several seconds while the writers keep retrying.
    stage!("the writer retries through the outage", Duration::from_secs(60), || {
        metric_sum(&http("GET", port, "/metrics").1, "tributary_db_retries_total") >= 8.0
    });
    stage!("/ready also reports the stall", Duration::from_secs(30), || {
        get_json(port, "/ready").1["reasons"].to_string().contains("stalled")
    });
    let during = f.committed();
    assert!(during < 20_000, "the outage held ingestion back ({during})");

    proxy.up();
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    stage!("/ready 200 again", Duration::from_secs(30), || get_json(port, "/ready").0 == 200);
    assert_eq!(metric_sum(&http("GET", port, "/metrics").1, "tributary_breaker_open"), 0.0);
    let actors = get_json(port, "/actors").1;
    for name in ["kafka_reader", "parser", "db_writer", "health_reporter"] {
        assert_eq!(actors[name]["restarts"], 0, "no restart needed: {actors}");
    }
    running.stop().unwrap();
}

#[test]
fn broker_down_errors_and_slow_round_trips_lose_and_duplicate_nothing() {
    let mut f = Fixture::new(Kind::Sqlite, "broker", 4, 3).unwrap();
    f.produce(5_000);
    let mut s = f.settings();
    s.database.batch_size = 200;
    let running = app::spawn(s, telemetry::discard()).unwrap();
    stage!("first batches commit", Duration::from_secs(30), || f.committed() > 0);
    f.produce(5_000);

    // Every broker becomes slow, then fetches fail with retriable errors, then a broker dies.
    let cluster = f.kafka.cluster();
    for b in 1..=3 {
        cluster.broker_round_trip_time(b, Duration::from_millis(300)).unwrap();
    }
    cluster.request_errors(
        rdkafka::types::RDKafkaApiKey::Fetch,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5],
    );
    cluster.broker_down(2).unwrap();
    let before = f.committed();
    stage!("progress despite the faults", Duration::from_secs(60), || f.committed() > before);
    cluster.broker_up(2).unwrap();
    for b in 1..=3 {
        cluster.broker_round_trip_time(b, Duration::ZERO).unwrap();
    }
    drop(cluster);
    f.produce(5_000);
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    running.stop().unwrap();
}
