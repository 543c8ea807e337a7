//! `[let]`: named expressions, each seeing the statistics and the bindings before it.

use indexmap::IndexMap;

use super::scope::RuleScope;
use super::Checker;
use crate::event::{EventType, ValueType};
use crate::rules::expr::{self, Expr};
use crate::rules::model::Sp;

/// The bindings of one rule.
pub(super) struct Bindings {
    /// The bindings that compiled, in file order.
    pub lets: Vec<(String, Expr)>,
    /// The type of every binding: a broken one is `null`, so the expressions that use it are
    /// checked without a second, spurious error.
    pub types: Vec<(String, ValueType)>,
}

impl Checker<'_> {
    pub(super) fn bindings(
        &mut self,
        bindings: &IndexMap<String, Sp<String>>,
        trigger: Option<EventType>,
        stat_names: &[String],
    ) -> Bindings {
        let mut lets: Vec<(String, Expr)> = Vec::new();
        let mut let_types: Vec<(String, ValueType)> = Vec::new();
        for (name, text) in bindings {
            if stat_names.contains(name) {
                self.error(
                    text.span(),
                    format!("`{name}` is already a statistic"),
                    Some("choose another name".into()),
                );
            }
            let scope = RuleScope {
                trigger,
                stats: stat_names,
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
        Bindings {
            lets,
            types: let_types,
        }
    }
}
