//! What of the running rule set's state the new set can use: series matched by signature,
//! rules by id, and for each rule whether its state still means what it meant.
//!
//! Decided from the two rule sets alone, once per reload, before any key is touched.

use crate::rules::duration::Extent;
use crate::rules::{Mode, Rule, RuleSet, SeriesDef, Step};

/// What becomes of a piece of state across a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reuse {
    /// Carried over as it was.
    Kept,
    /// Carried over and adjusted to the new definition: a series' store resized and its
    /// incremental aggregates recomputed from the samples kept, an absence deadline moved by
    /// the change of its timeout.
    Rebuilt,
    /// Started empty: nothing of the old state means anything under the new definition.
    Fresh,
}

impl Reuse {
    pub fn name(self) -> &'static str {
        match self {
            Reuse::Kept => "kept",
            Reuse::Rebuilt => "rebuilt",
            Reuse::Fresh => "fresh",
        }
    }
}

/// Where a new series' state comes from.
#[derive(Clone, Copy, Debug)]
pub(super) struct SeriesPlan {
    /// The old series with the same signature.
    pub from: Option<usize>,
    pub reuse: Reuse,
}

/// Where a new rule's state comes from.
#[derive(Clone, Debug)]
pub(super) struct RulePlan {
    /// The old rule with the same id, when its state carries over.
    pub from: Option<usize>,
    pub reuse: Reuse,
    /// Why the state is fresh or rebuilt (empty when kept or new).
    pub reason: String,
    /// For a rebuilt absence: how far its deadlines move (new timeout − old timeout, ms).
    pub deadline_shift: i64,
}

pub(super) struct Plan {
    pub series: Vec<SeriesPlan>,
    pub rules: Vec<RulePlan>,
    /// For each old rule, the new rule its state moves to (`None`: removed or fresh).
    pub old_to_new: Vec<Option<usize>>,
}

impl Plan {
    pub fn new(old: &RuleSet, new: &RuleSet) -> Plan {
        let series = new
            .series
            .iter()
            .map(|def| {
                let from = old.series.iter().position(|o| o.signature == def.signature);
                let reuse = match from.map(|i| &old.series[i]) {
                    Some(o) if same_extent(o, def) => Reuse::Kept,
                    Some(_) => Reuse::Rebuilt,
                    None => Reuse::Fresh,
                };
                SeriesPlan { from, reuse }
            })
            .collect();
        let mut old_to_new = vec![None; old.rules.len()];
        let rules = new
            .rules
            .iter()
            .enumerate()
            .map(|(j, rule)| {
                let Some(i) = old.rule_index(&rule.id) else {
                    return RulePlan {
                        from: None,
                        reuse: Reuse::Fresh,
                        reason: "new rule".into(),
                        deadline_shift: 0,
                    };
                };
                let plan = rule_plan(&old.rules[i], rule, i);
                if plan.from.is_some() {
                    old_to_new[i] = Some(j);
                }
                plan
            })
            .collect();
        Plan {
            series,
            rules,
            old_to_new,
        }
    }
}

/// True when a series' store is laid out the same under both definitions (same signature
/// assumed): how far back it keeps samples, and which sliding aggregates it maintains.
fn same_extent(old: &SeriesDef, new: &SeriesDef) -> bool {
    old.keep_days == new.keep_days
        && old.keep_ms == new.keep_ms
        && old.keep_count == new.keep_count
        && old.sliding == new.sliding
}

fn fresh(reason: impl Into<String>) -> RulePlan {
    RulePlan {
        from: None,
        reuse: Reuse::Fresh,
        reason: reason.into(),
        deadline_shift: 0,
    }
}

/// Whether the per-key state of `old` (firing, last firing, streak, `[after]` arming,
/// absence deadline, partial sequence matches) means the same under `new`. Conditions,
/// thresholds, statistics, windows, `where`, tiers, severity, message, cooldown, streak
/// length, `within` and the version change what the rule decides next, not what its state
/// records, so they keep it; what changes the state's meaning starts it fresh.
fn rule_plan(old: &Rule, new: &Rule, from: usize) -> RulePlan {
    if old.kind != new.kind {
        return fresh(format!("kind changed from {}", old.kind.name()));
    }
    if old.key != new.key {
        return fresh("key changed");
    }
    if old.nightly != new.nightly {
        return fresh(
            "it changed between nightly and not: its occasions are nights on one side, times on \
             the other",
        );
    }
    let kept = RulePlan {
        from: Some(from),
        reuse: Reuse::Kept,
        reason: String::new(),
        deadline_shift: 0,
    };
    match (&old.mode, &new.mode) {
        (
            Mode::Condition {
                on: on_a,
                streak: streak_a,
                resolve: resolve_a,
                after: after_a,
                ..
            },
            Mode::Condition {
                on: on_b,
                streak: streak_b,
                resolve: resolve_b,
                after: after_b,
                ..
            },
        ) => {
            if on_a != on_b {
                return fresh(format!("`on` changed from {}", on_a.name()));
            }
            if resolve_a.is_some() != resolve_b.is_some() {
                return fresh("[resolve] was added or removed");
            }
            if streak_unit(streak_a) != streak_unit(streak_b) {
                return fresh("its streak is counted in other units");
            }
            let target =
                |a: &Option<crate::rules::After>| a.as_ref().map(|a| (a.rule_id.clone(), a.state));
            if target(after_a) != target(after_b) {
                return fresh("[after] follows another rule or output");
            }
            kept
        }
        (
            Mode::Absence {
                of: of_a,
                timeout_ms: timeout_a,
                start: start_a,
                resolves: resolves_a,
            },
            Mode::Absence {
                of: of_b,
                timeout_ms: timeout_b,
                start: start_b,
                resolves: resolves_b,
            },
        ) => {
            if of_a != of_b
                || resolves_a != resolves_b
                || !same_step(start_a.as_ref(), start_b.as_ref())
            {
                return fresh("it watches other events");
            }
            if timeout_a != timeout_b {
                return RulePlan {
                    reuse: Reuse::Rebuilt,
                    reason: "pending deadlines moved by the change of its timeout".into(),
                    deadline_shift: timeout_b.saturating_sub(*timeout_a),
                    ..kept
                };
            }
            kept
        }
        (
            Mode::Sequence {
                steps: steps_a,
                strict: strict_a,
                ..
            },
            Mode::Sequence {
                steps: steps_b,
                strict: strict_b,
                ..
            },
        ) => {
            let same_steps = steps_a.len() == steps_b.len()
                && steps_a
                    .iter()
                    .zip(steps_b)
                    .all(|(a, b)| same_step(Some(a), Some(b)));
            if !same_steps || strict_a != strict_b {
                return fresh("its steps changed: partial matches mean other things");
            }
            kept
        }
        _ => fresh("it changed between [fire], [absence] and [sequence]"),
    }
}

fn streak_unit(streak: &Option<Extent>) -> Option<u8> {
    streak.map(|s| match s {
        Extent::Nights(_) => 0,
        Extent::Events(_) => 1,
        Extent::Time(_) => 2,
    })
}

fn same_step(a: Option<&Step>, b: Option<&Step>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.on == b.on && a.filter == b.filter,
        _ => false,
    }
}
