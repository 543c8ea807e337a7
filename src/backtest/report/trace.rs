//! What a rule's plot shows, and the values behind it, gathered through the engine's
//! [`Observer`] while the chosen users' events are replayed.
//!
//! The plot follows the rule's own `[fire]` condition: its first comparison `L op R` gives the
//! **metric** (L, e.g. `signal` of `hrv_drop`, `heart_rate` of `rhr_elevated`) and the
//! **threshold** (R: `lower` = mean − 0.5·SD, `median + 4`, `360`). When R is built on a mean
//! or a median statistic (`baseline_mean`, `median`), the band between that statistic and R
//! is shaded: the personal normal range the rule compares against. Both are evaluated with the
//! rule's own expressions at every evaluation, so the plot shows what the rule saw.

use rustc_hash::FxHashMap;

use crate::engine::Observer;
use crate::event::{Event, EventType};
use crate::rules::expr::{BinOp, Env, Expr, Slot};
use crate::rules::{AggKind, Mode, Rule, RuleSet};

/// What a rule's plot shows.
#[derive(Clone, Debug)]
pub struct Plan {
    pub metric: Expr,
    pub metric_label: String,
    pub threshold: Expr,
    pub threshold_label: String,
    /// The comparison, as written between metric and threshold ("<", ">=", …).
    pub op: &'static str,
    /// A mean or median statistic the threshold is built on, and its name.
    pub band: Option<(Expr, String)>,
}

/// The plan of a `[fire]` rule with a comparison in its condition; `None` otherwise
/// (absences, sequences, conditions without a comparison).
pub fn plan(rule: &Rule) -> Option<Plan> {
    let Mode::Condition { fire, on, .. } = &rule.mode else {
        return None;
    };
    let (op, l, r) = first_comparison(fire)?;
    let band = central_stat(rule, r, 0)
        .filter(|i| !matches!(r, Expr::Load(Slot::Stat(j)) if j == i))
        .and_then(|i| {
            let name = rule.stats.get(i)?.name.clone();
            Some((Expr::Load(Slot::Stat(i)), name))
        });
    Some(Plan {
        metric: l.clone(),
        metric_label: describe(l, rule, *on),
        threshold: r.clone(),
        threshold_label: describe(r, rule, *on),
        op: op.symbol(),
        band,
    })
}

fn first_comparison(e: &Expr) -> Option<(BinOp, &Expr, &Expr)> {
    match e {
        Expr::Binary(op @ (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge), l, r) => {
            Some((*op, l, r))
        }
        Expr::Binary(BinOp::And | BinOp::Or, l, r) => {
            first_comparison(l).or_else(|| first_comparison(r))
        }
        Expr::Not(inner) => first_comparison(inner),
        _ => None,
    }
}

/// The first mean or median statistic `e` reads, through the bindings it reads.
fn central_stat(rule: &Rule, e: &Expr, depth: usize) -> Option<usize> {
    if depth > rule.lets.len() {
        return None;
    }
    match e {
        Expr::Load(Slot::Stat(i)) => rule
            .stats
            .get(*i)
            .filter(|s| matches!(s.agg, AggKind::Mean | AggKind::Median))
            .map(|_| *i),
        Expr::Load(Slot::Let(i)) => {
            let (_, bound) = rule.lets.get(*i)?;
            central_stat(rule, bound, depth + 1)
        }
        Expr::Neg(inner) | Expr::Not(inner) => central_stat(rule, inner, depth),
        Expr::Binary(_, l, r) => {
            central_stat(rule, l, depth).or_else(|| central_stat(rule, r, depth))
        }
        Expr::Call(_, args) => args.iter().find_map(|a| central_stat(rule, a, depth)),
        _ => None,
    }
}

