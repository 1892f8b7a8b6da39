//! Progress lines of `import`, `replay` and `export` (the real binary against a real hub): none
//! at all when stderr is not a terminal (pipes, files, this test's own capture), and a bar
//! when it is one (a pseudo-terminal from util-linux `script`). `export` through the CLI gets
//! the hub's gzip answer and writes it un-gzipped.

use std::process::{Command, Output};

mod common;
use common::{BIN, TestHub, sightline_at as cli};
use sightline_testkit::{event, ndjson};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// No carriage return, no escape sequence, no bar: only the command's own summary.
fn assert_no_progress(out: &Output, what: &str) {
    let err = stderr(out);
    assert!(out.status.success(), "{what}: {err}");
    assert!(
        !err.contains('\r') && !err.contains('\x1b') && !err.contains('['),
        "{what} drew progress into a pipe: {err:?}"
    );
}

#[test]
fn no_progress_text_when_stderr_is_not_a_terminal() {
    let hub = TestHub::start();
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<_> = (0..300).map(|i| event("pipe-run", i)).collect();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, ndjson(&events)).unwrap();

    let out = cli(&hub.url, &["import", file.to_str().unwrap()]);
    assert_no_progress(&out, "import");
    assert_eq!(
        stderr(&out),
        "sightline: imported 300 events (0 already there)\n"
    );

    // Export to stdout and to a file: the hub gzips (the CLI asks), the CLI un-gzips.
    let out = cli(&hub.url, &["export", "pipe-run", "--format", "ndjson"]);
    assert_no_progress(&out, "export");
    assert_eq!(stderr(&out), "");
    let text = String::from_utf8(out.stdout).expect("un-gzipped text");
    assert_eq!(text.lines().count(), 300);
    assert_eq!(
        text.as_bytes(),
        ndjson_of_export(&hub.url, "pipe-run").as_bytes()
    );
    let target = dir.path().join("out.ndjson");
    let to = target.to_str().unwrap();
    let out = cli(
        &hub.url,
        &["export", "pipe-run", "--format", "ndjson", "-o", to],
    );
    assert_no_progress(&out, "export -o");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), text);

    let recording = dir.path().join("recording.jsonl");
    std::fs::write(&recording, ndjson(&events[..20])).unwrap();
    let out = cli(
        &hub.url,
        &["replay", recording.to_str().unwrap(), "--speed", "0"],
    );
    assert_no_progress(&out, "replay");
    assert!(stderr(&out).starts_with("sightline: replayed 20 events"));
}

/// The export as the hub sends it to a client that does not ask for gzip.
fn ndjson_of_export(url: &str, run: &str) -> String {
    let agent = sightline_testkit::agent();
    let mut res = agent
        .get(format!("{url}/api/v1/export?run_id={run}&format=ndjson"))
        .header("Accept-Encoding", "identity")
        .call()
        .unwrap();
    assert!(res.headers().get("content-encoding").is_none());
    res.body_mut().read_to_string().unwrap()
}

/// Runs the command under a pseudo-terminal (`script` is util-linux, on every Linux machine
/// this project builds on) and returns everything it wrote there.
fn in_terminal(url: &str, args: &[&str]) -> String {
    let command = std::iter::once(BIN)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("SIGHTLINE_URL", url)
        .env_remove("SIGHTLINE_TOKEN")
        .output()
        .expect("util-linux `script` runs the command under a pseudo-terminal");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{command}: {text}");
    text
}

#[test]
fn a_terminal_gets_a_progress_bar() {
    let hub = TestHub::start();
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<_> = (0..50).map(|i| event("tty-run", i)).collect();
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, ndjson(&events)).unwrap();
    let shown = in_terminal(&hub.url, &["import", file.to_str().unwrap()]);
    assert!(shown.contains("\rimport ["), "no bar: {shown:?}");
    assert!(shown.contains("imported 50 events"), "{shown:?}");
    let shown = in_terminal(
        &hub.url,
        &["replay", file.to_str().unwrap(), "--speed", "0"],
    );
    assert!(shown.contains("\rreplay ["), "no bar: {shown:?}");
    assert!(shown.contains("/50 events"), "{shown:?}");
    let target = dir.path().join("out.yaml");
    let shown = in_terminal(
        &hub.url,
        &[
            "export",
            "tty-run",
            "--format",
            "yaml",
            "-o",
            target.to_str().unwrap(),
        ],
    );
    assert!(shown.contains("\rexport "), "no progress line: {shown:?}");
    assert!(target.is_file());
}
