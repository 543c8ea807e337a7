//! `vigil backtest` run as a built binary: set A's outputs are `vigil run`'s, byte for byte;
//! the table's counts and agreement are recomputed here from `vigil run`'s outputs; several
//! inputs are merged by event time; invalid and late lines are counted and written only when
//! asked; history is never judged by the machine's clock; exit codes. And the shipped pack on
//! the real WHOOP exports (with `VIGIL_REAL_DATA`): the backtest agrees with `vigil run` and
//! with the independently computed reference's number of nightly decisions.
//!
//! The Fitabase exports in the same folder have no importer yet (another issue), so they are
//! not backtested here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[path = "common/binary.rs"]
mod binary;
use binary::{fixture, ok, path, root, rules_b, vigil};
#[path = "common/real_data.rs"]
mod real_data;
use real_data::{data_dir, whoop_exports};

/// `vigil run --no-history` over `input` with `rules`: its outputs, as written.
fn vigil_run(dir: &Path, rules: &Path, input: &Path) -> String {
    let output = dir.join(format!(
        "run-{}.jsonl",
        rules
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("rules")
    ));
    ok(&vigil(
        dir,
        &[
            "run",
            "--rules",
            path(rules),
            "--input",
            path(input),
            "--output",
            path(&output),
            "--no-history",
            "--dead-letter",
            path(&dir.join("run-dead.jsonl")),
            "--late",
            path(&dir.join("run-late.jsonl")),
        ],
    ));
    std::fs::read_to_string(&output).expect("the run's outputs")
}

/// `vigil backtest --json` with `args` in `dir`: the table and the outputs of each set.
fn backtest(dir: &Path, args: &[&str]) -> (Value, String, Option<String>) {
    let outputs = dir.join("backtest-outputs");
    let mut all = vec!["backtest", "--json", "--outputs", path(&outputs)];
    all.extend_from_slice(args);
    let table: Value = serde_json::from_str(&ok(&vigil(dir, &all))).expect("one JSON document");
    let a = std::fs::read_to_string(outputs.join("a.jsonl")).expect("set A's outputs");
    let b = std::fs::read_to_string(outputs.join("b.jsonl")).ok();
    (table, a, b)
}

fn outputs(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("an output line"))
        .collect()
}

fn state(o: &Value) -> &str {
    o["data"]["state"].as_str().unwrap_or("milestone")
}

/// (firings, resolutions, milestones, users affected) per rule id, counted from outputs.
fn counts(outputs: &[Value]) -> BTreeMap<String, (u64, u64, u64, u64)> {
    let mut users: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut counts: BTreeMap<String, (u64, u64, u64, u64)> = BTreeMap::new();
    for o in outputs {
        let rule = o["data"]["rule_id"].as_str().expect("rule id").to_string();
        let c = counts.entry(rule.clone()).or_default();
        match state(o) {
            "firing" => c.0 += 1,
            "resolved" => c.1 += 1,
            _ => c.2 += 1,
        }
        users
            .entry(rule)
            .or_default()
            .insert(o["subject"].as_str().expect("subject").to_string());
    }
    for (rule, c) in counts.iter_mut() {
        c.3 = users[rule].len() as u64;
    }
    counts
}

/// The table's counts of set `set`, in the shape of [`counts`] (rules without outputs left
/// out, as `counts` cannot see them).
fn table_counts(table: &Value, set: &str) -> BTreeMap<String, (u64, u64, u64, u64)> {
    let mut found = BTreeMap::new();
    for row in table["rules"].as_array().expect("rules") {
        for c in row["sets"].as_array().expect("sets") {
            if c["set"] != set {
                continue;
            }
            let n = |k: &str| c[k].as_u64().expect("a count");
            let entry = (
                n("firings"),
                n("resolutions"),
                n("milestones"),
                n("users_affected"),
            );
            if entry != (0, 0, 0, 0) {
                found.insert(row["id"].as_str().expect("id").to_string(), entry);
            }
        }
    }
    found
}

