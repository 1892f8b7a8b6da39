//! `sightline stop`: asks the hub to stop and waits until it has committed and exited.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cli::HubArgs;
use crate::client::HubClient;

pub fn run(args: &HubArgs) -> anyhow::Result<i32> {
    let client = HubClient::new(args);
    client.post("/api/v1/shutdown", "application/json", b"{}")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if client.get("/api/v1/health").is_err() {
            eprintln!("sightline: the hub at {} stopped", client.base);
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the hub at {} is still answering 30 s after the stop request",
        client.base
    )
}
