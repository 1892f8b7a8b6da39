//! What the CLI's integration tests share beyond the workspace's test kit: a `sightline serve`
//! child process (started on port 0, its URL read from the "sightline listening on" line).
//! In-process hubs, the HTTP agent and free ports come from `sightline_testkit`.
#![allow(dead_code, reason = "each test binary uses a part of it")]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_sightline");

/// `sightline serve --port 0 --db DB` with no token from the environment; add flags and
/// environment to the returned command, then [`Served::spawn`] it.
pub fn serve_command(db: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--port", "0", "--db"])
        .arg(db)
        .env_remove("SIGHTLINE_TOKEN");
    cmd
}

/// Runs `sightline ARGS` with `envs` set and returns its exit code (-1 when a signal ended it)
/// and its stdout then stderr as one text. The agents' own homes (`CODEX_HOME`,
/// `GEMINI_CLI_HOME`) of the machine running the tests are taken away: a test names its own.
pub fn sightline_with(args: &[&str], envs: &[(&str, &Path)]) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("CODEX_HOME")
        .env_remove("GEMINI_CLI_HOME");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Runs `sightline ARGS` against the hub at `url` (`SIGHTLINE_URL`, no token from the
/// environment) and returns its output.
pub fn sightline_at(url: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("SIGHTLINE_URL", url)
        .env_remove("SIGHTLINE_TOKEN")
        .output()
        .unwrap()
}

/// Runs `cmd` with `input` on its stdin (how Claude Code hands a hook command its payload) and
/// returns what it printed: stdout captured, stderr as the caller set it (inherited if not).
pub fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A running `sightline serve` child, killed when dropped.
pub struct Served {
    pub child: Child,
    pub url: String,
}

impl Served {
    /// Starts the command and waits for its "sightline listening on URL" line.
    pub fn spawn(mut cmd: Command) -> Served {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("sightline listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from sightline serve: {line:?}"))
            .to_string();
        Served { child, url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[allow(unused_imports, reason = "each test binary uses a part of the kit")]
pub use sightline_testkit::{TestHub, agent, free_port};
