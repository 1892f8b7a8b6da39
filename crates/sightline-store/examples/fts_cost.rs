//! What the full-text index costs at each FTS5 `detail` level, on realistic agent events: bytes
//! per event of the index file and indexing time (the indexer stage alone), and the whole store
//! (both files, ingest committed and indexed) with the build's own index.
//!
//! It is a measurement, not a test: it must never be run by `cargo test` nor change a stored
//! file other than its own temporary ones.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-h2 cargo run --release -p sightline-store --example fts_cost [EVENTS]
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use sightline_schema::{Event, Timestamp, filter::searchable_text, parse_event};
use sightline_store::{Store, StoreConfig, fulltext};

/// A small deterministic generator (xorshift64*), so that every run indexes the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Zipf-like: low indexes far more often, as words in real text.
    fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * n as f64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.skewed(items.len())]
    }
}

const WORDS: &[&str] = &[
    "the",
    "to",
    "and",
    "a",
    "of",
    "in",
    "is",
    "that",
    "for",
    "it",
    "this",
    "with",
    "on",
    "be",
    "not",
    "file",
    "test",
    "error",
    "function",
    "run",
    "use",
    "should",
    "when",
    "we",
    "from",
    "can",
    "now",
    "add",
    "fix",
    "check",
    "value",
    "return",
    "need",
    "make",
    "build",
    "update",
    "failed",
    "passed",
    "type",
    "change",
    "read",
    "write",
    "call",
    "event",
    "query",
    "search",
    "index",
    "config",
    "server",
    "client",
    "request",
    "response",
    "missing",
    "expected",
    "found",
    "let",
    "me",
    "look",
    "at",
    "code",
    "first",
    "then",
    "done",
    "all",
    "tests",
    "pass",
    "module",
    "struct",
    "field",
    "method",
    "import",
    "path",
    "directory",
    "command",
    "output",
    "input",
    "string",
    "number",
    "list",
    "map",
    "key",
    "token",
    "session",
    "agent",
    "tool",
    "result",
    "warning",
    "unused",
    "variable",
    "borrow",
    "lifetime",
    "trait",
    "implement",
    "compile",
    "mismatched",
    "types",
    "cannot",
    "find",
    "scope",
    "line",
    "column",
    "version",
    "package",
    "dependency",
    "lock",
    "thread",
    "async",
    "await",
    "future",
    "channel",
    "buffer",
    "bytes",
    "memory",
    "disk",
    "cache",
    "database",
    "table",
    "row",
    "schema",
    "migration",
    "commit",
    "branch",
    "merge",
    "rebase",
    "push",
    "pull",
    "diff",
    "status",
    "log",
    "debug",
    "info",
    "timeout",
    "retry",
    "connection",
    "refused",
    "permission",
    "denied",
    "not",
    "found",
    "already",
    "exists",
    "invalid",
    "argument",
    "parse",
    "serialize",
    "deserialize",
    "json",
    "yaml",
    "http",
    "socket",
    "stream",
    "subscriber",
    "filter",
    "cursor",
    "page",
    "limit",
];

const IDENT_PARTS: &[&str] = &[
    "get", "set", "parse", "handle", "event", "store", "read", "write", "open", "close", "run",
    "session", "tool", "query", "index", "filter", "user", "config", "load", "save", "build",
    "http", "json", "span", "trace", "metric", "batch", "queue", "ack", "seq", "cursor", "page",
    "token", "auth", "redact", "payload", "title", "summary", "status", "error", "retry", "spool",
    "hook", "adapter", "source", "sink", "bus", "fan", "out", "in", "new", "from", "into", "try",
];

const EXTS: &[&str] = &[
    "rs", "py", "ts", "js", "md", "toml", "json", "go", "tsx", "yaml",
];

fn ident(r: &mut Rng) -> String {
    let n = 1 + r.below(3);
    let parts: Vec<&str> = (0..n).map(|_| r.pick(IDENT_PARTS)).collect();
    if r.below(3) == 0 {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if i == 0 {
                    p.to_string()
                } else {
                    p[..1].to_uppercase() + &p[1..]
                }
            })
            .collect()
    } else {
        parts.join("_")
    }
}

fn sentence(r: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| r.pick(WORDS).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

fn path(r: &mut Rng) -> String {
    let depth = 1 + r.below(3);
    let dirs: Vec<String> = (0..depth).map(|_| ident(r)).collect();
    format!(
        "/home/dev/project{}/src/{}/{}.{}",
        r.below(5),
        dirs.join("/"),
        ident(r),
        r.pick(EXTS)
    )
}

fn hex(r: &mut Rng, len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&format!("{:016x}", r.next()));
    }
    s.truncate(len);
    s
}

