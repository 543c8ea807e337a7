//! `[sequence]` rules: steps matched in order within a time.

use super::Checker;
use crate::rules::compiled::{Mode, Step};
use crate::rules::duration::parse_duration;
use crate::rules::model::{SequenceDef, Sp};

impl Checker<'_> {
    pub(super) fn sequence(&mut self, sequence: &Sp<SequenceDef>) -> Mode {
        let def = sequence.get();
        if def.steps.len() < 2 {
            self.error(sequence.span(), "a sequence needs at least two steps", None);
        }
        let steps: Vec<Step> = def
            .steps
            .iter()
            .filter_map(|s| self.step(s.get()))
            .collect();
        let within_ms = match parse_duration(def.within.get()) {
            Ok(ms) => ms,
            Err(m) => {
                self.error(def.within.span(), m, None);
                0
            }
        };
        let strict = match def.contiguity.as_ref().map(|c| c.get().as_str()) {
            None | Some("relaxed") => false,
            Some("strict") => true,
            Some(other) => {
                let span = def.contiguity.as_ref().map_or(0..0, |c| c.span());
                self.error(
                    span,
                    format!("unknown contiguity \"{other}\""),
                    Some("expected \"strict\" or \"relaxed\"".into()),
                );
                false
            }
        };
        Mode::Sequence {
            steps,
            within_ms,
            strict,
        }
    }
}
