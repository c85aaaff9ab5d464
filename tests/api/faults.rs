//! Faults the service must ride out without loss, duplicates or restarts: a database outage
//! (connections cut and refused through a proxy) and broker faults from the mock cluster (slow
//! round trips, fetch errors, a broker down).

use std::time::Duration;

use crate::common::*;
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

/// The service's tables, made before it starts, so a test can add triggers and constraints.
fn migrate(url: &str) {
    let db = tributary_actors::Database::open(&tributary_actors::DatabaseOptions {
        url: url.to_string(),
        pool_size: 1,
        connect_timeout: Duration::from_secs(10),
        checkpoint_in_background: false,
    })
    .unwrap();
    db.migrate().unwrap();
}

#[test]
fn database_outage_opens_the_breaker_and_ingestion_resumes_by_itself() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "outage", 4, 1) else { return };
    let proxy = Proxy::start(&pg_host_port(&f.db.url));
    f.produce(10_000);

    let mut s = f.settings();
    s.database.url = proxy.url_for(&f.db.url).into();
    s.database.batch_size = 200;
    s.database.connect_timeout = Duration::from_millis(1000);
    s.health.stall_after = Duration::from_secs(1);
    // The outage outlasts this: a stalled database must never restart the reader.
    s.health.restart_reader_after = Duration::from_secs(3);
    let log = CapturedLog::default();
    let (logger, guard) = log.logger("info");
    let running = app::spawn(s, logger).unwrap();
    let port = running.port;
    stage!("the first batches commit", Duration::from_secs(30), || f.committed() > 0);

    proxy.down();
    f.produce(10_000);
    stage!("/ready 503 with the breaker open", Duration::from_secs(60), || {
        let (status, body) = get_json(port, "/ready");
        status == 503 && body["reasons"].to_string().contains("breaker_open")
    });
    // libpq's messages run over several lines; every reason is one.
    for reason in get_json(port, "/ready").1["reasons"].as_array().unwrap() {
        assert!(!reason.as_str().unwrap().contains(['\n', '\t']), "{reason}");
    }
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
    drop(guard);
    // The operator reads that the database went and came back: once each, not per retry.
    let lost = log.lines("database unreachable");
    let back = log.lines("database reachable again");
    assert!(!lost.is_empty() && lost.iter().all(|l| l["level"] == "WARN"), "{}", log.text());
    assert!(!back.is_empty() && back.iter().all(|l| l["level"] == "INFO"), "{}", log.text());
    assert!(lost.len() <= 3 && lost.len().abs_diff(back.len()) <= 1, "one line per change: {lost:?} {back:?}");
    for line in log.text().lines() {
        let line: serde_json::Value = serde_json::from_str(line).unwrap();
        let fields = line.as_object().unwrap().values().filter_map(|v| v.as_str());
        assert!(fields.clone().all(|v| !v.contains('\n')), "a log entry over several lines: {line}");
    }
}

#[test]
fn broker_down_errors_slow_round_trips_and_leader_changes_lose_and_duplicate_nothing() {
    let mut f = Fixture::new(Kind::Sqlite, "broker", 4, 3).unwrap();
    f.produce(5_000);
    let mut s = f.settings();
    s.database.batch_size = 200;
    // librdkafka 2.12 can leave a partition fetching from a broker that is no longer its leader
    // after leadership moves (about 1 run in 100; no error reaches the application); the reader
    // restart on a stall recovers it well within this test's waits.
    s.health.restart_reader_after = Duration::from_secs(15);
    let running = app::spawn(s, telemetry::discard()).unwrap();
    stage!("first batches commit", Duration::from_secs(30), || f.committed() > 0);
    stage!("the first messages are in", Duration::from_secs(60), || f.committed() == f.produced());

    // Every broker becomes slow, then fetches fail with retriable errors; messages produced
    // now can only arrive through the faults; then a broker dies.
    let cluster = f.kafka.cluster();
    for b in 1..=3 {
        cluster.broker_round_trip_time(b, Duration::from_millis(300)).unwrap();
    }
    cluster.request_errors(
        rdkafka::types::RDKafkaApiKey::Fetch,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5],
    );
    let before = f.committed();
    drop(cluster);
    f.produce(5_000);
    let cluster = f.kafka.cluster();
    cluster.broker_down(2).unwrap();
    stage!("progress despite the faults", Duration::from_secs(60), || f.committed() > before);
    cluster.broker_up(2).unwrap();
    for b in 1..=3 {
        cluster.broker_round_trip_time(b, Duration::ZERO).unwrap();
    }
    drop(cluster);
    f.produce(5_000);

    // Leadership moves mid-stream: every partition to broker 3, then to broker 1.
    for leader in [3, 1] {
        let cluster = f.kafka.cluster();
        for p in 0..f.partitions {
            cluster.partition_leader(&f.topic, p, Some(leader)).unwrap();
        }
        drop(cluster);
        let before = f.committed();
        f.produce(2_000);
        stage!("progress after the leaders moved", Duration::from_secs(60), || f.committed() > before);
    }
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    running.stop().unwrap();
}

