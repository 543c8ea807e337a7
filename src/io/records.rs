//! The records written to the dead-letter and late-events outputs.

use serde::Serialize;

/// Bytes kept of an oversize payload in its dead-letter record.
pub const DEAD_LETTER_PAYLOAD_LIMIT: usize = 64 * 1024;

/// A rejected input line, with why and where it came from.
#[derive(Debug, Serialize)]
pub struct DeadLetter<'a> {
    pub reason: String,
    pub source: &'a str,
    pub line: u64,
    /// The original line as text (lossy when not UTF-8), cut at 64 KiB when oversize.
    pub payload: String,
    /// Length of the original line in bytes.
    pub payload_bytes: usize,
    pub truncated: bool,
}

impl<'a> DeadLetter<'a> {
    pub fn new(reason: String, source: &'a str, line: u64, bytes: &[u8], full_len: usize) -> Self {
        let kept = &bytes[..bytes.len().min(DEAD_LETTER_PAYLOAD_LIMIT)];
        DeadLetter {
            reason,
            source,
            line,
            payload: String::from_utf8_lossy(kept).into_owned(),
            payload_bytes: full_len,
            truncated: full_len > kept.len(),
        }
    }
}

/// An event that arrived too late for its user's event time.
#[derive(Debug, Serialize)]
pub struct LateEvent<'a> {
    pub reason: &'static str,
    pub source: &'a str,
    pub line: u64,
    /// How far behind the user's event time it was, ms.
    pub behind_ms: i64,
    pub event: serde_json::Value,
}