/// User-months of an input file, from its events' times (see docs/rules.md).
fn user_months(input: &Path) -> f64 {
    let mut spans: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for line in std::fs::read_to_string(input).expect("input").lines() {
        let v: Value = serde_json::from_str(line).expect("an event");
        let t = chrono::DateTime::parse_from_rfc3339(v["time"].as_str().expect("time"))
            .expect("an RFC 3339 time")
            .timestamp_millis();
        let span = spans
            .entry(v["user_id"].as_str().expect("user").to_string())
            .or_insert((t, t));
        *span = (span.0.min(t), span.1.max(t));
    }
    spans.values().map(|(a, b)| (b - a) as f64).sum::<f64>() / (30.0 * 86_400_000.0)
}

#[test]
fn set_a_gives_exactly_vigil_runs_outputs_and_the_table_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = root().join("rules");
    let run = vigil_run(dir.path(), &rules, &fixture());
    let (table, a, b) = backtest(
        dir.path(),
        &["--rules", path(&rules), "--input", path(&fixture())],
    );
    assert_eq!(a, run, "set A's outputs differ from vigil run's");
    assert!(b.is_none(), "no set B without --against");
    let run = outputs(&run);
    assert_eq!(
        run.len(),
        91,
        "the fixture's outputs under the shipped pack"
    );
    assert_eq!(table_counts(&table, "A"), counts(&run));
    assert_eq!(table["input"]["events"], 3684);
    assert_eq!(table["input"]["invalid"], 0);
    assert_eq!(table["input"]["users"], 7);
    assert_eq!(table["sets"][0]["late"], 0);
    let months = table["input"]["user_months"].as_f64().expect("user-months");
    assert!((months - user_months(&fixture())).abs() < 1e-9, "{months}");
    // The rate per user-month: firings of an alert, milestones of a milestone rule.
    let sleep = table["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["id"] == "sleep_poor_streak")
        .expect("sleep_poor_streak");
    let firings = counts(&run)["sleep_poor_streak"].0 as f64;
    let rate = sleep["sets"][0]["per_user_month"].as_f64().expect("a rate");
    assert!((rate - firings / months).abs() < 1e-9, "{rate}");
    assert!(
        sleep.get("agreement").is_none(),
        "no agreement without --against"
    );
}

/// What makes two outputs the same across rule sets (docs/rules.md): subject, rule id, state
/// and the night (nightly rules) or the time (others); never the id, which holds the version.
fn match_key(o: &Value) -> (String, String, String, String) {
    let occasion = match o["data"]["night"].as_str() {
        Some(night) => night.to_string(),
        None => o["time"].as_str().expect("time").to_string(),
    };
    (
        o["subject"].as_str().expect("subject").to_string(),
        o["data"]["rule_id"].as_str().expect("rule").to_string(),
        state(o).to_string(),
        occasion,
    )
}

#[test]
fn against_compares_the_two_sets_outputs_as_two_vigil_runs_give_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = root().join("rules");
    let run_a = vigil_run(dir.path(), &rules, &fixture());
    let run_b = vigil_run(dir.path(), &rules_b(), &fixture());
    let (table, a, b) = backtest(
        dir.path(),
        &[
            "--rules",
            path(&rules),
            "--against",
            path(&rules_b()),
            "--input",
            path(&fixture()),
        ],
    );
    assert_eq!(a, run_a);
    assert_eq!(b.as_deref(), Some(run_b.as_str()));
    let (run_a, run_b) = (outputs(&run_a), outputs(&run_b));
    assert_eq!(table_counts(&table, "B"), counts(&run_b));

    // Agreement per rule, recomputed as multisets of match keys.
    let mut keys: BTreeMap<String, (Vec<_>, Vec<_>)> = BTreeMap::new();
    for o in &run_a {
        let k = match_key(o);
        keys.entry(k.1.clone()).or_default().0.push(k);
    }
    for o in &run_b {
        let k = match_key(o);
        keys.entry(k.1.clone()).or_default().1.push(k);
    }
    let mut differing = 0;
    for row in table["rules"].as_array().expect("rules") {
        let id = row["id"].as_str().expect("id");
        let (mut a, b) = keys.get(id).cloned().unwrap_or_default();
        let mut both = 0u64;
        let mut only_b = 0u64;
        for k in b {
            match a.iter().position(|x| *x == k) {
                Some(i) => {
                    a.swap_remove(i);
                    both += 1;
                }
                None => only_b += 1,
            }
        }
        let expected = serde_json::json!({"both": both, "only_a": a.len(), "only_b": only_b});
        assert_eq!(row["agreement"], expected, "{id}");
        if a.len() as u64 + only_b > 0 {
            differing += 1;
        }
        // Versions come from each set's rule files.
        let version_b = if id == "hrv_drop" { 2 } else { 1 };
        assert_eq!(row["sets"][1]["version"], version_b, "{id}");
    }
    // hrv_drop's wider range changes it, and hrv_recovered (which follows it); nothing else.
    assert_eq!(differing, 2, "{table:#}");
    let hrv = &table["rules"][1];
    assert_eq!(hrv["id"], "hrv_drop");
    assert!(hrv["agreement"]["only_a"].as_u64() > Some(0), "{hrv:#}");
}

