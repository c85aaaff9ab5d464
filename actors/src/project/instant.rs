//! Instants out of what messages carry: ISO-8601 text and epoch numbers in a unit a column
//! names or that their size gives, each kept to the microsecond both databases store and to the
//! years 0001–9999 both can write and compare.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use super::decimal::Decimal;

/// What an epoch number counts (`unit = "..."` on a column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Seconds,
    Millis,
    Micros,
    Nanos,
    /// Days since 1970-01-01 (Avro's, Kafka Connect's and Debezium's `date`).
    Days,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Millis => "millis",
            Unit::Micros => "micros",
            Unit::Nanos => "nanos",
            Unit::Days => "days",
        }
    }
}

/// Epoch numbers below 10^11 are seconds (10^11 s is the year 5138), above it milliseconds.
const MILLIS_FROM_DIGITS: i64 = 11;
/// Into a `date` column, numbers below 10^6 are days (as seconds they would all fall in the
/// first 12 days of 1970).
const DAYS_BELOW_DIGITS: i64 = 6;

/// The instant an epoch number names: in `unit`, or by its size (days below 10^6 into a date,
/// else seconds below 10^11, else milliseconds); rounded to the microsecond.
pub(crate) fn from_epoch(n: &Decimal, unit: Option<Unit>, date: bool) -> Result<DateTime<Utc>, String> {
    let unit = unit.unwrap_or(if date && n.below_power_of_ten(DAYS_BELOW_DIGITS) {
        Unit::Days
    } else if n.below_power_of_ten(MILLIS_FROM_DIGITS) {
        Unit::Seconds
    } else {
        Unit::Millis
    });
    let micros = match unit {
        Unit::Seconds => n.scaled_i64(6),
        Unit::Millis => n.scaled_i64(3),
        Unit::Micros => n.scaled_i64(0),
        Unit::Nanos => n.scaled_i64(-3),
        Unit::Days => n.times(86_400).scaled_i64(6),
    };
    let t = micros.and_then(|m| Utc.timestamp_micros(m).single());
    match t.filter(in_years) {
        Some(t) => Ok(t),
        None => Err(format!(
            "as epoch {} it is {}, outside the years 0001-9999 (if the number counts another unit, set unit = \
             \"seconds\", \"millis\", \"micros\", \"nanos\" or \"days\" on the column)",
            unit.name(),
            t.map_or_else(|| "far out of range".to_string(), |t| format!("in the year {}", t.year()))
        )),
    }
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z as epoch seconds: compared, not
/// computed into a calendar year for every value.
const FIRST_SECOND: i64 = -62_135_596_800;
const LAST_SECOND: i64 = 253_402_300_799;

fn in_years(t: &DateTime<Utc>) -> bool {
    (FIRST_SECOND..=LAST_SECOND).contains(&t.timestamp())
}

/// `t` rounded to the microsecond (half up), as both databases store it.
pub(crate) fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let rem = i64::from(t.nanosecond() % 1000);
    if rem == 0 {
        return t;
    }
    t - chrono::Duration::nanoseconds(rem) + chrono::Duration::nanoseconds(if rem >= 500 { 1000 } else { 0 })
}

/// `t` if its year is one both databases write as four digits.
pub(crate) fn checked(t: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = to_micros(t);
    if in_years(&t) {
        Ok(t)
    } else {
        Err(format!("the year {} is outside 0001-9999", t.year()))
    }
}

