//! The hub's integration tests use the workspace's one test kit.

#![allow(unused_imports, reason = "each test binary uses a part of the kit")]

pub use sightline_testkit::*;
