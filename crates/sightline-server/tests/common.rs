//! The hub's integration tests use the workspace's one test kit.

#![allow(unused_imports)]

pub use sightline_testkit::*;
