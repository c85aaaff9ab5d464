use std::time::Duration;

use diesel::r2d2::CustomizeConnection;

use super::kind::*;
use super::wal::*;
use super::*;
use crate::parse::{parse_message, ParseOptions, Parsed};
use crate::records::{EventRow, RawMessage};
use crate::storage::{Database, DatabaseOptions};

#[test]
fn stamps_are_written_as_chrono_writes_them() {
    use chrono::{NaiveDate, TimeZone};
    use rand::{Rng, SeedableRng};
    let chrono_way = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
    let (first, last) = (-62_167_219_200_000_000i64, 253_402_300_799_999_999i64); // 0000-01-01 .. 9999-12-31
    let mut rng = rand::rngs::StdRng::seed_from_u64(12);
    let mut cases: Vec<DateTime<Utc>> =
        (0..200_000).map(|_| DateTime::from_timestamp_micros(rng.random_range(first..=last)).unwrap()).collect();
    // Nanoseconds below the microsecond are cut, not rounded.
    cases.extend(
        (0..1000).map(|_| DateTime::from_timestamp(rng.random_range(0..4_000_000_000), rng.random_range(0..1_000_000_000)).unwrap()),
    );
    for micros in [first, first - 1, last, last + 1, 0, -1, 1, 1_700_000_000_123_456] {
        cases.push(DateTime::from_timestamp_micros(micros).unwrap());
    }
    // A leap second, and years the fixed layout cannot hold: chrono's way.
    let leap = NaiveDate::from_ymd_opt(2016, 12, 31).unwrap().and_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap();
    cases.push(Utc.from_utc_datetime(&leap));
    cases.push(Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap());
    cases.push(Utc.with_ymd_and_hms(12345, 6, 1, 0, 0, 0).unwrap());
    for t in cases {
        assert_eq!(Stamp::new(t).as_str(), chrono_way(t), "{t:?}");
    }
    assert!(matches!(Stamp::new(Utc.from_utc_datetime(&leap)), Stamp::Other(_)));
    assert!(matches!(Stamp::new(DateTime::from_timestamp_micros(last).unwrap()), Stamp::Fixed(_)));
}

/// A Kafka header: name and value.
type Header<'a> = (&'a str, Option<&'a [u8]>);

