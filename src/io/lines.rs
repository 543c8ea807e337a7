//! Reading newline-delimited input with a bound on line length.

use std::io::{self, BufRead};

/// One input line: its 1-based number, its bytes (at most a little more than the limit), and
/// its full length. It borrows the reader, so the next line can reuse the same memory.
pub struct Line<'a> {
    pub number: u64,
    pub bytes: &'a [u8],
    pub full_len: usize,
}

/// The UTF-8 byte-order mark, which Windows tools write at the start of a text file.
const BYTE_ORDER_MARK: &[u8] = b"\xEF\xBB\xBF";

/// Reads lines without ever buffering more than `max_bytes` of one line: a longer line is
/// consumed to its end and reported with its true length, so one bad producer cannot exhaust
/// memory. A byte-order mark at the very start of the input is skipped: it marks the encoding
/// of the file, it is not part of its first line (anywhere else it is the line's, and the
/// decoder refuses it).
///
/// A line that lies whole in the inner reader's buffer (nearly every line) is lent from there,
/// uncopied; only one that spans refills is copied, into a buffer kept between lines. This is
/// the loop of `vigil run`: allocating and copying every line cost a tenth of its time.
pub struct LineReader<R> {
    inner: R,
    count: Count,
    /// Bytes of the inner buffer the line last lent holds, consumed when the next is read.
    lent: usize,
    /// The line, when it did not lie whole in the inner buffer.
    spanning: Vec<u8>,
}

/// What the reader knows of the lines before: apart from the inner reader, so that a line can
/// be measured while it is still borrowed from there.
struct Count {
    max_bytes: usize,
    number: u64,
    at_start: bool,
}

/// Where a line's kept bytes lie within what was read, and how long it really is.
struct Bounds {
    start: usize,
    end: usize,
    full_len: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R, max_bytes: usize) -> Self {
        LineReader {
            inner,
            count: Count {
                max_bytes,
                number: 0,
                at_start: true,
            },
            lent: 0,
            spanning: Vec::new(),
        }
    }

    /// The next non-empty line, or `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            self.inner.consume(std::mem::take(&mut self.lent));
            let available = self.inner.fill_buf()?;
            if available.is_empty() {
                return Ok(None);
            }
            let Some(newline) = memchr::memchr(b'\n', available) else {
                let Some(Bounds {
                    start,
                    end,
                    full_len,
                }) = self.read_spanning()?
                else {
                    continue;
                };
                return Ok(Some(Line {
                    number: self.count.number,
                    bytes: &self.spanning[start..end],
                    full_len,
                }));
            };
            let line = &available[..newline];
            let bounds = self.count.bounds(line, newline, line.last().copied());
            self.lent = newline + 1;
            let Some(Bounds {
                start,
                end,
                full_len,
            }) = bounds
            else {
                continue;
            };
            // The same buffer again (`fill_buf` reads nothing while it holds unconsumed bytes):
            // lending the first borrow would keep the reader borrowed across the loop.
            let bytes = self.inner.fill_buf()?.get(start..end).ok_or_else(|| {
                io::Error::other("the input's buffer changed without being consumed")
            })?;
            return Ok(Some(Line {
                number: self.count.number,
                bytes,
                full_len,
            }));
        }
    }

    /// Reads a line that does not lie whole in the inner buffer into `spanning`, keeping at
    /// most `max_bytes + 1` of it; `None` when it is blank.
    fn read_spanning(&mut self) -> io::Result<Option<Bounds>> {
        self.spanning.clear();
        let mut full_len = 0usize;
        let mut last_byte = None;
        loop {
            let available = self.inner.fill_buf()?;
            if available.is_empty() {
                break;
            }
            let (chunk, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            full_len += chunk.len();
            if let Some(&b) = chunk.last() {
                last_byte = Some(b);
            }
            let room = self.count.keep().saturating_sub(self.spanning.len());
            self.spanning
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            let consumed = done.unwrap_or(available.len());
            self.inner.consume(consumed);
            if done.is_some() {
                break;
            }
        }
        Ok(self.count.bounds(&self.spanning, full_len, last_byte))
    }
}