/// One event as NDJSON: a mix of tool calls (commands, reads, edits, searches), their output,
/// prompts and assistant messages, logs with errors, as an agent session produces them.
fn event_json(i: usize, r: &mut Rng) -> String {
    let run = i / 500;
    let kind = r.below(10);
    let (title, payload) = match kind {
        0..=2 => {
            let cmd = match r.below(5) {
                0 => format!("cargo test -p {} {}", ident(r), ident(r)),
                1 => format!("git commit -m \"{}\"", sentence(r, 6)),
                2 => format!("rg -n \"{}\" src/", ident(r)),
                3 => format!("ls -la {}", path(r)),
                _ => format!(
                    "python -m pytest tests/test_{}.py -k {}",
                    ident(r),
                    ident(r)
                ),
            };
            let stdout = format!(
                "running {} tests\ntest {}::{} ... ok\ntest {}::{} ... FAILED\n{}\ncommit {}",
                r.below(100),
                ident(r),
                ident(r),
                ident(r),
                ident(r),
                sentence(r, 12),
                hex(r, 40)
            );
            (
                format!("Bash {}", &cmd[..cmd.len().min(60)]),
                serde_json::json!({"tool_name": "Bash", "tool_input": {"command": cmd},
                    "tool_response": {"stdout": stdout, "exit_code": r.below(3)}, "cwd": "/home/dev/project"}),
            )
        }
        3 | 4 => {
            let p = path(r);
            let old = format!(
                "fn {}({}: &str) -> Result<{}, Error> {{ {} }}",
                ident(r),
                ident(r),
                ident(r),
                sentence(r, 8)
            );
            let new = format!("{old} // {}", sentence(r, 6));
            (
                format!("Edit {p}"),
                serde_json::json!({"tool_name": "Edit", "tool_input": {"file_path": p, "old_string": old, "new_string": new}}),
            )
        }
        5 => {
            let p = path(r);
            (
                format!("Read {p}"),
                serde_json::json!({"tool_name": "Read", "tool_input": {"file_path": p, "limit": 200}}),
            )
        }
        6 | 7 => {
            let words = 40 + r.below(60);
            (
                sentence(r, 8),
                serde_json::json!({"role": if kind == 6 { "user" } else { "assistant" }, "text": sentence(r, words)}),
            )
        }
        _ => {
            let p = path(r);
            (
                format!("error[E0{}]: {}", 300 + r.below(400), sentence(r, 5)),
                serde_json::json!({"message": format!("{} --> {}:{}:{} {}", sentence(r, 10), p, r.below(900), r.below(80), sentence(r, 10)),
                    "trace_id": hex(r, 32), "span_id": hex(r, 16), "host": "127.0.0.1", "port": 4517}),
            )
        }
    };
    let v = serde_json::json!({
        "event_id": format!("cost-{i}"),
        "source": "claude",
        "source_event": "PostToolUse",
        "run_id": format!("run-{run}"),
        "session_id": format!("sess-{run}-{}", r.below(3)),
        "agent": "main",
        "entity_type": "tool",
        "entity_id": format!("toolu_{}", hex(r, 24)),
        "status": if i.is_multiple_of(97) { "failed" } else { "success" },
        "title": title,
        "correlation_id": format!("toolu_{}", hex(r, 24)),
        "metrics": {"input_tokens": 100 + r.below(2000), "output_tokens": r.below(500)},
        "payload": payload,
    });
    v.to_string()
}

/// The budget benchmark's templated event (`sightline-bench`): one Bash `PostToolUse`, 593 bytes.
fn bench_json(i: usize) -> String {
    let run = ((i / 2000) * 20 + i % 20) % 100;
    format!(
        concat!(
            r#"{{"event_id":"bench-{i}","source":"claude","source_event":"PostToolUse","run_id":"r{run}","#,
            r#""session_id":"r{run}","agent":"main","entity_type":"tool","entity_id":"toolu_{i:08}","status":"success","#,
            r#""severity":"info","title":"Bash cargo test -p crate{m}","duration_ms":{d},"correlation_id":"toolu_{i:08}","#,
            r#""metrics":{{"input_tokens":{it},"output_tokens":{ot},"cost_usd":0.0012}},"#,
            r#""payload":{{"tool_name":"Bash","tool_input":{{"command":"cargo test -p crate{m}"}},"#,
            r#""tool_response":{{"stdout":"running 12 tests\ntest result: ok. 12 passed; 0 failed","exit_code":0}},"cwd":"/home/dev/project"}}}}"#
        ),
        i = i,
        run = run,
        m = i % 50,
        d = 10 + i % 900,
        it = 100 + i % 1000,
        ot = 10 + i % 200
    )
}

