//! What the start-up checks ask a backend's catalog beyond a table's own entry, for errors that
//! say what to do: a table whose name differs only in case, and whether a failed `create_table`
//! (or a look at the table) met a schema that does not exist; and whether the backend's text
//! holds a NUL character.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};

use crate::project::TableName;
use crate::storage::StoreError;

/// PostgreSQL's `invalid_schema_name`: `CREATE TABLE` into a schema that does not exist.
const INVALID_SCHEMA_NAME: &str = "3F000";

pub(crate) trait Lookup {
    /// Whether text (and JSON, which the backend keeps as text) holds a NUL character.
    const TEXT_HOLDS_NUL: bool;
    /// Tables that `table` would name if case did not matter, as `table` is configured.
    fn other_case(&mut self, table: &TableName) -> Result<Vec<String>, StoreError>;
    /// Whether `e`, the error of creating or reading `table`, means its schema does not exist.
    fn schema_missing(&mut self, table: &TableName, e: &StoreError) -> Result<bool, StoreError>;
    /// Whether the schema `table` names (if it names one) does not exist.
    fn no_such_schema(&mut self, table: &TableName) -> Result<bool, StoreError>;
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

impl Lookup for PgConnection {
    const TEXT_HOLDS_NUL: bool = false;

    fn other_case(&mut self, table: &TableName) -> Result<Vec<String>, StoreError> {
        // Without a schema, the ones the search path would find the table in.
        let names = diesel::sql_query(
            "SELECT CASE WHEN $1 THEN n.nspname || '.' ELSE '' END || c.relname AS name \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'f') AND lower(c.relname) = lower($2) \
             AND CASE WHEN $1 THEN lower(n.nspname) = lower($3) ELSE n.nspname = ANY (current_schemas(false)) END \
             ORDER BY 1",
        )
        .bind::<Bool, _>(table.schema.is_some())
        .bind::<Text, _>(&table.name)
        .bind::<Nullable<Text>, _>(table.schema.as_deref())
        .load::<Name>(self)?;
        Ok(names.into_iter().map(|n| n.name).collect())
    }

    fn schema_missing(&mut self, _: &TableName, e: &StoreError) -> Result<bool, StoreError> {
        Ok(e.code().as_deref() == Some(INVALID_SCHEMA_NAME))
    }

    fn no_such_schema(&mut self, table: &TableName) -> Result<bool, StoreError> {
        let Some(schema) = &table.schema else { return Ok(false) };
        let found = diesel::sql_query("SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1")
            .bind::<Text, _>(schema)
            .get_result::<Count>(self)?;
        Ok(found.n == 0)
    }
}

impl Lookup for SqliteConnection {
    /// A value is bound with its length, so TEXT keeps it whole.
    const TEXT_HOLDS_NUL: bool = true;

    /// SQLite compares table names without case: a table in another case is the table.
    fn other_case(&mut self, _: &TableName) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    /// SQLite reports an unknown schema with the generic `SQLITE_ERROR`: the schemas it has
    /// (its attached databases) tell instead.
    fn schema_missing(&mut self, table: &TableName, _: &StoreError) -> Result<bool, StoreError> {
        self.no_such_schema(table)
    }

    fn no_such_schema(&mut self, table: &TableName) -> Result<bool, StoreError> {
        let Some(schema) = &table.schema else { return Ok(false) };
        let found = diesel::sql_query("SELECT count(*) AS n FROM pragma_database_list WHERE name = ?1 COLLATE NOCASE")
            .bind::<Text, _>(schema)
            .get_result::<Count>(self)?;
        Ok(found.n == 0)
    }
}
