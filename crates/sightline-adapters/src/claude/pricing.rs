//! An embedded, dated price table for Claude models, and the cost of one API call's usage.
//!
//! Prices are USD per million tokens as Anthropic publishes them (base input, 5-minute and
//! 1-hour cache writes, cache reads, output). Models are matched by the longest known prefix of
//! their id after removing a date suffix, so `claude-sonnet-4-5-20250929` finds
//! `claude-sonnet-4-5`. The long-context surcharge some models have above 200K input tokens is
//! not applied (the transcript does not say which tier was billed). An unknown model costs
//! nothing rather than a guess; its tokens are still counted. Update [`PRICES_AS_OF`] with the table.

/// When the table below was last checked against Anthropic's published prices.
pub const PRICES_AS_OF: &str = "2026-03-21";

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
    pub output: f64,
}

const fn p(
    input: f64,
    cache_write_5m: f64,
    cache_write_1h: f64,
    cache_read: f64,
    output: f64,
) -> Price {
    Price {
        input,
        cache_write_5m,
        cache_write_1h,
        cache_read,
        output,
    }
}

/// Model id prefixes and their prices. Longer prefixes are tried first.
pub const PRICES: &[(&str, Price)] = &[
    ("claude-opus-4-6", p(5.0, 6.25, 10.0, 0.50, 25.0)),
    ("claude-opus-4-5", p(5.0, 6.25, 10.0, 0.50, 25.0)),
    ("claude-opus-4-1", p(15.0, 18.75, 30.0, 1.50, 75.0)),
    ("claude-opus-4", p(15.0, 18.75, 30.0, 1.50, 75.0)),
    ("claude-sonnet-4-6", p(3.0, 3.75, 6.0, 0.30, 15.0)),
    ("claude-sonnet-4-5", p(3.0, 3.75, 6.0, 0.30, 15.0)),
    ("claude-sonnet-4", p(3.0, 3.75, 6.0, 0.30, 15.0)),
    ("claude-3-7-sonnet", p(3.0, 3.75, 6.0, 0.30, 15.0)),
    ("claude-3-5-sonnet", p(3.0, 3.75, 6.0, 0.30, 15.0)),
    ("claude-haiku-4-5", p(1.0, 1.25, 2.0, 0.10, 5.0)),
    ("claude-3-5-haiku", p(0.80, 1.0, 1.6, 0.08, 4.0)),
    ("claude-3-opus", p(15.0, 18.75, 30.0, 1.50, 75.0)),
    ("claude-3-haiku", p(0.25, 0.30, 0.50, 0.03, 1.25)),
];

/// The price of a model id (`claude-sonnet-4-5-20250929`, `anthropic/claude-opus-4-5`, ...).
pub fn price_of(model: &str) -> Option<Price> {
    let model = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    PRICES
        .iter()
        .filter(|(prefix, _)| model.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, price)| *price)
}

/// Token counts of one API call, as the Messages API reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    /// All cache writes (5 m + 1 h).
    pub cache_write: f64,
    /// The part of `cache_write` written with a 1-hour lifetime.
    pub cache_write_1h: f64,
}

/// Cost in USD, or `None` when the model is not in the table.
pub fn cost_usd(model: &str, u: &Usage) -> Option<f64> {
    let price = price_of(model)?;
    let write_5m = (u.cache_write - u.cache_write_1h).max(0.0);
    Some(
        (u.input * price.input
            + u.output * price.output
            + u.cache_read * price.cache_read
            + write_5m * price.cache_write_5m
            + u.cache_write_1h * price.cache_write_1h)
            / 1_000_000.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dated_ids_by_longest_prefix() {
        assert_eq!(price_of("claude-opus-4-1-20250805").unwrap().input, 15.0);
        assert_eq!(price_of("claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(price_of("claude-sonnet-4-5-20250929").unwrap().output, 15.0);
        assert!(price_of("gpt-4o").is_none());
    }

    #[test]
    fn cost_splits_cache_writes_by_lifetime() {
        let u = Usage {
            input: 1_000_000.0,
            output: 1_000_000.0,
            cache_read: 1_000_000.0,
            cache_write: 2_000_000.0,
            cache_write_1h: 1_000_000.0,
        };
        // Sonnet: 3 + 15 + 0.30 + 3.75 + 6
        let c = cost_usd("claude-sonnet-4-5", &u).unwrap();
        assert!((c - 28.05).abs() < 1e-9, "{c}");
    }
}
