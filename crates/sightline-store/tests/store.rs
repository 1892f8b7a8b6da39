//! The store against real SQLite files: seqs, idempotency, derived rows, roll-ups, retention.

use std::sync::{Arc, Mutex};

use serde_json::json;
use sightline_schema::{Event, Filter, Status, Timestamp, parse_event};
use sightline_store::query::{self, Order};
use sightline_store::{Store, StoreConfig};

fn event(v: serde_json::Value) -> Event {
    parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
}

fn open(dir: &tempfile::TempDir) -> (Store, Arc<Mutex<Vec<u64>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let store = Store::open(
        StoreConfig::new(dir.path().join("db.sqlite")),
        Box::new(move |events| sink.lock().unwrap().extend(events.iter().map(|e| e.seq))),
    )
    .unwrap();
    (store, seen)
}

fn tool(run: &str, session: &str, id: &str, status: &str) -> serde_json::Value {
    json!({"source": "claude", "source_event": "PreToolUse", "entity_type": "tool", "title": "Bash",
           "run_id": run, "session_id": session, "event_id": id, "status": status})
}

#[tokio::test]
async fn seqs_increase_and_repeats_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, seen) = open(&dir);
    let batch: Vec<Event> = (0..100)
        .map(|i| event(tool("r", "s", &format!("e{i}"), "running")))
        .collect();
    let acks = store.write(batch.clone()).await.unwrap();
    let seqs: Vec<u64> = acks.iter().map(|a| a.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    let again = store.write(batch).await.unwrap();
    assert!(again.iter().all(|a| a.duplicate));
    assert_eq!(again.iter().map(|a| a.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(store.head_seq(), 100);
    assert_eq!(
        *seen.lock().unwrap(),
        seqs,
        "only new events are announced, in order"
    );
    let run = store
        .read(|c| query::get_run(c, "r"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.run.event_count, 100);
}

#[tokio::test]
async fn permission_blocks_until_work_resumes_and_cost_rolls_up() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let main = |extra: serde_json::Value| {
        let mut v = json!({"source": "claude", "source_event": "x", "entity_type": "session", "title": "main",
            "run_id": "run1", "session_id": "run1"});
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        event(v)
    };
    store
        .write(vec![main(
            json!({"status": "running", "metrics": {"cost_usd": 1.0}}),
        )])
        .await
        .unwrap();
    store
        .write(vec![event(
            json!({"source": "claude", "source_event": "SubagentStart", "entity_type": "session",
            "title": "explore", "run_id": "run1", "session_id": "sub1", "parent_session_id": "run1",
            "status": "running", "metrics": {"cost_usd": 0.25, "input_tokens": 10}}),
        )])
        .await
        .unwrap();
    store
        .write(vec![event(json!({"source": "claude", "source_event": "x", "entity_type": "message", "title": "m",
            "run_id": "run1", "session_id": "sub2", "parent_session_id": "sub1", "metrics": {"cost_usd": 0.5}}))])
        .await
        .unwrap();
    store
        .write(vec![main(
            json!({"entity_type": "permission", "status": "blocked"}),
        )])
        .await
        .unwrap();
    let status = |store: &Store| {
        store
            .read_blocking(|c| query::get_run(c, "run1"))
            .unwrap()
            .unwrap()
            .run
            .status
    };
    assert_eq!(status(&store), Some(Status::Blocked));
    store
        .write(vec![event(tool("run1", "run1", "t1", "running"))])
        .await
        .unwrap();
    assert_eq!(status(&store), Some(Status::Running));

    let detail = store
        .read(|c| query::get_run(c, "run1"))
        .await
        .unwrap()
        .unwrap();
    assert!((detail.run.cost_usd - 1.75).abs() < 1e-9);
    assert_eq!(detail.run.session_count, 3);
    let tree = store
        .read(|c| query::session_tree(c, "run1"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        (tree.session.total_cost_usd - 1.75).abs() < 1e-9,
        "{}",
        tree.session.total_cost_usd
    );
    assert_eq!(tree.children.len(), 1);
    assert!((tree.children[0].session.total_cost_usd - 0.75).abs() < 1e-9);
    assert_eq!(tree.children[0].children[0].session.session_id, "sub2");
}

/// Events that arrive after a run's end but happened before it (a queue flushed at exit) do
/// not reopen the run, and a late status from before does not replace the later one.
#[tokio::test]
async fn late_events_from_before_the_end_do_not_reopen_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let ev = |source_event: &str, entity: &str, status: &str, ts: &str| {
        event(
            json!({"source": "python", "source_event": source_event, "entity_type": entity,
            "title": source_event, "run_id": "late", "session_id": "late:main", "status": status,
            "ts": ts}),
        )
    };
    let run = |store: &Store| {
        store
            .read_blocking(|c| query::get_run(c, "late"))
            .unwrap()
            .unwrap()
            .run
    };
    // One batch, in arrival order: start, exit, then a call that ended before the exit.
    store
        .write(vec![
            ev(
                "process_start",
                "process",
                "running",
                "2026-11-21T10:00:00.000Z",
            ),
            ev(
                "process_exit",
                "process",
                "success",
                "2026-11-21T10:00:02.000Z",
            ),
            ev("call", "call", "success", "2026-11-21T10:00:01.500Z"),
        ])
        .await
        .unwrap();
    let r = run(&store);
    assert_eq!(r.status, Some(Status::Success));
    assert_eq!(
        r.ended_at.map(|t| t.to_string()).as_deref(),
        Some("2026-11-21T10:00:02.000Z")
    );
    // A status from before the exit, arriving late in a batch of its own with a later call.
    store
        .write(vec![
            ev(
                "process_exit",
                "process",
                "success",
                "2026-11-21T10:00:02.000Z",
            ),
            ev(
                "control_applied",
                "process",
                "running",
                "2026-11-21T10:00:01.000Z",
            ),
        ])
        .await
        .unwrap();
    let r = run(&store);
    assert_eq!(r.status, Some(Status::Success));
    assert!(r.ended_at.is_some());
}

/// Across batches too: work that happened before a wait, delivered after it (Codex sends its
/// telemetry at exit, after its rollout marked the session idle), neither reopens the wait nor
/// lets an older status replace it; work after the wait does reopen it.
#[tokio::test]
async fn a_late_batch_never_reopens_a_newer_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let ev = |source_event: &str, entity: &str, status: &str, ts: &str| {
        event(
            json!({"source": "claude", "source_event": source_event, "entity_type": entity,
            "title": source_event, "run_id": "wait", "session_id": "wait", "status": status,
            "entity_id": source_event, "ts": format!("2026-11-21T10:00:{ts}.000Z")}),
        )
    };
    let status = |store: &Store| {
        let run = store
            .read_blocking(|c| query::get_run(c, "wait"))
            .unwrap()
            .unwrap()
            .run
            .status;
        let session = store
            .read_blocking(|c| query::sessions_of_run(c, "wait"))
            .unwrap()[0]
            .status;
        (run, session)
    };
    let idle = Some(Status::Idle);
    store
        .write(vec![
            ev("start", "session", "running", "01"),
            ev("stop", "session", "idle", "10"),
        ])
        .await
        .unwrap();
    assert_eq!(status(&store), (idle, idle));
    // Late: a tool call and an older "running" from before the stop.
    store
        .write(vec![
            ev("tool", "tool", "success", "05"),
            ev("prompt", "session", "running", "04"),
        ])
        .await
        .unwrap();
    assert_eq!(
        status(&store),
        (idle, idle),
        "a late batch reopened the wait"
    );
    store
        .write(vec![ev("tool2", "tool", "running", "12")])
        .await
        .unwrap();
    let running = Some(Status::Running);
    assert_eq!(
        status(&store),
        (running, running),
        "work after the wait reopens it"
    );
    // A wait at 15, then a late idle from 14: the newer wait stays.
    store
        .write(vec![ev("ask", "permission", "blocked", "15")])
        .await
        .unwrap();
    store
        .write(vec![ev("stop", "session", "idle", "14")])
        .await
        .unwrap();
    let blocked = Some(Status::Blocked);
    assert_eq!(status(&store), (blocked, blocked));
}

#[tokio::test]
async fn search_pages_and_full_text() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let mut batch = Vec::new();
    for i in 0..50 {
        let mut v = tool(
            "r",
            "s",
            &format!("e{i}"),
            if i % 5 == 0 { "failed" } else { "success" },
        );
        v["payload"] = json!({"command": format!("cargo test number{i}")});
        batch.push(event(v));
    }
    store.write(batch).await.unwrap();
    let filter = Filter::from_params([("statuses", "failed")]).unwrap();
    let page = store
        .read(move |c| query::search(c, &filter, Order::Desc, None, 4))
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![46, 41, 36, 31]
    );
    assert_eq!(page.next_cursor, Some(31));
    let filter = Filter::from_params([("q", "number17")]).unwrap();
    let hits = store
        .read(move |c| query::search(c, &filter, Order::Asc, None, 10))
        .await
        .unwrap();
    assert_eq!(hits.items.len(), 1);
    assert_eq!(hits.items[0].event_id, "e17");
    let incidents = store
        .read(|c| query::incidents(c, Timestamp(0), 300_000, 10))
        .await
        .unwrap();
    assert_eq!(incidents.iter().map(|i| i.count).sum::<i64>(), 10);
}

