//! Plain JSON: any JSON object, stored whole in `data`; no attributes.

use super::decode::{Decoder, Record, RowParts};
use super::headers::{headers_capacity, write_headers_json};
use crate::records::{Refusal, RowTextBuilder};

/// Takes every record: its value must be a valid JSON object.
pub(super) struct Plain;

impl Decoder for Plain {
    fn decode(&self, record: &Record<'_>) -> Option<Result<RowParts, Refusal>> {
        Some(record.object().map(|(text, _)| {
            let msg = record.msg;
            let text = RowTextBuilder::new(msg, headers_capacity(msg, 0))
                .push(None)
                .push(None)
                .push(None)
                .push(None)
                .push(record.content_type)
                .push(Some(text))
                .push_with(|out| write_headers_json(out, msg.headers(), &[]))
                .finish();
            (None, text)
        }))
    }
}
