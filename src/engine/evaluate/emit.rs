//! Turning a decision into an output: its id, provenance and message; and arming the rules
//! that follow the one that emitted it.

use indexmap::IndexMap;

use super::env::{Evaluation, Owned, RuleEnv};
use super::Context;
use crate::engine::output::{
    output_id, AlertState, OutputData, OutputEvent, ALERT_FIRING_TYPE, ALERT_RESOLVED_TYPE,
    MILESTONE_TYPE,
};
use crate::engine::state::{Armed, Firing, KeyState};
use crate::event::{day_to_string, Event, EventTime, Value};
use crate::rules::duration::Extent;
use crate::rules::expr::{Env, Expr};
use crate::rules::{Mode, OutputState, Rule, RuleKind, Severity, TemplatePart};

/// Everything an output needs besides the rule.
pub(super) struct Decision<'a> {
    pub state: Option<AlertState>,
    pub severity: Severity,
    pub time: EventTime,
    pub night: Option<i32>,
    pub occasion: String,
    pub ids: Vec<String>,
    pub firing_id: Option<uuid::Uuid>,
    pub eval: Option<&'a Evaluation>,
    pub event: Option<&'a Event>,
}

impl Context<'_> {
    /// Builds and appends an output (unless it repeats the rule's previous one), counts it,
    /// and arms the rules that follow this one. Returns the output's id.
    pub(super) fn emit(
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

/// The resolved output of `firing`, caused by `event`.
pub(super) fn resolution<'a>(
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

/// The id of the firing output a resolved output refers to, rebuilt from what was kept (with
/// the version that fired it, which a rule reload may have bumped since).
pub(in crate::engine) fn firing_id(rule: &Rule, key: &str, firing: Firing) -> uuid::Uuid {
    output_id(
        &rule.id,
        firing.version.unwrap_or(rule.version),
        key,
        "firing",
        &occasion_text(rule, firing.occasion),
    )
}

/// What an output is about, as a number: its night for nightly rules, else its time (ms).
pub(super) fn occasion_value(rule: &Rule, night: i32, t: i64) -> i64 {
    if rule.nightly {
        i64::from(night)
    } else {
        t
    }
}

/// The occasion as it enters output ids.
pub(super) fn occasion_text(rule: &Rule, value: i64) -> String {
    if rule.nightly {
        day_to_string(i32::try_from(value).unwrap_or_default())
    } else {
        value.to_string()
    }
}

fn occasion(rule: &Rule, night: i32, t: i64) -> String {
    occasion_text(rule, occasion_value(rule, night, t))
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
