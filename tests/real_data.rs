//! Real WHOOP exports through the whole rule pack, checked three ways:
//!
//! 1. against an independent computation of the nightly rules written here, straight from the
//!    CSV with plain code (no importer, no engine, no windows);
//! 2. against `reference/whoop-nightly-decisions.jsonl`, computed outside the project;
//! 3. against itself with the users' events interleaved differently: identical outputs.
//!
//! Runs when `VIGIL_REAL_DATA` names the wearables folder (CI sets it). Without it the tests
//! say so and pass, unless `CI=true`, where a missing folder fails them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime};
use vigil::engine::{Engine, EngineConfig, OutputEvent};
use vigil::event::Event;
use vigil::rules::load_rules;

#[path = "common/real_data.rs"]
mod real_data_dir;
use real_data_dir::{data_dir, whoop_exports};

/// (user, rule, night, state, severity of hrv_drop firings)
type Decision = (String, String, String, String, Option<String>);

fn rules() -> Arc<vigil::rules::RuleSet> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    Arc::new(load_rules(&[dir]).expect("the rule pack is valid"))
}

fn run(events: &[Event]) -> Vec<OutputEvent> {
    let mut engine = Engine::new(rules(), EngineConfig::default());
    let mut out = Vec::new();
    for e in events {
        engine.process(e, &mut out);
    }
    out
}

const NIGHTLY: [&str; 6] = [
    "hrv_drop",
    "hrv_recovered",
    "rhr_elevated",
    "rhr_lowest_30d",
    "sleep_poor_streak",
    "sleep_streak_7",
];

fn decisions(outputs: &[OutputEvent]) -> BTreeSet<Decision> {
    outputs
        .iter()
        .filter(|o| NIGHTLY.contains(&o.data.rule_id.as_str()))
        .map(|o| {
            let state = match o.data.state {
                Some(vigil::engine::AlertState::Firing) => "firing",
                Some(vigil::engine::AlertState::Resolved) => "resolved",
                None => "milestone",
            };
            let severity = (o.data.rule_id == "hrv_drop" && state == "firing")
                .then(|| o.data.severity.name().to_string());
            (
                o.subject.clone(),
                o.data.rule_id.clone(),
                o.data.night.clone().unwrap_or_default(),
                state.to_string(),
                severity,
            )
        })
        .collect()
}

fn all_events(dir: &Path) -> Vec<Vec<Event>> {
    whoop_exports(dir)
        .iter()
        .map(|(user, path)| {
            vigil::import::whoop::import_whoop_file(path, user)
                .expect("import")
                .events
        })
        .collect()
}

fn merged_by_time(per_user: &[Vec<Event>]) -> Vec<Event> {
    let mut all: Vec<Event> = per_user.iter().flatten().cloned().collect();
    all.sort_by_key(|e| e.time.millis());
    all
}

#[test]
fn nightly_rules_agree_with_an_independent_computation_and_the_reference() {
    let Some(dir) = data_dir() else { return };
    let per_user = all_events(&dir);
    let vigil_decisions = decisions(&run(&merged_by_time(&per_user)));

    let mut independent = BTreeSet::new();
    for (user, path) in whoop_exports(&dir) {
        independent.extend(independent::decide(&user, &path));
    }
    let reference = read_reference(&dir);

    let report = |name: &str, theirs: &BTreeSet<Decision>| {
        let missing: Vec<_> = theirs.difference(&vigil_decisions).collect();
        let extra: Vec<_> = vigil_decisions.difference(theirs).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "Vigil vs {name}: {} missing from Vigil, {} extra in Vigil\nmissing: {missing:#?}\nextra: {extra:#?}",
            missing.len(),
            extra.len()
        );
    };
    assert!(
        independent.len() > 300,
        "the independent computation found only {}",
        independent.len()
    );
    report("the independent computation", &independent);
    report("reference/whoop-nightly-decisions.jsonl", &reference);
}

#[test]
fn a_different_interleaving_of_users_gives_identical_outputs() {
    let Some(dir) = data_dir() else { return };
    let per_user = all_events(&dir);
    let by_time = run(&merged_by_time(&per_user));
    // Users one after another, newest export first: every user's own events stay in order,
    // but the users' clocks are years apart in the stream.
    let concatenated: Vec<Event> = per_user.iter().rev().flatten().cloned().collect();
    let by_user = run(&concatenated);
    // Absence alerts are defined on the global clock, so they depend on how users interleave
    // (that is their point); every other output must be identical, ids included.
    let key = |outputs: &[OutputEvent]| -> BTreeSet<String> {
        outputs
            .iter()
            .filter(|o| o.data.rule_id != "no_data_48h")
            .map(|o| serde_json::to_string(o).unwrap())
            .collect()
    };
    let (a, b) = (key(&by_time), key(&by_user));
    assert!(a.len() > 300);
    assert_eq!(a.len(), b.len());
    assert!(a == b, "outputs differ between interleavings");
}

