//! `[after]` as written: the state and the `within` extent. Whether the rule it names exists,
//! and emits that state, is known only across files (see `link`).

use std::ops::Range;

use super::Checker;
use crate::rules::compiled::OutputState;
use crate::rules::duration::{parse_extent, Extent};
use crate::rules::model::AfterDef;

/// A reference to the rule this one follows, resolved by `link`.
pub(super) struct AfterRef {
    /// The id of the rule followed.
    pub rule: String,
    /// Where that id is written.
    pub span: Range<usize>,
    /// The state that arms this rule; `None`: the followed rule's usual one.
    pub state: Option<OutputState>,
    pub within: Extent,
}

impl Checker<'_> {
    /// The reference, or `None` when its `within` is wrong (reported).
    pub(super) fn after(&mut self, after: &AfterDef) -> Option<AfterRef> {
        let state = after.state.as_ref().and_then(|s| match s.get().as_str() {
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
        match parse_extent(after.within.get()) {
            Ok(Extent::Events(_)) => {
                self.error(
                    after.within.span(),
                    "`within` is counted in nights or time",
                    Some("e.g. \"30 nights\" or \"72h\"".into()),
                );
                None
            }
            Ok(within) => Some(AfterRef {
                rule: after.rule.get().clone(),
                span: after.rule.span(),
                state,
                within,
            }),
            Err(m) => {
                self.error(after.within.span(), m, None);
                None
            }
        }
    }
}
