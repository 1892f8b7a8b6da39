//! Helpers for the adapters' integration tests: a real hub with the adapters' routes on
//! 127.0.0.1:0 over a temp SQLite file, optional background adapters, and a blocking client.

#![allow(dead_code)]

pub mod peers;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_adapters::{AdapterConfig, Adapters, Registration};
use sightline_server::{HubSettings, Running, open_hub, start_with};
use sightline_store::StoreConfig;

pub struct TestHub {
    pub running: Option<Running>,
    pub adapters: Option<Adapters>,
    pub url: String,
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub runtime: tokio::runtime::Runtime,
}

impl TestHub {
    pub fn start() -> TestHub {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let db = dir.path().join("db.sqlite");
        let store = StoreConfig::new(&db);
        let running = runtime.block_on(async {
            let hub = open_hub(store, HubSettings::default()).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            start_with(hub, listener, sightline_adapters::routes()).unwrap()
        });
        let url = format!("http://{}", running.addr);
        TestHub {
            running: Some(running),
            adapters: None,
            url,
            dir,
            db,
            runtime,
        }
    }

    /// A config whose paths all live in this hub's temp dir.
    pub fn config(&self) -> AdapterConfig {
        let mut c = AdapterConfig::from_env(&self.dir.path().join("data"), &self.db);
        c.claude_dir = self.dir.path().join("claude");
        c.opencode_spool = self.dir.path().join("jsonl");
        c.jsonl_paths = vec![c.opencode_spool.clone()];
        c.log_files = vec![];
        c.poll = Duration::from_millis(100);
        c
    }

    pub fn start_adapters(
        &mut self,
        registry: &[Registration],
        config: &AdapterConfig,
        names: &[&str],
    ) {
        let hub = self.running.as_ref().unwrap().hub.clone();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let _guard = self.runtime.enter();
        self.adapters = Some(Adapters::start(hub, registry, config, Some(&names)).unwrap());
    }

    pub fn stop_adapters(&mut self) {
        if let Some(a) = self.adapters.take() {
            self.runtime.block_on(a.stop());
        }
    }

    pub fn stop(&mut self) {
        self.stop_adapters();
        if let Some(r) = self.running.take() {
            self.runtime.block_on(r.stop()).unwrap();
        }
    }

    pub fn get(&self, path: &str) -> Value {
        let (status, body) = get(&format!("{}{path}", self.url));
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        post(
            &format!("{}{path}", self.url),
            "application/json",
            body.to_string(),
        )
    }

    /// Every stored event (oldest first).
    pub fn events(&self) -> Vec<Value> {
        let v = self.get("/api/v1/search?order=asc&limit=1000");
        v["events"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until `check` holds on the stored events.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let events = self.events();
            if check(&events) {
                return events;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {what}; have {} events: {}",
                    events.len(),
                    serde_json::to_string_pretty(&events).unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The bytes of the database and its WAL, for "the secret is not on disk" checks.
    pub fn db_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.db.clone().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(PathBuf::from(p)) {
                out.extend(b);
            }
        }
        out
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

fn read(mut res: ureq::http::Response<ureq::Body>) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

pub fn post(url: &str, content_type: &str, body: impl AsRef<[u8]>) -> (u16, Value) {
    read(
        agent()
            .post(url)
            .header("Content-Type", content_type)
            .send(body.as_ref())
            .unwrap(),
    )
}

pub fn get(url: &str) -> (u16, Value) {
    read(agent().get(url).call().unwrap())
}

/// True when `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}