fn read_reference(dir: &Path) -> BTreeSet<Decision> {
    let text = std::fs::read_to_string(dir.join("reference/whoop-nightly-decisions.jsonl"))
        .expect("reference file");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("reference line");
            let s = |k: &str| v[k].as_str().map(String::from);
            (
                s("user").unwrap(),
                s("rule").unwrap(),
                s("night").unwrap(),
                s("state").unwrap(),
                s("severity"),
            )
        })
        .collect()
}

/// The nightly rules of PRODUCT.md, computed directly from the CSV columns by plain loops over
/// calendar dates: no event model, no windows, no engine.
mod independent {
    use super::*;

    #[derive(Default, Clone, Copy)]
    struct Night {
        hrv: Option<f64>,
        rhr: Option<f64>,
        sleep: Option<f64>,
        efficiency: Option<f64>,
    }

    fn parse_time(text: &str) -> Option<NaiveDateTime> {
        NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S").ok()
    }

    fn offset_minutes(tz: &str) -> i64 {
        let tz = tz.trim();
        if tz == "UTCZ" || tz == "UTC" {
            return 0;
        }
        let rest = tz.trim_start_matches("UTC");
        let sign = if rest.starts_with('-') { -1 } else { 1 };
        let digits: Vec<i64> = rest[1..]
            .split(':')
            .filter_map(|p| p.parse().ok())
            .collect();
        sign * (digits.first().copied().unwrap_or(0) * 60 + digits.get(1).copied().unwrap_or(0))
    }

    /// Nights by local date; a later row (by wake instant) for the same date replaces it.
    fn nights(path: &Path) -> BTreeMap<NaiveDate, Night> {
        let mut reader = csv::Reader::from_path(path).expect("csv");
        let headers = reader.headers().unwrap().clone();
        let col = |name: &str| {
            headers
                .iter()
                .position(|h| h.trim() == name)
                .unwrap_or_else(|| panic!("{name}"))
        };
        let (wake, tz) = (col("Wake onset"), col("Cycle timezone"));
        let (hrv, rhr) = (
            col("Heart rate variability (ms)"),
            col("Resting heart rate (bpm)"),
        );
        let (asleep, eff) = (col("Asleep duration (min)"), col("Sleep efficiency %"));
        let mut rows: Vec<(i64, NaiveDate, Night)> = Vec::new();
        for record in reader.records() {
            let record = record.unwrap();
            let Some(wake_time) = parse_time(&record[wake]) else {
                continue;
            };
            let num = |i: usize| record.get(i).and_then(|v| v.trim().parse::<f64>().ok());
            let utc = wake_time.and_utc().timestamp() - offset_minutes(&record[tz]) * 60;
            rows.push((
                utc,
                wake_time.date(),
                Night {
                    hrv: num(hrv),
                    rhr: num(rhr),
                    sleep: num(asleep),
                    efficiency: num(eff),
                },
            ));
        }
        rows.sort_by_key(|r| r.0);
        let mut nights = BTreeMap::new();
        for (_, date, night) in rows {
            let entry: &mut Night = nights.entry(date).or_default();
            // Each metric present in the later row replaces the earlier value.
            entry.hrv = night.hrv.or(entry.hrv);
            entry.rhr = night.rhr.or(entry.rhr);
            if night.sleep.is_some() {
                entry.sleep = night.sleep;
                entry.efficiency = night.efficiency;
            }
        }
        nights
    }

