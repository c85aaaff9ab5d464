use super::*;
use std::time::Duration;
use tributary_actors::{redact::database_url as redact_database_url, redact::is_secret_property};

fn base() -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("kafka.brokers".to_string(), json!("k:9092")),
        ("kafka.topics".to_string(), json!(["t"])),
        ("database.url".to_string(), json!("postgres://u:hunter2hunter2@h/db")),
    ])
}

#[test]
fn defaults_and_overrides_layer() {
    let s = Settings::load(None, &base()).unwrap();
    assert_eq!(s.kafka.group_id, "tributary");
    assert_eq!(s.database.batch_size, 5000);
    let mut o = base();
    o.remove("database.url");
    let s = Settings::load(None, &o).unwrap();
    assert_eq!(secrecy::ExposeSecret::expose_secret(&s.database.url), "sqlite://tributary.db", "SQLite is the embedded default");
    assert_eq!(s.librdkafka_config()["bootstrap.servers"], "k:9092");
}

#[test]
fn bad_values_name_the_key_and_the_fix() {
    let mut o = base();
    o.insert("database.pool_size".into(), json!(0));
    let e = Settings::load(None, &o).unwrap_err();
    assert_eq!(e.key, "database.pool_size");
    assert!(e.fix.contains("1 to 256"));

    let mut o = base();
    o.remove("kafka.topics");
    assert_eq!(Settings::load(None, &o).unwrap_err().key, "kafka.topics");

    let mut o = base();
    o.insert("database.pool_size".into(), json!("many"));
    let e = Settings::load(None, &o).unwrap_err();
    assert_eq!(e.key, "database.pool_size", "{e}");

    let mut o = base();
    o.insert("kafka.librdkafka".into(), json!({"fetch.wait.max.ms": "soon"}));
    assert_eq!(Settings::load(None, &o).unwrap_err().key, "kafka.librdkafka");

    let mut o = base();
    o.insert("database.url".into(), json!("mysql://h/db"));
    assert_eq!(Settings::load(None, &o).unwrap_err().key, "database.url");

    let mut o = base();
    o.insert("database.url".into(), json!("sqlite://"));
    assert_eq!(Settings::load(None, &o).unwrap_err().key, "database.url");
}

#[test]
fn secrets_are_redacted() {
    let mut o = base();
    o.insert("kafka.librdkafka".into(), json!({"sasl.password": "pw-secret"}));
    o.insert("http.admin_token".into(), json!("token-token-token-token"));
    let s = Settings::load(None, &o).unwrap();
    let text = s.redacted().to_string();
    assert!(!text.contains("hunter2") && !text.contains("pw-secret") && !text.contains("token-token"), "{text}");
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("pw-secret") && !debug.contains("token-token"), "{debug}");
}

#[test]
fn every_librdkafka_secret_property_is_redacted_in_status_and_debug() {
    let secrets = [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.key.pem",
        "ssl_key",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "sasl.jaas.config",
    ];
    let mut settings = Settings::load(None, &base()).unwrap();
    for (i, key) in secrets.iter().enumerate() {
        settings.kafka.librdkafka.insert(key.to_string(), format!("leak-{i}-leak"));
    }
    settings.kafka.librdkafka.insert("sasl.username".into(), "alice".into());
    settings.kafka.librdkafka.insert("security.protocol".into(), "SASL_SSL".into());
    for text in [settings.redacted().to_string(), format!("{settings:?}")] {
        assert!(!text.contains("leak-"), "a secret survived: {text}");
        assert!(text.contains("alice") && text.contains("SASL_SSL"), "non-secrets stay visible: {text}");
    }
    for key in secrets {
        assert!(is_secret_property(key), "{key}");
    }
    for key in ["sasl.username", "sasl.mechanisms", "ssl.ca.location", "security.protocol", "bootstrap.servers"] {
        assert!(!is_secret_property(key), "{key}");
    }
}

