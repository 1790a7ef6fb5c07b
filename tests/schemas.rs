//! host.json, local.settings.json and every function.json are valid against the public schemas
//! (SchemaStore's, vendored in tests/schemas/).

use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A validator for one of the vendored schemas.
///
/// SchemaStore's function.json schema declares draft-04 but uses `const`, a draft-06 keyword; under
/// draft-04 rules `const` is ignored, its SQL binding branches then accept any binding, and every
/// binding fails the schema's `oneOf`. Draft-07 rules give the meaning its authors intended.
fn validator(schema: &str) -> jsonschema::Validator {
    let schema = read(&root().join("tests/schemas").join(schema));
    jsonschema::options().with_draft(jsonschema::Draft::Draft7).build(&schema).unwrap()
}

fn check(schema: &str, file: &Path) {
    let validator = validator(schema);
    let instance = read(file);
    let errors: Vec<String> =
        validator.iter_errors(&instance).map(|e| format!("{} at {}", e, e.instance_path)).collect();
    assert!(errors.is_empty(), "{} is not valid:\n{}", file.display(), errors.join("\n"));
}

#[test]
fn host_json_is_valid() {
    check("host.json", &root().join("host.json"));
}

#[test]
fn local_settings_json_is_valid() {
    check("local.settings.json", &root().join("local.settings.json"));
}

#[test]
fn every_function_json_is_valid() {
    let mut n = 0;
    for entry in std::fs::read_dir(root().join("functions")).unwrap() {
        check("function.json", &entry.unwrap().path().join("function.json"));
        n += 1;
    }
    assert_eq!(n, 12);
}

#[test]
fn the_schemas_catch_mistakes() {
    let validator = validator("function.json");
    let bad = serde_json::json!({"bindings": [{"type": "queueTrigger", "direction": "sideways", "name": "m", "queueName": "q"}]});
    assert!(!validator.is_valid(&bad));
    let take_as_number = serde_json::json!({"bindings": [{"type": "table", "direction": "in", "name": "t", "tableName": "x", "take": 5}]});
    assert!(!validator.is_valid(&take_as_number));
}
