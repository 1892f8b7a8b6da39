//! What one OTLP request may cost in memory (issue 11, item 5): a request's resource attributes
//! are not copied whole into every record's event, and the events one request becomes are
//! bounded by its size, the records past that bound refused through `partialSuccess`.
//!
//! The requests are generated protobuf, decoded through the endpoint's own `HttpSource::decode`
//! (no server needed: the memory is what `decode` hands to the ingest path), and measured as the
//! total JSON size of the decoded events against the request's size.

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use sightline_core::{Decoded, HttpRequest, HttpSource};
use sightline_schema::Timestamp;
use sightline_sources::otlp::{Otlp, Signal};

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(key: &str, value: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

/// ~100 KB of resource attributes: 50 attributes of 2,000 bytes, and the two the mapping reads.
fn big_resource() -> Resource {
    let mut attributes = vec![
        string("service.name", "bulk-exporter"),
        string("session.id", "sess-bulk"),
    ];
    for i in 0..50 {
        attributes.push(string(
            &format!("host.label.{i}"),
            &format!("{i:02}").repeat(1000),
        ));
    }
    Resource {
        attributes,
        ..Default::default()
    }
}

const T0: u64 = 1_795_255_200_000_000_000;

/// How many times its size a request's events may be. An event is ~600 bytes of JSON however
/// small its record (the records here are 60–80 bytes on the wire), so this is the events'
/// own cost; before the fix each event also carried the whole 100 KB resource (cut down to a
/// 64 KiB-capped preview by validation, after being copied and redacted in full per record).
const MAX_RATIO: usize = 10;

fn decode(signal: Signal, body: Vec<u8>) -> (usize, Decoded) {
    let len = body.len();
    let request = HttpRequest {
        headers: vec![("content-type".into(), "application/x-protobuf".into())],
        params: vec![],
        body: Bytes::from(body),
        now: Timestamp::parse("2026-11-21T10:00:00Z").unwrap(),
    };
    let decoded = Otlp::new(signal)
        .decode(&request)
        .expect("a valid request decodes");
    (len, decoded)
}

/// The decoded events' total JSON size, and the largest `payload.resource` among them.
fn measure(name: &str, request_bytes: usize, decoded: &Decoded) -> (usize, usize) {
    let total: usize = decoded.events.iter().map(|e| e.to_json().len()).sum();
    let largest_resource = decoded
        .events
        .iter()
        .map(|e| e.payload.get("resource").map_or(0, |r| r.to_string().len()))
        .max()
        .unwrap_or(0);
    println!(
        "{name}: request {request_bytes} B, {} events, {} refused, events' JSON {total} B ({:.1}× the request), largest payload.resource {largest_resource} B",
        decoded.events.len(),
        decoded.refused.len(),
        total as f64 / request_bytes as f64,
    );
    (total, largest_resource)
}

/// Decodes a request that carries [`big_resource`] and checks what the resource must not cost:
/// the events' JSON at most [`MAX_RATIO`] times the request, no `payload.resource` above 1 KiB.
fn decode_big_resource(name: &str, signal: Signal, body: Vec<u8>) -> (usize, Decoded) {
    let (len, decoded) = decode(signal, body);
    let (total, largest_resource) = measure(name, len, &decoded);
    assert!(
        total <= MAX_RATIO * len,
        "events' JSON {total} B > {MAX_RATIO} × request {len} B"
    );
    assert!(
        largest_resource <= 1024,
        "payload.resource is {largest_resource} B"
    );
    (len, decoded)
}

#[test]
fn big_resource_attributes_are_not_copied_into_every_log_event() {
    let records: Vec<LogRecord> = (0..3000)
        .map(|i| LogRecord {
            time_unix_nano: T0 + i,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "record {i} of the batch"
                ))),
            }),
            attributes: vec![kv("i", any_value::Value::IntValue(i as i64))],
            ..Default::default()
        })
        .collect();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(big_resource()),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (len, decoded) = decode_big_resource("logs", Signal::Logs, request.encode_to_vec());
    assert!(
        len > 100_000,
        "the request carries the big resource: {len} B"
    );
    assert_eq!(decoded.events.len() + decoded.refused.len(), 3000);
    assert_eq!(
        decoded.events.len(),
        3000,
        "a request this size keeps every record"
    );
    // What the mapping reads from the resource still arrives.
    let e = &decoded.events[0];
    assert_eq!(e.agent.as_deref(), Some("bulk-exporter"));
    assert_eq!(e.session_id.as_deref(), Some("sess-bulk"));
    assert_eq!(e.payload["resource"]["service.name"], "bulk-exporter");
    let truncated = &e.payload["resource_truncated"];
    assert_eq!(truncated["attributes"], 52, "{truncated}");
    assert!(truncated["shown"].as_u64().unwrap() < 52, "{truncated}");
    assert!(
        truncated["bytes"].as_u64().unwrap() > 100_000,
        "{truncated}"
    );
}

