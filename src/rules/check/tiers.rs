//! `[[tiers]]`: severities raised by conditions.

use super::scope::RuleScope;
use super::Checker;
use crate::event::ValueType;
use crate::rules::compiled::Severity;
use crate::rules::expr::Expr;
use crate::rules::model::{Sp, TierDef};

impl Checker<'_> {
    pub(super) fn tiers(
        &mut self,
        tiers: &[Sp<TierDef>],
        scope: &RuleScope,
    ) -> Vec<(Severity, Expr)> {
        tiers
            .iter()
            .filter_map(|t| {
                let sev = self.severity(&t.get().severity);
                self.expression(&t.get().when, scope, ValueType::Bool)
                    .map(|e| (sev, e))
            })
            .collect()
    }
}
