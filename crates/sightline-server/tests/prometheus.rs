//! A real Prometheus scrapes a running hub: Debian's `prometheus` package (it ships
//! `prometheus` and `promtool`). The hub serves on port 0 with a `read` token; Prometheus
//! scrapes `/metrics` every second with it; the target must turn `up` and a query must return
//! the events the test posted; `promtool check metrics` must find no problem in the text.
//!
//! Without Prometheus the test fails and says how to install it: a skipped test would prove
//! nothing. It ends only the Prometheus it started, by its pid.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use sightline_core::Role;

const READ_TOKEN: &str = "prometheus-read-token-0123";

fn need(tool: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        other => panic!(
            "`{tool}` is missing ({other:?}); this test needs a real Prometheus. Install Debian's \
             package: `apt-get update && apt-get install -y prometheus` (as root, or with sudo; \
             scripts/test.sh does it)"
        ),
    }
}

/// The Prometheus this test started; dropped, it is ended by its pid.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(dir: &Path, target: &str) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: sightline\n    metrics_path: /metrics\n\
             \x20   authorization:\n      type: Bearer\n      credentials: {READ_TOKEN}\n\
             \x20   static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// A Prometheus API answer's `data`, or None while it is not answering yet.
fn api(prom: &Prometheus, path_and_query: &str) -> Option<Value> {
    let mut res = agent()
        .get(format!("{}{path_and_query}", prom.url))
        .call()
        .ok()?;
    if res.status().as_u16() != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&res.body_mut().read_to_string().ok()?).ok()?;
    (v["status"] == "success").then(|| v["data"].clone())
}

/// Waits until `f` gives something, or fails with Prometheus's own log.
fn wait_for<T>(dir: &Path, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
            panic!("{what} within 60 s; prometheus.log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The value of the first sample a query returns whose labels include `labels`.
fn sample(data: &Value, labels: &[(&str, &str)]) -> Option<f64> {
    data["result"]
        .as_array()?
        .iter()
        .find(|r| labels.iter().all(|(k, v)| r["metric"][*k] == *v))?["value"][1]
        .as_str()?
        .parse()
        .ok()
}

#[test]
fn a_real_prometheus_scrapes_the_hub_and_promtool_finds_no_problem() {
    need("prometheus");
    need("promtool");
    let hub = TestHub::start_with(|_, settings| {
        settings.token = Some("owner-token-0123".into());
        settings
            .security
            .tokens
            .add(READ_TOKEN, &[Role::Read], "prometheus")
            .unwrap();
    });
    // Ingest needs a token too now: the owner's.
    let events: Vec<_> = (0..25).map(|i| event("prom", i)).collect();
    let mut res = agent()
        .post(format!("{}/api/v1/events", hub.url))
        .header("Content-Type", "application/x-ndjson")
        .header("Authorization", "Bearer owner-token-0123")
        .send(ndjson(&events).as_bytes())
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        202,
        "{}",
        res.body_mut().read_to_string().unwrap()
    );

    // The text, as the read token gets it; without a token the hub refuses.
    let scrape = |token: Option<&str>| {
        let mut req = agent().get(format!("{}/metrics", hub.url));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut res = req.call().unwrap();
        let status = res.status().as_u16();
        (status, res.body_mut().read_to_string().unwrap())
    };
    assert_eq!(scrape(None).0, 401);
    let (status, text) = scrape(Some(READ_TOKEN));
    assert_eq!(status, 200, "{text}");

    // promtool: the format and the naming conventions (units, `_total`, help on every family).
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    eprintln!(
        "promtool check metrics: {} {:?}",
        checked.status,
        said.trim()
    );
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool check metrics: {}\n{said}\n--- the text:\n{text}",
        checked.status
    );

    // Prometheus scrapes it every second with the read token.
    let dir = tempfile::tempdir().unwrap();
    let target = hub.url.trim_start_matches("http://").to_string();
    let prom = start_prometheus(dir.path(), &target);
    let up = wait_for(dir.path(), "the target turned up", || {
        let data = api(&prom, "/api/v1/targets")?;
        let t = data["activeTargets"]
            .as_array()?
            .iter()
            .find(|t| t["labels"]["job"] == "sightline")?
            .clone();
        (t["health"] == "up").then_some(t)
    });
    assert_eq!(up["lastError"], "", "{up}");
    assert_eq!(up["scrapeUrl"], format!("{}/metrics", hub.url));

    let accepted = wait_for(dir.path(), "a sample of the posted events", || {
        let data = api(&prom, "/api/v1/query?query=sightline_events_accepted_total")?;
        sample(&data, &[("source", "http"), ("job", "sightline")]).filter(|v| *v > 0.0)
    });
    assert_eq!(accepted, 25.0);
    eprintln!(
        "prometheus: target {target} up; sightline_events_accepted_total{{source=\"http\"}} = {accepted}"
    );
    // The histograms arrive whole: Prometheus can take a quantile of the commit latency.
    let batches = wait_for(dir.path(), "the commit histogram", || {
        let data = api(
            &prom,
            "/api/v1/query?query=sightline_commit_latency_seconds_count",
        )?;
        sample(&data, &[("job", "sightline")])
    });
    assert!(batches >= 1.0);
    let p99 = wait_for(dir.path(), "a commit latency quantile", || {
        let data = api(
            &prom,
            "/api/v1/query?query=histogram_quantile(0.99,sightline_commit_latency_seconds_bucket)",
        )?;
        sample(&data, &[("job", "sightline")]).filter(|v| v.is_finite())
    });
    assert!(p99 > 0.0 && p99 <= 10.0, "{p99}");
    let up_metric = wait_for(dir.path(), "the scrape's own up series", || {
        let data = api(&prom, "/api/v1/query?query=up")?;
        sample(&data, &[("job", "sightline")])
    });
    assert_eq!(up_metric, 1.0);
    drop(prom);
}
