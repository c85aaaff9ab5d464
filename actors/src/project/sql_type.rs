//! The column types a projection writes: their names in the configuration, what each backend's
//! catalog calls them, and which may be written to which.

/// How `create_table` declares a `numeric` column on SQLite: its name holds TEXT, so SQLite's
/// affinity keeps a decimal's text, every digit of it.
pub(super) const NUMERIC_DECL: &str = "DECIMAL_TEXT";
const NUMERIC_DECL_LOWER: &str = "decimal_text";

/// Whether SQLite converts what a column declared `decl` is given into numbers where it can
/// (INTEGER, REAL or NUMERIC affinity, section 3.1 of its datatype page): such a column compares
/// numbers by value, and keeps only 15 significant digits of a decimal with a fraction.
pub(crate) fn sqlite_numeric_affinity(decl: &str) -> bool {
    let d = decl.to_ascii_lowercase();
    let has = |w: &str| d.contains(w);
    has("int") || !(has("char") || has("clob") || has("text") || has("blob") || d.trim().is_empty())
}

/// A column type as the configuration names it (`type = "..."`) or as read from the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlType {
    Text,
    SmallInt,
    Integer,
    BigInt,
    Numeric,
    Real,
    Double,
    Boolean,
    Timestamptz,
    Timestamp,
    Date,
    Uuid,
    Json,
    Jsonb,
    Bytea,
}

impl SqlType {
    pub const ALL: [SqlType; 15] = [
        SqlType::Text,
        SqlType::SmallInt,
        SqlType::Integer,
        SqlType::BigInt,
        SqlType::Numeric,
        SqlType::Real,
        SqlType::Double,
        SqlType::Boolean,
        SqlType::Timestamptz,
        SqlType::Timestamp,
        SqlType::Date,
        SqlType::Uuid,
        SqlType::Json,
        SqlType::Jsonb,
        SqlType::Bytea,
    ];

    /// The configuration's name, which is also PostgreSQL's.
    pub fn name(self) -> &'static str {
        match self {
            SqlType::Text => "text",
            SqlType::SmallInt => "smallint",
            SqlType::Integer => "integer",
            SqlType::BigInt => "bigint",
            SqlType::Numeric => "numeric",
            SqlType::Real => "real",
            SqlType::Double => "double precision",
            SqlType::Boolean => "boolean",
            SqlType::Timestamptz => "timestamptz",
            SqlType::Timestamp => "timestamp",
            SqlType::Date => "date",
            SqlType::Uuid => "uuid",
            SqlType::Json => "json",
            SqlType::Jsonb => "jsonb",
            SqlType::Bytea => "bytea",
        }
    }

    pub fn parse(name: &str) -> Option<SqlType> {
        let n = name.trim().to_ascii_lowercase();
        SqlType::ALL.into_iter().find(|t| t.name() == n)
    }

    /// The type of a column whose catalog names `udt` (PostgreSQL's `pg_type.typname`).
    pub fn of_postgres(udt: &str) -> Option<SqlType> {
        Some(match udt {
            "text" | "varchar" | "bpchar" | "citext" | "name" => SqlType::Text,
            "int2" => SqlType::SmallInt,
            "int4" => SqlType::Integer,
            "int8" => SqlType::BigInt,
            "numeric" => SqlType::Numeric,
            "float4" => SqlType::Real,
            "float8" => SqlType::Double,
            "bool" => SqlType::Boolean,
            "timestamptz" => SqlType::Timestamptz,
            "timestamp" => SqlType::Timestamp,
            "date" => SqlType::Date,
            "uuid" => SqlType::Uuid,
            "json" => SqlType::Json,
            "jsonb" => SqlType::Jsonb,
            "bytea" => SqlType::Bytea,
            _ => return None,
        })
    }

    /// The type of a SQLite column declared `decl`: our own names first, then SQLite's affinity
    /// rules (section 3.1 of its datatype page).
    pub fn of_sqlite(decl: &str) -> SqlType {
        let d = decl.trim().to_ascii_lowercase();
        let base = d.split('(').next().unwrap_or("").trim();
        match base {
            // SQLite's REAL is 8 bytes whatever the name: a value keeps a double's digits.
            "real" => return SqlType::Double,
            // What `create_table` declares a `numeric` column (TEXT affinity keeps every digit).
            NUMERIC_DECL_LOWER => return SqlType::Numeric,
            _ => {}
        }
        if let Some(t) = SqlType::parse(base) {
            return t;
        }
        match base {
            "datetime" | "timestamp with time zone" => return SqlType::Timestamptz,
            "timestamp without time zone" => return SqlType::Timestamp,
            "bool" => return SqlType::Boolean,
            "float" | "double" => return SqlType::Double,
            "decimal" => return SqlType::Numeric,
            _ => {}
        }
        if d.contains("int") {
            SqlType::BigInt
        } else if d.contains("char") || d.contains("clob") || d.contains("text") {
            SqlType::Text
        } else if d.is_empty() {
            // No declared type keeps any value as given: values without a `type` go as text, and
            // a declared one as its own (an untyped column is no blob to decode text into).
            SqlType::Text
        } else if d.contains("blob") {
            SqlType::Bytea
        } else if d.contains("real") || d.contains("floa") || d.contains("doub") {
            SqlType::Double
        } else {
            SqlType::Numeric
        }
    }

    /// How SQLite declares a column of this type (`create_table`): our own name, which
    /// [`SqlType::of_sqlite`] reads back and whose affinity keeps the value as written, except
    /// JSON (TEXT: a NUMERIC affinity would turn `"12"` into 12), bytes (BLOB) and decimals
    /// (`DECIMAL_TEXT`: TEXT affinity, as NUMERIC keeps only 15 digits of a decimal).
    pub fn sqlite_decl(self) -> &'static str {
        match self {
            SqlType::Numeric => NUMERIC_DECL,
            SqlType::Json | SqlType::Jsonb => "TEXT",
            SqlType::Bytea => "BLOB",
            other => other.name(),
        }
    }

    pub fn is_time(self) -> bool {
        matches!(self, SqlType::Timestamptz | SqlType::Timestamp | SqlType::Date)
    }

    pub fn is_number(self) -> bool {
        matches!(self, SqlType::SmallInt | SqlType::Integer | SqlType::BigInt | SqlType::Numeric | SqlType::Real | SqlType::Double)
    }

    /// Whether a value coerced to `self` may be written to a column of type `column` (the
    /// database's assignment casts; a value out of the column's range is then refused row by row).
    pub fn writable_to(self, column: SqlType) -> bool {
        use SqlType::*;
        self == column
            || column == Text
            || (self.is_number() && column.is_number())
            || matches!((self, column), (Json | Jsonb, Json | Jsonb) | (Timestamptz | Timestamp | Date, Timestamptz | Timestamp | Date))
    }
}
