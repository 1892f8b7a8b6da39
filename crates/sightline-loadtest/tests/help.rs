//! `sightline-loadtest --help` and a mistyped option, run as the real binary: the help lists
//! every option with its default and exits 0; an unknown option answers with the usage on
//! stderr and exit code 2. Neither may start a hub.

use std::process::Command;

fn loadtest(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sightline-loadtest"))
        .args(args)
        .output()
        .expect("run sightline-loadtest");
    (
        out.status.code().expect("exited, not killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_every_option_with_its_default() {
    let (code, out, err) = loadtest(&["--help"]);
    assert_eq!(code, 0, "{out}{err}");
    for (option, default) in [
        ("--hub <PATH>", "Default: `sightline` beside this program"),
        ("--ws <WS>", "[default: 500]"),
        ("--sse <SSE>", "[default: 500]"),
        ("--rate <RATE>", "[default: 1000]"),
        ("--duration <DURATION>", "[default: 20]"),
        ("--warmup <WARMUP>", "[default: 3]"),
        ("--runs <RUNS>", "[default: 1]"),
        ("--json", "Default: off"),
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
}

#[test]
fn an_unknown_option_answers_with_the_usage_and_exit_code_2() {
    let (code, out, err) = loadtest(&["--subscribers", "10"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("--subscribers"), "{err}");
    assert!(err.contains("Usage: sightline-loadtest [OPTIONS]"), "{err}");
    assert!(out.is_empty(), "{out}");
}
