//! `[stats]`: each statistic's input, aggregate, window and guard.

use super::scope::FieldScope;
use super::Checker;
use crate::event::{EventType, ValueType};
use crate::rules::agg_kind::AggKind;
use crate::rules::compiled::Stat;
use crate::rules::duration::{parse_window, Window};
use crate::rules::expr::Expr;
use crate::rules::model::{RuleFile, Sp, StatDef};

/// What a statistic reads; statistics that read the same share a series (see `series`).
pub(super) struct StatInput {
    pub from: EventType,
    pub of: Option<Expr>,
    pub filter: Option<Expr>,
}

/// The statistics of one rule.
pub(super) struct Statistics {
    /// The statistics without problems, in file order.
    pub stats: Vec<Stat>,
    /// What each of `stats` reads.
    pub inputs: Vec<StatInput>,
    /// Every statistic's name, with problems or not: conditions that use a broken statistic
    /// must not also be told that the name is unknown.
    pub names: Vec<String>,
}

impl Checker<'_> {
    pub(super) fn statistics(&mut self, file: &RuleFile, trigger: Option<EventType>) -> Statistics {
        let mut checked = Statistics {
            stats: Vec::new(),
            inputs: Vec::new(),
            names: Vec::new(),
        };
        for (name, def) in &file.stats {
            let stat = self.statistic(file, name, def, trigger);
            checked.names.push(name.clone());
            if let Some((stat, input)) = stat {
                checked.stats.push(stat);
                checked.inputs.push(input);
            }
        }
        checked
    }

    fn statistic(
        &mut self,
        file: &RuleFile,
        name: &str,
        def: &Sp<StatDef>,
        trigger: Option<EventType>,
    ) -> Option<(Stat, StatInput)> {
        let span = def.span();
        let def = def.get();
        if let Some(ty) = trigger {
            if ty.field_index(name).is_some() {
                self.error(
                    span.clone(),
                    format!(
                        "statistic `{name}` has the name of a field of \"{}\"",
                        ty.name()
                    ),
                    Some("choose another name".into()),
                );
            }
        }
        let from = match &def.from {
            Some(f) => self.event_type(f),
            None => {
                if trigger.is_none() && file.on.is_none() {
                    self.error(
                        span.clone(),
                        format!("statistic `{name}` needs `from`"),
                        Some("name the event type it aggregates, or set the rule's `on`".into()),
                    );
                }
                trigger
            }
        };
        let alpha = def.alpha.as_ref().map(|a| *a.get());
        let agg = match AggKind::parse(def.agg.get(), alpha) {
            Ok(agg) => Some(agg),
            Err(message) => {
                self.error(def.agg.span(), message, None);
                None
            }
        };
        let window = match parse_window(def.window.get()) {
            Ok(w) => Some(w),
            Err(message) => {
                self.error(def.window.span(), message, None);
                None
            }
        };
        let (Some(from), Some(agg), Some(window)) = (from, agg, window) else {
            return None;
        };
        let scope = FieldScope { ty: from };
        let of = match &def.of {
            Some(of) => self.expression(of, &scope, ValueType::Number),
            None if agg == AggKind::Count => None,
            None => {
                self.error(
                    span.clone(),
                    format!("statistic `{name}` needs `of`"),
                    Some(format!(
                        "the value to aggregate, e.g. `of = \"{}\"`",
                        from.fields().first().map_or("value", |f| f.name)
                    )),
                );
                None
            }
        };
        let filter = def
            .filter
            .as_ref()
            .and_then(|f| self.expression(f, &scope, ValueType::Bool));
        let min_samples = def
            .min_samples
            .as_ref()
            .map_or(agg.min_defined(), |m| *m.get() as usize);
        let capacity = match window {
            Window::Nights { count, .. } | Window::Events { count } => Some(count as usize),
            _ => None,
        };
        if let (Some(capacity), Some(m)) = (capacity, &def.min_samples) {
            if min_samples > capacity {
                self.error(
                    m.span(),
                    format!(
                        "guard of {min_samples} samples can never be met: window \"{window}\" \
                         holds at most {capacity}"
                    ),
                    Some("lengthen the window or lower `min_samples`".into()),
                );
            }
        }
        if matches!(agg, AggKind::MaxGap) && window.is_calendar() {
            self.error(
                def.agg.span(),
                "max_gap needs a sliding or tumbling window",
                None,
            );
        }
        let stat = Stat {
            name: name.to_string(),
            series: usize::MAX,
            agg,
            window,
            min_samples,
            sliding_slot: None,
        };
        Some((stat, StatInput { from, of, filter }))
    }
}
