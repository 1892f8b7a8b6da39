//! `sightline hook` (the real binary): hub down → payloads spooled; hub up → every event
//! delivered exactly once; it never prints to stdout and always exits 0. The spool is private,
//! bounded, sent in bounded slices, and nothing in it (a batch refused for good, a corrupt line,
//! a line the hub cannot map, a huge line) stops what comes after it. Also measures its round
//! trip against a running hub (see docs/BENCHMARKS.md).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{TestHub, run_with_stdin};

fn hook(url: &str, spool: &std::path::Path, payload: &Value) -> (i32, String, Duration) {
    hook_with(url, spool, payload, &[])
}

fn hook_with(
    url: &str,
    spool: &std::path::Path,
    payload: &Value,
    envs: &[(&str, &str)],
) -> (i32, String, Duration) {
    let start = Instant::now();
    let out = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("hook")
            .envs(envs.iter().copied())
            .env("SIGHTLINE_URL", url)
            .env("SIGHTLINE_SPOOL_DIR", spool)
            .env_remove("SIGHTLINE_TOKEN")
            .stderr(Stdio::null()),
        payload.to_string().as_bytes(),
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        start.elapsed(),
    )
}

/// A hook's spool in a temporary directory (kept while the first value lives) and a hub that
/// is down: a free port nothing listens on yet, where a test starts a [`FakeHub`] or a
/// [`TestHub`] when it wants one, and its URL.
fn down() -> (tempfile::TempDir, PathBuf, u16, String) {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let port = common::free_port();
    (dir, spool, port, format!("http://127.0.0.1:{port}"))
}

/// Runs the hook (payloads `first`, `first + 1`, ...) until nothing waits in its spool; how
/// many runs that took and the slowest run. Fails after `most` runs.
fn hook_until_drained(
    url: &str,
    spool: &Path,
    first: usize,
    envs: &[(&str, &str)],
    most: usize,
) -> (usize, Duration) {
    let (mut runs, mut slowest) = (0, Duration::ZERO);
    loop {
        let (code, _, took) = hook_with(url, spool, &payload(first + runs), envs);
        assert_eq!(code, 0);
        slowest = slowest.max(took);
        runs += 1;
        if waiting(spool).is_empty() {
            return (runs, slowest);
        }
        assert!(
            runs < most,
            "still waiting after {runs} hooks: {:?}",
            waiting(spool)
        );
    }
}

fn payload(i: usize) -> Value {
    json!({"session_id": "sess-spool", "transcript_path": "/t.jsonl", "cwd": "/tmp", "permission_mode": "default",
        "hook_event_name": "UserPromptSubmit", "prompt": format!("prompt {i}")})
}

#[test]
fn spools_while_the_hub_is_down_and_delivers_exactly_once() {
    let (dir, spool, port, url) = down();
    for i in 0..5 {
        let (code, stdout, took) = hook(&url, &spool, &payload(i));
        assert_eq!(code, 0);
        assert!(stdout.is_empty(), "hook printed {stdout:?}");
        assert!(
            took < Duration::from_secs(2),
            "hook took {took:?} with the hub down"
        );
    }
    let spooled = std::fs::read_to_string(spool.join("claude-hooks.jsonl")).unwrap();
    assert_eq!(spooled.lines().count(), 5, "{spooled}");
    // Garbage on stdin: still exit 0, nothing spooled.
    let garbage = run_with_stdin(
        Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("hook")
            .env("SIGHTLINE_URL", &url)
            .env("SIGHTLINE_SPOOL_DIR", &spool),
        b"not json",
    );
    assert_eq!(garbage.status.code(), Some(0));

    let hub = TestHub::serve(&dir.path().join("db.sqlite"), port);
    let (code, _, _) = hook(&hub.url, &spool, &payload(5));
    assert_eq!(code, 0);
    let events = hub.events();
    assert_eq!(events.len(), 6, "{events:#?}");
    let mut prompts: Vec<String> = events
        .iter()
        .map(|e| e["payload"]["prompt"].as_str().unwrap().to_string())
        .collect();
    prompts.sort();
    assert_eq!(
        prompts,
        (0..6).map(|i| format!("prompt {i}")).collect::<Vec<_>>()
    );
    assert!(
        !spool.join("claude-hooks.jsonl").exists(),
        "the spool was delivered and removed"
    );
    // Spooled events keep the time they happened, not the time they were delivered.
    let first = events
        .iter()
        .find(|e| e["payload"]["prompt"] == "prompt 0")
        .unwrap();
    let last = events
        .iter()
        .find(|e| e["payload"]["prompt"] == "prompt 5")
        .unwrap();
    assert!(first["ts"].as_str().unwrap() <= last["ts"].as_str().unwrap());

    // Redelivering the same spool (a crash after sending, before deleting) stores nothing twice.
    let agent = sightline_testkit::agent();
    let res = agent
        .post(&format!("{}/api/v1/hooks/claude", hub.url))
        .header("content-type", "application/x-ndjson")
        .send(spooled.as_bytes())
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    assert_eq!(hub.events().len(), 6);
}

