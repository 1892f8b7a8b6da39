//! `sightline doctor` and `sightline config` (the real binary) on machines built in temporary
//! directories: a misconfigured one (Claude hooks posting to the wrong port, a database
//! directory that cannot be created, the port held by another listener, a CA file that does not
//! exist, no tmux on PATH) gets each finding with its fix and exit code 1; a healthy one gets
//! no warning and no failure, and exit code 0. `config` names where each setting came from
//! and never prints a token.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{BIN, free_port};

/// A machine of our own: HOME, XDG dirs, a working directory and PATH, nothing inherited that
/// could change the answer (the developer's own hooks, hub URL or token).
struct Machine {
    root: tempfile::TempDir,
    path: PathBuf,
}

impl Machine {
    fn new() -> Machine {
        let root = tempfile::tempdir().unwrap();
        for d in ["home", "config", "data", "work", "bin"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        let path = root.path().join("bin");
        Machine { root, path }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.dir("work"))
            .env("HOME", self.dir("home"))
            .env("XDG_CONFIG_HOME", self.dir("config"))
            .env("XDG_DATA_HOME", self.dir("data"))
            .env("PATH", &self.path);
        for var in [
            "CLAUDE_CONFIG_DIR",
            "SIGHTLINE_URL",
            "SIGHTLINE_TOKEN",
            "SIGHTLINE_PORT",
            "SIGHTLINE_BIND",
            "SIGHTLINE_DB",
            "SIGHTLINE_CONFIG",
            "SIGHTLINE_SOURCES",
            "SIGHTLINE_CA_FILE",
            "SIGHTLINE_TLS_CERT",
            "SIGHTLINE_TLS_KEY",
            "SIGHTLINE_OPENCODE_URL",
            "SIGHTLINE_PLUGINS",
            "SIGHTLINE_RETENTION",
            "SIGHTLINE_MAX_BODY",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn run(&self, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let mut cmd = self.command(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn checks(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e}): {}", text(out)));
    v["checks"].as_array().unwrap().clone()
}

fn find<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check named {name}: {checks:?}"))
}

/// Asserts a check's status, and that its finding and fix say what they must.
fn expect(checks: &[Value], name: &str, status: &str, finding: &[&str], fix: &[&str]) {
    let c = find(checks, name);
    assert_eq!(c["status"], status, "{name}: {c}");
    let f = c["finding"].as_str().unwrap();
    for want in finding {
        assert!(f.contains(want), "{name}: finding {f:?} lacks {want:?}");
    }
    let x = c["fix"].as_str().unwrap_or("");
    for want in fix {
        assert!(x.contains(want), "{name}: fix {x:?} lacks {want:?}");
    }
}

/// A directory holding only a link to this machine's tmux (scripts/test.sh installs tmux).
fn bin_with_tmux(m: &mut Machine) {
    let tmux = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("tmux"))
                .find(|t| t.is_file())
        })
        .expect("tmux must be installed for this test (scripts/test.sh installs it)");
    std::os::unix::fs::symlink(tmux, m.dir("bin").join("tmux")).unwrap();
    m.path = m.dir("bin");
}

fn install_claude(m: &Machine, extra: &[&str]) {
    let mut args = vec!["install", "claude"];
    args.extend_from_slice(extra);
    let out = m.run(&args, &[]);
    assert!(out.status.success(), "install: {}", text(&out));
    assert!(m.dir("home").join(".claude/settings.json").is_file());
}

