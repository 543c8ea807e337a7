//! The committed JSON Schemas must match the Rust types they are generated from, and every
//! schema must compile as draft 2020-12.

use std::path::Path;

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
        if name.starts_with("events/") || name == "rule.schema.json" {
            jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
        }
    }
}