/// `FTS_COST_EVENTS=bench` indexes the budget benchmark's event instead of the varied mix.
fn events(n: usize) -> Vec<Event> {
    let mut r = Rng(0x5EED_1234_ABCD_0001);
    let now = Timestamp::now();
    let bench = std::env::var("FTS_COST_EVENTS").is_ok_and(|v| v == "bench");
    (0..n)
        .map(|i| {
            let json = if bench {
                bench_json(i)
            } else {
                event_json(i, &mut r)
            };
            parse_event(json.as_bytes(), now).expect("valid event")
        })
        .collect()
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// The indexer stage alone, as `fulltext` runs it (same pragmas, automerge 16, one transaction
/// per batch of 1,000), with a given `detail`.
fn index_only(dir: &Path, name: &str, options: &str, docs: &[(u64, String)]) -> (Duration, u64) {
    let path = dir.join(format!("fts-{name}"));
    let conn = Connection::open(&path).unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -4000; PRAGMA wal_autocheckpoint = 16000;",
    )
    .unwrap();
    conn.execute_batch(&format!(
        "CREATE VIRTUAL TABLE events_fts USING fts5(body, content='', contentless_delete=1, {options});
         INSERT INTO events_fts (events_fts, rank) VALUES ('automerge', 16);"
    ))
    .unwrap();
    let start = Instant::now();
    for chunk in docs.chunks(1000) {
        conn.execute_batch("BEGIN").unwrap();
        {
            let mut insert = conn
                .prepare_cached("INSERT INTO events_fts (rowid, body) VALUES (?1, ?2)")
                .unwrap();
            for (seq, text) in chunk {
                insert.execute(params![*seq as i64, text]).unwrap();
            }
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    let took = start.elapsed();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    (took, file_size(&path))
}

/// The whole store with this build's index: events committed and indexed, both files' sizes.
fn whole_store(dir: &Path, events: Vec<Event>) -> (Duration, u64, u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = dir.join("store.sqlite");
    let store = Store::open(StoreConfig::new(&db), Box::new(|_| {})).unwrap();
    let total = events.len();
    let batches: Vec<Vec<Event>> = events.chunks(1000).map(|c| c.to_vec()).collect();
    let start = Instant::now();
    rt.block_on(async {
        let mut pending = Vec::new();
        for batch in batches {
            pending.push(store.submit(batch).unwrap());
            if pending.len() >= 4 {
                pending.remove(0).await.unwrap().unwrap();
            }
        }
        for p in pending {
            p.await.unwrap().unwrap();
        }
    });
    // Acknowledged means committed; the indexer is a stage behind and is waited for here.
    while store.indexer_lag() > 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = start.elapsed();
    // First pages of searches users type, newest first, as the API asks for them.
    for q in [
        "127.0.0.1",
        "main.rs",
        "parse_event",
        "cargo test",
        "error[E0308]:",
        "🔑",
        "x",
    ] {
        let filter = sightline_schema::Filter {
            q: Some(q.to_string()),
            ..Default::default()
        };
        let start = Instant::now();
        let mut found = 0;
        for _ in 0..5 {
            let page = store
                .read_blocking(|c| {
                    sightline_store::query::search(
                        c,
                        &filter,
                        sightline_store::query::Order::Desc,
                        None,
                        50,
                    )
                })
                .unwrap();
            found = page.items.len();
        }
        println!(
            "search {q:<14} first page {:>7.2} ms ({found} events)",
            start.elapsed().as_secs_f64() * 1000.0 / 5.0
        );
    }
    store.close();
    for p in [db.clone(), fulltext::index_path(&db)] {
        let c = Connection::open(&p).unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
    }
    assert_eq!(
        store
            .read_blocking(sightline_store::query::head_seq)
            .unwrap(),
        total as u64
    );
    (took, file_size(&db), file_size(&fulltext::index_path(&db)))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let events = events(n);
    let docs: Vec<(u64, String)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, searchable_text(e)))
        .collect();
    let json: usize = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap().len())
        .sum();
    let text: usize = docs.iter().map(|d| d.1.len()).sum();
    println!(
        "{n} events: {:.0} bytes of JSON and {:.0} bytes of searchable text per event",
        json as f64 / n as f64,
        text as f64 / n as f64
    );
    let dir = tempfile::tempdir().unwrap();
    let only = std::env::var("FTS_COST_ONLY").ok();
    for (name, options) in [
        ("none", "detail=none"),
        ("column", "detail=column"),
        ("full", "detail=full"),
    ] {
        if only.as_deref().is_some_and(|o| o != name && o != "index") {
            continue;
        }
        let (took, bytes) = index_only(dir.path(), name, options, &docs);
        println!(
            "index only, detail={name:<18}  {:>7.0} bytes/event  {:>6.2} s  {:>8.0} events/s",
            bytes as f64 / n as f64,
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64()
        );
    }
    if only.as_deref().is_none_or(|o| o == "store") {
        let (took, main, fts) = whole_store(dir.path(), events);
        println!(
            "whole store (this build): {:.2} s, {:.0} events/s; main file {:.0} + full-text file {:.0} = {:.0} bytes/event",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            main as f64 / n as f64,
            fts as f64 / n as f64,
            (main + fts) as f64 / n as f64
        );
    }
}
