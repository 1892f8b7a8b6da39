//! Keeps the files generated from the Rust event type in step with it: the JSON Schema
//! (`schema/event.schema.json`) and the TypeScript of the dashboard and the JS client
//! (`ui/src/lib/generated/event.ts`, `clients/js/src/generated/event.ts`).
//!
//! `SIGHTLINE_BLESS=1 cargo test -p sightline-schema --test generated` writes them; without it
//! the test fails when a committed file differs from what the types give. The TypeScript is
//! made from the JSON Schema only (not from the Rust types directly), so the schema is the one
//! contract every language reads. This generator must never guess: a schema construct it does
//! not know fails the test instead of turning into `any`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sightline_schema::{event_json_schema, filter_json_schema};

const BLESS: &str = "SIGHTLINE_BLESS";
const REGENERATE: &str =
    "run `SIGHTLINE_BLESS=1 cargo test -p sightline-schema --test generated` to regenerate";

/// The generated files, relative to the repository root, with their expected contents.
fn generated_files() -> Vec<(&'static str, String)> {
    let mut schema = serde_json::to_string_pretty(&event_json_schema()).unwrap();
    schema.push('\n');
    let typescript = typescript();
    vec![
        (sightline_schema::schema::EVENT_SCHEMA_PATH, schema),
        ("ui/src/lib/generated/event.ts", typescript.clone()),
        ("clients/js/src/generated/event.ts", typescript),
    ]
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn generated_files_are_current() {
    let root = repo_root();
    let bless = std::env::var_os(BLESS).is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (path, expected) in generated_files() {
        let full = root.join(path);
        let current = std::fs::read_to_string(&full).ok();
        if current.as_deref() == Some(expected.as_str()) {
            continue;
        }
        if bless {
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(&full, &expected).unwrap();
            eprintln!("wrote {path}");
        } else {
            stale.push(match current {
                None => format!("{path} is missing"),
                Some(_) => format!("{path} is stale"),
            });
        }
    }
    assert!(
        stale.is_empty(),
        "generated files differ from the Rust event type:\n  {}\n{REGENERATE}",
        stale.join("\n  ")
    );
}

/// The TypeScript of the vocabularies, the stored event and the filter.
fn typescript() -> String {
    let event = event_json_schema();
    let filter = filter_json_schema();
    let mut out = String::new();
    writeln!(
        out,
        "// Generated from the Rust types in crates/sightline-schema (via schema/event.schema.json)\n\
         // by crates/sightline-schema/tests/generated.rs. Do not edit: {REGENERATE}.\n"
    )
    .unwrap();
    let defs = event["$defs"]
        .as_object()
        .expect("the event schema has $defs");
    // The filter refers to the same vocabularies; one definition each.
    for (name, def) in filter["$defs"].as_object().into_iter().flatten() {
        assert_eq!(
            defs.get(name),
            Some(def),
            "{name} differs between event and filter"
        );
    }
    for (name, def) in defs {
        doc_comment(&mut out, def, "");
        writeln!(out, "export type {name} = {};\n", ts_type(def)).unwrap();
    }
    write_interface(&mut out, "SightlineEvent", &event);
    out.push('\n');
    write_interface(&mut out, "Filter", &filter);
    out
}

fn write_interface(out: &mut String, name: &str, schema: &Value) {
    assert_eq!(schema["type"], "object", "{name} is not an object");
    doc_comment(out, schema, "");
    writeln!(out, "export interface {name} {{").unwrap();
    let properties = schema["properties"].as_object().expect("properties");
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().unwrap())
        .collect();
    for (field, property) in ordered(properties, &required) {
        doc_comment(out, property, "  ");
        let optional = if required.contains(&field.as_str()) {
            ""
        } else {
            "?"
        };
        writeln!(out, "  {field}{optional}: {};", ts_type(property)).unwrap();
    }
    out.push_str("}\n");
}

/// Properties in the Rust declaration order. serde_json sorts `properties`, but schemars lists
/// `required` in declaration order: so the required fields come in that order, after the ones
/// that may be left out (alphabetical, as `properties` has them: every field of the filter).
fn ordered<'a>(
    properties: &'a Map<String, Value>,
    required: &[&str],
) -> Vec<(&'a String, &'a Value)> {
    let mut fields: Vec<_> = properties.iter().collect();
    fields.sort_by_key(|(name, _)| required.iter().position(|r| r == name).map_or(0, |i| i + 1));
    fields
}