/// A consumer that stops getting a partition's records while the database answers (here every
/// Fetch fails; librdkafka can also leave a partition on a broker that is no longer its leader
/// after leadership moves) is restarted once the partition has had lag and no commit for
/// `health.restart_reader_after_secs`; the fresh consumer resumes from the database's progress
/// and nothing is lost or duplicated. The restart is a recovery, not a failure: `/health` stays
/// 200.
#[test]
fn a_consumer_stuck_on_a_partition_is_restarted_and_nothing_is_lost() {
    let mut f = Fixture::new(Kind::Sqlite, "stuck", 2, 1).unwrap();
    f.produce(1_000);
    let mut s = f.settings();
    s.health.stall_after = Duration::from_secs(1);
    s.health.restart_reader_after = Duration::from_secs(3);
    let running = app::spawn(s, telemetry::discard()).unwrap();
    let port = running.port;
    stage!("the first messages are in", Duration::from_secs(60), || f.committed() == f.produced());
    // Caught up (lag 0) is no stall, however long it lasts: wait past the threshold.
    let caught_up = std::time::Instant::now();
    stage!("past the restart threshold", Duration::from_secs(30), || caught_up.elapsed() >= Duration::from_secs(4));
    assert_eq!(metric_sum(&http("GET", port, "/metrics").1, "tributary_stall_restarts_total"), 0.0, "caught up is not stalled");

    f.kafka.cluster().request_errors(
        rdkafka::types::RDKafkaApiKey::Fetch,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 5_000],
    );
    f.produce(1_000);
    stage!("/ready reports the stall", Duration::from_secs(30), || {
        get_json(port, "/ready").1["reasons"].to_string().contains("stalled")
    });
    stage!("the stall restarts the reader", Duration::from_secs(60), || {
        metric_sum(&http("GET", port, "/metrics").1, "tributary_stall_restarts_total") >= 1.0
    });
    assert_eq!(get_json(port, "/health").0, 200, "a restart on a stall is not a failure");
    // The counter moves when the health reporter asks; the reader's restart count when the
    // reader answers the request (a message back), a moment later.
    stage!("/actors counts the reader's restart", Duration::from_secs(10), || {
        get_json(port, "/actors").1["kafka_reader"]["restarts"].as_u64() >= Some(1)
    });

    f.kafka.cluster().clear_request_errors(rdkafka::types::RDKafkaApiKey::Fetch);
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    stage!("/ready 200 again", Duration::from_secs(30), || get_json(port, "/ready").0 == 200);
    running.stop().unwrap();
}

/// A reader the consumer group never assigns (here every JoinGroup fails) owns no partition, so
/// there is no lag to see: `/ready` says `not_assigned`, then also `stalled` once that has lasted
/// `health.stall_after_secs`, and after `health.restart_reader_after_secs` the reader is restarted
/// like a stuck one. Once the group answers again, ingestion resumes exactly once.
#[test]
fn a_reader_the_group_never_assigns_is_reported_stalled_and_restarted() {
    let mut f = Fixture::new(Kind::Sqlite, "unassigned", 2, 1).unwrap();
    f.produce(1_000);
    let mut s = f.settings();
    s.health.stall_after = Duration::from_secs(1);
    s.health.restart_reader_after = Duration::from_secs(3);
    f.kafka.cluster().request_errors(
        rdkafka::types::RDKafkaApiKey::JoinGroup,
        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS; 100_000],
    );
    let running = app::spawn(s, telemetry::discard()).unwrap();
    let port = running.port;
    stage!("/ready: not assigned, and stalled", Duration::from_secs(30), || {
        let reasons = get_json(port, "/ready").1["reasons"].to_string();
        reasons.contains("not_assigned") && reasons.contains("stalled")
    });
    stage!("the watchdog restarts the reader", Duration::from_secs(60), || {
        metric_sum(&http("GET", port, "/metrics").1, "tributary_stall_restarts_total") >= 1.0
    });
    assert_eq!(get_json(port, "/health").0, 200, "a restart on a stall is not a failure");
    assert_eq!(f.committed(), 0, "never assigned, nothing read");

    f.kafka.cluster().clear_request_errors(rdkafka::types::RDKafkaApiKey::JoinGroup);
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    stage!("/ready 200 again", Duration::from_secs(30), || get_json(port, "/ready").0 == 200 && owned_partitions(port) == 2);
    running.stop().unwrap();
}

