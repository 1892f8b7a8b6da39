//! The JSON Schema of the wire types, derived from the Rust types (`#[derive(JsonSchema)]`), so
//! that the OpenAPI document, `schema/event.schema.json` and the generated TypeScript of `ui/`
//! and `clients/js` (tests/generated.rs) cannot drift from what the hub actually writes.
//!
//! This module must never describe a type by hand: a schema written here would be a fifth copy
//! of the event.

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::event::Event;
use crate::filter::Filter;

/// Where the committed copy of [`event_json_schema`] lives, relative to the repository root.
pub const EVENT_SCHEMA_PATH: &str = "schema/event.schema.json";

/// The JSON Schema (draft 2020-12) of a stored event as the hub returns it: every field present
/// (`null` where absent), vocabularies as their wire names under `$defs`, timestamps as
/// `date-time` strings. It describes what the hub *writes* (the serialisation contract), which
/// is what readers of the API and the stream rely on.
///
/// Self-contained: `$ref`s point into its own `$defs`. To embed it in a larger document (the
/// OpenAPI `components/schemas`), move the `$defs` entries next to it and rewrite
/// `#/$defs/` to that location, or use [`openapi_components`], which does both.
pub fn event_json_schema() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Event>();
    schema.to_value()
}

/// The JSON Schema of the filter (as it is accepted: every field optional, unknown ones refused).
pub fn filter_json_schema() -> Value {
    let schema = SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<Filter>();
    schema.to_value()
}

/// The event, the filter and their vocabularies as OpenAPI 3.1 `components/schemas` entries:
/// `SightlineEvent`, `Filter`, `Source`, `EntityType`, `Status`, `Severity`, with `$ref`s to
/// `#/components/schemas/...`.
pub fn openapi_components() -> serde_json::Map<String, Value> {
    let mut components = serde_json::Map::new();
    for (name, mut schema) in [
        ("SightlineEvent", event_json_schema()),
        ("Filter", filter_json_schema()),
    ] {
        let object = schema.as_object_mut().expect("a root schema is an object");
        object.remove("$schema");
        if let Some(Value::Object(defs)) = object.remove("$defs") {
            components.extend(defs);
        }
        components.insert(name.to_string(), schema);
    }
    for schema in components.values_mut() {
        rewrite_refs(schema);
    }
    components
}

fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get_mut("$ref")
                && let Some(name) = target.strip_prefix("#/$defs/")
            {
                *target = format!("#/components/schemas/{name}");
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::{EntityType, Severity, Source, Status};
    use crate::timestamp::Timestamp;
    use crate::validate::parse_event;

    fn wire_names(schema: &Value, def: &str) -> Vec<String> {
        schema["$defs"][def]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{def} has no enum: {}", schema["$defs"][def]))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn vocabularies_are_their_wire_names() {
        let schema = event_json_schema();
        let expect = |all: Vec<&str>| all.into_iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            wire_names(&schema, "Source"),
            expect(Source::ALL.iter().map(|v| v.as_str()).collect())
        );
        assert_eq!(
            wire_names(&schema, "EntityType"),
            expect(EntityType::ALL.iter().map(|v| v.as_str()).collect())
        );
        assert_eq!(
            wire_names(&schema, "Status"),
            expect(Status::ALL.iter().map(|v| v.as_str()).collect())
        );
        assert_eq!(
            wire_names(&schema, "Severity"),
            expect(Severity::ALL.iter().map(|v| v.as_str()).collect())
        );
    }

    #[test]
    fn describes_every_serialised_field_and_nothing_else() {
        let schema = event_json_schema();
        let props = schema["properties"].as_object().unwrap();
        let e = parse_event(
            br#"{"source":"custom","source_event":"x","entity_type":"log","title":"t"}"#,
            Timestamp(1_700_000_000_000),
        )
        .unwrap();
        let mut stored = e.clone();
        stored.seq = 9;
        let written: Value = serde_json::from_str(&stored.to_json()).unwrap();
        let written = written.as_object().unwrap();
        let mut a: Vec<_> = props.keys().collect();
        let mut b: Vec<_> = written.keys().collect();
        a.sort();
        b.sort();
        assert_eq!(a, b, "schema properties vs serialised keys");
        assert!(!props.contains_key("sealed"), "the seal is not on the wire");
        assert_eq!(
            props["ts"],
            json!({"type": "string", "format": "date-time",
                   "description": "RFC 3339 UTC with milliseconds and `Z`, e.g. `2026-11-21T10:00:00.123Z`."})
        );
        // Optional fields are written as null, so every field is required (nullable where it
        // is an Option), in declaration order; `seq` too, as every returned event is stored.
        let required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(&required[..3], ["seq", "event_id", "ts"]);
        assert_eq!(required.len(), props.len());
        assert_eq!(props["seq"]["minimum"], 1);
        assert_eq!(props["run_id"]["type"], json!(["string", "null"]));
    }

    #[test]
    fn openapi_components_resolve_inside_components() {
        let components = openapi_components();
        for name in [
            "SightlineEvent",
            "Filter",
            "Source",
            "EntityType",
            "Status",
            "Severity",
        ] {
            assert!(components.contains_key(name), "{name} missing");
        }
        let text = Value::Object(components.clone()).to_string();
        assert!(!text.contains("#/$defs/"), "a ref still points at $defs");
        assert!(text.contains("#/components/schemas/Source"));
    }
}
