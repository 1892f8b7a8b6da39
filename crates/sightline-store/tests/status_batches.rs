//! A run's status does not depend on how its events were split into batches: the same events,
//! in any order and any split, end the run with the status its producer sent and at that time.
//!
//! Sources deliver late and out of order (an OTLP exporter sends a child span before its root,
//! which is dated by its start; a queue flushes at exit), and one HTTP request is one batch,
//! so where a batch ends is an accident of delivery, never information.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use sightline_schema::{Event, Status, Timestamp, parse_event};
use sightline_store::query;
use sightline_store::{Store, StoreConfig};

const BASE_MS: i64 = 1_795_255_200_000;

fn at(ms: i64) -> String {
    Timestamp(BASE_MS + ms).to_rfc3339()
}

/// An event of run `run`: `entity` is `run` (the run's own status) or `task`/`tool`/`log`.
fn event(run: &str, id: &str, entity: &str, status: Option<&str>, ms: i64) -> Event {
    let mut v = json!({"source": "otlp", "source_event": entity, "entity_type": entity,
        "title": format!("{entity} {id}"), "event_id": format!("{run}-{id}"), "run_id": run,
        "session_id": run, "ts": at(ms)});
    if let Some(status) = status {
        v["status"] = json!(status);
    }
    parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(
        StoreConfig::new(dir.path().join("db.sqlite")),
        Box::new(|_| {}),
    )
    .unwrap()
}

fn run_status(store: &Store, run: &str) -> (Option<Status>, Option<String>, i64) {
    let r = store
        .read_blocking(|c| query::get_run(c, run))
        .unwrap()
        .unwrap_or_else(|| panic!("run {run} was not stored"))
        .run;
    (r.status, r.ended_at.map(|t| t.to_rfc3339()), r.event_count)
}

/// The case CI met: an OTLP trace whose child span (dated 1 ms after the root's start) arrives
/// in a request of its own before the root span. The root ends the run.
#[tokio::test]
async fn a_root_span_sent_after_its_child_ends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for (run, split) in [("one-batch", false), ("two-batches", true)] {
        let child = event(run, "child", "task", Some("success"), 1);
        let root = event(run, "root", "run", Some("success"), 0);
        if split {
            store.write(vec![child]).await.unwrap();
            store.write(vec![root]).await.unwrap();
        } else {
            store.write(vec![child, root]).await.unwrap();
        }
        assert_eq!(
            run_status(&store, run),
            (Some(Status::Success), Some(at(0)), 2),
            "{run}"
        );
    }
    // And the root first, its child in the same batch after it: work never reopens an end.
    let run = "root-first";
    store
        .write(vec![
            event(run, "root", "run", Some("failed"), 0),
            event(run, "child", "task", Some("success"), 5),
        ])
        .await
        .unwrap();
    assert_eq!(
        run_status(&store, run),
        (Some(Status::Failed), Some(at(0)), 2)
    );
}

/// A fast producer's start and end in the same millisecond, the end delivered first (in a batch
/// of its own, or first in one batch): the end stands.
#[tokio::test]
async fn a_start_sent_after_its_end_in_the_same_millisecond_does_not_reopen_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for (run, split) in [("same-ms-one-batch", false), ("same-ms-two-batches", true)] {
        let end = event(run, "end", "run", Some("success"), 7);
        let start = event(run, "start", "run", Some("running"), 7);
        if split {
            store.write(vec![end]).await.unwrap();
            store.write(vec![start]).await.unwrap();
        } else {
            store.write(vec![end, start]).await.unwrap();
        }
        assert_eq!(
            run_status(&store, run),
            (Some(Status::Success), Some(at(7)), 2),
            "{run}"
        );
    }
}

/// One run: its start, its end (possibly in the same millisecond), and work at any time (before
/// the start, between, after the end).
#[derive(Debug, Clone)]
struct Case {
    start_ms: i64,
    end_ms: i64,
    end_status: &'static str,
    /// (entity, status, ms) of each piece of work.
    work: Vec<(&'static str, Option<&'static str>, i64)>,
    /// A permutation key per event (start, end, then work) and where batches are cut.
    order: Vec<u32>,
    cuts: Vec<bool>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..50i64,
        0..50i64,
        prop::sample::select(vec!["success", "failed", "cancelled"]),
        prop::collection::vec(
            (
                prop::sample::select(vec!["task", "tool", "log"]),
                prop::sample::select(vec![None, Some("running"), Some("success"), Some("failed")]),
                -20..150i64,
            ),
            0..12,
        ),
    )
        .prop_flat_map(|(start_ms, gap, end_status, work)| {
            let n = work.len() + 2;
            (
                Just((start_ms, start_ms + gap, end_status, work)),
                prop::collection::vec(any::<u32>(), n),
                prop::collection::vec(any::<bool>(), n),
            )
        })
        .prop_map(|((start_ms, end_ms, end_status, work), order, cuts)| Case {
            start_ms,
            end_ms,
            end_status,
            work,
            order,
            cuts,
        })
}

/// Any delivery of one run's events ends it with its end's status, at its end's time.
#[test]
fn any_split_of_a_runs_events_ends_it_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::cell::Cell::new(0u32);
    runner
        .run(&case(), |c| {
            n.set(n.get() + 1);
            let run = format!("case-{}", n.get());
            let mut events = vec![
                event(&run, "start", "run", Some("running"), c.start_ms),
                event(&run, "end", "run", Some(c.end_status), c.end_ms),
            ];
            for (i, (entity, status, ms)) in c.work.iter().enumerate() {
                events.push(event(&run, &format!("w{i}"), entity, *status, *ms));
            }
            let total = events.len() as i64;
            let mut keyed: Vec<(u32, Event)> = c.order.iter().copied().zip(events).collect();
            keyed.sort_by_key(|(k, _)| *k);
            let mut batch = Vec::new();
            for ((_, e), cut) in keyed.into_iter().zip(&c.cuts) {
                batch.push(e);
                if *cut {
                    runtime
                        .block_on(store.write(std::mem::take(&mut batch)))
                        .unwrap();
                }
            }
            if !batch.is_empty() {
                runtime.block_on(store.write(batch)).unwrap();
            }
            let expected = (Status::parse(c.end_status), Some(at(c.end_ms)), total);
            let got = run_status(&store, &run);
            if got != expected {
                return Err(TestCaseError::fail(format!(
                    "{c:?}: stored {got:?}, expected {expected:?}"
                )));
            }
            Ok(())
        })
        .unwrap();
}
