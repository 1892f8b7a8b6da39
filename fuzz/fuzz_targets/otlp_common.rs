//! Shared by the `otlp_*` targets: how an input becomes a request to an OTLP endpoint.
//!
//! The first byte picks the body: 0 → the rest as a protobuf body; 1 → the rest as an OTLP
//! JSON body; 2 → the rest read as OTLP JSON, re-encoded as protobuf (so JSON seeds reach the
//! protobuf decoder with well-formed messages); anything else → the rest as protobuf, gzip'd
//! bodies being the server's business. Whatever `decode` returns, every event must serialise,
//! and the reply must be made.

use bytes::Bytes;
use prost::Message;
use sightline_core::{Accepted, HttpRequest, HttpSource};
use sightline_schema::Timestamp;
use sightline_sources::otlp::{Otlp, Signal};

pub fn run<T>(signal: Signal, data: &[u8])
where
    T: Message + Default + serde::de::DeserializeOwned,
{
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (content_type, body) = match mode {
        1 => ("application/json", rest.to_vec()),
        2 => match serde_json::from_slice::<T>(rest) {
            Ok(request) => ("application/x-protobuf", request.encode_to_vec()),
            Err(_) => return,
        },
        _ => ("application/x-protobuf", rest.to_vec()),
    };
    let request = HttpRequest {
        headers: vec![("content-type".into(), content_type.into())],
        params: vec![],
        body: Bytes::from(body),
        now: Timestamp(1_795_255_200_000),
    };
    let otlp = Otlp::new(signal);
    if let Ok(decoded) = otlp.decode(&request) {
        for event in &decoded.events {
            let _ = event.to_json();
        }
        let reply = otlp.reply(&request, &Accepted::default(), &decoded.refused);
        assert!(!reply.body.is_empty() || reply.content_type.contains("protobuf"));
    }
}
