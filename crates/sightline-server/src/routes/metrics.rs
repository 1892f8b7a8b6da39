//! `GET /metrics`: the hub's own metrics in the Prometheus text exposition format (0.0.4), for
//! a Prometheus server to scrape (role `read`, like every other read of the hub's state).
//!
//! Nothing here keeps state: each scrape reads what the core and the store already count —
//! per-source health, the writer's atomics and lock-free histograms, the subscriber gauges —
//! into one [`Snapshot`], and `prometheus-client` writes it (names, `_total` suffixes, units,
//! escaping, cumulative buckets). So a metric can never drift from `/api/v1/health`, and the
//! hot paths pay nothing for being scraped. This module must never take a lock the writer or a
//! stream holds for long, never touch the database (file sizes come from the file system), and
//! never count anything itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use sightline_core::{SourceHealth, Transport};
use sightline_store::HistogramSnapshot;

use crate::hub::Hub;

/// Every metric's name starts with this.
const PREFIX: &str = "sightline";

/// The content type Prometheus asks for first when it cannot have protobuf or OpenMetrics.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Everything one scrape shows, read at once.
#[derive(Debug)]
struct Snapshot {
    version: &'static str,
    uptime_s: f64,
    sources: Vec<SourceHealth>,
    queue_depth: u64,
    queue_capacity: u64,
    batch_events: HistogramSnapshot,
    commit_latency_us: HistogramSnapshot,
    indexer_lag: u64,
    subscribers: Vec<(&'static str, u64)>,
    bus_receivers: u64,
    subscriber_lags: u64,
    head_seq: u64,
    stored: u64,
    retained_away: u64,
    database_bytes: u64,
    wal_bytes: u64,
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn wal_of(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

impl Snapshot {
    fn read(hub: &Hub) -> Snapshot {
        let (core, store) = (hub.core(), hub.store());
        let stats = store.stats();
        // The main file and the full-text file, each with its WAL (what `size_bytes` sums).
        let files = [
            store.path().to_path_buf(),
            sightline_store::fulltext::index_path(store.path()),
        ];
        Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: core.uptime().as_secs_f64(),
            sources: core.health().snapshot(),
            queue_depth: store.queue_depth() as u64,
            queue_capacity: store.queue_capacity() as u64,
            batch_events: stats.commit_batch_events.snapshot(),
            commit_latency_us: stats.commit_latency_us.snapshot(),
            indexer_lag: store.indexer_lag(),
            subscribers: Transport::ALL
                .iter()
                .map(|t| (t.name(), core.subscribers(*t)))
                .collect(),
            bus_receivers: core.bus().subscribers() as u64,
            subscriber_lags: core.subscriber_lags(),
            head_seq: store.head_seq(),
            stored: stats.stored.load(Ordering::Relaxed),
            retained_away: stats.retained_away.load(Ordering::Relaxed),
            database_bytes: files.iter().map(|p| file_size(p)).sum(),
            wal_bytes: files.iter().map(|p| file_size(&wal_of(p))).sum(),
        }
    }
}

/// One metric without labels.
fn single(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: impl EncodeMetric,
) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, unit, metric.metric_type())?;
    metric.encode(m)
}

/// One metric family: a series per label set.
fn family<'a, M: EncodeMetric>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    series: impl IntoIterator<Item = (Vec<(&'static str, &'a str)>, M)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, metric) in series {
        metric.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram from the writer's integer buckets, its bounds and sum divided by `scale` (1 for