/// The round trip of `sightline hook` against a running hub: prints median and p99.
#[test]
fn hook_round_trip_latency() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::serve(&dir.path().join("db.sqlite"), 0);
    let runs: usize = std::env::var("SIGHTLINE_HOOK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let p = json!({"session_id": "sess-bench", "hook_event_name": "PreToolUse", "tool_name": "Bash",
            "tool_input": {"command": "ls"}, "tool_use_id": format!("toolu_{i}"), "cwd": "/tmp"});
        let (code, _, took) = hook(&hub.url, &dir.path().join("spool"), &p);
        assert_eq!(code, 0);
        times.push(took);
    }
    times.sort();
    let median = times[runs / 2];
    let p99 = times[(runs * 99 / 100).min(runs - 1)];
    println!("sightline hook round trip over {runs} runs: median {median:?}, p99 {p99:?}");
    assert_eq!(hub.events().len(), runs);
    // Generous for debug builds on a shared CI machine; the release figure is in BENCHMARKS.md.
    assert!(median < Duration::from_millis(100), "median {median:?}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every regular file under `dir` (one level of subdirectories), with its mode.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push((p.clone(), mode(&p)));
        }
    }
    out
}

/// Segments still waiting to be sent (the active one, sealed and claimed ones).
fn waiting(spool: &Path) -> Vec<String> {
    std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".jsonl") || n.ends_with(".ready") || n.ends_with(".sending"))
        .collect()
}

