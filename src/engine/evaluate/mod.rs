//! Evaluating one rule for one key at one event: statistics, bindings, conditions, streaks,
//! cooldowns, `[after]` arming, sequences, absences, and building the outputs.

use indexmap::IndexMap;
use smallvec::SmallVec;

use super::aggregate::Sample;
use super::output::{
    output_id, AlertState, OutputData, OutputEvent, ALERT_FIRING_TYPE, ALERT_RESOLVED_TYPE,
    MILESTONE_TYPE,
};
use super::series::SeriesState;
use super::state::{Armed, Firing, KeyState, PartialMatch, Streak};
use super::Counters;
use crate::event::{day_to_string, Event, EventTime, Value};
use crate::rules::duration::Extent;
use crate::rules::expr::{Env, Expr, Slot};
use crate::rules::{
    Mode, OutputState, Rule, RuleKind, RuleSet, SeriesDef, Severity, Step, TemplatePart,
};

/// At most this many partial matches are kept per sequence rule and key; the oldest go first.
const MAX_PARTIAL_MATCHES: usize = 64;

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

/// Expression environment that sees only the event's fields.
struct EventEnv<'a> {
    event: &'a Event,
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
enum Owned {
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
struct RuleEnv<'a> {
    event: &'a Event,
    stats: &'a [Value<'static>],
    lets: &'a [Owned],
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
struct Evaluation {
    stats: SmallVec<[Value<'static>; 4]>,
    counts: SmallVec<[usize; 4]>,
    lets: SmallVec<[Owned; 4]>,
}

/// Everything an output needs besides the rule.
struct Decision<'a> {
    state: Option<AlertState>,
    severity: Severity,
    time: EventTime,
    night: Option<i32>,
    occasion: String,
    ids: Vec<String>,
    firing_id: Option<uuid::Uuid>,
    eval: Option<&'a Evaluation>,
    event: Option<&'a Event>,
}

