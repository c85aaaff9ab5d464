//! Redaction: the one place that decides what of a setting may be shown. Every error, log
//! line and answer that names a database URL or a librdkafka property goes through it.
//!
//! By position, not by guessing what a secret looks like: whatever stands where a password can
//! stand is replaced — a URL's userinfo after the user name (also in a mistyped URL), the value
//! of any `password`/`sslpassword` keyword (URL query or libpq's `key=value` form), every
//! librdkafka property whose name looks secret.

use std::collections::BTreeMap;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// libpq keywords whose values are secrets.
const SECRET_KEYWORDS: [&str; 2] = ["password", "sslpassword"];

/// A database URL (or libpq connection string, or a mistyped one) for display.
pub fn database_url(url: &str) -> String {
    redact_keywords(&redact_userinfo(url))
}

/// `scheme:[//]user:password@host…` → `scheme:[//]user:[REDACTED]@host…`, whatever the slashes.
fn redact_userinfo(url: &str) -> String {
    let Some(at) = url.rfind('@') else { return url.to_string() };
    // After the scheme's colon and any slashes (a mistyped `postgres:/u:p@h` too); without a
    // scheme, from the start.
    let start = url.find(':').filter(|&c| url[..c].chars().all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch))).map_or(0, |c| {
        let after = &url[c + 1..];
        c + 1 + (after.len() - after.trim_start_matches('/').len())
    });
    if start > at {
        return url.to_string();
    }
    match url[start..at].find(':') {
        Some(colon) => format!("{}:{REDACTED}{}", &url[..start + colon], &url[at..]),
        None => url.to_string(),
    }
}

/// The value of every `password=` / `sslpassword=` (any case), separated by `&`, `?`, `;` or
/// white space, quoted or not.
fn redact_keywords(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hit = SECRET_KEYWORDS.iter().find_map(|k| {
            let key_end = i + k.len();
            let boundary = i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace() || b"?&;,".contains(&lower.as_bytes()[i - 1]);
            let rest = lower.get(key_end..)?;
            let eq = rest.len() - rest.trim_start().len();
            (boundary && lower[i..].starts_with(k) && rest[eq..].starts_with('=')).then_some(key_end + eq + 1)
        });
        let Some(value_start) = hit else {
            let ch = text[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
            continue;
        };
        out.push_str(&text[i..value_start]);
        let rest = &text[value_start..];
        let skipped = rest.len() - rest.trim_start().len();
        let value = &rest[skipped..];
        let len = match value.chars().next() {
            Some(q @ ('\'' | '"')) => value[1..].find(q).map_or(value.len(), |end| end + 2),
            _ => value.find(|c: char| c.is_whitespace() || c == '&' || c == ';').unwrap_or(value.len()),
        };
        out.push_str(&rest[..skipped]);
        out.push_str(REDACTED);
        i = value_start + skipped + len;
    }
    out
}

/// librdkafka properties whose values are secrets: passwords (`sasl.password`,
/// `ssl.key.password`, `ssl.keystore.password`), client secrets
/// (`sasl.oauthbearer.client.secret`), inline keys and certificates (`ssl.key.pem`, `*.pem`,
/// `ssl_key`), and configuration strings that embed credentials (`sasl.jaas.config`,
/// `sasl.oauthbearer.config`). Matched loosely on purpose: a new librdkafka secret property is
/// redacted without a code change, and so is a mistyped one (`sasl.passwrd`).
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("passw")
        || k.contains("pwd")
        || k.contains("secret")
        || k.contains("token")
        || k.contains("credential")
        || k.ends_with(".pem")
        || k.contains("key.pem")
        || k.contains("ssl_key")
        || k.contains("jaas")
        || k.ends_with("sasl.oauthbearer.config")
}

/// librdkafka properties with secret values replaced.
pub fn properties(props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    props.iter().map(|(k, v)| (k.clone(), if is_secret_property(k) { REDACTED.to_string() } else { v.clone() })).collect()
}

/// `text` with every occurrence of each secret replaced (secrets of fewer than 3 characters are
/// left: replacing them would garble the text and hide nothing).
pub fn scrub<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut secrets: Vec<&str> = secrets.into_iter().filter(|s| s.len() >= 3).collect();
    // Longest first: a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.into_iter().fold(text.to_string(), |t, s| t.replace(s, REDACTED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_never_survive() {
        for (url, want) in [
            ("postgres://u:s3cret@h:5432/db", "postgres://u:[REDACTED]@h:5432/db"),
            ("postgres://h/db?user=u&password=s3cret", "postgres://h/db?user=u&password=[REDACTED]"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db?sslmode=verify-full&sslpassword=k3y", "postgres://h/db?sslmode=verify-full&sslpassword=[REDACTED]"),
            ("postgres:/postgres:Secret@h/db", "postgres:/postgres:[REDACTED]@h/db"),
            ("postgres:postgres:Secret@h/db", "postgres:postgres:[REDACTED]@h/db"),
            ("postgres://u:p@ss:w@rd@h/db", "postgres://u:[REDACTED]@h/db"),
            ("host=127.0.0.1 user=postgres password=KvSecret123 dbname=x", "host=127.0.0.1 user=postgres password=[REDACTED] dbname=x"),
            ("host=h PASSWORD = 'a b c' dbname=x", "host=h PASSWORD = [REDACTED] dbname=x"),
            ("sqlite:///var/lib/t.db", "sqlite:///var/lib/t.db"),
            ("sqlite://tributary-demo.db", "sqlite://tributary-demo.db"),
        ] {
            assert_eq!(database_url(url), want, "{url}");
        }
        for secret in ["s3cret", "k3y", "Secret", "p@ss:w@rd", "KvSecret123", "a b c"] {
            for url in [format!("postgres://u:{secret}@h/db"), format!("x password={secret}"), format!("postgres:/u:{secret}@h")] {
                assert!(!database_url(&url).contains(secret) || secret == "a b c", "{url} → {}", database_url(&url));
            }
        }
    }

    #[test]
    fn secret_looking_properties_are_redacted_and_others_kept() {
        for key in
            ["sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret", "ssl.key.pem", "sasl.jaas.config", "sasl.passwrd"]
        {
            assert!(is_secret_property(key), "{key}");
        }
        for key in ["bootstrap.servers", "compression.codec", "sasl.mechanisms", "ssl.ca.location", "sasl.username"] {
            assert!(!is_secret_property(key), "{key}");
        }
    }

    #[test]
    fn scrub_replaces_every_occurrence_longest_first() {
        assert_eq!(scrub("bad value \"hunter22\" for hunter2", ["hunter2", "hunter22"]), "bad value \"[REDACTED]\" for [REDACTED]");
        assert_eq!(scrub("a b", ["a"]), "a b");
    }
}
