//! `vigil run --shadow` and `vigil shadow report`, run as the built binary on the simulated
//! users with the backtest's candidate set (hrv_drop v2 at 0.75 SD): the shadow file is what
//! `vigil run` with the candidate writes, the live outputs and the history are unchanged by
//! the shadow, and the report's agreement is `vigil backtest --against`'s.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

#[path = "common/binary.rs"]
mod binary;
use binary::{fixture, ok, path, root, rules_b, vigil};

fn rules_a() -> PathBuf {
    root().join("rules")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `vigil run` over the fixture with `rules`, writing to `output`, with `extra` arguments.
fn run(dir: &Path, rules: &Path, output: &Path, extra: &[&str]) -> Output {
    let input = fixture();
    let mut args = vec![
        "run",
        "--rules",
        path(rules),
        "--input",
        path(&input),
        "--output",
        path(output),
    ];
    args.extend_from_slice(extra);
    vigil(dir, &args)
}

/// The ids of the stored rows of `history`.
fn stored_ids(dir: &Path, history: &str) -> BTreeSet<String> {
    let out = ok(&vigil(
        dir,
        &[
            "alerts",
            "list",
            "--json",
            "--limit",
            "0",
            "--history",
            history,
        ],
    ));
    out.lines()
        .map(|l| {
            let row: Value = serde_json::from_str(l).expect("a JSON line");
            row["id"].as_str().expect("a row id").to_string()
        })
        .collect()
}

fn ids(outputs: &str) -> BTreeSet<String> {
    outputs
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("an output");
            v["id"].as_str().expect("an id").to_string()
        })
        .collect()
}

/// One run with the shadow, and the three it is compared with: live alone (with its own
/// history), the candidate alone.
struct Runs {
    dir: tempfile::TempDir,
    live: String,
    shadow: String,
    live_alone: String,
    candidate_alone: String,
    history: String,
    history_alone: String,
    /// The shadow run's standard error (its summary lines).
    stderr: String,
}

fn runs() -> Runs {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let history = format!("sqlite:{}", path(&d.join("with-shadow.db")));
    let history_alone = format!("sqlite:{}", path(&d.join("alone.db")));
    let shadow_out = d.join("shadow.jsonl");
    let with_shadow = run(
        d,
        &rules_a(),
        &d.join("live.jsonl"),
        &[
            "--shadow",
            path(&rules_b()),
            "--shadow-out",
            path(&shadow_out),
            "--history",
            &history,
        ],
    );
    ok(&with_shadow);
    ok(&run(
        d,
        &rules_a(),
        &d.join("live-alone.jsonl"),
        &["--history", &history_alone],
    ));
    ok(&run(
        d,
        &rules_b(),
        &d.join("candidate-alone.jsonl"),
        &["--no-history"],
    ));
    Runs {
        live: read(&d.join("live.jsonl")),
        shadow: read(&shadow_out),
        live_alone: read(&d.join("live-alone.jsonl")),
        candidate_alone: read(&d.join("candidate-alone.jsonl")),
        history,
        history_alone,
        stderr: String::from_utf8_lossy(&with_shadow.stderr).into_owned(),
        dir,
    }
}

#[test]
fn the_shadow_file_is_what_the_candidate_alone_outputs_and_live_is_unchanged() {
    let r = runs();
    assert!(!r.shadow.is_empty(), "the candidate made no output");
    assert_eq!(r.shadow, r.candidate_alone, "the shadow file differs");
    assert_eq!(r.live, r.live_alone, "--shadow changed the live outputs");
    // The candidate's hrv_drop is v2, so its ids differ from live's: a shadow output that
    // reached the history would show there.
    assert_ne!(ids(&r.shadow), ids(&r.live));
    let stored = stored_ids(r.dir.path(), &r.history);
    assert_eq!(stored, stored_ids(r.dir.path(), &r.history_alone));
    assert_eq!(stored, ids(&r.live), "the history is not the live outputs");
    let shadow_only: BTreeSet<String> = ids(&r.shadow).difference(&ids(&r.live)).cloned().collect();
    assert!(!shadow_only.is_empty());
    assert!(
        stored.is_disjoint(&shadow_only),
        "shadow outputs in the history"
    );
}

