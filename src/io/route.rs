//! The per-record step every edge shares: decode and admit a record, hand the event to the
//! engine, and send each result where it belongs — an output (or, under a silence, the
//! silenced output), the late-events output with how far behind it was, or the dead-letter
//! output with the reason.
//!
//! An edge only frames records (a line of a file, a message of a topic) and writes results in
//! its own form, through [`Deliver`]. A new kind of result is added here once, with one method
//! on [`Deliver`], not once per edge. The decisions are made here, in one place: what is
//! counted as what, which reason a late event carries, when a silence applies.

use std::time::Instant;

use chrono::{DateTime, Utc};

use super::admit::{AdmissionClock, WallClock};
use crate::engine::{Disposition, Engine, OutputEvent};
use crate::event::{Decoder, Event, EventType};
use crate::rules::RuleKind;
use crate::status::buffer::silence_for;
use crate::status::silence::Silence;
use crate::status::StatusStore;
use crate::telemetry::metrics::LATENCY_SAMPLE_EVERY;
use crate::telemetry::{InputCounters, Tally};

/// The reason written with every late event.
pub const LATE_REASON: &str = "later than the allowed lateness behind its user's event time";

/// Why an input record did not become an event for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    /// Dated too far ahead of the processing clock (counted apart from other rejections).
    pub future: bool,
}

impl Rejection {
    fn invalid(reason: String) -> Self {
        Rejection {
            reason,
            future: false,
        }
    }
}

/// What an edge knows of a record before it is an event: its bytes as kept (`None` for a
/// message without a value) and its full length (a file's line longer than the limit is kept
/// only in part).
#[derive(Clone, Copy)]
pub struct Framed<'a> {
    pub bytes: Option<&'a [u8]>,
    pub full_len: usize,
}

impl<'a> Framed<'a> {
    /// A record kept whole.
    pub fn whole(bytes: Option<&'a [u8]>) -> Self {
        Framed {
            bytes,
            full_len: bytes.map_or(0, <[u8]>::len),
        }
    }
}

/// Decodes `record` and admits it by `clock`: an event dated more than `max_future_skew_ms`
/// ahead of it is rejected as in the future.
pub fn admit(
    decoder: &Decoder,
    record: Framed<'_>,
    clock: &AdmissionClock<'_>,
    max_future_skew_ms: i64,
) -> Result<Event, Rejection> {
    let event = decode(decoder, record)?;
    match clock.future_reason(&event, max_future_skew_ms) {
        None => Ok(event),
        Some(reason) => Err(Rejection {
            reason,
            future: true,
        }),
    }
}

/// Decodes `record` without judging its time against any wall clock: [`admit`] adds that for
/// the edges that run live; a backtest replays the past, where the machine's date means
/// nothing. The decoder's own checks (the schema, no time before 2000) still apply.
pub fn decode(decoder: &Decoder, record: Framed<'_>) -> Result<Event, Rejection> {
    let Some(bytes) = record.bytes else {
        return Err(Rejection::invalid("empty message (no value)".to_string()));
    };
    decoder
        .decode_kept(bytes, record.full_len)
        .map_err(|e| Rejection::invalid(e.to_string()))
}

/// Where the step's results go, each in the edge's own form.
pub trait Deliver {
    type Error;
    /// The record is not an event: to the dead-letter output, with the reason.
    fn dead_letter(&mut self, rejection: Rejection) -> Result<(), Self::Error>;
    /// The event came later than the allowed lateness behind its user's event time, by
    /// `behind_ms`: to the late-events output.
    fn late(&mut self, event: Event, behind_ms: i64) -> Result<(), Self::Error>;
    /// An event the engine took.
    fn accepted(&mut self, _event: &Event) {}
    /// An output of the engine: to the outputs, or, when `silence` covers it, to the
    /// silenced output (or nowhere, where there is none).
    fn output(
        &mut self,
        output: &OutputEvent,
        silence: Option<&Silence>,
    ) -> Result<(), Self::Error>;
}

/// Counts of what the step did, by input position: the metrics counters themselves (the file
/// mode, which has no transaction to wait for) or a tally added to them on commit (Kafka).
pub trait Counts {
    fn event(&mut self, input: usize, ty: EventType);
    fn invalid(&mut self, input: usize);
    fn future(&mut self, input: usize);
    fn late(&mut self, input: usize);
    fn output(&mut self, output: &OutputEvent);
}

impl Counts for Tally {
    fn event(&mut self, input: usize, ty: EventType) {
        Tally::event(self, input, ty);
    }
    fn invalid(&mut self, input: usize) {
        Tally::invalid(self, input);
    }
    fn future(&mut self, input: usize) {
        Tally::future(self, input);
    }
    fn late(&mut self, input: usize) {
        Tally::late(self, input);
    }
    fn output(&mut self, output: &OutputEvent) {
        Tally::output(self, output);
    }
}

