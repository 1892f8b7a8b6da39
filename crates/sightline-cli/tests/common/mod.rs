//! What the CLI's integration tests share: a `sightline serve` child process (started on port
//! 0, its URL read from the "sightline listening on" line), a hub run in the test's own process
//! for tests that stop and restart it on a fixed port, and an HTTP agent that returns error
//! statuses instead of failing on them. Each test binary uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

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

/// A hub served from inside the test process (so a test can stop it and start another on the
/// same port and database), with the adapters' routes as the binary has them.
pub struct InProcessHub {
    runtime: tokio::runtime::Runtime,
    running: Option<sightline_server::Running>,
    pub url: String,
}

impl InProcessHub {
    /// Port 0 picks a free port.
    pub fn start(db: &Path, port: u16) -> InProcessHub {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let running = runtime.block_on(async {
            let hub = sightline_server::open_hub(
                sightline_store::StoreConfig::new(db),
                sightline_server::HubSettings::default(),
            )
            .unwrap();
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                .await
                .unwrap();
            sightline_server::start_with(hub, listener, sightline_adapters::routes()).unwrap()
        });
        let url = format!("http://{}", running.addr);
        InProcessHub {
            runtime,
            running: Some(running),
            url,
        }
    }

    /// The first 1,000 stored events, oldest first.
    pub fn events(&self) -> Vec<Value> {
        let mut res = agent()
            .get(format!("{}/api/v1/search?order=asc&limit=1000", self.url))
            .call()
            .unwrap();
        let v: Value = serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap();
        v["events"].as_array().unwrap().clone()
    }

    /// Stops serving (draining the store) and frees the port.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.runtime.block_on(r.stop());
        }
    }
}

impl Drop for InProcessHub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP agent that hands back 4xx/5xx answers instead of erroring, with a 20 s limit.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .new_agent()
}

/// A loopback port nothing listens on right now (for a hub started later on a fixed port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
