//! `[sequence]` rules: partial matches advanced by each event, an output when one completes.

use super::emit::Decision;
use super::env::step_matches;
use super::Context;
use crate::engine::output::{AlertState, OutputEvent};
use crate::engine::state::{KeyState, PartialMatch};
use crate::event::Event;
use crate::rules::{Mode, RuleKind};

/// At most this many partial matches are kept per sequence rule and key; the oldest go first.
const MAX_PARTIAL_MATCHES: usize = 64;

impl Context<'_> {
    pub(super) fn sequence(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        event: &Event,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        let Mode::Sequence {
            steps,
            within_ms,
            strict,
        } = &rule.mode
        else {
            return;
        };
        let t = event.time.millis();
        let partials = state.rules[r]
            .get_or_insert_with(Default::default)
            .partials();
        partials.retain(|p| t - p.started <= *within_ms);
        let mut completed: Option<Vec<String>> = None;
        let mut kept = Vec::with_capacity(partials.len() + 1);
        for mut p in std::mem::take(partials) {
            if steps
                .get(p.next_step)
                .is_some_and(|s| step_matches(s, event))
            {
                p.next_step += 1;
                p.ids.push(event.id.clone());
                if p.next_step == steps.len() {
                    completed.get_or_insert(p.ids);
                    continue;
                }
                kept.push(p);
            } else if !strict {
                kept.push(p);
            }
        }
        if completed.is_some() {
            // Skip past the last event: a completed match discards the partial ones.
            kept.clear();
        } else if steps.first().is_some_and(|s| step_matches(s, event)) {
            kept.push(PartialMatch {
                next_step: 1,
                started: t,
                ids: vec![event.id.clone()],
            });
            if kept.len() > MAX_PARTIAL_MATCHES {
                kept.remove(0);
            }
        }
        *partials = kept;
        if let Some(mut ids) = completed {
            ids.reverse();
            let decision = Decision {
                state: (rule.kind == RuleKind::Alert).then_some(AlertState::Firing),
                severity: rule.severity,
                time: event.time,
                night: None,
                occasion: t.to_string(),
                ids,
                firing_id: None,
                eval: None,
                event: Some(event),
            };
            self.emit(r, key, state, decision, out);
        }
    }
}
