//! Replacing the rule set of a running engine, between two events, keeping what the new set
//! can use of every key's state.
//!
//! - **Series** are matched by signature (what they read, how, under which key: see
//!   `rules::check::series`): a series in both sets keeps its samples — moved as it is when
//!   its store is laid out the same, else *rebuilt* (resized to the new windows, incremental
//!   aggregates recomputed from the samples). A series only the new set has starts empty
//!   (*fresh*); one only the old set had is dropped.
//! - **Rule state** (firing, last firing for cooldowns and dedup, streak, `[after]` arming,
//!   absence deadline and its timer, partial sequence matches) is matched by rule id and
//!   carried when it still means the same (see `plan`): conditions, thresholds, statistics,
//!   windows, tiers, messages and the version do not change its meaning; the kind, the key,
//!   nightly or not, the mode, `on`, `[resolve]` present or not, the streak's unit, the rule
//!   `[after]` follows, the events an absence or a sequence watches do. A changed absence
//!   timeout moves pending deadlines by the difference (*rebuilt*).
//! - **Open alerts** that cannot carry over — their rule removed, or its state fresh — are
//!   resolved with an output saying so (`close`). An alert carried across a version bump
//!   keeps the version it fired with, so its resolution names the id it was emitted with.
//! - Dormant firings (keys dropped by the state TTL) and the timer queue follow the rules'
//!   new positions; with a changelog, every key is written again under the new set, and the
//!   sample chunks of dropped series are deleted.

mod close;
mod plan;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::Serialize;

use super::output::OutputEvent;
use super::series::SeriesState;
use super::state::{Extra, Firing, KeyState, RuleState};
use super::{snapshot, Engine, Timer};
use crate::rules::{Rule, RuleSet};
use close::{closing_output, Why};
use plan::Plan;
pub use plan::Reuse;

/// What a reload did with each rule's state, and the outputs it emitted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReloadReport {
    /// The new set's rules in its order, then the removed ones.
    pub rules: Vec<RuleReload>,
    /// Series of the new set by what became of their samples.
    pub series_kept: usize,
    pub series_rebuilt: usize,
    pub series_fresh: usize,
    /// Series of the old set no rule of the new one uses.
    pub series_dropped: usize,
    /// Keys whose state was migrated.
    pub keys: usize,
    /// Resolutions of open alerts that could not carry over (see [`ReloadReport::outputs`]).
    pub alerts_closed: usize,
    /// Those resolutions, to publish like any output, in a deterministic order.
    #[serde(skip)]
    pub outputs: Vec<OutputEvent>,
}

/// One rule across a reload.
#[derive(Clone, Debug, Serialize)]
pub struct RuleReload {
    pub id: String,
    pub old_version: Option<u32>,
    pub new_version: Option<u32>,
    pub outcome: RuleOutcome,
    /// Why the state is fresh or rebuilt (empty otherwise).
    pub reason: String,
    /// Each statistic of the new rule and what became of its series' samples.
    pub statistics: Vec<(String, Reuse)>,
}

/// What became of a rule's per-key state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleOutcome {
    Added,
    Removed,
    Kept,
    Rebuilt,
    Fresh,
}

impl RuleOutcome {
    pub fn name(self) -> &'static str {
        match self {
            RuleOutcome::Added => "added",
            RuleOutcome::Removed => "removed",
            RuleOutcome::Kept => "kept",
            RuleOutcome::Rebuilt => "rebuilt",
            RuleOutcome::Fresh => "fresh",
        }
    }
}

