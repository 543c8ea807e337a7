//! The shadow engine of `vigil run --shadow`.
//!
//! It is fed the event the live engine accepted, the same decoded value, right after the live
//! engine took it; its outputs are written to the shadow file only: no history, status,
//! silence or alert output ever sees them.
//!
//! **Matching online.** Both engines see each event at the same point of the stream, so the
//! outputs one event causes in each are matched as soon as both have processed it (in
//! practice: when the next event arrives, or at the end of the run), with the backtest's key
//! and matcher. Outputs a live rule reload emits are matched with the next event's. What is
//! not matched then is counted as `live_only` or `shadow_only` for good: when the two sets
//! reach the same decision (same subject, rule, state and night) on *different* events — a
//! nightly threshold crossed by an earlier sample in one set than in the other — the metric
//! counts one of each, where `vigil shadow report`, which matches whole files, counts one in
//! both. The report is the reference; the metric is its running estimate.

use std::io::{self, Write};
use std::sync::Arc;

use crate::backtest::replay::{decision, Decision, Names, RuleIds};
use crate::backtest::table::{match_key, pair, Agreement, MatchKey};
use crate::engine::{Engine, EngineConfig, OutputEvent};
use crate::event::Event;
use crate::io::lazy_file::LazyFile;
use crate::rules::RuleSet;
use crate::telemetry;

/// The shadow rule set of a run, its output file and what is waiting to be matched.
pub struct Shadow {
    engine: Engine,
    out: LazyFile,
    rule_ids: RuleIds,
    /// Subjects of the outputs waiting to be matched (emptied with them).
    names: Names,
    live: Vec<Decision>,
    shadow: Vec<Decision>,
    scratch: Vec<OutputEvent>,
    /// Per rule (by [`RuleIds`] number), what was matched so far.
    agreement: Vec<Agreement>,
    /// Outputs written to the shadow file.
    pub written: u64,
    /// The first write error: the shadow stops writing, the live run goes on, and the end of
    /// the run reports it.
    pub error: Option<io::Error>,
}

impl Shadow {
    pub fn new(rules: Arc<RuleSet>, config: EngineConfig, out: LazyFile) -> Self {
        Shadow {
            engine: Engine::new(rules, config),
            out,
            rule_ids: RuleIds::default(),
            names: Names::default(),
            live: Vec::new(),
            shadow: Vec::new(),
            scratch: Vec::new(),
            agreement: Vec::new(),
            written: 0,
            error: None,
        }
    }

    /// The shadow file.
    pub fn path(&self) -> &std::path::Path {
        self.out.path()
    }

    /// An event the live engine accepted: what the previous one caused is matched, then the
    /// shadow engine takes this one. Its disposition is not used: with the same engine
    /// configuration, lateness is the live engine's.
    pub fn event(&mut self, event: &Event) {
        self.settle();
        self.scratch.clear();
        self.engine.process(event, &mut self.scratch);
        let outputs = std::mem::take(&mut self.scratch);
        for output in &outputs {
            if self.error.is_none() {
                match write_line(&mut self.out, output) {
                    Ok(()) => self.written += 1,
                    Err(e) => self.error = Some(e),
                }
            }
            let rule = self.rule_ids.intern(&output.data.rule_id);
            self.grow(rule);
            if let Some(d) = decision(output, &mut self.names, &self.rule_ids) {
                self.shadow.push(d);
            }
        }
        self.scratch = outputs;
    }

    /// An output of the live rules (silenced ones too: the live set made them).
    pub fn live(&mut self, output: &OutputEvent) {
        let rule = self.rule_ids.intern(&output.data.rule_id);
        self.grow(rule);
        if let Some(d) = decision(output, &mut self.names, &self.rule_ids) {
            self.live.push(d);
        }
    }

