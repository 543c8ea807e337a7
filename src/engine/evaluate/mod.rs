//! Evaluating one rule for one key at one event: statistics, bindings, conditions, streaks,
//! cooldowns, `[after]` arming, sequences, absences, and building the outputs.
//!
//! One file per mode of a rule ([`Mode`]): `condition` (`[fire]`, with `streak`), `absence`
//! and `sequence`; what they evaluate expressions in is `env`, and `emit` turns what they
//! decided into an output.

mod absence;
mod condition;
mod emit;
mod env;
mod sequence;
mod streak;

use super::observe::Observer;
use super::output::OutputEvent;
use super::series::SeriesState;
use super::state::KeyState;
use super::Counters;
use crate::event::{Event, Value};
use crate::rules::{Mode, RuleSet, SeriesDef};
pub(super) use emit::firing_id;
use env::EventEnv;

/// Adds the event's value to a series, if it passes the series' filter.
pub fn feed_series(
    def: &SeriesDef,
    state: &mut SeriesState,
    event: &Event,
    clock: i64,
    lateness_ms: i64,
) {
    let env = EventEnv { event };
    if let Some(filter) = &def.filter {
        if !filter.holds(&env) {
            return;
        }
    }
    let value = match &def.of {
        Some(of) => match of.eval(&env) {
            Value::Num(v) if v.is_finite() => v,
            _ => return, // null (missing field) or not a number: no sample
        },
        None => 1.0,
    };
    // Night series of a single-field `of` keep the raw field; `of` is applied when read.
    let value = match def.stored_field {
        Some(field) => match event.data.field(field) {
            Value::Num(raw) => raw,
            _ => return,
        },
        None => value,
    };
    state.insert(
        def,
        event.time.millis(),
        event.time.local_day(),
        value,
        clock,
        lateness_ms,
    );
}

pub struct Context<'a> {
    pub rules: &'a RuleSet,
    pub dependents: &'a [Vec<usize>],
    pub counters: &'a mut Counters,
    /// Timers to queue: (deadline, key, rule).
    pub timers: Vec<(i64, Box<str>, usize)>,
    /// Told of each evaluation of a `[fire]` rule's statistics, when set.
    pub observer: Option<&'a mut dyn Observer>,
}

impl Context<'_> {
    pub fn evaluate_rule(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        event: &Event,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        match &rule.mode {
            Mode::Condition { .. } => self.condition(r, key, state, event, out),
            Mode::Absence { .. } => self.absence_event(r, key, state, event, out),
            Mode::Sequence { .. } => self.sequence(r, key, state, event, out),
        }
    }
}