pub struct Context<'a> {
    pub rules: &'a RuleSet,
    pub dependents: &'a [Vec<usize>],
    pub counters: &'a mut Counters,
    /// Timers to queue: (deadline, key, rule).
    pub timers: Vec<(i64, Box<str>, usize)>,
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

    fn condition(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        event: &Event,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        let Mode::Condition {
            filter,
            fire,
            streak,
            cooldown,
            resolve,
            after,
            ..
        } = &rule.mode
        else {
            return;
        };
        if let Some(filter) = filter {
            if !filter.holds(&EventEnv { event }) {
                return;
            }
        }
        let t = event.time.millis();
        let night = event.time.local_day();
        if after.is_some() {
            let Some(armed) = state.rules[r].as_ref().and_then(|s| s.armed()) else {
                return;
            };
            let pos = match after.as_ref().map(|a| a.within) {
                Some(Extent::Nights(_)) => i64::from(night),
                _ => t,
            };
            if pos > armed.until {
                if let Some(rs) = state.rules[r].as_mut() {
                    rs.set_armed(None);
                }
                return;
            }
            if pos <= armed.at {
                return;
            }
        }
        let eval = evaluate_stats(rule, &self.rules.series, state, event);
        let env = RuleEnv {
            event,
            stats: &eval.stats,
            lets: &eval.lets,
        };
        let holds = fire.holds(&env);
        let rs = state.rules[r].get_or_insert_with(Default::default);

        // Firing alerts with a lifecycle: only the resolve condition matters until resolved.
        if let Some(firing) = rs.firing {
            if resolve.as_ref().is_some_and(|c| c.holds(&env)) {
                rs.firing = None;
                let decision = resolution(rule, key, firing, event, Some(&eval));
                self.emit(r, key, state, decision, out);
            }
            return;
        }

        let fires = match streak {
            Some(Extent::Nights(need)) => {
                advance_streak(&mut rs.streak, i64::from(night), holds, *need)
            }
            Some(Extent::Events(need)) => {
                let pos = rs.streak.pos.saturating_add(1);
                advance_streak(&mut rs.streak, pos, holds, *need)
            }
            _ => holds,
        };
        let occasion_value = occasion_value(rule, night, t);
        if !fires || rs.last_fire == occasion_value {
            return;
        }
        if rs.last_fire != i64::MIN {
            let silent = match cooldown {
                Some(Extent::Nights(n)) => i64::from(night) < rs.last_fire + i64::from(*n),
                // The compiler makes nightly rules count cooldowns in nights.
                Some(Extent::Time(ms)) => t < rs.last_fire.saturating_add(*ms),
                _ => false,
            };
            if silent {
                return;
            }
        }
        rs.last_fire = occasion_value;
        let severity = rule
            .tiers
            .iter()
            .find(|(_, c)| c.holds(&env))
            .map_or(rule.severity, |(s, _)| *s);
        let alert_state = (rule.kind == RuleKind::Alert).then_some(AlertState::Firing);
        let decision = Decision {
            state: alert_state,
            severity,
            time: event.time,
            night: rule.nightly.then_some(night),
            occasion: occasion_text(rule, occasion_value),
            ids: vec![event.id.clone()],
            firing_id: None,
            eval: Some(&eval),
            event: Some(event),
        };
        let emitted = self.emit(r, key, state, decision, out);
        if let (Some(_), Some(rs)) = (emitted, state.rules[r].as_mut()) {
            if resolve.is_some() {
                rs.firing = Some(Firing {
                    occasion: occasion_value,
                    severity,
                });
            }
            if after.is_some() {
                rs.set_armed(None);
            }
        }
    }

    fn absence_event(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        event: &Event,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        let Mode::Absence {
            of,
            timeout_ms,
            start,
            ..
        } = &rule.mode
        else {
            return;
        };
        let t = event.time.millis();
        // Only an event at or after the key's latest time means data resumed: an older one
        // (late, within the allowed lateness) neither resolves nor restarts the timeout.
        let newest = t >= state.clock;
        let watched = newest && of.is_none_or(|ty| ty == event.event_type());
        let starts = start.as_ref().is_some_and(|s| step_matches(s, event));
        let rs = state.rules[r].get_or_insert_with(Default::default);
        if watched {
            if let Some(firing) = rs.firing.take() {
                let decision = resolution(rule, key, firing, event, None);
                self.emit(r, key, state, decision, out);
            }
        }
        let Some(rs) = state.rules[r].as_mut() else {
            return;
        };
        let extra = rs.absence();
        let new_deadline = if start.is_some() {
            if watched {
                extra.deadline = None;
                extra.cause = None;
            }
            (starts && extra.deadline.is_none()).then_some(t + timeout_ms)
        } else if watched {
            Some(t + timeout_ms).filter(|d| extra.deadline.is_none_or(|old| *d > old))
        } else {
            None
        };
        if let Some(deadline) = new_deadline {
            extra.deadline = Some(deadline);
            // "A not followed by B" cites A. A plain absence has no input event behind it (the
            // silence is the cause; its start is the firing time minus the timeout), and not
            // keeping the last event's id saves every user ~70 bytes.
            if start.is_some() {
                extra.cause = Some(event.id.as_str().into());
            }
            if !extra.queued {
                extra.queued = true;
                self.timers.push((deadline, key.into(), r));
            }
        }
    }

    /// A queued timer came due: fire the absence if its deadline still stands, or re-queue.
    pub fn expire_absence(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        due: i64,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        let offset = state.offset_seconds;
        let Some(rs) = state.rules[r].as_mut() else {
            return;
        };
        let already_firing = rs.firing.is_some();
        let extra = rs.absence();
        extra.queued = false;
        let Some(deadline) = extra.deadline else {
            return;
        };
        if deadline > due {
            extra.queued = true;
            self.timers.push((deadline, key.into(), r));
            return;
        }
        extra.deadline = None;
        let cause = extra.cause.take();
        if already_firing {
            return;
        }
        let time = chrono::FixedOffset::east_opt(offset).and_then(|o| {
            chrono::DateTime::from_timestamp_millis(deadline)
                .map(|d| EventTime(d.with_timezone(&o)))
        });
        let Some(time) = time else { return };
        let severity = rule.severity;
        let decision = Decision {
            state: (rule.kind == RuleKind::Alert).then_some(AlertState::Firing),
            severity,
            time,
            night: None,
            occasion: deadline.to_string(),
            ids: cause.into_iter().map(String::from).collect(),
            firing_id: None,
            eval: None,
            event: None,
        };
        let emitted = self.emit(r, key, state, decision, out);
        if let (Some(_), Some(rs), Mode::Absence { resolves: true, .. }) =
            (emitted, state.rules[r].as_mut(), &rule.mode)
        {
            rs.firing = Some(Firing {
                occasion: deadline,
                severity,
            });
        }
    }

    fn sequence(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        event: &Event,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        let Mode::Sequence {
            steps,
            within_ms,
            strict,
        } = &rule.mode
        else {
            return;
        };
        let t = event.time.millis();
        let partials = state.rules[r]
            .get_or_insert_with(Default::default)
            .partials();
        partials.retain(|p| t - p.started <= *within_ms);
        let mut completed: Option<Vec<String>> = None;
        let mut kept = Vec::with_capacity(partials.len() + 1);
        for mut p in std::mem::take(partials) {
            if steps
                .get(p.next_step)
                .is_some_and(|s| step_matches(s, event))
            {
                p.next_step += 1;
                p.ids.push(event.id.clone());
                if p.next_step == steps.len() {
                    completed.get_or_insert(p.ids);
                    continue;
                }
                kept.push(p);
            } else if !strict {
                kept.push(p);
            }
        }
        if completed.is_some() {
            // Skip past the last event: a completed match discards the partial ones.
            kept.clear();
        } else if steps.first().is_some_and(|s| step_matches(s, event)) {
            kept.push(PartialMatch {
                next_step: 1,
                started: t,
                ids: vec![event.id.clone()],
            });
            if kept.len() > MAX_PARTIAL_MATCHES {
                kept.remove(0);
            }
        }
        *partials = kept;
        if let Some(mut ids) = completed {
            ids.reverse();
            let decision = Decision {
                state: (rule.kind == RuleKind::Alert).then_some(AlertState::Firing),
                severity: rule.severity,
                time: event.time,
                night: None,
                occasion: t.to_string(),
                ids,
                firing_id: None,
                eval: None,
                event: Some(event),
            };
            self.emit(r, key, state, decision, out);
        }
    }

    /// Builds and appends an output (unless it repeats the rule's previous one), counts it,
    /// and arms the rules that follow this one. Returns the output's id.
    fn emit(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        d: Decision<'_>,
        out: &mut Vec<OutputEvent>,
    ) -> Option<uuid::Uuid> {
        let rule = &self.rules.rules[r];
        let emitted = match (rule.kind, d.state) {
            (RuleKind::Milestone, _) => OutputState::Milestone,
            (_, Some(AlertState::Resolved)) => OutputState::Resolved,
            _ => OutputState::Firing,
        };
        let subject = key.rsplit('\u{1f}').next().unwrap_or(key).to_string();
        let id = output_id(&rule.id, rule.version, key, emitted.name(), &d.occasion);
        let (stats, samples) = d.eval.map(|e| provenance(rule, e)).unwrap_or_default();
        let message = render_message(rule, d.eval, d.event, d.night);
        let (event_type, counter) = match emitted {
            OutputState::Milestone => (MILESTONE_TYPE, &mut self.counters.milestones),
            OutputState::Resolved => (ALERT_RESOLVED_TYPE, &mut self.counters.alerts_resolved),
            OutputState::Firing => (ALERT_FIRING_TYPE, &mut self.counters.alerts_firing),
        };
        *counter += 1;
        out.push(OutputEvent {
            specversion: "1.0".into(),
            id: id.to_string(),
            source: format!("vigil/rules/{}", rule.id),
            event_type: event_type.into(),
            subject,
            time: d.time,
            datacontenttype: "application/json".into(),
            data: OutputData {
                rule_id: rule.id.clone(),
                rule_version: rule.version,
                kind: rule.kind,
                state: d.state,
                severity: d.severity,
                night: d.night.map(day_to_string),
                message,
                stats,
                samples,
                input_event_ids: d.ids,
                firing_id: d.firing_id.map(|id| id.to_string()),
            },
        });
        for &dep in &self.dependents[r] {
            let Mode::Condition {
                after: Some(after), ..
            } = &self.rules.rules[dep].mode
            else {
                continue;
            };
            if after.state != emitted {
                continue;
            }
            let (at, until) = match after.within {
                Extent::Nights(n) => {
                    let night = d.night.unwrap_or_else(|| d.time.local_day());
                    (i64::from(night), i64::from(night) + i64::from(n))
                }
                Extent::Time(ms) => (d.time.millis(), d.time.millis() + ms),
                Extent::Events(_) => continue,
            };
            let ds = state.rules[dep].get_or_insert_with(Default::default);
            ds.set_armed(Some(Armed { at, until }));
            ds.streak = Default::default();
        }
        Some(id)
    }
}

