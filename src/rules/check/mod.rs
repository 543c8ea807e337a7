//! Checking rule files and turning them into a [`RuleSet`], collecting every problem at once.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;
use toml::de::{DeTable, DeValue};

use super::compiled::*;
use super::diagnostic::Diagnostic;
use super::duration::{parse_duration, parse_extent, parse_window, Extent, Window};
use super::expr::{self, closest, Expr, Scope, Slot};
use super::model::{RuleFile, Sp, StepDef};
use crate::engine::aggregate::AggKind;
use crate::event::{EventType, ValueType};

/// One rule file's text, kept for rendering diagnostics.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// A rule checked on its own, before references between rules are resolved.
struct Partial {
    rule: Rule,
    /// `[after]`: (rule id, its span, state, within) — resolved across files.
    after: Option<(String, Range<usize>, Option<OutputState>, Extent)>,
    /// Statistics before series are shared: (from, of, filter, window).
    raw_stats: Vec<(EventType, Option<Expr>, Option<Expr>)>,
    id_span: Range<usize>,
}

/// Compiles rule files into a rule set; returns every problem found if any.
pub fn compile_files(files: &[SourceFile]) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut partials = Vec::new();
    for file in files {
        let mut checker = Checker {
            file: &file.path,
            text: &file.text,
            diags: Vec::new(),
        };
        // A rule with problems still takes part in linking, so references between rules are
        // checked (and reported) in the same run, and a rule that refers to it does not get a
        // spurious "no rule has id" error.
        if let Some(partial) = checker.check_file() {
            partials.push(partial);
        }
        diagnostics.extend(checker.diags);
    }
    link(partials, &mut diagnostics)
        .filter(|_| diagnostics.is_empty())
        .ok_or(diagnostics)
}

/// Removes the key whose span is `span` from `table` or the tables within it; false when there
/// is none.
fn remove_key(table: &mut DeTable<'_>, span: &Range<usize>) -> bool {
    let found = table
        .iter()
        .find(|(key, _)| key.span() == *span)
        .map(|(key, _)| key.get_ref().to_string());
    if let Some(name) = found {
        return table.remove(name.as_str()).is_some();
    }
    table
        .iter_mut()
        .any(|(_, value)| remove_key_in(value.get_mut(), span))
}

fn remove_key_in(value: &mut DeValue<'_>, span: &Range<usize>) -> bool {
    match value {
        DeValue::Table(table) => remove_key(table, span),
        DeValue::Array(items) => items
            .iter_mut()
            .any(|item| remove_key_in(item.get_mut(), span)),
        _ => false,
    }
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

/// Names visible to stat inputs and step filters: the payload fields of one event type.
struct FieldScope {
    ty: EventType,
}

impl Scope for FieldScope {
    fn resolve(&self, name: &str) -> Option<(Slot, ValueType)> {
        let index = self.ty.field_index(name)?;
        Some((Slot::Field(index), self.ty.fields()[index].value_type))
    }

    fn known_names(&self) -> Vec<String> {
        self.ty
            .fields()
            .iter()
            .map(|f| f.name.to_string())
            .collect()
    }
}

/// Names visible to conditions: bindings, statistics, the trigger's fields and `night`.
struct RuleScope<'a> {
    trigger: Option<EventType>,
    stats: &'a [String],
    lets: &'a [(String, ValueType)],
}

impl Scope for RuleScope<'_> {
    fn resolve(&self, name: &str) -> Option<(Slot, ValueType)> {
        if let Some(i) = self.lets.iter().position(|(n, _)| n == name) {
            return Some((Slot::Let(i), self.lets[i].1));
        }
        if let Some(i) = self.stats.iter().position(|n| n == name) {
            return Some((Slot::Stat(i), ValueType::Number));
        }
        if name == "night" {
            return Some((Slot::Night, ValueType::Number));
        }
        self.trigger.and_then(|ty| FieldScope { ty }.resolve(name))
    }

    fn known_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lets.iter().map(|(n, _)| n.clone()).collect();
        names.extend(self.stats.iter().cloned());
        if let Some(ty) = self.trigger {
            names.extend(FieldScope { ty }.known_names());
        }
        names
    }
}

