//! The backtest's table: per rule and rule set, firings, resolutions, milestones, users
//! affected and the rate per user-month; with two sets, how far their outputs agree. The same
//! [`Table`] is printed as text and, with `--json`, as one JSON document (its schema is
//! `schemas/backtest.schema.json`).
//!
//! **User-months**: per user, the time from their earliest to their latest event in the input
//! (late and out-of-order events included, lines that do not decode not), summed over the
//! users, in months of 30 days. A user with a single event adds nothing.
//!
//! **The same output** in two sets: the same subject (user), rule id, state (firing, resolved
//! or milestone) and occasion: the night for a nightly rule, the output's time otherwise (for
//! a resolution, its own night or time, not the firing it closes). Versions may differ: the
//! output ids include the version, so they cannot be the key. Severity, message and
//! statistics are not compared. Outputs are matched as multisets: two equal outputs in A and
//! one in B make one in both and one only in A.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::replay::{Decision, Names, RuleIds, SetRun};
use crate::io::route::Summary;
use crate::rules::{OutputState, RuleKind};

/// Milliseconds in a user-month (30 days).
pub const MONTH_MS: f64 = 30.0 * 86_400_000.0;

/// The whole result of a backtest, as `vigil backtest --json` prints it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Table {
    /// The shape's version: 1. A field that changes meaning or goes away bumps it; new fields
    /// may be added without.
    pub format: u32,
    pub input: InputTotals,
    /// The rule sets, A first (and B with `--against`).
    pub sets: Vec<SetTotals>,
    /// One row per rule id, set A's rules in their order, then those only set B has.
    pub rules: Vec<RuleRow>,
}

/// What was read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputTotals {
    /// The inputs, as given (`-` is stdin).
    pub files: Vec<String>,
    /// Non-blank lines read.
    pub lines: u64,
    /// Lines that decoded to an event (late ones included).
    pub events: u64,
    /// Lines that did not decode (invalid JSON, schema violations, times before 2000): counted,
    /// and written to `--dead-letter` when given.
    pub invalid: u64,
    /// Distinct users among the events.
    pub users: u64,
    /// Sum over the users of the time from their earliest to their latest event, in 30-day
    /// months.
    pub user_months: f64,
}

/// What one rule set did with the events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTotals {
    /// "A" (`--rules`) or "B" (`--against`).
    pub set: String,
    /// The rule files or folders, as given.
    pub rules: Vec<String>,
    /// Events the engine processed.
    pub processed: u64,
    /// Events later than the allowed lateness behind their user's event time: not processed,
    /// counted, and written to `--late` (set A's) when given.
    pub late: u64,
    /// Alert outputs: firings and resolutions.
    pub alerts: u64,
    pub milestones: u64,
}

/// One rule id across the sets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleRow {
    pub id: String,
    /// The sets that have a rule of this id, A before B.
    pub sets: Vec<RuleCounts>,
    /// With `--against`: how far the two sets' outputs of this rule agree (see the module
    /// documentation for what makes two outputs the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<Agreement>,
}

/// One rule's outputs in one set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleCounts {
    /// "A" or "B".
    pub set: String,
    pub version: u32,
    pub kind: RuleKind,
    pub firings: u64,
    pub resolutions: u64,
    pub milestones: u64,
    /// Distinct subjects (users) with at least one output of the rule.
    pub users_affected: u64,
    /// Firings (alerts) or milestones (milestone rules) per user-month of input; null when
    /// the input spans no time.
    pub per_user_month: Option<f64>,
}

/// Outputs of a rule in both sets, only in A, only in B.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    pub both: u64,
    pub only_a: u64,
    pub only_b: u64,
}

/// Set names by position.
pub const SET_NAMES: [&str; 2] = ["A", "B"];

