//! `vigil rules diff OLD NEW`, run as a built binary over the rule sets in
//! `tests/fixtures/rules/diff/`: what it prints, and its exit codes (0, 3 invalid rules as
//! `vigil check`, 8 a changed rule whose version was not bumped).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules")
}

fn vigil(args: &[&Path], extra: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.arg("rules").arg("diff").args(args).args(extra);
    command.env("NO_COLOR", "1");
    let out = command.output().expect("vigil runs");
    eprintln!(
        "{}\nstdout:\n{}stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn prints_added_removed_and_bumped_rules_with_what_changed() {
    let dir = fixtures().join("diff");
    let out = vigil(&[&dir.join("v1"), &dir.join("v2")], &[]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected = [
        "~ hr_high v1 → v2",
        "    fire.when: heart_rate >= 150 → heart_rate >= 170",
        "~ hrv_low v1 → v2",
        "    stats.signal.window: last 7 nights → last 14 nights",
        "    + tiers[1]: critical when signal < 3",
        "- old_absence v3 removed",
        "= unchanged: short_sleep",
        "1 added, 1 removed, 2 changed, 1 unchanged",
    ];
    for line in expected {
        assert!(lines.contains(&line), "missing {line:?} in\n{stdout}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("+ spo2_low v1 added (milestone) — ")),
        "{stdout}"
    );
}

#[test]
fn comments_spacing_key_order_and_parentheses_are_no_change() {
    let dir = fixtures().join("diff");
    let out = vigil(&[&dir.join("v1"), &dir.join("cosmetic")], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("0 added, 0 removed, 0 changed, 4 unchanged"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn a_changed_rule_that_kept_its_version_is_refused_with_exit_8() {
    let dir = fixtures().join("diff");
    let out = vigil(&[&dir.join("v1"), &dir.join("unbumped")], &[]);
    assert_eq!(out.status.code(), Some(8));
    assert!(text(&out.stdout).contains("✗ hr_high v1 → v1: changed without a version bump"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("hr_high (version 1; bump it to 2)"),
        "{stderr}"
    );
}

#[test]
fn json_lists_every_rule_and_the_unbumped_ones() {
    let dir = fixtures().join("diff");
    let out = vigil(&[&dir.join("v1"), &dir.join("unbumped")], &["--json"]);
    assert_eq!(out.status.code(), Some(8));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        doc["summary"]["version_not_bumped"],
        serde_json::json!(["hr_high"])
    );
    assert_eq!(doc["rules"].as_array().map(Vec::len), Some(4));
    let hr = &doc["rules"][0];
    assert_eq!(hr["id"], "hr_high");
    assert_eq!(hr["change"], "changed");
    assert_eq!(hr["changes"][0]["aspect"], "fire.when");
    assert_eq!(hr["changes"][0]["new"], "heart_rate >= 170");
}

#[test]
fn invalid_rules_exit_3_with_the_diagnostics_of_check() {
    let invalid = fixtures().join("invalid");
    let out = vigil(&[&fixtures().join("diff/v1"), &invalid], &[]);
    assert_eq!(out.status.code(), Some(3));
    assert!(out.stdout.is_empty());
    let check = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("check")
        .arg(&invalid)
        .env("NO_COLOR", "1")
        .output()
        .expect("vigil runs");
    assert_eq!(check.status.code(), Some(3));
    // Everything but check's last line, the count.
    let diagnostics = text(&check.stderr);
    let body = diagnostics
        .trim_end()
        .rsplit_once('\n')
        .map_or("", |(body, _)| body);
    assert!(body.contains("error:"), "{diagnostics}");
    assert!(
        text(&out.stderr).contains(body),
        "the diff's report differs from check's"
    );
}
