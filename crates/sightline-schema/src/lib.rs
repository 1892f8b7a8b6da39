//! The canonical sightline event and everything that must agree on it: validation,
//! timestamps, the filter language and redaction.
//!
//! This crate is pure: no I/O, no async, no storage. Every other crate depends on it.

pub mod event;
pub mod filter;
pub mod redact;
pub mod timestamp;
pub mod validate;

pub use event::{EntityType, Event, Severity, Source, Status};
pub use filter::Filter;
pub use timestamp::Timestamp;
pub use validate::{RawEvent, ValidationError, parse_event, validate};
