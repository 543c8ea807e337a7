//! Checking rule files and turning them into a [`RuleSet`], collecting every problem at once.
//!
//! Each file is checked on its own, one section of the rule after the other (the order of the
//! diagnostics is the order of these calls in `Checker::check_file`), then `link` resolves
//! what refers across files.
//!
//! - `read`: the TOML into the model; an unknown key is reported, left out, and the file
//!   read again;
//! - `values`: what every section checks: event types, severities, expressions, steps;
//! - `scope`: the names expressions see;
//! - `identity`: id, kind, default severity, key;
//! - `stats`, `bindings`, `tiers`, `after`: `[stats]`, `[let]`, `[[tiers]]` and
//!   `[after]` (its target is resolved by `link`);
//! - `modes`: exactly one of `[fire]`, `[absence]` and `[sequence]`, and the fields the last
//!   two leave unused;
//! - `fire`, `absence`, `sequence`: each mode;
//! - `message`: the message template;
//! - `link`: across files: duplicate ids, `[after]` targets and their cycles, the evaluation
//!   order;
//! - `series`: statistics over the same input share one stored series.

mod absence;
mod after;
mod bindings;
mod fire;
mod identity;
mod link;
mod message;
mod modes;
mod read;
mod scope;
mod sequence;
mod series;
mod stats;
mod tiers;
mod values;

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::compiled::{Rule, RuleSet};
use super::diagnostic::Diagnostic;
use super::duration::{Extent, Window};
use after::AfterRef;
use scope::RuleScope;
use stats::StatInput;

/// One rule file's text, kept for rendering diagnostics.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// A rule checked on its own, before references between rules are resolved.
struct Partial {
    rule: Rule,
    /// `[after]`, resolved across files by `link`.
    after: Option<AfterRef>,
    /// What each statistic reads, in the order of `rule.stats`, before series are shared.
    inputs: Vec<StatInput>,
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
    link::link(partials, &mut diagnostics)
        .filter(|_| diagnostics.is_empty())
        .ok_or(diagnostics)
}

/// Checks one file, collecting its problems in `diags`.
struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
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

    /// The rule, or `None` when a problem leaves nothing to check further (the problem is
    /// reported).
    fn check_file(&mut self) -> Option<Partial> {
        let file = self.parse_file()?;
        self.check_id(&file.id);
        let kind = self.kind(&file.kind);
        let severity = self.default_severity(file.severity.as_ref(), kind);
        let key = identity::key_spec(file.key.as_ref());
        let trigger = file.on.as_ref().and_then(|on| self.event_type(on));
        let stats = self.statistics(&file, trigger);
        let bindings = self.bindings(&file.bindings, trigger, &stats.names);
        let scope = RuleScope {
            trigger,
            stats: &stats.names,
            lets: &bindings.types,
        };
        let tiers = self.tiers(&file.tiers, &scope);
        let after = file.after.as_ref().and_then(|a| self.after(a.get()));
        if !self.has_one_mode(&file) {
            return None;
        }
        if file.fire.is_none() {
            self.check_unused_by_steps(&file);
        }
        self.check_key_attribute(&key, file.key.as_ref(), trigger);
        self.check_milestone_does_not_resolve(kind, &file);
        let mut nightly = stats
            .stats
            .iter()
            .any(|s| matches!(s.window, Window::Nights { .. }))
            || matches!(after.as_ref().map(|a| a.within), Some(Extent::Nights(_)));

        let mode = if let Some(fire) = &file.fire {
            self.fire(&file, fire, trigger, &scope, &mut nightly)?
        } else if let Some(absence) = &file.absence {
            self.absence(absence.get(), file.resolve.as_ref(), kind)?
        } else {
            self.sequence(file.sequence.as_ref()?)
        };

        let message = match &file.message {
            Some(m) => self.template(m, &scope),
            None => Vec::new(),
        };
        Some(Partial {
            rule: Rule {
                id: file.id.get().clone(),
                version: *file.version.get(),
                kind,
                severity,
                description: file.description.clone(),
                source: file.source.clone(),
                file: self.file.to_path_buf(),
                key,
                mode,
                stats: stats.stats,
                lets: bindings.lets,
                tiers,
                message,
                nightly,
            },
            after,
            inputs: stats.inputs,
            id_span: file.id.span(),
        })
    }
}
