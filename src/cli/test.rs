//! `vigil test`: run the rule tests beside the rules.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use crate::rule_tests::run_test_file;
use crate::rules::load::TEST_SUFFIX;
use crate::rules::{find_test_files, load_rules};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Rule directories (rules and their `*.test.toml` files; default: rules/).
    paths: Vec<PathBuf>,
}

pub fn run(args: TestArgs) -> anyhow::Result<u8> {
    let paths = super::rule_paths(args.paths);
    let rules = match load_rules(&paths) {
        Ok(set) => Arc::new(set),
        Err(failure) => {
            eprint!("{}", failure.render(super::color()));
            return Ok(super::EXIT_INVALID_RULES);
        }
    };
    let files = find_test_files(&paths).map_err(|d| anyhow::anyhow!("{d}"))?;
    if files.is_empty() {
        // "0 passed, 0 failed" and exit 4 would leave the reason to guess: a wrong folder, or
        // tests not named `*.test.toml`.
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "error: no rule tests (*{TEST_SUFFIX}) found in {}",
            shown.join(", ")
        );
        return Ok(super::EXIT_TESTS_FAILED);
    }
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        for result in run_test_file(file, &rules) {
            match &result.failure {
                None => {
                    passed += 1;
                    outln!("✓ {}: {}", file.display(), result.name)?;
                }
                Some(failure) => {
                    failed += 1;
                    outln!("✗ {}: {}", file.display(), result.name)?;
                    for line in failure.lines() {
                        outln!("    {line}")?;
                    }
                }
            }
        }
    }
    outln!("{passed} passed, {failed} failed, in {} files", files.len())?;
    Ok(if failed == 0 && passed > 0 {
        0
    } else {
        super::EXIT_TESTS_FAILED
    })
}
