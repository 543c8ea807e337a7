//! `vigil backtest`'s path on nightly history: events/s of JSON lines through the backtest
//! (the k-way merge of the inputs, decoding, the routing step, the engine with the full rule
//! pack, the decisions kept for the table), then the table, on one core.
//!
//! Input: 100 000 simulated users × 90 nights (seed 2024, the generator of `nightly_state`),
//! written as JSON lines by a producer thread and handed over in 1 MiB chunks through a
//! channel, so the 5 GB of text never sit in memory or on disk. The figure that counts is the
//! on-CPU time of the backtest's thread (`CLOCK_THREAD_CPUTIME_ID`), which leaves out the
//! producer and whatever else holds the cores; wall time is printed beside it (it includes
//! waits for the producer when that is the slower side).
//!
//! `VIGIL_BENCH_SMOKE=1`: 2 000 users × 65 nights. Target (issue 19): ≥ 250 000 events/s.

mod common;

use std::io::{self, BufReader, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::Instant;

use vigil::backtest::{self, Input, Merge, SetRun, Sinks};
use vigil::engine::EngineConfig;
use vigil::event::Decoder;
use vigil::simulate::{write_json_lines, SimConfig};

const CHUNK: usize = 1 << 20;

/// The producer's side: lines gathered into chunks, sent when full.
struct ChunkWriter {
    buf: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 4096));
            self.tx.send(full).map_err(io::Error::other)?;
        }
        Ok(())
    }
}

/// The backtest's side: the chunks as one stream of bytes.
struct ChunkReader {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.at);
        out[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn main() {
    let smoke = common::smoke();
    let (users, days) = if smoke { (2_000, 65) } else { (100_000, 90) };
    println!("backtest: {users} users x {days} nights, full rule pack, JSON lines in, one core");
    let config = SimConfig {
        users,
        days,
        seed: 2024,
        ..SimConfig::default()
    };
    let (tx, rx) = sync_channel::<Vec<u8>>(8);
    let producer = std::thread::spawn(move || {
        let mut writer = ChunkWriter {
            buf: Vec::with_capacity(CHUNK + 4096),
            tx,
        };
        write_json_lines(&config, &mut writer)
    });
    let reader = ChunkReader {
        rx,
        current: Vec::new(),
        at: 0,
    };
    let decoder = Decoder::new();
    let mut sets = vec![SetRun::new(
        common::rule_pack(),
        EngineConfig::default(),
        None,
    )];
    let inputs = vec![Input {
        name: "generated".to_string(),
        reader: Box::new(BufReader::with_capacity(1 << 16, reader)),
    }];
    let mut merge = Merge::new(inputs, &decoder);
    let wall = Instant::now();
    let cpu0 = common::thread_cpu_ns();
    let replayed = backtest::replay(
        &mut merge,
        &decoder,
        &mut sets,
        &mut Sinks::default(),
        &mut |_| {},
    )
    .expect("the replay reads memory");
    let table = backtest::table(
        &["generated".to_string()],
        &[vec!["rules".to_string()]],
        &sets,
        &replayed.names,
        &replayed.rule_ids,
    );
    let cpu = common::thread_cpu_ns()
        .zip(cpu0)
        .map(|(b, a)| b.saturating_sub(a));
    let wall_ns = wall.elapsed().as_nanos() as u64;
    let written = producer
        .join()
        .expect("the producer thread")
        .expect("the producer writes");
    let events = table.input.events as usize;
    assert_eq!(events as u64, written, "every generated line was read");
    println!(
        "  events: {events} ({} invalid, {} late), {} users, {:.0} user-months, {} outputs",
        table.input.invalid,
        table.sets[0].late,
        table.input.users,
        table.input.user_months,
        table.sets[0].alerts + table.sets[0].milestones
    );
    println!(
        "  RESULT backtest, one core: {} (target >= 250000 events/s on-CPU)",
        common::rates(events, wall_ns, cpu)
    );
    print!("{}", table.render());
}
