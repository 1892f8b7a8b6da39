//! Clocks for the tracer: a cheap monotonic nanosecond counter for durations and a wall-clock
//! mapping for event timestamps (RFC 3339, UTC, milliseconds, `Z`).
//!
//! On x86-64 with an invariant TSC (constant rate, runs in every power state; what the kernel
//! itself trusts as a clocksource) the monotonic reading is the TSC scaled to nanoseconds,
//! calibrated once against the system's monotonic clock: a few nanoseconds instead of a
//! `clock_gettime` call, twice per traced call. Elsewhere it is `Instant`.
//!
//! It must never call into Python or take a lock: it runs inside every traced call.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

struct Base {
    mono: Instant,
    wall_ns: u64,
    /// TSC reading at `mono`, and nanoseconds per tick; `ns_per_tick` is 0 without a usable TSC.
    tsc0: u64,
    ns_per_tick: f64,
}

static BASE: OnceLock<Base> = OnceLock::new();

#[cfg(target_arch = "x86_64")]
fn invariant_tsc() -> bool {
    use std::arch::x86_64::__cpuid;
    // cpuid is available on every x86-64 CPU (and safe to call in current Rust).
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn tsc() -> u64 {
    // SAFETY: rdtsc has no preconditions on x86-64.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_tsc() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn tsc() -> u64 {
    0
}

fn base() -> &'static Base {
    BASE.get_or_init(|| {
        let wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mono = Instant::now();
        let tsc0 = tsc();
        let mut ns_per_tick = 0.0;
        if invariant_tsc() {
            // Calibrate over 2 ms: the rate is then known to about 1e-5.
            while mono.elapsed().as_nanos() < 2_000_000 {
                std::hint::spin_loop();
            }
            let ns = mono.elapsed().as_nanos() as f64;
            let ticks = tsc().wrapping_sub(tsc0) as f64;
            let r = ns / ticks;
            // Plausible rates only (0.1 to 10 GHz); otherwise keep the system clock.
            if ticks > 0.0 && (0.1..=10.0).contains(&r) {
                ns_per_tick = r;
            }
        }
        Base {
            mono,
            wall_ns,
            tsc0,
            ns_per_tick,
        }
    })
}

/// Nanoseconds since the tracer's base instant (monotonic).
#[inline]
pub fn mono_ns() -> u64 {
    let b = base();
    if b.ns_per_tick > 0.0 {
        (tsc().wrapping_sub(b.tsc0) as f64 * b.ns_per_tick) as u64
    } else {
        b.mono.elapsed().as_nanos() as u64
    }
}

/// Starts the clock (calibration takes about 2 ms): call it before tracing starts.
pub fn init() {
    let _ = base();
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
    fn monotonic_is_monotonic_and_agrees_with_instant() {
        let a = mono_ns();
        let b = mono_ns();
        assert!(b >= a);
        let i = Instant::now();
        let m0 = mono_ns();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let dm = mono_ns() - m0;
        let di = i.elapsed().as_nanos() as u64;
        assert!(dm.abs_diff(di) < di / 100 + 100_000, "{dm} vs {di}");
    }
}
