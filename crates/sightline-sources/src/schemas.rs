//! JSON Schemas of what the endpoint sources take and answer, for the OpenAPI document the
//! server derives from their route descriptions.
//!
//! Only descriptions: nothing here validates a request (each source's decode does), and nothing
//! here may drift from what the sources really accept without a test noticing.

use serde_json::{Value, json};

/// Any JSON object (a hook payload, an OTLP JSON request: their shapes belong to their makers).
pub fn any_object() -> Value {
    json!({"type": "object"})
}

/// One JSON value or an array of them.
pub fn any_json() -> Value {
    json!({"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]})
}

/// Newline-delimited JSON.
pub fn ndjson() -> Value {
    json!({"type": "string", "description": "one JSON object per line"})
}

/// A protobuf body.
pub fn binary() -> Value {
    json!({"type": "string", "format": "binary"})
}

/// What a committed batch got.
pub fn accepted() -> Value {
    json!({"$ref": "#/components/schemas/Accepted"})
}

/// `{}` for a single hook payload; counts and refused lines for a spooled batch.
pub fn hook_reply() -> Value {
    json!({"type": "object", "properties": {
        "accepted": {"type": "integer"},
        "duplicates": {"type": "integer"},
        "refused": {"type": "array", "items": {"$ref": "#/components/schemas/LineError"}}
    }})
}

/// OTLP's Export*ServiceResponse, with `partialSuccess` when records were rejected.
pub fn otlp_reply() -> Value {
    json!({"type": "object", "properties": {"partialSuccess": {"type": "object", "properties": {
        "rejectedLogRecords": {"type": "integer"},
        "rejectedSpans": {"type": "integer"},
        "rejectedDataPoints": {"type": "integer"},
        "errorMessage": {"type": "string"}
    }}}})
}

/// The Docker agent's `TelemetryEvent`, one or an array.
pub fn telemetry_request() -> Value {
    let event = json!({"type": "object", "required": ["type"], "properties": {
        "id": {"type": "string"}, "type": {"type": "string"}, "agentId": {"type": "string"},
        "timestamp": {"oneOf": [{"type": "string"}, {"type": "number"}]},
        "data": {"type": "object"}, "sessionId": {"type": "string"},
        "containerId": {"type": "string"}, "workflowId": {"type": "string"},
        "nodeId": {"type": "string"}, "toolName": {"type": "string"},
        "tokenUsage": {"type": "object"}
    }});
    json!({"oneOf": [event.clone(), {"type": "array", "items": event}]})
}

/// Workflow updates, one or an array.
pub fn workflow_updates() -> Value {
    let update = json!({"type": "object", "required": ["type"], "properties": {
        "type": {"enum": crate::workflow::KINDS},
        "id": {"type": "string"},
        "timestamp": {"oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer"}]},
        "data": {"type": "object", "properties": {
            "status": {"type": "string"}, "message": {"type": "string"},
            "progress": {"type": "number", "minimum": 0, "maximum": 100},
            "step": {"type": "string"}, "error": {}, "level": {"type": "string"}
        }}
    }});
    json!({"oneOf": [update.clone(), {"type": "array", "items": update}]})
}
