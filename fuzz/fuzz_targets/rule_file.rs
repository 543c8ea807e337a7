//! Any bytes as rule files, checked as `vigil check` does: compiled, and every problem
//! rendered with its snippet. A NUL byte separates files, so references between rules (and
//! their cycles) are reached too.

#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use vigil::rules::{compile_files, LoadFailure, SourceFile};

fuzz_target!(|data: &[u8]| {
    // `vigil check` reads files as UTF-8 text; other bytes never reach the compiler.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let sources: Vec<SourceFile> = text
        .split('\0')
        .enumerate()
        .map(|(i, text)| SourceFile {
            path: PathBuf::from(format!("rules/fuzz_{i}.toml")),
            text: text.to_string(),
        })
        .collect();
    match compile_files(&sources) {
        Ok(set) => {
            for rule in &set.rules {
                let _ = format!("{} v{} ({})", rule.id, rule.version, rule.kind.name());
            }
        }
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "a failure with no diagnostic");
            let failure = LoadFailure {
                diagnostics,
                sources,
            };
            let _ = failure.render(false);
        }
    }
});