/// PostgreSQL refuses values the parser cannot know about: a number beyond `numeric`'s range in
/// `data` (SQLSTATE 22003) and rows breaking a CHECK constraint an operator added (23514). Each is
/// bisected out of its transaction as a `database_rejected` dead letter with its SQLSTATE and its
/// payload kept whole; every other row, the malformed corpus and the progress commit as usual.
#[test]
fn rows_the_database_refuses_become_dead_letters_and_the_rest_commit() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "refused", 4, 1) else { return };
    migrate(&f.db.url);
    sql(&f.db.url, "ALTER TABLE events ADD CONSTRAINT no_poison_subject CHECK (subject IS DISTINCT FROM 'poison')");

    let overflow = br#"{"specversion":"1.0","id":"big","source":"/s","type":"t","data":{"n":1e999999}}"#;
    let check = br#"{"specversion":"1.0","id":"chk","source":"/s","type":"t","subject":"poison","data":{}}"#;
    f.produce(3_000);
    for i in 0..40 {
        let payload: &[u8] = if i % 2 == 0 { overflow } else { check };
        f.produce_dead(i % 4, payload, &[(b"trace", b"t-1")], "database_rejected");
        f.produce(50);
    }
    f.kafka.flush().unwrap();
    f.produce(3_000);

    let running = app::spawn(f.settings(), telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    let by_state = query_pairs(
        &f.db.url,
        "SELECT sqlstate AS a, count(*)::text AS b FROM dead_letters WHERE reason = 'database_rejected' GROUP BY sqlstate ORDER BY 1",
    );
    assert_eq!(by_state, vec![("22003".to_string(), "20".to_string()), ("23514".to_string(), "20".to_string())]);
    let kept = query_pairs(
        &f.db.url,
        "SELECT convert_from(payload, 'UTF8') AS a, headers::text AS b FROM dead_letters WHERE sqlstate = '22003' LIMIT 1",
    );
    assert_eq!(kept[0].0.as_bytes(), overflow, "the payload is kept whole");
    assert!(kept[0].1.contains("t-1"), "headers are kept: {}", kept[0].1);
    let metrics = http("GET", running.port, "/metrics").1;
    assert_eq!(metric_sum(&metrics, "tributary_dead_letters_total{reason=\"database_rejected\"}"), 40.0);
    let actors = get_json(running.port, "/actors").1;
    assert_eq!(actors["db_writer"]["restarts"], 0, "a refused row is not a failure: {actors}");
    running.stop().unwrap();
}

#[test]
fn a_stalled_database_makes_the_reader_hold_then_pause_and_nothing_is_lost() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection};
    let Some(mut f) = Fixture::new(Kind::Postgres, "stall", 4, 1) else { return };
    f.produce(4_000);
    let mut s = f.settings();
    // Small budgets, so a stalled database fills them with a few thousand messages.
    s.database.batch_size = 500;
    s.database.batch_max_bytes = 32 * 1024;
    s.database.max_in_flight_bytes = 64 * 1024;
    s.health.stall_after = Duration::from_secs(60);
    // The lock below outlasts this: a hung database must never restart the reader.
    s.health.restart_reader_after = Duration::from_secs(2);
    let running = app::spawn(s, telemetry::discard()).unwrap();
    let port = running.port;
    stage!("the first batches commit", Duration::from_secs(30), || f.committed() > 0);

    // An operator's long lock: writers block (no error, so no breaker), the reader's budgets
    // fill, it holds, and after the hold limit pauses the partitions it has messages of.
    let mut locker = PgConnection::establish(&f.db.url).unwrap();
    locker.batch_execute("BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE").unwrap();
    let locked = std::time::Instant::now();
    let before = f.committed();
    f.produce(20_000);
    stage!("the reader pauses behind the stalled database", Duration::from_secs(60), || {
        metric_sum(&http("GET", port, "/metrics").1, "tributary_backpressure_pauses_total") >= 1.0
    });
    assert_eq!(get_json(port, "/health").0, 200, "the poll loop still answers while holding");
    assert_eq!(f.committed(), before, "the lock held every commit back");
    stage!("the lock outlasts the restart threshold", Duration::from_secs(30), || locked.elapsed() >= Duration::from_secs(4));
    assert_eq!(metric_sum(&http("GET", port, "/metrics").1, "tributary_stall_restarts_total"), 0.0, "a hung database is no consumer stall");

    locker.batch_execute("COMMIT").unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    let actors = get_json(port, "/actors").1;
    for name in ["kafka_reader", "parser", "db_writer"] {
        assert_eq!(actors[name]["restarts"], 0, "no restart needed: {actors}");
    }
    running.stop().unwrap();
}