/// An expression written with the rule's names, for labels.
fn describe(e: &Expr, rule: &Rule, on: EventType) -> String {
    match e {
        Expr::Load(Slot::Field(i)) => on
            .fields()
            .get(*i)
            .map_or_else(|| format!("field {i}"), |f| f.name.to_string()),
        Expr::Load(Slot::Stat(i)) => rule
            .stats
            .get(*i)
            .map_or_else(|| format!("stat {i}"), |s| s.name.clone()),
        Expr::Load(Slot::Let(i)) => rule.lets.get(*i).map_or_else(
            || format!("let {i}"),
            |(name, bound)| format!("{name} = {}", describe(bound, rule, on)),
        ),
        Expr::Load(Slot::Night) => "night".to_string(),
        Expr::Binary(op, l, r) => format!(
            "{} {} {}",
            describe(l, rule, on),
            op.symbol(),
            describe(r, rule, on)
        ),
        Expr::Neg(inner) => format!("-{}", describe(inner, rule, on)),
        Expr::Call(func, args) => {
            let args: Vec<String> = args.iter().map(|a| describe(a, rule, on)).collect();
            format!(
                "{}({})",
                format!("{func:?}").to_lowercase(),
                args.join(", ")
            )
        }
        other => other.to_string(),
    }
}

/// One evaluation of a plotted rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub t_ms: i64,
    pub metric: Option<f64>,
    pub threshold: Option<f64>,
    pub band: Option<f64>,
}

/// The observer of one set's replay: the points of every plotted rule, per key.
pub struct Trace {
    plans: Vec<Option<Plan>>,
    /// (key, rule index) → points in evaluation order.
    pub points: FxHashMap<(Box<str>, usize), Vec<Point>>,
}

impl Trace {
    pub fn new(rules: &RuleSet) -> Self {
        Trace {
            plans: rules.rules.iter().map(plan).collect(),
            points: FxHashMap::default(),
        }
    }
}

impl Observer for Trace {
    fn evaluated(&mut self, rule: usize, key: &str, event: &Event, env: &dyn Env) {
        let Some(Some(plan)) = self.plans.get(rule) else {
            return;
        };
        let point = Point {
            t_ms: event.time.millis(),
            metric: plan.metric.eval(env).as_num(),
            threshold: plan.threshold.eval(env).as_num(),
            band: plan.band.as_ref().and_then(|(e, _)| e.eval(env).as_num()),
        };
        self.points
            .entry((key.into(), rule))
            .or_default()
            .push(point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn pack() -> RuleSet {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
        crate::rules::load_rules(&[dir]).expect("the rule pack loads")
    }

    #[test]
    fn plans_follow_each_rules_first_comparison() {
        let rules = pack();
        let plans: FxHashMap<&str, Option<Plan>> = rules
            .rules
            .iter()
            .map(|r| (r.id.as_str(), plan(r)))
            .collect();
        let hrv = plans["hrv_drop"].as_ref().expect("hrv_drop has a plan");
        assert_eq!(hrv.metric_label, "signal");
        assert_eq!(hrv.op, "<");
        assert_eq!(
            hrv.threshold_label,
            "lower = baseline_mean - 0.5 * baseline_sd"
        );
        assert_eq!(
            hrv.band.as_ref().map(|b| b.1.as_str()),
            Some("baseline_mean")
        );
        let rhr = plans["rhr_elevated"].as_ref().expect("rhr_elevated");
        assert_eq!(
            (rhr.metric_label.as_str(), rhr.threshold_label.as_str()),
            ("heart_rate", "median + 4")
        );
        assert_eq!(rhr.band.as_ref().map(|b| b.1.as_str()), Some("median"));
        let lowest = plans["rhr_lowest_30d"].as_ref().expect("rhr_lowest_30d");
        assert!(lowest.band.is_none(), "a min is a threshold, not a band");
        let sleep = plans["sleep_poor_streak"]
            .as_ref()
            .expect("sleep_poor_streak");
        assert_eq!(sleep.threshold_label, "360");
        assert!(
            plans["no_data_48h"].is_none(),
            "an absence has nothing to plot"
        );
    }
}