    fn values(
        nights: &BTreeMap<NaiveDate, Night>,
        from: NaiveDate,
        to: NaiveDate,
        get: fn(&Night) -> Option<f64>,
    ) -> Vec<f64> {
        nights
            .range(from..=to)
            .filter_map(|(_, n)| get(n))
            .collect()
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn sample_sd(v: &[f64]) -> f64 {
        let m = mean(v);
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() as f64 - 1.0)).sqrt()
    }

    fn median(v: &[f64]) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(|a, b| a.total_cmp(b));
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            (s[n / 2 - 1] + s[n / 2]) / 2.0
        }
    }

    fn days(d: NaiveDate, n: i64) -> NaiveDate {
        d - chrono::Duration::days(n)
    }

    /// Counts consecutive dates ending at `d` for which `holds` is true.
    fn run_length(d: NaiveDate, holds: &dyn Fn(NaiveDate) -> bool) -> i64 {
        let mut n = 0;
        while holds(days(d, n)) {
            n += 1;
        }
        n
    }

    pub fn decide(user: &str, path: &Path) -> Vec<Decision> {
        let nights = nights(path);
        let ln_hrv = |n: &Night| n.hrv.map(f64::ln);
        let mut out = Vec::new();
        let mut push = |rule: &str, d: NaiveDate, state: &str, severity: Option<&str>| {
            out.push((
                user.to_string(),
                rule.to_string(),
                d.format("%Y-%m-%d").to_string(),
                state.to_string(),
                severity.map(String::from),
            ));
        };
        // hrv_drop and hrv_recovered
        let lower = |d: NaiveDate| -> Option<(f64, f64)> {
            let base = values(&nights, days(d, 59), d, ln_hrv);
            (base.len() >= 14).then(|| (mean(&base), sample_sd(&base)))
        };
        let (mut firing, mut pending): (bool, Option<NaiveDate>) = (false, None);
        for (&d, night) in &nights {
            let Some(x) = ln_hrv(night) else { continue };
            let signal = values(&nights, days(d, 6), d, ln_hrv);
            if let (true, Some((m, sd))) = (signal.len() >= 3, lower(d)) {
                let s = mean(&signal);
                if !firing && s < m - 0.5 * sd {
                    firing = true;
                    push(
                        "hrv_drop",
                        d,
                        "firing",
                        Some(if s < m - sd { "critical" } else { "warning" }),
                    );
                    pending = Some(d);
                } else if firing && s >= m - 0.5 * sd {
                    firing = false;
                    push("hrv_drop", d, "resolved", None);
                }
            }
            if let Some(f) = pending {
                if d > f + chrono::Duration::days(30) {
                    pending = None;
                } else if d > f {
                    let ok = |day: NaiveDate, value: Option<f64>| matches!((value, lower(day)), (Some(v), Some((m, sd))) if v >= m - 0.5 * sd);
                    let prev = days(d, 1);
                    if prev > f && ok(d, Some(x)) && ok(prev, nights.get(&prev).and_then(ln_hrv)) {
                        push("hrv_recovered", d, "milestone", None);
                        pending = None;
                    }
                }
            }
        }
        // rhr_elevated and rhr_lowest_30d
        let rhr = |n: &Night| n.rhr;
        let elevated = |d: NaiveDate| -> bool {
            let Some(v) = nights.get(&d).and_then(rhr) else {
                return false;
            };
            let prev = values(&nights, days(d, 60), days(d, 1), rhr);
            prev.len() >= 14 && v >= median(&prev) + 4.0
        };
        let mut last_lowest: Option<NaiveDate> = None;
        for (&d, night) in &nights {
            let Some(v) = night.rhr else { continue };
            if run_length(d, &elevated) == 2 {
                push("rhr_elevated", d, "firing", None);
            }
            let prev = values(&nights, days(d, 30), days(d, 1), rhr);
            let quiet = last_lowest.is_some_and(|f| d <= f + chrono::Duration::days(6));
            if prev.len() >= 21 && prev.iter().all(|p| v < *p) && !quiet {
                push("rhr_lowest_30d", d, "milestone", None);
                last_lowest = Some(d);
            }
        }
        // sleep rules
        let poor = |d: NaiveDate| {
            nights
                .get(&d)
                .and_then(|n| {
                    n.sleep
                        .map(|s| s < 360.0 || n.efficiency.is_some_and(|e| e < 85.0))
                })
                .unwrap_or(false)
        };
        let long = |d: NaiveDate| {
            nights
                .get(&d)
                .and_then(|n| n.sleep)
                .is_some_and(|s| s >= 420.0)
        };
        for (&d, night) in &nights {
            if night.sleep.is_none() {
                continue;
            }
            if run_length(d, &poor) == 3 {
                push("sleep_poor_streak", d, "firing", None);
            }
            if run_length(d, &long) == 7 {
                push("sleep_streak_7", d, "milestone", None);
            }
        }
        out
    }
}
