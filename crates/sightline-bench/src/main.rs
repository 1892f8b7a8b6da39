//! The budget benchmark (docs/CONTRACT.md §9): starts the real `sightline` binary on a temp database,
//! drives it over loopback HTTP/SSE, and prints one line per budget.
//!
//! Run: `cargo build --release && cargo run --release -p sightline-bench` (`--help` lists every
//! option with its default). It measures and prints; it never asserts (machines are noisy;
//! budgets are judged from the printed figures), and it must never read an option clap's
//! `Args` does not declare (the help is written from it).

mod soak;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Options {
    events: usize,
    seconds: f64,
    /// Only the in-process writer phase (for profiling the store).
    store_only: bool,
    /// Only one phase against the hub (`batched` or `fanout`), for profiling it.
    only: Option<String>,
    /// Producers posting batches at once in the batched phase.
    connections: usize,
    /// `--soak MINUTES`: the long steady-load run instead of the budget phases.
    soak: Option<soak::SoakOptions>,
}

/// The command line. clap writes `--help` from it (each option with its default) and answers
/// an unknown option with the usage and exit code 2, so the help and the parser cannot drift.
#[derive(Debug, Parser)]
#[command(
    name = "sightline-bench",
    about = "Prints one line per budget of docs/CONTRACT.md §9, measured against the real `sightline` \
             binary beside this one (or $SIGHTLINE_BIN) on a temporary database. It measures and \
             prints; it never asserts.",
    after_help = "Without --soak: the store-alone phase, then the single, fanout and batched phases \
                  against the hub (--only picks one of them, --store-only the first alone). \
                  With --soak: the long steady-load run instead, tuned by --rate, --subscribers, \
                  --reconnect and --every."
)]
struct Args {
    /// Events posted in the stored-volume (batched) phase.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    events: usize,
    /// Seconds each timed phase runs.
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    seconds: f64,
    /// Run only the in-process store phase, without a hub (for profiling the store). Default: off.
    #[arg(long)]
    store_only: bool,
    /// Run only this phase against the hub (for profiling it). Default: every phase.
    #[arg(long, value_name = "PHASE", value_parser = ["single", "fanout", "batched"])]
    only: Option<String>,
    /// Producers posting batches at once in the batched phase.
    #[arg(long, value_name = "N", default_value_t = 4)]
    connections: usize,
    /// Run the long steady-load soak for this many minutes instead of the budget phases.
    /// Default: no soak.
    #[arg(long, value_name = "MINUTES")]
    soak: Option<f64>,
    /// Soak: events per second posted.
    #[arg(long, value_name = "EVENTS_PER_S", default_value_t = 1000)]
    rate: usize,
    /// Soak: live subscribers.
    #[arg(long, value_name = "N", default_value_t = 50)]
    subscribers: usize,
    /// Soak: seconds between a subscriber's reconnects.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    reconnect: f64,
    /// Soak: seconds between two printed samples.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    every: f64,
    /// Ignored: `cargo bench` passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

fn options() -> Options {
    let args = Args::parse();
    Options {
        events: args.events,
        seconds: args.seconds,
        store_only: args.store_only,
        only: args.only,
        connections: args.connections,
        soak: args.soak.map(|minutes| soak::SoakOptions {
            minutes,
            rate: args.rate,
            subscribers: args.subscribers,
            reconnect_s: args.reconnect,
            every_s: args.every,
        }),
    }
}

/// The hub under test: the release binary beside this one.
struct Hub {
    child: Child,
    url: String,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_hub() -> anyhow::Result<Hub> {
    let exe = std::env::current_exe()?;
    let bin = std::env::var_os("SIGHTLINE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| exe.parent().unwrap().join("sightline"));
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("bench.sqlite");
    let mut child = Command::new(&bin)
        .args(["serve", "--port", "0", "--db"])
        .arg(&db)
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with `cargo build --release`)",
                bin.display()
            )
        })?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )?;
    let url = line
        .trim()
        .strip_prefix("sightline listening on ")
        .context("hub did not start")?
        .to_string();
    Ok(Hub {
        child,
        url,
        db,
        _dir: dir,
    })
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A realistic event of about 600 bytes (docs/CONTRACT.md §9's disk budget is for ≈ 600-byte events):
/// a tool call of one of many runs. Twenty runs are
/// active at a time (their events interleave), and each run has about 100 events.
fn event(i: usize, runs: usize, base_ms: i64) -> String {
    let run = ((i / 2000) * 20 + i % 20) % runs.max(1);
    let session = if i.is_multiple_of(5) {
        format!("r{run}-sub{}", i % 3)
    } else {
        format!("r{run}")
    };
    let ts_ms = base_ms + (i as i64 * 86_400_000 / 1_000_000);
    let ts = sightline_schema::Timestamp(ts_ms).to_rfc3339();
    let (status, severity) = if i.is_multiple_of(97) {
        ("failed", "error")
    } else {
        ("success", "info")
    };
    format!(
        concat!(
            r#"{{"event_id":"bench-{i}","ts":"{ts}","source":"claude","source_event":"PostToolUse","run_id":"r{run}","#,
            r#""session_id":"{session}","agent":"main","entity_type":"tool","entity_id":"toolu_{i:08}","status":"{status}","#,
            r#""severity":"{severity}","title":"Bash cargo test -p crate{m}","duration_ms":{d},"correlation_id":"toolu_{i:08}","#,
            r#""metrics":{{"input_tokens":{it},"output_tokens":{ot},"cost_usd":0.0012}},"#,
            r#""payload":{{"tool_name":"Bash","tool_input":{{"command":"cargo test -p crate{m}"}},"#,
            r#""tool_response":{{"stdout":"running 12 tests\ntest result: ok. 12 passed; 0 failed","exit_code":0}},"cwd":"/home/dev/project"}}}}"#
        ),
        i = i,
        ts = ts,
        run = run,
        session = session,
        status = status,
        severity = severity,
        m = i % 50,
        d = 10 + i % 900,
        it = 100 + i % 1000,
        ot = 10 + i % 200
    )
}

async fn post(
    client: &HttpClient,
    url: &str,
    content_type: &str,
    body: Bytes,
) -> anyhow::Result<u16> {
    let req = Request::post(url)
        .header("content-type", content_type)
        .body(Full::new(body))?;
    let res = client.request(req).await?;
    let status = res.status().as_u16();
    res.into_body().collect().await?;
    Ok(status)
}

async fn get_ms(client: &HttpClient, url: &str) -> anyhow::Result<f64> {
    let start = Instant::now();
    let res = client
        .request(Request::get(url).body(Full::new(Bytes::new()))?)
        .await?;
    let status = res.status();
    res.into_body().collect().await?;
    if !status.is_success() {
        return Err(anyhow!("GET {url}: {status}"));
    }
    Ok(start.elapsed().as_secs_f64() * 1000.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Body chunks the SSE readers received (each one read of the socket at most).
static READS: AtomicU64 = AtomicU64::new(0);

static SENT_NS: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"sent_ns\":\""));

/// Opens `n` SSE subscribers that record, for each bench event, now − its `sent_ns`.
async fn subscribers(
    url: &str,
    n: usize,
    latencies: Arc<Mutex<Vec<f64>>>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let req = Request::get(format!("{url}/api/v1/events/stream?sources=custom"))
            .body(Full::new(Bytes::new()))?;
        let res = client.request(req).await?;
        let mut body = res.into_body();
        let (lat, stop) = (latencies.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            let mut buf = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let frame = tokio::select! {
                    f = body.frame() => f,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                };
                let Some(Ok(frame)) = frame else { break };
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                READS.fetch_add(1, Ordering::Relaxed);
                buf.extend_from_slice(&data);
                // One SIMD scan per chunk, and the consumed prefix dropped once: the 100
                // readers share the hub's two cores, so the client must cost little.
                let mut at = 0;
                while let Some(pos) = SENT_NS.find(&buf[at..]) {
                    let start = at + pos + SENT_NS.needle().len();
                    let Some(end) = memchr::memchr(b'"', &buf[start..]) else {
                        break;
                    };
                    if let Ok(sent) = std::str::from_utf8(&buf[start..start + end])
                        .unwrap_or("x")
                        .parse::<u128>()
                    {
                        local.push((now_ns().saturating_sub(sent)) as f64 / 1e6);
                    }
                    at = start + end;
                }
                buf.drain(..at);
                if buf.len() > 1 << 20 {
                    buf.clear();
                }
            }
            lat.lock().await.extend(local);
        }));
    }
    Ok(tasks)
}