#[test]
fn doctor_on_a_misconfigured_machine_names_each_problem_and_its_fix() {
    let m = Machine::new();
    // Hooks that post to a port nobody serves on.
    let wrong = free_port();
    install_claude(
        &m,
        &["--http", "--url", &format!("http://127.0.0.1:{wrong}")],
    );
    // The port serve would use, held by a listener that is not a hub.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    // A database whose directory cannot be created: its parent is a file.
    let blocker = m.dir("data").join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let db = blocker.join("sub").join("sightline.db");
    let missing_ca = m.dir("nowhere-ca.pem");
    let args = [
        "doctor",
        "--json",
        "--port",
        &port,
        "--db",
        db.to_str().unwrap(),
    ];
    // An OpenCode server that is not running.
    let opencode = format!("http://127.0.0.1:{}", free_port());
    let envs = [
        ("SIGHTLINE_CA_FILE", missing_ca.to_str().unwrap()),
        ("SIGHTLINE_URL", &*format!("http://127.0.0.1:{port}")),
        ("SIGHTLINE_OPENCODE_URL", &*opencode),
    ];
    let out = m.run(&args, &envs);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let checks = checks(&out);
    expect(
        &checks,
        "port",
        "fail",
        &[&format!("port {port}"), "taken by another program"],
        &["--port", "SIGHTLINE_PORT", "flag --port"],
    );
    expect(
        &checks,
        "database",
        "fail",
        &["not-a-dir", "is not a directory"],
        &["--db", "SIGHTLINE_DB", "flag --db"],
    );
    expect(
        &checks,
        "claude_hooks",
        "fail",
        &[
            "send elsewhere than this hub",
            &format!("127.0.0.1:{wrong}/api/v1/hooks/claude"),
            ".claude/settings.json",
        ],
        &[&format!(
            "sightline install claude --http --url http://127.0.0.1:{port}"
        )],
    );
    expect(
        &checks,
        "tls",
        "fail",
        &["CA file", "nowhere-ca.pem", "cannot read"],
        &["--cacert", "SIGHTLINE_CA_FILE", "env SIGHTLINE_CA_FILE"],
    );
    expect(
        &checks,
        "tmux",
        "warn",
        &["tmux is not on PATH"],
        &["install tmux"],
    );
    expect(
        &checks,
        "opencode",
        "warn",
        &["no OpenCode server answers at", &opencode],
        &["opencode serve", "SIGHTLINE_OPENCODE_URL"],
    );
    // No python3 on this PATH: said, not failed.
    expect(
        &checks,
        "python_agent",
        "skipped",
        &["no python3 on PATH"],
        &[],
    );
    expect(&checks, "client_url", "ok", &[&port], &[]);
    expect(&checks, "config", "ok", &["no config file"], &[]);
    for c in &checks {
        if c["status"] == "fail" || c["status"] == "warn" {
            assert!(c["fix"].is_string(), "a problem without a fix: {c}");
        }
    }

    // The same findings as a table, one line each, with the fix beneath.
    let out = m.run(
        &args[..1]
            .iter()
            .chain(&args[2..])
            .copied()
            .collect::<Vec<_>>(),
        &envs,
    );
    assert_eq!(out.status.code(), Some(1));
    let table = text(&out);
    for line in [
        "FAIL  port",
        "FAIL  database",
        "FAIL  claude_hooks",
        "FAIL  tls",
        "warn  tmux",
    ] {
        assert!(table.contains(line), "{line:?} missing from:\n{table}");
    }
    assert!(
        table.contains("fix: sightline install claude --http --url"),
        "{table}"
    );
    assert!(table.contains("4 failed"), "{table}");
    eprintln!("doctor on a misconfigured machine:\n{table}");
    drop(taken);
}

#[test]
fn doctor_on_a_healthy_machine_is_all_ok() {
    let mut m = Machine::new();
    bin_with_tmux(&mut m);
    // Command hooks (the default), which read SIGHTLINE_URL; the hub's port is free.
    install_claude(&m, &[]);
    let port = free_port().to_string();
    let url = format!("http://127.0.0.1:{port}");
    // Sources named, so that an OpenCode server some other program runs on this machine
    // cannot change the answer.
    let out = m.run(
        &["doctor", "--json", "--port", &port, "--source", "tmux"],
        &[("SIGHTLINE_URL", &url)],
    );
    let checks = checks(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for c in &checks {
        assert!(
            c["status"] == "ok" || c["status"] == "skipped",
            "a healthy machine got {c}"
        );
    }
    expect(&checks, "port", "ok", &["is free"], &[]);
    expect(&checks, "database", "ok", &["will be created"], &[]);
    expect(&checks, "claude_hooks", "ok", &["hooks for all", &url], &[]);
    expect(&checks, "client_url", "ok", &[&url], &[]);
    expect(&checks, "tmux", "ok", &["tmux"], &[]);
    expect(&checks, "tls", "ok", &["plain HTTP", "system roots"], &[]);
    // Doctor changed nothing: no database, no data directory content.
    assert!(!m.dir("data").join("sightline").exists());
}

#[test]
fn doctor_sees_a_running_hub_on_its_port_as_fine() {
    let mut m = Machine::new();
    bin_with_tmux(&mut m);
    let hub = common::TestHub::start();
    let port = hub.url.rsplit(':').next().unwrap().to_string();
    let out = m.run(
        &["doctor", "--json", "--port", &port],
        &[("SIGHTLINE_URL", &hub.url)],
    );
    expect(
        &checks(&out),
        "port",
        "ok",
        &["a sightline hub is already running"],
        &[],
    );
}

#[test]
fn doctor_sees_a_tls_hub_on_its_port_and_names_a_certificate_it_cannot_verify() {
    let mut m = Machine::new();
    bin_with_tmux(&mut m);
    let ca = sightline_testkit::tls::TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::serve_command(&dir.path().join("db.sqlite"));
    cmd.args(["--source", "http", "--tls-cert"])
        .arg(&ca.cert)
        .arg("--tls-key")
        .arg(&ca.key)
        .env("HOME", dir.path())
        .env_remove("SIGHTLINE_CA_FILE");
    let hub = common::Served::spawn(cmd);
    let port = hub.url.rsplit(':').next().unwrap().to_string();
    // This machine's config knows nothing of TLS (the hub was started with other flags): the
    // port is still recognised as a hub's, and trusted once the CA is given.
    let ca_file = ca.ca.to_str().unwrap();
    let trusted = m.run(
        &["doctor", "--json", "--port", &port],
        &[("SIGHTLINE_CA_FILE", ca_file)],
    );
    expect(
        &checks(&trusted),
        "port",
        "ok",
        &["a sightline hub is already running", "over TLS"],
        &[],
    );
    // Without the CA: a TLS server the clients will refuse (verification is never turned off,
    // so it is not called a hub), and what to do about it.
    let untrusted = m.run(&["doctor", "--json", "--port", &port], &[]);
    expect(
        &checks(&untrusted),
        "port",
        "warn",
        &["TLS server this machine cannot verify", "not trusted"],
        &["--cacert", "SIGHTLINE_CA_FILE", "choose another port"],
    );
}

fn setting<'a>(settings: &'a [Value], name: &str) -> &'a Value {
    settings
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no setting {name}: {settings:?}"))
}

