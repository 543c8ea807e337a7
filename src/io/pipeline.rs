//! The embedded-mode run loop: lines in, outputs, dead letters and late events out.

use std::io::{self, BufRead, Write};
use std::time::Instant;

use super::lines::LineReader;
use super::records::{DeadLetter, LateEvent};
use crate::engine::{Disposition, Engine, OutputEvent};
use crate::event::Decoder;
use crate::telemetry::metrics::LATENCY_SAMPLE_EVERY;
use crate::telemetry::InputCounters;

/// Where a run writes.
pub struct Sinks<'a> {
    pub outputs: &'a mut dyn Write,
    pub dead_letters: &'a mut dyn Write,
    pub late: &'a mut dyn Write,
}

/// Totals of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub events: u64,
    pub alerts: u64,
    pub milestones: u64,
    pub late: u64,
    pub dead_lettered: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "events in: {}, alerts: {}, milestones: {}, late: {}, dead-lettered: {}",
            self.events, self.alerts, self.milestones, self.late, self.dead_lettered
        )
    }
}

/// Runs `input` through the engine. `source` names the input in dead-letter records.
pub fn run(
    engine: &mut Engine,
    decoder: &Decoder,
    input: impl BufRead,
    max_line_bytes: usize,
    source: &str,
    sinks: &mut Sinks<'_>,
) -> io::Result<Summary> {
    run_observed(
        engine,
        decoder,
        input,
        max_line_bytes,
        source,
        sinks,
        &mut |_| {},
        None,
    )
}

/// [`run`], also handing each output to `observe` after it is written (the history writer in
/// `vigil run`), and counting into `counters` (input 0) as it goes: events, dead letters,
/// late events, outputs, and the processing time (engine and output writing) of one event in
/// [`LATENCY_SAMPLE_EVERY`].
#[allow(clippy::too_many_arguments)]
pub fn run_observed(
    engine: &mut Engine,
    decoder: &Decoder,
    input: impl BufRead,
    max_line_bytes: usize,
    source: &str,
    sinks: &mut Sinks<'_>,
    observe: &mut dyn FnMut(&OutputEvent),
    counters: Option<&InputCounters>,
) -> io::Result<Summary> {
    let mut reader = LineReader::new(input, max_line_bytes);
    let mut summary = Summary::default();
    let mut outputs: Vec<OutputEvent> = Vec::new();
    let mut sample_in = LATENCY_SAMPLE_EVERY;
    while let Some(line) = reader.next_line()? {
        summary.lines += 1;
        let decoded = if line.full_len > max_line_bytes {
            Err(crate::event::DecodeError::TooLarge {
                len: line.full_len,
                max: max_line_bytes,
            }
            .to_string())
        } else {
            decoder.decode(&line.bytes).map_err(|e| e.to_string())
        };
        let event = match decoded {
            Ok(event) => event,
            Err(reason) => {
                summary.dead_lettered += 1;
                if let Some(c) = counters {
                    c.invalid(0);
                }
                let record =
                    DeadLetter::new(reason, source, line.number, &line.bytes, line.full_len);
                serde_json::to_writer(&mut *sinks.dead_letters, &record)?;
                sinks.dead_letters.write_all(b"\n")?;
                continue;
            }
        };
        summary.events += 1;
        let mut started = None;
        if let Some(c) = counters {
            c.event(0, event.event_type());
            sample_in -= 1;
            if sample_in == 0 {
                sample_in = LATENCY_SAMPLE_EVERY;
                started = Some(Instant::now());
            }
        }
        outputs.clear();
        if engine.process(&event, &mut outputs) == Disposition::Late {
            summary.late += 1;
            if let Some(c) = counters {
                c.late(0);
            }
            let record = LateEvent {
                reason: "later than the allowed lateness behind its user's event time",
                source,
                line: line.number,
                behind_ms: engine
                    .user_clock(&event.user_id)
                    .map_or(0, |c| c - event.time.millis()),
                event: event.to_json(),
            };
            serde_json::to_writer(&mut *sinks.late, &record)?;
            sinks.late.write_all(b"\n")?;
            continue;
        }
        write_outputs(&outputs, &mut summary, sinks.outputs)?;
        outputs.iter().for_each(&mut *observe);
        if let Some(c) = counters {
            outputs.iter().for_each(|o| c.output(o));
            if let Some(started) = started {
                c.observe_processing(started.elapsed().as_secs_f64());
            }
        }
    }
    sinks.outputs.flush()?;
    sinks.dead_letters.flush()?;
    sinks.late.flush()?;
    Ok(summary)
}

fn write_outputs(
    outputs: &[OutputEvent],
    summary: &mut Summary,
    out: &mut dyn Write,
) -> io::Result<()> {
    for output in outputs {
        match output.kind() {
            crate::rules::RuleKind::Alert => summary.alerts += 1,
            crate::rules::RuleKind::Milestone => summary.milestones += 1,
        }
        serde_json::to_writer(&mut *out, output)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
