//! `sightline import FILE`: sends a file written by export (or by the Python agent's offline
//! mode) to the hub. Importing the same file twice stores nothing new.

use anyhow::Context;
use serde_json::Value;

use crate::cli::ImportArgs;
use crate::client::HubClient;
use crate::exit::Exit;

/// The format named by a file's extension.
pub fn format_of(path: &std::path::Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "json" => Some("json"),
        "ndjson" | "jsonl" => Some("ndjson"),
        "csv" => Some("csv"),
        "yaml" | "yml" => Some("yaml"),
        _ => None,
    }
}

pub fn run(args: &ImportArgs) -> anyhow::Result<i32> {
    let format = match args.format.as_deref() {
        Some(f) => f,
        None => format_of(&args.file).ok_or_else(|| {
            Exit::config(format!(
                "cannot tell the format of {}; pass --format json|ndjson|csv|yaml",
                args.file.display()
            ))
        })?,
    };
    let body =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let client = HubClient::new(&args.hub);
    let answer: Value = serde_json::from_str(&client.post(
        &format!("/api/v1/import?format={format}"),
        "application/octet-stream",
        &body,
    )?)?;
    eprintln!(
        "sightline: imported {} events ({} already there)",
        answer["imported"], answer["duplicates"]
    );
    Ok(0)
}
