//! `sightline completions SHELL` and `sightline man DIR` (both hidden): the shell completion
//! scripts and the man pages, generated from the one clap definition in `cli.rs`, which
//! `scripts/dist.sh` ships in the release archive.
//!
//! They must never be written by hand or copied anywhere else: a flag added to `cli.rs` reaches
//! the completions and the man pages by the next `dist.sh`, and nothing can drift.

use std::io::Write;

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// Prints the completion script for one shell on stdout.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    // Rendered into memory first: clap_complete panics on a failed write, and a closed pipe
    // (`sightline completions bash | head`) is no reason to.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "sightline", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!("cannot write the completion script: {e}"))
        }
        _ => Ok(0),
    }
}

/// Writes `sightline.1` and one page per visible subcommand (`sightline-serve.1`, ...).
pub fn man(args: &ManArgs) -> anyhow::Result<i32> {
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {}: {e}; give a directory you can write",
            args.dir.display()
        )
    })?;
    clap_mangen::generate_to(Cli::command(), &args.dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot write the man pages into {}: {e}",
            args.dir.display()
        )
    })?;
    Ok(0)
}
