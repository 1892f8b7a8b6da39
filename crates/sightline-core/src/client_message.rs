//! The messages a live client sends over the WebSocket protocol (docs/PROTOCOL.md), as one
//! type and one parser. The server's socket loop acts on them; the parser lives here, without
//! any transport, so it is the same code the fuzz target (`fuzz/fuzz_targets/ws_message.rs`)
//! and the property tests drive. It must never panic on any text, and never read more of a
//! message than serde's own bounded parse does (the socket caps the message size before this).

use serde::Deserialize;
use serde_json::Value;
use sightline_schema::Filter;

/// One message from a client. Unknown `type`s and missing fields are refused by [`parse`].
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// A token, for a socket that connected without one.
    Auth { token: String },
    /// A subscription with its own filter and cursor; `id` is the client's name for it.
    Subscribe {
        id: Value,
        #[serde(default)]
        filter: Option<Box<Filter>>,
        #[serde(default)]
        since: Option<u64>,
        #[serde(default)]
        epoch: Option<String>,
    },
    /// Ends the subscription the client named `id`.
    Unsubscribe { id: Value },
    /// Events to ingest (a JSON array or one object), acknowledged after commit.
    Publish {
        #[serde(default)]
        id: Option<Value>,
        events: Value,
    },
    /// Updates of one workflow execution (the workflow source's mapping).
    WorkflowUpdate {
        #[serde(default)]
        id: Option<Value>,
        workflow_id: String,
        updates: Value,
    },
    /// Answered with `pong`.
    Ping {
        #[serde(default)]
        id: Option<Value>,
    },
    /// Clients may acknowledge what they processed; the hub keeps no per-client state, so
    /// this is accepted and ignored (resume uses the client's own last seq).
    Ack {},
}

/// The `id` of a message that may not parse as a whole (so a refusal can still name it).
#[derive(Deserialize)]
struct IdOnly {
    id: Option<Value>,
}

/// Parses one text message. The error says what was wrong and where to read the protocol.
pub fn parse(text: &str) -> Result<ClientMessage, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("{e}; see docs/PROTOCOL.md for the message types"))
}

/// The `id` of a message, when it is JSON with one, whatever else it holds.
pub fn message_id(text: &str) -> Option<Value> {
    serde_json::from_str::<IdOnly>(text).ok().and_then(|m| m.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_and_a_bad_one_says_where_to_look() {
        for (text, want) in [
            (r#"{"type":"auth","token":"t"}"#, "Auth"),
            (
                r#"{"type":"subscribe","id":1,"filter":{"sources":["claude"]},"since":3}"#,
                "Subscribe",
            ),
            (r#"{"type":"unsubscribe","id":"a"}"#, "Unsubscribe"),
            (r#"{"type":"publish","events":[]}"#, "Publish"),
            (
                r#"{"type":"workflow_update","workflow_id":"w","updates":[]}"#,
                "WorkflowUpdate",
            ),
            (r#"{"type":"ping"}"#, "Ping"),
            (r#"{"type":"ack"}"#, "Ack"),
        ] {
            let m = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(format!("{m:?}").starts_with(want), "{text} parsed as {m:?}");
        }
        for bad in [
            "",
            "{}",
            r#"{"type":"subscribe"}"#,
            r#"{"type":"nope"}"#,
            "[1]",
            "\u{0}",
        ] {
            let e = parse(bad).expect_err(bad);
            assert!(e.contains("docs/PROTOCOL.md"), "{bad}: {e}");
        }
        assert_eq!(
            message_id(r#"{"type":"nope","id":7}"#),
            Some(Value::from(7))
        );
        assert_eq!(message_id("not json"), None);
    }

    proptest::proptest! {
        /// Any text: never a panic, and a refusal always explains itself.
        #[test]
        fn any_text_parses_or_is_refused_with_a_reason(text in "\\PC{0,200}") {
            if let Err(e) = parse(&text) {
                proptest::prop_assert!(!e.is_empty());
            }
            let _ = message_id(&text);
        }

        /// A subscribe message with any filter text in any script keeps that text.
        #[test]
        fn a_subscribe_keeps_its_filter_text(q in "\\PC{0,80}", id in proptest::num::i64::ANY) {
            let text = serde_json::json!({"type": "subscribe", "id": id, "filter": {"q": q}}).to_string();
            match parse(&text) {
                Ok(ClientMessage::Subscribe { id: got, filter, .. }) => {
                    proptest::prop_assert_eq!(got, Value::from(id));
                    let f = filter.expect("a filter");
                    proptest::prop_assert_eq!(f.q.as_deref().unwrap_or(""), q.as_str());
                }
                Ok(other) => proptest::prop_assert!(false, "parsed as {:?}", other),
                // A filter may refuse text it cannot use (say, too long): with a reason.
                Err(e) => proptest::prop_assert!(e.contains("PROTOCOL")),
            }
        }
    }
}
