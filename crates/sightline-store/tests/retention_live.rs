//! Retention changed while the store runs: the writer's next sweep uses the new period, and
//! "keep forever" stops deletion. Real SQLite file, real writer thread.

use std::time::{Duration, Instant};

use serde_json::json;
use sightline_schema::{Event, Timestamp, parse_event};
use sightline_store::{Store, StoreConfig};

fn event(i: usize) -> Event {
    let v = json!({"source": "claude", "source_event": "PreToolUse", "entity_type": "tool",
        "title": "Bash", "run_id": "r", "event_id": format!("e{i}")});
    parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
}

async fn stored(store: &Store) -> i64 {
    store
        .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_next_sweep_uses_a_changed_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("db.sqlite"));
    config.retention = None;
    // Sweeps every 50 ms so the test sees the next one quickly.
    config.retention_every = Duration::from_millis(50);
    let store = Store::open(config, Box::new(|_| {})).unwrap();
    assert_eq!(store.retention(), None);
    store.write((0..20).map(event).collect()).await.unwrap();
    // Retention compares arrival seconds: wait until the events' second is past.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(stored(&store).await, 20, "keep forever deletes nothing");

    store.set_retention(Some(Duration::from_millis(1)));
    assert_eq!(store.retention(), Some(Duration::from_millis(1)));
    let start = Instant::now();
    // Budget: a few sweeps at 50 ms each; 5 s covers a slow, shared machine.
    while stored(&store).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the next sweeps did not delete"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    store.set_retention(None);
    store.write((20..30).map(event).collect()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(
        stored(&store).await,
        10,
        "back to forever: nothing more is deleted"
    );
    store.close();
}