#[test]
fn several_inputs_are_merged_by_event_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(fixture()).expect("fixture");
    // Two inputs by user: each in time order, together the fixture.
    let (mut odd, mut even) = (String::new(), String::new());
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("event");
        let user = v["user_id"].as_str().expect("user");
        let last = user
            .chars()
            .last()
            .and_then(|c| c.to_digit(10))
            .unwrap_or(0);
        let into = if last % 2 == 1 { &mut odd } else { &mut even };
        into.push_str(line);
        into.push('\n');
    }
    assert!(!odd.is_empty() && !even.is_empty());
    let (first, second) = (dir.path().join("odd.jsonl"), dir.path().join("even.jsonl"));
    std::fs::write(&first, odd).expect("write");
    std::fs::write(&second, even).expect("write");
    let rules = root().join("rules");
    let whole = vigil_run(dir.path(), &rules, &fixture());
    let (table, merged, _) = backtest(
        dir.path(),
        &[
            "--rules",
            path(&rules),
            "--input",
            path(&first),
            path(&second),
        ],
    );
    // Events at the same instant may come in another order than in the fixture, and the
    // outputs with them; the outputs themselves are the same.
    let sorted = |s: &str| s.lines().map(String::from).collect::<BTreeSet<_>>();
    assert_eq!(sorted(&merged), sorted(&whole));
    assert_eq!(merged.lines().count(), whole.lines().count());
    assert_eq!(table["input"]["events"], 3684);
    assert_eq!(table["input"]["files"].as_array().map(Vec::len), Some(2));
}

fn hr(id: &str, user: &str, time: &str, bpm: u32) -> String {
    format!(
        r#"{{"id":"{id}","user_id":"{user}","type":"heart_rate","source":"t","time":"{time}","data":{{"heart_rate":{bpm}}}}}"#
    )
}

