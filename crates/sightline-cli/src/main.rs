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

// mimalloc's option setter and getter (include/mimalloc.h). The `mimalloc` crate exposes them
// only behind a feature that pulls one more crate, and names no constant for the option below.
#[allow(
    unsafe_code,
    reason = "declaring two C functions of the allocator this binary already links"
)]
unsafe extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg_attr(not(test), allow(dead_code, reason = "read back only by the tests"))]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}

/// `mi_option_purge_delay`: the 16th entry of `mi_option_t` in mimalloc v2 (the `v2` feature in
/// Cargo.toml pins it) and in v3 alike. A test checks that this index reads
/// `MIMALLOC_PURGE_DELAY`.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
/// How long mimalloc keeps pages that emptied before giving them back to the OS, in ms.
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

/// mimalloc gives emptied pages back to the OS after 10 ms by default. Under ingest the hub
/// empties and refills the same pages many times a second (a batch is parsed on the HTTP
/// workers and freed on the indexer's thread), so every refill page-faulted and zeroed the
/// memory again: 0.7 page faults per batched event, ~10 % of the hub's CPU per event
/// (docs/BENCHMARKS.md). Kept for 1 s they are reused (0.2 faults per event, the same as never
/// purging). The price is memory: mimalloc purges only when the allocator runs again, so a hub
/// that goes idle after a burst holds what it kept (measured: 84 MB instead of 67 MB 15 s
/// after 150,000 batched events; 180 MB instead of 132 MB at the batched phase's peak). The
/// idle figure of a fresh hub (≤ 20 MB budget) is unchanged. `MIMALLOC_PURGE_DELAY` in the
/// environment still decides when it is set (10 is mimalloc's default).
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        #[allow(unsafe_code, reason = "a C call into the allocator")]
        // SAFETY: sets one integer option; called first thing in `main`, before any other
        // thread exists, and mimalloc reads the option at each purge decision.
        unsafe {
            mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS)
        };
    }
}

/// A panic's message may quote the input the code failed on, and the default hook prints it
/// as is: this one prints it redacted (`sightline_core::panic_message`), with where it happened.
fn report_panics_redacted() {
    std::panic::set_hook(Box::new(|info| {
        let message = sightline_core::panic_message(info.payload());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("sightline panicked{place}: {message}");
    }));
}

fn main() {
    tune_allocator();
    report_panics_redacted();
    let args = cli::Cli::parse();
    logging::init(args.log_format);
    let code = match commands::run(args) {
        Ok(code) => code,
        Err(error) => exit::report(&error),
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purge_delay() -> std::ffi::c_long {
        #[allow(unsafe_code, reason = "a C call into the allocator")]
        // SAFETY: reads one integer option.
        unsafe {
            mi_option_get(MI_OPTION_PURGE_DELAY)
        }
    }

    /// The hard-coded index is mimalloc's purge delay: a child run of this test with
    /// `MIMALLOC_PURGE_DELAY` set reads that value there, and `tune_allocator` leaves it alone.
    #[test]
    fn the_option_index_is_the_purge_delay_and_the_environment_wins() {
        if let Some(expected) = std::env::var_os("SIGHTLINE_TEST_PURGE_CHILD") {
            tune_allocator();
            assert_eq!(
                purge_delay().to_string(),
                expected.to_string_lossy(),
                "option {MI_OPTION_PURGE_DELAY} is not MIMALLOC_PURGE_DELAY"
            );
            return;
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tests::the_option_index_is_the_purge_delay_and_the_environment_wins",
                "--test-threads=1",
            ])
            .env("MIMALLOC_PURGE_DELAY", "1234")
            .env("SIGHTLINE_TEST_PURGE_CHILD", "1234")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "child run failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn without_the_environment_the_hub_keeps_pages_a_second() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the test above's child run, or a developer's override: nothing to check
        }
        assert_ne!(
            purge_delay(),
            PURGE_DELAY_MS,
            "mimalloc's default is not 1 s"
        );
        tune_allocator();
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }
}