fn type_names() -> String {
    EventType::ALL
        .iter()
        .map(|t| format!("\"{}\"", t.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: impl Into<String>, help: Option<String>) {
        let mut d = Diagnostic::new(self.file, span, message);
        d.help = help;
        self.diags.push(d);
    }

    /// Offset of a string value's first character inside its TOML span (after the quotes).
    fn inner_start(&self, span: &Range<usize>) -> usize {
        let raw = self.text.get(span.start..).unwrap_or("");
        if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            span.start + 3
        } else if raw.starts_with('"') || raw.starts_with('\'') {
            span.start + 1
        } else {
            span.start
        }
    }

    fn event_type(&mut self, value: &Sp<String>) -> Option<EventType> {
        let found = EventType::from_name(value.get());
        if found.is_none() {
            let known: Vec<String> = EventType::ALL
                .iter()
                .map(|t| t.name().to_string())
                .collect();
            let help = match closest(value.get(), &known) {
                Some(best) => format!("did you mean \"{best}\"? event types: {}", type_names()),
                None => format!("event types: {}", type_names()),
            };
            self.error(
                value.span(),
                format!("unknown event type \"{}\"", value.get()),
                Some(help),
            );
        }
        found
    }

    fn expression(
        &mut self,
        value: &Sp<String>,
        scope: &dyn Scope,
        want: ValueType,
    ) -> Option<Expr> {
        let base = self.inner_start(&value.span());
        let shift = |r: Range<usize>| base + r.start..base + r.end;
        let result = expr::parse(value.get()).and_then(|ast| expr::compile(&ast, scope));
        match result {
            Ok((compiled, ty)) if ty == want || ty == ValueType::Null => Some(compiled),
            Ok((_, ty)) => {
                let help = if want == ValueType::Bool {
                    "a condition compares values, e.g. `heart_rate >= 120`".to_string()
                } else {
                    format!("write an expression giving a {want}")
                };
                self.error(
                    value.span(),
                    format!("expected a {want} expression, found a {ty}"),
                    Some(help),
                );
                None
            }
            Err(e) => {
                self.error(shift(e.span), e.message, e.help);
                None
            }
        }
    }

    /// The file as written, or `None` when it cannot be read as a rule. An unknown key is
    /// reported and then left out, and the rest of the file is read again, so that one typo
    /// does not hide the file's other problems; any other error ends the file's checking.
    fn parse_file(&mut self) -> Option<RuleFile> {
        let mut document = match DeTable::parse(self.text) {
            Ok(document) => document,
            Err(e) => {
                self.toml_error(&e);
                return None;
            }
        };
        loop {
            let error = match RuleFile::deserialize(toml::de::Deserializer::from(document.clone()))
            {
                Ok(file) => return Some(file),
                Err(e) => e,
            };
            self.toml_error(&error);
            let unknown_key = error.message().starts_with("unknown field");
            // Each pass removes a key, so this ends; a key not found ends it too.
            let removed = unknown_key
                && error
                    .span()
                    .is_some_and(|span| remove_key(document.get_mut(), &span));
            if !removed {
                return None;
            }
        }
    }

    fn toml_error(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let help = if message.starts_with("unknown field") {
            Some("fields are listed in docs/rules.md and schemas/rule.schema.json".to_string())
        } else {
            None
        };
        self.error(span, message, help);
    }

    fn check_file(&mut self) -> Option<Partial> {
        let file = self.parse_file()?;
        let id = file.id.get().clone();
        let id_ok = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !id_ok {
            self.error(
                file.id.span(),
                format!("rule id \"{id}\" is not lower snake_case"),
                Some("use letters a–z, digits and `_`, starting with a letter".into()),
            );
        }
        let kind = match file.kind.get().as_str() {
            "alert" => RuleKind::Alert,
            "milestone" => RuleKind::Milestone,
            other => {
                self.error(
                    file.kind.span(),
                    format!("unknown kind \"{other}\""),
                    Some("expected \"alert\" or \"milestone\"".into()),
                );
                RuleKind::Alert
            }
        };
        let severity = match &file.severity {
            None if kind == RuleKind::Milestone => Severity::Info,
            None => Severity::Warning,
            Some(s) => self.severity(s),
        };
        let key = match &file.key {
            None => KeySpec::UserId,
            Some(k) if k.get() == "user_id" => KeySpec::UserId,
            Some(k) => KeySpec::Attribute(k.get().clone()),
        };
        let trigger = file.on.as_ref().and_then(|on| self.event_type(on));

        // Statistics.
        let mut stats = Vec::new();
        let mut raw_stats = Vec::new();
        let mut stat_names = Vec::new();
        for (name, def) in &file.stats {
            let span = def.span();
            let def = def.get();
            if let Some(ty) = trigger {
                if ty.field_index(name).is_some() {
                    self.error(
                        span.clone(),
                        format!(
                            "statistic `{name}` has the name of a field of \"{}\"",
                            ty.name()
                        ),
                        Some("choose another name".into()),
                    );
                }
            }
            let from = match &def.from {
                Some(f) => self.event_type(f),
                None => {
                    if trigger.is_none() && file.on.is_none() {
                        self.error(
                            span.clone(),
                            format!("statistic `{name}` needs `from`"),
                            Some(
                                "name the event type it aggregates, or set the rule's `on`".into(),
                            ),
                        );
                    }
                    trigger
                }
            };
            let alpha = def.alpha.as_ref().map(|a| *a.get());
            let agg = match AggKind::parse(def.agg.get(), alpha) {
                Ok(agg) => Some(agg),
                Err(message) => {
                    self.error(def.agg.span(), message, None);
                    None
                }
            };
            let window = match parse_window(def.window.get()) {
                Ok(w) => Some(w),
                Err(message) => {
                    self.error(def.window.span(), message, None);
                    None
                }
            };
            let (Some(from), Some(agg), Some(window)) = (from, agg, window) else {
                stat_names.push(name.clone());
                continue;
            };
            let scope = FieldScope { ty: from };
            let of = match &def.of {
                Some(of) => self.expression(of, &scope, ValueType::Number),
                None if agg == AggKind::Count => None,
                None => {
                    self.error(
                        span.clone(),
                        format!("statistic `{name}` needs `of`"),
                        Some(format!(
                            "the value to aggregate, e.g. `of = \"{}\"`",
                            from.fields().first().map_or("value", |f| f.name)
                        )),
                    );
                    None
                }
            };
            let filter = def
                .filter
                .as_ref()
                .and_then(|f| self.expression(f, &scope, ValueType::Bool));
            let min_samples = def
                .min_samples
                .as_ref()
                .map_or(agg.min_defined(), |m| *m.get() as usize);
            let capacity = match window {
                Window::Nights { count, .. } | Window::Events { count } => Some(count as usize),
                _ => None,
            };
            if let (Some(capacity), Some(m)) = (capacity, &def.min_samples) {
                if min_samples > capacity {
                    self.error(m.span(), format!("guard of {min_samples} samples can never be met: window \"{window}\" holds at most {capacity}"), Some("lengthen the window or lower `min_samples`".into()));
                }
            }
            if matches!(agg, AggKind::MaxGap) && window.is_calendar() {
                self.error(
                    def.agg.span(),
                    "max_gap needs a sliding or tumbling window",
                    None,
                );
            }
            stat_names.push(name.clone());
            stats.push(Stat {
                name: name.clone(),
                series: usize::MAX,
                agg,
                window,
                min_samples,
                sliding_slot: None,
            });
            raw_stats.push((from, of, filter));
        }

        // Bindings.
        let mut lets: Vec<(String, Expr)> = Vec::new();
        let mut let_types: Vec<(String, ValueType)> = Vec::new();
        for (name, text) in &file.bindings {
            if stat_names.contains(name) {
                self.error(
                    text.span(),
                    format!("`{name}` is already a statistic"),
                    Some("choose another name".into()),
                );
            }
            let scope = RuleScope {
                trigger,
                stats: &stat_names,
                lets: &let_types,
            };
            let base = self.inner_start(&text.span());
            match expr::parse(text.get()).and_then(|ast| expr::compile(&ast, &scope)) {
                Ok((e, ty)) => {
                    lets.push((name.clone(), e));
                    let_types.push((name.clone(), ty));
                }
                Err(e) => {
                    self.error(base + e.span.start..base + e.span.end, e.message, e.help);
                    let_types.push((name.clone(), ValueType::Null));
                }
            }
        }
        let scope = RuleScope {
            trigger,
            stats: &stat_names,
            lets: &let_types,
        };

        let tiers: Vec<(Severity, Expr)> = file
            .tiers
            .iter()
            .filter_map(|t| {
                let sev = self.severity(&t.get().severity);
                self.expression(&t.get().when, &scope, ValueType::Bool)
                    .map(|e| (sev, e))
            })
            .collect();

        let mut after = None;
        if let Some(a) = &file.after {
            let a = a.get();
            let state = a.state.as_ref().and_then(|s| match s.get().as_str() {
                "firing" => Some(OutputState::Firing),
                "resolved" => Some(OutputState::Resolved),
                "milestone" => Some(OutputState::Milestone),
                other => {
                    self.error(
                        s.span(),
                        format!("unknown state \"{other}\""),
                        Some("expected \"firing\", \"resolved\" or \"milestone\"".into()),
                    );
                    None
                }
            });
            match parse_extent(a.within.get()) {
                Ok(Extent::Events(_)) => self.error(
                    a.within.span(),
                    "`within` is counted in nights or time",
                    Some("e.g. \"30 nights\" or \"72h\"".into()),
                ),
                Ok(within) => after = Some((a.rule.get().clone(), a.rule.span(), state, within)),
                Err(m) => self.error(a.within.span(), m, None),
            }
        }

        let modes = [
            file.fire.is_some(),
            file.absence.is_some(),
            file.sequence.is_some(),
        ];
        if modes.iter().filter(|m| **m).count() != 1 {
            self.error(file.id.span(), "a rule needs exactly one of `[fire]`, `[absence]` or `[sequence]`", Some("`[fire]` evaluates a condition at each `on` event; `[absence]` fires when events stop; `[sequence]` matches events in order".into()));
            return None;
        }
        if file.fire.is_none() {
            // Absence and sequence rules are driven by their steps; these fields would be
            // silently ignored, so they are errors.
            let unused: [(&str, Option<Range<usize>>); 6] = [
                ("on", file.on.as_ref().map(Sp::span)),
                ("where", file.filter.as_ref().map(Sp::span)),
                ("stats", file.stats.first().map(|(_, d)| d.span())),
                ("let", file.bindings.first().map(|(_, d)| d.span())),
                ("tiers", file.tiers.first().map(Sp::span)),
                ("after", file.after.as_ref().map(Sp::span)),
            ];
            for (name, span) in unused {
                if let Some(span) = span {
                    self.error(
                        span,
                        format!("`{name}` is not used by `[absence]` or `[sequence]` rules"),
                        Some("conditions of those rules go in their steps' `where`".into()),
                    );
                }
            }
            if file.sequence.is_some() {
                if let Some(r) = &file.resolve {
                    self.error(r.span(), "a sequence rule does not resolve", None);
                }
            }
        }
        if let KeySpec::Attribute(attr) = &key {
            let known = ["source", "id"].contains(&attr.as_str())
                || trigger.is_some_and(|ty| ty.field_index(attr).is_some());
            if !known {
                let span = file.key.as_ref().map_or(0..0, Sp::span);
                self.error(
                    span,
                    format!("unknown key attribute \"{attr}\""),
                    Some(
                        "use \"user_id\" (default), \"source\", or a field of the `on` event type"
                            .into(),
                    ),
                );
            }
        }
        if kind == RuleKind::Milestone {
            if let Some(r) = &file.resolve {
                self.error(
                    r.span(),
                    "a milestone does not resolve",
                    Some("remove `[resolve]` or make the rule an alert".into()),
                );
            }
        }
        let mut nightly = stats
            .iter()
            .any(|s| matches!(s.window, Window::Nights { .. }))
            || matches!(after, Some((_, _, _, Extent::Nights(_))));

        let mode = if let Some(fire) = &file.fire {
            let Some(on) = trigger else {
                if file.on.is_none() {
                    self.error(
                        fire.span(),
                        "`[fire]` needs the rule's `on` event type",
                        Some(format!(
                            "e.g. on = \"heart_rate\"; event types: {}",
                            type_names()
                        )),
                    );
                }
                return None;
            };
            let fire_def = fire.get();
            let filter = file
                .filter
                .as_ref()
                .and_then(|f| self.expression(f, &FieldScope { ty: on }, ValueType::Bool));
            let when = self.expression(&fire_def.when, &scope, ValueType::Bool);
            let streak = fire_def
                .streak
                .as_ref()
                .and_then(|s| match parse_extent(s.get()) {
                    Ok(Extent::Time(_)) => {
                        self.error(
                            s.span(),
                            "a streak is counted in nights or events",
                            Some("e.g. \"3 nights\" or \"5 events\"".into()),
                        );
                        None
                    }
                    Ok(e) => Some(e),
                    Err(m) => {
                        self.error(s.span(), m, None);
                        None
                    }
                });
            let cooldown = fire_def
                .cooldown
                .as_ref()
                .and_then(|s| match parse_extent(s.get()) {
                    Ok(Extent::Events(_)) => {
                        self.error(
                            s.span(),
                            "a cooldown is counted in nights or time",
                            Some("e.g. \"7 nights\" or \"6h\"".into()),
                        );
                        None
                    }
                    Ok(e) => Some(e),
                    Err(m) => {
                        self.error(s.span(), m, None);
                        None
                    }
                });
            nightly |= matches!(streak, Some(Extent::Nights(_)))
                || matches!(cooldown, Some(Extent::Nights(_)));
            if let (Some(Extent::Nights(n) | Extent::Events(n)), Some(s)) =
                (streak, &fire_def.streak)
            {
                if n > 64 {
                    self.error(
                        s.span(),
                        format!("a streak of {n} is longer than the 64 supported"),
                        None,
                    );
                }
            }
            if let (true, Some(Extent::Time(_)), Some(c)) = (nightly, cooldown, &fire_def.cooldown)
            {
                self.error(
                    c.span(),
                    "this rule reasons in nights, so its cooldown is counted in nights",
                    Some("e.g. cooldown = \"7 nights\"".into()),
                );
            }
            let resolve = match &file.resolve {
                Some(r) => match &r.get().when {
                    Some(w) => self.expression(w, &scope, ValueType::Bool),
                    None => {
                        self.error(
                            r.span(),
                            "`[resolve]` needs `when`",
                            Some("the condition under which a firing alert resolves".into()),
                        );
                        None
                    }
                },
                None => None,
            };
            if streak.is_some() && resolve.is_some() {
                self.error(
                    file.resolve.as_ref().map_or(0..0, |r| r.span()),
                    "a streak rule fires once per run and does not resolve",
                    Some("remove `[resolve]` or `streak`".into()),
                );
            }
            Mode::Condition {
                on,
                filter,
                // A failed condition was reported; keep checking the rest of the file.
                fire: when.unwrap_or(Expr::Const(super::expr::ConstValue::Null)),
                streak,
                cooldown,
                resolve,
                after: None,
            }
        } else if let Some(absence) = &file.absence {
            let def = absence.get();
            let of = match &def.of {
                Some(of) if of.get() == "*" => None,
                Some(of) => Some(self.event_type(of)?),
                None => None,
            };
            let timeout_ms = match parse_duration(def.timeout.get()) {
                Ok(ms) => ms,
                Err(m) => {
                    self.error(def.timeout.span(), m, None);
                    return None;
                }
            };
            let start = def.after.as_ref().and_then(|s| self.step(s.get()));
            if file
                .resolve
                .as_ref()
                .is_some_and(|r| r.get().when.is_some())
            {
                self.error(
                    file.resolve.as_ref().map_or(0..0, |r| r.span()),
                    "an absence alert resolves when data resumes; `when` is not used",
                    None,
                );
            }
            Mode::Absence {
                of,
                timeout_ms,
                start,
                resolves: kind == RuleKind::Alert,
            }
        } else {
            let sequence = file.sequence.as_ref()?;
            let def = sequence.get();
            if def.steps.len() < 2 {
                self.error(sequence.span(), "a sequence needs at least two steps", None);
            }
            let steps: Vec<Step> = def
                .steps
                .iter()
                .filter_map(|s| self.step(s.get()))
                .collect();
            let within_ms = match parse_duration(def.within.get()) {
                Ok(ms) => ms,
                Err(m) => {
                    self.error(def.within.span(), m, None);
                    0
                }
            };
            let strict = match def.contiguity.as_ref().map(|c| c.get().as_str()) {
                None | Some("relaxed") => false,
                Some("strict") => true,
                Some(other) => {
                    let span = def.contiguity.as_ref().map_or(0..0, |c| c.span());
                    self.error(
                        span,
                        format!("unknown contiguity \"{other}\""),
                        Some("expected \"strict\" or \"relaxed\"".into()),
                    );
                    false
                }
            };
            Mode::Sequence {
                steps,
                within_ms,
                strict,
            }
        };

        let message = match &file.message {
            Some(m) => self.template(m, &scope),
            None => Vec::new(),
        };
        Some(Partial {
            rule: Rule {
                id,
                version: *file.version.get(),
                kind,
                severity,
                description: file.description.clone(),
                source: file.source.clone(),
                file: self.file.to_path_buf(),
                key,
                mode,
                stats,
                lets,
                tiers,
                message,
                nightly,
            },
            after,
            raw_stats,
            id_span: file.id.span(),
        })
    }

    fn severity(&mut self, value: &Sp<String>) -> Severity {
        Severity::parse(value.get()).unwrap_or_else(|| {
            self.error(
                value.span(),
                format!("unknown severity \"{}\"", value.get()),
                Some("expected \"info\", \"warning\" or \"critical\"".into()),
            );
            Severity::Warning
        })
    }

    fn step(&mut self, step: &StepDef) -> Option<Step> {
        let on = self.event_type(&step.on)?;
        let filter = match &step.filter {
            Some(f) => Some(self.expression(f, &FieldScope { ty: on }, ValueType::Bool)?),
            None => None,
        };
        Some(Step { on, filter })
    }

    fn template(&mut self, text: &Sp<String>, scope: &dyn Scope) -> Vec<TemplatePart> {
        let base = self.inner_start(&text.span());
        let raw = text.get();
        let mut parts = Vec::new();
        let mut rest = raw.as_str();
        let mut offset = 0;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(TemplatePart::Text(rest[..open].to_string()));
            }
            let Some(close) = rest[open..].find('}') else {
                self.error(
                    base + offset + open..base + offset + open + 1,
                    "unclosed `{` in message",
                    Some("write `{name}` or `{name:.1}`".into()),
                );
                return parts;
            };
            let inner = &rest[open + 1..open + close];
            let (name, decimals) = match inner.split_once(":.") {
                Some((n, d)) => (n.trim(), d.parse::<usize>().ok()),
                None => (inner.trim(), None),
            };
            let span = base + offset + open..base + offset + open + close + 1;
            if name == "night" {
                parts.push(TemplatePart::Night);
            } else {
                match scope.resolve(name) {
                    Some((slot, _)) => parts.push(TemplatePart::Value {
                        expr: Expr::Load(slot),
                        decimals,
                    }),
                    None => {
                        let known = scope.known_names();
                        self.error(
                            span,
                            format!("unknown name `{name}` in message"),
                            Some(format!("known here: night, {}", known.join(", "))),
                        );
                    }
                }
            }
            offset += open + close + 1;
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(TemplatePart::Text(rest.to_string()));
        }
        parts
    }
}

