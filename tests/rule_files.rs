//! Golden tests of the rule language: the shipped pack's rule tests, construct fixtures with
//! their rule tests, and invalid rule files that declare the diagnostics they must produce.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vigil::rule_tests::run_test_file;
use vigil::rules::{compile_files, find_rule_files, find_test_files, load_rules, SourceFile};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run_rule_tests(dir: &Path) -> usize {
    let rules = Arc::new(
        load_rules(&[dir.to_path_buf()]).unwrap_or_else(|f| panic!("{}", f.render(false))),
    );
    let files = find_test_files(&[dir.to_path_buf()]).unwrap();
    let mut failures = Vec::new();
    let mut count = 0;
    for file in &files {
        for result in run_test_file(file, &rules) {
            count += 1;
            if let Some(failure) = result.failure {
                failures.push(format!("{}: {}\n{failure}", file.display(), result.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rule tests failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    count
}

#[test]
fn shipped_rule_pack_passes_its_rule_tests() {
    let dir = root().join("rules");
    let count = run_rule_tests(&dir);
    let rules = find_rule_files(std::slice::from_ref(&dir)).unwrap();
    let tests = find_test_files(&[dir]).unwrap();
    assert_eq!(rules.len(), 8, "the pack has eight rules");
    for rule in &rules {
        let expected = rule.with_extension("test.toml");
        assert!(
            tests.contains(&expected),
            "{} has no rule tests beside it",
            rule.display()
        );
    }
    assert!(count >= 8 * 3, "only {count} rule tests");
}

#[test]
fn construct_fixtures_pass_their_rule_tests() {
    let count = run_rule_tests(&root().join("tests/fixtures/rules/constructs"));
    assert!(count >= 5);
}

#[test]
fn invalid_rules_report_the_declared_diagnostics() {
    let dir = root().join("tests/fixtures/rules/invalid");
    let files = find_rule_files(&[dir]).unwrap();
    let sources: Vec<SourceFile> = files
        .iter()
        .map(|p| SourceFile {
            path: p.clone(),
            text: std::fs::read_to_string(p).unwrap(),
        })
        .collect();
    let diagnostics = compile_files(&sources).expect_err("invalid rules must not compile");
    for source in &sources {
        let expected: Vec<&str> = source
            .text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} declares no expected diagnostic",
            source.path.display()
        );
        let actual: Vec<String> = diagnostics
            .iter()
            .filter(|d| d.file == source.path)
            .map(|d| {
                let (line, col) = d.line_col(&source.text);
                format!("{line}:{col}: {}", d.message)
            })
            .collect();
        for want in &expected {
            assert!(
                actual
                    .iter()
                    .any(|a| a.starts_with(want.split(": ").next().unwrap())
                        && a.contains(want.split_once(": ").unwrap().1)),
                "{}: expected `{want}`, got {actual:#?}",
                source.path.display()
            );
        }
        assert_eq!(
            actual.len(),
            expected.len(),
            "{}: unexpected diagnostics {actual:#?}",
            source.path.display()
        );
    }
}
