//! The embedded-mode run loop: lines in, outputs, dead letters and late events out.

use std::io::{self, BufRead, Write};
use std::time::Instant;

use super::admit::{future_reason, SystemClock, WallClock};
use super::lines::LineReader;
use super::records::{DeadLetter, LateEvent};
use crate::engine::{Disposition, Engine, OutputEvent};
use crate::event::{Decoder, Event};
use crate::telemetry::metrics::LATENCY_SAMPLE_EVERY;
use crate::telemetry::InputCounters;

/// Where a run writes.
pub struct Sinks<'a> {
    pub outputs: &'a mut dyn Write,
    pub dead_letters: &'a mut dyn Write,
    pub late: &'a mut dyn Write,
}

/// What a run does around the engine besides writing to its sinks: the history, silences and
/// the shared status (`vigil run`); nothing in tests and the rule-test runner.
pub trait RunHooks {
    /// An event the engine accepted (neither dead-lettered nor late).
    fn event(&mut self, _event: &Event) {}
    /// Whether `output` is kept off the outputs sink (a silence covers it).
    fn silenced(&mut self, _output: &OutputEvent) -> bool {
        false
    }
    /// Each output, after it was written or silenced.
    fn output(&mut self, _output: &OutputEvent, _silenced: bool) {}
}

/// Hooks that do nothing.
pub struct NoHooks;

impl RunHooks for NoHooks {}

/// Totals of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub events: u64,
    pub alerts: u64,
    pub milestones: u64,
    pub late: u64,
    pub dead_lettered: u64,
    /// Alerts a silence kept off the outputs (counted in `alerts` too).
    pub silenced: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "events in: {}, alerts: {}, milestones: {}, late: {}, dead-lettered: {}",
            self.events, self.alerts, self.milestones, self.late, self.dead_lettered
        )?;
        if self.silenced > 0 {
            write!(f, ", silenced: {}", self.silenced)?;
        }
        Ok(())
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
    run_with(
        engine,
        decoder,
        input,
        max_line_bytes,
        source,
        sinks,
        &mut NoHooks,
        None,
        &SystemClock,
    )
}

/// [`run`], with `hooks` around the engine (history, silences, status in `vigil run`), and
/// counting into `counters` (input 0) as it goes: events, dead letters, late events, outputs,
/// and the processing time (engine and output writing) of one event in
/// [`LATENCY_SAMPLE_EVERY`]. Events dated beyond the engine's `max_future_skew_ms` ahead of
/// `clock` are dead-lettered.
#[allow(clippy::too_many_arguments)]
pub fn run_with(
    engine: &mut Engine,
    decoder: &Decoder,
    input: impl BufRead,
    max_line_bytes: usize,
    source: &str,
    sinks: &mut Sinks<'_>,
    hooks: &mut dyn RunHooks,
    counters: Option<&InputCounters>,
    clock: &dyn WallClock,
) -> io::Result<Summary> {
    let max_skew = engine.config().max_future_skew_ms;
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
        let mut future = false;
        let decoded =
            decoded.and_then(
                |event| match future_reason(&event, clock.now_ms(), max_skew) {
                    None => Ok(event),
                    Some(reason) => {
                        future = true;
                        Err(reason)
                    }
                },
            );
        let event = match decoded {
            Ok(event) => event,
            Err(reason) => {
                summary.dead_lettered += 1;
                match counters {
                    Some(c) if future => c.future(0),
                    Some(c) => c.invalid(0),
                    None => {}
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
        hooks.event(&event);
        write_outputs(&outputs, &mut summary, sinks.outputs, hooks)?;
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
    hooks: &mut dyn RunHooks,
) -> io::Result<()> {
    for output in outputs {
        match output.kind() {
            crate::rules::RuleKind::Alert => summary.alerts += 1,
            crate::rules::RuleKind::Milestone => summary.milestones += 1,
        }
        let silenced = hooks.silenced(output);
        if silenced {
            summary.silenced += 1;
        } else {
            serde_json::to_writer(&mut *out, output)?;
            out.write_all(b"\n")?;
        }
        hooks.output(output, silenced);
    }
    Ok(())
}
