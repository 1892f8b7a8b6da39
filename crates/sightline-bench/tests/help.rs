//! `sightline-bench --help` and a mistyped option, run as the real binary: the help lists every
//! option with its default and exits 0; an unknown option answers with the usage on stderr and
//! exit code 2 (a usage error), never an anyhow error with code 1. Neither may start a hub.

use std::process::Command;

fn bench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sightline-bench"))
        .args(args)
        // A hub started by mistake would fail on this path rather than run a benchmark.
        .env("SIGHTLINE_BIN", "/nonexistent/sightline")
        .output()
        .expect("run sightline-bench");
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_option_with_its_default() {
    let (code, out, err) = bench(&["--help"]);
    assert_eq!(code, 0, "{out}{err}");
    for (option, default) in [
        ("--events <N>", "[default: 1000000]"),
        ("--seconds <S>", "[default: 5]"),
        ("--store-only", "Default: off"),
        ("--only <PHASE>", "Default: every phase"),
        ("--connections <N>", "[default: 4]"),
        ("--soak <MINUTES>", "Default: no soak"),
        ("--rate <EVENTS_PER_S>", "[default: 1000]"),
        ("--subscribers <N>", "[default: 50]"),
        ("--reconnect <SECONDS>", "[default: 30]"),
        ("--every <SECONDS>", "[default: 60]"),
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(option))
            .unwrap_or_else(|| panic!("--help does not list {option}:\n{out}"));
        assert!(
            line.contains(default),
            "{option} without `{default}`: {line}"
        );
    }
    assert!(out.contains("single, fanout, batched"), "{out}");
    // `-h` is the same.
    assert_eq!(bench(&["-h"]).0, 0);
}

#[test]
fn an_unknown_option_answers_with_the_usage_and_exit_code_2() {
    let (code, out, err) = bench(&["--evnets", "10"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--evnets"), "{err}");
    assert!(err.contains("Usage: sightline-bench"), "{err}");
    assert!(
        err.contains("a similar argument exists: '--events'"),
        "{err}"
    );
    assert!(out.is_empty(), "nothing was measured: {out}");
    // A value that is not a number is a usage error too, naming the option.
    let (code, _, err) = bench(&["--seconds", "five"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--seconds"), "{err}");
    let (code, _, err) = bench(&["--only", "everything"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("single, fanout, batched"), "{err}");
}
