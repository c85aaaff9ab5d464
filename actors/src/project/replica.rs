//! A projection of change events (`envelope = "debezium"`): a change event's op decides the
//! op, its row image feeds the columns, its key (else `before`) names the row a delete removes.

use super::cdc::{Change, ChangeOp, Event, Skip};
use super::coerce::KeyForm;
use super::source::{Input, Source};
use super::template::Pending;
use super::TableName;
use super::{Column, Nul, Op, OpKind, Projection, SpecError, SqlType};
use crate::records::{EventRow, RawMessage, Reason, Refusal};

impl Projection {
    /// The op a change event makes (`event`: the message's envelope, `None` when it has none).
    pub(crate) fn change_op(&self, index: u16, input: &Input<'_>, event: Option<&Event<'_>>) -> Result<Op, Refusal> {
        let invalid = |detail: &str| Refusal {
            reason: Reason::NotAChangeEvent,
            detail: format!("projection {}: {detail} (envelope = \"debezium\")", self.name),
        };
        let change = match event {
            None => return Err(invalid("the message has no JSON object to read a change event's envelope from")),
            Some(Event::Invalid(why)) => return Err(invalid(why)),
            Some(Event::NotARow(_)) => return Ok(Op::new(index, OpKind::Skip(Skip::NotARow), Vec::new())),
            Some(Event::Change(c)) => c,
        };
        // A skip needs no table: `apply_change` makes it whatever the projection's table is.
        let skipped = match change.op {
            ChangeOp::Truncate => !self.truncate,
            ChangeOp::Message => true,
            _ => false,
        };
        match &self.template {
            // The writer finds the table the change names, and makes the op with its columns.
            Some(template) if !skipped => {
                let table = template.table(input.topic, change.source.as_deref()).map_err(|why| Refusal {
                    reason: Reason::ProjectionNoTable,
                    detail: format!("projection {}: table = {:?}: {why}", self.name, self.spec.table),
                })?;
                let pending = Pending { table, change: change.to_static(), key: input.decoded_key().map(str::to_string) };
                Ok(Op { pending: Some(Box::new(pending)), ..Op::new(index, OpKind::Pending, Vec::new()) })
            }
            _ => self.apply_change(index, input, change),
        }
    }

    /// The op `change` makes, its table known.
    pub(crate) fn apply_change(&self, index: u16, input: &Input<'_>, change: &Change<'_>) -> Result<Op, Refusal> {
        let invalid = |detail: &str| Refusal {
            reason: Reason::NotAChangeEvent,
            detail: format!("projection {}: {detail} (envelope = \"debezium\")", self.name),
        };
        match change.op {
            ChangeOp::Create | ChangeOp::Read | ChangeOp::Update => {
                let Some(after) = change.after.as_deref() else {
                    return Err(invalid(&format!("op \"{}\" has no after image", change.op.letter())));
                };
                let mut input = input.for_change(change, after, change.key.as_deref());
                let cells = self.cells(&mut input, false)?;
                let ignored = self.ignored_fields(&mut input);
                Ok(Op { ignored, ..Op::new(index, OpKind::Change, cells) })
            }
            ChangeOp::Delete => {
                // The key names the row; `before` has it too (and all of it with REPLICA IDENTITY FULL).
                let mut input = match (change.key.as_deref(), change.before.as_deref()) {
                    (Some(key), before) => input.for_change(change, key, before),
                    (None, Some(before)) => input.for_change(change, before, None),
                    (None, None) => return Err(invalid("op \"d\" has neither a Kafka key nor a before image")),
                };
                Ok(Op::new(index, OpKind::Delete, self.cells(&mut input, true)?))
            }
            ChangeOp::Truncate if self.truncate => Ok(Op::new(index, OpKind::Truncate, Vec::new())),
            ChangeOp::Truncate => Ok(Op::new(index, OpKind::Skip(Skip::Truncate), Vec::new())),
            ChangeOp::Message => Ok(Op::new(index, OpKind::Skip(Skip::NotARow), Vec::new())),
        }
    }

    /// Whether a table is made from the change events' schema when a change names one missing.
    pub(crate) fn creates_from_schema(&self) -> bool {
        super::cdc::creates_from_schema(&self.spec)
    }

    /// Whether a field a change's schema has and the table lacks becomes a new column.
    pub(crate) fn adds_columns(&self) -> bool {
        self.spec.schema_evolution == super::spec::SchemaEvolution::AddColumns
    }

    /// The image's fields the table has no column for, when every field maps to its column.
    fn ignored_fields(&self, input: &mut Input<'_>) -> Option<Box<[String]>> {
        let table = self.map_all.as_ref().filter(|t| !t.is_empty())?;
        let mut ignored = Vec::new();
        for name in input.image_fields() {
            // As spelt: a field whose name differs from its column's only in case is not read
            // (pointers match exactly), so it is told and counted, never silently lost.
            if !table.contains(name) {
                ignored.push(name.to_string());
            }
        }
        (!ignored.is_empty()).then(|| ignored.into_boxed_slice())
    }

    /// Take what the table tells: with every field mapped, a column for each of the table's
    /// (`columns`: name, and whether a value can be written to it) not mapped already; the key
    /// from `primary` (the table's primary key) when none is configured.
    pub(crate) fn adopt_table<'c>(
        &mut self,
        columns: impl Iterator<Item = (&'c str, bool)>,
        primary: &[String],
        fold_case: bool,
    ) -> Result<(), SpecError> {
        self.fold_case = fold_case;
        let norm = |n: &str| if fold_case { n.to_ascii_lowercase() } else { n.to_string() };
        if let Some(mut all) = self.map_all.take() {
            all.clear();
            for (name, writable) in columns {
                all.insert(name.to_string());
                if writable && !self.columns.iter().any(|c| norm(&c.name) == norm(name)) {
                    self.columns.push(image_column(name));
                }
            }
            self.map_all = Some(all);
        }
        if self.deferred {
            let key = if self.spec.key.is_empty() { primary.to_vec() } else { self.spec.key.clone() };
            self.resolve(&key)?;
        }
        Ok(())
    }
}

/// A column fed by the row image's field of its name.
fn image_column(name: &str) -> Column {
    Column {
        name: name.to_string(),
        source: Source::Data(format!("/{}", name.replace('~', "~0").replace('/', "~1"))),
        declared: None,
        ty: SqlType::Text,
        table_type: String::new(),
        table_kind: None,
        element: None,
        required: false,
        unit: None,
        scale: None,
        key_form: KeyForm::Text,
        nul: Nul::Holds,
    }
}

impl Projection {
    /// This template projection, for one table it reached (to be checked against it).
    pub(crate) fn for_table(&self, table: TableName) -> Projection {
        Projection { table_id: table.to_string(), table, template: None, from_template: true, ..self.clone() }
    }

    /// The op a pending change makes with this projection (its table's), as the parser would
    /// have made it: `record` (of `topic`, `partition`) and `row` (when archived) are its message.
    pub(crate) fn pending_op(
        &self,
        index: u16,
        pending: &Pending,
        topic: &str,
        partition: i32,
        record: &RawMessage,
        row: Option<&EventRow>,
    ) -> Result<Op, Refusal> {
        let input = Input::new(topic, partition, record, row).with_key(pending.key.as_deref());
        self.apply_change(index, &input, &pending.change)
    }
}
