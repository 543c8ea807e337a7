//! A compiled rule described as named aspects (`fire.when`, `stats.signal.window`, …), each
//! written back as text with names rather than slots.
//!
//! What `vigil rules diff` compares: two rules mean the same when their aspects are equal, so
//! whitespace, comments, the order of keys in the file, quoting and redundant parentheses
//! are no change, and a statistic renamed everywhere is one (its name is part of outputs).

use indexmap::IndexMap;

use super::compiled::{KeySpec, Mode, Rule, RuleSet, Step, TemplatePart};
use super::expr::{ConstValue, Expr, Slot};
use crate::event::EventType;

/// One aspect of a rule's definition, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aspect {
    pub text: String,
    /// True when a change of it changes what the rule decides or emits, so it needs a new
    /// `version`. Only `source`, a reference for readers, does not.
    pub needs_bump: bool,
}

/// The rule's aspects, by name, in a stable reading order.
pub fn describe(rule: &Rule, set: &RuleSet) -> IndexMap<String, Aspect> {
    let mut d = Describer {
        rule,
        set,
        out: IndexMap::new(),
    };
    d.top();
    d.stats();
    d.lets();
    d.mode();
    d.tiers();
    d.message();
    d.out
}

struct Describer<'a> {
    rule: &'a Rule,
    set: &'a RuleSet,
    out: IndexMap<String, Aspect>,
}

impl Describer<'_> {
    fn put(&mut self, name: impl Into<String>, text: impl Into<String>) {
        self.out.insert(
            name.into(),
            Aspect {
                text: text.into(),
                needs_bump: true,
            },
        );
    }

    /// Names an expression evaluated on an event of type `on` (none for absence steps'
    /// context-free parts) sees.
    fn expr(&self, e: &Expr, on: Option<EventType>) -> String {
        let rule = self.rule;
        let name = |slot: Slot| -> String {
            match slot {
                Slot::Field(i) => on
                    .and_then(|ty| ty.fields().get(i))
                    .map_or_else(|| format!("field#{i}"), |f| f.name.to_string()),
                Slot::Stat(i) => rule
                    .stats
                    .get(i)
                    .map_or_else(|| format!("stat#{i}"), |s| s.name.clone()),
                Slot::Let(i) => rule
                    .lets
                    .get(i)
                    .map_or_else(|| format!("let#{i}"), |(n, _)| n.clone()),
                Slot::Night => "night".to_string(),
            }
        };
        show(e, &name, 0)
    }

    fn on(&self) -> Option<EventType> {
        match &self.rule.mode {
            Mode::Condition { on, .. } => Some(*on),
            _ => None,
        }
    }

    fn top(&mut self) {
        let rule = self.rule;
        self.put("kind", rule.kind.name());
        self.put("severity", rule.severity.name());
        self.put(
            "key",
            match &rule.key {
                KeySpec::UserId => "user_id".to_string(),
                KeySpec::Attribute(a) => a.clone(),
            },
        );
        if let Some(description) = &rule.description {
            // Also the message when there is no template.
            self.put("description", description.clone());
        }
        if let Some(source) = &rule.source {
            self.out.insert(
                "source".into(),
                Aspect {
                    text: source.clone(),
                    needs_bump: false,
                },
            );
        }
    }

    fn stats(&mut self) {
        for stat in &self.rule.stats {
            let prefix = format!("stats.{}", stat.name);
            let agg = match &stat.agg {
                super::AggKind::Ewma { alpha } => format!("ewma (alpha {alpha})"),
                other => other.name(),
            };
            self.put(format!("{prefix}.agg"), agg);
            if let Some(series) = self.set.series.get(stat.series) {
                let from = Some(series.from);
                let of = series
                    .of
                    .as_ref()
                    .map_or_else(|| "1".to_string(), |e| self.expr(e, from));
                self.put(format!("{prefix}.of"), of);
                self.put(format!("{prefix}.from"), series.from.name());
                if let Some(filter) = &series.filter {
                    let text = self.expr(filter, from);
                    self.put(format!("{prefix}.where"), text);
                }
            }
            self.put(format!("{prefix}.window"), stat.window.to_string());
            self.put(
                format!("{prefix}.min_samples"),
                stat.min_samples.to_string(),
            );
        }
    }

    fn lets(&mut self) {
        let on = self.on();
        for (name, e) in &self.rule.lets {
            let text = self.expr(e, on);
            self.put(format!("let.{name}"), text);
        }
    }

    fn mode(&mut self) {
        match &self.rule.mode {
            Mode::Condition {
                on,
                filter,
                fire,
                streak,
                cooldown,
                resolve,
                after,
            } => {
                let on = Some(*on);
                self.put("on", on.map_or("", |t| t.name()));
                if let Some(filter) = filter {
                    let text = self.expr(filter, on);
                    self.put("where", text);
                }
                let text = self.expr(fire, on);
                self.put("fire.when", text);
                if let Some(streak) = streak {
                    self.put("fire.streak", streak.to_string());
                }
                if let Some(cooldown) = cooldown {
                    self.put("fire.cooldown", cooldown.to_string());
                }
                if let Some(resolve) = resolve {
                    let text = self.expr(resolve, on);
                    self.put("resolve.when", text);
                }
                if let Some(after) = after {
                    self.put("after.rule", after.rule_id.clone());
                    self.put("after.state", after.state.name());
                    self.put("after.within", after.within.to_string());
                }
            }
            Mode::Absence {
                of,
                timeout_ms,
                start,
                resolves,
            } => {
                self.put("absence.of", of.map_or("*", |t| t.name()));
                self.put("absence.for", super::duration::format_duration(*timeout_ms));
                if let Some(start) = start {
                    let text = self.step(start);
                    self.put("absence.after", text);
                }
                self.put("absence.resolves", resolves.to_string());
            }
            Mode::Sequence {
                steps,
                within_ms,
                strict,
            } => {
                for (i, step) in steps.iter().enumerate() {
                    let text = self.step(step);
                    self.put(format!("sequence.steps[{}]", i + 1), text);
                }
                self.put(
                    "sequence.within",
                    super::duration::format_duration(*within_ms),
                );
                self.put(
                    "sequence.contiguity",
                    if *strict { "strict" } else { "relaxed" },
                );
            }
        }
    }

    fn step(&self, step: &Step) -> String {
        match &step.filter {
            Some(filter) => format!(
                "{} where {}",
                step.on.name(),
                self.expr(filter, Some(step.on))
            ),
            None => step.on.name().to_string(),
        }
    }

    fn tiers(&mut self) {
        let on = self.on();
        for (i, (severity, when)) in self.rule.tiers.iter().enumerate() {
            let text = format!("{} when {}", severity.name(), self.expr(when, on));
            self.put(format!("tiers[{}]", i + 1), text);
        }
    }

    fn message(&mut self) {
        if self.rule.message.is_empty() {
            return;
        }
        let on = self.on();
        let mut text = String::new();
        for part in &self.rule.message {
            match part {
                TemplatePart::Text(s) => text.push_str(s),
                TemplatePart::Night => text.push_str("{night}"),
                TemplatePart::Value { expr, decimals } => {
                    text.push('{');
                    text.push_str(&self.expr(expr, on));
                    if let Some(d) = decimals {
                        text.push_str(&format!(":.{d}"));
                    }
                    text.push('}');
                }
            }
        }
        self.put("message", text);
    }
}

