//! A strict reader of the text exposition `/metrics` serves (OpenMetrics 1.0, which Prometheus'
//! text format reads too): every line must be a `# HELP`, `# TYPE`, `# UNIT`, a sample of the
//! family last typed, or the final `# EOF`; label values may hold `\\`, `\"` and `\n` escapes
//! only. A value that slipped through unescaped fails here, as it would fail a scrape.

use std::collections::{BTreeMap, BTreeSet};

/// One sample: its name, its labels (values unescaped) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

const TYPES: [&str; 8] = ["counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset", "unknown"];
const SUFFIXES: [&str; 7] = ["", "_total", "_created", "_bucket", "_count", "_sum", "_info"];

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic() || f == '_') && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn number(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ if s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) => s.parse().ok(),
        _ => None,
    }
}

/// `{name="value",...}` at the start of `s`: the labels and the rest after the `}`.
fn labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut out = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("no {")?;
    if let Some(after) = rest.strip_prefix('}') {
        return Ok((out, after));
    }
    loop {
        let (name, after) = rest.split_once("=\"").ok_or_else(|| format!("no =\" after a label name in {rest:?}"))?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("a lone \\ at the end")?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    other => return Err(format!("unknown escape \\{other}")),
                },
                (_, '\n') => return Err("a newline inside a label value".into()),
                (_, c) => value.push(c),
            }
        };
        if out.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = &after[end + 1..];
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((out, after));
        }
        rest = rest.strip_prefix(',').ok_or_else(|| format!("expected , or }} in {rest:?}"))?;
    }
}

/// Parse `text` strictly; the samples, or the first line that breaks the format and why.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let body = text.strip_suffix("# EOF\n").ok_or("the exposition does not end with # EOF")?;
    let mut samples = Vec::new();
    let mut family: Option<String> = None;
    let (mut typed, mut seen) = (BTreeSet::new(), BTreeSet::new());
    for (n, line) in body.lines().enumerate() {
        let bad = |why: String| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name, rest) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
            if !is_metric_name(name) {
                return Err(bad("bad metric name".into()));
            }
            match (kind, rest) {
                ("TYPE", Some(t)) if TYPES.contains(&t) => {
                    if !typed.insert(name.to_string()) {
                        return Err(bad("a family typed twice".into()));
                    }
                    family = Some(name.to_string());
                }
                ("HELP" | "UNIT", Some(_)) => {}
                _ => return Err(bad("not a HELP, TYPE or UNIT line".into())),
            }
            continue;
        }
        let split = line.find(['{', ' ']).ok_or_else(|| bad("no value".into()))?;
        let name = &line[..split];
        let Some(f) = family.as_deref() else { return Err(bad("a sample before any # TYPE".into())) };
        if !is_metric_name(name) || !SUFFIXES.iter().any(|s| name.strip_suffix(s) == Some(f)) {
            return Err(bad(format!("not a sample of family {f}")));
        }
        let (labels, rest) =
            if line[split..].starts_with('{') { labels(&line[split..]).map_err(bad)? } else { (BTreeMap::new(), &line[split..]) };
        let mut fields = rest.strip_prefix(' ').ok_or_else(|| bad("no space before the value".into()))?.split(' ');
        let value = fields.next().and_then(number).ok_or_else(|| bad("the value is not a number".into()))?;
        match fields.next() {
            None => {}
            Some(ts) if number(ts).is_some() && fields.next().is_none() => {}
            Some(_) => return Err(bad("trailing text after the value".into())),
        }
        if !seen.insert(format!("{name}{labels:?}")) {
            return Err(bad("the same series twice".into()));
        }
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    Ok(samples)
}
