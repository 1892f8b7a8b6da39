//! `GET /metrics` from outside: the values move with what the hub does — events posted, an
//! invalid request and a full queue refused, an SSE stream and a WebSocket subscription opened
//! and closed, a subscriber that lags, a source that fails — and the text is the Prometheus
//! exposition format (a HELP and TYPE for every family, cumulative histogram buckets).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use sightline_core::Backpressure;
use sightline_schema::{Filter, Timestamp, parse_event};

/// One scrape: `name{labels}` (labels as written) → value, and the raw text.
struct Scrape {
    samples: HashMap<String, f64>,
    text: String,
}

impl Scrape {
    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.text))
    }
}

fn scrape(hub: &TestHub) -> Scrape {
    let mut res = agent().get(format!("{}/metrics", hub.url)).call().unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = res.body_mut().read_to_string().unwrap();
    let mut samples = HashMap::new();
    let mut described = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            described.insert(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| described.contains(*f)))
            .unwrap_or(name);
        assert!(
            described.contains(family),
            "{name} has no TYPE line before it"
        );
        assert!(name.starts_with("sightline_"), "{name}");
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in `{line}`")),
        };
        samples.insert(series.to_string(), value);
    }
    Scrape { samples, text }
}

/// Scrapes until `check` holds (a closed stream is noticed by the hub a moment later).
fn eventually(hub: &TestHub, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = scrape(hub);
        if check(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} never held:\n{}", s.text);
        std::thread::sleep(Duration::from_millis(50));
    }
}

const SSE: &str = "sightline_subscribers{transport=\"sse\"}";
const WS: &str = "sightline_subscribers{transport=\"ws\"}";

