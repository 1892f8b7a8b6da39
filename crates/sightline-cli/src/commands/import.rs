//! `sightline import FILE`: sends a file written by export (or by the Python agent's offline
//! mode) to the hub. Importing the same file twice stores nothing new. The file is streamed
//! up, with a progress line on stderr when that is a terminal.

use anyhow::Context;
use serde_json::Value;

use crate::cli::ImportArgs;
use crate::client::HubClient;
use crate::exit::Exit;
use crate::progress::{Counting, Progress, Unit};

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
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).ok();
    let client = HubClient::new(&args.hub);
    // The bar follows the upload; the hub validates and stores after the last byte (an import
    // is all or nothing), so the bar stays full until it answers.
    let mut progress = Progress::new("import", Unit::Bytes, size);
    let mut body = Counting {
        inner: std::io::BufReader::new(file),
        progress: &mut progress,
    };
    let answer = client.post_reader(
        &format!("/api/v1/import?format={format}"),
        "application/octet-stream",
        &mut body,
    );
    progress.finish();
    let answer: Value = serde_json::from_str(&answer?)?;
    eprintln!(
        "sightline: imported {} events ({} already there)",
        answer["imported"], answer["duplicates"]
    );
    Ok(0)
}