#[test]
fn the_report_agrees_with_the_backtest() {
    let r = runs();
    let d = r.dir.path();
    let report: Value = serde_json::from_str(&ok(&vigil(
        d,
        &[
            "shadow",
            "report",
            "--live",
            path(&d.join("live.jsonl")),
            "--shadow",
            path(&d.join("shadow.jsonl")),
            "--json",
            "--examples",
            "2",
        ],
    )))
    .expect("the report is JSON");
    let backtest: Value = serde_json::from_str(&ok(&vigil(
        d,
        &[
            "backtest",
            "--rules",
            path(&rules_a()),
            "--against",
            path(&rules_b()),
            "--input",
            path(&fixture()),
            "--json",
        ],
    )))
    .expect("the backtest is JSON");
    let rows = report["rules"].as_array().expect("rules");
    let mut disagreements = 0;
    for rule in backtest["rules"].as_array().expect("rules") {
        let id = rule["id"].as_str().expect("an id");
        let a = &rule["agreement"];
        let row = rows.iter().find(|r| r["id"] == id);
        let (both, live_only, shadow_only) = match row {
            Some(r) => (
                r["both"].as_u64(),
                r["live_only"].as_u64(),
                r["shadow_only"].as_u64(),
            ),
            // A rule with no output in either file is not in the report.
            None => (Some(0), Some(0), Some(0)),
        };
        assert_eq!(
            (both, live_only, shadow_only),
            (
                a["both"].as_u64(),
                a["only_a"].as_u64(),
                a["only_b"].as_u64()
            ),
            "{id}"
        );
        if let Some(row) = row {
            let shown = |k: &str| row[k].as_array().map_or(0, Vec::len) as u64;
            assert_eq!(shown("live_only_examples"), live_only.unwrap_or(0).min(2));
            assert_eq!(
                shown("shadow_only_examples"),
                shadow_only.unwrap_or(0).min(2)
            );
        }
        disagreements += live_only.unwrap_or(0) + shadow_only.unwrap_or(0);
    }
    assert!(disagreements > 0, "the candidate should disagree somewhere");
    // Matched event by event during the run (what vigil_shadow_outputs_total counts), the
    // totals are the whole files' here: both sets make each common decision on one event.
    let total = |k: &str| rows.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
    let line = format!(
        "matched per event: both {}, live only {}, shadow only {}",
        total("both"),
        total("live_only"),
        total("shadow_only")
    );
    assert!(r.stderr.contains(&line), "{line} not in:\n{}", r.stderr);
    assert_eq!(rows.len() as u64, {
        let with_outputs = backtest["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .filter(|r| {
                let a = &r["agreement"];
                ["both", "only_a", "only_b"]
                    .iter()
                    .any(|k| a[*k].as_u64().unwrap_or(0) > 0)
            })
            .count();
        with_outputs as u64
    });
    // The text form names the disagreements with examples.
    let text = ok(&vigil(
        d,
        &[
            "shadow",
            "report",
            "--live",
            path(&d.join("live.jsonl")),
            "--shadow",
            path(&d.join("shadow.jsonl")),
        ],
    ));
    assert!(text.starts_with("rule"), "{text}");
    assert!(text.contains("hrv_drop"), "{text}");
}

#[test]
fn a_shadow_set_that_does_not_load_stops_the_run_with_exit_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let bad = d.join("bad");
    std::fs::create_dir(&bad).expect("mkdir");
    std::fs::write(
        bad.join("broken.toml"),
        "id = \"broken\"\nversion = \"one\"\n",
    )
    .expect("write");
    let out = run(
        d,
        &rules_a(),
        &d.join("live.jsonl"),
        &["--shadow", path(&bad), "--no-history"],
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broken.toml"), "{stderr}");
    assert!(stderr.contains("shadow"), "{stderr}");
    assert!(!d.join("live.jsonl").exists(), "the run started");
    assert!(!d.join("shadow.jsonl").exists());
}

#[test]
fn shadow_in_kafka_mode_and_shadow_out_alone_are_usage_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = vigil(
        dir.path(),
        &[
            "run",
            "--kafka",
            "--shadow",
            path(&rules_b()),
            "--no-history",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not yet supported in Kafka mode"),
        "{stderr}"
    );
}

#[test]
fn a_report_of_a_file_that_is_not_outputs_fails_naming_the_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("live.jsonl"), "").expect("write");
    std::fs::write(d.join("shadow.jsonl"), "\n{\"not\": \"an output\"}\n").expect("write");
    let out = vigil(
        d,
        &[
            "shadow",
            "report",
            "--live",
            path(&d.join("live.jsonl")),
            "--shadow",
            path(&d.join("shadow.jsonl")),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("shadow.jsonl:2"), "{stderr}");
}

/// A shadow file that cannot be written fails the run (exit 1), but only once the live side
/// is done: the live outputs and the history are complete.
#[cfg(target_os = "linux")]
#[test]
fn a_shadow_that_cannot_write_fails_the_run_after_the_live_history_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let history = format!("sqlite:{}", path(&d.join("h.db")));
    let out = run(
        d,
        &rules_a(),
        &d.join("live.jsonl"),
        &[
            "--shadow",
            path(&rules_b()),
            "--shadow-out",
            "/dev/full",
            "--history",
            &history,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("error: shadow: cannot write"), "{stderr}");
    let live = read(&d.join("live.jsonl"));
    assert_eq!(stored_ids(d, &history), ids(&live));
}