#[tokio::test]
async fn retention_deletes_by_arrival_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    store
        .write(
            (0..10)
                .map(|i| event(tool("old", "s", &format!("o{i}"), "running")))
                .collect(),
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let cutoff = Timestamp::now();
    store
        .write(
            (0..5)
                .map(|i| event(tool("new", "s2", &format!("n{i}"), "running")))
                .collect(),
        )
        .await
        .unwrap();
    let deleted = store.delete_before(cutoff).await.unwrap();
    assert_eq!(deleted, 10);
    let all = store
        .read(|c| query::search(c, &Filter::default(), Order::Asc, None, 100))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(
        store
            .read(|c| query::get_run(c, "old"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .read(|c| query::get_run(c, "new"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn reopening_keeps_seq_and_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    store
        .write(vec![event(tool("r", "s", "a", "running"))])
        .await
        .unwrap();
    let epoch = store.epoch().to_string();
    store.close();
    let (again, _) = open(&dir);
    assert_eq!(again.epoch(), epoch);
    let acks = again
        .write(vec![event(tool("r", "s", "b", "running"))])
        .await
        .unwrap();
    assert_eq!(acks[0].seq, 2);
}

/// How many events the full-text index itself (not the in-memory rule for its tail) finds.
fn indexed_hits(store: &Store, word: &str) -> i64 {
    let word = word.to_string();
    store
        .read_blocking(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM fts.events_fts WHERE events_fts MATCH ?1",
                [word],
                |r| r.get(0),
            )?)
        })
        .unwrap()
}

fn search_q(store: &Store, q: &str) -> Vec<String> {
    let filter = Filter::from_params([("q", q)]).unwrap();
    store
        .read_blocking(move |c| query::search(c, &filter, Order::Asc, None, 100))
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.event_id)
        .collect()
}

/// Polls `done` every 10 ms for up to 10 s (the indexer runs on its own thread).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[tokio::test]
async fn an_acknowledged_event_is_searchable_at_once_and_indexed_soon_after() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    for i in 0..20 {
        let mut v = tool("r", "s", &format!("ack{i}"), "running");
        v["payload"] = json!({"command": format!("deploy zebra{i}")});
        // Acknowledged means committed; search finds it whether or not the index has it yet.
        store.write(vec![event(v)]).await.unwrap();
        assert_eq!(
            search_q(&store, &format!("zebra{i}")),
            vec![format!("ack{i}")]
        );
    }
    eventually("the index covers every event", || {
        store.indexer_lag() == 0 && (0..20).all(|i| indexed_hits(&store, &format!("zebra{i}")) == 1)
    });
    assert_eq!(
        store.queue_depth(),
        0,
        "indexed batches leave the queue depth"
    );
}

