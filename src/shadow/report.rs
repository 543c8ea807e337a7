//! `vigil shadow report`: the live and shadow outputs of a run (files of JSON lines, as
//! `vigil run --output` and `--shadow-out` write them) matched whole, per rule, with the
//! backtest's key and matcher, so that its numbers are those of `vigil backtest --against`
//! on the same input.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::backtest::replay::{decision, Decision, Names, RuleIds};
use crate::backtest::table::{match_key, pair, MatchKey};
use crate::engine::OutputEvent;

/// The agreement of a live and a shadow output file, as `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ShadowReport {
    /// The shape's version: 1.
    pub format: u32,
    pub live: String,
    pub shadow: String,
    /// One row per rule id with an output in either file: the live file's in the order they
    /// first appear, then those only the shadow file has.
    pub rules: Vec<RuleAgreement>,
}

/// One rule's outputs in both files, only in the live one, only in the shadow one.
#[derive(Clone, Debug, Serialize)]
pub struct RuleAgreement {
    pub id: String,
    pub both: u64,
    pub live_only: u64,
    pub shadow_only: u64,
    /// Up to `--examples` of the live outputs without a shadow counterpart.
    pub live_only_examples: Vec<Example>,
    /// Up to `--examples` of the shadow outputs without a live counterpart.
    pub shadow_only_examples: Vec<Example>,
}

/// An output, as a disagreement is shown.
#[derive(Clone, Debug, Serialize)]
pub struct Example {
    pub user: String,
    /// "firing", "resolved" or "milestone".
    pub state: &'static str,
    /// The night, for nightly rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub night: Option<String>,
    /// The output's time, RFC 3339.
    pub time: String,
    pub rule_version: u32,
    /// The output's id.
    pub id: String,
}

/// One output file read.
struct Read {
    decisions: Vec<Decision>,
    examples: Vec<Example>,
}

fn read(path: &Path, names: &mut Names, rule_ids: &mut RuleIds) -> anyhow::Result<Read> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut read = Read {
        decisions: Vec::new(),
        examples: Vec::new(),
    };
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let output: OutputEvent = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not an output of vigil", path.display(), i + 1))?;
        rule_ids.intern(&output.data.rule_id);
        let Some(d) = decision(&output, names, rule_ids) else {
            continue;
        };
        read.examples.push(Example {
            user: output.subject.clone(),
            state: d.state.name(),
            night: output.data.night.clone(),
            time: output.time.to_string(),
            rule_version: output.data.rule_version,
            id: output.id.clone(),
        });
        read.decisions.push(d);
    }
    Ok(read)
}

/// Matches the outputs of `live` and `shadow`, keeping up to `examples` of each
/// disagreement per rule.
pub fn report(live: &Path, shadow: &Path, examples: usize) -> anyhow::Result<ShadowReport> {
    let mut names = Names::default();
    let mut rule_ids = RuleIds::default();
    let a = read(live, &mut names, &mut rule_ids)?;
    let b = read(shadow, &mut names, &mut rule_ids)?;
    let rules = rule_ids
        .ids
        .iter()
        .enumerate()
        .map(|(r, id)| {
            let of = |read: &Read| -> (Vec<MatchKey>, Vec<usize>) {
                read.decisions
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| d.rule == r as u32)
                    .map(|(i, d)| (match_key(d), i))
                    .unzip()
            };
            let ((ka, ia), (kb, ib)) = (of(&a), of(&b));
            let paired = pair(&ka, &kb);
            let pick = |only: &[usize], at: &[usize], read: &Read| -> Vec<Example> {
                only.iter()
                    .take(examples)
                    .filter_map(|&k| at.get(k).and_then(|&i| read.examples.get(i)).cloned())
                    .collect()
            };
            RuleAgreement {
                id: id.clone(),
                both: paired.both,
                live_only: paired.only_a.len() as u64,
                shadow_only: paired.only_b.len() as u64,
                live_only_examples: pick(&paired.only_a, &ia, &a),
                shadow_only_examples: pick(&paired.only_b, &ib, &b),
            }
        })
        .collect();
    Ok(ShadowReport {
        format: 1,
        live: live.display().to_string(),
        shadow: shadow.display().to_string(),
        rules,
    })
}

impl ShadowReport {
    /// The report as text: a row per rule, then the examples of each disagreement.
    pub fn render(&self) -> String {
        let width = self
            .rules
            .iter()
            .map(|r| r.id.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let mut text = format!(
            "{:width$}  {:>8}  {:>9}  {:>11}\n",
            "rule", "both", "live only", "shadow only"
        );
        for r in &self.rules {
            text.push_str(&format!(
                "{:width$}  {:>8}  {:>9}  {:>11}\n",
                r.id, r.both, r.live_only, r.shadow_only
            ));
        }
        for r in &self.rules {
            for (what, examples, count) in [
                ("only live", &r.live_only_examples, r.live_only),
                ("only shadow", &r.shadow_only_examples, r.shadow_only),
            ] {
                if examples.is_empty() {
                    continue;
                }
                text.push_str(&format!(
                    "\n{} {what} ({} of {count}):\n",
                    r.id,
                    examples.len()
                ));
                for e in examples {
                    let when = e
                        .night
                        .as_deref()
                        .map_or_else(|| e.time.clone(), |night| format!("night {night}"));
                    text.push_str(&format!(
                        "  {} {} {when} v{} {}\n",
                        e.user, e.state, e.rule_version, e.id
                    ));
                }
            }
        }
        text
    }
}