fn step_matches(step: &Step, event: &Event) -> bool {
    step.on == event.event_type()
        && step
            .filter
            .as_ref()
            .is_none_or(|f| f.holds(&EventEnv { event }))
}

/// The resolved output of `firing`, caused by `event`.
fn resolution<'a>(
    rule: &Rule,
    key: &str,
    firing: Firing,
    event: &'a Event,
    eval: Option<&'a Evaluation>,
) -> Decision<'a> {
    let night = event.time.local_day();
    let firing_id = firing_id(rule, key, firing);
    Decision {
        state: Some(AlertState::Resolved),
        severity: firing.severity,
        time: event.time,
        night: rule.nightly.then_some(night),
        occasion: format!(
            "{firing_id}\u{1f}{}",
            occasion(rule, night, event.time.millis())
        ),
        ids: vec![event.id.clone()],
        firing_id: Some(firing_id),
        eval,
        event: Some(event),
    }
}

/// The id of the firing output a resolved output refers to, rebuilt from what was kept.
fn firing_id(rule: &Rule, key: &str, firing: Firing) -> uuid::Uuid {
    output_id(
        &rule.id,
        rule.version,
        key,
        "firing",
        &occasion_text(rule, firing.occasion),
    )
}

/// What an output is about, as a number: its night for nightly rules, else its time (ms).
fn occasion_value(rule: &Rule, night: i32, t: i64) -> i64 {
    if rule.nightly {
        i64::from(night)
    } else {
        t
    }
}

