//! `sightline-loadtest`: live fan-out under load. Starts a real hub (the `sightline` binary,
//! its own process so its RSS and CPU can be read from /proc), connects N WebSocket and M SSE
//! subscribers, ingests events at a fixed rate with single-event POSTs, and prints delivery
//! latency (producer send → subscriber receive, so it includes the commit), hub RSS and CPU,
//! and whether every subscriber got every event.
//!
//! Everything runs on loopback on this machine and stops by itself after `--duration`. It must
//! never target another address.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
#[command(about = "1,000 live subscribers against a real sightline hub while events are ingested")]
struct Args {
    /// The hub binary (default: `sightline` beside this program).
    #[arg(long)]
    hub: Option<std::path::PathBuf>,
    /// WebSocket subscribers.
    #[arg(long, default_value_t = 500)]
    ws: usize,
    /// SSE subscribers.
    #[arg(long, default_value_t = 500)]
    sse: usize,
    /// Events per second ingested.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Seconds of measurement (after warm-up).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds of warm-up (events sent, latency not recorded).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    json: bool,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Latency histogram in 10 µs buckets up to 2 s, shared by every subscriber.
struct Histogram {
    buckets: Vec<AtomicU64>,
    over: AtomicU64,
    max_us: AtomicU64,
    count: AtomicU64,
}

const BUCKET_US: u64 = 10;
const BUCKETS: usize = 200_000;

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            over: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn record(&self, us: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        match self.buckets.get((us / BUCKET_US) as usize) {
            Some(b) => b.fetch_add(1, Ordering::Relaxed),
            None => self.over.fetch_add(1, Ordering::Relaxed),
        };
    }

