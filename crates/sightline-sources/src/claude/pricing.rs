//! An embedded, dated price table for Claude models, and the cost of one API call's usage.
//!
//! Prices are USD per million tokens as Anthropic publishes them on
//! <https://platform.claude.com/docs/en/about-claude/pricing> ("Model pricing", "Long context
//! pricing") and on each model's page (base input, 5-minute and 1-hour cache writes, cache reads,
//! output). Cache prices are copied as published rather than derived from the input price: most
//! models read the cache at 0.1× input, but Claude Fable 5.1 / Mythos 5.1 read it at 0.025× and
//! Opus 5.5 / Sonnet 5.5 at 0.05×.
//!
//! Tiers. Some models bill a whole request at other rates once its prompt is large. The prompt is
//! all the input of that one request: `input + cache writes + cache reads` (output never counts).
//! When it is *over* a tier's threshold, every token of the request, output included, is billed
//! at the tier's five prices; at exactly the threshold the base prices apply. The tier follows
//! from the usage alone, so it needs no flag from the transcript: a Sonnet 4 / 4.5 request over
//! 200K tokens only exists with the 1M-context beta, and that is the request the premium bills
//! (2× the input side, 1.5× output). Claude Haiku 5.5 bills prompts over 100,000 tokens at 5×.
//! Opus 4.6, Sonnet 4.6 and every model after them price the full 1M window flat.
//!
//! Models are matched by the longest known id after normalising the name: lower case, anything
//! before `claude` removed (`anthropic/`, `us.anthropic.`), dots as dashes (`claude-sonnet-4.5`),
//! then a `[1m]`-style suffix (Claude Code's), an `@20250929` (Vertex), a `-v1:0` (Bedrock) and
//! a `-20250929` date suffix removed. So `claude-sonnet-4-5-20250929[1m]` finds
//! `claude-sonnet-4-5`. The match stops at a `-`, and a further version number
//! (`claude-opus-4-9` against `claude-opus-4`) is a model the table does not know, except the
//! `-0` alias (`claude-opus-4-0`). An unknown model costs nothing rather than a guess; its tokens
//! are still counted.
//!
//! Not applied, because a transcript does not say: Batch API discounts, `inference_geo` and data
//! residency multipliers, fast mode, and the long-context premium Opus 4.6 / Sonnet 4.6 had while
//! their 1M window was in beta (before 2026-03-13). To update: edit or add one row of [`PRICES`]
//! (tiers are data on the row) and set [`PRICES_AS_OF`].

/// When the table below was last checked against Anthropic's published prices.
pub const PRICES_AS_OF: &str = "2026-11-21";

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    pub cache_write_5m: f64,
    pub cache_write_1h: f64,
    pub cache_read: f64,
    pub output: f64,
}

/// Prices for a whole request whose prompt (input + cache writes + cache reads) is over `above`
/// tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tier {
    pub above: u64,
    pub price: Price,
}

/// One row of the table: a model id, its base prices and its tiers (ascending thresholds).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelPrice {
    pub id: &'static str,
    pub base: Price,
    pub tiers: &'static [Tier],
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

const fn flat(id: &'static str, base: Price) -> ModelPrice {
    ModelPrice {
        id,
        base,
        tiers: &[],
    }
}

const fn tiered(id: &'static str, base: Price, tiers: &'static [Tier]) -> ModelPrice {
    ModelPrice { id, base, tiers }
}

const fn above(tokens: u64, price: Price) -> Tier {
    Tier {
        above: tokens,
        price,
    }
}

/// Sonnet 4 / 4.5 with the 1M-context beta, prompt over 200K: 2× input and cache, 1.5× output.
const SONNET_4_LONG: &[Tier] = &[above(200_000, p(6.0, 7.50, 12.0, 0.60, 22.50))];
/// Haiku 5.5, prompt over 100,000 tokens: 5× every price.
const HAIKU_5_5_LONG: &[Tier] = &[above(100_000, p(0.50, 0.625, 1.0, 0.05, 2.50))];

