//! The canonical sightline event and everything that must agree on it: validation, the typed
//! builder for sources, timestamps, the filter language, redaction and the JSON Schema.
//!
//! This crate is pure: no I/O, no async, no storage. Every other crate depends on it.

pub mod builder;
pub mod event;
pub mod filter;
pub mod redact;
pub mod schema;
pub mod timestamp;
pub mod validate;

pub use builder::{EventBuilder, IntoOptionalString};
pub use event::{CommittedParts, EntityType, Event, Severity, Source, Status};
pub use filter::Filter;
pub use schema::{event_json_schema, filter_json_schema, openapi_components};
pub use timestamp::Timestamp;
pub use validate::{RawEvent, ValidationError, parse_event, validate};
