//! Every route of the hub, one concern per file, all listed once in [`table`].
//!
//! A handler here is a thin shell: it reads the request, calls the core or the store, and
//! shapes the answer. Handlers never decide access (the table and `auth::guard` do) and never
//! write to the store except through the core's ingest path.

pub mod admin;
pub mod control;
pub mod events;
pub mod export;
pub mod insight;
pub mod metrics;
pub mod openapi;
pub mod plugins;
pub mod query;
pub mod schemas;
pub mod sessions;
pub mod settings;
pub mod sources;
pub mod stream;
pub mod table;
pub mod workflow;
pub mod ws;
