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
#[command(
    name = "sightline-loadtest",
    about = "1,000 live subscribers against a real sightline hub while events are ingested"
)]
struct Args {
    /// The hub binary. Default: `sightline` beside this program.
    #[arg(long, value_name = "PATH")]
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
    /// Spread events over this many runs, each subscriber following one (1: every subscriber
    /// receives every event).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Print one JSON line instead of the table. Default: off (the table).
    #[arg(long)]
    json: bool,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Latency histogram with log buckets (2 % wide) from 1 µs to over a minute. Each subscriber
/// keeps its own (no shared counters on the hot path) and they are merged at the end.
#[derive(Clone)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    max_us: u64,
}

const GROWTH: f64 = 1.02;
const BUCKETS: usize = 1000;

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: vec![0; BUCKETS],
            count: 0,
            max_us: 0,
        }
    }

    fn record(&mut self, us: u64) {
        self.count += 1;
        self.max_us = self.max_us.max(us);
        let i = (((us + 1) as f64).ln() / GROWTH.ln()) as usize;
        self.buckets[i.min(BUCKETS - 1)] += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// The upper edge of the bucket holding quantile `q`, in ms.
    fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let target = (self.count as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= target {
                return (GROWTH.powi(i as i32 + 1) - 1.0).min(self.max_us as f64) / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }
}

struct Shared {
    recording: AtomicBool,
    lagged: AtomicU64,
    errors: AtomicU64,
}

/// Pulls `"t_ns":<digits>` out of an event's JSON without parsing it: the payload is the
/// event's last field, so the search starts from the end. The client must stay cheaper than
/// the hub it measures.
fn sent_ns(text: &[u8]) -> Option<u64> {
    let key = b"\"t_ns\":";
    let from = text.len().saturating_sub(64);
    let pos = text[from..].windows(key.len()).rposition(|w| w == key)? + from + key.len();
    let mut n: u64 = 0;
    let mut any = false;
    for b in &text[pos..] {
        if !b.is_ascii_digit() {
            break;
        }
        any = true;
        n = n * 10 + (b - b'0') as u64;
    }
    any.then_some(n)
}

/// What one subscriber saw while recording.
struct Seen {
    hist: Histogram,
    received: u64,
}

fn observe(shared: &Shared, seen: &mut Seen, text: &[u8]) {
    if !shared.recording.load(Ordering::Relaxed) {
        return;
    }
    let Some(sent) = sent_ns(text) else { return };
    seen.received += 1;
    seen.hist.record(now_ns().saturating_sub(sent) / 1000);
}

async fn ws_subscriber(
    addr: String,
    run: String,
    shared: Arc<Shared>,
    seen: Arc<std::sync::Mutex<Seen>>,
) {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(16 * 1024);
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async_with_config(
        format!("ws://{addr}/ws"),
        Some(config),
        false,
    )
    .await
    else {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let sub = format!(r#"{{"type":"subscribe","id":1,"filter":{{"runs":["{run}"]}}}}"#);
    if ws.send(Message::Text(sub.into())).await.is_err() {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    // Stopped by aborting the task: no timer per message.
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Text(t)) => {
                let b = t.as_bytes();
                if b.starts_with(br#"{"type":"lagged""#) {
                    shared.lagged.fetch_add(1, Ordering::Relaxed);
                }
                observe(&shared, &mut seen.lock().expect("seen"), b);
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    shared.errors.fetch_add(1, Ordering::Relaxed);
}

async fn sse_subscriber(
    addr: String,
    run: String,
    shared: Arc<Shared>,
    seen: Arc<std::sync::Mutex<Seen>>,
) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = match format!("http://{addr}/api/v1/events/stream?runs={run}").parse() {
        Ok(u) => u,
        Err(_) => return,
    };
    let Ok(res) = client.get(uri).await else {
        shared.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let mut body = res.into_body();
    let mut buf: Vec<u8> = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            let mut start = 0;
            while let Some(end) = buf[start..].windows(2).position(|w| w == b"\n\n") {
                observe(
                    &shared,
                    &mut seen.lock().expect("seen"),
                    &buf[start..start + end],
                );
                start += end + 2;
            }
            buf.drain(..start);
        }
    }
    shared.errors.fetch_add(1, Ordering::Relaxed);
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
        recording: AtomicBool::new(false),
        lagged: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let mut seens = Vec::new();
    let runs = args.runs.max(1);
    let mut runs_of: Vec<usize> = Vec::new();
    let sent_per_run: Arc<Vec<AtomicU64>> =
        Arc::new((0..runs).map(|_| AtomicU64::new(0)).collect());
    let connect_started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..args.ws.max(args.sse) {
        let seen = || {
            Arc::new(std::sync::Mutex::new(Seen {
                hist: Histogram::new(),
                received: 0,
            }))
        };
        if i < args.ws {
            let s = seen();
            seens.push(s.clone());
            runs_of.push(i % runs);
            tasks.push(tokio::spawn(ws_subscriber(
                addr.clone(),
                format!("load-{}", i % runs),
                shared.clone(),
                s,
            )));
        }
        if i < args.sse {
            let s = seen();
            seens.push(s.clone());
            runs_of.push((i + 1) % runs);
            tasks.push(tokio::spawn(sse_subscriber(
                addr.clone(),
                format!("load-{}", (i + 1) % runs),
                shared.clone(),
                s,
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
    let mut client_cpu_start = None;
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
            client_cpu_start = proc_usage(std::process::id()).map(|(_, c)| c);
        }
        if last_sample.elapsed() > Duration::from_millis(500) {
            if let Some((rss, _)) = proc_usage(pid) {
                peak_rss = peak_rss.max(rss);
            }
            last_sample = Instant::now();
        }
        i += 1;
        let body = format!(
            r#"{{"source":"custom","source_event":"load","entity_type":"log","run_id":"load-{}","title":"load event {i}","payload":{{"t_ns":{}}}}}"#,
            i as usize % runs,
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
        let (per_run, run) = (sent_per_run.clone(), i as usize % runs);
        tokio::spawn(async move {
            match producer.request(req).await {
                Ok(r) if r.status().as_u16() == 202 => {
                    let _ = r.into_body().collect().await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if recording {
                        sent_recorded.fetch_add(1, Ordering::Relaxed);
                        per_run[run].fetch_add(1, Ordering::Relaxed);
                    }
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let window = cpu_start.map(|(_, t)| t.elapsed()).unwrap_or_default();
    let client_cpu = match (client_cpu_start, proc_usage(std::process::id())) {
        (Some(c0), Some((_, c1))) => (c1 - c0) / window.as_secs_f64() * 100.0,
        _ => f64::NAN,
    };
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
    let errors_before_stop = shared.errors.load(Ordering::Relaxed);
    for t in &tasks {
        t.abort();
    }
    let mut hist = Histogram::new();
    let mut received = 0;
    let mut starved = 0;
    let mut expected = 0;
    for (s, run) in seens.iter().zip(&runs_of) {
        let per_sub = sent_per_run[*run].load(Ordering::Relaxed);
        expected += per_sub;
        let s = s.lock().expect("seen");
        hist.merge(&s.hist);
        received += s.received;
        if s.received < per_sub {
            starved += 1;
        }
    }
    let h = &hist;
    let report = serde_json::json!({
        "ws_subscribers": args.ws, "sse_subscribers": args.sse, "rate": args.rate,
        "duration_s": args.duration, "runs": runs, "events_sent": sent.load(Ordering::Relaxed),
        "events_failed": failed.load(Ordering::Relaxed),
        "deliveries_expected": expected, "deliveries_received": received,
        "latency_ms": {"p50": h.quantile(0.50), "p90": h.quantile(0.90), "p99": h.quantile(0.99),
                       "p999": h.quantile(0.999), "max": h.max_us as f64 / 1000.0},
        "hub_rss_mb": {"idle": idle_rss as f64 / 1e6, "connected": connected_rss as f64 / 1e6, "peak": peak_rss as f64 / 1e6},
        "hub_cpu_percent": cpu, "client_cpu_percent": client_cpu,
        "load_average": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().next().unwrap_or("").to_string(), "connect_s": connect_time.as_secs_f64(),
        "lagged_notices": shared.lagged.load(Ordering::Relaxed),
        "subscriber_errors": errors_before_stop,
        "subscribers_short": starved,
    });
    if args.json {
        println!("{report}");
    } else {
        println!(
            "live fan-out: {} WS + {} SSE subscribers, {} events/s spread over {} run(s), each subscriber following one, for {} s (after {} s warm-up)",
            args.ws, args.sse, args.rate, runs, args.duration, args.warmup
        );
        println!(
            "  events sent {} (failed {}), deliveries {received} of {expected} expected ({starved} subscribers short)",
            report["events_sent"], report["events_failed"]
        );
        println!(
            "  delivery latency (send → receive, includes commit): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            h.quantile(0.5),
            h.quantile(0.9),
            h.quantile(0.99),
            h.quantile(0.999),
            h.max_us as f64 / 1000.0
        );
        println!(
            "  hub RSS: idle {:.1} MB, with subscribers {:.1} MB, peak {:.1} MB",
            idle_rss as f64 / 1e6,
            connected_rss as f64 / 1e6,
            peak_rss as f64 / 1e6
        );
        println!(
            "  hub CPU: {cpu:.0} % of one core; this load client: {client_cpu:.0} %; machine load average {}",
            report["load_average"]
        );
        println!(
            "  connecting {subscribers} subscribers took {:.2} s; lagged notices {}, subscriber errors {}",
            connect_time.as_secs_f64(),
            report["lagged_notices"],
            report["subscriber_errors"]
        );
    }
    Ok(())
}
