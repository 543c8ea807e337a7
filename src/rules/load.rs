//! Finding and reading rule files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::check::{compile_files, SourceFile};
use super::compiled::RuleSet;
use super::diagnostic::Diagnostic;

/// Rule tests live beside rules with this suffix; they are not rules.
pub const TEST_SUFFIX: &str = ".test.toml";

/// Rule files under `paths` (files as given; directories searched recursively for `*.toml`,
/// skipping rule tests), sorted so every run sees them in the same order.
pub fn find_rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    find_files(paths, |name| {
        name.ends_with(".toml") && !name.ends_with(TEST_SUFFIX)
    })
}

/// Rule test files (`*.test.toml`) under `paths`.
pub fn find_test_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    find_files(paths, |name| name.ends_with(TEST_SUFFIX))
}

fn find_files(
    paths: &[PathBuf],
    wanted: impl Fn(&str) -> bool + Copy,
) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut found, wanted)?;
        } else if path.exists() {
            found.push(path.clone());
        } else {
            return Err(Diagnostic::new(path, 0..0, "no such file or directory"));
        }
    }
    found.sort();
    found.dedup();
    Ok(found)
}

fn walk(
    dir: &Path,
    found: &mut Vec<PathBuf>,
    wanted: impl Fn(&str) -> bool + Copy,
) -> Result<(), Diagnostic> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Diagnostic::new(dir, 0..0, format!("cannot read directory: {e}")))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Diagnostic::new(dir, 0..0, e.to_string()))?
            .path();
        if path.is_dir() {
            walk(&path, found, wanted)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(wanted)
        {
            found.push(path);
        }
    }
    Ok(())
}

/// Reads files; a file that cannot be read becomes a diagnostic.
pub fn read_sources(files: &[PathBuf]) -> Result<Vec<SourceFile>, Vec<Diagnostic>> {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match std::fs::read_to_string(path) {
            Ok(text) => sources.push(SourceFile {
                path: path.clone(),
                text,
            }),
            Err(e) => errors.push(Diagnostic::new(path, 0..0, format!("cannot read: {e}"))),
        }
    }
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(errors)
    }
}

/// Everything `vigil check` reports: the problems, with the sources to render them against.
#[derive(Debug)]
pub struct LoadFailure {
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Vec<SourceFile>,
}

impl LoadFailure {
    /// Every problem, rendered with its snippet.
    pub fn render(&self, color: bool) -> String {
        // By path once, not a search per problem: a folder of many broken files has as many
        // problems as files, and comparing paths is slow (component by component).
        let texts: HashMap<&Path, &str> = self
            .sources
            .iter()
            .rev() // the first of two sources with one path wins, as a search would find it
            .map(|s| (s.path.as_path(), s.text.as_str()))
            .collect();
        let mut out = String::new();
        for d in &self.diagnostics {
            let text = texts.get(d.file.as_path()).copied().unwrap_or("");
            out.push_str(&d.render(text, color));
            out.push('\n');
        }
        out
    }
}

/// Finds, reads and compiles the rules under `paths`.
pub fn load_rules(paths: &[PathBuf]) -> Result<RuleSet, LoadFailure> {
    let files = find_rule_files(paths).map_err(|d| LoadFailure {
        diagnostics: vec![d],
        sources: vec![],
    })?;
    if files.is_empty() {
        let path = paths.first().cloned().unwrap_or_default();
        return Err(LoadFailure {
            diagnostics: vec![Diagnostic::new(&path, 0..0, "no rule files (*.toml) found")],
            sources: vec![],
        });
    }
    let sources = read_sources(&files).map_err(|diagnostics| LoadFailure {
        diagnostics,
        sources: vec![],
    })?;
    compile_files(&sources).map_err(|diagnostics| LoadFailure {
        diagnostics,
        sources,
    })
}
