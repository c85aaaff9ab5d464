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
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t);
        }
    }
    parse_date(s).and_then(|d| d.and_hms_opt(0, 0, 0))
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

    #[test]
    fn instants_keep_microseconds_and_four_digit_years() {
        let t = parse_iso("2024-01-01T00:00:00.1234565Z").unwrap();
        assert_eq!(checked(t).unwrap().nanosecond(), 123_457_000);
        assert!(checked(Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap()).is_err());
        assert_eq!(parse_iso("2024-01-01T23:30:00-05:00").unwrap().to_rfc3339(), "2024-01-02T04:30:00+00:00", "UTC");
    }
}
