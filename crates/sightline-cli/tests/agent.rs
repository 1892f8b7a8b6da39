//! `sightline agent install` and the install hint of `sightline run`, with the real binary and a
//! real interpreter: what it refuses (no terminal and no --yes, a missing or misfit wheel, no
//! interpreter) and that nothing is installed when it refuses. The install itself, from a built
//! wheel into a clean venv, is scripts/dist-test.sh (it needs the wheel build).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

mod common;
use common::BIN;

/// A CPython with pip: $SIGHTLINE_TEST_PYTHON, pyenv's 3.12, else python3 on PATH.
fn python() -> String {
    if let Ok(p) = std::env::var("SIGHTLINE_TEST_PYTHON") {
        return p;
    }
    let home = std::env::var("HOME").unwrap_or_default();
    let pyenv = PathBuf::from(home).join(".pyenv/versions");
    if let Ok(entries) = std::fs::read_dir(&pyenv) {
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path().join("bin/python3.12"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if let Some(p) = found.pop() {
            return p.display().to_string();
        }
    }
    "python3".to_string()
}

/// The interpreter's wheel tag (`cp312`) and machine, asked of it.
fn tag_and_machine(py: &str) -> (String, String) {
    let out = Command::new(py)
        .args([
            "-c",
            "import sys, platform; print(f'cp{sys.version_info[0]}{sys.version_info[1]}', platform.machine())",
        ])
        .output()
        .unwrap_or_else(|e| panic!("the test needs a Python interpreter ({py}): {e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    (
        it.next().unwrap().to_string(),
        it.next().unwrap().to_string(),
    )
}

fn agent_install(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["agent", "install"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A file named like an agent wheel for `py`'s machine and `tag` (its own tag when `None`), in
/// a temporary directory that lives as long as the returned handle. Its bytes are no wheel:
/// each test here ends before pip would read it.
fn wheel_named_for(py: &str, tag: Option<&str>) -> (tempfile::TempDir, String) {
    let (own, machine) = tag_and_machine(py);
    let tag = tag.unwrap_or(&own);
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join(format!(
        "sightline_agent-0.1.0-{tag}-{tag}-manylinux_2_17_{machine}.whl"
    ));
    std::fs::write(&wheel, b"not a zip").unwrap();
    (dir, wheel.display().to_string())
}

#[test]
fn refuses_without_a_terminal_and_without_yes_and_installs_nothing() {
    let py = python();
    // A file named like a fitting wheel: the refusal must come before pip ever reads it.
    let (_dir, wheel) = wheel_named_for(&py, None);
    let out = agent_install(&["--python", &py, "--wheel", &wheel]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--yes"),
        "the refusal says how to consent: {err}"
    );
    assert!(
        err.contains("-m pip install --no-index"),
        "it shows the exact command first: {err}"
    );
    assert!(
        !err.to_lowercase().contains("processing"),
        "pip must not have run: {err}"
    );
}

#[test]
fn refuses_a_wheel_for_another_interpreter() {
    let py = python();
    let (_dir, wheel) = wheel_named_for(&py, Some("cp30"));
    let out = agent_install(&["--python", &py, "--wheel", &wheel, "--yes"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("does not fit") && err.contains("cp30"),
        "{err}"
    );
}

#[test]
fn refuses_what_is_not_there() {
    let py = python();
    let out = agent_install(&["--python", &py, "--wheel", "/nonexistent/x.whl", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no wheel at /nonexistent/x.whl"),
        "{}",
        stderr(&out)
    );

    let out = agent_install(&["--python", "/nonexistent/python3", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--python PATH"), "{}", stderr(&out));

    // A debug binary has no wheels beside it: the error says where it looked and what to do.
    let out = agent_install(&["--python", &py, "--yes"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no agent wheels beside this binary") && err.contains("--wheel FILE"),
        "{err}"
    );
}

#[test]
fn run_names_the_command_that_installs_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    // A clean venv has no agent; `run` still runs the program and says how to install it.
    let venv = dir.path().join("venv");
    let made = Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(made.success(), "python -m venv failed");
    let vpy = venv.join("bin/python");
    let out = Command::new(BIN)
        .args(["run", "--url", "http://127.0.0.1:9", "--"])
        .arg(&vpy)
        .args(["-c", "print('ran')"])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ran"));
    assert!(err.contains("not installed for"), "{err}");
    // From a source checkout the hint is pip on ./python; beside shipped wheels it is
    // `sightline agent install`; either way it names this interpreter.
    let quoted = vpy.display().to_string();
    assert!(
        err.contains(&format!("{quoted} -m pip install "))
            || err.contains(&format!("agent install --python {quoted}")),
        "{err}"
    );
}

#[test]
fn asks_on_a_terminal_and_a_no_installs_nothing() {
    let py = python();
    let (_dir, wheel) = wheel_named_for(&py, None);
    // util-linux `script` gives the command a terminal; the answer comes through it.
    let command = format!("{BIN} agent install --python {py} --wheel {wheel}");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test needs util-linux `script` (Debian: bsdutils)");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"n\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(text.contains("Install? [y/N]"), "{text}");
    assert!(text.contains("nothing installed"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
}
