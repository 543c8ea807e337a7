//! `[fire]` rules: a condition evaluated at each `on` event, with its streak, cooldown and
//! `[resolve]`.

use super::scope::{FieldScope, RuleScope};
use super::values::type_names;
use super::Checker;
use crate::event::{EventType, ValueType};
use crate::rules::compiled::Mode;
use crate::rules::duration::{parse_extent, Extent};
use crate::rules::expr::{ConstValue, Expr};
use crate::rules::model::{FireDef, RuleFile, Sp};

impl Checker<'_> {
    /// The mode, or `None` without a trigger event type (reported unless `on` itself was).
    /// `nightly` comes in as what the statistics and `[after]` made it; a streak or cooldown
    /// counted in nights makes the rule nightly too.
    pub(super) fn fire(
        &mut self,
        file: &RuleFile,
        fire: &Sp<FireDef>,
        trigger: Option<EventType>,
        scope: &RuleScope,
        nightly: &mut bool,
    ) -> Option<Mode> {
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
        let when = self.expression(&fire_def.when, scope, ValueType::Bool);
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
        *nightly |= matches!(streak, Some(Extent::Nights(_)))
            || matches!(cooldown, Some(Extent::Nights(_)));
        if let (Some(Extent::Nights(n) | Extent::Events(n)), Some(s)) = (streak, &fire_def.streak) {
            if n > 64 {
                self.error(
                    s.span(),
                    format!("a streak of {n} is longer than the 64 supported"),
                    None,
                );
            }
        }
        if let (true, Some(Extent::Time(_)), Some(c)) = (*nightly, cooldown, &fire_def.cooldown) {
            self.error(
                c.span(),
                "this rule reasons in nights, so its cooldown is counted in nights",
                Some("e.g. cooldown = \"7 nights\"".into()),
            );
        }
        let resolve = match &file.resolve {
            Some(r) => match &r.get().when {
                Some(w) => self.expression(w, scope, ValueType::Bool),
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
        Some(Mode::Condition {
            on,
            filter,
            // A failed condition was reported; keep checking the rest of the file.
            fire: when.unwrap_or(Expr::Const(ConstValue::Null)),
            streak,
            cooldown,
            resolve,
            after: None,
        })
    }
}
