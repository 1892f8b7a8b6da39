//! `sightline-bench --soak MINUTES`: the hub under a steady load for a long time — producers at
//! `--rate` events/s, `--subscribers` SSE clients that drop their connection every
//! `--reconnect` seconds and resume with `Last-Event-ID` — printing the hub's RSS, open file
//! descriptors, database and WAL size every `--every` seconds. What it proves: memory, fds and
//! the WAL stay flat, and every subscriber still receives every event exactly once across its
//! reconnects.
//!
//! A load generator only: it must never run against anything but the hub it started on
//! loopback, and it stops by itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;

use crate::{HttpClient, event, post, rss_mb, start_hub};

pub struct SoakOptions {
    pub minutes: f64,
    pub rate: usize,
    pub subscribers: usize,
    pub reconnect_s: f64,
    pub every_s: f64,
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn file_len(path: &std::path::Path, suffix: &str) -> u64 {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// One subscriber: reads the stream, remembers every seq it saw, and every `reconnect` drops
/// the connection and resumes after the last seq it has.
async fn subscriber(
    url: String,
    reconnect: Duration,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<HashSet<u64>>>,
    duplicates: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
) {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let mut last: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut req = Request::get(format!("{url}/api/v1/events/stream?sources=claude"));
        if last > 0 {
            req = req.header("last-event-id", last.to_string());
        }
        let Ok(req) = req.body(Full::new(Bytes::new())) else {
            return;
        };
        let Ok(res) = client.request(req).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut body = res.into_body();
        let until = Instant::now() + reconnect;
        let mut buf: Vec<u8> = Vec::new();
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            let frame = tokio::select! {
                f = body.frame() => f,
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            };
            let Some(Ok(frame)) = frame else { break };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            // Whole lines only; `id: N` marks each event.
            let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let mut fresh = Vec::new();
            for line in buf[..end].split(|b| *b == b'\n') {
                if let Some(id) = line.strip_prefix(b"id: ")
                    && let Some(seq) = std::str::from_utf8(id)
                        .ok()
                        .and_then(|s| s.trim().parse::<u64>().ok())
                {
                    fresh.push(seq);
                }
            }
            buf.drain(..=end);
            if !fresh.is_empty() {
                let mut s = seen.lock().await;
                for seq in fresh {
                    last = last.max(seq);
                    if !s.insert(seq) {
                        duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn soak(opts: SoakOptions) -> anyhow::Result<()> {
    let hub = start_hub()?;
    let pid = hub.child.id();
    let url = hub.url.clone();
    println!(
        "sightline soak — {} min, {} events/s, {} SSE subscribers reconnecting every {} s; hub pid {pid}",
        opts.minutes, opts.rate, opts.subscribers, opts.reconnect_s
    );
    println!(
        "{:>7} {:>11} {:>9} {:>5} {:>10} {:>10} {:>11} {:>10}",
        "min", "accepted", "RSS MB", "fds", "db MB", "WAL MB", "reconnects", "lagging"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let duplicates = Arc::new(AtomicU64::new(0));
    let reconnects = Arc::new(AtomicU64::new(0));
    let mut seen_sets = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..opts.subscribers {
        let seen = Arc::new(Mutex::new(HashSet::new()));
        seen_sets.push(seen.clone());
        // Stagger the reconnects so they do not all happen at once.
        let reconnect = Duration::from_secs_f64(
            opts.reconnect_s * (0.75 + 0.5 * i as f64 / opts.subscribers.max(1) as f64),
        );
        tasks.push(tokio::spawn(subscriber(
            url.clone(),
            reconnect,
            stop.clone(),
            seen,
            duplicates.clone(),
            reconnects.clone(),
        )));
    }
    // The producer: a batch every 100 ms, so the rate is steady.
    let producing = Arc::new(AtomicBool::new(false));
    let producer = {
        let (url, stop, accepted) = (
            format!("{url}/api/v1/events"),
            producing.clone(),
            accepted.clone(),
        );
        let per_tick = (opts.rate / 10).max(1);
        tokio::spawn(async move {
            let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
            let mut i = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let mut body = String::with_capacity(per_tick * 700);
                // `event` spreads a million events over a day after its base; a soak sends
                // more than that, so each event's base puts its own timestamp at now (a
                // timestamp over a day ahead is refused, rightly).
                let now_ms = sightline_schema::Timestamp::now().millis();
                for _ in 0..per_tick {
                    let base_ms = now_ms - (i as i64 * 86_400_000 / 1_000_000);
                    body.push_str(&event(i, 1000, base_ms));
                    body.push('\n');
                    i += 1;
                }
                let body = Bytes::from(body);
                loop {
                    match post(&client, &url, "application/x-ndjson", body.clone()).await {
                        Ok(202) => break,
                        Ok(503) => tokio::time::sleep(Duration::from_millis(20)).await,
                        other => return Err(anyhow!("batch refused: {other:?}")),
                    }
                }
                accepted.fetch_add(per_tick as u64, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let start = Instant::now();
    let total = Duration::from_secs_f64(opts.minutes * 60.0);
    let mut samples: Vec<(f64, f64, usize, u64)> = Vec::new();
    loop {
        let sleep =
            Duration::from_secs_f64(opts.every_s).min(total.saturating_sub(start.elapsed()));
        tokio::time::sleep(sleep).await;
        let rss = rss_mb(pid);
        let fds = open_fds(pid);
        let wal = file_len(&hub.db, "-wal");
        let db = file_len(&hub.db, "");
        let acc = accepted.load(Ordering::Relaxed);
        let mut lagging = 0;
        for s in &seen_sets {
            if (s.lock().await.len() as u64) + opts.rate as u64 * 2 < acc {
                lagging += 1;
            }
        }
        let min = start.elapsed().as_secs_f64() / 60.0;
        println!(
            "{:>7.1} {:>11} {:>9.1} {:>5} {:>10.1} {:>10.1} {:>11} {:>10}",
            min,
            acc,
            rss,
            fds,
            db as f64 / 1e6,
            wal as f64 / 1e6,
            reconnects.load(Ordering::Relaxed),
            lagging
        );
        samples.push((min, rss, fds, wal));
        if start.elapsed() >= total {
            break;
        }
    }
    producing.store(true, Ordering::Relaxed);
    if let Err(e) = producer.await? {
        println!("the producer stopped early: {e}");
    }
    // Let the last events reach everyone (subscribers keep reconnecting meanwhile), then count.
    let acc = accepted.load(Ordering::Relaxed);
    let count_complete = || async {
        let mut n = 0;
        for s in &seen_sets {
            if s.lock().await.len() as u64 == acc {
                n += 1;
            }
        }
        n
    };
    let waited = Instant::now();
    while count_complete().await < opts.subscribers && waited.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let complete = count_complete().await;
    let half = samples.len() / 2;
    let (second_half_rss, first_half_rss): (Vec<f64>, Vec<f64>) = (
        samples[half..].iter().map(|s| s.1).collect(),
        samples[..half.max(1)].iter().map(|s| s.1).collect(),
    );
    let max = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max);
    println!(
        "RSS: max of the first half {:.1} MB, of the second half {:.1} MB; fds: first {}, last {}, max {}; WAL max {:.1} MB",
        max(&first_half_rss),
        max(&second_half_rss),
        samples.first().map_or(0, |s| s.2),
        samples.last().map_or(0, |s| s.2),
        samples.iter().map(|s| s.2).max().unwrap_or(0),
        samples.iter().map(|s| s.3).max().unwrap_or(0) as f64 / 1e6,
    );
    println!(
        "events accepted {acc}; subscribers that received every one exactly once across {} reconnects: {complete} of {} (duplicates {})",
        reconnects.load(Ordering::Relaxed),
        opts.subscribers,
        duplicates.load(Ordering::Relaxed)
    );
    Ok(())
}