/// The table of a finished replay.
pub fn table(
    files: &[String],
    rule_paths: &[Vec<String>],
    sets: &[SetRun],
    names: &Names,
    rule_ids: &RuleIds,
) -> Table {
    let first = sets.first().map(SetRun::summary).unwrap_or_default();
    let spans = names.spans.iter().flatten();
    let users = spans.clone().count() as u64;
    let span_ms: i64 = spans.map(|(a, b)| b.saturating_sub(*a)).sum();
    let user_months = span_ms as f64 / MONTH_MS;
    let input = InputTotals {
        files: files.to_vec(),
        lines: first.records,
        events: first.events,
        invalid: first.dead_lettered,
        users,
        user_months,
    };
    let totals = sets
        .iter()
        .enumerate()
        .map(|(i, set)| set_totals(i, rule_paths.get(i), &set.summary()))
        .collect();
    let rules = rule_ids
        .ids
        .iter()
        .enumerate()
        .map(|(r, id)| rule_row(r as u32, id, sets, user_months))
        .collect();
    Table {
        format: 1,
        input,
        sets: totals,
        rules,
    }
}

fn set_totals(i: usize, paths: Option<&Vec<String>>, summary: &Summary) -> SetTotals {
    SetTotals {
        set: SET_NAMES.get(i).copied().unwrap_or("?").to_string(),
        rules: paths.cloned().unwrap_or_default(),
        processed: summary.events - summary.late,
        late: summary.late,
        alerts: summary.alerts,
        milestones: summary.milestones,
    }
}

fn rule_row(r: u32, id: &str, sets: &[SetRun], user_months: f64) -> RuleRow {
    let mut counts = Vec::new();
    let mut keys: Vec<Vec<MatchKey>> = Vec::new();
    for (i, set) in sets.iter().enumerate() {
        let Some(rule) = set.rules.rules.iter().find(|rule| rule.id == id) else {
            keys.push(Vec::new());
            continue;
        };
        let mine: Vec<&Decision> = set.decisions.iter().filter(|d| d.rule == r).collect();
        let count = |state| mine.iter().filter(|d| d.state == state).count() as u64;
        let (firings, resolutions, milestones) = (
            count(OutputState::Firing),
            count(OutputState::Resolved),
            count(OutputState::Milestone),
        );
        let mut users: Vec<u32> = mine.iter().map(|d| d.subject).collect();
        users.sort_unstable();
        users.dedup();
        let opened = match rule.kind {
            RuleKind::Alert => firings,
            RuleKind::Milestone => milestones,
        };
        counts.push(RuleCounts {
            set: SET_NAMES.get(i).copied().unwrap_or("?").to_string(),
            version: rule.version,
            kind: rule.kind,
            firings,
            resolutions,
            milestones,
            users_affected: users.len() as u64,
            per_user_month: (user_months > 0.0).then(|| opened as f64 / user_months),
        });
        keys.push(mine.iter().map(|d| match_key(d)).collect());
    }
    let agreement = match keys.as_slice() {
        [a, b] => Some(agree(a, b)),
        _ => None,
    };
    RuleRow {
        id: id.to_string(),
        sets: counts,
        agreement,
    }
}

/// Subject, state and occasion: what makes two outputs of one rule the same.
pub type MatchKey = (u32, u8, i64);

/// What makes two outputs of one rule the same (see the module documentation).
pub fn match_key(d: &Decision) -> MatchKey {
    let state = match d.state {
        OutputState::Firing => 0,
        OutputState::Resolved => 1,
        OutputState::Milestone => 2,
    };
    (d.subject, state, d.occasion)
}

/// Matches two multisets of keys.
fn agree(a: &[MatchKey], b: &[MatchKey]) -> Agreement {
    let paired = pair(a, b);
    Agreement {
        both: paired.both,
        only_a: paired.only_a.len() as u64,
        only_b: paired.only_b.len() as u64,
    }
}

/// Two multisets of keys matched: how many are in both, and the positions in `a` and in `b`
/// of those left unmatched (in key order). The one matcher of the backtest and the shadow
/// runs, so that both count agreement the same way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paired {
    pub both: u64,
    pub only_a: Vec<usize>,
    pub only_b: Vec<usize>,
}

