//! The names expressions can use, in each place a rule has expressions.

use crate::event::{EventType, ValueType};
use crate::rules::expr::{Scope, Slot};

/// Names visible to stat inputs and step filters: the payload fields of one event type.
pub(super) struct FieldScope {
    pub ty: EventType,
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
pub(super) struct RuleScope<'a> {
    pub trigger: Option<EventType>,
    pub stats: &'a [String],
    pub lets: &'a [(String, ValueType)],
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