impl Count {
    /// How many bytes of a long line are kept: one more than the limit (so that it shows as
    /// too long), after a byte-order mark that may yet be skipped.
    fn keep(&self) -> usize {
        let mark = if self.at_start {
            BYTE_ORDER_MARK.len()
        } else {
            0
        };
        self.max_bytes + 1 + mark
    }

    /// The bounds of the line whose kept bytes are `kept` (all of it, or its first
    /// `max_bytes + 1`), `full_len` bytes before the newline and ending in `last_byte`; `None`
    /// when it is blank (and skipped). Counts the line either way.
    fn bounds(&mut self, kept: &[u8], full_len: usize, last_byte: Option<u8>) -> Option<Bounds> {
        self.number += 1;
        let whole = kept.len() == full_len;
        let (mut start, mut full_len) = (0, full_len);
        if std::mem::take(&mut self.at_start) && kept.starts_with(BYTE_ORDER_MARK) {
            start = BYTE_ORDER_MARK.len();
            full_len -= BYTE_ORDER_MARK.len();
        }
        let mut end = kept.len();
        if last_byte == Some(b'\r') {
            full_len -= 1;
            if whole {
                end -= 1;
            }
        }
        let end = end.clamp(start, start + self.max_bytes + 1);
        if kept[start..end].iter().all(u8::is_ascii_whitespace) && full_len <= self.max_bytes {
            return None;
        }
        Some(Bounds {
            start,
            end,
            full_len,
        })
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
        assert_eq!((first.number, first.bytes), (1, &b"{\"a\":1}"[..]));
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
        assert_eq!((line.number, line.bytes), (2, &b"{}"[..]));
        // After a blank first line, a mark is not at the start of the input.
        let mut reader = LineReader::new(&b"\n\xEF\xBB\xBF{}"[..], 100);
        assert_eq!(
            reader.next_line().unwrap().unwrap().bytes,
            b"\xEF\xBB\xBF{}"
        );
    }

    /// What the reader must give, read the plain way: the whole input split at newlines.
    fn reference(input: &[u8], max_bytes: usize) -> Vec<(u64, Vec<u8>, usize)> {
        let mut lines = Vec::new();
        let mut pieces: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        if input.ends_with(b"\n") || input.is_empty() {
            pieces.pop();
        }
        for (i, piece) in pieces.into_iter().enumerate() {
            let mut line = piece;
            if i == 0 {
                line = line.strip_prefix(BYTE_ORDER_MARK).unwrap_or(line);
            }
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() <= max_bytes && line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let kept = &line[..line.len().min(max_bytes + 1)];
            lines.push((i as u64 + 1, kept.to_vec(), line.len()));
        }
        lines
    }

    proptest::proptest! {
        #[test]
        fn gives_the_lines_a_plain_split_gives_whatever_the_buffer_size(
            pieces in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::collection::vec(proptest::sample::select(
                        b"ab {}\"\r\t".to_vec()), 0..30),
                    proptest::strategy::Just(BYTE_ORDER_MARK.to_vec()),
                    proptest::strategy::Just(b"\r\n".to_vec()),
                ],
                0..12,
            ),
            newline_after in proptest::collection::vec(proptest::bool::ANY, 12),
            capacity in proptest::sample::select(vec![1usize, 2, 3, 5, 16, 8192]),
            max_bytes in 1usize..40,
        ) {
            let mut input = Vec::new();
            for (piece, newline) in pieces.iter().zip(&newline_after) {
                input.extend_from_slice(piece);
                if *newline {
                    input.push(b'\n');
                }
            }
            let buffered = io::BufReader::with_capacity(capacity, input.as_slice());
            let mut reader = LineReader::new(buffered, max_bytes);
            let mut got = Vec::new();
            while let Some(line) = reader.next_line().expect("reading memory") {
                got.push((line.number, line.bytes.to_vec(), line.full_len));
            }
            proptest::prop_assert_eq!(got, reference(&input, max_bytes));
        }
    }
}
