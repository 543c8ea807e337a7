//! Input fed live (stdin from a pipe, a `tail -f`): the outputs written so far are flushed
//! whenever reading the input may wait, so an output never sits in a buffer while the
//! process waits for the next event. Between waits, output stays buffered: a backlog read
//! from the pipe is written in large blocks as from a file.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::rc::Rc;

/// A writer shared between the run's output sink and the input that flushes it.
#[derive(Clone)]
pub struct SharedOutput(Rc<RefCell<Box<dyn Write>>>);

impl SharedOutput {
    pub fn new(inner: Box<dyn Write>) -> SharedOutput {
        SharedOutput(Rc::new(RefCell::new(inner)))
    }
}

impl Write for SharedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// Buffered input that flushes `output` before each read of its source (only then can it
/// wait).
pub struct FlushingInput<R> {
    inner: BufReader<R>,
    output: SharedOutput,
}

impl<R: Read> FlushingInput<R> {
    pub fn new(source: R, output: SharedOutput) -> FlushingInput<R> {
        FlushingInput {
            inner: BufReader::with_capacity(64 * 1024, source),
            output,
        }
    }
}

impl<R: Read> Read for FlushingInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.inner.buffer().is_empty() {
            self.output.flush()?;
        }
        self.inner.read(buf)
    }
}

impl<R: Read> BufRead for FlushingInput<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.inner.buffer().is_empty() {
            self.output.flush()?;
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        self.inner.consume(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the bytes that reached it, shared with the test.
    #[derive(Clone, Default)]
    struct Sink(Rc<RefCell<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_is_flushed_before_the_input_is_read_again() {
        let sink = Sink::default();
        let output = SharedOutput::new(Box::new(io::BufWriter::new(sink.clone())));
        let mut input = FlushingInput::new(&b"a\n"[..], output.clone());
        let mut line = String::new();
        input.read_line(&mut line).expect("a line");
        let mut out = output.clone();
        out.write_all(b"decided\n").expect("buffered");
        assert!(sink.0.borrow().is_empty(), "still buffered");
        line.clear();
        input.read_line(&mut line).expect("end of input");
        assert_eq!(&sink.0.borrow()[..], b"decided\n");
    }
}
