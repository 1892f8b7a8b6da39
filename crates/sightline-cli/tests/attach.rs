//! `sightline attach` (the real binary, through gdb or `sys.remote_exec`) with a stand-in agent
//! package: the target gets the token though no file it runs holds it, and the private CA of
//! `--cacert`; the script is staged in the user's own runtime directory, and nothing is left
//! behind.
//!
//! A machine that cannot run it (no python3 3.11+, no gdb for 3.11-3.13, ptrace not permitted)
//! fails the test with what to install or change: a passing test must have attached. Set
//! `SIGHTLINE_TEST_NO_ATTACH=1` to skip it knowingly; it then says so on stderr, past the test
//! harness's output capture.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const SECRET: &str = "attach-token-for-the-target-0001";

/// A target this test started, ended by its pid when the test ends.
struct Target(Child);
impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The opt-out: attach is not exercised, knowingly.
const OPT_OUT: &str = "SIGHTLINE_TEST_NO_ATTACH";

/// The machine cannot exercise attach: fails the test with `why`, unless the opt-out is set,
/// in which case it says so loudly (straight to stderr, which the harness does not capture)
/// and the caller returns.
#[track_caller]
fn cannot_attach(why: &str) {
    if std::env::var(OPT_OUT).is_ok_and(|v| v == "1") {
        let _ = writeln!(
            std::io::stderr(),
            "\n*** attach NOT exercised ({OPT_OUT}=1): {why}\n"
        );
        return;
    }
    panic!("{why}\n(set {OPT_OUT}=1 to skip this test knowingly)");
}

/// `python3`'s minor version, or why there is none to use.
fn python_minor() -> Result<u32, String> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output()
        .map_err(|e| {
            format!(
                "attach needs python3 (3.11+) on PATH: {e}; install it (apt-get install -y python3)"
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().parse().map_err(|_| {
        format!(
            "python3 -c 'import sys; print(sys.version_info[1])' answered {:?} (exit {:?}); attach needs a working python3 3.11+ on PATH",
            text.trim(),
            out.status.code()
        )
    })
}

#[test]
fn attach_hands_the_token_over_privately_and_leaves_nothing_behind() {
    let py = "python3";
    let minor = match python_minor() {
        Ok(m) => m,
        Err(why) => return cannot_attach(&why),
    };
    if minor < 11 {
        return cannot_attach(&format!(
            "python3 is 3.{minor}; attach supports 3.11+: put a python3 of 3.11 or later first on PATH"
        ));
    }
    // 3.14 attaches through sys.remote_exec; 3.11-3.13 through gdb.
    if minor < 14
        && let Err(e) = Command::new("gdb").arg("--version").output()
    {
        return cannot_attach(&format!(
            "attach to python3.{minor} runs gdb, which is missing ({e}): install it (apt-get install -y gdb)"
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    let agent = tmp.path().join("agent");
    std::fs::create_dir_all(agent.join("sightline")).unwrap();
    std::fs::write(
        agent.join("sightline").join("__init__.py"),
        include_str!("fixtures/standin_agent.py"),
    )
    .unwrap();
    let target = Target(
        Command::new(py)
            .args([
                "-c",
                "import os, time\n\
                 d = os.environ['ATTACH_TEST_DIR']\n\
                 open(os.path.join(d, 'ready'), 'w').close()\n\
                 while not os.path.exists(os.path.join(d, 'stop')):\n\
                 \x20   sum([i for i in range(50)])\n\
                 \x20   time.sleep(0.005)\n",
            ])
            .env("ATTACH_TEST_DIR", tmp.path())
            .env("SIGHTLINE_STANDIN_OUT", tmp.path().join("started.json"))
            .env_remove("SIGHTLINE_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !tmp.path().join("ready").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the target never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A private CA: the agent in the target must be told to trust it.
    let ca = sightline_testkit::tls::TestCa::new();
    let runtime = tmp.path().join("run");
    std::fs::create_dir(&runtime).unwrap();
    std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args([
            "attach",
            &target.0.id().to_string(),
            "--run-id",
            "attach-run-1",
        ])
        .arg("--agent-path")
        .arg(&agent)
        .args(["--token", SECRET, "--timeout", "60"])
        .arg("--cacert")
        .arg(&ca.ca)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("ptrace is not permitted") {
        // An environment limit (yama's ptrace_scope, a container without CAP_SYS_PTRACE), with
        // the binary's own explanation of what to change.
        return cannot_attach(&format!(
            "this machine does not permit ptrace, so attach cannot be tested here: {}",
            text.trim()
        ));
    }
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("run attach-run-1"), "{text}");
    let started: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("started.json")).unwrap())
            .unwrap();
    assert_eq!(started["token"], SECRET, "the agent got the token");
    assert_eq!(started["run_id"], "attach-run-1");
    assert_eq!(
        started["ca_file"],
        ca.ca.to_str().unwrap(),
        "the agent trusts the private CA"
    );
    let base = runtime.join("sightline");
    assert_eq!(
        std::fs::metadata(&base).unwrap().permissions().mode() & 0o777,
        0o700,
        "staged in the user's own runtime directory"
    );
    let left: Vec<_> = std::fs::read_dir(&base).unwrap().collect();
    assert!(
        left.is_empty(),
        "the staging directory is removed: {left:?}"
    );
    std::fs::write(tmp.path().join("stop"), "").unwrap();
}
