//! `sightline export RUN --format json|ndjson|csv|yaml`: a run's events, to stdout or a file.
//!
//! The answer is written out as it arrives (the hub streams it a page at a time, gzipped when
//! large), with a progress line on stderr when that is a terminal. A file is written beside its
//! final name and renamed at the end, so a failed export never leaves half a file behind.

use std::io::Write;

use anyhow::Context;

use crate::cli::ExportArgs;
use crate::client::{HubClient, encode};
use crate::progress::{Counting, Progress, Unit};

pub fn run(args: &ExportArgs) -> anyhow::Result<i32> {
    let client = HubClient::new(&args.hub);
    let body = client.get_reader(&format!(
        "/api/v1/export?run_id={}&format={}",
        encode(&args.run),
        args.format
    ))?;
    let mut progress = Progress::new("export", Unit::Bytes, None);
    let mut body = Counting {
        inner: body,
        progress: &mut progress,
    };
    match &args.output {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            let mut file = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("writing beside {}", path.display()))?;
            std::io::copy(&mut body, &mut file).context("reading the export")?;
            file.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut body, &mut out).context("reading the export")?;
            out.flush()?;
        }
    }
    progress.finish();
    Ok(0)
}
