//! Rate limits: token buckets per token name and per client address.
//!
//! Bounded: the bucket map is swept of idle keys, so a stream of new addresses cannot grow it
//! without end. It must never block a request: a refusal carries the time to wait.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A rate: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

impl RateLimit {
    pub fn new(per_second: f64) -> Self {
        RateLimit {
            per_second,
            burst: (per_second * 2.0).max(1.0),
        }
    }
}

/// Token buckets keyed by token name or address.
pub struct Limiter {
    rate: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    pub fn new(rate: RateLimit) -> Self {
        Limiter {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one unit; on refusal, how long until one is available.
    pub fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > 50_000 {
            // Full buckets carry no state worth keeping; dropping them bounds memory.
            let rate = self.rate;
            buckets.retain(|_, (level, at)| {
                (*level + now.duration_since(*at).as_secs_f64() * rate.per_second) < rate.burst
            });
        }
        let (level, at) = buckets
            .entry(key.to_string())
            .or_insert((self.rate.burst, now));
        *level = (*level + now.duration_since(*at).as_secs_f64() * self.rate.per_second)
            .min(self.rate.burst);
        *at = now;
        if *level >= 1.0 {
            *level -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                ((1.0 - *level) / self.rate.per_second).max(0.001),
            ))
        }
    }
}