#[test]
fn config_names_the_origin_of_every_setting_and_hides_tokens() {
    let m = Machine::new();
    let file = m.dir("config").join("sightline/config.toml");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        "retention = \"3d\"\nbind = \"127.0.0.1\"\nport = 6000\n",
    )
    .unwrap();
    let secret = "s3cret-token-value-that-must-not-print";
    let db = m.dir("elsewhere.db");
    let out = m.run(
        &["config", "--json", "--port", "5000"],
        &[
            ("SIGHTLINE_DB", db.to_str().unwrap()),
            ("SIGHTLINE_TOKEN", secret),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(secret), "a token was printed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings = v["settings"].as_array().unwrap();
    let s = setting(settings, "port");
    assert_eq!(
        (
            s["value"].as_str(),
            s["source"].as_str(),
            s["from"].as_str()
        ),
        (Some("5000"), Some("flag"), Some("--port"))
    );
    let s = setting(settings, "db");
    assert_eq!(s["value"], db.to_str().unwrap());
    assert_eq!(
        (s["source"].as_str(), s["from"].as_str()),
        (Some("env"), Some("SIGHTLINE_DB"))
    );
    let s = setting(settings, "retention");
    assert_eq!(s["value"], "3d");
    assert_eq!(s["source"], "config_file");
    assert_eq!(s["from"], file.to_str().unwrap());
    let s = setting(settings, "max_body");
    assert_eq!(
        (s["value"].as_str(), s["source"].as_str()),
        (Some("8388608"), Some("default"))
    );
    let s = setting(settings, "token");
    assert_eq!(
        (s["value"].as_str(), s["secret"].as_bool()),
        (Some("set"), Some(true))
    );
    assert_eq!(s["from"], "SIGHTLINE_TOKEN");
    let s = setting(settings, "config");
    assert_eq!(s["value"], file.to_str().unwrap());
    assert_eq!(s["source"], "default");
    // The audit log follows the database unless set.
    let s = setting(settings, "audit_log");
    assert_eq!(s["value"], format!("{}.audit.jsonl", db.display()));

    // The table says the same in words.
    let out = m.run(
        &["config", "--port", "5000"],
        &[("SIGHTLINE_TOKEN", secret)],
    );
    let table = text(&out);
    assert!(!table.contains(secret));
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} line in:\n{table}"))
            .to_string()
    };
    assert!(
        line("port").contains("5000") && line("port").ends_with("flag --port"),
        "{table}"
    );
    assert!(
        line("retention").ends_with(&format!("config file {}", file.display())),
        "{table}"
    );
    assert!(
        line("token").contains("set") && line("token").ends_with("env SIGHTLINE_TOKEN"),
        "{table}"
    );
    assert!(line("tls_cert").contains("(not set)"), "{table}");

    // A broken config file is reported with exit code 2, the rest still shown.
    std::fs::write(&file, "prot = 1\n").unwrap();
    let out = m.run(&["config"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("prot"), "{}", text(&out));
    let out = m.run(&["doctor", "--json"], &[]);
    expect(
        &checks(&out),
        "config",
        "fail",
        &["prot"],
        &["SIGHTLINE_CONFIG"],
    );
}
