//! The values every section of a rule checks the same way: event type names, severities,
//! expressions of a given type, and the steps of sequences and absences.

use std::ops::Range;

use super::scope::FieldScope;
use super::Checker;
use crate::event::{EventType, ValueType};
use crate::rules::compiled::{Severity, Step};
use crate::rules::expr::{self, closest, Expr, Scope};
use crate::rules::model::{Sp, StepDef};

/// The event types, quoted, for help texts.
pub(super) fn type_names() -> String {
    EventType::ALL
        .iter()
        .map(|t| format!("\"{}\"", t.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Checker<'_> {
    pub(super) fn event_type(&mut self, value: &Sp<String>) -> Option<EventType> {
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

    pub(super) fn expression(
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

    pub(super) fn severity(&mut self, value: &Sp<String>) -> Severity {
        Severity::parse(value.get()).unwrap_or_else(|| {
            self.error(
                value.span(),
                format!("unknown severity \"{}\"", value.get()),
                Some("expected \"info\", \"warning\" or \"critical\"".into()),
            );
            Severity::Warning
        })
    }

    pub(super) fn step(&mut self, step: &StepDef) -> Option<Step> {
        let on = self.event_type(&step.on)?;
        let filter = match &step.filter {
            Some(f) => Some(self.expression(f, &FieldScope { ty: on }, ValueType::Bool)?),
            None => None,
        };
        Some(Step { on, filter })
    }
}
