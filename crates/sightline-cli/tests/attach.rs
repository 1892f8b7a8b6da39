//! `sightline attach` (the real binary, through gdb or `sys.remote_exec`) with a stand-in agent
//! package: the target gets the token though no file it runs holds it, and the private CA of
//! `--cacert`; the script is staged in the user's own runtime directory, and nothing is left
//! behind.

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

fn python() -> Option<(String, u32)> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.version_info[1])"])
        .output()
        .ok()?;
    let minor = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(("python3".into(), minor))
}

#[test]
fn attach_hands_the_token_over_privately_and_leaves_nothing_behind() {
    let Some((py, minor)) = python() else {
        eprintln!("no python3 here: attach was not exercised");
        return;
    };
    if minor < 11 || (minor < 14 && Command::new("gdb").arg("--version").output().is_err()) {
        eprintln!("python3.{minor} without gdb: attach was not exercised");
        return;
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
        Command::new(&py)
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
        eprintln!("ptrace is not permitted here: attach was not exercised ({text})");
        return;
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