/// Single-event POSTs over `conns` keep-alive connections for `seconds`; returns events/s and
/// the number accepted.
async fn single_posts(url: &str, conns: usize, seconds: f64) -> anyhow::Result<(f64, u64)> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let client: HttpClient = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build_http();
        let (done, url) = (done.clone(), format!("{url}/api/v1/events"));
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let body = format!(
                    r#"{{"source":"custom","source_event":"single","entity_type":"log","title":"single {c}-{i}","run_id":"single-{c}","payload":{{"sent_ns":"{}"}}}}"#,
                    now_ns()
                );
                if post(&client, &url, "application/json", Bytes::from(body)).await.ok() == Some(202) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await?;
    }
    let done = done.load(Ordering::Relaxed);
    Ok((done as f64 / start.elapsed().as_secs_f64(), done))
}

/// Posts single events at `rate`/s for `seconds` while `subs` subscribers listen; returns
/// (p50, p99, max) delivery latency in ms and the number of deliveries measured.
async fn latency(
    url: &str,
    subs: usize,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<(f64, f64, f64, usize)> {
    let lat = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = subscribers(url, subs, lat.clone(), stop.clone()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * seconds) as usize;
    let start = Instant::now();
    let post_url = format!("{url}/api/v1/events");
    // A few producers so that one slow round trip does not throttle the rate.
    let mut producers = Vec::new();
    for p in 0..4 {
        let (client, post_url) = (client.clone(), post_url.clone());
        producers.push(tokio::spawn(async move {
            for i in (p..total).step_by(4) {
                let due = start + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let body = format!(
                    r#"{{"source":"custom","source_event":"latency","entity_type":"log","title":"lat {i}","payload":{{"sent_ns":"{}"}}}}"#,
                    now_ns()
                );
                let _ = post(&client, &post_url, "application/json", Bytes::from(body)).await;
            }
        }));
    }
    for p in producers {
        p.await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut v = lat.lock().await.clone();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok((
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
        v.len(),
    ))
}

/// What the batched phase measured.
struct BatchedRates {
    /// Events per second until the last batch was acknowledged (committed).
    committed: f64,
    /// Events per second until the full-text indexer, a stage behind, had them all too.
    indexed: f64,
}

/// Posts `total` events as NDJSON batches over `conns` connections.
async fn batched(
    url: &str,
    total: usize,
    batch: usize,
    conns: usize,
) -> anyhow::Result<BatchedRates> {
    let base_ms = sightline_schema::Timestamp::now().millis() - 86_400_000;
    let runs = (total / 100).max(1);
    // Bodies are made before the clock starts: the figure is the hub's, not the generator's.
    let bodies: Vec<Bytes> = (0..total.div_ceil(batch))
        .map(|b| {
            let mut s = String::with_capacity(batch * 700);
            for i in b * batch..((b + 1) * batch).min(total) {
                s.push_str(&event(i, runs, base_ms));
                s.push('\n');
            }
            Bytes::from(s)
        })
        .collect();
    let bodies = Arc::new(Mutex::new(bodies.into_iter()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        let (bodies, url) = (bodies.clone(), format!("{url}/api/v1/events"));
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(body) = bodies.lock().await.next() else {
                    break;
                };
                loop {
                    match post(&client, &url, "application/x-ndjson", body.clone()).await {
                        Ok(202) => break,
                        Ok(503) => tokio::time::sleep(Duration::from_millis(5)).await,
                        other => panic!("batch refused: {other:?}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let committed = total as f64 / start.elapsed().as_secs_f64();
    // The queue depth counts a batch until it is indexed: zero means the indexer caught up.
    while queue_health(url).await?["depth"].as_u64() != Some(0) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(BatchedRates {
        committed,
        indexed: total as f64 / start.elapsed().as_secs_f64(),
    })
}

/// The `queue` object of the hub's health.
async fn queue_health(url: &str) -> anyhow::Result<serde_json::Value> {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let res = client
        .request(Request::get(format!("{url}/api/v1/health")).body(Full::new(Bytes::new()))?)
        .await?;
    let body = res.into_body().collect().await?.to_bytes();
    let mut health: serde_json::Value = serde_json::from_slice(&body)?;
    Ok(health["queue"].take())
}

/// Transactions the hub's writer has committed so far.
async fn commits(url: &str) -> anyhow::Result<u64> {
    Ok(queue_health(url).await?["batches"].as_u64().unwrap_or(0))
}

/// Bytes on disk for a database: the main file and the full-text index file beside it (their
/// WALs are bounded, reused journals and are reported apart).
fn db_bytes(db: &std::path::Path) -> u64 {
    let index = sightline_store::fulltext::index_path(db);
    [db, index.as_path()]
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

async fn median_ms(client: &HttpClient, url: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(get_ms(client, url).await?);
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Ok((percentile(&v, 0.5), percentile(&v, 0.95)))
}

/// The writer alone, in process (no HTTP, no JSON parsing), through the core's ingest path
/// (the one way events reach the store): what SQLite + FTS + derived rows can commit. Separates
/// the store's bound from the HTTP layer's.
/// Events/s committed, events/s committed and indexed, bytes per event on disk.
async fn store_only(total: usize) -> anyhow::Result<(f64, f64, f64)> {
    let dir = tempfile::tempdir()?;
    let core = sightline_core::Core::open(sightline_store::StoreConfig::new(
        dir.path().join("s.sqlite"),
    ))?;
    let now = sightline_schema::Timestamp::now();
    let base_ms = now.millis() - 86_400_000;
    let runs = (total / 100).max(1);
    let batches: Vec<Vec<sightline_schema::Event>> = (0..total.div_ceil(1000))
        .map(|b| {
            (b * 1000..((b + 1) * 1000).min(total))
                .map(|i| {
                    sightline_schema::parse_event(event(i, runs, base_ms).as_bytes(), now)
                        .expect("bench events are valid")
                })
                .collect()
        })
        .collect();
    let start = Instant::now();
    let mut pending = Vec::new();
    for batch in batches {
        pending.push(core.enqueue("bench", batch)?);
        if pending.len() >= 4 {
            pending.remove(0).committed().await?;
        }
    }
    for p in pending {
        p.committed().await?;
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();
    // Acknowledged means committed; the full-text indexer is a stage behind.
    while core.store().indexer_lag() > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let indexed = total as f64 / start.elapsed().as_secs_f64();
    // The database file once the background checkpoint has copied the WAL into it (the WAL
    // itself is a bounded, reused journal, not storage).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let store = core.store().clone();
    drop(core);
    store.close();
    let bytes = db_bytes(&dir.path().join("s.sqlite"));
    Ok((rate, indexed, bytes as f64 / total as f64))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let mut opts = options();
    if let Some(s) = opts.soak.take() {
        return soak::soak(s).await;
    }
    if opts.only.is_none() || opts.store_only {
        store_phase().await?;
    }
    if opts.store_only {
        return Ok(());
    }
    hub_phases(opts).await
}

async fn store_phase() -> anyhow::Result<()> {
    let (rate, indexed, per_event) = store_only(200_000).await?;
    println!(
        "{:<58} {:>11.0} ev/s",
        "store alone: writer commits (200,000 events, batches of 1,000)", rate
    );
    println!(
        "{:<58} {:>11.0} ev/s",
        "   (until the full-text index had them all too)", indexed
    );
    println!(
        "{:<58} {:>10.0} bytes",
        format!(
            "store alone: disk per event ({}-byte events)",
            event(1, 100, 0).len()
        ),
        per_event
    );
    Ok(())
}

async fn hub_phases(opts: Options) -> anyhow::Result<()> {
    let hub = start_hub()?;
    let pid = hub.child.id();
    let url = hub.url.clone();
    println!(
        "sightline budget benchmark — {} cores, hub pid {pid}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{:<58} {:>16}  goal (docs/CONTRACT.md §9)",
        "what", "figure"
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "{:<58} {:>13.1} MB  ≤ 20 MB",
        "hub memory, idle (RSS)",
        rss_mb(pid)
    );

    let run = |phase: &str| opts.only.as_deref().is_none_or(|o| o == phase);
    if run("single") {
        let (single, _) = single_posts(&url, 16, opts.seconds).await?;
        println!(
            "{:<58} {:>11.0} ev/s  ≥ 20,000",
            "single-event POSTs, keep-alive (16 connections)", single
        );

        let (p50, p99, max, n) = latency(&url, 1, 1000.0, opts.seconds).await?;
        println!(
            "{:<58} {:>16}  p99 ≤ 5 ms",
            "event→subscriber latency, 1 SSE subscriber, 1,000 ev/s",
            format!("p50 {p50:.2} p99 {p99:.2} ms")
        );
        println!(
            "{:<58} {:>16}",
            "   (max, deliveries measured)",
            format!("{max:.1} ms, {n}")
        );
        let (p50, p99, max, n) = latency(&url, 100, 1000.0, opts.seconds).await?;
        println!(
            "{:<58} {:>16}  p99 ≤ 5 ms",
            "event→subscriber latency, 100 SSE subscribers, 1,000 ev/s",
            format!("p50 {p50:.2} p99 {p99:.2} ms")
        );
        println!(
            "{:<58} {:>16}",
            "   (max, deliveries measured)",
            format!("{max:.1} ms, {n}")
        );
    }
    if run("fanout") {
        // Single posts again with 100 subscribers attached.
        let lat = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let subs = subscribers(&url, 100, lat.clone(), stop.clone()).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let batches_before = commits(&url).await?;
        let reads_before = READS.load(Ordering::Relaxed);
        let cpu_before = cpu_seconds(pid);
        let fan_started = Instant::now();
        let (with_subs, accepted) = single_posts(&url, 16, opts.seconds).await?;
        let batches = commits(&url).await? - batches_before;
        let fan_elapsed = fan_started.elapsed().as_secs_f64();
        let fan_cpu_s = cpu_seconds(pid) - cpu_before;
        println!(
            "{:<58} {:>11.0} ev/s  ≥ 15,000",
            "single-event POSTs with 100 SSE subscribers", with_subs
        );
        println!(
            "{:<58} {:>16}",
            "   (hub CPU during it; the rest is this client's)",
            format!("{:.0}% of one core", fan_cpu_s / fan_elapsed * 100.0)
        );
        // Every subscriber must have received every event: count what arrived.
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, Ordering::Relaxed);
        for s in subs {
            let _ = s.await;
        }
        let delivered = lat.lock().await.len() as u64;
        println!(
            "{:<58} {:>16}",
            "   (commits, events per commit)",
            format!("{batches}, {:.1}", accepted as f64 / batches.max(1) as f64)
        );
        let reads = READS.load(Ordering::Relaxed) - reads_before;
        println!(
            "{:<58} {:>16}",
            "   (SSE chunks read, events per chunk)",
            format!("{reads}, {:.1}", delivered as f64 / reads.max(1) as f64)
        );
        println!(
            "{:<58} {:>16}",
            "   (deliveries received of 100 × accepted)",
            format!("{delivered} of {}", 100 * accepted)
        );
        println!(
            "{:<58} {:>16}",
            "   (hub CPU per delivery, POST included)",
            format!("{:.2} µs", fan_cpu_s * 1e6 / delivered.max(1) as f64)
        );
        println!(
            "{:<58} {:>13.1} MB",
            "hub memory with 100 subscribers under load (RSS)",
            rss_mb(pid)
        );
    }
    if run("batched") {
        let cpu_before = cpu_seconds(pid);
        let started = Instant::now();
        let rates = batched(&url, opts.events, 1000, opts.connections).await?;
        let cpu = cpu_seconds(pid) - cpu_before;
        println!(
            "{:<58} {:>11.0} ev/s  ≥ 100,000",
            format!(
                "batched ingest, committed ({} events, NDJSON × 1,000, {} conn.)",
                opts.events, opts.connections
            ),
            rates.committed
        );
        println!(
            "{:<58} {:>11.0} ev/s",
            "   (until the full-text index had them all too)", rates.indexed
        );
        println!(
            "{:<58} {:>16}",
            "   (hub CPU during it)",
            format!(
                "{:.0}% of one core",
                cpu / started.elapsed().as_secs_f64() * 100.0
            )
        );
    }
    if opts.only.is_some() {
        return Ok(());
    }
    // Queries with the volume stored.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let since =
        sightline_schema::Timestamp(sightline_schema::Timestamp::now().millis() - 86_400_000)
            .to_rfc3339();
    let (m, p95) = median_ms(
        &client,
        &format!("{url}/api/v1/runs?limit=50&since={since}"),
        30,
    )
    .await?;
    println!(
        "{:<58} {:>16}  ≤ 100 ms",
        "API: first page of runs, last 24 h (1 M events stored)",
        format!("{m:.2} ms (p95 {p95:.2})")
    );
    let (m, p95) = median_ms(
        &client,
        &format!("{url}/api/v1/runs/r4242/timeline?limit=500"),
        30,
    )
    .await?;
    println!(
        "{:<58} {:>16}  ≤ 100 ms",
        "API: a run's timeline, first page",
        format!("{m:.2} ms (p95 {p95:.2})")
    );
    let (m, p95) = median_ms(
        &client,
        &format!("{url}/api/v1/search?limit=100&since={since}"),
        30,
    )
    .await?;
    println!(
        "{:<58} {:>16}  ≤ 100 ms",
        "API: first page of the global timeline (search)",
        format!("{m:.2} ms (p95 {p95:.2})")
    );
    let (m, p95) = median_ms(
        &client,
        &format!("{url}/api/v1/search?limit=100&q=crate7"),
        10,
    )
    .await?;
    println!(
        "{:<58} {:>16}",
        "API: full-text search, first page",
        format!("{m:.2} ms (p95 {p95:.2})")
    );
    let (m, p95) = median_ms(&client, &format!("{url}/api/v1/stats"), 30).await?;
    println!(
        "{:<58} {:>16}",
        "API: stats (24 h)",
        format!("{m:.2} ms (p95 {p95:.2})")
    );

    // Disk: the database file once the background checkpoint has caught up (the WAL is a
    // bounded, reused journal; its size is printed apart).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let wal_of = |p: PathBuf| {
        let mut wal = p.into_os_string();
        wal.push("-wal");
        std::fs::metadata(PathBuf::from(wal))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let bytes = db_bytes(&hub.db);
    let wal_bytes = wal_of(hub.db.clone()) + wal_of(sightline_store::fulltext::index_path(&hub.db));
    let stored: u64 = {
        let res = client
            .request(Request::get(format!("{url}/api/v1/health")).body(Full::new(Bytes::new()))?)
            .await?;
        let body = res.into_body().collect().await?.to_bytes();
        serde_json::from_slice::<serde_json::Value>(&body)?["storage"]["events"]
            .as_u64()
            .unwrap_or(1)
    };
    let sample = event(1, 100, 0).len();
    println!(
        "{:<58} {:>10.0} bytes  ≤ 450",
        format!("disk per event ({sample}-byte events, {stored} stored)"),
        bytes as f64 / stored.max(1) as f64
    );
    println!(
        "{:<58} {:>13.1} MB",
        "   (the WALs beside them)",
        wal_bytes as f64 / 1e6
    );
    println!(
        "{:<58} {:>13.1} MB",
        "hub memory after the volume phase (RSS)",
        rss_mb(pid)
    );
    Ok(())
}
