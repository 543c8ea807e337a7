//! Reading newline-delimited input with a bound on line length.

use std::io::{self, BufRead};

/// One input line: its 1-based number, its bytes (at most the limit), and its full length.
pub struct Line {
    pub number: u64,
    pub bytes: Vec<u8>,
    pub full_len: usize,
}

/// The UTF-8 byte-order mark, which Windows tools write at the start of a text file.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Reads lines without ever buffering more than `max_bytes` of one line: a longer line is
/// consumed to its end and reported with its true length, so one bad producer cannot exhaust
/// memory. A byte-order mark at the very start of the input is skipped: it marks the encoding
/// of the file, it is not part of its first line (anywhere else it is the line's, and the
/// decoder refuses it).
pub struct LineReader<R> {
    inner: R,
    max_bytes: usize,
    number: u64,
    at_start: bool,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max_bytes: usize) -> Self {
        LineReader {
            inner,
            max_bytes,
            number: 0,
            at_start: true,
        }
    }

    /// The next non-empty line, or `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let mut bytes = Vec::new();
            let mut full_len = 0usize;
            let mut saw_any = false;
            let mut last_byte = None;
            loop {
                let available = self.inner.fill_buf()?;
                if available.is_empty() {
                    break;
                }
                saw_any = true;
                let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
                    Some(i) => (&available[..i], Some(i + 1)),
                    None => (available, None),
                };
                full_len += chunk.len();
                if let Some(b) = chunk.last() {
                    last_byte = Some(*b);
                }
                let room = (self.max_bytes + 1).saturating_sub(bytes.len());
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                let consumed = done.unwrap_or(available.len());
                self.inner.consume(consumed);
                if done.is_some() {
                    break;
                }
            }
            if !saw_any {
                return Ok(None);
            }
            self.number += 1;
            if std::mem::take(&mut self.at_start) && bytes.starts_with(BYTE_ORDER_MARK) {
                bytes.drain(..BYTE_ORDER_MARK.len());
                full_len -= BYTE_ORDER_MARK.len();
            }
            if last_byte == Some(b'\r') {
                full_len -= 1;
                if bytes.len() <= full_len + 1 && bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            if bytes.iter().all(u8::is_ascii_whitespace) && full_len <= self.max_bytes {
                continue;
            }
            return Ok(Some(Line {
                number: self.number,
                bytes,
                full_len,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_long_lines_and_skips_blank_ones() {
        let input = b"{\"a\":1}\n\n  \nxxxxxxxxxxxxxxxxxxxx\r\nlast";
        let mut reader = LineReader::new(&input[..], 10);
        let first = reader.next_line().unwrap().unwrap();
        assert_eq!(
            (first.number, first.bytes.as_slice()),
            (1, &b"{\"a\":1}"[..])
        );
        let long = reader.next_line().unwrap().unwrap();
        assert_eq!(long.number, 4);
        assert_eq!(long.full_len, 20);
        assert!(long.bytes.len() <= 11);
        let last = reader.next_line().unwrap().unwrap();
        assert_eq!(last.bytes, b"last");
        assert!(reader.next_line().unwrap().is_none());
    }

    #[test]
    fn a_byte_order_mark_is_skipped_at_the_start_of_the_input_only() {
        let input = "\u{feff}{\"a\":1}\r\n\u{feff}{}\n";
        // Read a byte at a time too, so the mark arrives split across reads.
        for capacity in [1, 8192] {
            let buffered = io::BufReader::with_capacity(capacity, input.as_bytes());
            let mut reader = LineReader::new(buffered, 100);
            let first = reader.next_line().unwrap().unwrap();
            assert_eq!(first.bytes, b"{\"a\":1}");
            assert_eq!(first.full_len, 7);
            let second = reader.next_line().unwrap().unwrap();
            assert_eq!(second.bytes, "\u{feff}{}".as_bytes());
            assert!(reader.next_line().unwrap().is_none());
        }
        // A first line holding only the mark is blank; the numbering still counts it.
        let mut reader = LineReader::new(&b"\xEF\xBB\xBF\n{}"[..], 100);
        let line = reader.next_line().unwrap().unwrap();
        assert_eq!((line.number, line.bytes.as_slice()), (2, &b"{}"[..]));
        // After a blank first line, a mark is not at the start of the input.
        let mut reader = LineReader::new(&b"\n\xEF\xBB\xBF{}"[..], 100);
        assert_eq!(
            reader.next_line().unwrap().unwrap().bytes,
            b"\xEF\xBB\xBF{}"
        );
    }
}