/// Everything set aside in `rejected/`, by file name.
fn rejected(spool: &Path) -> Vec<(String, String)> {
    let dir = spool.join("rejected");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// One request a [`FakeHub`] received.
#[derive(Debug, Clone)]
struct Seen {
    content_type: String,
    body: Vec<u8>,
}

impl Seen {
    fn is_batch(&self) -> bool {
        self.content_type.contains("ndjson")
    }
}

/// A stand-in for a hub on 127.0.0.1:`port` that takes single payloads (202) and answers each
/// spool batch with the status `batch` gives it. A thread of this test, stopped and joined on
/// drop.
struct FakeHub {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    port: u16,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHub {
    fn start(port: u16, batch_status: u16) -> FakeHub {
        Self::start_with(port, move |_| batch_status)
    }

    fn start_with(port: u16, batch: impl Fn(&[u8]) -> u16 + Send + 'static) -> FakeHub {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, quit) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if quit.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    answer(stream, &batch, &log);
                }
            }
        });
        FakeHub {
            seen,
            stop,
            port,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(stream: TcpStream, batch: &dyn Fn(&[u8]) -> u16, log: &Mutex<Vec<Seen>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut length, mut content_type) = (0usize, String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "content-type" => content_type = value.trim().to_string(),
                "transfer-encoding" => panic!("the hook sent a body without a length"),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let seen = Seen { content_type, body };
    let (status, reply) = if seen.is_batch() {
        match batch(&seen.body) {
            s @ 200..=299 => (s, r#"{"accepted":0,"duplicates":0,"refused":[]}"#),
            s => (s, r#"{"error":{"code":"refused","message":"not today"}}"#),
        }
    } else {
        (202, "{}")
    };
    log.lock().unwrap().push(seen);
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
        reply.len()
    );
}

#[test]
fn the_spool_is_private_and_a_batch_refused_for_good_is_set_aside_not_resent() {
    let (_dir, spool, port, url) = down();
    for i in 0..3 {
        assert_eq!(hook(&url, &spool, &payload(i)).0, 0);
    }
    assert_eq!(mode(&spool), 0o700, "the spool directory is private");
    let spooled = files(&spool);
    assert!(!spooled.is_empty());
    for (path, m) in &spooled {
        assert_eq!(*m, 0o600, "{} holds raw payloads", path.display());
    }

    // A hub that takes single payloads but refuses the spool's batches for good.
    let fake = FakeHub::start(port, 400);
    for i in 3..6 {
        assert_eq!(hook(&url, &spool, &payload(i)).0, 0);
    }
    let seen = fake.seen();
    let batches: Vec<&Seen> = seen.iter().filter(|s| s.is_batch()).collect();
    assert_eq!(
        batches.len(),
        1,
        "a batch refused for good is sent once, not on every hook: {seen:#?}"
    );
    assert_eq!(
        seen.len() - batches.len(),
        3,
        "the three hooks' own payloads"
    );
    assert!(
        waiting(&spool).is_empty(),
        "nothing left waiting: {:?}",
        waiting(&spool)
    );
    let aside = rejected(&spool);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].0.ends_with(".http400.jsonl"), "{aside:?}");
    for i in 0..3 {
        assert!(
            aside[0].1.contains(&format!("prompt {i}")),
            "set aside, not lost: {aside:?}"
        );
    }
    assert_eq!(mode(&spool.join("rejected")), 0o700);
    for (path, m) in files(&spool) {
        assert_eq!(m, 0o600, "{}", path.display());
    }
}

fn big_payload(i: usize) -> Value {
    json!({"session_id": "sess-big", "hook_event_name": "UserPromptSubmit", "cwd": "/tmp",
        "prompt": format!("big {i} {}", "x".repeat(256 * 1024))})
}

#[test]
fn a_failing_hub_gets_bounded_slices_the_hook_stays_fast_and_all_arrives_once_later() {
    let (dir, spool, port, url) = down();
    // About 3 MiB waiting.
    for i in 0..12 {
        assert_eq!(hook(&url, &spool, &big_payload(i)).0, 0);
    }
    let fake = FakeHub::start(port, 503);
    for i in 0..3 {
        let (code, stdout, took) = hook(&url, &spool, &payload(i));
        assert_eq!(code, 0);
        assert!(stdout.is_empty());
        assert!(took < Duration::from_secs(3), "hook took {took:?}");
    }
    let seen = fake.seen();
    let batches: Vec<usize> = seen
        .iter()
        .filter(|s| s.is_batch())
        .map(|s| s.body.len())
        .collect();
    assert!(!batches.is_empty(), "the spool was tried: {seen:#?}");
    assert!(
        batches.len() <= 3,
        "one try per hook while the hub fails: {batches:?}"
    );
    for len in &batches {
        assert!(
            *len <= 1024 * 1024 + 300 * 1024,
            "each request is a bounded slice, not the whole spool: {batches:?}"
        );
    }
    drop(fake);

    // The hub back: a few hooks deliver everything, once.
    let hub = TestHub::serve(&dir.path().join("db.sqlite"), port);
    let (runs, _) = hook_until_drained(&hub.url, &spool, 100, &[], 10);
    let events = hub.events();
    let big = events
        .iter()
        .filter(|e| e["session_id"] == "sess-big")
        .count();
    assert_eq!(big, 12, "every spooled payload once");
    // The three hooks the failing hub took are not in this hub; the ones after are.
    assert_eq!(events.len(), 12 + runs, "nothing twice");
    assert!(rejected(&spool).is_empty(), "{:?}", rejected(&spool));
}