/// The indexer is one stage behind the writer and a producer never waits for it: with the index
/// file locked by another writer, events are still acknowledged, found by search on its first
/// page (in either order, whatever their place among the unindexed ones), and counted in the
/// queue depth (what bounds the indexer's backlog) until the index takes them.
#[tokio::test]
async fn a_stalled_index_holds_back_no_acknowledgement_and_hides_nothing_from_search() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let fts = rusqlite::Connection::open(sightline_store::fulltext::index_path(
        &dir.path().join("db.sqlite"),
    ))
    .unwrap();
    fts.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let batch = (0..50)
        .map(|i| {
            let mut v = tool("r", "s", &format!("stalled{i}"), "running");
            v["payload"] = json!({"command": format!("rsync numbat{i}")});
            event(v)
        })
        .collect();
    let acks = tokio::time::timeout(std::time::Duration::from_secs(3), store.write(batch))
        .await
        .expect("acknowledged while the index file is locked")
        .unwrap();
    assert_eq!(acks.len(), 50);
    assert_eq!(store.indexer_lag(), 50);
    assert_eq!(
        store.queue_depth(),
        50,
        "not indexed yet, so still in the depth"
    );
    let first_page = |q: &str, order: Order| {
        let filter = Filter::from_params([("q", q)]).unwrap();
        store
            .read_blocking(move |c| query::search(c, &filter, order, None, 5))
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.event_id)
            .collect::<Vec<_>>()
    };
    // 31 unindexed events come before it in ascending order, 18 in descending: far more than
    // the page's 5 rows.
    for order in [Order::Asc, Order::Desc] {
        assert_eq!(first_page("numbat31", order), vec!["stalled31".to_string()]);
        assert_eq!(first_page("numbat17", order), vec!["stalled17".to_string()]);
        assert!(first_page("wombat", order).is_empty(), "and no wrong hits");
    }
    fts.execute_batch("COMMIT").unwrap();
    eventually("the index takes the events once the lock is gone", || {
        store.indexer_lag() == 0 && indexed_hits(&store, "numbat31") == 1
    });
    assert_eq!(store.queue_depth(), 0);
    assert_eq!(
        first_page("numbat31", Order::Asc),
        vec!["stalled31".to_string()]
    );
}