/// Model ids and their prices, one row per model:
/// `p(input, 5m cache write, 1h cache write, cache read, output)`.
pub const PRICES: &[ModelPrice] = &[
    flat("claude-fable-5-1", p(10.0, 12.50, 20.0, 0.25, 50.0)),
    flat("claude-mythos-5-1", p(10.0, 12.50, 20.0, 0.25, 50.0)),
    flat("claude-fable-5", p(10.0, 12.50, 20.0, 1.0, 50.0)),
    flat("claude-mythos-5", p(10.0, 12.50, 20.0, 1.0, 50.0)),
    flat("claude-opus-5-5", p(4.0, 5.0, 8.0, 0.20, 20.0)),
    flat("claude-opus-5", p(5.0, 6.25, 10.0, 0.50, 25.0)),
    flat("claude-opus-4-8", p(5.0, 6.25, 10.0, 0.50, 25.0)),
    flat("claude-opus-4-7", p(5.0, 6.25, 10.0, 0.50, 25.0)),
    flat("claude-opus-4-6", p(5.0, 6.25, 10.0, 0.50, 25.0)),
    flat("claude-opus-4-5", p(5.0, 6.25, 10.0, 0.50, 25.0)),
    flat("claude-opus-4-1", p(15.0, 18.75, 30.0, 1.50, 75.0)),
    flat("claude-opus-4", p(15.0, 18.75, 30.0, 1.50, 75.0)),
    // Cache reads cut from $0.20 to $0.10 (0.05×) on 2026-10-07.
    flat("claude-sonnet-5-5", p(2.0, 2.50, 4.0, 0.10, 10.0)),
    flat("claude-sonnet-5", p(2.0, 2.50, 4.0, 0.20, 10.0)),
    flat("claude-sonnet-4-6", p(3.0, 3.75, 6.0, 0.30, 15.0)),
    tiered(
        "claude-sonnet-4-5",
        p(3.0, 3.75, 6.0, 0.30, 15.0),
        SONNET_4_LONG,
    ),
    tiered(
        "claude-sonnet-4",
        p(3.0, 3.75, 6.0, 0.30, 15.0),
        SONNET_4_LONG,
    ),
    flat("claude-3-7-sonnet", p(3.0, 3.75, 6.0, 0.30, 15.0)),
    flat("claude-3-5-sonnet", p(3.0, 3.75, 6.0, 0.30, 15.0)),
    tiered(
        "claude-haiku-5-5",
        p(0.10, 0.125, 0.20, 0.01, 0.50),
        HAIKU_5_5_LONG,
    ),
    flat("claude-haiku-4-5", p(1.0, 1.25, 2.0, 0.10, 5.0)),
    flat("claude-3-5-haiku", p(0.80, 1.0, 1.6, 0.08, 4.0)),
    flat("claude-3-opus", p(15.0, 18.75, 30.0, 1.50, 75.0)),
    flat("claude-3-haiku", p(0.25, 0.30, 0.50, 0.03, 1.25)),
];

/// A model name reduced to the form of the table's ids (see the module comment).
fn normalize(model: &str) -> String {
    let mut s = model.trim().to_ascii_lowercase();
    if let Some(i) = s.find("claude") {
        s.drain(..i);
    }
    // `claude-sonnet-4.5` (OpenRouter's spelling) is `claude-sonnet-4-5`.
    s = s.replace('.', "-");
    for cut in ['[', '@', ':'] {
        if let Some(i) = s.find(cut) {
            s.truncate(i);
        }
    }
    // Bedrock's `-v1` (its `:0` went with ':'), then a date.
    if let Some(i) = s.rfind("-v")
        && s.len() > i + 2
        && s[i + 2..].bytes().all(|b| b.is_ascii_digit())
    {
        s.truncate(i);
    }
    if let Some(i) = s.rfind('-')
        && s.len() - i == 9
        && s[i + 1..].bytes().all(|b| b.is_ascii_digit())
    {
        s.truncate(i);
    }
    s
}

/// Whether `id` names the model `name` (normalised): equal, or followed by `-` and no further
/// version number other than the `-0` alias.
fn names(name: &str, id: &str) -> bool {
    let Some(rest) = name.strip_prefix(id) else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let Some(rest) = rest.strip_prefix('-') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits == 0 || &rest[..digits] == "0"
}

/// The table row of a model id (`claude-sonnet-4-5-20250929`, `anthropic/claude-opus-4-5`,
/// `claude-opus-4-6[1m]`, ...).
pub fn model_price(model: &str) -> Option<&'static ModelPrice> {
    let name = normalize(model);
    PRICES
        .iter()
        .filter(|row| names(&name, row.id))
        .max_by_key(|row| row.id.len())
}

