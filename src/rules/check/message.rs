//! The message template: text with `{name}`, `{name:.N}` and `{night}` placeholders.

use super::Checker;
use crate::rules::compiled::TemplatePart;
use crate::rules::expr::{Expr, Scope};
use crate::rules::model::Sp;

impl Checker<'_> {
    pub(super) fn template(&mut self, text: &Sp<String>, scope: &dyn Scope) -> Vec<TemplatePart> {
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