    /// Matches what is waiting and counts it, per rule.
    pub fn settle(&mut self) {
        if self.live.is_empty() && self.shadow.is_empty() {
            return;
        }
        let mut rules: Vec<u32> = self
            .live
            .iter()
            .chain(&self.shadow)
            .map(|d| d.rule)
            .collect();
        rules.sort_unstable();
        rules.dedup();
        let keys = |ds: &[Decision], r: u32| -> Vec<MatchKey> {
            ds.iter().filter(|d| d.rule == r).map(match_key).collect()
        };
        for r in rules {
            let paired = pair(&keys(&self.live, r), &keys(&self.shadow, r));
            let (live_only, shadow_only) = (paired.only_a.len() as u64, paired.only_b.len() as u64);
            if let Some(a) = self.agreement.get_mut(r as usize) {
                a.both += paired.both;
                a.only_a += live_only;
                a.only_b += shadow_only;
            }
            let id = self
                .rule_ids
                .ids
                .get(r as usize)
                .map_or("?", String::as_str);
            let metrics = telemetry::metrics();
            metrics.shadow_outputs(id, "both", paired.both);
            metrics.shadow_outputs(id, "live_only", live_only);
            metrics.shadow_outputs(id, "shadow_only", shadow_only);
        }
        self.live.clear();
        self.shadow.clear();
        // Subjects are only needed while their outputs wait; a long run keeps none.
        self.names = Names::default();
    }

    /// Matches what is left and flushes the shadow file. Returns the agreement per rule id
    /// (both, live only as `only_a`, shadow only as `only_b`), in the order rules were met.
    pub fn finish(&mut self) -> io::Result<Vec<(String, Agreement)>> {
        self.settle();
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        Ok(self
            .rule_ids
            .ids
            .iter()
            .cloned()
            .zip(self.agreement.iter().copied())
            .collect())
    }

    fn grow(&mut self, rule: u32) {
        let len = rule as usize + 1;
        if self.agreement.len() < len {
            self.agreement.resize(len, Agreement::default());
        }
    }
}

fn write_line(out: &mut dyn Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Disposition;
    use crate::event::Decoder;
    use crate::rules::load_rules;

    fn rules(dir: &str) -> Arc<RuleSet> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        match load_rules(&[root.join(dir)]) {
            Ok(set) => Arc::new(set),
            Err(_) => panic!("{dir} does not load"),
        }
    }

    /// The simulated users through the live pack and the candidate (hrv_drop v2), as
    /// `vigil run --shadow` feeds them: every output of either set is counted once, and
    /// the metric has the disagreements.
    #[test]
    fn every_output_is_counted_once_per_rule() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("shadow.jsonl");
        let config = EngineConfig::default();
        let mut live = Engine::new(rules("rules"), config.clone());
        let mut shadow = Shadow::new(
            rules("tests/fixtures/backtest/rules-b"),
            config,
            LazyFile::new(&out).expect("lazy file"),
        );
        let input = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/simulated-7-users.jsonl"),
        )
        .expect("the fixture");
        let decoder = Decoder::default();
        let (mut outputs, mut made) = (Vec::new(), 0u64);
        for line in input.lines().filter(|l| !l.trim().is_empty()) {
            let event = decoder.decode(line.as_bytes()).expect("a valid event");
            outputs.clear();
            if live.process(&event, &mut outputs) == Disposition::Late {
                continue;
            }
            shadow.event(&event);
            for output in &outputs {
                shadow.live(output);
            }
            made += outputs.len() as u64;
        }
        let agreement = shadow.finish().expect("written");
        let sum = |f: fn(&Agreement) -> u64| agreement.iter().map(|(_, a)| f(a)).sum::<u64>();
        assert_eq!(sum(|a| a.both + a.only_a), made);
        assert_eq!(sum(|a| a.both + a.only_b), shadow.written);
        let written = std::fs::read_to_string(&out).expect("the shadow file");
        assert_eq!(written.lines().count() as u64, shadow.written);
        let hrv = agreement
            .iter()
            .find(|(id, _)| id == "hrv_drop")
            .map(|(_, a)| *a);
        assert!(hrv.is_some_and(|a| a.only_a > 0 && a.only_b > 0), "{hrv:?}");
        let text = telemetry::metrics().encode();
        assert!(
            text.contains(r#"vigil_shadow_outputs_total{rule="hrv_drop",agreement="live_only"}"#),
            "{text}"
        );
    }
}
