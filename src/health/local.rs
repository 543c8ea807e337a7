//! The checks that need no server: the configuration loads, the rules compile.

use std::path::{Path, PathBuf};

use super::{Check, Figure};
use crate::config::{Config, DEFAULT_CONFIG_FILE};
use crate::rules::load_rules;

/// The configuration with its layers (file, then `VIGIL_…` variables), and the check saying
/// whether it loaded. The configuration is `None` when it did not.
pub fn config(path: Option<&Path>) -> (Check, Option<Config>) {
    let shown = match path {
        Some(p) => p.display().to_string(),
        None if Path::new(DEFAULT_CONFIG_FILE).is_file() => DEFAULT_CONFIG_FILE.to_string(),
        None => String::new(),
    };
    let check = Check::start("config", shown);
    match Config::load(path) {
        Ok((config, Some(_))) => (check.ok("valid"), Some(config)),
        Ok((config, None)) => (
            check.ok("valid: no vigil.toml, built-in defaults and VIGIL_… variables"),
            Some(config),
        ),
        Err(e) => {
            let notes: Vec<String> = e.to_string().lines().map(str::to_string).collect();
            let detail = match notes.len() {
                1 => format!("invalid: {}", notes[0]),
                n => format!("invalid: {n} problems"),
            };
            let notes = if notes.len() == 1 { Vec::new() } else { notes };
            (check.failing(detail).with_notes(notes), None)
        }
    }
}

/// The rule files under `paths` compile (what `vigil check` reports, one note per problem).
pub fn rules(paths: &[PathBuf]) -> Check {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let check = Check::start("rules", shown.join(", "));
    match load_rules(paths) {
        Ok(set) => {
            let n = set.rules.len();
            let plural = if n == 1 { "" } else { "s" };
            check
                .ok(format!("valid ({n} rule{plural})"))
                .with_figure(Figure::count("rules", n as u64, ""))
        }
        Err(failure) => {
            let notes: Vec<String> = failure
                .diagnostics
                .iter()
                .map(|d| {
                    let source = failure
                        .sources
                        .iter()
                        .find(|s| s.path == d.file)
                        .map_or("", |s| s.text.as_str());
                    let (line, column) = d.line_col(source);
                    let help = d
                        .help
                        .as_deref()
                        .map_or_else(String::new, |h| format!(" (help: {h})"));
                    format!("{}:{line}:{column}: {}{help}", d.file.display(), d.message)
                })
                .collect();
            let n = notes.len();
            let plural = if n == 1 { "" } else { "s" };
            check
                .failing(format!(
                    "invalid: {n} problem{plural} (`vigil check` shows them in context)"
                ))
                .with_figure(Figure::count("problems", n as u64, ""))
                .with_notes(notes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Status;

    #[test]
    fn the_shipped_rules_are_valid() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let c = rules(&[root.join("rules")]);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        assert!(c.figure.as_ref().is_some_and(|f| f.value >= 8.0), "{c:?}");
    }

    #[test]
    fn every_rule_problem_is_a_note_with_its_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "[rule]\nid = \"x\"\nnonsense = 1\n").expect("write");
        let c = rules(&[file]);
        assert_eq!(c.status, Status::Failing);
        assert!(!c.notes.is_empty());
        assert!(
            c.notes.iter().all(|n| n.contains("bad.toml:")),
            "{:?}",
            c.notes
        );
    }

    #[test]
    fn a_missing_rule_directory_fails() {
        let c = rules(&[PathBuf::from("/nonexistent/vigil-rules")]);
        assert_eq!(c.status, Status::Failing);
        assert!(c.notes[0].contains("no such file or directory"), "{c:?}");
    }

    #[test]
    fn an_invalid_configuration_fails_and_yields_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vigil.toml");
        std::fs::write(&file, "[kafka]\nbrokerz = [\"x:1\"]\n").expect("write");
        let (c, config) = config(Some(&file));
        assert_eq!(c.status, Status::Failing);
        assert!(config.is_none());
        assert!(c.detail.contains("brokerz"), "{c:?}");
    }
}
