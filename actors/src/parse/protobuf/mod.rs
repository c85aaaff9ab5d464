//! Confluent-framed Protobuf → JSON text.
//!
//! The registry hands us .proto text (plus the text of every referenced file); protox compiles it in
//! memory and prost-reflect decodes the payload dynamically. The JSON is written by hand (json.rs,
//! wkt.rs) because tributary's mapping differs from proto3 JSON: proto field names, exact 64-bit
//! numbers, every field present.

mod diag;
mod json;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use diag::read_varint;

use prost_reflect::{DescriptorPool, DynamicMessage, FileDescriptor, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

/// The name the main schema is compiled under: not a path anyone imports, so it cannot collide
/// with a reference's import path.
const MAIN_FILE: &str = "<registry schema>.proto";

/// A registry schema compiled to descriptors; cheap to share (the pool is reference-counted).
#[derive(Debug, Clone)]
pub(crate) struct ProtoSchema {
    main: FileDescriptor,
}

/// Serves the main schema and its references from memory.
struct MemoryResolver {
    files: HashMap<String, String>,
}

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.files.get(name) {
            Some(text) => File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

impl ProtoSchema {
    /// `main`: the .proto text the registry returned for the schema id; `imports`: (the import path
    /// as written in an `import` statement, its .proto text) for every schema reference,
    /// transitively. google/protobuf/*.proto imports resolve whether or not they are in `imports`.
    pub(crate) fn compile(main: &str, imports: &[(String, String)]) -> Result<ProtoSchema, String> {
        let mut files: HashMap<String, String> = imports.iter().cloned().collect();
        files.insert(MAIN_FILE.to_owned(), main.to_owned());
        let mut resolver = ChainFileResolver::new();
        // The built-in well-known types first: a registry that stores them as references may hold
        // them in its own printed form, and the compiled-in originals are the authoritative ones.
        resolver.add(GoogleFileResolver::new());
        resolver.add(MemoryResolver { files });
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.open_file(MAIN_FILE).map_err(|e| format!("the schema does not compile: {e}"))?;
        let pool: DescriptorPool = compiler.descriptor_pool();
        let main = pool.get_file_by_name(MAIN_FILE).ok_or_else(|| "the compiled schema lost its main file".to_owned())?;
        Ok(ProtoSchema { main })
    }

    /// `body`: the bytes after the 5-byte Confluent frame (magic 0 + 4-byte schema id): the
    /// message-index list, then the encoded message. Appends the message as JSON text to `out`;
    /// on Err `out` is left as it was.
    pub(crate) fn decode(&self, body: &[u8], out: &mut String) -> Result<(), String> {
        let (indexes, payload) = read_message_indexes(body)?;
        let desc = self.message_for(&indexes)?;
        let msg = match DynamicMessage::decode(desc.clone(), payload) {
            Ok(msg) => msg,
            Err(e) => return Err(diag::explain(&desc, payload, &e)),
        };
        let start = out.len();
        json::write_message(&msg, out).map_err(|e| {
            out.truncate(start);
            e.to_string()
        })
    }

    /// The message type an index path names: the first index counts the main file's top-level
    /// messages in declaration order, each next one the nested messages of the previous.
    fn message_for(&self, indexes: &[usize]) -> Result<MessageDescriptor, String> {
        let missing = || format!("message index {indexes:?} names no message in the schema");
        let (first, rest) = indexes.split_first().ok_or_else(missing)?;
        let mut desc = self.main.messages().nth(*first).ok_or_else(missing)?;
        for &index in rest {
            let child = desc.child_messages().nth(index);
            desc = child.ok_or_else(missing)?;
        }
        Ok(desc)
    }
}

/// Splits `body` into the message-index path and the encoded message. Confluent writes a zigzag
/// varint count and that many zigzag varint indexes; a count of 0 (the single byte 0x00) means [0].
fn read_message_indexes(body: &[u8]) -> Result<(Vec<usize>, &[u8]), String> {
    let mut pos = 0;
    let count = read_zigzag(body, &mut pos).ok_or("message-index list: truncated or bad count")?;
    if count == 0 {
        return Ok((vec![0], &body[pos..]));
    }
    // Each index takes at least one byte: a larger count is corrupt, and allocating for it is not
    // on.
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c <= body.len() - pos)
        .ok_or_else(|| format!("message-index list: count {count} does not fit the payload"))?;
    let mut indexes = Vec::with_capacity(count);
    for i in 0..count {
        let index = read_zigzag(body, &mut pos).ok_or_else(|| format!("message-index list: index {i} truncated or bad"))?;
        let index = usize::try_from(index).map_err(|_| format!("message-index list: index {i} is negative ({index})"))?;
        indexes.push(index);
    }
    Ok((indexes, &body[pos..]))
}

/// A zigzag-encoded varint (Java's ByteUtils.readVarint/readVarlong); None when truncated or
/// longer than 10 bytes.
fn read_zigzag(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let raw = read_varint(buf, pos)?;
    Some((raw >> 1) as i64 ^ -((raw & 1) as i64))
}