/// The occasion as it enters output ids.
fn occasion_text(rule: &Rule, value: i64) -> String {
    if rule.nightly {
        day_to_string(i32::try_from(value).unwrap_or_default())
    } else {
        value.to_string()
    }
}

fn occasion(rule: &Rule, night: i32, t: i64) -> String {
    occasion_text(rule, occasion_value(rule, night, t))
}

fn evaluate_stats(
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
                    super::aggregate::naive(&stat.agg, &[], t)
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

/// Records whether the condition held at `pos` and says whether that completes a run of
/// `need` consecutive positions that has not fired yet. Positions arrive in any order within
/// the last 64: a late night or a correction rewrites its bit, and a run that includes a
/// position of an already fired run never fires again.
fn advance_streak(streak: &mut Streak, pos: i64, holds: bool, need: u32) -> bool {
    if streak.held == 0 && streak.fired == 0 {
        streak.pos = pos;
    }
    if pos > streak.pos {
        let shift = pos - streak.pos;
        if shift >= 64 {
            streak.held = 0;
            streak.fired = 0;
        } else {
            streak.held <<= shift;
            streak.fired <<= shift;
        }
        streak.pos = pos;
    }
    let Ok(offset) = u32::try_from(streak.pos - pos) else {
        return false;
    };
    if offset >= 64 {
        return false; // older than the bitmap reaches: nothing it could still decide
    }
    let bit = 1u64 << offset;
    if !holds {
        streak.held &= !bit;
        return false;
    }
    streak.held |= bit;
    // The maximal run of set bits through `offset`: towards older positions (higher bits) and
    // newer ones (lower bits).
    let older = (streak.held >> offset).trailing_ones();
    let newer = if offset == 0 {
        0
    } else {
        (!(streak.held << (64 - offset))).leading_zeros()
    };
    let length = older + newer;
    let low = offset - newer;
    let mask = if length >= 64 {
        u64::MAX
    } else {
        ((1u64 << length) - 1) << low
    };
    if streak.fired & mask != 0 {
        streak.fired |= mask; // the run already fired: its new positions belong to it too
        return false;
    }
    if length >= need {
        streak.fired |= mask;
        return true;
    }
    false
}

fn provenance(
    rule: &Rule,
    eval: &Evaluation,
) -> (IndexMap<String, Option<f64>>, IndexMap<String, u64>) {
    let mut stats = IndexMap::new();
    let mut samples = IndexMap::new();
    for (i, stat) in rule.stats.iter().enumerate() {
        stats.insert(stat.name.clone(), eval.stats[i].as_num());
        samples.insert(stat.name.clone(), eval.counts[i] as u64);
    }
    for (i, (name, _)) in rule.lets.iter().enumerate() {
        if let Some(Owned::Num(n)) = eval.lets.get(i) {
            stats.insert(name.clone(), Some(*n));
        } else if let Some(Owned::Null) = eval.lets.get(i) {
            stats.insert(name.clone(), None);
        }
    }
    (stats, samples)
}

fn render_message(
    rule: &Rule,
    eval: Option<&Evaluation>,
    event: Option<&Event>,
    night: Option<i32>,
) -> Option<String> {
    if rule.message.is_empty() {
        return rule.description.clone();
    }
    let mut text = String::new();
    for part in &rule.message {
        match part {
            TemplatePart::Text(s) => text.push_str(s),
            TemplatePart::Night => text.push_str(
                &night
                    .or(event.map(|e| e.time.local_day()))
                    .map_or("?".into(), day_to_string),
            ),
            TemplatePart::Value { expr, decimals } => {
                let rendered = match (eval, event) {
                    (Some(eval), Some(event)) => {
                        let env = RuleEnv {
                            event,
                            stats: &eval.stats,
                            lets: &eval.lets,
                        };
                        format_value(expr, &env, *decimals)
                    }
                    _ => "?".into(),
                };
                text.push_str(&rendered);
            }
        }
    }
    Some(text)
}

fn format_value(expr: &Expr, env: &dyn Env, decimals: Option<usize>) -> String {
    match expr.eval(env) {
        Value::Num(n) => match decimals {
            Some(d) => format!("{n:.d$}"),
            None => format!("{n}"),
        },
        Value::Bool(b) => b.to_string(),
        Value::Str(s) => s.to_string(),
        Value::Null => "n/a".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(streak: &mut Streak, night: i64, holds: bool) -> bool {
        advance_streak(streak, night, holds, 3)
    }

    #[test]
    fn streak_fires_once_per_run_and_a_gap_ends_it() {
        let mut rs = Streak::default();
        assert!(!step(&mut rs, 1, true));
        assert!(!step(&mut rs, 2, true));
        assert!(step(&mut rs, 3, true));
        assert!(!step(&mut rs, 4, true), "once per run");
        // Night 5 has no data: night 6 starts a new run.
        assert!(!step(&mut rs, 6, true));
        assert!(!step(&mut rs, 7, true));
        assert!(step(&mut rs, 8, true));
    }

    #[test]
    fn a_correction_of_the_latest_night_is_reapplied() {
        let mut rs = Streak::default();
        step(&mut rs, 1, true);
        step(&mut rs, 2, true);
        assert!(!step(&mut rs, 3, false));
        // The second value for night 3 holds: the run is 1, 2, 3 after all.
        assert!(step(&mut rs, 3, true));
        // Correcting it again does not fire twice, and a false correction breaks the run.
        assert!(!step(&mut rs, 3, true));
        assert!(!step(&mut rs, 3, false));
        assert!(!step(&mut rs, 4, true));
        // An older night cannot rewrite the run.
        assert!(!step(&mut rs, 2, false));
        assert!(!step(&mut rs, 5, true));
        assert!(step(&mut rs, 6, true));
    }
}
