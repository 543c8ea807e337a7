//! What only the whole set of rules can tell: duplicate ids, the rules `[after]` names (and
//! cycles among them), the order rules are evaluated in.

use std::collections::HashMap;
use std::path::PathBuf;

use super::after::AfterRef;
use super::series::share_series;
use super::Partial;
use crate::rules::compiled::{After, Mode, OutputState, RuleKind, RuleSet};
use crate::rules::diagnostic::Diagnostic;
use crate::rules::expr::closest;

/// Resolves references between rules, orders them, and shares identical series.
pub(super) fn link(partials: Vec<Partial>, diags: &mut Vec<Diagnostic>) -> Option<RuleSet> {
    check_unique_ids(&partials, diags);
    let follows = resolve_follows(&partials, diags);
    check_cycles(&partials, &follows, diags);
    if !diags.is_empty() {
        return None;
    }
    let order = evaluation_order(&follows);
    let new_index: HashMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(new, &old)| (old, new))
        .collect();

    let mut set = RuleSet::default();
    let mut slots: Vec<Option<Partial>> = partials.into_iter().map(Some).collect();
    for &old in &order {
        let Some(mut p) = slots[old].take() else {
            continue;
        };
        if let (Some(after), Some(j)) = (p.after.take(), follows[old]) {
            attach_after(&mut p, after, new_index[&j], &set, diags);
        }
        share_series(&mut set, &mut p.rule, p.inputs);
        set.rules.push(p.rule);
    }
    if diags.is_empty() {
        Some(set)
    } else {
        None
    }
}

fn check_unique_ids(partials: &[Partial], diags: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for p in partials {
        if let Some(first) = seen.get(&p.rule.id) {
            diags.push(
                Diagnostic::new(
                    &p.rule.file,
                    p.id_span.clone(),
                    format!("rule id \"{}\" is used twice", p.rule.id),
                )
                .help(format!("it is also the id in {}", first.display())),
            );
        } else {
            seen.insert(p.rule.id.clone(), p.rule.file.clone());
        }
    }
}

/// For each rule, the index of the rule it follows, when that rule exists and is another.
fn resolve_follows(partials: &[Partial], diags: &mut Vec<Diagnostic>) -> Vec<Option<usize>> {
    let ids: Vec<String> = partials.iter().map(|p| p.rule.id.clone()).collect();
    let mut follows: Vec<Option<usize>> = vec![None; partials.len()];
    for (i, p) in partials.iter().enumerate() {
        if let Some(AfterRef {
            rule: target, span, ..
        }) = &p.after
        {
            match ids.iter().position(|id| id == target) {
                Some(j) if j == i => diags.push(Diagnostic::new(
                    &p.rule.file,
                    span.clone(),
                    format!("rule \"{target}\" cannot follow itself"),
                )),
                Some(j) => follows[i] = Some(j),
                None => {
                    let help = match closest(target, &ids) {
                        Some(best) => format!("did you mean \"{best}\"? rules: {}", ids.join(", ")),
                        None => format!("rules: {}", ids.join(", ")),
                    };
                    diags.push(
                        Diagnostic::new(
                            &p.rule.file,
                            span.clone(),
                            format!("no rule has id \"{target}\""),
                        )
                        .help(help),
                    );
                }
            }
        }
    }
    follows
}

fn check_cycles(partials: &[Partial], follows: &[Option<usize>], diags: &mut Vec<Diagnostic>) {
    // Each rule follows at most one other, so a cycle is found by walking the chain.
    for start in 0..partials.len() {
        let mut at = start;
        for _ in 0..partials.len() {
            match follows[at] {
                Some(next) if next == start => {
                    let p = &partials[start];
                    let span = p.after.as_ref().map_or(0..0, |a| a.span.clone());
                    diags.push(
                        Diagnostic::new(
                            &p.rule.file,
                            span,
                            format!(
                                "rule \"{}\" is part of a cycle of `[after]` references",
                                p.rule.id
                            ),
                        )
                        .help("a rule can only follow rules that do not, in turn, follow it"),
                    );
                    break;
                }
                Some(next) => at = next,
                None => break,
            }
        }
    }
}

/// Old indices in evaluation order: a rule after the one it follows (depth in the chain, then
/// file order). There must be no cycle.
fn evaluation_order(follows: &[Option<usize>]) -> Vec<usize> {
    let depth = |mut i: usize| {
        let mut d = 0;
        while let Some(next) = follows[i] {
            d += 1;
            i = next;
        }
        d
    };
    let mut order: Vec<usize> = (0..follows.len()).collect();
    order.sort_by_key(|&i| (depth(i), i));
    order
}

/// Points `p`'s condition at the rule it follows, now at `target` in `set`, and checks that
/// the state it waits for is one that rule emits.
fn attach_after(
    p: &mut Partial,
    after: AfterRef,
    target: usize,
    set: &RuleSet,
    diags: &mut Vec<Diagnostic>,
) {
    let AfterRef {
        rule: target_id,
        span,
        state,
        within,
    } = after;
    let target_rule = &set.rules[target];
    let state = state.unwrap_or(match target_rule.kind {
        RuleKind::Alert => OutputState::Firing,
        RuleKind::Milestone => OutputState::Milestone,
    });
    let valid = matches!(
        (target_rule.kind, state),
        (RuleKind::Alert, OutputState::Firing | OutputState::Resolved)
            | (RuleKind::Milestone, OutputState::Milestone)
    );
    if !valid {
        diags.push(Diagnostic::new(
            &p.rule.file,
            span.clone(),
            format!(
                "rule \"{target_id}\" is a {} and never emits \"{}\"",
                target_rule.kind.name(),
                state.name()
            ),
        ));
    }
    if let Mode::Condition { after, .. } = &mut p.rule.mode {
        *after = Some(After {
            rule: target,
            rule_id: target_id,
            state,
            within,
        });
    } else {
        diags.push(Diagnostic::new(
            &p.rule.file,
            span,
            "`[after]` works with `[fire]` rules only",
        ));
    }
}
