//! The embedded-mode run loop: lines in, outputs, dead letters and late events out.

use std::io::{self, BufRead, Write};

use super::admit::{AdmissionClock, SystemClock, WallClock};
use super::lines::{Line, LineReader};
use super::records::{DeadLetter, LateEvent};
use super::route::{self, Context, Deliver, Framed, Rejection, Router, LATE_REASON};
use super::rule_watch::RuleSource;
use crate::engine::{Engine, OutputEvent};
use crate::event::{Decoder, Event};
use crate::status::silence::Silence;
use crate::status::StatusStore;
use crate::telemetry::InputCounters;

/// Where a run writes.
pub struct Sinks<'a> {
    pub outputs: &'a mut dyn Write,
    pub dead_letters: &'a mut dyn Write,
    pub late: &'a mut dyn Write,
}

/// What a run does around the engine besides writing to its sinks: the history and the
/// shared status (`vigil run`); none in tests and the rule-test runner ([`Around::hooks`]).
pub trait RunHooks {
    /// An event the engine accepted (neither dead-lettered nor late).
    fn event(&mut self, _event: &Event) {}
    /// Each output, after it was written or silenced.
    fn output(&mut self, _output: &OutputEvent, _silenced: bool) {}
    /// The engine runs `rules` from the next event on.
    fn rules_replaced(&mut self, _rules: &crate::rules::RuleSet) {}
}

pub use super::route::Summary;

/// Runs `input` through the engine. `source` names the input in dead-letter records.
pub fn run(
    engine: &mut Engine,
    decoder: &Decoder,
    input: impl BufRead,
    source: &str,
    sinks: &mut Sinks<'_>,
) -> io::Result<Summary> {
    run_with(
        engine,
        decoder,
        input,
        source,
        sinks,
        &mut Around::default(),
    )
}

/// What a run has around the engine besides its input and sinks.
pub struct Around<'a> {
    /// The history, the shared status (`vigil run`).
    pub hooks: Option<&'a mut dyn RunHooks>,
    /// Where the silences in force are read; `None`: nothing is silenced.
    pub silences: Option<&'a StatusStore>,
    /// Counted into as it goes (input 0): events, dead letters, late events, outputs, and the
    /// processing time (engine and output writing) of one event in
    /// [`crate::telemetry::metrics::LATENCY_SAMPLE_EVERY`].
    pub counters: Option<&'a InputCounters>,
    /// Events dated beyond the engine's `max_future_skew_ms` ahead of it are dead-lettered;
    /// silences expire by it.
    pub clock: &'a dyn WallClock,
    /// Where new rule sets come from while the run goes on (`vigil run` watching its rules);
    /// one is applied between two lines.
    pub rules: Option<&'a dyn RuleSource>,
}

impl Default for Around<'_> {
    fn default() -> Self {
        Around {
            hooks: None,
            silences: None,
            counters: None,
            clock: &SystemClock,
            rules: None,
        }
    }
}

/// [`run`], with what `around` says around the engine.
pub fn run_with(
    engine: &mut Engine,
    decoder: &Decoder,
    input: impl BufRead,
    source: &str,
    sinks: &mut Sinks<'_>,
    around: &mut Around<'_>,
) -> io::Result<Summary> {
    let max_skew = engine.config().max_future_skew_ms;
    let mut reader = LineReader::new(input, decoder.max_line_bytes());
    let mut router = Router::default();
    let admission = AdmissionClock::new(around.clock);
    while let Some(line) = reader.next_line()? {
        let framed = Framed {
            bytes: Some(line.bytes),
            full_len: line.full_len,
        };
        let admitted = route::admit(decoder, framed, &admission, max_skew);
        let context = Context {
            input: 0,
            silences: around.silences,
            clock: around.clock,
            latency: around.counters,
        };
        let mut deliver = LineDelivery {
            line: &line,
            source,
            sinks: &mut *sinks,
            hooks: around.hooks.as_deref_mut(),
        };
        // Before the line's event: the new set decides it, and no event is split.
        if let Some(source) = around.rules {
            if let Some(rules) = source.take() {
                let report = engine.replace_rules(std::sync::Arc::clone(&rules));
                source.applied(&rules, &report);
                if let Some(hooks) = deliver.hooks.as_deref_mut() {
                    hooks.rules_replaced(&rules);
                }
                router.deliver(
                    &report.outputs,
                    &context,
                    &mut around.counters,
                    &mut deliver,
                )?;
            }
        }
        router.route(
            engine,
            admitted,
            &context,
            &mut around.counters,
            &mut deliver,
        )?;
    }
    sinks.outputs.flush()?;
    sinks.dead_letters.flush()?;
    sinks.late.flush()?;
    Ok(router.summary)
}

/// The results of one line, written as JSON lines.
struct LineDelivery<'a, 's, 'h> {
    line: &'a Line<'a>,
    source: &'a str,
    sinks: &'a mut Sinks<'s>,
    hooks: Option<&'a mut (dyn RunHooks + 'h)>,
}

impl Deliver for LineDelivery<'_, '_, '_> {
    type Error = io::Error;

    fn dead_letter(&mut self, rejection: Rejection) -> io::Result<()> {
        let line = self.line;
        let record = DeadLetter::new(
            rejection.reason,
            self.source,
            line.number,
            line.bytes,
            line.full_len,
        );
        write_line(&mut *self.sinks.dead_letters, &record)
    }

    fn late(&mut self, event: Event, behind_ms: i64) -> io::Result<()> {
        let record = LateEvent {
            reason: LATE_REASON,
            source: self.source,
            line: self.line.number,
            behind_ms,
            event: event.to_json(),
        };
        write_line(&mut *self.sinks.late, &record)
    }

    fn accepted(&mut self, event: &Event) {
        if let Some(hooks) = self.hooks.as_deref_mut() {
            hooks.event(event);
        }
    }

    fn output(&mut self, output: &OutputEvent, silence: Option<&Silence>) -> io::Result<()> {
        if silence.is_none() {
            write_line(&mut *self.sinks.outputs, output)?;
        }
        if let Some(hooks) = self.hooks.as_deref_mut() {
            hooks.output(output, silence.is_some());
        }
        Ok(())
    }
}

fn write_line(out: &mut dyn Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
