//! The adapter framework: a failing adapter is restarted and reported in health without
//! stopping the others; checkpoints are persisted and resumed; a start-up error is returned.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::TestHub;
use serde_json::json;
use sightline_schema::{EntityType, Event, Source, Timestamp};
use sightline_sources::framework::{
    Adapter, AdapterConfig, AdapterContext, AdapterError, AdapterFuture, Registration,
};

static FAILS: AtomicU64 = AtomicU64::new(0);

struct Failing;
impl Adapter for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn run(self: Arc<Self>, _ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            FAILS.fetch_add(1, Ordering::SeqCst);
            Err(AdapterError::Other("the source went away".into()))
        })
    }
}

/// Emits one event per tick and counts in its checkpoint, resuming from it.
struct Counter;
impl Adapter for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn run(self: Arc<Self>, ctx: AdapterContext) -> AdapterFuture {
        Box::pin(async move {
            let mut n = ctx.checkpoint("n").and_then(|v| v.as_u64()).unwrap_or(0);
            loop {
                n += 1;
                let e =
                    Event::builder(Source::Custom, "tick", EntityType::Log, format!("tick {n}"))
                        .event_id(format!("counter-{n}"))
                        .build(Timestamp::now())
                        .map_err(|e| AdapterError::Other(e.0))?;
                ctx.emit(vec![e]).await?;
                ctx.set_checkpoint("n", json!(n));
                if ctx.sleep(Duration::from_millis(50)).await {
                    return Ok(());
                }
            }
        })
    }
}

fn failing(_: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
    Ok(Arc::new(Failing))
}
fn counter(_: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
    Ok(Arc::new(Counter))
}
fn refuses(_: &AdapterConfig) -> Result<Arc<dyn Adapter>, AdapterError> {
    Err(AdapterError::Start {
        name: "refuses".into(),
        message: "no settings".into(),
    })
}

const REGISTRY: &[Registration] = &[
    Registration {
        name: "failing",
        default_on: true,
        build: failing,
        settings: None,
    },
    Registration {
        name: "counter",
        default_on: true,
        build: counter,
        settings: None,
    },
    Registration {
        name: "refuses",
        default_on: false,
        build: refuses,
        settings: None,
    },
];

#[test]
fn a_failing_adapter_is_reported_and_never_stops_the_others() {
    let mut hub = TestHub::start();
    let config = hub.config();
    hub.start_adapters(REGISTRY, &config, &["failing", "counter"]);
    let start = Instant::now();
    loop {
        let health = hub.get("/api/v1/health");
        let adapters = health["adapters"].as_array().unwrap().clone();
        let f = adapters
            .iter()
            .find(|a| a["name"] == "failing")
            .cloned()
            .unwrap_or_default();
        let c = adapters
            .iter()
            .find(|a| a["name"] == "counter")
            .cloned()
            .unwrap_or_default();
        if f["errors"].as_u64().unwrap_or(0) >= 2 && c["events"].as_u64().unwrap_or(0) >= 5 {
            assert_eq!(f["last_error"], "the source went away");
            assert_eq!(c["state"], "running");
            assert!(c["last_event_at"].is_string());
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{adapters:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(FAILS.load(Ordering::SeqCst) >= 2, "restarted after failing");

    // Stop: the checkpoint is written; a restart resumes after it (no tick id repeats).
    hub.stop_adapters();
    let stored = hub.events().len();
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config.checkpoint_path).unwrap()).unwrap();
    let n = saved["counter"]["n"].as_u64().unwrap();
    assert_eq!(n as usize, stored, "checkpoint = last committed tick");
    hub.start_adapters(REGISTRY, &config, &["counter"]);
    hub.wait_for("ticks after the restart", Duration::from_secs(10), |e| {
        e.iter()
            .any(|e| e["event_id"] == format!("counter-{}", n + 2).as_str())
    });
    hub.stop_adapters();
    let events = hub.events();
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), events.len());
    assert!(events.iter().all(|e| e["event_id"] != "counter-0"));
}

#[test]
fn a_start_up_error_is_returned_before_anything_runs() {
    let hub = TestHub::start();
    let config = hub.config();
    let _guard = hub.runtime.enter();
    let err = sightline_sources::Adapters::start(
        hub.core(),
        REGISTRY,
        &config,
        Some(&["counter".into(), "refuses".into()]),
    )
    .err()
    .expect("refuses cannot start");
    assert!(
        err.to_string().contains("refuses") && err.to_string().contains("no settings"),
        "{err}"
    );
    // The real log adapter needs files.
    let err = sightline_sources::start(hub.core(), &config, Some(&["logs".into()]))
        .err()
        .unwrap();
    assert!(err.to_string().contains("SIGHTLINE_LOG_FILES"), "{err}");
}
