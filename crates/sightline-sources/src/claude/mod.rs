//! Claude Code: hooks (endpoint and mapping), transcripts (backfill and tail) and the price
//! table used for transcript costs. Nothing here may block or steer the agent.

pub mod hooks;
pub mod link;
pub mod pricing;
pub mod spans;
pub mod transcript;