#[tokio::test]
async fn search_covers_events_the_index_does_not_cover_yet() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let mut v = tool("r", "s", "tail1", "running");
    v["payload"] = json!({"command": "rsync quokka"});
    store.write(vec![event(v)]).await.unwrap();
    eventually("indexed", || store.indexer_lag() == 0);
    // Make the index trail the head, as it does while a batch is being indexed.
    let fts = rusqlite::Connection::open(sightline_store::fulltext::index_path(
        &dir.path().join("db.sqlite"),
    ))
    .unwrap();
    fts.execute_batch(
        "INSERT INTO events_fts (events_fts) VALUES ('delete-all'); UPDATE fts_state SET indexed_through = 0;",
    )
    .unwrap();
    assert_eq!(indexed_hits(&store, "quokka"), 0);
    assert_eq!(search_q(&store, "quokka"), vec!["tail1".to_string()]);
    assert!(search_q(&store, "wombat").is_empty(), "and no wrong hits");
}

#[tokio::test]
async fn the_full_text_index_is_rebuilt_when_missing_or_foreign() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    let index = sightline_store::fulltext::index_path(&db);
    let (store, _) = open(&dir);
    let mut v = tool("r", "s", "kept", "running");
    v["payload"] = json!({"command": "make ocelot"});
    store.write(vec![event(v)]).await.unwrap();
    store.close();
    drop(store);
    // Deleted: rebuilt from `events` at open.
    for suffix in ["", "-wal", "-shm"] {
        let mut p = index.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let (store, _) = open(&dir);
    assert_eq!(indexed_hits(&store, "ocelot"), 1);
    store.close();
    drop(store);
    // Another database's index beside this one (a restored backup): rebuilt, not trusted.
    let other = tempfile::tempdir().unwrap();
    let (foreign, _) = open(&other);
    let mut v = tool("x", "s", "foreign", "running");
    v["payload"] = json!({"command": "make ocelot again"});
    foreign.write(vec![event(v.clone())]).await.unwrap();
    v["event_id"] = json!("foreign2");
    foreign.write(vec![event(v)]).await.unwrap();
    foreign.close();
    drop(foreign);
    let other_index = sightline_store::fulltext::index_path(&other.path().join("db.sqlite"));
    std::fs::copy(&other_index, &index).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut p = index.clone().into_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
    let (store, _) = open(&dir);
    assert_eq!(search_q(&store, "ocelot"), vec!["kept".to_string()]);
    assert_eq!(indexed_hits(&store, "ocelot"), 1);
}

