//! The committed JSON Schemas must match the Rust types they are generated from, and every
//! schema must compile as draft 2020-12. The configuration's schema must agree with the loader
//! on the shipped example and on every `vigil.toml` fixture.

use std::path::{Path, PathBuf};

use vigil::config::Config;

#[test]
fn committed_schemas_match_the_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let drifted = vigil::schema::drifted(&dir);
    assert!(
        drifted.is_empty(),
        "schemas out of date: {drifted:?}; run `cargo run -- schema --out schemas`"
    );
}

#[test]
fn every_schema_compiles_and_outputs_validate() {
    for (name, text) in vigil::schema::all_schemas() {
        let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{name}"
        );
        if name.starts_with("events/")
            || name == "rule.schema.json"
            || name == "config.schema.json"
            || name == "backtest.schema.json"
        {
            jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
        }
    }
}

fn config_validator() -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&vigil::schema::config_schema())
        .expect("the configuration schema compiles")
}

/// A TOML file as the JSON an editor's TOML support validates.
fn toml_as_json(path: &Path) -> (String, serde_json::Value) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let value: toml::Value =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = serde_json::to_value(value).expect("TOML as JSON");
    (text, json)
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_example_and_every_fixture_validate_against_the_config_schema() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("vigil.example.toml")];
    files.extend(toml_files(&root.join("tests/fixtures/config")));
    files.extend(
        toml_files(&root.join("fuzz/seeds/config"))
            .into_iter()
            .filter(|p| !p.ends_with("unknown_key.toml")),
    );
    assert!(files.len() >= 7, "{files:?}");
    let validator = config_validator();
    for path in files {
        let (text, json) = toml_as_json(&path);
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:#?}", path.display());
        let mut config = Config::default();
        config
            .apply_file(&path, &text)
            .and_then(|()| config.validate())
            .unwrap_or_else(|e| panic!("the loader refuses {}: {e}", path.display()));
    }
}

#[test]
fn the_invalid_fixtures_are_refused_by_the_schema_and_the_loader() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = toml_files(&root.join("tests/fixtures/config/invalid"));
    files.push(root.join("fuzz/seeds/config/unknown_key.toml"));
    let validator = config_validator();
    for path in files {
        let (text, json) = toml_as_json(&path);
        assert!(
            !validator.is_valid(&json),
            "the schema accepts {}",
            path.display()
        );
        let e = Config::default()
            .apply_file(&path, &text)
            .expect_err("the loader refuses it");
        // One problem per unknown key: the file's other lines are keys in known tables.
        let unknown = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with('[') && l.contains(" = "))
            .count();
        assert_eq!(
            e.to_string().lines().count(),
            unknown,
            "{}: {e}",
            path.display()
        );
    }
}

/// Every table of the configuration, `[kafka.librdkafka]` and `[lateness.by-type]` aside
/// (their keys are librdkafka's and event types), refuses a key it does not have, in the
/// schema as in the loader.
#[test]
fn an_unknown_key_in_any_table_is_refused() {
    fn tables(value: &serde_json::Value, at: &[String], out: &mut Vec<Vec<String>>) {
        out.push(at.to_vec());
        for (key, inner) in value.as_object().into_iter().flatten() {
            if inner.is_object() && key != "librdkafka" && key != "by-type" {
                let mut path = at.to_vec();
                path.push(key.clone());
                tables(inner, &path, out);
            }
        }
    }
    let defaults = serde_json::to_value(Config::default()).expect("defaults as JSON");
    let mut found = Vec::new();
    tables(&defaults, &[], &mut found);
    assert_eq!(found.len(), 16, "{found:?}");
    let validator = config_validator();
    for path in found {
        let mut json = serde_json::json!({});
        let mut table = &mut json;
        for key in &path {
            table = &mut table[key.as_str()];
            *table = serde_json::json!({});
        }
        table["no-such-key"] = 1.into();
        assert!(!validator.is_valid(&json), "the schema accepts {json}");
        let text = if path.is_empty() {
            "no-such-key = 1\n".to_string()
        } else {
            format!("[{}]\nno-such-key = 1\n", path.join("."))
        };
        let e = Config::default()
            .apply_file(Path::new("vigil.toml"), &text)
            .expect_err("the loader refuses it");
        assert!(e.to_string().contains("unknown field `no-such-key`"), "{e}");
    }
}

/// The schema is no stricter than the loader (the fixtures above), and catches in the editor
/// the mistakes people make most.
#[test]
fn common_mistakes_are_refused_by_the_schema_and_the_loader() {
    let validator = config_validator();
    for text in [
        "[kafka]\nrequest-timeout = \"10\"\n",
        "[kafka]\nrequest-timeout = 10\n",
        "[kafka]\nbrokers = []\n",
        "[kafka]\nbrokers = \"127.0.0.1:9092\"\n",
        "[kafka.librdkafka]\n\"client.id\" = \"x\"\n",
        "[kafka.librdkafka]\n\"linger.ms\" = 5\n",
        "[kafka.topics.alerts]\nretention = \"3M\"\n",
        "[kafka.topics.alerts]\nretention = \"never\"\n",
        "[kafka.topics.alerts]\npartitions = 0\n",
        "[kafka.topics.alerts]\ncleanup-policy = \"forever\"\n",
        "[kafka.topics.alerts]\nname = \"my alerts\"\n",
        "[kafka.streaming]\nthreads = 0\n",
        "[kafka.streaming]\ncommit-interval = \"20 ms\"\n",
        "[kafka.streaming]\npipelined-transactions = \"yes\"\n",
        "[history]\nurl = \"mysql://db/vigil\"\n",
        "[redis]\nurl = \"http://cache:6379\"\n",
        "[http]\nlisten = 9464\n",
    ] {
        let value: toml::Value = toml::from_str(text).expect("TOML");
        let json = serde_json::to_value(value).expect("JSON");
        assert!(!validator.is_valid(&json), "the schema accepts {text:?}");
        let refused = Config::default().apply_file(Path::new("vigil.toml"), text);
        assert!(refused.is_err(), "the loader accepts {text:?}");
    }
}

/// `[lateness.by-type]` takes event types as keys and durations as values, in the schema as in
/// the loader.
#[test]
fn lateness_by_type_takes_event_types_only() {
    let validator = config_validator();
    let good =
        serde_json::json!({"lateness": {"by-type": {"heart_rate": "0ms", "sleep_episode": "3d"}}});
    assert!(validator.is_valid(&good), "the schema refuses {good}");
    for bad in [
        serde_json::json!({"lateness": {"by-type": {"heartrate": "1h"}}}),
        serde_json::json!({"lateness": {"by-type": {"heart_rate": "1 hour"}}}),
    ] {
        assert!(!validator.is_valid(&bad), "the schema accepts {bad}");
    }
}