/// The base (untiered) price of a model id.
pub fn price_of(model: &str) -> Option<Price> {
    model_price(model).map(|row| row.base)
}

/// The price a request with this usage is billed at: the highest tier its prompt is over, or
/// the base price.
pub fn price_for(model: &str, u: &Usage) -> Option<Price> {
    let row = model_price(model)?;
    let prompt = u.prompt_tokens();
    Some(
        row.tiers
            .iter()
            .filter(|t| prompt > t.above as f64)
            .max_by_key(|t| t.above)
            .map_or(row.base, |t| t.price),
    )
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

impl Usage {
    /// The request's whole input, which price tiers are chosen by: input + cache writes + cache
    /// reads.
    pub fn prompt_tokens(&self) -> f64 {
        self.input + self.cache_write + self.cache_read
    }
}

/// Cost in USD, or `None` when the model is not in the table.
pub fn cost_usd(model: &str, u: &Usage) -> Option<f64> {
    let price = price_for(model, u)?;
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

    fn close(model: &str, u: &Usage, want: f64) {
        let got = cost_usd(model, u).unwrap_or_else(|| panic!("{model} is not priced"));
        assert!((got - want).abs() < 1e-12, "{model}: {got} != {want}");
    }

    fn usage(
        input: f64,
        cache_write: f64,
        cache_write_1h: f64,
        cache_read: f64,
        output: f64,
    ) -> Usage {
        Usage {
            input,
            output,
            cache_read,
            cache_write,
            cache_write_1h,
        }
    }

    #[test]
    fn matches_dated_ids_by_longest_prefix() {
        assert_eq!(price_of("claude-opus-4-1-20250805").unwrap().input, 15.0);
        assert_eq!(price_of("claude-opus-4-20250514").unwrap().input, 15.0);
        assert_eq!(price_of("claude-opus-4-0").unwrap().input, 15.0);
        assert_eq!(price_of("claude-opus-4-5-20251101").unwrap().input, 5.0);
        assert_eq!(price_of("claude-sonnet-4-5-20250929").unwrap().output, 15.0);
        assert_eq!(price_of("claude-haiku-4-5-20251001").unwrap().input, 1.0);
        assert_eq!(price_of("claude-3-5-haiku-20241022").unwrap().input, 0.80);
        assert_eq!(price_of("claude-3-7-sonnet-latest").unwrap().input, 3.0);
        // The 5.x ids are matched whole, not by their shorter siblings.
        assert_eq!(price_of("claude-opus-5-5").unwrap().input, 4.0);
        assert_eq!(price_of("claude-opus-5").unwrap().input, 5.0);
        assert_eq!(price_of("claude-sonnet-5-5").unwrap().cache_read, 0.10);
        assert_eq!(price_of("claude-sonnet-5").unwrap().cache_read, 0.20);
        assert_eq!(price_of("claude-fable-5-1").unwrap().cache_read, 0.25);
        assert_eq!(price_of("claude-fable-5").unwrap().cache_read, 1.0);
        // Opus 4.7 / 4.8 are $5, not Opus 4's $15 (the old table matched them to `claude-opus-4`).
        assert_eq!(price_of("claude-opus-4-7").unwrap().input, 5.0);
        assert_eq!(price_of("claude-opus-4-8").unwrap().input, 5.0);
    }

    #[test]
    fn provider_prefixes_and_suffixes_are_removed() {
        let sonnet_45 = price_of("claude-sonnet-4-5");
        assert!(sonnet_45.is_some());
        for name in [
            "anthropic/claude-sonnet-4-5",
            "anthropic/claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5[1m]",
            "claude-sonnet-4-5-20250929[1m]",
            "Claude-Sonnet-4-5-20250929",
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "claude-sonnet-4-5@20250929",
            "anthropic/claude-sonnet-4.5",
        ] {
            assert_eq!(price_of(name), sonnet_45, "{name}");
        }
        assert_eq!(price_of("claude-opus-4-6[1m]").unwrap().input, 5.0);
        assert_eq!(price_of("anthropic/claude-haiku-5-5").unwrap().input, 0.10);
    }

    #[test]
    fn unknown_models_cost_nothing() {
        let u = usage(1000.0, 0.0, 0.0, 0.0, 1000.0);
        for name in [
            "gpt-4o",
            "",
            "<synthetic>",
            "claude-mythos-preview",
            // A version the table does not know is not priced as its older sibling.
            "claude-opus-4-9",
            "claude-sonnet-5-7",
            "claude-opus-45",
        ] {
            assert!(price_of(name).is_none(), "{name}");
            assert!(cost_usd(name, &u).is_none(), "{name}");
        }
    }

    #[test]
    fn cost_splits_cache_writes_by_lifetime() {
        // Sonnet 4.5, prompt 1,000 + 2,000 + 1,000 = 4,000 (base tier):
        //   in 1,000·3 + out 1,000·15 + read 1,000·0.30 + 5m 1,000·3.75 + 1h 1,000·6
        //   = 3,000 + 15,000 + 300 + 3,750 + 6,000 = 28,050 µ$ → $0.02805
        let u = usage(1_000.0, 2_000.0, 1_000.0, 1_000.0, 1_000.0);
        close("claude-sonnet-4-5", &u, 0.02805);
    }

    #[test]
    fn sonnet_4_5_long_context_tier_starts_above_200k_prompt_tokens() {
        // Prompt = input 10,000 + writes 40,000 (30,000 5m + 10,000 1h) + reads 150,000
        //        = 200,000: not over the threshold, base prices:
        //   10,000·3 + 30,000·3.75 + 10,000·6 + 150,000·0.30 + out 2,000·15
        //   = 30,000 + 112,500 + 60,000 + 45,000 + 30,000 = 277,500 µ$ → $0.2775
        let at = usage(10_000.0, 40_000.0, 10_000.0, 150_000.0, 2_000.0);
        assert_eq!(at.prompt_tokens(), 200_000.0);
        close("claude-sonnet-4-5-20250929", &at, 0.2775);
        // One more input token, prompt 200,001: every token at premium rates
        // (6 / 7.50 / 12 / 0.60 / 22.50):
        //   10,001·6 + 30,000·7.50 + 10,000·12 + 150,000·0.60 + 2,000·22.50
        //   = 60,006 + 225,000 + 120,000 + 90,000 + 45,000 = 540,006 µ$ → $0.540006
        let over = Usage {
            input: 10_001.0,
            ..at
        };
        close("claude-sonnet-4-5-20250929", &over, 0.540006);
        // Claude Code names the 1M-context variant `...[1m]`; the tier is the same.
        close("claude-sonnet-4-5-20250929[1m]", &over, 0.540006);
        // Sonnet 4 has the same tier; the provider prefix is dropped.
        close("anthropic/claude-sonnet-4-20250514", &over, 0.540006);
        close("anthropic/claude-sonnet-4-20250514", &at, 0.2775);
    }

    #[test]
    fn cache_reads_alone_can_cross_the_threshold() {
        // Sonnet 4.5, input 1, reads 200,000: prompt 200,001 → premium.
        //   1·6 + 200,000·0.60 + out 100·22.50 = 6 + 120,000 + 2,250 = 122,256 µ$ → $0.122256
        close(
            "claude-sonnet-4-5",
            &usage(1.0, 0.0, 0.0, 200_000.0, 100.0),
            0.122256,
        );
        // Output never counts: prompt 1,000 with 300,000 output stays base.
        //   1,000·3 + 300,000·15 = 3,000 + 4,500,000 = 4,503,000 µ$ → $4.503
        close(
            "claude-sonnet-4-5",
            &usage(1_000.0, 0.0, 0.0, 0.0, 300_000.0),
            4.503,
        );
    }

    #[test]
    fn haiku_5_5_tier_starts_above_100k_prompt_tokens() {
        // Prompt = input 20,000 + 5m writes 10,000 + reads 70,000 = 100,000: base prices:
        //   20,000·0.10 + 10,000·0.125 + 70,000·0.01 + out 1,000·0.50
        //   = 2,000 + 1,250 + 700 + 500 = 4,450 µ$ → $0.00445
        let at = usage(20_000.0, 10_000.0, 0.0, 70_000.0, 1_000.0);
        close("claude-haiku-5-5", &at, 0.00445);
        // One more cache read, prompt 100,001: every price ×5 (0.50 / 0.625 / 1.00 / 0.05 / 2.50):
        //   20,000·0.50 + 10,000·0.625 + 70,001·0.05 + 1,000·2.50
        //   = 10,000 + 6,250 + 3,500.05 + 2,500 = 22,250.05 µ$ → $0.02225005
        let over = Usage {
            cache_read: 70_001.0,
            ..at
        };
        close("claude-haiku-5-5", &over, 0.02225005);
        // 1h writes in the upper tier: input 100,001 + 1h writes 1,000:
        //   100,001·0.50 + 1,000·1.00 = 50,000.5 + 1,000 = 51,000.5 µ$ → $0.0510005
        close(
            "claude-haiku-5-5[1m]",
            &usage(100_001.0, 1_000.0, 1_000.0, 0.0, 0.0),
            0.0510005,
        );
    }

    #[test]
    fn models_with_a_flat_1m_window_have_no_tier() {
        // Sonnet 4.6, 500,000 input + 1,000 output: 500,000·3 + 1,000·15 = 1,515,000 µ$ → $1.515
        close(
            "claude-sonnet-4-6[1m]",
            &usage(500_000.0, 0.0, 0.0, 0.0, 1_000.0),
            1.515,
        );
        // Opus 4.6, same usage: 500,000·5 + 1,000·25 = 2,525,000 µ$ → $2.525
        close(
            "claude-opus-4-6",
            &usage(500_000.0, 0.0, 0.0, 0.0, 1_000.0),
            2.525,
        );
        // Opus 5.5, 900,000 reads: 900,000·0.20 = 180,000 µ$ → $0.18
        close(
            "claude-opus-5-5",
            &usage(0.0, 0.0, 0.0, 900_000.0, 0.0),
            0.18,
        );
    }

    #[test]
    fn cache_read_multipliers_follow_the_published_prices() {
        // 100,000 reads each (below every tier):
        //   Fable 5.1 / Mythos 5.1: 0.025 × $10 = $0.25/M → 100,000·0.25 = 25,000 µ$ → $0.025
        //   Fable 5:                0.1 × $10   = $1/M    → 100,000·1    = 100,000 µ$ → $0.10
        //   Opus 5.5:               0.05 × $4   = $0.20/M → 20,000 µ$ → $0.02
        //   Sonnet 5.5:             0.05 × $2   = $0.10/M → 10,000 µ$ → $0.01
        //   Sonnet 5:               0.1 × $2    = $0.20/M → 20,000 µ$ → $0.02
        //   Haiku 5.5:              0.1 × $0.10 = $0.01/M → 1,000 µ$  → $0.001
        let reads = usage(0.0, 0.0, 0.0, 100_000.0, 0.0);
        close("claude-fable-5-1", &reads, 0.025);
        close("claude-mythos-5-1", &reads, 0.025);
        close("claude-fable-5", &reads, 0.10);
        close("claude-opus-5-5", &reads, 0.02);
        close("claude-sonnet-5-5", &reads, 0.01);
        close("claude-sonnet-5", &reads, 0.02);
        close("claude-haiku-5-5", &reads, 0.001);
        for (id, ratio) in [
            ("claude-fable-5-1", 0.025),
            ("claude-opus-5-5", 0.05),
            ("claude-sonnet-5-5", 0.05),
            ("claude-opus-4-8", 0.1),
        ] {
            let p = price_of(id).unwrap();
            assert!((p.cache_read / p.input - ratio).abs() < 1e-12, "{id}");
        }
    }

    #[test]
    fn the_table_is_well_formed() {
        for (i, row) in PRICES.iter().enumerate() {
            assert_eq!(
                normalize(row.id),
                row.id,
                "{} is not in normal form",
                row.id
            );
            assert!(
                PRICES[i + 1..].iter().all(|other| other.id != row.id),
                "{} twice",
                row.id
            );
            // Each row finds itself, not a longer or shorter sibling.
            assert_eq!(model_price(row.id), Some(row), "{}", row.id);
            // Writes cost at least input; reads less.
            for price in std::iter::once(&row.base).chain(row.tiers.iter().map(|t| &t.price)) {
                assert!(price.cache_write_5m >= price.input, "{}", row.id);
                assert!(price.cache_write_1h >= price.cache_write_5m, "{}", row.id);
                assert!(price.cache_read < price.input, "{}", row.id);
            }
            assert!(
                row.tiers.windows(2).all(|w| w[0].above < w[1].above),
                "{}: tiers out of order",
                row.id
            );
        }
        assert_eq!(PRICES_AS_OF.len(), 10);
    }
}
