//! `sightline`: the binary's edge. Parses the command line, runs the command, and turns its
//! outcome into an exit code (0 ok, 1 failure, 2 config or argument error, 3 adapter start-up
//! error, 4 port in use). Everything else lives in `commands/`.

mod cli;
mod client;
mod commands;
mod config;
mod exit;
mod logging;
mod progress;

use clap::Parser;

// The hub's threads allocate events on one thread and free them on another (the HTTP workers
// parse, the writer and the indexer drop): glibc's malloc spent ~15 % of the hub's CPU under
// batched ingest on that (docs/BENCHMARKS.md), mimalloc frees across threads cheaply.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A panic's message may quote the input the code failed on, and the default hook prints it
/// as is: this one prints it redacted (`sightline_core::panic_message`), with where it happened.
fn report_panics_redacted() {
    std::panic::set_hook(Box::new(|info| {
        let message = sightline_core::panic_message(info.payload());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // `capture` honours RUST_BACKTRACE / RUST_LIB_BACKTRACE like the default hook.
        let backtrace = std::backtrace::Backtrace::capture();
        let backtrace = match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => format!("\n{backtrace}"),
            _ => String::new(),
        };
        eprintln!("sightline panicked{place}: {message}{backtrace}");
    }));
}

fn main() {
    report_panics_redacted();
    let args = cli::Cli::parse();
    logging::init(args.log_format);
    let code = match commands::run(args) {
        Ok(code) => code,
        Err(error) => exit::report(&error),
    };
    std::process::exit(code);
}