#[test]
fn librdkafka_values_from_the_environment_are_taken_verbatim() {
    // figment alone would read "007" as the number 7 and "[x]" as a list.
    let env = [
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__SASL_PASSWORD", "007"),
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__CLIENT_ID", "[x]"),
        ("TRIBUTARY_KAFKA__BROKERS", "k:9092"),
        ("TRIBUTARY_KAFKA__LIBRDKAFKA__", "ignored"),
    ];
    let props = kafka::librdkafka_env(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    assert_eq!(props, vec![("sasl_password".to_string(), "007".to_string()), ("client_id".to_string(), "[x]".to_string())]);
    let mut s = Settings::load(None, &base()).unwrap();
    s.kafka.librdkafka.extend(props);
    let s = s.validated().unwrap();
    assert_eq!(s.librdkafka_config()["sasl.password"], "007");
    assert_eq!(s.librdkafka_config()["client.id"], "[x]");
}

#[test]
fn tls_and_sasl_settings_reach_librdkafka() {
    // librdkafka refuses SASL_SSL, and SCRAM, when it was built without OpenSSL; building
    // the client (which `load` does for TLS/SASL settings) proves the support is linked in.
    let mut o = base();
    o.insert(
        "kafka.librdkafka".into(),
        json!({"security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "u", "sasl.password": "p"}),
    );
    let s = Settings::load(None, &o).unwrap();
    assert_eq!(s.librdkafka_config()["security.protocol"], "SASL_SSL");
    let mut plain = base();
    plain.insert(
        "kafka.librdkafka".into(),
        json!({"security.protocol": "SASL_PLAINTEXT", "sasl.mechanisms": "PLAIN", "sasl.username": "u", "sasl.password": "p"}),
    );
    Settings::load(None, &plain).unwrap();

    let mut client = rdkafka::ClientConfig::new();
    client.set("bootstrap.servers", "k:9092");
    let features = client.create_native_config().unwrap().get("builtin.features").unwrap();
    for feature in ["ssl", "sasl_plain", "sasl_scram", "zstd"] {
        assert!(features.split(',').any(|f| f == feature), "librdkafka lacks {feature}: {features}");
    }
}

#[test]
fn a_missing_ca_file_fails_at_start_naming_the_property() {
    let mut o = base();
    o.insert("kafka.librdkafka".into(), json!({"security.protocol": "SSL", "ssl.ca.location": "/nonexistent/ca.pem"}));
    let e = Settings::load(None, &o).unwrap_err();
    assert_eq!(e.key, "kafka.librdkafka");
    assert!(e.problem.contains("ssl.ca.location"), "{e}");
}

#[test]
fn database_url_passwords_are_redacted_and_ssl_settings_kept() {
    let url = "postgres://u:pw1@h/db?sslmode=verify-full&sslpassword=pw2&password=pw3&sslrootcert=system";
    let shown = redact_database_url(url);
    assert!(!shown.contains("pw1") && !shown.contains("pw2") && !shown.contains("pw3"), "{shown}");
    assert!(shown.contains("sslmode=verify-full") && shown.contains("sslrootcert=system"), "{shown}");
    let mut o = base();
    o.insert("database.url".into(), json!(url));
    let text = Settings::load(None, &o).unwrap().redacted().to_string();
    assert!(!text.contains("pw1") && !text.contains("pw2") && !text.contains("pw3"), "{text}");
}

#[test]
fn an_empty_admin_token_means_none() {
    let mut o = base();
    o.insert("http.admin_token".into(), json!(""));
    assert!(Settings::load(None, &o).unwrap().http.admin_token.is_none());
}

#[test]
fn healthcheck_finds_a_wildcard_bind_on_loopback() {
    assert_eq!(health_url("0.0.0.0:8080"), "http://127.0.0.1:8080/health");
    assert_eq!(health_url("[::]:9000"), "http://[::1]:9000/health");
    assert_eq!(health_url("10.1.2.3:8081"), "http://10.1.2.3:8081/health");
    assert_eq!(health_url("127.0.0.1:8080"), "http://127.0.0.1:8080/health");
}

#[test]
fn librdkafka_properties_accept_numbers_and_booleans() {
    let mut o = base();
    o.insert("kafka.librdkafka".into(), json!({"fetch.max.bytes": 2097152, "check.crcs": true}));
    let s = Settings::load(None, &o).unwrap();
    assert_eq!(s.librdkafka_config()["fetch.max.bytes"], "2097152");
    assert_eq!(s.librdkafka_config()["check.crcs"], "true");
}

#[test]
fn topics_accept_a_comma_separated_string() {
    let mut o = base();
    o.insert("kafka.topics".into(), json!("a, b"));
    assert_eq!(Settings::load(None, &o).unwrap().kafka.topics, vec!["a", "b"]);
}

/// Each value that used to be accepted (or to panic the start) is refused, naming the key; no
/// message shows a secret.
#[test]
fn hostile_values_are_refused_naming_the_key_and_never_echo_a_secret() {
    let dir = std::env::temp_dir().join(format!("tributary-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing_dir = dir.join("no-such-dir").join("t.db");
    let cases: Vec<(&str, Value, &str)> = vec![
        ("database.connect_timeout_ms", json!(0), "database.connect_timeout_ms"),
        ("database.url", json!("postgres://u:KvSecret123@h:99999/db"), "database.url"),
        ("database.url", json!("host=127.0.0.1 user=postgres password=KvSecret123 dbname=x"), "database.url"),
        ("database.url", json!("postgres:/postgres:KvSecret123@h/db"), "database.url"),
        ("database.url", json!("postgres://u:50%offKvSecret123@h/db"), "database.url"),
        ("database.url", json!("postgres://u:KvSecret123@h/db?nonsense=1"), "database.url"),
        ("database.url", json!(format!("sqlite://{}", missing_dir.display())), "database.url"),
        ("database.url", json!(format!("sqlite://{}", dir.display())), "database.url"),
        ("kafka.brokers", json!("not a host"), "kafka.brokers"),
        ("kafka.brokers", json!("k:9092,k2:0"), "kafka.brokers"),
        ("http.admin_token", json!("ééééééééé"), "http.admin_token"),
        ("http.admin_token", json!("                "), "http.admin_token"),
        ("http.admin_token", json!(1234567890123456789u64), "http.admin_token"),
        ("kafka.revoke_timeout_ms", json!(0), "kafka.revoke_timeout_ms"),
        ("shutdown.timeout_secs", json!(0), "shutdown.timeout_secs"),
        ("health.restart_window_secs", json!(0), "health.restart_window_secs"),
        ("kafka.librdkafka", json!({"sasl.passwrd": "KvSecret123"}), "kafka.librdkafka"),
        ("kafka.librdkafka", json!({"sasl.jaas.config": "KvSecret123"}), "kafka.librdkafka"),
    ];
    for (key, value, want_key) in cases {
        let mut o = base();
        o.insert(key.to_string(), value.clone());
        let e = Settings::load(None, &o).expect_err(&format!("{key} = {value} must be refused"));
        assert!(e.key.starts_with(want_key), "{key} = {value}: named {:?} ({e})", e.key);
        for secret in ["KvSecret123", "1234567890123456789", "hunter2hunter2"] {
            assert!(!e.to_string().contains(secret), "{key} = {value} echoed a secret: {e}");
        }
    }
    // A token's length counts characters, not bytes: 16 of them pass however many bytes.
    let mut o = base();
    o.insert("http.admin_token".into(), json!("éééééééééééééééé"));
    assert!(Settings::load(None, &o).is_ok());
    let e = Settings::load(Some(&dir), &base()).unwrap_err();
    assert_eq!(e.key, "--config", "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every key a configuration can hold (docs/configuration.md).
const KEYS: [&str; 28] = [
    "kafka.brokers",
    "kafka.group_id",
    "kafka.topics",
    "kafka.librdkafka",
    "kafka.revoke_timeout_ms",
    "database.url",
    "database.pool_size",
    "database.batch_size",
    "database.batch_max_bytes",
    "database.linger_ms",
    "database.max_in_flight",
    "database.max_in_flight_bytes",
    "database.migrate_on_start",
    "database.connect_timeout_ms",
    "database.breaker_threshold",
    "parser.format",
    "parser.max_message_bytes",
    "parser.max_depth",
    "parser.workers",
    "http.bind",
    "http.admin_token",
    "log.level",
    "log.format",
    "health.stall_after_secs",
    "health.restart_reader_after_secs",
    "health.restart_budget",
    "health.restart_window_secs",
    "shutdown.timeout_secs",
];

fn any_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![Just(0i64), Just(1), Just(-1), Just(u32::MAX as i64), Just(i32::MAX as i64 + 1)].prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        "[a-z0-9.:/@=_-]{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map("[a-z._]{1,12}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(384))]

    /// Every key may get an arbitrary value (or keep the base one), and arbitrary extra keys may
    /// come along: the check either passes — and then everything `run` derives from the
    /// settings at start (durations, the address, the pool, librdkafka's map) is made without a
    /// panic — or fails naming a key, never echoing a secret. `check-config`, `run`, `migrate`
    /// and `demo` all go through this one `Settings::load`, so they accept exactly the same.
    #[test]
    fn no_configuration_value_panics_and_every_refusal_names_a_key(
        values in proptest::collection::vec(proptest::option::weighted(0.3, any_value()), KEYS.len()),
        extra in proptest::collection::vec(("[a-z]{1,8}\\.[a-z_]{1,10}", any_value()), 0..2),
    ) {
        let mut o = base();
        for (key, value) in KEYS.iter().zip(values) {
            if let Some(v) = value {
                o.insert(key.to_string(), v);
            }
        }
        let unknown = extra.iter().any(|(k, _)| !KEYS.contains(&k.as_str()));
        o.extend(extra);
        match Settings::load(None, &o) {
            Ok(s) => {
                proptest::prop_assert!(!unknown, "an unknown key was accepted: {o:?}");
                let _ = (s.database.linger, s.bind_addr(), s.librdkafka_config(), s.redacted());
                let _ = tributary_actors::Database::open(&crate::app::database_options(&s));
            }
            Err(e) => {
                proptest::prop_assert!(!e.key.is_empty(), "{e}");
                proptest::prop_assert!(!e.to_string().contains("hunter2hunter2"), "{e}");
            }
        }
    }
}

/// The configuration with `toml` as its file, and the projections checked on their own.
fn plan_of(toml: &str) -> Result<tributary_actors::Plan, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tributary.toml");
    std::fs::write(&path, toml).unwrap();
    let mut o = base();
    o.insert("kafka.topics".into(), json!(["shop.orders", "shop.payments"]));
    Settings::load(Some(&path), &o)?.plan()
}

#[test]
fn projections_that_cannot_work_together_are_refused_naming_the_key() {
    let orders = |extra: &str| {
        format!("[[projection]]\nname = \"orders\"\ntable = \"orders\"\n{extra}\n[projection.columns]\nid = {{ from = \"/id\", type = \"bigint\" }}\n")
    };
    let ok =
        plan_of(&format!("{}{}", orders("topics = [\"shop.*\"]"), orders("").replace("name = \"orders\"", "name = \"audit\""))).unwrap();
    assert_eq!(ok.projections.len(), 2);
    let key = |toml: &str| plan_of(toml).map(|_| String::new()).unwrap_or_else(|e| e.key);
    assert_eq!(key(&format!("{}{}", orders(""), orders(""))), "projection.orders.name", "a name twice");
    assert_eq!(key(&orders("topics = [\"billing.*\"]")), "projection.orders.topics", "a glob no subscribed topic matches");
    assert_eq!(key("[events]\nenabled = false\n"), "events.enabled", "nothing would be written");
    assert_eq!(key(&format!("[events]\nenabled = false\n{}", orders(""))), "");
}

#[test]
fn a_projection_name_that_could_break_metrics_or_logs_is_refused_naming_the_key() {
    let named = |name: &str| {
        format!("[[projection]]\nname = {name}\ntable = \"orders\"\n[projection.columns]\nid = {{ from = \"/id\", type = \"bigint\" }}\n")
    };
    assert!(plan_of(&named("\"shop.orders-v2\"")).is_ok());
    for (toml, key) in [
        (r#""a\"b""#, r#"projection.a\"b.name"#),
        (r#""a\\b""#, r#"projection.a\\b.name"#),
        (r#""a\nb""#, r#"projection.a\nb.name"#),
        (r#""""#, "projection.?.name"),
    ] {
        let e = plan_of(&named(toml)).unwrap_err();
        assert_eq!(e.key, key, "{e}");
        assert!(!e.to_string().contains('\n') && e.fix.contains("name = \"orders\""), "{e}");
    }
}

#[test]
fn a_mistyped_column_table_says_which_field() {
    let e = plan_of("[[projection]]\nname = \"orders\"\ntable = \"orders\"\n[projection.columns]\nid = { form = \"/id\" }\n").unwrap_err();
    let text = e.to_string();
    assert!(text.contains("form") && text.contains("from"), "{text}");
    let e = plan_of("[[projection]]\nname = \"orders\"\ntable = \"orders\"\n[projection.columns]\nid = 5\n").unwrap_err();
    assert!(e.to_string().contains("a source such as"), "{e}");
}

/// A `*_ms` / `*_secs` key is a `Duration` in the code and the same whole number of its unit in
/// `check-config`'s output.
#[test]
fn durations_keep_their_keys_and_units() {
    let mut o = base();
    o.insert("database.linger_ms".into(), json!(7));
    o.insert("kafka.revoke_timeout_ms".into(), json!(1500));
    o.insert("health.stall_after_secs".into(), json!(3));
    o.insert("health.restart_reader_after_secs".into(), json!(0));
    let s = Settings::load(None, &o).unwrap();
    assert_eq!(s.database.linger, Duration::from_millis(7));
    assert_eq!(s.kafka.revoke_timeout, Duration::from_millis(1500));
    assert_eq!(s.health.stall_after, Duration::from_secs(3));
    assert_eq!(s.health.reader_restart_due(), None, "0 means never");
    let r = s.redacted();
    assert_eq!(r["database"]["linger_ms"], json!(7));
    assert_eq!(r["database"]["connect_timeout_ms"], json!(5000));
    assert_eq!(r["kafka"]["revoke_timeout_ms"], json!(1500));
    assert_eq!(r["health"]["stall_after_secs"], json!(3));
    assert_eq!(r["health"]["restart_reader_after_secs"], json!(0));
    assert_eq!(r["health"]["restart_window_secs"], json!(60));
    assert_eq!(r["shutdown"]["timeout_secs"], json!(30));
    assert_eq!(Settings::load(None, &base()).unwrap().health.reader_restart_due(), Some(Duration::from_secs(120)));
}

#[test]
fn the_schema_registry_section_is_checked_and_its_secrets_redacted() {
    let load = |pairs: &[(&str, Value)]| {
        let mut o = base();
        for (k, v) in pairs {
            o.insert(k.to_string(), v.clone());
        }
        Settings::load(None, &o)
    };
    // A framed format without a registry: the key that asked for it, and how to set one.
    for key in ["parser.format", "parser.key_format"] {
        for format in ["avro", "protobuf", "json_schema"] {
            let e = load(&[(key, json!(format))]).unwrap_err();
            assert_eq!(e.key, key);
            assert!(e.fix.contains("TRIBUTARY_SCHEMA_REGISTRY__URL"), "{e}");
        }
    }
    assert_eq!(load(&[("parser.key_format", json!("cloudevents"))]).unwrap_err().key, "parser.key_format");
    let url = ("schema_registry.url", json!("https://key:s3cret-url@registry.example:8081"));
    assert_eq!(load(&[("schema_registry.url", json!("registry:8081"))]).unwrap_err().key, "schema_registry.url");
    assert_eq!(load(&[url.clone(), ("schema_registry.password", json!("pw"))]).unwrap_err().key, "schema_registry.password");
    let e = load(&[url.clone(), ("schema_registry.key_location", json!("/k.pem"))]).unwrap_err();
    assert_eq!(e.key, "schema_registry.certificate_location");
    assert_eq!(load(&[url.clone(), ("schema_registry.timeout_ms", json!(0))]).unwrap_err().key, "schema_registry.timeout_ms");
    let e = load(&[url.clone(), ("schema_registry.retry_backoff_ms", json!(500)), ("schema_registry.retry_backoff_max_ms", json!(100))]);
    assert_eq!(e.unwrap_err().key, "schema_registry.retry_backoff_max_ms");
    // A wrong type never quotes a secret.
    let e = load(&[url.clone(), ("schema_registry.username", json!("u")), ("schema_registry.password", json!(["s3cret-pw"]))]).unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");

    let s = load(&[
        url,
        ("parser.format", json!("avro")),
        ("schema_registry.username", json!("key")),
        ("schema_registry.password", json!("s3cret-pw")),
    ])
    .unwrap();
    for text in [s.redacted().to_string(), format!("{s:?}")] {
        assert!(!text.contains("s3cret"), "a secret survived: {text}");
    }
    let shown = &s.redacted()["schema_registry"];
    assert_eq!(shown["url"], json!("https://key:[REDACTED]@registry.example:8081"));
    assert_eq!((shown["username"].clone(), shown["timeout_ms"].clone()), (json!("key"), json!(10000)));
    let opts = s.schema_registry.options().expect("a registry");
    assert_eq!((opts.timeout, opts.cache_capacity), (std::time::Duration::from_secs(10), 1000));
}

#[test]
fn a_regex_subscription_is_compiled_at_start_and_checked_against_projection_globs() {
    let mut o = base();
    o.insert("kafka.topics".into(), json!(["^dbserver1\\.inventory\\..*", "audit"]));
    assert_eq!(Settings::load(None, &o).unwrap().kafka.topics[0], "^dbserver1\\.inventory\\..*");
    o.insert("kafka.topics".into(), json!(["^dbserver1.(inventory"]));
    let e = Settings::load(None, &o).unwrap_err();
    assert_eq!(e.key, "kafka.topics");
    assert!(e.problem.contains("regex subscription"), "{e}");
    let plan = |topics: Value, glob: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tributary.toml");
        std::fs::write(&path, format!("[[projection]]\nname = \"c\"\ntable = \"c\"\ntopics = [\"{glob}\"]\nenvelope = \"debezium\"\n"))
            .unwrap();
        let mut o = base();
        o.insert("kafka.topics".into(), topics);
        Settings::load(Some(&path), &o).and_then(|s| s.plan()).map(|_| String::new()).unwrap_or_else(|e| e.key)
    };
    assert_eq!(plan(json!(["^dbserver1\\.inventory\\..*"]), "dbserver1.inventory.*"), "");
    assert_eq!(plan(json!(["^dbserver1\\.inventory\\..*"]), "dbserver1.inventory.customers"), "");
    assert_eq!(plan(json!(["^dbserver1\\.inventory\\..*"]), "dbserver2.*"), "projection.c.topics", "a prefix the regex does not take");
}