/// A refusal is told apart by its code, never by its words: a user's trigger raises SQLSTATE
/// 22023 with a message that reads like an outage (SQLite: `RAISE(ABORT)`, a constraint result
/// code), and a CHECK constraint is named `connection_ssl_timeout`. Each refused row becomes one
/// dead letter with the real SQLSTATE; everything else commits, with no retry and no breaker.
fn refusals_that_read_like_outages_are_dead_letters_by_their_code(kind: Kind) {
    let Some(mut f) = Fixture::new(kind, "words", 4, 1) else { return };
    migrate(&f.db.url);
    let (trigger_state, checks) = match kind {
        Kind::Postgres => {
            sql(
                &f.db.url,
                "CREATE FUNCTION refuse_flagged() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN
                   IF NEW.subject = 'flagged' THEN
                     RAISE EXCEPTION 'connection timeout while checking %', NEW.event_id USING ERRCODE = '22023';
                   END IF;
                   RETURN NEW;
                 END $$;
                 CREATE TRIGGER refuse_flagged BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_flagged();
                 ALTER TABLE events ADD CONSTRAINT connection_ssl_timeout CHECK (subject IS DISTINCT FROM 'poison');",
            );
            ("22023", 10)
        }
        Kind::Sqlite => {
            sql(
                &f.db.url,
                "CREATE TRIGGER refuse_flagged BEFORE INSERT ON events WHEN NEW.subject = 'flagged'
                 BEGIN SELECT RAISE(ABORT, 'database is locked: connection timeout while checking'); END;",
            );
            ("23000", 0)
        }
    };
    for i in 0..19 {
        let flagged =
            format!(r#"{{"specversion":"1.0","id":"order-{}","source":"/s","type":"t","subject":"flagged","data":{{}}}}"#, 1000 + i);
        f.produce_dead(i % 4, flagged.as_bytes(), &[], "database_rejected");
        if i < checks {
            let poison = br#"{"specversion":"1.0","id":"chk","source":"/s","type":"t","subject":"poison","data":{}}"#;
            f.produce_dead(i % 4, poison, &[], "database_rejected");
        }
        f.kafka.flush().unwrap();
        f.produce(1_000);
    }
    f.produce(20_000 - f.produced() as usize);
    assert_eq!(f.produced(), 20_000);

    let running = app::spawn(f.settings(), telemetry::discard()).unwrap();
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    let by_state = query_pairs(
        &f.db.url,
        "SELECT sqlstate AS a, CAST(count(*) AS TEXT) AS b FROM dead_letters WHERE reason = 'database_rejected' GROUP BY sqlstate ORDER BY 1",
    );
    let mut want = vec![(trigger_state.to_string(), "19".to_string())];
    if checks > 0 {
        want.push(("23514".to_string(), checks.to_string()));
    }
    want.sort();
    assert_eq!(by_state, want, "one dead letter per refused row, with its SQLSTATE");
    let details = query_pairs(
        &f.db.url,
        &format!("SELECT detail AS a, '' AS b FROM dead_letters WHERE sqlstate = '{trigger_state}' ORDER BY \"offset\""),
    );
    assert!(
        details.iter().all(|(d, _)| d.contains("connection timeout while checking")),
        "the database's words kept as detail: {details:?}"
    );
    let metrics = http("GET", running.port, "/metrics").1;
    assert_eq!(metric_sum(&metrics, "tributary_db_retries_total"), 0.0, "a refusal is not an outage");
    assert_eq!(metric_sum(&metrics, "tributary_breaker_open"), 0.0);
    running.stop().unwrap();
}

on_both_backends!(refusals_that_read_like_outages_are_dead_letters_by_their_code);

/// PostgreSQL errors by SQLSTATE, whatever their words: a deadlock or a shutdown is retried, a
/// data exception refused, a privilege or schema error fatal with the code in its message.
#[test]
fn postgres_errors_are_classified_by_sqlstate_whatever_they_say() {
    use diesel::connection::SimpleConnection;
    use diesel::{Connection, PgConnection};
    use tributary_actors::StoreError;
    let Some(db) = test_db() else { return };
    let mut c = PgConnection::establish(&db.url).unwrap();
    let mut raise = |code: &str, words: &str| {
        let e = c.batch_execute(&format!("DO $$ BEGIN RAISE EXCEPTION '{words}' USING ERRCODE = '{code}'; END $$")).unwrap_err();
        StoreError::from(e)
    };
    for code in ["40P01", "57P01", "53100", "08006", "XX000"] {
        let e = raise(code, "value out of range: violates check constraint");
        assert!(e.is_transient(), "{code}: {e:?}");
    }
    for code in ["22023", "22003", "23514", "23505"] {
        match raise(code, "connection timeout; server closed the connection; ssl i/o error") {
            StoreError::Rejected { sqlstate, message } => {
                assert_eq!(sqlstate, code);
                assert!(message.contains("server closed the connection"), "{message}");
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    for code in ["42501", "28P01", "3D000"] {
        let e = raise(code, "connection timeout");
        assert!(matches!(e, StoreError::Fatal(_)), "{code}: {e:?}");
        assert!(e.to_string().contains(&format!("SQLSTATE {code}")), "the code is in the message: {e}");
    }
    // Outside the outage classes: bisected, and a message's only if the others pass.
    for code in ["42P01", "P0001", "428C9"] {
        let e = raise(code, "connection timeout");
        assert!(matches!(&e, StoreError::Rejected { sqlstate, .. } if sqlstate == code), "{code}: {e:?}");
    }
    let e = StoreError::from(c.batch_execute("SELECT 1/0").unwrap_err());
    assert!(matches!(&e, StoreError::Rejected { sqlstate, .. } if sqlstate == "22012"), "{e:?}");
}

/// A refusal outside the data classes — a trigger's `RAISE EXCEPTION`, SQLSTATE P0001 — is
/// bisected like one: the message refused while the others commit is a dead letter with its
/// SQLSTATE. A refusal no message causes — a column renamed away, so that the write is refused
/// without any row (42703) — dead-letters nothing: the breaker opens with the SQLSTATE in
/// /ready, and ingestion resumes, exactly once, when the column is back.
#[test]
fn a_trigger_refusing_a_row_makes_a_dead_letter_and_a_table_refusing_writes_opens_the_breaker() {
    let Some(mut f) = Fixture::new(Kind::Postgres, "raise", 2, 1) else { return };
    migrate(&f.db.url);
    sql(
        &f.db.url,
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.subject = 'flagged' THEN RAISE EXCEPTION 'refused %', NEW.event_id; END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse();",
    );
    for i in 0..6 {
        let flagged = format!(r#"{{"specversion":"1.0","id":"f-{i}","source":"/s","type":"t","subject":"flagged","data":{{}}}}"#);
        f.produce_dead(i % 2, flagged.as_bytes(), &[], "database_rejected");
        f.kafka.flush().unwrap();
        f.produce(300);
    }
    let running = app::spawn(f.settings(), telemetry::discard()).unwrap();
    let port = running.port;
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    let states = query_pairs(
        &f.db.url,
        "SELECT sqlstate AS a, CAST(count(*) AS TEXT) AS b FROM dead_letters WHERE sqlstate IS NOT NULL GROUP BY sqlstate",
    );
    assert_eq!(states, vec![("P0001".to_string(), "6".to_string())], "the flagged rows, by their SQLSTATE");
    let url = f.db.url.clone();
    let dead_count = || query_pairs(&url, "SELECT CAST(count(*) AS TEXT) AS a, '' AS b FROM dead_letters")[0].0.clone();
    let dead_before = dead_count();

    sql(&f.db.url, "ALTER TABLE events RENAME COLUMN subject TO subject_gone");
    let before = f.committed();
    f.produce(2_000);
    stage!("/ready 503, the breaker open naming 42703", Duration::from_secs(60), || {
        let (status, body) = get_json(port, "/ready");
        status == 503 && body["reasons"].to_string().contains("breaker_open") && body["reasons"].to_string().contains("42703")
    });
    stage!("the writer retries", Duration::from_secs(60), || {
        metric_sum(&http("GET", port, "/metrics").1, "tributary_db_retries_total") >= 4.0
    });
    assert_eq!(f.committed(), before, "nothing commits while the table refuses the write");
    assert_eq!(dead_count(), dead_before, "and nothing is dead lettered");

    sql(&f.db.url, "ALTER TABLE events RENAME COLUMN subject_gone TO subject");
    f.assert_all_ingested_exactly_once(Duration::from_secs(120));
    stage!("/ready 200 again", Duration::from_secs(30), || get_json(port, "/ready").0 == 200);
    running.stop().unwrap();
}
