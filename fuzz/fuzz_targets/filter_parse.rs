//! Fuzz target: the filter's query-parameter parser on an arbitrary query string. It must
//! never panic, and a filter it accepts must survive `to_params` → `from_params` unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sightline_schema::Filter;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    let params = query
        .split('&')
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")));
    if let Ok(filter) = Filter::from_params(params) {
        let written = filter.to_params();
        let back = Filter::from_params(written.iter().map(|(k, v)| (*k, v.as_str())))
            .unwrap_or_else(|e| panic!("written params refused: {e}: {written:?}"));
        assert_eq!(filter, back, "params do not round-trip");
        let _ = filter.query_terms();
    }
});
