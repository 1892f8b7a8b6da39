//! The OTLP exporter's failure handling against a scripted collector: retries with backoff on
//! 429/503 (honouring Retry-After) until the batch is taken, and a bounded queue that drops
//! and counts when the collector stalls, without slowing ingest.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sightline_forward::otlp_export::{self, ExportSettings};
use sightline_testkit::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A collector answering each request with the next scripted status (then 200), or hanging.
async fn collector(script: Vec<u16>, hang: bool) -> (String, Arc<Mutex<Vec<(Instant, u16)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let n = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (seen, n, script) = (seen.clone(), n.clone(), script.clone());
            tokio::spawn(async move {
                loop {
                    // Read one request (headers + Content-Length body).
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    let header_end = loop {
                        let r = sock.read(&mut chunk).await.unwrap_or(0);
                        if r == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..r]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..header_end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    while buf.len() < header_end + len {
                        let r = sock.read(&mut chunk).await.unwrap_or(0);
                        if r == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..r]);
                    }
                    if hang {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    let i = n.fetch_add(1, Ordering::SeqCst);
                    let status = script.get(i).copied().unwrap_or(200);
                    seen.lock().unwrap().push((Instant::now(), status));
                    let extra = if status == 429 {
                        "Retry-After: 1\r\n"
                    } else {
                        ""
                    };
                    let answer = format!("HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\n\r\n");
                    if sock.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, log)
}

#[test]
fn retries_with_backoff_on_429_and_503_until_taken() {
    let hub = TestHub::start();
    let h = hub.core();
    let (_exporter, stats, log) = hub.runtime.block_on(async {
        let (url, log) = collector(vec![503, 503, 429], false).await;
        let settings = ExportSettings {
            initial_backoff: Duration::from_millis(100),
            flush_every: Duration::from_millis(100),
            ..ExportSettings::default()
        };
        let exporter = otlp_export::start(h.clone(), &url, settings);
        let stats = exporter.stats.clone();
        (exporter, stats, log)
    });
    let (status, _) = post(
        &format!("{}/api/v1/events", hub.url),
        "application/x-ndjson",
        ndjson(&[event("r", 1), event("r", 2)]),
    );
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.logs.load(Ordering::Relaxed) + stats.spans.load(Ordering::Relaxed) < 2 {
        assert!(
            Instant::now() < deadline,
            "the batch was never delivered: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = log.lock().unwrap().clone();
    let statuses: Vec<u16> = log.iter().map(|(_, s)| *s).collect();
    assert_eq!(statuses[..4], [503, 503, 429, 200], "retried until taken");
    assert!(statuses[4..].iter().all(|s| *s == 200));
    assert_eq!(stats.retries.load(Ordering::Relaxed), 3);
    assert_eq!(stats.failed_batches.load(Ordering::Relaxed), 0);
    let gaps: Vec<Duration> = log.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps[0] >= Duration::from_millis(45),
        "backoff before the first retry: {gaps:?}"
    );
    assert!(
        gaps[2] >= Duration::from_millis(950),
        "Retry-After: 1 honoured: {gaps:?}"
    );
    let entry = hub.adapter_health("otlp-export").unwrap();
    assert!(entry["errors"].as_u64().unwrap() >= 3, "{entry}");
}

#[test]
fn a_stalled_collector_fills_the_bounded_queue_and_drops_are_counted() {
    let hub = TestHub::start();
    let h = hub.core();
    let (_exporter, stats) = hub.runtime.block_on(async {
        let (url, _) = collector(vec![], true).await;
        let settings = ExportSettings {
            queue_capacity: 100,
            batch_max: 10,
            flush_every: Duration::from_millis(50),
            request_timeout: Duration::from_secs(60),
            ..ExportSettings::default()
        };
        let exporter = otlp_export::start(h.clone(), &url, settings);
        let stats = exporter.stats.clone();
        (exporter, stats)
    });
    let started = Instant::now();
    for b in 0..10 {
        let body = ndjson(
            &(0..500)
                .map(|i| event("flood", b * 500 + i))
                .collect::<Vec<_>>(),
        );
        let (status, _) = post(
            &format!("{}/api/v1/events", hub.url),
            "application/x-ndjson",
            body,
        );
        assert_eq!(status, 202);
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ingest is not held up by the exporter"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.dropped.load(Ordering::Relaxed) < 4_000 {
        assert!(Instant::now() < deadline, "drops counted: {stats:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let entry = hub.adapter_health("otlp-export").unwrap();
    assert!(
        entry["last_error"].as_str().unwrap().contains("dropped"),
        "{entry}"
    );
}

/// The exporter's task may first run well after `start` returned (a busy machine; `serve`
/// accepting events meanwhile): an event committed in between is still exported, and one
/// committed before `start` is not. Deterministic: the exporter's runtime runs nothing until
/// the event is stored, so a subscription that starts live when the task runs misses it.
#[test]
fn an_event_committed_before_the_exporter_first_runs_is_exported() {
    let hub = TestHub::start();
    let (url, log) = hub.runtime.block_on(collector(vec![], false));
    let ingest = |e: serde_json::Value| {
        let (status, _) = post(
            &format!("{}/api/v1/events", hub.url),
            "application/x-ndjson",
            ndjson(&[e]),
        );
        assert_eq!(status, 202);
    };
    ingest(event("before-start", 1));
    let parked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let core = hub.core();
    // `block_on` returns as soon as `start` does: the tasks it spawned have not run yet.
    let exporter = parked.block_on(async {
        let settings = ExportSettings {
            flush_every: Duration::from_millis(50),
            ..ExportSettings::default()
        };
        otlp_export::start(core, &url, settings)
    });
    let stats = exporter.stats.clone();
    ingest(event("after-start", 1));
    let sent = || stats.logs.load(Ordering::Relaxed) + stats.spans.load(Ordering::Relaxed);
    // Now the exporter's tasks run.
    parked.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while sent() < 1 {
            assert!(
                Instant::now() < deadline,
                "the event committed before the exporter ran was never exported: {stats:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    assert_eq!(sent(), 1, "only the event after start: {stats:?}");
    assert!(!log.lock().unwrap().is_empty(), "the collector was called");
    parked.block_on(exporter.stop());
}
