//! The schemas the route table names, each derived from the Rust type the handler really returns
//! (`#[derive(JsonSchema)]`), and the OpenAPI `components` they live in.
//!
//! A route points at a type with [`of`]; [`components`] holds every such type (and the types
//! they contain). This module must never describe a shape by hand when a Rust type exists for
//! it: a hand-written schema is one that can drift.

use schemars::JsonSchema;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use sightline_core::plugins::{PluginAnswer, PluginList};
use sightline_core::{Accepted, Control, ControlSettings, LineError};
use sightline_schema::Event;
use sightline_store::query::RunDetail;

use crate::auth::AuditEntry;
use crate::routes::admin::AuditPage;
use crate::routes::export::Imported;
use crate::routes::query::{
    EventsPage, HealthReport, Incidents, RunsPage, SessionTree, StatsReport,
};
use crate::routes::sessions::{AgentsSeen, LiveState};

/// A `$ref` to the component of `T`.
pub fn of<T: JsonSchema>() -> Value {
    json!({"$ref": format!("#/components/schemas/{}", T::schema_name())})
}

fn generator() -> SchemaGenerator {
    let mut settings = SchemaSettings::draft2020_12().for_serialize();
    settings.definitions_path = "/components/schemas".into();
    settings.into_generator()
}

/// Every component the table's routes refer to.
pub fn components() -> Map<String, Value> {
    let mut g = generator();
    macro_rules! register {
        ($($t:ty),+ $(,)?) => {$(
            let _ = g.subschema_for::<$t>();
        )+};
    }
    register!(
        Accepted,
        LineError,
        Event,
        HealthReport,
        RunsPage,
        RunDetail,
        EventsPage,
        SessionTree,
        StatsReport,
        Incidents,
        Imported,
        Control,
        ControlSettings,
        PluginList,
        PluginAnswer,
        AuditPage,
        AuditEntry,
        sightline_store::insight::Count,
        sightline_store::insight::Series,
        sightline_store::fingerprint::IncidentGroups,
        crate::routes::settings::SettingsView,
        crate::routes::settings::SettingsChange,
        crate::routes::settings::RetentionBody,
        crate::routes::settings::NewToken,
        crate::routes::settings::CreatedToken,
        crate::routes::settings::RevokedToken,
        crate::routes::settings::SourcesView,
        crate::routes::settings::SourceChanged,
        crate::routes::settings::NotifyView,
        crate::routes::settings::NotifyChanged,
        sightline_core::supervisor::SourceChange,
        sightline_core::supervisor::NotifyRules,
        LiveState,
        AgentsSeen,
        sightline_store::workflow::WorkflowsPage,
        sightline_store::workflow::Workflow,
    );
    let mut out = g.definitions().clone();
    out.insert(
        "Error".into(),
        json!({"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}}}}}),
    );
    out
}

pub fn accepted() -> Value {
    of::<Accepted>()
}
pub fn event() -> Value {
    of::<Event>()
}
/// One event, an array of them, or NDJSON.
pub fn ingest_body() -> Value {
    json!({"oneOf": [of::<Event>(), {"type": "array", "items": of::<Event>()}]})
}
pub fn ndjson() -> Value {
    json!({"type": "string", "description": "one event per line"})
}
/// What `export?format=json` gives: an array of events (or `{"events": [...]}`, or one event).
pub fn import_json() -> Value {
    let events = json!({"type": "array", "items": of::<Event>()});
    json!({"oneOf": [events.clone(), of::<Event>(),
        {"type": "object", "properties": {"events": events}, "required": ["events"]}]})
}
pub fn csv() -> Value {
    json!({"type": "string", "description": "what export?format=csv gives: a header line, then one event a line"})
}
pub fn yaml() -> Value {
    json!({"type": "string", "description": "what export?format=yaml gives: a list of events"})
}
pub fn health() -> Value {
    of::<HealthReport>()
}
pub fn runs_page() -> Value {
    of::<RunsPage>()
}
pub fn run_detail() -> Value {
    of::<RunDetail>()
}
pub fn events_page() -> Value {
    of::<EventsPage>()
}
pub fn session_tree() -> Value {
    of::<SessionTree>()
}
pub fn stats() -> Value {
    of::<StatsReport>()
}
pub fn incidents() -> Value {
    of::<Incidents>()
}
pub fn imported() -> Value {
    of::<Imported>()
}
pub fn control() -> Value {
    of::<Control>()
}
pub fn control_settings() -> Value {
    of::<ControlSettings>()
}
pub fn stopping() -> Value {
    json!({"type": "object", "properties": {"stopping": {"type": "boolean"}}, "required": ["stopping"]})
}
pub fn plugin_list() -> Value {
    of::<PluginList>()
}
pub fn plugin_invoke() -> Value {
    json!({"type": "object", "additionalProperties": false, "properties": {
        "events": {"type": "array", "items": of::<Event>()},
        "seqs": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "run_id": {"type": "string"},
        "context": {"type": "object"}}})
}
pub fn plugin_answer() -> Value {
    of::<PluginAnswer>()
}
pub fn audit() -> Value {
    of::<AuditPage>()
}
pub fn count() -> Value {
    of::<sightline_store::insight::Count>()
}
pub fn series() -> Value {
    of::<sightline_store::insight::Series>()
}
pub fn incident_groups() -> Value {
    of::<sightline_store::fingerprint::IncidentGroups>()
}
pub fn settings_view() -> Value {
    of::<crate::routes::settings::SettingsView>()
}
pub fn settings_change() -> Value {
    of::<crate::routes::settings::SettingsChange>()
}
pub fn retention_body() -> Value {
    of::<crate::routes::settings::RetentionBody>()
}
pub fn new_token() -> Value {
    of::<crate::routes::settings::NewToken>()
}
pub fn created_token() -> Value {
    of::<crate::routes::settings::CreatedToken>()
}
pub fn revoked_token() -> Value {
    of::<crate::routes::settings::RevokedToken>()
}
pub fn sources_view() -> Value {
    of::<crate::routes::settings::SourcesView>()
}
pub fn source_change() -> Value {
    of::<sightline_core::supervisor::SourceChange>()
}
pub fn source_changed() -> Value {
    of::<crate::routes::settings::SourceChanged>()
}
pub fn notify_view() -> Value {
    of::<crate::routes::settings::NotifyView>()
}
pub fn notify_rules() -> Value {
    of::<sightline_core::supervisor::NotifyRules>()
}
pub fn notify_changed() -> Value {
    of::<crate::routes::settings::NotifyChanged>()
}
pub fn live_state() -> Value {
    of::<LiveState>()
}
pub fn agents_seen() -> Value {
    of::<AgentsSeen>()
}
pub fn workflows_page() -> Value {
    of::<sightline_store::workflow::WorkflowsPage>()
}
pub fn workflow() -> Value {
    of::<sightline_store::workflow::Workflow>()
}
pub fn any_object() -> Value {
    json!({"type": "object"})
}
