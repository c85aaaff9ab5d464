//! PostgreSQL binary `COPY` encoding, into a reusable buffer.
//!
//! Format: the 19-byte header, then per tuple an i16 field count and per field an i32 length
//! (-1 for NULL) followed by the value in its binary send format, then an i16 -1 trailer.

use chrono::{DateTime, Utc};

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;

/// Appends binary COPY data to a borrowed buffer (cleared first, capacity kept).
pub(super) struct CopyEncoder<'b> {
    buf: &'b mut Vec<u8>,
}

impl<'b> CopyEncoder<'b> {
    pub(super) fn new(buf: &'b mut Vec<u8>) -> Self {
        buf.clear();
        buf.extend_from_slice(HEADER);
        Self { buf }
    }

    /// Continue a stream already started: no header.
    pub(super) fn resume(buf: &'b mut Vec<u8>) -> Self {
        buf.clear();
        Self { buf }
    }

    /// The bytes so far, for streaming a chunk (no trailer).
    pub(super) fn written(self) -> &'b [u8] {
        self.buf
    }

    pub(super) fn tuple(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    pub(super) fn bytes(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.null(),
            Some(b) => {
                self.buf.extend_from_slice(&(b.len() as i32).to_be_bytes());
                self.buf.extend_from_slice(b);
            }
        }
    }

    pub(super) fn text(&mut self, v: Option<&str>) {
        self.bytes(v.map(str::as_bytes));
    }

    pub(super) fn int4(&mut self, v: i32) {
        self.buf.extend_from_slice(&4i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn int8(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    pub(super) fn timestamptz(&mut self, v: Option<DateTime<Utc>>) {
        match v {
            None => self.null(),
            Some(t) => self.int8(t.timestamp_micros() - PG_EPOCH_OFFSET_MICROS),
        }
    }

    /// jsonb's binary format: a version byte (1) and the JSON text.
    pub(super) fn jsonb(&mut self, v: Option<&str>) {
        match v {
            None => self.null(),
            Some(s) => {
                self.buf.extend_from_slice(&((s.len() + 1) as i32).to_be_bytes());
                self.buf.push(1);
                self.buf.extend_from_slice(s.as_bytes());
            }
        }
    }

    pub(super) fn finish(self) -> &'b [u8] {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_header_fields_and_trailer() {
        let mut buf = Vec::new();
        let mut e = CopyEncoder::new(&mut buf);
        e.tuple(3);
        e.int4(7);
        e.text(None);
        e.jsonb(Some("{}"));
        let out = e.finish();
        assert_eq!(&out[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(out.len(), 19 + 2 + 8 + 4 + 7 + 2);
        assert_eq!(&out[out.len() - 2..], &[0xff, 0xff]);
    }
}
