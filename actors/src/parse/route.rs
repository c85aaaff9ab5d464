//! One record through the parser and the projections: what the `Parser` does with an ingested
//! message and what a redrive does with a dead letter, written once so the two cannot drift.

use super::{dead_letter, parse_spanned, tombstone_row, ParseOptions, Parsed};
use crate::project::{Op, Unrouted, UNROUTED};
use crate::records::Refusal;
use crate::records::{DeadLetter, EventRow, RawMessage, Reason};

/// Where one record goes.
#[derive(Debug)]
pub(crate) enum Routed {
    /// Archived in `events` (the archive is on), and projected by `ops` (maybe none).
    Row {
        row: EventRow,
        ops: Vec<Op>,
    },
    /// Projected only (the archive is off): the record is kept for the dead letter, should the
    /// table refuse it.
    Projected {
        ops: Vec<Op>,
        record: RawMessage,
    },
    /// No projection takes it and the archive is off: counted, not written (`unrouted = "skip"`).
    Skipped,
    Dead(DeadLetter),
}

/// Parse one record of `topic`/`partition` and route it through `opts.plan`.
pub(crate) fn route_message(msg: RawMessage, topic: &str, partition: i32, opts: &ParseOptions) -> Routed {
    let plan = &*opts.plan;
    let archive = plan.events.enabled;
    let refused = |record: &RawMessage, e: crate::project::RouteError| {
        Routed::Dead(DeadLetter { projection: Some(e.projection), ..dead_letter(record, e.refusal) })
    };
    let not_taken = |record: &RawMessage| match plan.events.unrouted {
        Unrouted::Skip => Routed::Skipped,
        Unrouted::DeadLetter => Routed::Dead(dead_letter(record, Refusal::new(Reason::Unrouted, UNROUTED))),
    };
    let key = match super::framed::key(&msg, opts) {
        Ok(key) => key,
        Err(refusal) => return Routed::Dead(dead_letter(&msg, refusal)),
    };
    let key = key.as_deref();
    if !plan.is_empty() && msg.payload().is_none() {
        match plan.route_tombstone_keyed(topic, partition, &msg, key) {
            Ok(ops) if ops.is_empty() && !archive => return not_taken(&msg),
            // Nothing takes it: an `empty_payload` dead letter, as the parser makes any tombstone.
            Ok(ops) if ops.is_empty() => {}
            Ok(ops) if !archive => return Routed::Projected { ops, record: msg },
            // Taken and archived: its offset is an `events` row like any message a projection takes.
            Ok(ops) => {
                return match tombstone_row(msg) {
                    Parsed::Row(row) => Routed::Row { row, ops },
                    Parsed::Dead(d) => Routed::Dead(d),
                }
            }
            Err(e) => return refused(&msg, e),
        }
    }
    let changes = plan.reads_changes(topic);
    match parse_spanned(msg, opts, changes) {
        (Parsed::Row(row), _) if plan.is_empty() => Routed::Row { row, ops: Vec::new() },
        (Parsed::Row(row), spans) => {
            let routed = {
                // A change event's envelope is read once, for every projection of changes.
                let event = changes.then(|| {
                    let key = key.or_else(|| std::str::from_utf8(row.original.key()?).ok());
                    let typed = super::framed::avro_decoded(row.original.payload(), opts);
                    let data = row.data()?;
                    // The spans are the value's: they hold for data that is the value itself.
                    let value = row.original.payload().map(<[u8]>::as_ptr_range);
                    let spans = spans.filter(|_| value == Some(data.as_bytes().as_ptr_range()));
                    Some(super::cdc::read(data, spans.as_ref(), key, typed))
                });
                let mut event = event.flatten();
                if let Some(crate::project::cdc::Event::Change(c)) = &mut event {
                    if c.typed && c.schema.is_none() {
                        c.schema = super::framed::avro_row_schema(row.original.payload(), opts);
                    }
                }
                plan.route_keyed(topic, partition, &row, key, event.as_ref())
            };
            match routed {
                Err(e) => refused(&row.original, e),
                Ok(ops) if archive => Routed::Row { row, ops },
                Ok(ops) if ops.is_empty() => not_taken(&row.original),
                Ok(ops) => Routed::Projected { ops, record: row.original },
            }
        }
        (Parsed::Dead(d), _) => Routed::Dead(d),
    }
}
