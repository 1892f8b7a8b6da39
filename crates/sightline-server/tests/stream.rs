//! Live streams over real SSE: gap-free, duplicate-free resume under concurrent ingest, filters,
//! and slow subscribers that catch up from SQLite without slowing ingest.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Posts `total` events in small batches, as fast as the hub acknowledges them.
fn produce(
    url: String,
    run: &'static str,
    total: usize,
    batch: usize,
) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut seqs = Vec::new();
        for start in (0..total).step_by(batch) {
            let events: Vec<Value> = (start..(start + batch).min(total))
                .map(|i| event(run, i))
                .collect();
            let (status, answer) = post(
                &format!("{url}/api/v1/events"),
                "application/x-ndjson",
                ndjson(&events),
            );
            assert_eq!(status, 202, "{answer}");
            seqs.extend(common::seqs(&answer));
            std::thread::sleep(Duration::from_micros(300));
        }
        seqs
    })
}

#[test]
fn reconnecting_with_last_event_id_gets_exactly_the_missed_events_under_ingest() {
    let hub = TestHub::start();
    // Something before the subscriber starts, so the first connection replays too.
    let (status, _) = post(
        &format!("{}/api/v1/events", hub.url),
        "application/x-ndjson",
        ndjson(&(0..50).map(|i| event("early", i)).collect::<Vec<_>>()),
    );
    assert_eq!(status, 202);
    let producer = produce(hub.url.clone(), "live", 6000, 20);

    let stream_url = format!("{}/api/v1/events/stream", hub.url);
    let mut received: Vec<u64> = Vec::new();
    let mut cursor = Some(0);
    // Three connections: each reads a while, then drops mid-stream; the last reads to the end.
    for round in 0..4 {
        let reader = open_stream(&stream_url, cursor);
        let mut taken = 0;
        let stop_after = if round < 3 { 1500 } else { usize::MAX };
        read_frames(reader, |(name, id, data)| {
            if name != "sightline.event" {
                return true;
            }
            let v: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(v["seq"].as_u64(), id);
            received.push(id.unwrap());
            taken += 1;
            taken < stop_after && received.len() < 6050
        });
        cursor = received.last().copied();
    }
    let produced = producer.join().unwrap();
    assert_eq!(received.len(), 6050, "every event exactly once");
    let expected: Vec<u64> = (1..=50).chain(produced.iter().copied()).collect();
    assert_eq!(received, expected, "in order, no gap, no duplicate");
}

#[test]
fn filters_narrow_the_stream_in_replay_and_live_alike() {
    let hub = TestHub::start();
    let url = format!("{}/api/v1/events", hub.url);
    let mixed = |offset: usize| -> String {
        ndjson(
            &(0..30)
                .map(|i| {
                    let mut e = event(if i % 3 == 0 { "wanted" } else { "other" }, offset + i);
                    if i % 2 == 0 {
                        e["severity"] = "error".into();
                        e["status"] = "failed".into();
                    }
                    e
                })
                .collect::<Vec<_>>(),
        )
    };
    post(&url, "application/x-ndjson", mixed(0));
    let stream = open_stream(
        &format!(
            "{}/api/v1/events/stream?runs=wanted&severities=error&last_event_id=0",
            hub.url
        ),
        None,
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let reader = std::thread::spawn(move || {
        read_frames(stream, |(name, _, data)| {
            if name == "sightline.event" {
                let v: Value = serde_json::from_str(&data).unwrap();
                sink.lock().unwrap().push(v);
            }
            sink.lock().unwrap().len() < 10
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    post(&url, "application/x-ndjson", mixed(100));
    reader.join().unwrap();
    let got = got.lock().unwrap();
    // i in 0..30 with i % 3 == 0 and i % 2 == 0: 0, 6, 12, 18, 24 per batch.
    assert_eq!(got.len(), 10);
    assert!(
        got.iter()
            .all(|e| e["run_id"] == "wanted" && e["severity"] == "error")
    );
}

#[test]
fn a_slow_subscriber_neither_slows_ingest_nor_misses_events() {
    let hub = TestHub::start();
    let stream_url = format!("{}/api/v1/events/stream", hub.url);
    // This subscriber does not read at all while 40,000 events arrive (far beyond the bus ring).
    let slow = open_stream(&stream_url, Some(0));
    // A fast subscriber reads everything as it comes.
    let fast_done = Arc::new(AtomicBool::new(false));
    let fast = {
        let stream = open_stream(&stream_url, Some(0));
        let done = fast_done.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            read_frames(stream, |(name, _, _)| {
                n += (name == "sightline.event") as usize;
                n < 40_000
            });
            done.store(true, Ordering::SeqCst);
            n
        })
    };
    let started = Instant::now();
    let url = format!("{}/api/v1/events", hub.url);
    for b in 0..40 {
        let (status, _) = post(
            &url,
            "application/x-ndjson",
            ndjson(
                &(0..1000)
                    .map(|i| event("flood", b * 1000 + i))
                    .collect::<Vec<_>>(),
            ),
        );
        assert_eq!(status, 202);
    }
    let ingest_time = started.elapsed();
    assert_eq!(fast.join().unwrap(), 40_000);
    // Now the slow one reads: it must get all 40,000, in order, once (caught up from SQLite).
    let mut seqs = Vec::new();
    read_frames(slow, |(name, id, _)| {
        if name == "sightline.event" {
            seqs.push(id.unwrap());
        }
        seqs.len() < 40_000
    });
    assert_eq!(seqs, (1..=40_000).collect::<Vec<u64>>());
    eprintln!("ingest of 40,000 events with a stalled subscriber took {ingest_time:?}");
}

#[test]
fn a_cursor_from_another_database_is_reported_not_used() {
    let hub = TestHub::start();
    post(
        &format!("{}/api/v1/events", hub.url),
        "application/json",
        event("r", 1).to_string(),
    );
    let stream = open_stream(
        &format!(
            "{}/api/v1/events/stream?last_event_id=0&epoch=not-this-one",
            hub.url
        ),
        None,
    );
    let mut names = Vec::new();
    let post_url = format!("{}/api/v1/events", hub.url);
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        post(&post_url, "application/json", event("r", 2).to_string());
    });
    read_frames(stream, |(name, _, data)| {
        names.push((name.clone(), data));
        name != "sightline.event"
    });
    poster.join().unwrap();
    assert_eq!(names[0].0, "sightline.hello");
    assert_eq!(names[1].0, "sightline.reset");
    assert!(names[1].1.contains("another database"));
    // Live from the head: seq 2, not a replay of seq 1.
    assert!(names[2].1.contains("\"seq\":2"), "{:?}", names[2]);
}