impl RuleReload {
    /// `signal kept, baseline fresh`, or `none`.
    pub fn statistics_text(&self) -> String {
        if self.statistics.is_empty() {
            return "none".into();
        }
        self.statistics
            .iter()
            .map(|(name, reuse)| format!("{name} {}", reuse.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Engine {
    /// Replaces the rule set with `new`, migrating every key's state (see the module doc).
    /// Call it between two events; the outputs it emits (resolutions of alerts that could not
    /// carry over) are in the report, for the caller to publish before the next event's.
    pub fn replace_rules(&mut self, new: Arc<RuleSet>) -> ReloadReport {
        let old = Arc::clone(&self.rules);
        let plan = Plan::new(&old, &new);
        let mut report = report(&old, &new, &plan);
        let lateness = self.config.lateness.clone();
        let old_series_to_new = {
            let mut map = vec![None; old.series.len()];
            for (j, s) in plan.series.iter().enumerate() {
                if let Some(i) = s.from {
                    map[i] = Some(j);
                }
            }
            map
        };

        let mut keys: Vec<(Box<str>, KeyState)> =
            std::mem::take(&mut self.keys).into_iter().collect();
        // Closing outputs come out in key order, whatever the table's order.
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut migrated = FxHashMap::default();
        migrated.reserve(keys.len());
        let mut orphans = Vec::new();
        for (key, mut state) in keys {
            let mut next = KeyState::new(new.series.len(), new.rules.len());
            next.clock = state.clock;
            next.offset_seconds = state.offset_seconds;
            for (j, series_plan) in plan.series.iter().enumerate() {
                let Some(series) = series_plan.from.and_then(|i| state.series[i].take()) else {
                    continue;
                };
                next.series[j] = Some(match series_plan.reuse {
                    Reuse::Kept => series,
                    Reuse::Rebuilt | Reuse::Fresh => Box::new(series.rebuilt(
                        &new.series[j],
                        state.clock,
                        lateness.of(new.series[j].from),
                    )),
                });
            }
            let dropped = dropped_chunks(&old, &state);
            if !dropped.is_empty() {
                orphans.push((key.clone(), dropped));
            }
            for (i, slot) in state.rules.iter_mut().enumerate() {
                let Some(mut rule_state) = slot.take() else {
                    continue;
                };
                match plan.old_to_new[i] {
                    Some(j) => {
                        carry(
                            &mut rule_state,
                            &old.rules[i],
                            &new.rules[j],
                            plan.rules[j].deadline_shift,
                        );
                        next.rules[j] = Some(rule_state);
                    }
                    None => {
                        if let Some(firing) = rule_state.firing {
                            let why = if new.rule_index(&old.rules[i].id).is_some() {
                                Why::Changed
                            } else {
                                Why::Removed
                            };
                            report.outputs.push(closing_output(
                                &old.rules[i],
                                &key,
                                firing,
                                state.clock,
                                state.offset_seconds,
                                why,
                            ));
                        }
                    }
                }
            }
            migrated.insert(key, next);
        }
        report.keys = migrated.len();

        self.migrate_dormant(&old, &new, &plan, &mut report);
        self.migrate_timers(&plan, &migrated);
        if let Some(changes) = self.changes.as_mut() {
            for dirty in changes.touched.values_mut() {
                dirty.retain_mut(|(series, _)| match old_series_to_new.get(*series) {
                    Some(Some(j)) => {
                        *series = *j;
                        true
                    }
                    _ => false,
                });
            }
            // Every key record names rules by id and version and series by signature: write
            // them all again under the new set.
            for key in migrated.keys() {
                changes.touched.entry(key.clone()).or_default();
            }
            // A dropped series' chunks are deleted like a dropped key's; the key record
            // deleted with them is written again just after (touched above).
            changes.dropped.extend(orphans);
        }
        self.keys = migrated;

        let derived = Engine::new(Arc::clone(&new), self.config.clone());
        self.series_by_type = derived.series_by_type;
        self.evaluated_by_type = derived.evaluated_by_type;
        self.attribute_keys = derived.attribute_keys;
        self.dependents = derived.dependents;
        self.rules = new;
        report.alerts_closed = report.outputs.len();
        self.counters.alerts_resolved += report.outputs.len() as u64;
        report
    }

    /// Dormant firings move to their rule's new position; those that cannot are closed at
    /// the stream clock (the key's own clock went with its state), in UTC.
    fn migrate_dormant(
        &mut self,
        old: &RuleSet,
        new: &RuleSet,
        plan: &Plan,
        report: &mut ReloadReport,
    ) {
        let mut dormant: Vec<_> = std::mem::take(&mut self.dormant).into_iter().collect();
        dormant.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let now = self.clock.time();
        for (key, firings) in dormant {
            let mut kept = Vec::with_capacity(firings.len());
            for &(rule, firing) in firings.iter() {
                let i = rule as usize;
                let Some(old_rule) = old.rules.get(i) else {
                    continue;
                };
                match plan.old_to_new.get(i).copied().flatten() {
                    Some(j) => {
                        let mut firing = firing;
                        carry_firing(&mut firing, old_rule, &new.rules[j]);
                        if let Ok(j) = u32::try_from(j) {
                            kept.push((j, firing));
                        }
                    }
                    None => {
                        let why = if new.rule_index(&old_rule.id).is_some() {
                            Why::Changed
                        } else {
                            Why::Removed
                        };
                        report
                            .outputs
                            .push(closing_output(old_rule, &key, firing, now, 0, why));
                    }
                }
            }
            if let Some(changes) = self.changes.as_mut() {
                changes.dormant.push(key.clone());
            }
            if !kept.is_empty() {
                self.dormant.insert(key, kept.into_boxed_slice());
            }
        }
    }

    /// Timers follow their rule's new position; those of removed or fresh rules go, and those
    /// of rules whose deadlines moved are queued again at the moved deadline.
    fn migrate_timers(&mut self, plan: &Plan, keys: &FxHashMap<Box<str>, KeyState>) {
        let timers = std::mem::take(&mut self.timers).into_vec();
        let mut kept: Vec<Reverse<Timer>> = timers
            .into_iter()
            .filter_map(|Reverse(timer)| {
                let j = plan.old_to_new.get(timer.rule).copied().flatten()?;
                (plan.rules[j].deadline_shift == 0).then_some(Reverse(Timer { rule: j, ..timer }))
            })
            .collect();
        for (key, state) in keys {
            for (j, rule_state) in state.rules.iter().enumerate() {
                if plan.rules[j].deadline_shift == 0 {
                    continue;
                }
                if let Some(Extra::Absence(absence)) =
                    rule_state.as_deref().and_then(|r| r.extra.as_deref())
                {
                    if let (Some(deadline), true) = (absence.deadline, absence.queued) {
                        kept.push(Reverse(Timer {
                            deadline,
                            key: key.clone(),
                            rule: j,
                        }));
                    }
                }
            }
        }
        self.timers = BinaryHeap::from(kept);
    }
}

/// Adjusts a rule's state carried from `old` to `new`.
fn carry(state: &mut RuleState, old: &Rule, new: &Rule, deadline_shift: i64) {
    if let Some(firing) = state.firing.as_mut() {
        carry_firing(firing, old, new);
    }
    if deadline_shift != 0 {
        if let Some(Extra::Absence(absence)) = state.extra.as_deref_mut() {
            absence.deadline = absence.deadline.map(|d| d.saturating_add(deadline_shift));
        }
    }
}

/// A firing carried across a version bump remembers the version it was emitted with.
fn carry_firing(firing: &mut Firing, old: &Rule, new: &Rule) {
    if firing.version.is_none() && old.version != new.version {
        firing.version = Some(old.version);
    }
}

/// The changelog chunks of the series `state` still holds after the carried ones were taken:
/// those of series the new set dropped.
fn dropped_chunks(old: &RuleSet, state: &KeyState) -> Vec<(u64, Vec<i64>)> {
    old.series
        .iter()
        .zip(state.series.iter())
        .filter_map(|(def, series)| match series.as_deref() {
            Some(SeriesState::Events(store)) if !store.logged_chunks().is_empty() => Some((
                snapshot::series_id(&def.signature),
                store.logged_chunks().to_vec(),
            )),
            _ => None,
        })
        .collect()
}

fn report(old: &RuleSet, new: &RuleSet, plan: &Plan) -> ReloadReport {
    let mut report = ReloadReport::default();
    for s in &plan.series {
        match s.reuse {
            Reuse::Kept => report.series_kept += 1,
            Reuse::Rebuilt => report.series_rebuilt += 1,
            Reuse::Fresh => report.series_fresh += 1,
        }
    }
    report.series_dropped = old
        .series
        .iter()
        .filter(|o| !new.series.iter().any(|n| n.signature == o.signature))
        .count();
    for (j, rule) in new.rules.iter().enumerate() {
        let rule_plan = &plan.rules[j];
        let old_rule = old.rules.iter().find(|o| o.id == rule.id);
        let outcome = match (old_rule, rule_plan.from, rule_plan.reuse) {
            (None, _, _) => RuleOutcome::Added,
            (Some(_), None, _) => RuleOutcome::Fresh,
            (Some(_), Some(_), Reuse::Rebuilt) => RuleOutcome::Rebuilt,
            (Some(_), Some(_), _) => RuleOutcome::Kept,
        };
        report.rules.push(RuleReload {
            id: rule.id.clone(),
            old_version: old_rule.map(|o| o.version),
            new_version: Some(rule.version),
            outcome,
            reason: if outcome == RuleOutcome::Added {
                String::new()
            } else {
                rule_plan.reason.clone()
            },
            statistics: rule
                .stats
                .iter()
                .map(|s| {
                    let reuse = plan.series.get(s.series).map_or(Reuse::Fresh, |p| p.reuse);
                    (s.name.clone(), reuse)
                })
                .collect(),
        });
    }
    for rule in &old.rules {
        if new.rule_index(&rule.id).is_none() {
            report.rules.push(RuleReload {
                id: rule.id.clone(),
                old_version: Some(rule.version),
                new_version: None,
                outcome: RuleOutcome::Removed,
                reason: String::new(),
                statistics: Vec::new(),
            });
        }
    }
    report
}

#[cfg(test)]
mod tests;
