//! The sources' integration tests use the workspace's one test kit; `peers` starts the real
//! peer programs some of them need.

#![allow(
    dead_code,
    unused_imports,
    reason = "each test binary uses a part of the kit"
)]

pub use sightline_testkit::peers;

pub use sightline_testkit::*;
