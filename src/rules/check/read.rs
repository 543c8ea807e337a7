//! Reading a rule file into the model: TOML errors become diagnostics, and an unknown key is
//! left out so that the rest of the file can still be checked.

use std::ops::Range;

use serde::Deserialize as _;
use toml::de::{DeTable, DeValue};

use super::Checker;
use crate::rules::model::RuleFile;

impl Checker<'_> {
    /// The file as written, or `None` when it cannot be read as a rule. An unknown key is
    /// reported and then left out, and the rest of the file is read again, so that one typo
    /// does not hide the file's other problems; any other error ends the file's checking.
    pub(super) fn parse_file(&mut self) -> Option<RuleFile> {
        let mut document = match DeTable::parse(self.text) {
            Ok(document) => document,
            Err(e) => {
                self.toml_error(&e);
                return None;
            }
        };
        loop {
            let error = match RuleFile::deserialize(toml::de::Deserializer::from(document.clone()))
            {
                Ok(file) => return Some(file),
                Err(e) => e,
            };
            self.toml_error(&error);
            let unknown_key = error.message().starts_with("unknown field");
            // Each pass removes a key, so this ends; a key not found ends it too.
            let removed = unknown_key
                && error
                    .span()
                    .is_some_and(|span| remove_key(document.get_mut(), &span));
            if !removed {
                return None;
            }
        }
    }

    fn toml_error(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let help = if message.starts_with("unknown field") {
            Some("fields are listed in docs/rules.md and schemas/rule.schema.json".to_string())
        } else {
            None
        };
        self.error(span, message, help);
    }
}

/// Removes the key whose span is `span` from `table` or the tables within it; false when there
/// is none.
fn remove_key(table: &mut DeTable<'_>, span: &Range<usize>) -> bool {
    let found = table
        .iter()
        .find(|(key, _)| key.span() == *span)
        .map(|(key, _)| key.get_ref().to_string());
    if let Some(name) = found {
        return table.remove(name.as_str()).is_some();
    }
    table
        .iter_mut()
        .any(|(_, value)| remove_key_in(value.get_mut(), span))
}

fn remove_key_in(value: &mut DeValue<'_>, span: &Range<usize>) -> bool {
    match value {
        DeValue::Table(table) => remove_key(table, span),
        DeValue::Array(items) => items
            .iter_mut()
            .any(|item| remove_key_in(item.get_mut(), span)),
        _ => false,
    }
}
