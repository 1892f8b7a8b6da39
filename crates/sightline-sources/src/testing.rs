//! Test-only: the one proptest strategy for the JSON a source's mapping takes from outside
//! (session-file lines, OpenTelemetry attributes), shared by the sources' property tests so each
//! names only the words its format uses. It must never be compiled outside tests.

use proptest::prelude::*;
use serde_json::{Value, json};

/// Any JSON value up to four levels deep, whose strings are often one of `words` and whose
/// object keys are often one of `keys` (and otherwise anything short), so that generated values
/// reach a mapping's branches instead of stopping at its first `match`.
pub(crate) fn json_value(
    words: &'static [&'static str],
    keys: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
        prop::sample::select(words).prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    4 => prop::sample::select(keys).prop_map(str::to_string),
                    1 => ".{0,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