#[test]
fn invalid_and_late_lines_are_counted_and_written_only_when_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("input.jsonl");
    let lines = [
        hr("1", "u1", "2024-05-01T10:00:00Z", 61),
        "not json".to_string(),
        // Three hours behind its user: later than the default allowed lateness of 1 h.
        hr("2", "u1", "2024-05-01T07:00:00Z", 61),
        // Before 2000: refused by the decoder, backtest or not.
        hr("3", "u2", "1999-12-31T23:00:00Z", 61),
        // Decades ahead of this machine's clock: history to a backtest, not "in the future".
        hr("4", "u3", "2090-01-01T00:00:00Z", 61),
    ];
    std::fs::write(&input, lines.join("\n")).expect("write");
    let rules = root().join("rules");
    let (table, _, _) = backtest(
        dir.path(),
        &["--rules", path(&rules), "--input", path(&input)],
    );
    assert_eq!(table["input"]["lines"], 5);
    assert_eq!(table["input"]["invalid"], 2);
    assert_eq!(table["input"]["events"], 3);
    assert_eq!(table["sets"][0]["late"], 1);
    assert_eq!(table["sets"][0]["processed"], 2);
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["backtest-outputs", "input.jsonl"],
        "files left behind"
    );

    let (dead, late) = (dir.path().join("dead.jsonl"), dir.path().join("late.jsonl"));
    let out = vigil(
        dir.path(),
        &[
            "backtest",
            "--rules",
            path(&rules),
            "--input",
            path(&input),
            "--dead-letter",
            path(&dead),
            "--late",
            path(&late),
        ],
    );
    let table = ok(&out);
    assert!(
        table.starts_with(
            "events: 3 from 1 input (2 users, 0.0 user-months); invalid lines: 2; late events: 1\n"
        ),
        "{table}"
    );
    let dead = std::fs::read_to_string(dead).expect("dead letters");
    let dead: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(dead.len(), 2);
    assert_eq!(
        (dead[0]["line"].as_u64(), dead[1]["line"].as_u64()),
        (Some(2), Some(4))
    );
    assert!(dead[1]["reason"]
        .as_str()
        .is_some_and(|r| r.contains("before 2000")));
    let late = std::fs::read_to_string(late).expect("late events");
    assert_eq!(late.lines().count(), 1);
    assert!(late.contains(r#""line":3"#), "{late}");
}

#[test]
fn exit_codes_follow_the_other_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = root().join("rules");
    let invalid = root().join("tests/fixtures/rules/invalid");
    let code = |args: &[&str]| vigil(dir.path(), args).status.code();
    let input = path(&fixture()).to_string();
    // Invalid rules in either set: 3.
    assert_eq!(
        code(&["backtest", "--rules", path(&invalid), "--input", &input]),
        Some(3)
    );
    assert_eq!(
        code(&[
            "backtest",
            "--rules",
            path(&rules),
            "--against",
            path(&invalid),
            "--input",
            &input
        ]),
        Some(3)
    );
    // An input that cannot be opened: 1.
    assert_eq!(
        code(&[
            "backtest",
            "--rules",
            path(&rules),
            "--input",
            "no-such.jsonl"
        ]),
        Some(1)
    );
    // Usage: no input, the Kafka topics, stdin twice, a report from stdin: 2.
    assert_eq!(code(&["backtest", "--rules", path(&rules)]), Some(2));
    assert_eq!(code(&["backtest", "--topics", "--input", &input]), Some(2));
    assert_eq!(code(&["backtest", "--input", "-", "-"]), Some(2));
    assert_eq!(
        code(&["backtest", "--input", "-", "--report", "r.html"]),
        Some(2)
    );
    assert!(!dir.path().join("r.html").exists());
}

// ------------------------------------------------------------------------------ real data

const NIGHTLY: [&str; 6] = [
    "hrv_drop",
    "hrv_recovered",
    "rhr_elevated",
    "rhr_lowest_30d",
    "sleep_poor_streak",
    "sleep_streak_7",
];

#[test]
fn the_shipped_pack_on_the_whoop_exports_agrees_with_vigil_run_and_the_reference() {
    let Some(data) = data_dir() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    // Each export through `vigil import whoop`, one input per user.
    let mut inputs = Vec::new();
    for (i, (_, export)) in whoop_exports(&data).iter().enumerate() {
        let file = dir.path().join(format!("whoop-{i:02}.jsonl"));
        let user = format!("whoop-{i:02}");
        ok(&vigil(
            dir.path(),
            &[
                "import",
                "whoop",
                path(export),
                "--user",
                &user,
                "--output",
                path(&file),
            ],
        ));
        inputs.push(file);
    }
    // `vigil run` reads one input: the same events, merged as the backtest merges them (each
    // import is in time order; a stable sort keeps ties in the inputs' order).
    let mut merged: Vec<(i64, String)> = Vec::new();
    for file in &inputs {
        for line in std::fs::read_to_string(file).expect("import").lines() {
            let v: Value = serde_json::from_str(line).expect("event");
            let t = chrono::DateTime::parse_from_rfc3339(v["time"].as_str().expect("time"))
                .expect("time")
                .timestamp_millis();
            merged.push((t, line.to_string()));
        }
    }
    merged.sort_by_key(|(t, _)| *t);
    let all = dir.path().join("all.jsonl");
    let text: String = merged.iter().map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(&all, text).expect("write");

    let rules = root().join("rules");
    let run = vigil_run(dir.path(), &rules, &all);
    let mut args = vec!["--rules", path(&rules), "--input"];
    args.extend(inputs.iter().map(|p| path(p)));
    let (table, a, _) = backtest(dir.path(), &args);
    assert_eq!(a, run, "the backtest's outputs differ from vigil run's");
    let run = outputs(&run);
    assert_eq!(table_counts(&table, "A"), counts(&run));
    assert_eq!(table["input"]["events"].as_u64(), Some(merged.len() as u64));
    assert_eq!(table["input"]["invalid"], 0);
    assert_eq!(table["input"]["users"].as_u64(), Some(inputs.len() as u64));
    // The nightly rules' outputs are as many as the independently computed decisions
    // (tests/real_data.rs compares them one by one).
    let reference = std::fs::read_to_string(data.join("reference/whoop-nightly-decisions.jsonl"))
        .expect("reference");
    let decisions = reference.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    let nightly: u64 = table_counts(&table, "A")
        .iter()
        .filter(|(id, _)| NIGHTLY.contains(&id.as_str()))
        .map(|(_, c)| c.0 + c.1 + c.2)
        .sum();
    assert_eq!(nightly, decisions);
}