fn doc_comment(out: &mut String, schema: &Value, indent: &str) {
    if let Some(text) = schema.get("description").and_then(Value::as_str) {
        let text = text.replace('\n', " ").replace("*/", "*\\/");
        writeln!(out, "{indent}/** {text} */").unwrap();
    }
}

/// One schema as a TypeScript type.
fn ts_type(schema: &Value) -> String {
    if schema == &Value::Bool(true) {
        return "unknown".into();
    }
    let object = schema
        .as_object()
        .unwrap_or_else(|| panic!("unsupported schema {schema}"));
    if let Some(target) = object.get("$ref").and_then(Value::as_str) {
        return target
            .strip_prefix("#/$defs/")
            .unwrap_or_else(|| panic!("unsupported $ref {target}"))
            .to_string();
    }
    if let Some(variants) = object.get("anyOf").or_else(|| object.get("oneOf")) {
        return union(variants.as_array().unwrap().iter().map(ts_type));
    }
    if let Some(values) = object.get("enum") {
        return union(values.as_array().unwrap().iter().map(literal));
    }
    if let Some(value) = object.get("const") {
        return literal(value);
    }
    let types: Vec<&str> = match object.get("type") {
        Some(Value::String(one)) => vec![one.as_str()],
        Some(Value::Array(many)) => many.iter().map(|t| t.as_str().unwrap()).collect(),
        _ => panic!("schema without a type: {schema}"),
    };
    union(types.into_iter().map(|t| match t {
        "string" => "string".to_string(),
        "integer" | "number" => "number".to_string(),
        "boolean" => "boolean".to_string(),
        "null" => "null".to_string(),
        "array" => {
            let item = ts_type(object.get("items").expect("an array without items"));
            if item.contains(' ') {
                format!("({item})[]")
            } else {
                format!("{item}[]")
            }
        }
        "object" => {
            assert!(
                !object.contains_key("properties"),
                "nested object types are not supported: {schema}"
            );
            match object.get("additionalProperties") {
                None | Some(Value::Bool(true)) => "Record<string, unknown>".to_string(),
                Some(values) => format!("Record<string, {}>", ts_type(values)),
            }
        }
        other => panic!("unsupported type {other}"),
    }))
}

fn union(parts: impl Iterator<Item = String>) -> String {
    parts.collect::<Vec<_>>().join(" | ")
}

fn literal(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Number(_) | Value::Bool(_) | Value::Null => value.to_string(),
        other => panic!("unsupported literal {other}"),
    }
}

#[test]
fn maps_the_schema_constructs_it_meets() {
    let cases = [
        (
            serde_json::json!({"type": ["string", "null"]}),
            "string | null",
        ),
        (
            serde_json::json!({"type": "integer", "format": "uint64"}),
            "number",
        ),
        (
            serde_json::json!({"anyOf": [{"$ref": "#/$defs/Status"}, {"type": "null"}]}),
            "Status | null",
        ),
        (
            serde_json::json!({"type": ["object", "null"], "additionalProperties": {"type": "number"}}),
            "Record<string, number> | null",
        ),
        (
            serde_json::json!({"type": "object", "additionalProperties": true}),
            "Record<string, unknown>",
        ),
        (
            serde_json::json!({"type": "array", "items": {"enum": ["a", "it's"]}}),
            r"('a' | 'it\'s')[]",
        ),
    ];
    for (schema, expected) in cases {
        assert_eq!(ts_type(&schema), expected, "{schema}");
    }
}

#[test]
fn event_interface_reads_like_the_wire() {
    let ts = typescript();
    for line in [
        "export type Source = 'claude' | 'opencode' | 'docker' | 'workflow' | 'tmux' | 'python' | 'process' | 'otlp' | 'custom' | 'codex' | 'gemini';",
        "  seq: number;",
        "  run_id: string | null;",
        "  status: Status | null;",
        "  metrics: Record<string, number> | null;",
        "  payload: Record<string, unknown>;",
        "  tags: string[];",
        "  sources?: Source[];",
    ] {
        assert!(ts.lines().any(|l| l == line), "missing `{line}` in:\n{ts}");
    }
    // Declaration order, not alphabetical: seq, event_id, ts, source, ...
    let at = |needle: &str| ts.find(needle).unwrap_or_else(|| panic!("{needle}"));
    assert!(at("  seq:") < at("  event_id:") && at("  event_id:") < at("  ts:"));
    assert!(at("  title:") < at("  summary:") && at("  tags:") < at("  payload:"));
}