    fn quantile(&self, q: f64) -> f64 {
        let total = self.count.load(Ordering::Relaxed);
        if total == 0 {
            return f64::NAN;
        }
        let target = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= target {
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        self.max_us.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

struct Shared {
    hist: Histogram,
    recording: AtomicBool,
    /// Events received by all subscribers during the recording window.
    received: AtomicU64,
    lagged: AtomicU64,
    errors: AtomicU64,
}

/// Pulls `"t_ns":<digits>` out of an event's JSON without parsing all of it: the client must
/// stay cheaper than the hub it measures.
fn sent_ns(text: &[u8]) -> Option<u64> {
    let key = b"\"t_ns\":";
    let pos = text.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: Vec<u8> = text[pos..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

fn observe(shared: &Shared, text: &[u8]) {
    let Some(sent) = sent_ns(text) else { return };
    if shared.recording.load(Ordering::Relaxed) {
        shared.received.fetch_add(1, Ordering::Relaxed);
        shared.hist.record(now_ns().saturating_sub(sent) / 1000);
    }
}

async fn ws_subscriber(addr: String, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await else {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let sub = r#"{"type":"subscribe","id":1,"filter":{"runs":["load"]}}"#;
    if ws.send(Message::Text(sub.into())).await.is_err() {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let b = t.as_bytes();
                if b.starts_with(br#"{"type":"lagged""#) {
                    shared.lagged.fetch_add(1, Ordering::Relaxed);
                }
                observe(&shared, b);
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(_) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

async fn sse_subscriber(addr: String, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = match format!("http://{addr}/api/v1/events/stream?runs=load").parse() {
        Ok(u) => u,
        Err(_) => return,
    };
    let Ok(res) = client.get(uri).await else {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut body = res.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(500), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                        observe(&shared, &buf[..end]);
                        buf.drain(..end + 2);
                    }
                }
            }
            Ok(Some(Err(_))) | Ok(None) => {
                shared.errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(_) => {}
        }
    }
}

/// (RSS bytes, CPU seconds) of a process, from /proc.
fn proc_usage(pid: u32) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((rss_kb * 1024, ticks / 100.0))
}

struct HubProcess(Child);

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let hub_bin = match &args.hub {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("the program's directory")?
            .join("sightline"),
    };
    if !hub_bin.exists() {
        bail!(
            "no hub binary at {}: build it (cargo build -p sightline) or pass --hub",
            hub_bin.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let mut child = Command::new(&hub_bin)
        .args(["serve", "--port", "0", "--source", "http", "--db"])
        .arg(dir.path().join("db.sqlite"))
        .env("HOME", dir.path())
        .env_remove("SIGHTLINE_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", hub_bin.display()))?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().context("hub stdout")?).read_line(&mut line)?;
    let hub = HubProcess(child);
    let pid = hub.0.id();
    let addr = line
        .trim()
        .strip_prefix("sightline listening on http://")
        .with_context(|| format!("unexpected hub output {line:?}"))?
        .to_string();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args, addr, pid))
}

async fn run(args: Args, addr: String, pid: u32) -> anyhow::Result<()> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_rss, _) = proc_usage(pid).context("reading the hub's /proc")?;
    let shared = Arc::new(Shared {
        hist: Histogram::new(),
        recording: AtomicBool::new(false),
        received: AtomicU64::new(0),
        lagged: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let connect_started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.ws.max(args.sse) {
        if i < args.ws {
            tasks.push(tokio::spawn(ws_subscriber(
                addr.clone(),
                shared.clone(),
                stop.clone(),
            )));
        }
        if i < args.sse {
            tasks.push(tokio::spawn(sse_subscriber(
                addr.clone(),
                shared.clone(),
                stop.clone(),
            )));
        }
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Wait until the hub counts every subscriber.
    let subscribers = (args.ws + args.sse) as u64;
    let probe: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = probe
            .get(format!("http://{addr}/api/v1/health").parse()?)
            .await?;
        let body = res.into_body().collect().await?.to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        if v["subscribers"].as_u64().unwrap_or(0) >= subscribers {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {subscribers} subscribers connected",
                v["subscribers"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_time = connect_started.elapsed();
    let (connected_rss, _) = proc_usage(pid).unwrap_or((0, 0.0));

    // The producer: single-event POSTs at a fixed rate, each stamped with its send time.
    let producer: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http();
    let sent = Arc::new(AtomicU64::new(0));
    let sent_recorded = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let total = Duration::from_secs(args.warmup + args.duration);
    let period = Duration::from_nanos(1_000_000_000 / args.rate.max(1));
    let started = Instant::now();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut cpu_start = None;
    let mut peak_rss = connected_rss;
    let mut last_sample = Instant::now();
    let uri: hyper::Uri = format!("http://{addr}/api/v1/events").parse()?;
    let mut i: u64 = 0;
    while started.elapsed() < total {
        ticker.tick().await;
        let recording = started.elapsed() >= Duration::from_secs(args.warmup);
        if recording && !shared.recording.load(Ordering::Relaxed) {
            shared.recording.store(true, Ordering::Relaxed);
            cpu_start = proc_usage(pid).map(|(_, c)| (c, Instant::now()));
        }
        if last_sample.elapsed() > Duration::from_millis(500) {
            if let Some((rss, _)) = proc_usage(pid) {
                peak_rss = peak_rss.max(rss);
            }
            last_sample = Instant::now();
        }
        i += 1;
        let body = format!(
            r#"{{"source":"custom","source_event":"load","entity_type":"log","run_id":"load","title":"load event {i}","payload":{{"t_ns":{}}}}}"#,
            now_ns()
        );
        let req = hyper::Request::post(uri.clone())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let (producer, sent, failed, sent_recorded) = (
            producer.clone(),
            sent.clone(),
            failed.clone(),
            sent_recorded.clone(),
        );
        tokio::spawn(async move {
            match producer.request(req).await {
                Ok(r) if r.status().as_u16() == 202 => {
                    let _ = r.into_body().collect().await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if recording {
                        sent_recorded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let window = cpu_start.map(|(_, t)| t.elapsed()).unwrap_or_default();
    let cpu = match (cpu_start, proc_usage(pid)) {
        (Some((c0, _)), Some((rss, c1))) => {
            peak_rss = peak_rss.max(rss);
            (c1 - c0) / window.as_secs_f64() * 100.0
        }
        _ => f64::NAN,
    };
    // Let in-flight events arrive before stopping the count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    shared.recording.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let expected = sent_recorded.load(Ordering::Relaxed) * subscribers;
    let received = shared.received.load(Ordering::Relaxed);
    let h = &shared.hist;
    let report = serde_json::json!({
        "ws_subscribers": args.ws, "sse_subscribers": args.sse, "rate": args.rate,
        "duration_s": args.duration, "events_sent": sent.load(Ordering::Relaxed),
        "events_failed": failed.load(Ordering::Relaxed),
        "deliveries_expected": expected, "deliveries_received": received,
        "latency_ms": {"p50": h.quantile(0.50), "p90": h.quantile(0.90), "p99": h.quantile(0.99),
                       "p999": h.quantile(0.999), "max": h.max_us.load(Ordering::Relaxed) as f64 / 1000.0},
        "hub_rss_mb": {"idle": idle_rss as f64 / 1e6, "connected": connected_rss as f64 / 1e6, "peak": peak_rss as f64 / 1e6},
        "hub_cpu_percent": cpu, "connect_s": connect_time.as_secs_f64(),
        "lagged_notices": shared.lagged.load(Ordering::Relaxed),
        "subscriber_errors": shared.errors.load(Ordering::Relaxed),
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "live fan-out: {} WS + {} SSE subscribers, {} events/s for {} s (after {} s warm-up)",
            args.ws, args.sse, args.rate, args.duration, args.warmup
        );
        println!(
            "  events sent {} (failed {}), deliveries {received} of {expected} expected",
            report["events_sent"], report["events_failed"]
        );
        println!(
            "  delivery latency (send → receive, includes commit): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            h.quantile(0.5),
            h.quantile(0.9),
            h.quantile(0.99),
            h.quantile(0.999),
            h.max_us.load(Ordering::Relaxed) as f64 / 1000.0
        );
        println!(
            "  hub RSS: idle {:.1} MB, with subscribers {:.1} MB, peak {:.1} MB",
            idle_rss as f64 / 1e6,
            connected_rss as f64 / 1e6,
            peak_rss as f64 / 1e6
        );
        println!("  hub CPU: {cpu:.0} % of one core (measurement window)");
        println!(
            "  connecting {subscribers} subscribers took {:.2} s; lagged notices {}, subscriber errors {}",
            connect_time.as_secs_f64(),
            report["lagged_notices"],
            report["subscriber_errors"]
        );
    }
    Ok(())
}