// -------------------------------------------------------------------------------- report

/// `vigil backtest --against rules-b --report` over the fixture, in `dir`: the HTML.
fn report(dir: &Path) -> String {
    let html = dir.join("report.html");
    ok(&vigil(
        dir,
        &[
            "backtest",
            "--rules",
            path(&root().join("rules")),
            "--against",
            path(&rules_b()),
            "--input",
            path(&fixture()),
            "--report",
            path(&html),
            "--report-users",
            "3",
        ],
    ));
    std::fs::read_to_string(html).expect("the report")
}

#[test]
fn the_report_is_one_self_contained_file_on_the_users_the_sets_disagree_on_most() {
    let dir = tempfile::tempdir().expect("tempdir");
    let html = report(dir.path());
    for outside in [
        "http://", "https://", "<script", "<link", "<img", "src=", "url(",
    ] {
        assert!(
            !html.contains(outside),
            "the report refers outside itself: {outside}"
        );
    }
    assert!(html.starts_with("<!DOCTYPE html>"));
    let users: Vec<&str> = html
        .split("<h3>")
        .skip(1)
        .filter_map(|s| s.split("</h3>").next())
        .collect();
    assert_eq!(users.len(), 3, "--report-users 3");
    // hrv_drop and hrv_recovered are plotted for each (no_data_48h has no metric).
    assert!(html.matches("<svg").count() >= 3 * 2, "plots");
    assert!(html.contains("hrv_drop: signal &lt; threshold"));
    assert!(html.contains("B threshold lower = baseline_mean - 0.75 * baseline_sd"));

    // Differences per user, recomputed from two vigil runs: the first user has the most.
    let run_a = outputs(&vigil_run(dir.path(), &root().join("rules"), &fixture()));
    let run_b = outputs(&vigil_run(dir.path(), &rules_b(), &fixture()));
    let mut keys: BTreeMap<(String, String, String, String), (i64, i64)> = BTreeMap::new();
    for o in &run_a {
        keys.entry(match_key(o)).or_default().0 += 1;
    }
    for o in &run_b {
        keys.entry(match_key(o)).or_default().1 += 1;
    }
    let mut differences: BTreeMap<String, u64> = BTreeMap::new();
    for ((user, ..), (a, b)) in keys {
        *differences.entry(user).or_default() += a.abs_diff(b);
    }
    let most = differences.values().max().copied().unwrap_or(0);
    assert!(most > 0);
    assert_eq!(differences[users[0]], most, "{differences:?}");
    assert!(html.contains(&format!(
        "<h3>{}</h3>\n<p>{most} outputs in one set and not the other.</p>",
        users[0]
    )));
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let has_chromium = ["chromium", "chromium-browser"].iter().any(|b| {
        Command::new("sh")
            .args(["-c", &format!("command -v {b}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let ci = std::env::var("CI").as_deref() == Ok("true");
    if !has_chromium && !ci {
        eprintln!("chromium not installed: skipping (scripts/render-report installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    report(dir.path());
    let png = dir.path().join("report.png");
    let out = Command::new(root().join("scripts/render-report"))
        .args([
            path(&dir.path().join("report.html")),
            path(&png),
            "1100",
            "1600",
        ])
        .output()
        .expect("scripts/render-report runs");
    assert!(
        out.status.success(),
        "render-report failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).expect("the screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // The IHDR chunk: width and height, big-endian, after the signature and chunk header.
    let size =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    assert_eq!((size(16), size(20)), (1100, 1600));
    assert!(
        bytes.len() > 50_000,
        "a page with a table and plots, not a blank one"
    );
}