impl Counts for Option<&InputCounters> {
    fn event(&mut self, input: usize, ty: EventType) {
        if let Some(c) = self {
            c.event(input, ty);
        }
    }
    fn invalid(&mut self, input: usize) {
        if let Some(c) = self {
            c.invalid(input);
        }
    }
    fn future(&mut self, input: usize) {
        if let Some(c) = self {
            c.future(input);
        }
    }
    fn late(&mut self, input: usize) {
        if let Some(c) = self {
            c.late(input);
        }
    }
    fn output(&mut self, output: &OutputEvent) {
        if let Some(c) = self {
            c.output(output);
        }
    }
}

/// What the step reads besides the engine and the record.
pub struct Context<'a> {
    /// Position of the record's input (its topic), for the counters.
    pub input: usize,
    /// Where the silences in force are read; `None` when nothing is silenced.
    pub silences: Option<&'a StatusStore>,
    /// The wall clock for the silences' expiry (read only for an output when there are
    /// silences).
    pub clock: &'a dyn WallClock,
    /// Where the processing time of one event in [`LATENCY_SAMPLE_EVERY`] is observed.
    pub latency: Option<&'a InputCounters>,
}

/// Totals of one run, whichever the edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Input records: events, late events and dead letters.
    pub records: u64,
    /// Records that decoded to an event (late ones included).
    pub events: u64,
    pub alerts: u64,
    pub milestones: u64,
    pub late: u64,
    pub dead_lettered: u64,
    /// Alerts a silence kept off the outputs (counted in `alerts` too).
    pub silenced: u64,
}

impl Summary {
    pub fn add(&mut self, other: &Summary) {
        self.records += other.records;
        self.events += other.events;
        self.alerts += other.alerts;
        self.milestones += other.milestones;
        self.late += other.late;
        self.dead_lettered += other.dead_lettered;
        self.silenced += other.silenced;
    }
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

/// The step, with what it keeps between records: the totals, a scratch buffer for the
/// engine's outputs, and when the next processing time is sampled.
pub struct Router {
    pub summary: Summary,
    outputs: Vec<OutputEvent>,
    sample_in: u32,
}

impl Default for Router {
    fn default() -> Self {
        Router {
            summary: Summary::default(),
            outputs: Vec::new(),
            sample_in: LATENCY_SAMPLE_EVERY,
        }
    }
}

impl Router {
    /// Routes one admitted (or rejected) record: every record ends in exactly one of the
    /// engine (and from there its outputs), the late-events output or the dead-letter output.
    pub fn route<D: Deliver>(
        &mut self,
        engine: &mut Engine,
        admitted: Result<Event, Rejection>,
        context: &Context<'_>,
        counts: &mut impl Counts,
        deliver: &mut D,
    ) -> Result<(), D::Error> {
        self.summary.records += 1;
        let event = match admitted {
            Ok(event) => event,
            Err(rejection) => {
                self.summary.dead_lettered += 1;
                if rejection.future {
                    counts.future(context.input);
                } else {
                    counts.invalid(context.input);
                }
                return deliver.dead_letter(rejection);
            }
        };
        self.summary.events += 1;
        counts.event(context.input, event.event_type());
        let started = match context.latency {
            Some(_) => {
                self.sample_in -= 1;
                (self.sample_in == 0).then(|| {
                    self.sample_in = LATENCY_SAMPLE_EVERY;
                    Instant::now()
                })
            }
            None => None,
        };
        self.outputs.clear();
        if engine.process(&event, &mut self.outputs) == Disposition::Late {
            self.summary.late += 1;
            counts.late(context.input);
            let behind = engine
                .user_clock(&event.user_id)
                .map_or(0, |c| c.saturating_sub(event.time.millis()));
            return deliver.late(event, behind);
        }
        deliver.accepted(&event);
        let outputs = std::mem::take(&mut self.outputs);
        let delivered = self.deliver(&outputs, context, counts, deliver);
        self.outputs = outputs;
        delivered?;
        if let (Some(started), Some(latency)) = (started, context.latency) {
            latency.observe_processing(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Sends outputs of the engine on (each to the outputs, or to the silenced output when a
    /// silence covers it), counted: an event's, or those a rule reload emits.
    pub fn deliver<D: Deliver>(
        &mut self,
        outputs: &[OutputEvent],
        context: &Context<'_>,
        counts: &mut impl Counts,
        deliver: &mut D,
    ) -> Result<(), D::Error> {
        for output in outputs {
            let silence = context
                .silences
                .and_then(|s| silence_for(s, output, at(context.clock.now_ms())));
            match output.kind() {
                RuleKind::Alert => self.summary.alerts += 1,
                RuleKind::Milestone => self.summary.milestones += 1,
            }
            if silence.is_some() {
                self.summary.silenced += 1;
            }
            counts.output(output);
            deliver.output(output, silence.as_ref())?;
        }
        Ok(())
    }
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