/// Resolves references between rules, orders them, and shares identical series.
fn link(partials: Vec<Partial>, diags: &mut Vec<Diagnostic>) -> Option<RuleSet> {
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    for p in &partials {
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
    let ids: Vec<String> = partials.iter().map(|p| p.rule.id.clone()).collect();
    // Edges: rule -> the rule it follows.
    let mut follows: Vec<Option<usize>> = vec![None; partials.len()];
    for (i, p) in partials.iter().enumerate() {
        if let Some((target, span, _, _)) = &p.after {
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
    // Each rule follows at most one other, so a cycle is found by walking the chain.
    for start in 0..partials.len() {
        let mut at = start;
        for _ in 0..partials.len() {
            match follows[at] {
                Some(next) if next == start => {
                    let p = &partials[start];
                    let span = p.after.as_ref().map_or(0..0, |a| a.1.clone());
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
    if !diags.is_empty() {
        return None;
    }
    // Order: a rule after the one it follows (depth in the chain, then file order).
    let depth = |mut i: usize| {
        let mut d = 0;
        while let Some(next) = follows[i] {
            d += 1;
            i = next;
        }
        d
    };
    let mut order: Vec<usize> = (0..partials.len()).collect();
    order.sort_by_key(|&i| (depth(i), i));
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
        if let (Some((target, span, state, within)), Some(j)) = (p.after.take(), follows[old]) {
            let target_rule = &set.rules[new_index[&j]];
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
                        "rule \"{target}\" is a {} and never emits \"{}\"",
                        target_rule.kind.name(),
                        state.name()
                    ),
                ));
            }
            if let Mode::Condition { after, .. } = &mut p.rule.mode {
                *after = Some(After {
                    rule: new_index[&j],
                    rule_id: target,
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
        for (stat, (from, of, filter)) in p.rule.stats.iter_mut().zip(p.raw_stats) {
            let storage = if matches!(stat.window, Window::Nights { .. }) {
                Storage::PerNight
            } else {
                Storage::AllEvents
            };
            let signature = format!(
                "{}|{}|{}|{:?}|{:?}",
                from.name(),
                of.as_ref().map_or("1".to_string(), |e| e.to_string()),
                filter.as_ref().map_or(String::new(), |e| e.to_string()),
                storage,
                p.rule.key
            );
            let index = match set.series.iter().position(|s| s.signature == signature) {
                Some(i) => i,
                None => {
                    let stored_field = match storage {
                        Storage::PerNight => of.as_ref().and_then(Expr::single_field),
                        Storage::AllEvents => None,
                    };
                    set.series.push(SeriesDef {
                        stored_field,
                        from,
                        of,
                        filter,
                        storage,
                        key: p.rule.key.clone(),
                        keep_days: 0,
                        keep_ms: 0,
                        keep_count: 0,
                        sliding: Vec::new(),
                        signature,
                    });
                    set.series.len() - 1
                }
            };
            let series = &mut set.series[index];
            match stat.window {
                Window::Nights { .. } | Window::Days { .. } => {
                    series.keep_days = series.keep_days.max(stat.window.days_back() + 1)
                }
                Window::Sliding { span_ms } => {
                    series.keep_ms = series.keep_ms.max(span_ms);
                    let agg = SlidingAgg {
                        agg: stat.agg.clone(),
                        span_ms,
                    };
                    let slot = series
                        .sliding
                        .iter()
                        .position(|s| *s == agg)
                        .unwrap_or_else(|| {
                            series.sliding.push(agg);
                            series.sliding.len() - 1
                        });
                    stat.sliding_slot = Some(slot);
                }
                Window::Tumbling { span_ms } => series.keep_ms = series.keep_ms.max(span_ms),
                Window::Events { count } => {
                    series.keep_count = series.keep_count.max(count as usize)
                }
            }
            stat.series = index;
        }
        set.rules.push(p.rule);
    }
    if diags.is_empty() {
        Some(set)
    } else {
        None
    }
}
