//! One `[projection.columns]` entry, checked on its own (no database).

use super::coerce::KeyForm;
use super::source::Source;
use super::spec::ColumnSpec;
use super::{Column, Nul, SpecError, SqlType};

impl Column {
    /// One configured column, checked.
    pub(super) fn checked(projection: &str, col: &str, cs: &ColumnSpec, cdc: bool) -> Result<Column, SpecError> {
        let err = |key: &str, problem: String, fix: &str| SpecError::new(projection, key, problem, fix);
        let key = format!("columns.{col}");
        if col.is_empty() || col.contains(['"', '\0']) {
            return Err(err(&key, "is not a column name".into(), "name columns without quotes or NUL"));
        }
        let source = |from: &str| {
            let s = Source::parse(from).map_err(|p| err(&key, p, "see docs/projections.md#sources"))?;
            if matches!(s, Source::Debezium(_)) && !cdc {
                return Err(err(
                    &key,
                    format!("{from:?} reads a change event's envelope"),
                    "set envelope = \"debezium\", or use another source",
                ));
            }
            Ok(s)
        };
        let (source, ty, required, unit, scale) = match cs {
            ColumnSpec::From(from) => (source(from)?, None, false, None, None),
            ColumnSpec::Full(f) => {
                let source = match (&f.from, &f.value) {
                    (Some(_), Some(_)) => return Err(err(&key, "has both from and value".into(), "keep one of them")),
                    (None, None) => return Err(err(&key, "has neither from nor value".into(), "add from = \"/field\" or value = ...")),
                    (Some(from), None) => source(from)?,
                    (None, Some(v)) => Source::Constant(v.to_string()),
                };
                let ty = match &f.ty {
                    None => None,
                    Some(t) => Some(SqlType::parse(t).ok_or_else(|| {
                        err(
                            &format!("{key}.type"),
                            format!("{t:?} is not a type tributary writes"),
                            "use one of text, smallint, integer, bigint, numeric, real, double precision, boolean, timestamptz, \
                             timestamp, date, uuid, json, jsonb, bytea — or leave type out to use the table's",
                        )
                    })?),
                };
                if let (Some(u), Some(t)) = (f.unit, ty) {
                    if !t.is_time() {
                        return Err(err(
                            &format!("{key}.unit"),
                            format!("unit = {:?} counts time, and the column's type is {}", u.name(), t.name()),
                            "remove unit, or declare type = \"timestamptz\", \"timestamp\" or \"date\"",
                        ));
                    }
                }
                if f.scale.is_some() && ty != Some(SqlType::Numeric) {
                    return Err(err(
                        &format!("{key}.scale"),
                        "reads a decimal sent as base64 bytes, for a numeric column".into(),
                        "declare type = \"numeric\" with it, or remove scale",
                    ));
                }
                if f.scale.is_some_and(|s| s > 1000) {
                    return Err(err(&format!("{key}.scale"), "is over 1000".into(), "use the source column's scale"));
                }
                (source, ty, f.required, f.unit, f.scale)
            }
        };
        Ok(Column {
            name: col.to_string(),
            source,
            declared: ty,
            ty: ty.unwrap_or(SqlType::Text),
            table_type: String::new(),
            table_kind: None,
            element: None,
            required,
            unit,
            scale,
            key_form: KeyForm::Text,
            nul: Nul::Holds,
        })
    }
}
