//! Plain JSON: any JSON object, stored whole in `data`; no attributes. Its row is also the framed
//! formats' (`data_row`).

use super::decode::{Decoder, Record, RowParts};
use super::headers::{headers_capacity, write_headers_json};
use crate::records::{Refusal, RowTextBuilder};

/// Takes every record: its value must be a valid JSON object.
pub(super) struct Plain;

impl Decoder for Plain {
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>> {
        Some(record.object().map(|(text, _)| data_row(record, text, 0)))
    }
}

/// A row of `data` alone (no CloudEvents attributes): the record's value as JSON text, of which
/// `owned` bytes are not the record's own (decoded from another format).
pub(super) fn data_row(record: &Record<'_>, data: &str, owned: usize) -> RowParts {
    let msg = record.msg;
    let text = RowTextBuilder::new(msg, headers_capacity(msg, owned))
        .push(None)
        .push(None)
        .push(None)
        .push(None)
        .push(record.content_type)
        .push(Some(data))
        .push_with(|out| write_headers_json(out, msg.headers(), &[]))
        .finish();
    (None, text)
}
