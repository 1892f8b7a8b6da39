//! Fuzz target: `POST /v1/logs` through `sightline_sources::otlp::Otlp::decode`, protobuf and
//! JSON bodies (see otlp_common.rs for how an input picks one). It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use sightline_sources::otlp::Signal;

#[path = "otlp_common.rs"]
mod otlp_common;

fuzz_target!(|data: &[u8]| {
    otlp_common::run::<ExportLogsServiceRequest>(Signal::Logs, data);
});