#[test]
fn a_corrupt_line_a_refused_line_and_a_huge_line_do_not_stop_what_follows() {
    let (dir, spool, port, url) = down();
    let room = [("SIGHTLINE_SPOOL_MAX", "268435456")];
    for i in 0..2 {
        assert_eq!(hook_with(&url, &spool, &payload(i), &room).0, 0);
    }
    {
        // A write cut short, a line the hub cannot map, and a 70 MiB line: none of them can be
        // delivered, and none of them may hold up the lines after them.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(spool.join("claude-hooks.jsonl"))
            .unwrap();
        f.write_all(b"{\"id\":\"claude-hook:cut\",\"ts\":1,\"payload\":{\"sess\n")
            .unwrap();
        f.write_all(
            b"{\"id\":\"claude-hook:unmappable\",\"ts\":1,\"payload\":{\"not\":\"a hook\"}}\n",
        )
        .unwrap();
        let huge = vec![b'z'; 70 * 1024 * 1024];
        f.write_all(&huge).unwrap();
        f.write_all(b"\n").unwrap();
    }
    // These land in a file of their own (the one above is past a segment's size).
    for i in 2..4 {
        assert_eq!(hook_with(&url, &spool, &payload(i), &room).0, 0);
    }
    let hub = TestHub::serve(&dir.path().join("db.sqlite"), port);
    let (runs, slowest) = hook_until_drained(&hub.url, &spool, 10, &room, 10);
    assert!(slowest < Duration::from_secs(5), "a hook took {slowest:?}");
    let events = hub.events();
    let mut prompts: Vec<String> = events
        .iter()
        .filter_map(|e| e["payload"]["prompt"].as_str().map(str::to_string))
        .collect();
    prompts.sort();
    let mut want: Vec<String> = (0..4)
        .chain(10..10 + runs)
        .map(|i| format!("prompt {i}"))
        .collect();
    want.sort();
    assert_eq!(prompts, want, "everything deliverable, once");

    let aside = rejected(&spool);
    let find = |reason: &str| {
        aside
            .iter()
            .find(|(name, _)| name.ends_with(&format!(".{reason}.jsonl")))
            .unwrap_or_else(|| panic!("nothing set aside as {reason}: {aside:?}"))
            .1
            .clone()
    };
    assert!(find("invalid").contains("claude-hook:cut"));
    assert!(find("refused").contains("claude-hook:unmappable"));
    let head = find("too-long");
    assert!(
        head.starts_with("zzzz") && head.len() <= 64 * 1024 + 1,
        "only the head of a huge line is kept: {} bytes",
        head.len()
    );
}

/// A line the hub fails on (500) every time, among good ones: the hook narrows the batches down
/// to it, sets it aside, and delivers everything else.
#[test]
fn a_line_the_hub_keeps_failing_on_is_found_and_set_aside() {
    let (_dir, spool, port, url) = down();
    for i in 0..40 {
        let mut p = payload(i);
        if i == 25 {
            p["prompt"] = json!("POISON");
        }
        assert_eq!(hook(&url, &spool, &p).0, 0);
    }
    let fake = FakeHub::start_with(port, |body| {
        if String::from_utf8_lossy(body).contains("POISON") {
            500
        } else {
            202
        }
    });
    assert!(!waiting(&spool).is_empty());
    hook_until_drained(&url, &spool, 100, &[], 20);
    let mut delivered = std::collections::BTreeSet::new();
    for seen in fake.seen().iter().filter(|s| s.is_batch()) {
        let text = String::from_utf8_lossy(&seen.body).to_string();
        if text.contains("POISON") {
            continue;
        }
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            delivered.insert(v["payload"]["prompt"].as_str().unwrap().to_string());
        }
    }
    let want: std::collections::BTreeSet<String> = (0..40)
        .filter(|i| *i != 25)
        .map(|i| format!("prompt {i}"))
        .collect();
    assert_eq!(delivered, want, "every other line delivered");
    let aside = rejected(&spool);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].0.ends_with(".http500.jsonl"), "{aside:?}");
    assert_eq!(
        aside[0].1.lines().count(),
        1,
        "only the poison line: {aside:?}"
    );
    assert!(aside[0].1.contains("POISON"));
}