#[test]
fn big_resource_attributes_are_not_copied_into_every_span_or_point() {
    let spans: Vec<Span> = (0..2000u64)
        .map(|i| Span {
            trace_id: vec![7; 16],
            span_id: (i + 1).to_be_bytes().to_vec(),
            parent_span_id: vec![0, 0, 0, 0, 0, 0, 0, 1],
            name: format!("step {i}"),
            start_time_unix_nano: T0 + i,
            end_time_unix_nano: T0 + i + 1_000_000,
            ..Default::default()
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(big_resource()),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (_, decoded) = decode_big_resource("traces", Signal::Traces, request.encode_to_vec());
    assert_eq!(decoded.events.len(), 2000);

    let points: Vec<NumberDataPoint> = (0..2000u64)
        .map(|i| NumberDataPoint {
            time_unix_nano: T0 + i,
            value: Some(number_data_point::Value::AsInt(i as i64)),
            attributes: vec![string("series", &format!("s{i}"))],
            ..Default::default()
        })
        .collect();
    let request = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(big_resource()),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "queue.depth".into(),
                    data: Some(metric::Data::Gauge(Gauge {
                        data_points: points,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (_, decoded) = decode_big_resource("metrics", Signal::Metrics, request.encode_to_vec());
    assert_eq!(decoded.events.len(), 2000);
}

#[test]
fn a_flood_of_tiny_records_is_cut_at_the_request_budget_with_partial_success() {
    // 60,000 nearly empty records: ~4 bytes each on the wire, ~500 bytes each as an event.
    let records: Vec<LogRecord> = (0..60_000u64)
        .map(|i| LogRecord {
            time_unix_nano: T0 + i,
            ..Default::default()
        })
        .collect();
    let request = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![string("service.name", "tiny")],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let (len, decoded) = decode(Signal::Logs, request.encode_to_vec());
    let (total, _) = measure("tiny records", len, &decoded);
    let budget = sightline_sources::otlp::event_budget(len);
    assert!(
        total <= budget,
        "events' JSON {total} B > the budget {budget} B"
    );
    assert!(
        !decoded.refused.is_empty(),
        "records past the budget are refused"
    );
    assert_eq!(decoded.events.len() + decoded.refused.len(), 60_000);
    // The refused are the last ones, each said why, numbered in the order they came.
    let first = &decoded.refused[0];
    assert_eq!(first.line, decoded.events.len() + 1);
    assert!(first.message.contains("budget"), "{}", first.message);
    // The answer is a partial success that names how many were rejected.
    let otlp = Otlp::new(Signal::Logs);
    let request = HttpRequest {
        headers: vec![("content-type".into(), "application/json".into())],
        params: vec![],
        body: Bytes::new(),
        now: Timestamp::now(),
    };
    let reply = otlp.reply(
        &request,
        &sightline_core::Accepted::default(),
        &decoded.refused,
    );
    let answer: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"],
        decoded.refused.len() as i64,
        "{answer}"
    );
}
