//! What a rule is, before what it watches: its id, kind, default severity and key.

use super::Checker;
use crate::event::EventType;
use crate::rules::compiled::{KeySpec, RuleKind, Severity};
use crate::rules::model::Sp;

/// The key as written; whether an attribute exists is checked by
/// [`Checker::check_key_attribute`] once the trigger is known.
pub(super) fn key_spec(key: Option<&Sp<String>>) -> KeySpec {
    match key {
        None => KeySpec::UserId,
        Some(k) if k.get() == "user_id" => KeySpec::UserId,
        Some(k) => KeySpec::Attribute(k.get().clone()),
    }
}

impl Checker<'_> {
    pub(super) fn check_id(&mut self, id: &Sp<String>) {
        let text = id.get();
        let id_ok = text.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !id_ok {
            self.error(
                id.span(),
                format!("rule id \"{text}\" is not lower snake_case"),
                Some("use letters a–z, digits and `_`, starting with a letter".into()),
            );
        }
    }

    /// The kind; an unknown one is reported and checked as an alert, so the rest of the file
    /// is still checked.
    pub(super) fn kind(&mut self, kind: &Sp<String>) -> RuleKind {
        match kind.get().as_str() {
            "alert" => RuleKind::Alert,
            "milestone" => RuleKind::Milestone,
            other => {
                self.error(
                    kind.span(),
                    format!("unknown kind \"{other}\""),
                    Some("expected \"alert\" or \"milestone\"".into()),
                );
                RuleKind::Alert
            }
        }
    }

    pub(super) fn default_severity(
        &mut self,
        severity: Option<&Sp<String>>,
        kind: RuleKind,
    ) -> Severity {
        match severity {
            None if kind == RuleKind::Milestone => Severity::Info,
            None => Severity::Warning,
            Some(s) => self.severity(s),
        }
    }

    pub(super) fn check_key_attribute(
        &mut self,
        key: &KeySpec,
        written: Option<&Sp<String>>,
        trigger: Option<EventType>,
    ) {
        if let KeySpec::Attribute(attr) = key {
            let known = ["source", "id"].contains(&attr.as_str())
                || trigger.is_some_and(|ty| ty.field_index(attr).is_some());
            if !known {
                let span = written.map_or(0..0, Sp::span);
                self.error(
                    span,
                    format!("unknown key attribute \"{attr}\""),
                    Some(
                        "use \"user_id\" (default), \"source\", or a field of the `on` event type"
                            .into(),
                    ),
                );
            }
        }
    }
}
