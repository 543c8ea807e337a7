//! What expressions are evaluated in: the event's fields, and the statistics and bindings of a
//! rule at that event.

use smallvec::SmallVec;

use crate::engine::aggregate::{naive, Sample};
use crate::engine::state::KeyState;
use crate::event::{Event, Value};
use crate::rules::expr::{Env, Slot};
use crate::rules::{Rule, SeriesDef, Step};

/// Expression environment that sees only the event's fields.
pub(super) struct EventEnv<'a> {
    pub event: &'a Event,
}

impl Env for EventEnv<'_> {
    fn load(&self, slot: Slot) -> Value<'_> {
        match slot {
            Slot::Field(i) => self.event.data.field(i),
            Slot::Night => Value::Num(f64::from(self.event.time.local_day())),
            _ => Value::Null,
        }
    }
}

/// A binding's value, owned so later bindings can read it.
#[derive(Clone, Debug)]
pub(super) enum Owned {
    Null,
    Num(f64),
    Bool(bool),
    Str(String),
}

impl Owned {
    fn from_value(v: Value<'_>) -> Owned {
        match v {
            Value::Null => Owned::Null,
            Value::Num(n) => Owned::Num(n),
            Value::Bool(b) => Owned::Bool(b),
            Value::Str(s) => Owned::Str(s.to_string()),
        }
    }

    fn value(&self) -> Value<'_> {
        match self {
            Owned::Null => Value::Null,
            Owned::Num(n) => Value::Num(*n),
            Owned::Bool(b) => Value::Bool(*b),
            Owned::Str(s) => Value::Str(s),
        }
    }
}

/// Environment of a rule's conditions.
pub(super) struct RuleEnv<'a> {
    pub event: &'a Event,
    pub stats: &'a [Value<'static>],
    pub lets: &'a [Owned],
}

impl Env for RuleEnv<'_> {
    fn load(&self, slot: Slot) -> Value<'_> {
        match slot {
            Slot::Field(i) => self.event.data.field(i),
            Slot::Stat(i) => self.stats.get(i).copied().unwrap_or(Value::Null),
            Slot::Let(i) => self.lets.get(i).map_or(Value::Null, Owned::value),
            Slot::Night => Value::Num(f64::from(self.event.time.local_day())),
        }
    }
}

/// The evaluated statistics and bindings of one rule at one event.
/// Inline up to a few statistics and lets (rules have one to three): a condition is evaluated
/// for every event, and three heap allocations per rule and event showed in profiles.
pub(super) struct Evaluation {
    pub stats: SmallVec<[Value<'static>; 4]>,
    pub counts: SmallVec<[usize; 4]>,
    pub lets: SmallVec<[Owned; 4]>,
}

pub(super) fn step_matches(step: &Step, event: &Event) -> bool {
    step.on == event.event_type()
        && step
            .filter
            .as_ref()
            .is_none_or(|f| f.holds(&EventEnv { event }))
}

pub(super) fn evaluate_stats(
    rule: &Rule,
    series_defs: &[SeriesDef],
    state: &mut KeyState,
    event: &Event,
) -> Evaluation {
    let t = event.time.millis();
    let night = event.time.local_day();
    let mut scratch: Vec<Sample> = Vec::new();
    let mut stats = SmallVec::with_capacity(rule.stats.len());
    let mut counts = SmallVec::with_capacity(rule.stats.len());
    for stat in &rule.stats {
        let (value, n) = match state.series.get_mut(stat.series).and_then(Option::as_mut) {
            Some(series) => series.stat(&series_defs[stat.series], stat, t, night, &mut scratch),
            None => {
                // No sample yet: only a count over an empty window is defined.
                let v = if stat.min_samples == 0 {
                    naive(&stat.agg, &[], t)
                } else {
                    None
                };
                (v.map_or(Value::Null, Value::Num), 0)
            }
        };
        stats.push(value);
        counts.push(n);
    }
    let mut lets: SmallVec<[Owned; 4]> = SmallVec::with_capacity(rule.lets.len());
    for (_, expr) in &rule.lets {
        let value = {
            let env = RuleEnv {
                event,
                stats: &stats,
                lets: &lets,
            };
            Owned::from_value(expr.eval(&env))
        };
        lets.push(value);
    }
    Evaluation {
        stats,
        counts,
        lets,
    }
}
