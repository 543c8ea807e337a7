//! `[absence]` rules: a timeout after the last event (of a type, or after a starting step).

use super::Checker;
use crate::rules::compiled::{Mode, RuleKind};
use crate::rules::duration::parse_duration;
use crate::rules::model::{AbsenceDef, ResolveDef, Sp};

impl Checker<'_> {
    /// The mode, or `None` when its event type or timeout is wrong (reported).
    pub(super) fn absence(
        &mut self,
        def: &AbsenceDef,
        resolve: Option<&Sp<ResolveDef>>,
        kind: RuleKind,
    ) -> Option<Mode> {
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
        if resolve.is_some_and(|r| r.get().when.is_some()) {
            self.error(
                resolve.map_or(0..0, |r| r.span()),
                "an absence alert resolves when data resumes; `when` is not used",
                None,
            );
        }
        Some(Mode::Absence {
            of,
            timeout_ms,
            start,
            resolves: kind == RuleKind::Alert,
        })
    }
}
