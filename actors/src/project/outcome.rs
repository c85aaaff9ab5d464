//! What a projection's statements did, counted.

use super::cdc::Skip;

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a projection's statements did to its table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = ProjectionCounts)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Ops that changed nothing: an older version, an `update` or delete of a missing row.
    pub unchanged: u64,
    /// Change events' truncates applied (the rows they deleted are in `deleted`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncates: u64,
    /// Debezium's tombstones after deletes, passed over.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_tombstones: u64,
    /// Truncates passed over (`truncate = false`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_truncates: u64,
    /// Heartbeats, schema changes, transaction metadata and logical decoding messages.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_not_a_row: u64,
    /// Row-image fields the table has no column for, passed over.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ignored_fields: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.unchanged += o.unchanged;
        self.truncates += o.truncates;
        self.skipped_tombstones += o.skipped_tombstones;
        self.skipped_truncates += o.skipped_truncates;
        self.skipped_not_a_row += o.skipped_not_a_row;
        self.ignored_fields += o.ignored_fields;
    }

    pub fn skipped(&mut self, why: Skip) {
        match why {
            Skip::Tombstone => self.skipped_tombstones += 1,
            Skip::Truncate => self.skipped_truncates += 1,
            Skip::NotARow => self.skipped_not_a_row += 1,
        }
    }

    /// The rows by outcome, for metrics.
    pub fn outcomes(&self) -> [(&'static str, u64); 4] {
        [("inserted", self.inserted), ("updated", self.updated), ("deleted", self.deleted), ("unchanged", self.unchanged)]
    }

    /// The skips by what was skipped, for metrics.
    pub fn skips(&self) -> [(Skip, u64); 3] {
        [(Skip::Tombstone, self.skipped_tombstones), (Skip::Truncate, self.skipped_truncates), (Skip::NotARow, self.skipped_not_a_row)]
    }
}