#[test]
fn the_values_move_with_what_the_hub_does() {
    let hub = TestHub::start();
    let before = scrape(&hub);
    assert_eq!(before.value(SSE), 0.0);
    assert_eq!(before.value(WS), 0.0);
    assert_eq!(
        before.value("sightline_events_accepted_total{source=\"http\"}"),
        0.0
    );
    assert_eq!(
        before.value("sightline_commit_batch_size_events_count"),
        0.0
    );
    assert_eq!(before.value("sightline_source_up{source=\"http\"}"), 1.0);
    assert!(before.value("sightline_queue_capacity_events") > 0.0);
    assert!(before.value("sightline_database_size_bytes") > 0.0);
    let build = format!(
        "sightline_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(before.text.contains(&build), "{}", before.text);

    // An SSE stream and a WebSocket subscription are counted while they live.
    let stream = open_stream(&format!("{}/api/v1/events/stream", hub.url), None);
    let mut ws = hub.runtime.block_on(async {
        let mut ws = hub.ws().await;
        ws_send(
            &mut ws,
            json!({"type": "subscribe", "id": "s1", "filter": {}}),
        )
        .await;
        ws_until(&mut ws, &["subscribed"]).await;
        ws
    });
    let live = eventually(&hub, "one subscriber of each transport", |s| {
        s.value(SSE) == 1.0 && s.value(WS) == 1.0
    });
    assert!(live.value("sightline_bus_receivers") >= 2.0);

    // Posted events: accepted per source, committed in batches, stored, indexed.
    let events: Vec<_> = (0..120).map(|i| event("metrics", i)).collect();
    let (status, body) = post(
        &format!("{}/api/v1/events", hub.url),
        "application/x-ndjson",
        ndjson(&events),
    );
    assert_eq!(status, 202, "{body}");
    let (status, _) = post(
        &format!("{}/api/v1/events", hub.url),
        "application/json",
        r#"{"event_id": "no-source"}"#,
    );
    assert_eq!(status, 400);
    let after = scrape(&hub);
    assert_eq!(
        after.value("sightline_events_accepted_total{source=\"http\"}"),
        120.0
    );
    assert_eq!(
        after.value("sightline_ingest_refusals_total{source=\"http\",reason=\"invalid\"}"),
        1.0
    );
    assert_eq!(
        after.value("sightline_ingest_refusals_total{source=\"http\",reason=\"queue_full\"}"),
        0.0
    );
    let batches = after.value("sightline_commit_batch_size_events_count");
    assert!(batches >= 1.0);
    assert_eq!(after.value("sightline_commit_batch_size_events_sum"), 120.0);
    assert_eq!(
        after.value("sightline_commit_batch_size_events_bucket{le=\"+Inf\"}"),
        batches
    );
    assert_eq!(
        after.value("sightline_commit_latency_seconds_count"),
        batches
    );
    assert!(after.value("sightline_commit_latency_seconds_sum") > 0.0);
    // Buckets are cumulative: never fewer below a higher bound.
    let mut bounds: Vec<(f64, f64)> = after
        .samples
        .iter()
        .filter_map(|(k, v)| {
            let le = k
                .strip_prefix("sightline_commit_latency_seconds_bucket{le=\"")?
                .strip_suffix("\"}")?;
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                },
                *v,
            ))
        })
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(bounds.len() > 5);
    assert!(bounds.windows(2).all(|w| w[0].1 <= w[1].1), "{bounds:?}");
    assert_eq!(after.value("sightline_events_stored"), 120.0);
    assert_eq!(after.value("sightline_head_seq"), 120.0);
    // Acknowledged means committed; the indexer, a stage behind, then takes everything and the
    // queue depth (which counts a batch until it is indexed) drains.
    let drained = eventually(&hub, "the indexer caught up", |s| {
        s.value("sightline_indexer_lag_events") == 0.0
            && s.value("sightline_queue_depth_events") == 0.0
    });
    assert_eq!(drained.value("sightline_head_seq"), 120.0);
    assert!(after.value("sightline_uptime_seconds") > 0.0);
    assert!(after.value("sightline_wal_size_bytes") > 0.0);

    // Closing the stream and unsubscribing uncount them.
    drop(stream);
    hub.runtime.block_on(async {
        ws_send(&mut ws, json!({"type": "unsubscribe", "id": "s1"})).await;
        // The answer says the subscription was there.
        let answer = ws_until(&mut ws, &["unsubscribed"]).await;
        assert_eq!(answer["found"], true, "{answer}");
    });
    eventually(&hub, "no subscribers left", |s| {
        s.value(SSE) == 0.0 && s.value(WS) == 0.0
    });
    drop(ws);

    // A subscriber that lets the bus ring overflow is counted when it catches up (the only
    // live one now, so the count is exact).
    let core = hub.core();
    hub.runtime.block_on(async {
        let (mut slow, _) = core.subscribe(Filter::default(), None, None).await;
        let ring = sightline_core::bus::BUS_CAPACITY;
        for chunk in 0..(ring / 1000 + 2) {
            let batch = (0..1000)
                .map(|i| {
                    let e = event("lag", chunk * 1000 + i);
                    parse_event(e.to_string().as_bytes(), Timestamp::now()).unwrap()
                })
                .collect();
            core.submit("lag-test", batch, Backpressure::Refuse)
                .await
                .unwrap();
        }
        let first = tokio::time::timeout(Duration::from_secs(20), slow.next())
            .await
            .unwrap()
            .unwrap();
        assert!(first.seq() > 120);
        assert_eq!(slow.lagged, 1);
    });
    let lagged = scrape(&hub);
    assert_eq!(lagged.value("sightline_subscriber_lagged_total"), 1.0);
    assert!(lagged.value("sightline_events_stored") > 16_000.0);

    // A source's state and errors.
    core.health()
        .failed("metrics-test", "could not read".into());
    core.health().set_state("metrics-test", "failed");
    let failed = scrape(&hub);
    assert_eq!(
        failed.value("sightline_source_up{source=\"metrics-test\"}"),
        0.0
    );
    assert_eq!(
        failed.value("sightline_source_errors_total{source=\"metrics-test\"}"),
        1.0
    );
}

#[test]
fn a_full_queue_shows_in_depth_and_refusals() {
    let (hub, gate) = TestHub::start_gated(50);
    let url = format!("{}/api/v1/events", hub.url);
    // The writer takes the first batch and holds it inside its commit.
    let first = {
        let url = url.clone();
        std::thread::spawn(move || post(&url, "application/json", event("q", 0).to_string()))
    };
    // It is committed (the histograms have it) but not acknowledged: still in the queue.
    eventually(&hub, "the first event committed and held", |s| {
        s.value("sightline_queue_depth_events") == 1.0
            && s.value("sightline_commit_batch_size_events_count") == 1.0
    });
    let over = ndjson(&(1..=60).map(|i| event("q", i)).collect::<Vec<_>>());
    let (status, body) = post(&url, "application/x-ndjson", over);
    assert_eq!(status, 503, "{body}");
    let full = scrape(&hub);
    assert_eq!(
        full.value("sightline_ingest_refusals_total{source=\"http\",reason=\"queue_full\"}"),
        1.0
    );
    assert_eq!(full.value("sightline_queue_capacity_events"), 50.0);
    gate.open();
    assert_eq!(first.join().unwrap().0, 202);
    let done = eventually(&hub, "the held batch acknowledged", |s| {
        s.value("sightline_queue_depth_events") == 0.0
    });
    assert_eq!(done.value("sightline_commit_batch_size_events_count"), 1.0);
    assert_eq!(
        done.value("sightline_events_accepted_total{source=\"http\"}"),
        1.0
    );
}
