//! Which of `[fire]`, `[absence]` and `[sequence]` a rule is, and what the other sections must
//! then leave out.

use std::ops::Range;

use super::Checker;
use crate::rules::compiled::RuleKind;
use crate::rules::model::{RuleFile, Sp};

impl Checker<'_> {
    /// False, reported, unless the rule has exactly one mode: without one, nothing that
    /// follows can be checked.
    pub(super) fn has_one_mode(&mut self, file: &RuleFile) -> bool {
        let modes = [
            file.fire.is_some(),
            file.absence.is_some(),
            file.sequence.is_some(),
        ];
        if modes.iter().filter(|m| **m).count() != 1 {
            self.error(
                file.id.span(),
                "a rule needs exactly one of `[fire]`, `[absence]` or `[sequence]`",
                Some(
                    "`[fire]` evaluates a condition at each `on` event; `[absence]` fires when \
                     events stop; `[sequence]` matches events in order"
                        .into(),
                ),
            );
            return false;
        }
        true
    }

    /// The fields of an `[absence]` or `[sequence]` rule that only `[fire]` rules use.
    pub(super) fn check_unused_by_steps(&mut self, file: &RuleFile) {
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

    pub(super) fn check_milestone_does_not_resolve(&mut self, kind: RuleKind, file: &RuleFile) {
        if kind == RuleKind::Milestone {
            if let Some(r) = &file.resolve {
                self.error(
                    r.span(),
                    "a milestone does not resolve",
                    Some("remove `[resolve]` or make the rule an alert".into()),
                );
            }
        }
    }
}
