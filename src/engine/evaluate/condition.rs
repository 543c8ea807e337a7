//! `[fire]` rules: the condition at each `on` event, with `[after]` arming, streaks,
//! cooldowns, tiers and `[resolve]`.

use super::emit::{occasion_text, occasion_value, resolution, Decision};
use super::env::{evaluate_stats, EventEnv, RuleEnv};
use super::streak::advance_streak;
use super::Context;
use crate::engine::output::{AlertState, OutputEvent};
use crate::engine::state::{Firing, KeyState};
use crate::event::Event;
use crate::rules::duration::Extent;
use crate::rules::{Mode, RuleKind};

impl Context<'_> {
    pub(super) fn condition(
        &mut self,
        r: usize,
        key: &str,
        state: &mut KeyState,
        event: &Event,
        out: &mut Vec<OutputEvent>,
    ) {
        let rule = &self.rules.rules[r];
        let Mode::Condition {
            filter,
            fire,
            streak,
            cooldown,
            resolve,
            after,
            ..
        } = &rule.mode
        else {
            return;
        };
        if let Some(filter) = filter {
            if !filter.holds(&EventEnv { event }) {
                return;
            }
        }
        let t = event.time.millis();
        let night = event.time.local_day();
        if after.is_some() {
            let Some(armed) = state.rules[r].as_ref().and_then(|s| s.armed()) else {
                return;
            };
            let pos = match after.as_ref().map(|a| a.within) {
                Some(Extent::Nights(_)) => i64::from(night),
                _ => t,
            };
            if pos > armed.until {
                if let Some(rs) = state.rules[r].as_mut() {
                    rs.set_armed(None);
                }
                return;
            }
            if pos <= armed.at {
                return;
            }
        }
        let eval = evaluate_stats(rule, &self.rules.series, state, event);
        let env = RuleEnv {
            event,
            stats: &eval.stats,
            lets: &eval.lets,
        };
        if let Some(observer) = self.observer.as_deref_mut() {
            observer.evaluated(r, key, event, &env);
        }
        let holds = fire.holds(&env);
        let rs = state.rules[r].get_or_insert_with(Default::default);

        // Firing alerts with a lifecycle: only the resolve condition matters until resolved.
        if let Some(firing) = rs.firing {
            if resolve.as_ref().is_some_and(|c| c.holds(&env)) {
                rs.firing = None;
                let decision = resolution(rule, key, firing, event, Some(&eval));
                self.emit(r, key, state, decision, out);
            }
            return;
        }

        let fires = match streak {
            Some(Extent::Nights(need)) => {
                advance_streak(&mut rs.streak, i64::from(night), holds, *need)
            }
            Some(Extent::Events(need)) => {
                let pos = rs.streak.pos.saturating_add(1);
                advance_streak(&mut rs.streak, pos, holds, *need)
            }
            _ => holds,
        };
        let occasion_value = occasion_value(rule, night, t);
        if !fires || rs.last_fire == occasion_value {
            return;
        }
        if rs.last_fire != i64::MIN {
            let silent = match cooldown {
                Some(Extent::Nights(n)) => i64::from(night) < rs.last_fire + i64::from(*n),
                // The compiler makes nightly rules count cooldowns in nights.
                Some(Extent::Time(ms)) => t < rs.last_fire.saturating_add(*ms),
                _ => false,
            };
            if silent {
                return;
            }
        }
        rs.last_fire = occasion_value;
        let severity = rule
            .tiers
            .iter()
            .find(|(_, c)| c.holds(&env))
            .map_or(rule.severity, |(s, _)| *s);
        let alert_state = (rule.kind == RuleKind::Alert).then_some(AlertState::Firing);
        let decision = Decision {
            state: alert_state,
            severity,
            time: event.time,
            night: rule.nightly.then_some(night),
            occasion: occasion_text(rule, occasion_value),
            ids: vec![event.id.clone()],
            firing_id: None,
            eval: Some(&eval),
            event: Some(event),
        };
        let emitted = self.emit(r, key, state, decision, out);
        if let (Some(_), Some(rs)) = (emitted, state.rules[r].as_mut()) {
            if resolve.is_some() {
                rs.firing = Some(Firing {
                    occasion: occasion_value,
                    severity,
                    version: None,
                });
            }
            if after.is_some() {
                rs.set_armed(None);
            }
        }
    }
}