/// The expression as a rule author would write it, parenthesised only where needed
/// (operators are left-associative, so a right operand of equal strength keeps its
/// parentheses). `outer` is the strength of the operator around it.
fn show(e: &Expr, name: &dyn Fn(Slot) -> String, outer: u8) -> String {
    match e {
        Expr::Const(ConstValue::Num(n)) => format!("{n}"),
        Expr::Const(ConstValue::Str(s)) => format!("{s:?}"),
        Expr::Const(ConstValue::Bool(b)) => b.to_string(),
        Expr::Const(ConstValue::Null) => "null".to_string(),
        Expr::Load(slot) => name(*slot),
        Expr::Neg(inner) => format!("-{}", show(inner, name, 7)),
        Expr::Not(inner) => {
            // `not` takes everything down to comparisons: inside a tighter operator it needs
            // its own parentheses.
            let text = format!("not {}", show(inner, name, 3));
            if outer > 3 {
                format!("({text})")
            } else {
                text
            }
        }
        Expr::Binary(op, l, r) => {
            let p = op.precedence();
            let text = format!(
                "{} {} {}",
                show(l, name, p),
                op.symbol(),
                show(r, name, p + 1)
            );
            if p < outer {
                format!("({text})")
            } else {
                text
            }
        }
        Expr::Call(func, args) => {
            let args: Vec<String> = args.iter().map(|a| show(a, name, 0)).collect();
            format!(
                "{}({})",
                format!("{func:?}").to_lowercase(),
                args.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{compile_files, SourceFile};

    fn set(text: &str) -> RuleSet {
        compile_files(&[SourceFile {
            path: "r.toml".into(),
            text: text.into(),
        }])
        .unwrap_or_else(|d| panic!("{d:?}"))
    }

    const RULE: &str = r#"
id = "r"
version = 1
kind = "alert"
on = "resting_heart_rate"
[stats]
base = { agg = "mean", of = "heart_rate", window = "previous 30 nights", min_samples = 7 }
[fire]
when = "heart_rate - base >= 5 and not (heart_rate > 200)"
[resolve]
when = "(heart_rate - base) < 3"
"#;

    #[test]
    fn expressions_come_back_with_names_and_only_needed_parentheses() {
        let set = set(RULE);
        let aspects = describe(&set.rules[0], &set);
        assert_eq!(
            aspects["fire.when"].text,
            "heart_rate - base >= 5 and not heart_rate > 200"
        );
        assert_eq!(aspects["resolve.when"].text, "heart_rate - base < 3");
        assert_eq!(aspects["stats.base.window"].text, "previous 30 nights");
        assert_eq!(aspects["stats.base.of"].text, "heart_rate");
    }

    #[test]
    fn layout_and_comments_do_not_change_the_description() {
        let a = set(RULE);
        let b = set(&RULE.replace("[fire]", "# a comment\n[fire]").replace(
            "when = \"heart_rate - base >= 5",
            "when =   \"(heart_rate - base) >= 5",
        ));
        assert_eq!(describe(&a.rules[0], &a), describe(&b.rules[0], &b));
    }

    #[test]
    fn grouping_that_changes_the_meaning_is_kept() {
        let set = set(&RULE.replace(
            "heart_rate - base >= 5 and",
            "heart_rate - (base - 1) >= 5 and",
        ));
        let aspects = describe(&set.rules[0], &set);
        assert!(aspects["fire.when"]
            .text
            .starts_with("heart_rate - (base - 1) >= 5"));
    }
}
