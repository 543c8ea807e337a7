//! The JSON Schemas Vigil publishes (draft 2020-12), generated from the Rust types.
//!
//! `vigil schema --out schemas` writes them; a test fails when the committed files drift.

use std::path::Path;

use crate::config::Config;
use crate::engine::output::output_schema;
use crate::event::{event_envelope_schema, event_union_schema, EventType};
use crate::rules::model::RuleFile;
use crate::rules::RuleKind;

/// Every schema file: (path relative to the schema folder, pretty JSON text).
pub fn all_schemas() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    for &ty in EventType::ALL {
        files.push((
            format!("events/{}.schema.json", ty.name()),
            pretty(&event_envelope_schema(ty)),
        ));
    }
    files.push(("event.schema.json".into(), pretty(&event_union_schema())));
    files.push((
        "alert.schema.json".into(),
        pretty(&output_schema(RuleKind::Alert)),
    ));
    files.push((
        "milestone.schema.json".into(),
        pretty(&output_schema(RuleKind::Milestone)),
    ));
    let mut rule = serde_json::to_value(schemars::schema_for!(RuleFile)).unwrap_or_default();
    rule["$id"] = "https://vigil.dev/schemas/rule.schema.json".into();
    rule["title"] = "Vigil rule file".into();
    files.push(("rule.schema.json".into(), pretty(&rule)));
    files.push(("config.schema.json".into(), pretty(&config_schema())));
    let mut backtest =
        serde_json::to_value(schemars::schema_for!(crate::backtest::Table)).unwrap_or_default();
    backtest["$id"] = "https://vigil.dev/schemas/backtest.schema.json".into();
    backtest["title"] = "Vigil backtest table (vigil backtest --json)".into();
    files.push(("backtest.schema.json".into(), pretty(&backtest)));
    files
}

/// The schema of `vigil.toml`, from the [`Config`] structs: their doc comments, defaults and
/// checks, for editors to complete and validate the file (read as JSON, as TOML tools do).
pub fn config_schema() -> serde_json::Value {
    let mut config = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
    config["$id"] = "https://vigil.dev/schemas/config.schema.json".into();
    config["title"] = "Vigil configuration (vigil.toml)".into();
    config
}

/// Writes every schema under `dir`.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut written = Vec::new();
    for (name, text) in all_schemas() {
        let path = dir.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        written.push(name);
    }
    Ok(written)
}

/// Names of schema files under `dir` that differ from the code (missing counts as differing).
pub fn drifted(dir: &Path) -> Vec<String> {
    all_schemas()
        .into_iter()
        .filter(|(name, text)| {
            std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(text.as_str())
        })
        .map(|(name, _)| name)
        .collect()
}