#[tokio::test]
async fn payloads_are_compressed_with_a_trained_dictionary_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let make = |i: usize| {
        let mut v = tool(&format!("r{}", i % 10), "s", &format!("z{i}"), "success");
        v["payload"] = json!({"tool_name": "Bash", "cwd": "/home/dev/project",
            "tool_input": {"command": format!("cargo test -p crate{}", i % 13)},
            "tool_response": {"stdout": format!("test result: ok. {i} passed"), "exit_code": 0}});
        v["metrics"] = json!({"input_tokens": i % 1000, "cost_usd": 0.0012});
        event(v)
    };
    let mut written = Vec::new();
    // Enough events for the dictionary's samples; training runs beside the writer.
    for chunk in (0..sightline_store::codec::SAMPLES + 200)
        .collect::<Vec<_>>()
        .chunks(500)
    {
        let batch: Vec<Event> = chunk.iter().map(|&i| make(i)).collect();
        written.extend(batch.clone());
        store.write(batch).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut i = written.len();
    loop {
        let e = make(i);
        written.push(e.clone());
        store.write(vec![e]).await.unwrap();
        i += 1;
        let blobs: i64 = store
            .read_blocking(|c| {
                Ok(c.query_row(
                    "SELECT COUNT(*) FROM events WHERE typeof(payload) = 'blob'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        if blobs > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dictionary was trained"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let last: Vec<Event> = (i..i + 50).map(make).collect();
    written.extend(last.clone());
    store.write(last).await.unwrap();
    let read_all = |store: &Store| {
        store
            .read_blocking(|c| query::search(c, &Filter::default(), Order::Asc, None, 5000))
            .unwrap()
            .items
    };
    let check = |stored: Vec<Event>| {
        assert_eq!(stored.len(), written.len().min(5000));
        for (got, want) in stored.iter().zip(&written) {
            let mut want = want.clone();
            want.seq = got.seq;
            assert_eq!(got.to_json(), want.to_json());
        }
    };
    check(read_all(&store));
    store.close();
    drop(store);
    let (again, _) = open(&dir);
    check(read_all(&again));
}

#[tokio::test]
async fn a_dictionary_that_compresses_poorly_is_replaced_early() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(&dir);
    let dictionaries = |store: &Store| -> i64 {
        store
            .read_blocking(|c| {
                Ok(c.query_row("SELECT COUNT(*) FROM dictionaries", [], |r| r.get(0))?)
            })
            .unwrap()
    };
    // The first events are unlike what follows (a tmux pane's lines, say).
    let pane = |i: usize| {
        let mut v = tool("p", "s", &format!("p{i}"), "running");
        v["payload"] = json!({"line": format!("$ ls -la /tmp/{i}"), "pane": format!("%{}", i % 9)});
        event(v)
    };
    let tool_call = |i: usize| {
        let mut v = tool("t", "s", &format!("t{i}"), "success");
        v["payload"] = json!({"tool_name": "Read", "tool_input": {"file_path": format!("/srv/app/src/module_{}.rs", i % 97)},
            "tool_response": {"content": format!("fn handler_{i}() -> Result<Response, Error> {{ todo!() }}"), "lines": i % 400}});
        event(v)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut i = 0;
    while dictionaries(&store) < 1 {
        store.write((i..i + 500).map(pane).collect()).await.unwrap();
        i += 500;
        assert!(std::time::Instant::now() < deadline, "no first dictionary");
    }
    while dictionaries(&store) < 2 {
        store
            .write((i..i + 1000).map(tool_call).collect())
            .await
            .unwrap();
        i += 1000;
        assert!(
            std::time::Instant::now() < deadline,
            "the poor dictionary was kept"
        );
    }
    assert!(
        i < 200_000,
        "replaced early, not on the 1,000,000-event schedule"
    );
    // Rows made with either dictionary still read back.
    let all = store
        .read_blocking(|c| query::search(c, &Filter::default(), Order::Desc, None, 5000))
        .unwrap();
    assert_eq!(all.items.len(), 5000);
}

/// A run keeps the first working directory its events name (payload `cwd`/`directory`, or a
/// `dir:` tag) on its row, and a database stored before that column existed gets it filled
/// when it is opened by this version.
#[tokio::test]
async fn a_run_keeps_its_first_directory_and_an_older_database_gets_it_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let cwd_of = |store: &Store, id: &'static str| {
        store
            .read_blocking(move |c| sightline_store::live::run_cwd(c, id))
            .unwrap()
    };
    {
        let (store, _) = open(&dir);
        let mut first = tool("r1", "s1", "a", "running");
        first["payload"] = json!({"tool_name": "Bash"});
        let mut named = tool("r1", "s1", "b", "success");
        named["payload"] = json!({"cwd": "/home/dev/first"});
        let mut moved = tool("r1", "s1", "c", "success");
        moved["payload"] = json!({"directory": "/home/dev/second"});
        for v in [first, named, moved] {
            store.write(vec![event(v)]).await.unwrap();
        }
        let mut tagged = tool("r2", "s2", "d", "running");
        tagged["tags"] = json!(["dir:/srv/tagged"]);
        store.write(vec![event(tagged)]).await.unwrap();
        store
            .write(vec![event(tool("r3", "s3", "e", "running"))])
            .await
            .unwrap();
        assert_eq!(cwd_of(&store, "r1").as_deref(), Some("/home/dev/first"));
        assert_eq!(cwd_of(&store, "r2").as_deref(), Some("/srv/tagged"));
        assert_eq!(cwd_of(&store, "r3"), None);
        store.close();
    }
    // What a database of schema 5 looks like: no column, the directory only in the events.
    {
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
        conn.execute_batch("ALTER TABLE runs DROP COLUMN cwd; PRAGMA user_version = 5;")
            .unwrap();
    }
    let (store, _) = open(&dir);
    assert_eq!(cwd_of(&store, "r1").as_deref(), Some("/home/dev/first"));
    assert_eq!(cwd_of(&store, "r2").as_deref(), Some("/srv/tagged"));
    assert_eq!(cwd_of(&store, "r3"), None);
    store.close();
}
