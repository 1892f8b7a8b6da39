//! `sightline export RUN --format json|ndjson|csv|yaml`: a run's events, to stdout or a file.

use std::io::Write;

use anyhow::Context;

use crate::cli::ExportArgs;
use crate::client::{HubClient, encode};

pub fn run(args: &ExportArgs) -> anyhow::Result<i32> {
    let client = HubClient::new(&args.hub);
    let body = client.get(&format!(
        "/api/v1/export?run_id={}&format={}",
        encode(&args.run),
        args.format
    ))?;
    match &args.output {
        Some(path) => {
            std::fs::write(path, &body).with_context(|| format!("writing {}", path.display()))?
        }
        None => std::io::stdout().lock().write_all(body.as_bytes())?,
    }
    Ok(0)
}
