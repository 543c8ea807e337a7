//! The inputs of a backtest, merged by event time.
//!
//! Each input (a JSON-lines file, or stdin) is read in its own order, line by line, and the
//! inputs are merged k-way: the next event is the earliest among the next event of each input,
//! ties going to the input named first. Nothing is sorted: an input is taken to be in the order
//! its events happened, as a topic partition or an export is, and an event out of order within
//! its input is processed where it stands (late, perhaps, as it would be live). Memory is one
//! decoded event and one read buffer per input, whatever their size. With one input the events
//! go through in exactly the order `vigil run --input` gives them, so set A's outputs are
//! `vigil run`'s.
//!
//! A line that does not decode has no time to be merged by: it is handed over as soon as it is
//! read, with its bytes, for the dead-letter count (and file, when asked for).

use std::io::{self, BufRead};

use crate::event::{Decoder, Event};
use crate::io::lines::LineReader;
use crate::io::route::{self, Framed, Rejection};

/// One input: its name (as dead-letter and late records give it) and its lines.
pub struct Input {
    pub name: String,
    pub reader: Box<dyn BufRead>,
}

/// A line that did not decode.
pub struct Rejected<'a> {
    /// The name of its input.
    pub source: &'a str,
    pub line: u64,
    pub bytes: &'a [u8],
    pub full_len: usize,
    pub rejection: Rejection,
}

/// The next event of the merge, with where it came from.
pub struct Next {
    pub input: usize,
    pub line: u64,
    pub event: Event,
}

struct Head {
    line: u64,
    event: Event,
}

struct Open {
    name: String,
    lines: LineReader<Box<dyn BufRead>>,
    head: Option<Head>,
    done: bool,
}

/// The inputs, merged by event time.
pub struct Merge {
    inputs: Vec<Open>,
    started: bool,
    /// Bytes read so far, newlines included (for a progress bar).
    pub bytes_read: u64,
}

impl Merge {
    pub fn new(inputs: Vec<Input>, decoder: &Decoder) -> Self {
        Merge {
            inputs: inputs
                .into_iter()
                .map(|input| Open {
                    name: input.name,
                    lines: LineReader::new(input.reader, decoder.max_line_bytes()),
                    head: None,
                    done: false,
                })
                .collect(),
            started: false,
            bytes_read: 0,
        }
    }

    /// The name of input `i`.
    pub fn name(&self, i: usize) -> &str {
        self.inputs.get(i).map_or("", |input| input.name.as_str())
    }

    /// The earliest next event of the inputs, or `None` when all are read. Lines that do not
    /// decode, met on the way, go to `rejected` first.
    pub fn next(
        &mut self,
        decoder: &Decoder,
        rejected: &mut dyn FnMut(Rejected<'_>) -> io::Result<()>,
    ) -> io::Result<Option<Next>> {
        if !self.started {
            self.started = true;
            for i in 0..self.inputs.len() {
                self.advance(i, decoder, rejected)?;
            }
        }
        let mut earliest: Option<(usize, i64)> = None;
        for (i, input) in self.inputs.iter().enumerate() {
            if let Some(head) = &input.head {
                let t = head.event.time.millis();
                if earliest.is_none_or(|(_, best)| t < best) {
                    earliest = Some((i, t));
                }
            }
        }
        let Some((i, _)) = earliest else {
            return Ok(None);
        };
        let Some(head) = self.inputs[i].head.take() else {
            return Ok(None);
        };
        self.advance(i, decoder, rejected)?;
        Ok(Some(Next {
            input: i,
            line: head.line,
            event: head.event,
        }))
    }

    /// Reads input `i` up to its next event that decodes, handing the others to `rejected`.
    fn advance(
        &mut self,
        i: usize,
        decoder: &Decoder,
        rejected: &mut dyn FnMut(Rejected<'_>) -> io::Result<()>,
    ) -> io::Result<()> {
        let input = &mut self.inputs[i];
        if input.done {
            return Ok(());
        }
        loop {
            let Some(line) = input.lines.next_line()? else {
                input.done = true;
                return Ok(());
            };
            self.bytes_read += line.full_len as u64 + 1;
            let framed = Framed {
                bytes: Some(line.bytes),
                full_len: line.full_len,
            };
            match route::decode(decoder, framed) {
                Ok(event) => {
                    input.head = Some(Head {
                        line: line.number,
                        event,
                    });
                    return Ok(());
                }
                Err(rejection) => rejected(Rejected {
                    source: &input.name,
                    line: line.number,
                    bytes: line.bytes,
                    full_len: line.full_len,
                    rejection,
                })?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hr(id: &str, user: &str, time: &str) -> String {
        format!(
            r#"{{"id":"{id}","user_id":"{user}","type":"heart_rate","source":"t","time":"{time}","data":{{"heart_rate":60}}}}"#
        )
    }

    fn input(name: &str, lines: &[String]) -> Input {
        Input {
            name: name.to_string(),
            reader: Box::new(io::Cursor::new(lines.join("\n").into_bytes())),
        }
    }

    #[test]
    fn merges_by_event_time_ties_to_the_input_named_first_and_hands_over_bad_lines() {
        let a = input(
            "a",
            &[
                hr("a1", "u1", "2024-05-01T07:00:00Z"),
                "not json".to_string(),
                hr("a2", "u1", "2024-05-01T09:00:00Z"),
            ],
        );
        // Out of order within its input: processed where it stands, not sorted.
        let b = input(
            "b",
            &[
                hr("b1", "u2", "2024-05-01T09:00:00+02:00"),
                hr("b2", "u2", "2024-05-01T06:00:00Z"),
                hr("b3", "u2", "2024-05-01T09:00:00Z"),
            ],
        );
        let decoder = Decoder::new();
        let mut merge = Merge::new(vec![a, b], &decoder);
        let mut bad = Vec::new();
        let mut order = Vec::new();
        while let Some(next) = merge
            .next(&decoder, &mut |r| {
                bad.push((
                    r.source.to_string(),
                    r.line,
                    String::from_utf8_lossy(r.bytes).into_owned(),
                ));
                Ok(())
            })
            .expect("reading memory")
        {
            order.push((next.input, next.line, next.event.id));
        }
        assert_eq!(bad, vec![("a".to_string(), 2, "not json".to_string())]);
        let ids: Vec<&str> = order.iter().map(|(_, _, id)| id.as_str()).collect();
        assert_eq!(ids, ["a1", "b1", "b2", "a2", "b3"]);
        assert_eq!(order[3], (0, 3, "a2".to_string()));
        assert_eq!(merge.name(1), "b");
    }
}
