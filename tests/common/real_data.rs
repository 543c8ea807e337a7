//! The real wearable exports beside the project (`VIGIL_REAL_DATA`): where they are, and the
//! WHOOP cycle exports among them.

#![allow(dead_code)] // each test file uses some of these

use std::path::{Path, PathBuf};

/// The data folder; `None` (the test says so and passes) when `VIGIL_REAL_DATA` is not set,
/// except under `CI=true`, where a missing folder fails the test.
pub fn data_dir() -> Option<PathBuf> {
    match std::env::var_os("VIGIL_REAL_DATA") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but VIGIL_REAL_DATA is not set: real-data tests cannot be skipped"
            );
            eprintln!("VIGIL_REAL_DATA not set: skipping the real-data test");
            None
        }
    }
}

/// The WHOOP cycle exports under `dir`, each with the user name the reference uses (its path
/// under the folder), sorted.
pub fn whoop_exports(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for folder in std::fs::read_dir(dir.join("whoop")).expect("whoop folder") {
        let folder = folder.expect("entry").path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).expect("folder") {
            let path = file.expect("entry").path();
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            if name.ends_with(".csv")
                && (name.contains("physiological_cycles") || name.contains("zyklen"))
            {
                let user = format!(
                    "whoop/{}/{}",
                    folder.file_name().unwrap_or_default().to_string_lossy(),
                    name
                );
                found.push((user, path));
            }
        }
    }
    found.sort();
    assert!(
        found.len() >= 10,
        "expected the 10 WHOOP exports, found {}",
        found.len()
    );
    found
}