/// Matches two multisets of keys (see the module documentation).
pub fn pair(a: &[MatchKey], b: &[MatchKey]) -> Paired {
    let sorted = |keys: &[MatchKey]| {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by_key(|&i| (keys[i], i));
        order
    };
    let (ia, ib) = (sorted(a), sorted(b));
    let mut paired = Paired::default();
    let (mut i, mut j) = (0, 0);
    while i < ia.len() && j < ib.len() {
        match a[ia[i]].cmp(&b[ib[j]]) {
            std::cmp::Ordering::Equal => {
                paired.both += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => {
                paired.only_a.push(ia[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                paired.only_b.push(ib[j]);
                j += 1;
            }
        }
    }
    paired.only_a.extend_from_slice(&ia[i..]);
    paired.only_b.extend_from_slice(&ib[j..]);
    paired
}

impl Table {
    /// The table as text, for a terminal: a line on the input, then one row per rule; with two
    /// sets, each count is written "A → B" (or just once when equal) and the agreement follows.
    pub fn render(&self) -> String {
        let mut text = String::new();
        let i = &self.input;
        let late: Vec<String> = self
            .sets
            .iter()
            .map(|s| {
                if self.sets.len() > 1 {
                    format!("{} {}", s.set, s.late)
                } else {
                    s.late.to_string()
                }
            })
            .collect();
        text.push_str(&format!(
            "events: {} from {} input{} ({} users, {:.1} user-months); invalid lines: {}; late events: {}\n",
            i.events,
            i.files.len(),
            if i.files.len() == 1 { "" } else { "s" },
            i.users,
            i.user_months,
            i.invalid,
            late.join(", "),
        ));
        let two = self.sets.len() > 1;
        let mut header = vec![
            "rule",
            "version",
            "firings",
            "resolutions",
            "milestones",
            "users",
            "per user-month",
        ];
        if two {
            header.extend(["both", "only A", "only B"]);
        }
        let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
        for rule in &self.rules {
            let cell = |f: &dyn Fn(&RuleCounts) -> String| -> String {
                let values: Vec<String> = SET_NAMES[..self.sets.len()]
                    .iter()
                    .map(|set| {
                        rule.sets
                            .iter()
                            .find(|c| c.set == *set)
                            .map_or_else(|| "–".to_string(), f)
                    })
                    .collect();
                match values.as_slice() {
                    [a, b] if a != b => format!("{a} → {b}"),
                    [a, ..] => a.clone(),
                    [] => String::new(),
                }
            };
            let mut row = vec![
                rule.id.clone(),
                cell(&|c| c.version.to_string()),
                cell(&|c| c.firings.to_string()),
                cell(&|c| c.resolutions.to_string()),
                cell(&|c| c.milestones.to_string()),
                cell(&|c| c.users_affected.to_string()),
                cell(&|c| c.per_user_month.map_or("–".into(), |r| format!("{r:.3}"))),
            ];
            if let Some(a) = rule.agreement {
                row.extend([a.both, a.only_a, a.only_b].map(|n| n.to_string()));
            } else if two {
                row.extend(["", "", ""].map(String::from));
            }
            rows.push(row);
        }
        let columns = rows.first().map_or(0, Vec::len);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                rows.iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in rows {
            let cells: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, s)| {
                    let pad = widths[c].saturating_sub(s.chars().count());
                    // Names to the left, figures to the right.
                    if c == 0 {
                        format!("{s}{}", " ".repeat(pad))
                    } else {
                        format!("{}{s}", " ".repeat(pad))
                    }
                })
                .collect();
            text.push_str(cells.join("  ").trim_end());
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_matched_as_multisets() {
        let a = vec![(1, 0, 10), (1, 0, 10), (2, 1, 11), (3, 2, 12)];
        let b = vec![(1, 0, 10), (2, 1, 11), (2, 1, 13), (4, 0, 10)];
        assert_eq!(
            agree(&a, &b),
            Agreement {
                both: 2,
                only_a: 2,
                only_b: 2
            }
        );
        assert_eq!(agree(&[], &[]), Agreement::default());
    }

    #[test]
    fn pairing_names_the_unmatched_positions() {
        let a = [(1, 0, 10), (1, 0, 10), (2, 1, 11)];
        let b = [(2, 1, 13), (1, 0, 10)];
        assert_eq!(
            pair(&a, &b),
            Paired {
                both: 1,
                only_a: vec![1, 2],
                only_b: vec![0]
            }
        );
    }
}
