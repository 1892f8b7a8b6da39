//! Clocks for the tracer: a cheap monotonic nanosecond counter for durations and a wall-clock
//! mapping for event timestamps (RFC 3339, UTC, milliseconds, `Z`).
//!
//! It must never call into Python or take a lock: it runs inside every traced call.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Base {
    mono: Instant,
    wall_ns: u64,
}

static BASE: OnceLock<Base> = OnceLock::new();

fn base() -> &'static Base {
    BASE.get_or_init(|| Base {
        mono: Instant::now(),
        wall_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    })
}

/// Nanoseconds since the tracer's base instant (monotonic).
#[inline]
pub fn mono_ns() -> u64 {
    base().mono.elapsed().as_nanos() as u64
}

/// Wall-clock epoch nanoseconds for a monotonic reading: one clock for both, so that the order
/// of timestamps always agrees with the order of the durations.
pub fn wall_ns_at(mono: u64) -> u64 {
    base().wall_ns + mono
}

/// Wall-clock epoch nanoseconds now.
pub fn wall_ns_now() -> u64 {
    wall_ns_at(mono_ns())
}

/// RFC 3339 UTC with milliseconds and `Z`, e.g. `2026-11-21T10:00:00.123Z`.
pub fn rfc3339_ms(epoch_ns: u64) -> String {
    let ms_total = epoch_ns / 1_000_000;
    let ms = ms_total % 1000;
    let secs = ms_total / 1000;
    let days = (secs / 86_400) as i64;
    let sod = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        y,
        m,
        d,
        sod / 3600,
        (sod / 60) % 60,
        sod % 60,
        ms
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T12:34:56.789Z
        assert_eq!(
            rfc3339_ms(1_709_210_096_789_000_000),
            "2024-02-29T12:34:56.789Z"
        );
    }

    #[test]
    fn monotonic_is_monotonic() {
        let a = mono_ns();
        let b = mono_ns();
        assert!(b >= a);
    }
}
