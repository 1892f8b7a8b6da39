//! Claude Code: hooks (endpoint and mapping) and transcripts (backfill and tail); their costs
//! come from [`crate::pricing`]. Nothing here may block or steer the agent.

pub mod hooks;
pub mod link;
pub mod spans;
pub mod transcript;
