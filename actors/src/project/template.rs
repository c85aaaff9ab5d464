//! A template table name (`table = "${source.table}"`): each change event names the table it
//! goes to, from its topic and its `source` block, so one projection replicates a database.

use super::cdc::Change;
use super::source::pointer_text;
use super::table_name::TableName;

/// What a template's part is filled with.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Topic,
    /// A field of the change event's `source` (`db`, `schema`, `table`).
    Source(&'static str),
}

/// A table name with `${...}` in it: the schema (before a `.`) and the name, each parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    schema: Option<Vec<Part>>,
    name: Vec<Part>,
}

/// The names a template may use.
pub(crate) const VARIABLES: &str = "${topic}, ${source.db}, ${source.schema}, ${source.table}";

impl Template {
    /// `None`: no `${` in it (a plain table name).
    pub(crate) fn parse(table: &str) -> Result<Option<Template>, String> {
        let table = table.trim();
        if !table.contains("${") {
            return Ok(None);
        }
        // A `.` outside a variable parts the schema from the name, so a value holding one can
        // never move the boundary.
        let mut halves = Vec::new();
        let mut rest = table;
        let mut parts = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("${") {
                let (var, tail) = after.split_once('}').ok_or_else(|| format!("{table:?} has a ${{ without its }}"))?;
                parts.push(match var.trim() {
                    "topic" => Part::Topic,
                    "source.db" => Part::Source("db"),
                    "source.schema" => Part::Source("schema"),
                    "source.table" => Part::Source("table"),
                    other => return Err(format!("{table:?} names ${{{other}}}, which is not one of {VARIABLES}")),
                });
                rest = tail;
            } else if let Some(tail) = rest.strip_prefix('.') {
                halves.push(std::mem::take(&mut parts));
                rest = tail;
            } else {
                // Up to the next variable or dot (a `$` without `{` is text).
                let end = [rest.find("${"), rest.find('.')].into_iter().flatten().min().unwrap_or(rest.len());
                let text = &rest[..end];
                if text.contains(['"', '\0', '{', '}']) {
                    return Err(format!("{table:?} holds {text:?}, which cannot be in a table name"));
                }
                match parts.last_mut() {
                    Some(Part::Text(t)) => t.push_str(text),
                    _ => parts.push(Part::Text(text.to_string())),
                }
                rest = &rest[end..];
            }
        }
        halves.push(parts);
        if halves.len() > 2 || halves.iter().any(Vec::is_empty) {
            return Err(format!("{table:?} is not \"name\" or \"schema.name\" (one dot, parts on both sides)"));
        }
        let name = halves.pop().unwrap_or_default();
        Ok(Some(Template { schema: halves.pop(), name }))
    }

    /// A template that always names `table`.
    pub(crate) fn constant(table: &TableName) -> Template {
        Template { schema: table.schema.clone().map(|s| vec![Part::Text(s)]), name: vec![Part::Text(table.name.clone())] }
    }

    /// The table a change event of `topic` names (`source`: its `source` block's JSON text);
    /// the error says what is missing or not a name.
    pub(crate) fn table(&self, topic: &str, source: Option<&str>) -> Result<TableName, String> {
        let fill = |parts: &[Part]| -> Result<String, String> {
            let mut out = String::new();
            for p in parts {
                match p {
                    Part::Text(t) => out.push_str(t),
                    Part::Topic => out.push_str(topic),
                    Part::Source(field) => {
                        let text = source.and_then(|s| pointer_text(s, &format!("/{field}")));
                        let value = text.and_then(|t| serde_json::from_str::<String>(t).ok());
                        match value {
                            Some(v) if !v.is_empty() => out.push_str(&v),
                            _ => {
                                return Err(format!(
                                    "the change event's source has no {field} (a non-empty string) for ${{source.{field}}}"
                                ))
                            }
                        }
                    }
                }
            }
            if out.is_empty() || out.contains(['"', '\0', '.']) {
                return Err(format!("the template gives {out:?}, which is not a table name (empty, or holding '.', '\"' or NUL)"));
            }
            Ok(out)
        };
        Ok(TableName { schema: self.schema.as_deref().map(fill).transpose()?, name: fill(&self.name)? })
    }
}

/// A template projection's change waiting for the writer, which knows the tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub table: TableName,
    pub(crate) change: Change<'static>,
    /// The record's key decoded from the registry's wire format (for `key:` pointers).
    pub(crate) key: Option<String>,
}

impl Pending {
    /// Bytes it holds.
    pub(crate) fn weight(&self) -> usize {
        let c = &self.change;
        let texts = [&c.before, &c.after, &c.source, &c.ts_ms, &c.key];
        std::mem::size_of::<Pending>()
            + texts.iter().flat_map(|t| t.as_deref()).map(str::len).sum::<usize>()
            + self.key.as_ref().map_or(0, String::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(t: &str, topic: &str, source: &str) -> Result<String, String> {
        Template::parse(t)?.expect("a template").table(topic, Some(source)).map(|t| t.to_string())
    }

    #[test]
    fn variables_fill_schema_and_name_and_a_value_never_moves_the_dot() {
        let src = r#"{"db":"inventory","schema":"public","table":"customers","lsn":1}"#;
        assert_eq!(name("${source.table}", "t", src).unwrap(), "customers");
        assert_eq!(name("${source.schema}.${source.table}", "t", src).unwrap(), "public.customers");
        assert_eq!(name("replica.${source.db}_${source.table}", "t", src).unwrap(), "replica.inventory_customers");
        assert_eq!(name("raw_${topic}", "dbserver1_orders", src).unwrap(), "raw_dbserver1_orders");
        assert_eq!(name(" x$y_${ source.table }z ", "t", src).unwrap(), "x$y_customersz");
        // A value holding a dot, a quote or nothing is no table name (never another schema).
        assert!(name("${topic}", "dbserver1.inventory.customers", src).unwrap_err().contains("not a table name"));
        assert!(name("${source.table}", "t", r#"{"table":"a\"b"}"#).is_err());
        assert!(name("${source.schema}.${source.table}", "t", r#"{"table":"c"}"#).unwrap_err().contains("no schema"));
        assert!(name("${source.table}", "t", r#"{"table":""}"#).is_err());
        assert!(name("${source.table}", "t", r#"{"table":7}"#).is_err());
        assert!(Template::parse("${source.table}").unwrap().unwrap().table("t", None).is_err());
    }

    #[test]
    fn a_plain_name_is_no_template_and_bad_templates_say_why() {
        assert_eq!(Template::parse("orders").unwrap(), None);
        assert!(Template::parse("${source.tabel}").unwrap_err().contains("${source.table}"));
        assert!(Template::parse("${source.table").unwrap_err().contains("without"));
        assert!(Template::parse("a.b.${source.table}").unwrap_err().contains("one dot"));
        assert!(Template::parse(".${source.table}").is_err());
        assert!(Template::parse("${source.table}.").is_err());
        assert!(Template::parse("\"${source.table}").is_err());
    }
}
