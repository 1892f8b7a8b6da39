//! `sightline status`: is a hub running, and how is it doing.

use serde_json::Value;

use crate::cli::HubArgs;
use crate::client::HubClient;

pub fn run(args: &HubArgs) -> anyhow::Result<i32> {
    let client = HubClient::new(args);
    let health: Value = serde_json::from_str(&client.get("/api/v1/health")?)?;
    println!(
        "sightline {} at {}",
        health["version"].as_str().unwrap_or("?"),
        client.base
    );
    println!("  status     {}", health["status"].as_str().unwrap_or("?"));
    println!("  uptime     {} s", health["uptime_s"]);
    println!(
        "  database   {} ({} events, {} bytes)",
        health["storage"]["path"].as_str().unwrap_or("?"),
        health["storage"]["events"],
        health["storage"]["size_bytes"]
    );
    println!("  head seq   {}", health["head_seq"]);
    println!(
        "  queue      {} / {}",
        health["queue"]["depth"], health["queue"]["capacity"]
    );
    println!("  live       {} subscribers", health["subscribers"]);
    for a in health["adapters"].as_array().into_iter().flatten() {
        println!(
            "  adapter    {:<12} {:<8} {} events, {} errors{}",
            a["name"].as_str().unwrap_or("?"),
            a["state"].as_str().unwrap_or("?"),
            a["events"],
            a["errors"],
            a["last_error"]
                .as_str()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        );
    }
    Ok(0)
}