/// events, 1e6 for microseconds → seconds).
fn histogram(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    h: &HistogramSnapshot,
    scale: f64,
) -> std::fmt::Result {
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .map(|&(bound, n)| {
            let le = if bound == u64::MAX {
                f64::INFINITY
            } else {
                bound as f64 / scale
            };
            (le, n)
        })
        .collect();
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Histogram)?;
    m.encode_histogram::<NoLabelSet>(h.sum as f64 / scale, h.count, &buckets, None)
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let e = &mut enc;
        let per_source = |f: fn(&SourceHealth) -> u64| {
            self.sources
                .iter()
                .map(move |s| (vec![("source", s.name.as_str())], ConstCounter::new(f(s))))
        };
        family(
            e,
            "build_info",
            "The running hub's version (always 1).",
            MetricType::Gauge,
            [(vec![("version", self.version)], ConstGauge::new(1i64))],
        )?;
        single(
            e,
            "uptime",
            "Time since the hub started.",
            Some(&Unit::Seconds),
            ConstGauge::new(self.uptime_s),
        )?;

        // Ingest, per path events come in by (the names of /api/v1/health's `adapters`).
        family(
            e,
            "events_accepted",
            "Events committed, by the path they came in by (http, ws, an endpoint or background source; the otlp-export entry counts events exported).",
            MetricType::Counter,
            per_source(|s| s.events),
        )?;
        let refusals = self.sources.iter().flat_map(|s| {
            [
                ("queue_full", s.refused_full),
                ("invalid", s.refused_invalid),
            ]
            .map(|(reason, n)| {
                (
                    vec![("source", s.name.as_str()), ("reason", reason)],
                    ConstCounter::new(n),
                )
            })
        });
        family(
            e,
            "ingest_refusals",
            "Refusals by path and reason: queue_full counts batches refused because the write queue was full (retried by the producer), invalid counts requests or lines refused as invalid.",
            MetricType::Counter,
            refusals,
        )?;
        single(
            e,
            "events_dropped",
            "Accepted events the hub dropped: always 0, because a full queue refuses instead (reason queue_full) and a lagging subscriber catches up from the database. The OTLP exporter's own drops are reported by its otlp-export health entry.",
            None,
            ConstCounter::new(0u64),
        )?;

        // The write queue and the single writer.
        single(
            e,
            "queue_depth_events",
            "Events queued for the writer or the full-text indexer (released once indexed; producers are refused at the queue capacity).",
            None,
            ConstGauge::new(self.queue_depth as i64),
        )?;
        single(
            e,
            "queue_capacity_events",
            "Events the write queue holds before ingest is refused with reason queue_full.",
            None,
            ConstGauge::new(self.queue_capacity as i64),
        )?;
        histogram(
            e,
            "commit_batch_size_events",
            "Events per committed batch (group commit).",
            None,
            &self.batch_events,
            1.0,
        )?;
        histogram(
            e,
            "commit_latency",
            "Per committed batch, from its first job reaching the writer to its transaction's commit.",
            Some(&Unit::Seconds),
            &self.commit_latency_us,
            1e6,
        )?;
        single(
            e,
            "indexer_lag_events",
            "Events committed but not yet in the full-text index (search still finds them).",
            None,
            ConstGauge::new(self.indexer_lag as i64),
        )?;
        single(
            e,
            "head_seq",
            "The last committed seq.",
            None,
            ConstGauge::new(self.head_seq as i64),
        )?;

        // Live fan-out.
        family(
            e,
            "subscribers",
            "Live subscriptions by transport: sse (one per stream), ws (one per subscribe message).",
            MetricType::Gauge,
            self.subscribers
                .iter()
                .map(|&(t, n)| (vec![("transport", t)], ConstGauge::new(n as i64))),
        )?;
        single(
            e,
            "bus_receivers",
            "Receivers on the in-process bus: every live subscription, the OTLP exporter and workflow streams included.",
            None,
            ConstGauge::new(self.bus_receivers as i64),
        )?;
        single(
            e,
            "subscriber_lagged",
            "Times a live subscription fell behind the bus ring and caught up from the database (no event is skipped).",
            None,
            ConstCounter::new(self.subscriber_lags),
        )?;

        // Sources.
        family(
            e,
            "source_up",
            "1 when the source's state is running, 0 otherwise (failed, stopped, finished, connecting, ...).",
            MetricType::Gauge,
            self.sources.iter().map(|s| {
                (
                    vec![("source", s.name.as_str())],
                    ConstGauge::new(i64::from(s.state == "running")),
                )
            }),
        )?;
        family(
            e,
            "source_errors",
            "Problems a source met and went on from (or failed on).",
            MetricType::Counter,
            per_source(|s| s.errors),
        )?;

        // Storage.
        single(
            e,
            "database_size",
            "The database file and its full-text file, without their WALs.",
            Some(&Unit::Bytes),
            ConstGauge::new(self.database_bytes as i64),
        )?;
        single(
            e,
            "wal_size",
            "The write-ahead logs of the database and full-text files.",
            Some(&Unit::Bytes),
            ConstGauge::new(self.wal_bytes as i64),
        )?;
        single(
            e,
            "events_stored",
            "Events in the database now.",
            None,
            ConstGauge::new(self.stored as i64),
        )?;
        single(
            e,
            "retention_deleted_events",
            "Events deleted by retention since the hub started.",
            None,
            ConstCounter::new(self.retained_away),
        )
    }
}

/// The text a scrape gets.
pub fn render(hub: &Hub) -> String {
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(Snapshot::read(hub)));
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    out
}

pub async fn metrics(State(hub): State<Hub>) -> Response {
    let body = render(&hub);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
}