/// ISO-8601 with an offset (RFC 3339, `T` or a space), or without one (taken as UTC).
pub(crate) fn parse_iso(s: &str) -> Option<DateTime<Utc>> {
    if let Some((t, _)) = plain_iso(s) {
        return Some(t.and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    parse_naive(s).map(|n| n.and_utc())
}

/// ISO-8601 without an offset: a date and time, or a date (midnight).
pub(crate) fn parse_naive(s: &str) -> Option<NaiveDateTime> {
    if let Some((t, utc)) = plain_iso(s) {
        // A `Z` is an offset: none of the forms below takes it.
        return (!utc).then_some(t);
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    parse_date(s).and_then(|d| d.and_hms_opt(0, 0, 0))
}

/// The form tributary writes and most sources send, read without chrono's format parser (which
/// reads its format string anew each time, and `parse_naive` tries five): `YYYY-MM-DD`, `T` or a
/// space, `HH:MM:SS`, a fraction of 1–9 digits or none, then nothing or `Z` (`true`). Anything
/// else is `None` and left to chrono, so what it reads it reads as chrono does.
fn plain_iso(s: &str) -> Option<(NaiveDateTime, bool)> {
    let b = s.as_bytes();
    let (body, utc) = match b.last()? {
        b'Z' => (&b[..b.len() - 1], true),
        _ => (b, false),
    };
    if body.len() < 19 || body[4] != b'-' || body[7] != b'-' || !matches!(body[10], b'T' | b' ') || body[13] != b':' || body[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        body[from..to].iter().try_fold(0u32, |n, d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    let nanos = match &body[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => num(20, body.len())? * 10u32.pow(9 - digits.len() as u32),
        _ => return None,
    };
    // A leap second (60) is chrono's to read.
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let time = if second < 60 { chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)? } else { return None };
    let date = NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    Some((date.and_time(time), utc))
}

pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str, unit: Option<Unit>, date: bool) -> Result<String, String> {
        from_epoch(&Decimal::parse(s).unwrap(), unit, date).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }

    #[test]
    fn an_epoch_number_is_read_in_its_unit_or_by_its_size() {
        assert_eq!(at("1700000000", None, false).unwrap(), "2023-11-14T22:13:20.000000Z");
        assert_eq!(at("1700000000000", None, false).unwrap(), "2023-11-14T22:13:20.000000Z");
        assert_eq!(at("1700000000.1234565", None, false).unwrap(), "2023-11-14T22:13:20.123457Z", "exact, rounded to µs");
        let far = at("1700000000000000", None, false).unwrap_err();
        assert!(far.contains("year 55840") && far.contains("unit"), "{far}");
        assert_eq!(at("1700000000000000", Some(Unit::Micros), false).unwrap(), "2023-11-14T22:13:20.000000Z");
        assert_eq!(at("1700000000000000123", Some(Unit::Nanos), false).unwrap(), "2023-11-14T22:13:20.000000Z");
        assert_eq!(at("19279", None, true).unwrap(), "2022-10-14T00:00:00.000000Z", "days into a date");
        assert_eq!(at("19279", None, false).unwrap(), "1970-01-01T05:21:19.000000Z", "seconds into a timestamp");
        assert_eq!(at("-719162", Some(Unit::Days), false).unwrap(), "0001-01-01T00:00:00.000000Z");
        assert!(at("-719163", Some(Unit::Days), false).is_err(), "the year 0");
        assert!(at("1e400", None, false).is_err());
    }

    #[test]
    fn the_first_and_last_seconds_are_the_years_bounds() {
        assert_eq!(Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap().timestamp(), FIRST_SECOND);
        assert_eq!(Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap().timestamp(), LAST_SECOND);
    }

    /// The slow path alone: what `parse_iso` and `parse_naive` read without `plain_iso`.
    fn chrono_iso(s: &str) -> Option<DateTime<Utc>> {
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Some(t.with_timezone(&Utc));
        }
        for f in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
            if let Ok(t) = DateTime::parse_from_str(s, f) {
                return Some(t.with_timezone(&Utc));
            }
        }
        chrono_naive(s).map(|n| n.and_utc())
    }

    fn chrono_naive(s: &str) -> Option<NaiveDateTime> {
        for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
                return Some(t);
            }
        }
        parse_date(s).and_then(|d| d.and_hms_opt(0, 0, 0))
    }

    #[test]
    fn the_plain_form_reads_as_chrono_reads_it() {
        let mut texts: Vec<String> = [
            "2025-11-24T16:00:00.123456Z",
            "2025-11-24 16:00:00.123456",
            "2025-11-24T16:00:00",
            "2025-11-24T16:00:00Z",
            "2024-02-29T23:59:59.999999999Z",
            "2023-02-29T00:00:00",
            "2025-11-24T24:00:00",
            "2025-11-24T23:60:00",
            "2016-12-31T23:59:60Z",
            "2025-11-24T16:00:00.",
            "2025-11-24T16:00:00.1234567891Z",
            "2025-11-24T16:00:00.1",
            "0000-01-01T00:00:00",
            "9999-12-31T23:59:59.999999Z",
            "2025-11-24t16:00:00z",
            "2025-11-24T16:00:00+02:00",
            "2025-11-24T16:00:00.5-05:30",
            "2025-11-24T16:00",
            "2025-11-24",
            "+2025-11-24T16:00:00",
            "2025-1-24T16:00:00",
            "2025-11-24T16:0a:00",
            "2025-11-24T16:00:00 ",
            " 2025-11-24T16:00:00",
            "2025-11-24T16:00:00ZZ",
            "2025-13-01T00:00:00",
            "2025-11-24T16:00:00.-1",
            "2025-11-24X16:00:00",
            "",
            "Z",
            "12345-01-01T00:00:00",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut seed = 42u64;
        for _ in 0..2000 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let t = DateTime::from_timestamp((seed >> 20) as i64 % 253_402_300_800, (seed % 1_000_000_000) as u32).unwrap();
            let digits = (seed >> 8) as usize % 10;
            let nanos = format!("{:09}", t.nanosecond());
            let f = if digits == 0 { String::new() } else { format!(".{}", &nanos[..digits]) };
            let sep = if seed & 1 == 0 { "T" } else { " " };
            let zone = if seed & 2 == 0 { "Z" } else { "" };
            texts.push(format!("{}{f}{zone}", t.format(&format!("%Y-%m-%d{sep}%H:%M:%S"))));
        }
        for s in &texts {
            assert_eq!(parse_iso(s), chrono_iso(s), "parse_iso({s:?})");
            assert_eq!(parse_naive(s), chrono_naive(s), "parse_naive({s:?})");
        }
    }

    #[test]
    fn instants_keep_microseconds_and_four_digit_years() {
        let t = parse_iso("2024-01-01T00:00:00.1234565Z").unwrap();
        assert_eq!(checked(t).unwrap().nanosecond(), 123_457_000);
        assert!(checked(Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap()).is_err());
        assert_eq!(parse_iso("2024-01-01T23:30:00-05:00").unwrap().to_rfc3339(), "2024-01-02T04:30:00+00:00", "UTC");
    }
}
