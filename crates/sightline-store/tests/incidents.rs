//! `/api/v1/incidents` reads (issue 11 item 11): the same clusters as the former whole-event
//! pass, from the narrow columns only; whole events are read for the returned samples alone.

use std::collections::HashMap;

use serde_json::json;
use sightline_schema::{Event, Timestamp, parse_event};
use sightline_store::query::{self, Incident};
use sightline_store::rows::{EVENT_COLUMNS, event_from_row};
use sightline_store::{Store, StoreConfig};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(
        StoreConfig::new(dir.path().join("db.sqlite")),
        Box::new(|_| {}),
    )
    .unwrap()
}

/// The former implementation, kept here as the reference: every failure read whole.
fn reference(
    conn: &rusqlite::Connection,
    since: Timestamp,
    window_ms: i64,
    limit: usize,
) -> Vec<Incident> {
    let mut stmt = conn
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE (severity = 4 OR status = 6) ORDER BY seq DESC LIMIT 20000"
        ))
        .unwrap();
    let mut failures: Vec<Event> = stmt
        .query_map([], event_from_row)
        .unwrap()
        .map(Result::unwrap)
        .filter(|e| e.ts >= since)
        .collect();
    failures.sort_by_key(|e| (e.ts, e.seq));
    let mut open: HashMap<(Option<String>, String), usize> = HashMap::new();
    let mut incidents: Vec<Incident> = Vec::new();
    for e in failures {
        let what = e
            .correlation_id
            .clone()
            .or_else(|| e.entity_id.clone())
            .unwrap_or_else(|| e.title.clone());
        let key = (e.run_id.clone(), what.clone());
        match open.get(&key).copied() {
            Some(i) if e.ts.millis() - incidents[i].last_seen.millis() <= window_ms => {
                let inc = &mut incidents[i];
                inc.count += 1;
                inc.last_seen = e.ts;
                inc.last_seq = e.seq;
            }
            _ => {
                open.insert(key, incidents.len());
                incidents.push(Incident {
                    key: format!("{}|{}|{}", e.run_id.as_deref().unwrap_or("-"), what, e.seq),
                    run_id: e.run_id.clone(),
                    correlation_id: e.correlation_id.clone(),
                    title: e.title.clone(),
                    source: e.source,
                    count: 1,
                    first_seen: e.ts,
                    last_seen: e.ts,
                    first_seq: e.seq,
                    last_seq: e.seq,
                    sample: e,
                });
            }
        }
    }
    incidents.sort_by(|a, b| {
        b.last_seen
            .cmp(&a.last_seen)
            .then(b.last_seq.cmp(&a.last_seq))
    });
    incidents.truncate(limit.max(1));
    incidents
}

/// Failures and successes over two hours, out of time order, across runs, correlations,
/// entities and titles, some with payloads, some before `since`.
fn events(base: i64) -> Vec<Event> {
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    (0..3000)
        .map(|i| {
            let ts = Timestamp(base + next(7_200_000) as i64).to_rfc3339();
            let source = ["claude", "workflow", "process"][next(3) as usize];
            let mut v = json!({"source": source,
                "source_event": "x", "entity_type": "tool", "event_id": format!("e{i}"),
                "ts": ts, "title": format!("step {}", next(4))});
            let o = v.as_object_mut().unwrap();
            match next(4) {
                0 => o.insert("severity".into(), json!("error")),
                1 => o.insert("status".into(), json!("failed")),
                2 => o.insert("status".into(), json!("success")),
                _ => o.insert("severity".into(), json!("info")),
            };
            if next(5) > 0 {
                o.insert("run_id".into(), json!(format!("run{}", next(6))));
            }
            match next(3) {
                0 => o.insert("correlation_id".into(), json!(format!("c{}", next(10)))),
                1 => o.insert("entity_id".into(), json!(format!("ent{}", next(10)))),
                _ => None,
            };
            o.insert(
                "payload".into(),
                json!({"output": "line of output ".repeat(next(50) as usize)}),
            );
            parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn incidents_are_the_same_as_from_whole_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let base = Timestamp::now().millis() - 3 * 3_600_000;
    store.write(events(base)).await.unwrap();
    let mut compared = 0;
    for (since, window_ms, limit) in [
        (Timestamp(0), 300_000, 100),
        (Timestamp(base + 3_600_000), 300_000, 100),
        (Timestamp(0), 1, 10_000),
        (Timestamp(0), 60_000, 1),
        (Timestamp(base), 86_400_000, 50),
        (Timestamp(0), 300_000, 0),
    ] {
        let (new, old) = store
            .read(move |c| {
                let new = query::incidents(c, since, window_ms, limit)?;
                Ok((new, reference(c, since, window_ms, limit)))
            })
            .await
            .unwrap();
        assert!(!new.is_empty());
        assert_eq!(
            serde_json::to_value(&new).unwrap(),
            serde_json::to_value(old.iter().take(query::MAX_INCIDENTS).collect::<Vec<_>>())
                .unwrap(),
            "since {since:?}, window {window_ms}, limit {limit}"
        );
        compared += new.len();
    }
    // Clusters did form (counts above one) and the comparison covered many incidents.
    assert!(compared > 1000, "{compared}");
    let all = store
        .read(|c| query::incidents(c, Timestamp(0), 300_000, 1000))
        .await
        .unwrap();
    assert!(all.iter().any(|i| i.count > 1));
    // More clusters than one call returns: the cap holds.
    let capped = store
        .read(|c| query::incidents(c, Timestamp(0), 1, 100_000))
        .await
        .unwrap();
    assert_eq!(capped.len(), query::MAX_INCIDENTS);
}

/// Only the samples are read whole: a payload that cannot be decoded on a failure that is not
/// a sample (counted into an incident opened by an earlier failure) does not matter, where the
/// whole-event pass failed on it.
#[tokio::test]
async fn only_sample_events_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let base = Timestamp::now().millis() - 3_600_000;
    let failures: Vec<Event> = (0..50)
        .map(|i| {
            let v = json!({"source": "workflow", "source_event": "x", "entity_type": "step",
                "event_id": format!("f{i}"), "run_id": "r", "correlation_id": "c",
                "status": "failed", "title": "boom",
                "ts": Timestamp(base + i * 1000).to_rfc3339(), "payload": {"n": i}});
            parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
        })
        .collect();
    store.write(failures).await.unwrap();
    {
        let conn = rusqlite::Connection::open(dir.path().join("db.sqlite")).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let changed = conn
            .execute("UPDATE events SET payload = '{not json' WHERE seq > 1", [])
            .unwrap();
        assert_eq!(changed, 49);
    }
    let whole = store
        .read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE status = 6"
            ))?;
            let n = stmt
                .query_map([], event_from_row)?
                .filter(Result::is_err)
                .count();
            Ok(n)
        })
        .await
        .unwrap();
    assert_eq!(whole, 49, "the damaged rows do fail to read whole");
    let incidents = store
        .read(|c| query::incidents(c, Timestamp(0), 300_000, 10))
        .await
        .unwrap();
    assert_eq!(incidents.len(), 1);
    let inc = &incidents[0];
    assert_eq!((inc.count, inc.first_seq, inc.last_seq), (50, 1, 50));
    assert_eq!(inc.sample.seq, 1);
    assert_eq!(inc.sample.payload["n"], json!(0));
}
