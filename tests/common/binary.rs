//! Running the built `vigil` binary in tests: paths of the project's fixtures, and the command
//! run without the caller's `VIGIL_…` variables (a developer's `VIGIL_DATABASE_URL` must not
//! redirect it).

#![allow(dead_code)] // each test file uses some of these

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// The README's fixture: seven simulated users over 90 days.
pub fn fixture() -> PathBuf {
    root().join("tests/fixtures/simulated-7-users.jsonl")
}

/// A copy of the shipped pack with `hrv_drop` v2 at 0.75 SD: the candidate set.
pub fn rules_b() -> PathBuf {
    root().join("tests/fixtures/backtest/rules-b")
}

/// `vigil ARGS` in `dir`; fails the test if it panicked.
pub fn vigil(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_vigil"));
    command.current_dir(dir).args(args).env("NO_COLOR", "1");
    for (var, _) in std::env::vars() {
        if var.starts_with("VIGIL_") {
            command.env_remove(var);
        }
    }
    let out = command.output().expect("vigil runs");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("panicked"),
        "vigil {args:?} panicked: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The stdout of a run that must have succeeded.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