/// Rows of every shape the parser makes: structured and binary CloudEvents, plain JSON,
/// with and without key, time, subject and Kafka timestamp.
fn rows(n: usize) -> Vec<EventRow> {
    (0..n)
        .map(|i| {
            let key = format!("k{i}");
            let structured = format!(
                r#"{{"specversion":"1.0","id":"e{i}","source":"/s","type":"t.{i}","subject":"s{i}","time":"2026-01-02T03:04:{:02}.123456Z","datacontenttype":"application/json","data":{{"n":{i}}}}}"#,
                i % 60
            );
            let plain = format!(r#"{{"n":{i},"tags":["a\"b"]}}"#);
            let id = format!("b{i}");
            let (payload, headers): (&str, Vec<Header<'_>>) = match i % 3 {
                0 => (&structured, vec![("content-type", Some(b"application/cloudevents+json".as_slice()))]),
                1 => (&plain, vec![("ce_specversion", Some(b"1.0".as_slice())), ("ce_id", Some(id.as_bytes())), ("ce_source", Some(b"/u".as_slice())), ("ce_type", Some(b"u".as_slice())), ("x", None)]),
                _ => (&plain, vec![]),
            };
            let key = (i % 4 != 0).then_some(key.as_bytes());
            let timestamp = (i % 5 != 0).then_some(1_767_000_000_000 + i as i64);
            let msg = RawMessage::new(i as i64, timestamp, key, Some(payload.as_bytes()), headers.into_iter().map(|(k, v)| (k.as_bytes(), v)));
            match parse_message(msg, &ParseOptions::default()) {
                Parsed::Row(row) => row,
                Parsed::Dead(d) => panic!("row {i} is a dead letter: {}", d.detail),
            }
        })
        .collect()
}

/// A migrated database file and a connection to it with the service's pragmas, checkpointing
/// by itself at `backstop` WAL pages.
fn writer_connection(name: &str, backstop: u32) -> (std::path::PathBuf, SqliteConnection) {
    let path = std::env::temp_dir().join(format!("tributary-{name}-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let url = format!("sqlite://{}", path.display());
    let db =
        Database::open(&DatabaseOptions { url, pool_size: 1, connect_timeout: Duration::from_secs(5), checkpoint_in_background: false })
            .unwrap();
    db.migrate().unwrap();
    drop(db); // the last connection closing folds the WAL in
    let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    Pragmas { busy_timeout_ms: 5000, wal_autocheckpoint: backstop }.on_acquire(&mut conn).unwrap();
    (path, conn)
}

fn file_len(path: &std::path::Path, suffix: &str) -> u64 {
    std::fs::metadata(format!("{}{suffix}", path.display())).map_or(0, |m| m.len())
}

fn start_checkpointer(path: &std::path::Path, pass_bytes: usize, rewind_bytes: usize) -> Checkpointer {
    Checkpointer::start(path.to_str().unwrap(), 5000, pass_bytes, rewind_bytes, slog::Logger::root(slog::Discard, slog::o!())).unwrap()
}

/// `rows` moved `by` offsets on: the next batch of the same partition.
fn shifted(rows: &[EventRow], by: i64) -> Vec<EventRow> {
    rows.iter()
        .cloned()
        .map(|mut r| {
            r.offset += by;
            r
        })
        .collect()
}

fn commit_rows(conn: &mut SqliteConnection, key: &PartitionKey, rows: &[EventRow]) {
    let refs: Vec<RowRef<'_>> = rows.iter().map(|row| RowRef { partition: key, row }).collect();
    conn.immediate_transaction::<_, StoreError, _>(|c| insert_events(c, &refs)).unwrap();
}

#[test]
fn the_checkpointer_copies_the_wal_back_while_the_writer_does_not() {
    // The writer would checkpoint only past 100,000 pages: whatever reaches the database
    // file is the checkpointer's work.
    let (path, mut conn) = writer_connection("checkpointer", 100_000);
    let before = file_len(&path, "");
    // Woken after the second and the fourth commit.
    let checkpointer = start_checkpointer(&path, 2 << 20, usize::MAX);
    let key = PartitionKey { topic: "t".into(), partition: 0 };
    let rows = rows(1000);
    for offset in 0..4 {
        commit_rows(&mut conn, &key, &shifted(&rows, offset * 1000));
        checkpointer.after_commit(1 << 20, || unreachable!("never rewinds")).unwrap();
    }
    let wal = file_len(&path, "-wal");
    assert!(wal > 256 * 1024, "the rows went to the WAL: {wal} bytes");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while file_len(&path, "") < before + wal / 2 {
        assert!(std::time::Instant::now() < deadline, "the database file stayed at {} bytes (WAL {wal})", file_len(&path, ""));
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(checkpointer); // joins the thread
    drop(conn);
}

#[test]
fn the_checkpointer_is_woken_once_per_pass_bytes_before_each_rewind_and_counts_from_a_rewind() {
    let (path, _conn) = writer_connection("wakes", 100_000);
    let checkpointer = start_checkpointer(&path, 400, 1000);
    let mut rewinds = 0;
    let mut commit = |rewind_ok: bool| {
        checkpointer.after_commit(100, || {
            rewinds += 1;
            Ok(if rewind_ok { Rewind::Done } else { Rewind::InUse })
        })
    };
    for _ in 0..9 {
        commit(true).unwrap();
    }
    // 400 and 800 bytes wake it, and 900, since the next commit brings the rewind.
    assert_eq!(checkpointer.wakes.get(), 3);
    commit(true).unwrap();
    assert_eq!(checkpointer.wakes.get(), 3, "the rewind copies everything back itself");
    for _ in 0..3 {
        commit(true).unwrap();
    }
    assert_eq!(checkpointer.wakes.get(), 3, "300 bytes since the rewind");
    commit(true).unwrap();
    assert_eq!(checkpointer.wakes.get(), 4);
    for _ in 0..5 {
        commit(true).unwrap();
    }
    assert_eq!(checkpointer.wakes.get(), 6, "800 and 900 bytes since the rewind");
    // A rewind that gives up copied nothing: its commit counts towards the next pass.
    assert_eq!(commit(false).unwrap(), Some(Rewind::InUse));
    commit(true).unwrap();
    commit(true).unwrap();
    assert_eq!(checkpointer.wakes.get(), 6, "300 bytes since the last wake-up");
    commit(true).unwrap();
    assert_eq!(checkpointer.wakes.get(), 7);
    assert_eq!(rewinds, 2);
    drop(checkpointer);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn the_wal_stays_bounded_beside_a_checkpointer_under_a_writer_that_never_pauses() {
    const REWIND: usize = 256 * 1024;
    // SQLite's own auto-checkpoint out of the way: only the rewinds bound the WAL.
    let (path, mut conn) = writer_connection("rewind", 100_000);
    let checkpointer = start_checkpointer(&path, REWIND / 3, REWIND);
    let key = PartitionKey { topic: "t".into(), partition: 0 };
    let rows = rows(200);
    let bytes: usize = rows.iter().map(|r| r.original.weight()).sum();
    const ROUNDS: i64 = 400;
    let (mut largest, mut first, mut rewinds) = (0, 0, 0);
    // Back to back, like the writer under a backlog.
    for round in 0..ROUNDS {
        commit_rows(&mut conn, &key, &shifted(&rows, round * 200));
        checkpointer
            .after_commit(bytes, || {
                rewinds += 1;
                restart_wal(&mut conn, 5000)
            })
            .unwrap();
        let wal = file_len(&path, "-wal");
        if round == 0 {
            first = wal; // the WAL started empty
        }
        largest = largest.max(wal);
    }
    let bound = 4 * REWIND as u64 + first;
    assert!(first * ROUNDS as u64 > 10 * bound, "the rounds write enough to tell: {first} bytes each");
    assert!(largest <= bound, "the WAL grew to {largest} bytes (rewind every {REWIND} bytes of records, bound {bound})");
    // One rewind per commit that reaches REWIND bytes since the last one.
    assert_eq!(rewinds, ROUNDS as usize / REWIND.div_ceil(bytes), "one rewind per {REWIND} bytes of records");
    drop(checkpointer);
    drop(conn);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_reader_in_the_wal_makes_a_rewind_give_up_quickly_and_wait_for_the_next_round() {
    use diesel::connection::SimpleConnection;
    const REWIND: usize = 256 * 1024;
    let (path, mut conn) = writer_connection("reader", 100_000);
    let checkpointer = start_checkpointer(&path, REWIND / 3, REWIND);
    let key = PartitionKey { topic: "t".into(), partition: 0 };
    let rows = rows(200);
    let bytes: usize = rows.iter().map(|r| r.original.weight()).sum();
    let per_rewind = REWIND.div_ceil(bytes);
    let mut round = 0i64;
    let mut commit = |conn: &mut SqliteConnection| {
        commit_rows(conn, &key, &shifted(&rows, round * 200));
        round += 1;
    };
    commit(&mut conn);
    // A reader holds a snapshot that lies in the WAL.
    let mut reader = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    reader.batch_execute("BEGIN; SELECT count(*) FROM events;").unwrap();
    let (mut tries, mut slowest) = (0, Duration::ZERO);
    for _ in 0..3 * per_rewind {
        commit(&mut conn);
        let started = std::time::Instant::now();
        let result = checkpointer.after_commit(bytes, || {
            tries += 1;
            restart_wal(&mut conn, 5000)
        });
        if tries > 0 && matches!(result, Ok(Some(Rewind::InUse))) {
            slowest = slowest.max(started.elapsed());
        }
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(tries, 3, "one try per {REWIND} bytes, not one per commit");
    assert!(
        slowest > Duration::ZERO && slowest < Duration::from_secs(1),
        "a try gives up after {REWIND_WAIT_MS} ms, not the 5 s busy timeout: {slowest:?}"
    );
    // The reader gone, the next round rewinds.
    reader.batch_execute("COMMIT;").unwrap();
    let mut outcome = None;
    for _ in 0..per_rewind {
        commit(&mut conn);
        checkpointer
            .after_commit(bytes, || {
                let r = restart_wal(&mut conn, 5000);
                outcome = Some(matches!(r, Ok(Rewind::Done)));
                r
            })
            .ok();
    }
    assert_eq!(outcome, Some(true), "the rewind after the reader left");
    drop(checkpointer);
    drop(conn);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn sqlite_runs_without_allocation_statistics_once_a_database_is_opened() {
    let path = std::env::temp_dir().join(format!("tributary-config-{}.db", std::process::id()));
    let url = format!("sqlite://{}", path.display());
    let db =
        Database::open(&DatabaseOptions { url, pool_size: 1, connect_timeout: Duration::from_secs(5), checkpoint_in_background: false })
            .unwrap();
    db.migrate().unwrap();
    db.ping().unwrap();
    // SAFETY: a plain getter. With statistics on (SQLite's default) this counts the bytes
    // SQLite holds for the open connection and its page cache; off, it stays 0 — which also
    // shows the settings came before SQLite initialised (afterwards they are refused).
    let used = unsafe { libsqlite3_sys::sqlite3_memory_used() };
    drop(db);
    let _ = std::fs::remove_file(&path);
    assert_eq!(used, 0, "SQLite tracked {used} bytes: configure_library did not apply");
}

#[test]
fn the_cached_full_chunk_statement_stores_what_diesels_batch_insert_stores() {
    let path = std::env::temp_dir().join(format!("tributary-chunk-{}-{:?}.db", std::process::id(), std::thread::current().id()));
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}", path.display());
    let db = Database::open(&DatabaseOptions {
        url: url.clone(),
        pool_size: 1,
        connect_timeout: Duration::from_secs(5),
        checkpoint_in_background: false,
    })
    .unwrap();
    db.migrate().unwrap();
    drop(db);
    let mut conn = SqliteConnection::establish(sqlite_path(&url)).unwrap();

    // Two full chunks and a tail through `insert_events` (topic "a"), and the same rows
    // through Diesel's batch insert of the derived `Insertable` (topic "b").
    let rows = rows(ROWS_PER_STATEMENT * 2 + 5);
    let (a, b) = (PartitionKey { topic: "a".into(), partition: 3 }, PartitionKey { topic: "b".into(), partition: 3 });
    let refs = |key| rows.iter().map(|row| RowRef { partition: key, row }).collect::<Vec<_>>();
    insert_events(&mut conn, &refs(&a)).unwrap();
    let twin: Vec<NewEvent<'_>> = refs(&b).into_iter().map(new_event).collect();
    diesel::insert_into(events::table).values(&twin).execute(&mut conn).unwrap();

    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let count = |c: &mut SqliteConnection, sql: &str| diesel::sql_query(sql).get_result::<N>(c).unwrap().n;
    let n = rows.len() as i64;
    assert_eq!(count(&mut conn, "SELECT count(*) AS n FROM events WHERE topic = 'a'"), n);
    let same = "SELECT count(*) AS n FROM events a JOIN events b ON a.partition = b.partition AND a.\"offset\" = b.\"offset\" \
        WHERE a.topic = 'a' AND b.topic = 'b' AND a.key IS b.key AND a.event_id IS b.event_id AND a.source IS b.source \
        AND a.type IS b.type AND a.subject IS b.subject AND a.time IS b.time AND a.datacontenttype IS b.datacontenttype \
        AND a.data IS b.data AND a.headers IS b.headers AND a.kafka_timestamp IS b.kafka_timestamp";
    assert_eq!(count(&mut conn, same), n, "every column equal to Diesel's own insert");
    // Not vacuous: every column holds values, and NULLs where the rows have none.
    for column in ["key", "event_id", "source", "type", "subject", "time", "datacontenttype", "data", "kafka_timestamp"] {
        let filled = count(&mut conn, &format!("SELECT count(*) AS n FROM events WHERE topic = 'a' AND {column} IS NOT NULL"));
        assert!(filled > 0 && filled <= n, "{column}: {filled} of {n}");
    }
    assert!(count(&mut conn, "SELECT count(*) AS n FROM events WHERE topic = 'a' AND key IS NULL") > 0);
    // Timestamps as RFC 3339 text with microseconds (i = 3 is the structured event at :03).
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM events WHERE topic = 'a' AND time LIKE '2026-01-02T03:04:__.123456Z'"),
        (n + 2) / 3
    );
    assert_eq!(
        count(&mut conn, "SELECT count(*) AS n FROM events WHERE topic = 'a' AND \"offset\" = 3 AND time = '2026-01-02T03:04:03.123456Z'"),
        1
    );
    drop(conn);
    let _ = std::fs::remove_file(&path);
}
