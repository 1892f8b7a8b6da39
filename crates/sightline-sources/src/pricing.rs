//! The embedded, dated price tables of every agent's models (Claude, OpenAI, Gemini), the one
//! mapping of each API's usage block to the hub's token metrics, and the cost of one model request.
//! It prices only what it knows: an unknown model gets its tokens counted and no `cost_usd`,
//! never a guess from a similar name. It must never do I/O.
//!
//! Prices are USD per million tokens, standard (not batch, flex or priority) rates, text.
//!
//! **Claude** ([`CLAUDE`], [`CLAUDE_PRICES_AS_OF`]): as Anthropic publishes them on
//! <https://platform.claude.com/docs/en/about-claude/pricing> ("Model pricing", "Long context
//! pricing") and on each model's page (base input, 5-minute and 1-hour cache writes, cache reads,
//! output). Cache prices are copied as published rather than derived from the input price: most
//! models read the cache at 0.1× input, but Claude Fable 5.1 / Mythos 5.1 read it at 0.025× and
//! Opus 5.5 / Sonnet 5.5 at 0.05×.
//!
//! **OpenAI** ([`OPENAI`], [`OPENAI_PRICES_AS_OF`]): the standard tier of
//! <https://openai.com/api/pricing/>, as LiteLLM 1.110.2 records it
//! (`model_prices_and_context_window.json`, the PyPI package): input, cached input, output, and
//! for the gpt-5.6 and gpt-6 families a cache-write price (older models bill a cache write as
//! input). Reasoning tokens are part of `output_tokens` and billed there once. Models without a
//! cached-input price (the `-pro` ones) bill cached input as input.
//!
//! **Gemini** ([`GEMINI`], [`GEMINI_PRICES_AS_OF`]): the paid tier of
//! <https://ai.google.dev/gemini-api/docs/pricing>, as the same LiteLLM 1.110.2 records it:
//! input, context-cache reads, output (thinking tokens are billed as output). Implicit caching
//! has no write price; storage of explicit caches is billed per hour and not seen here.
//!
//! Tiers. Some models bill a whole request at other rates once its prompt is large. The prompt is
//! all the input of that one request: `input + cache writes + cache reads (+ tool-use prompt)`
//! (output never counts). When it is *over* a tier's threshold, every token of the request,
//! output included, is billed at the tier's prices; at exactly the threshold the base prices
//! apply. The tier follows from the usage alone: a Sonnet 4 / 4.5 request over 200K tokens only
//! exists with the 1M-context beta, and that is the request the premium bills (2× the input
//! side, 1.5× output). Claude Haiku 5.5 bills prompts over 100,000 tokens at 5×; Gemini 2.5 Pro
//! and 3.1 Pro over 200,000 at 2× input, 1.5× output; OpenAI's gpt-5.4 and later over 272,000 at
//! 2× input, 1.5× output.
//!
//! Matching. A model name is normalised: lower case, a provider path removed (`openai/`,
//! `models/`, `anthropic/`, anything before `claude`), dots as dashes (`gpt-5.1-codex` is
//! `gpt-5-1-codex`), a `[1m]`-style suffix (Claude Code's), an `@...` (Vertex) or `:...` cut.
//! Claude names also lose a `-v1` (Bedrock) and a `-20250929` date, and are matched by the
//! longest known id followed by nothing or a `-` and no further version number other than the
//! `-0` alias (`claude-sonnet-4-5-20250929[1m]` is `claude-sonnet-4-5`; `claude-opus-4-9` is
//! unknown). OpenAI and Gemini names must equal an id: their families add cheaper variants
//! under longer names (`gpt-5.1-codex-mini`, `gemini-2.5-flash-lite`) and dated snapshots that
//! were priced apart (`gpt-4o-2024-05-13`), so a longer name is never priced as a shorter one.
//!
//! Not applied, because a transcript or rollout does not say: Batch API, flex and priority
//! rates, `inference_geo` and data-residency multipliers, fast mode, and the long-context
//! premium Opus 4.6 / Sonnet 4.6 had while their 1M window was in beta (before 2026-03-13). To
//! update: edit or add one row of a table (tiers are data on the row) and set its `*_AS_OF`.

use serde_json::Value;

use crate::util::{Metrics, number};

/// When [`CLAUDE`] was last checked against Anthropic's published prices.
pub const CLAUDE_PRICES_AS_OF: &str = "2026-11-21";
/// When [`OPENAI`] was last checked (against LiteLLM 1.110.2's copy of OpenAI's prices).
pub const OPENAI_PRICES_AS_OF: &str = "2026-11-30";
/// When [`GEMINI`] was last checked (against LiteLLM 1.110.2's copy of Google's prices).
pub const GEMINI_PRICES_AS_OF: &str = "2026-11-30";

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    pub input: f64,
    /// A cache write of the default lifetime (Claude's 5 minutes; OpenAI's; Gemini has none and
    /// bills it as input).
    pub cache_write_5m: f64,
    /// A cache write of Claude's 1-hour lifetime (the default write price elsewhere).
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

/// One row of a table: a model id, its base prices and its tiers (ascending thresholds).
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

/// A price with one cache-write price (OpenAI, Gemini): `(input, cache write, cache read,
/// output)`.
const fn w(input: f64, cache_write: f64, cache_read: f64, output: f64) -> Price {
    p(input, cache_write, cache_write, cache_read, output)
}

/// A price without a cache-write price: a write is billed as input. `(input, cache read,
/// output)`.
const fn r(input: f64, cache_read: f64, output: f64) -> Price {
    w(input, input, cache_read, output)
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

/// Claude model ids and their prices, one row per model:
/// `p(input, 5m cache write, 1h cache write, cache read, output)`.
pub const CLAUDE: &[ModelPrice] = &[
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

/// OpenAI's long-context rates, prompt over 272,000 tokens: 2× input and cache, 1.5× output.
const fn long_272k(base: Price) -> [Tier; 1] {
    [above(
        272_000,
        p(
            base.input * 2.0,
            base.cache_write_5m * 2.0,
            base.cache_write_1h * 2.0,
            base.cache_read * 2.0,
            base.output * 1.5,
        ),
    )]
}

const GPT_5_4: Price = r(2.50, 0.25, 15.0);
/// gpt-5.4-pro and gpt-5.5-pro (no cached-input price: cached input is billed as input).
const GPT_PRO_30: Price = r(30.0, 30.0, 180.0);
const GPT_5_5: Price = r(5.0, 0.50, 30.0);
const GPT_5_6: Price = w(4.0, 5.0, 0.40, 20.0);
const GPT_5_6_TERRA: Price = w(2.0, 2.50, 0.20, 12.0);
const GPT_5_6_LUNA: Price = w(0.20, 0.25, 0.02, 1.20);
const GPT_6_SOL: Price = w(2.0, 2.50, 0.20, 10.0);
const GPT_6_LUNA: Price = w(0.10, 0.125, 0.01, 0.50);
const GPT_6_ASTRA: Price = w(10.0, 12.50, 1.0, 50.0);
const GPT_6_1_SOL: Price = w(2.0, 2.50, 0.10, 10.0);
const GPT_6_1_TERRA: Price = w(1.0, 1.25, 0.05, 5.0);

/// OpenAI model ids (normalised: dots as dashes) and their prices:
/// `r(input, cached input, output)`, or `w(input, cache write, cached input, output)`.
pub const OPENAI: &[ModelPrice] = &[
    flat("gpt-4o", r(2.50, 1.25, 10.0)),
    flat("gpt-4o-mini", r(0.15, 0.075, 0.60)),
    flat("gpt-4-1", r(2.0, 0.50, 8.0)),
    flat("gpt-4-1-mini", r(0.40, 0.10, 1.60)),
    flat("gpt-4-1-nano", r(0.10, 0.025, 0.40)),
    flat("o1", r(15.0, 7.50, 60.0)),
    flat("o1-pro", r(150.0, 150.0, 600.0)),
    flat("o3", r(2.0, 0.50, 8.0)),
    flat("o3-mini", r(1.10, 0.55, 4.40)),
    flat("o3-pro", r(20.0, 20.0, 80.0)),
    flat("o4-mini", r(1.10, 0.275, 4.40)),
    flat("gpt-5", r(1.25, 0.125, 10.0)),
    flat("gpt-5-mini", r(0.25, 0.025, 2.0)),
    flat("gpt-5-nano", r(0.05, 0.005, 0.40)),
    flat("gpt-5-pro", r(15.0, 15.0, 120.0)),
    flat("gpt-5-codex", r(1.25, 0.125, 10.0)),
    flat("gpt-5-1", r(1.25, 0.125, 10.0)),
    flat("gpt-5-1-codex", r(1.25, 0.125, 10.0)),
    flat("gpt-5-1-codex-max", r(1.25, 0.125, 10.0)),
    flat("gpt-5-1-codex-mini", r(0.25, 0.025, 2.0)),
    flat("gpt-5-2", r(1.75, 0.175, 14.0)),
    flat("gpt-5-2-codex", r(1.75, 0.175, 14.0)),
    flat("gpt-5-2-pro", r(21.0, 21.0, 168.0)),
    flat("gpt-5-3-codex", r(1.75, 0.175, 14.0)),
    tiered("gpt-5-4", GPT_5_4, &long_272k(GPT_5_4)),
    flat("gpt-5-4-mini", r(0.75, 0.075, 4.50)),
    flat("gpt-5-4-nano", r(0.20, 0.02, 1.25)),
    tiered("gpt-5-4-pro", GPT_PRO_30, &long_272k(GPT_PRO_30)),
    tiered("gpt-5-5", GPT_5_5, &long_272k(GPT_5_5)),
    tiered("gpt-5-5-pro", GPT_PRO_30, &long_272k(GPT_PRO_30)),
    tiered("gpt-5-6", GPT_5_6, &long_272k(GPT_5_6)),
    tiered("gpt-5-6-sol", GPT_5_6, &long_272k(GPT_5_6)),
    tiered("gpt-5-6-terra", GPT_5_6_TERRA, &long_272k(GPT_5_6_TERRA)),
    tiered("gpt-5-6-luna", GPT_5_6_LUNA, &long_272k(GPT_5_6_LUNA)),
    tiered("gpt-6-sol", GPT_6_SOL, &long_272k(GPT_6_SOL)),
    tiered("gpt-6-luna", GPT_6_LUNA, &long_272k(GPT_6_LUNA)),
    tiered("gpt-6-astra", GPT_6_ASTRA, &long_272k(GPT_6_ASTRA)),
    tiered("gpt-6-1-sol", GPT_6_1_SOL, &long_272k(GPT_6_1_SOL)),
    tiered("gpt-6-1-terra", GPT_6_1_TERRA, &long_272k(GPT_6_1_TERRA)),
];

/// Gemini 2.5 Pro and 3.1 Pro, prompt over 200,000 tokens: 2× input and cache, 1.5× output.
const fn long_200k(base: Price) -> [Tier; 1] {
    [above(
        200_000,
        p(
            base.input * 2.0,
            base.cache_write_5m * 2.0,
            base.cache_write_1h * 2.0,
            base.cache_read * 2.0,
            base.output * 1.5,
        ),
    )]
}

const GEMINI_2_5_PRO: Price = r(1.25, 0.125, 10.0);
const GEMINI_3_1_PRO: Price = r(2.0, 0.20, 12.0);

/// Gemini model ids (normalised) and their prices: `r(input, cache read, output)`.
pub const GEMINI: &[ModelPrice] = &[
    tiered("gemini-2-5-pro", GEMINI_2_5_PRO, &long_200k(GEMINI_2_5_PRO)),
    flat("gemini-2-5-flash", r(0.30, 0.03, 2.50)),
    flat("gemini-2-5-flash-lite", r(0.10, 0.01, 0.40)),
    flat("gemini-3-flash-preview", r(0.50, 0.05, 3.0)),
    tiered(
        "gemini-3-1-pro-preview",
        GEMINI_3_1_PRO,
        &long_200k(GEMINI_3_1_PRO),
    ),
    tiered(
        "gemini-3-1-pro-preview-customtools",
        GEMINI_3_1_PRO,
        &long_200k(GEMINI_3_1_PRO),
    ),
    flat("gemini-3-1-flash-lite", r(0.25, 0.025, 1.50)),
    flat("gemini-3-1-flash-lite-preview", r(0.25, 0.025, 1.50)),
    flat("gemini-3-5-flash", r(1.50, 0.15, 9.0)),
    flat("gemini-3-5-flash-lite", r(0.30, 0.03, 2.50)),
    flat("gemini-3-6-flash", r(0.75, 0.075, 3.75)),
    flat("gemini-3-7-flash", r(0.75, 0.075, 3.75)),
    flat("gemini-3-8-flash", r(0.75, 0.075, 3.75)),
];

/// A model name reduced to the form of the tables' ids (see the module comment), and whether it
/// is a Claude name (matched by prefix) rather than an exact one.
fn normalize(model: &str) -> (String, bool) {
    let mut s = model.trim().to_ascii_lowercase();
    let claude = s.contains("claude");
    if let Some(i) = s.find("claude") {
        s.drain(..i);
    } else if let Some(i) = s.rfind('/') {
        s.drain(..=i);
    }
    // `claude-sonnet-4.5` (OpenRouter's spelling) is `claude-sonnet-4-5`; `gpt-5.1` `gpt-5-1`.
    s = s.replace('.', "-");
    for cut in ['[', '@', ':'] {
        if let Some(i) = s.find(cut) {
            s.truncate(i);
        }
    }
    if claude {
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
    }
    (s, claude)
}

/// Whether the Claude id `id` names the model `name` (normalised): equal, or followed by `-` and
/// no further version number other than the `-0` alias.
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
/// `claude-opus-4-6[1m]`, `gpt-5.1-codex`, `openai/gpt-5`, `models/gemini-2.5-flash`, ...).
pub fn model_price(model: &str) -> Option<&'static ModelPrice> {
    let (name, claude) = normalize(model);
    if claude {
        return CLAUDE
            .iter()
            .filter(|row| names(&name, row.id))
            .max_by_key(|row| row.id.len());
    }
    let table = if name.starts_with("gemini-") {
        GEMINI
    } else {
        OPENAI
    };
    table.iter().find(|row| row.id == name)
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

/// Token counts of one model request, in the hub's terms: every field is billed once, none is
/// part of another (the APIs count cached tokens inside the prompt; the constructors take them
/// out).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Input that was neither read from nor written to a cache.
    pub input: f64,
    /// Everything billed as output (OpenAI's reasoning tokens and Gemini's thoughts included).
    pub output: f64,
    pub cache_read: f64,
    /// All cache writes (5 m + 1 h).
    pub cache_write: f64,
    /// The part of `cache_write` written with a 1-hour lifetime.
    pub cache_write_1h: f64,
    /// The part of `output` spent on reasoning, when the API says (informational, billed in
    /// `output`).
    pub reasoning: Option<f64>,
    /// Gemini's tool-use prompt tokens: billed as input, counted apart (`tool_tokens`).
    pub tool: Option<f64>,
}

impl Usage {
    /// A Messages API `usage` block (Claude Code's transcripts): `input_tokens` is already the
    /// uncached part.
    pub fn anthropic(u: &Value) -> Usage {
        let n = |k: &str| u.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let one_hour = u
            .get("cache_creation")
            .and_then(|c| c.get("ephemeral_1h_input_tokens"))
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        Usage {
            input: n("input_tokens"),
            output: n("output_tokens"),
            cache_read: n("cache_read_input_tokens"),
            cache_write: n("cache_creation_input_tokens"),
            cache_write_1h: one_hour,
            ..Usage::default()
        }
    }

    /// An OpenAI usage as Codex records it (`input_tokens`, `cached_input_tokens`,
    /// `cache_write_input_tokens`, `output_tokens`, `reasoning_output_tokens`). OpenAI counts
    /// cached reads and writes inside `input_tokens` (Codex's `total_tokens` is input + output)
    /// and reasoning inside `output_tokens`; both are taken apart here so that nothing is
    /// counted twice.
    pub fn openai(u: &Value) -> Usage {
        let n = |k: &str| number(u, k).unwrap_or(0.0).max(0.0);
        let cached = n("cached_input_tokens");
        let written = n("cache_write_input_tokens");
        Usage {
            input: (n("input_tokens") - cached - written).max(0.0),
            output: n("output_tokens"),
            cache_read: cached,
            cache_write: written,
            reasoning: number(u, "reasoning_output_tokens").map(|n| n.max(0.0)),
            ..Usage::default()
        }
    }

    /// A Gemini CLI session log's `tokens` (`input`, `cached`, `output`, `thoughts`, `tool`):
    /// `input` is the prompt with its cached part inside, `output` the candidates without the
    /// thoughts, which are billed as output too.
    pub fn gemini(t: &Value) -> Usage {
        let n = |k: &str| number(t, k).unwrap_or(0.0).max(0.0);
        let cached = n("cached");
        let thoughts = number(t, "thoughts").map(|n| n.max(0.0));
        Usage {
            input: (n("input") - cached).max(0.0),
            output: n("output") + thoughts.unwrap_or(0.0),
            cache_read: cached,
            reasoning: thoughts,
            tool: number(t, "tool").map(|n| n.max(0.0)),
            ..Usage::default()
        }
    }

    /// The request's whole input, which price tiers are chosen by: input + cache writes + cache
    /// reads + tool-use prompt.
    pub fn prompt_tokens(&self) -> f64 {
        self.input + self.cache_write + self.cache_read + self.tool.unwrap_or(0.0)
    }

    /// The request's token metrics and, when `model` is priced, its `cost_usd` (none for an
    /// unknown model: a missing cost, never a guessed one).
    pub fn metrics(&self, model: &str) -> Metrics {
        let mut m = Metrics::default();
        m.put("input_tokens", Some(self.input));
        m.put("output_tokens", Some(self.output));
        m.put("cache_read_tokens", Some(self.cache_read));
        m.put("cache_write_tokens", Some(self.cache_write));
        m.put("reasoning_tokens", self.reasoning);
        m.put("tool_tokens", self.tool);
        m.put("cost_usd", cost_usd(model, self));
        m
    }
}

/// Says in a usage event's payload (`cost_note`) that its model has no price here, so that a
/// missing `cost_usd` reads as "not priced", never as "free". Nothing for a priced model.
pub fn note_unpriced(payload: &mut Value, model: &str) {
    if model_price(model).is_none()
        && let Value::Object(map) = payload
    {
        map.insert(
            "cost_note".into(),
            Value::String(format!(
                "no price for the model `{model}` in sightline's table: its tokens are counted, \
                 its cost is not"
            )),
        );
    }
}

/// Cost in USD, or `None` when the model is not in the tables.
pub fn cost_usd(model: &str, u: &Usage) -> Option<f64> {
    let price = price_for(model, u)?;
    let write_5m = (u.cache_write - u.cache_write_1h).max(0.0);
    Some(
        ((u.input + u.tool.unwrap_or(0.0)) * price.input
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
            ..Usage::default()
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
            "mock-model",
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
    fn openai_and_gemini_names_must_match_an_id_exactly() {
        assert_eq!(price_of("gpt-5.1-codex").unwrap().input, 1.25);
        assert_eq!(price_of("openai/gpt-5.1-codex-mini").unwrap().input, 0.25);
        assert_eq!(price_of("GPT-5").unwrap().output, 10.0);
        assert_eq!(price_of("o4-mini").unwrap().cache_read, 0.275);
        assert_eq!(price_of("gpt-6.1-sol").unwrap().cache_read, 0.10);
        assert_eq!(price_of("gemini-2.5-flash").unwrap().input, 0.30);
        assert_eq!(
            price_of("models/gemini-2.5-flash-lite").unwrap().input,
            0.10
        );
        assert_eq!(price_of("google/gemini-2.5-pro").unwrap().output, 10.0);
        for name in [
            // A longer name is a model of its own, never priced as the shorter one.
            "gpt-5.1-codex-nano",
            "gpt-5.4-codex",
            "gemini-2.5-flash-preview-09-2025",
            // A dated snapshot may have had its own price (gpt-4o-2024-05-13 was $5, not $2.50).
            "gpt-4o-2024-05-13",
            "gpt-6.2-sol",
            "mock-model",
            "gemini-9-ultra",
            "o5",
        ] {
            assert!(price_of(name).is_none(), "{name}");
        }
    }

    /// The metrics an event gets from this usage.
    fn metrics_of(u: &Usage, model: &str) -> Value {
        use crate::util::BuilderExt;
        use sightline_schema::{EntityType, Event, Source, Timestamp};
        let e = Event::builder(Source::Codex, "token_usage", EntityType::Message, "t")
            .metrics(u.metrics(model))
            .build(Timestamp::now())
            .unwrap();
        serde_json::to_value(e).unwrap()["metrics"].clone()
    }

    #[test]
    fn openai_usage_takes_cached_and_written_input_out_of_the_prompt() {
        // Codex's usage: 1,000 input of which 600 cached and 100 written, 300 output of which
        // 50 reasoning. gpt-5.1-codex (1.25 / 0.125 / 10; a write is billed as input):
        //   300·1.25 + 600·0.125 + 100·1.25 + 300·10 = 375 + 75 + 125 + 3,000 = 3,575 µ$
        let u = Usage::openai(
            &serde_json::json!({"input_tokens": 1000, "cached_input_tokens": 600,
            "cache_write_input_tokens": 100, "output_tokens": 300, "reasoning_output_tokens": 50,
            "total_tokens": 1300}),
        );
        assert_eq!(
            (u.input, u.cache_read, u.cache_write),
            (300.0, 600.0, 100.0)
        );
        assert_eq!((u.output, u.reasoning), (300.0, Some(50.0)));
        close("gpt-5.1-codex", &u, 0.003575);
        // gpt-5.6 prices the write (4 / write 5 / read 0.40 / 20):
        //   300·4 + 100·5 + 600·0.40 + 300·20 = 1,200 + 500 + 240 + 6,000 = 7,940 µ$
        close("gpt-5.6", &u, 0.00794);
        assert_eq!(
            metrics_of(&u, "gpt-5.1-codex"),
            serde_json::json!({"input_tokens": 300, "output_tokens": 300,
                "cache_read_tokens": 600, "cache_write_tokens": 100, "reasoning_tokens": 50,
                "cost_usd": 0.003575})
        );
        // An unknown model: the same tokens, no cost.
        let m = metrics_of(&u, "mock-model");
        assert_eq!(m["input_tokens"], 300);
        assert!(m.get("cost_usd").is_none(), "{m}");
        let mut payload = serde_json::json!({"model": "mock-model"});
        note_unpriced(&mut payload, "mock-model");
        assert!(
            payload["cost_note"]
                .as_str()
                .unwrap()
                .contains("`mock-model`")
        );
        let mut payload = serde_json::json!({"model": "gpt-5.1-codex"});
        note_unpriced(&mut payload, "gpt-5.1-codex");
        assert!(payload.get("cost_note").is_none());
    }

    #[test]
    fn gemini_usage_bills_thoughts_as_output_and_tool_prompts_as_input() {
        // 1,000 prompt of which 400 cached, 100 output + 50 thoughts, 20 tool-use prompt.
        // gemini-2.5-flash (0.30 / read 0.03 / 2.50):
        //   (600 + 20)·0.30 + 400·0.03 + 150·2.50 = 186 + 12 + 375 = 573 µ$
        let u = Usage::gemini(
            &serde_json::json!({"input": 1000, "cached": 400, "output": 100,
            "thoughts": 50, "tool": 20, "total": 1170}),
        );
        assert_eq!((u.input, u.cache_read, u.output), (600.0, 400.0, 150.0));
        assert_eq!((u.reasoning, u.tool), (Some(50.0), Some(20.0)));
        close("gemini-2.5-flash", &u, 0.000573);
    }

    #[test]
    fn long_prompts_cross_the_openai_and_gemini_tiers() {
        // gpt-5.4, prompt 272,000: base (2.50 / 15): 272,000·2.50 + 1,000·15 = 695,000 µ$
        close("gpt-5.4", &usage(272_000.0, 0.0, 0.0, 0.0, 1_000.0), 0.695);
        // 272,001: every token at 5 / 22.50: 1,360,005 + 22,500 = 1,382,505 µ$
        close(
            "gpt-5.4",
            &usage(272_001.0, 0.0, 0.0, 0.0, 1_000.0),
            1.382505,
        );
        // Gemini 2.5 Pro, 100,001 input + 100,000 cached: over 200K, so 2.50 / read 0.25 / 15:
        //   100,001·2.50 + 100,000·0.25 + 1,000·15 = 250,002.5 + 25,000 + 15,000 µ$
        close(
            "gemini-2.5-pro",
            &usage(100_001.0, 0.0, 0.0, 100_000.0, 1_000.0),
            0.2900025,
        );
        // At 200,000 exactly: 100,000·1.25 + 100,000·0.125 + 1,000·10 = 147,500 µ$
        close(
            "gemini-2.5-pro",
            &usage(100_000.0, 0.0, 0.0, 100_000.0, 1_000.0),
            0.1475,
        );
    }

    #[test]
    fn the_tables_are_well_formed() {
        let all: Vec<&ModelPrice> = CLAUDE.iter().chain(OPENAI).chain(GEMINI).collect();
        for (i, row) in all.iter().enumerate() {
            assert_eq!(
                normalize(row.id).0,
                row.id,
                "{} is not in normal form",
                row.id
            );
            assert!(
                all[i + 1..].iter().all(|other| other.id != row.id),
                "{} twice",
                row.id
            );
            // Each row finds itself, not a longer or shorter sibling.
            assert_eq!(model_price(row.id), Some(*row), "{}", row.id);
            // Writes cost at least input; reads no more (less where the cache has a price).
            for price in std::iter::once(&row.base).chain(row.tiers.iter().map(|t| &t.price)) {
                assert!(price.cache_write_5m >= price.input, "{}", row.id);
                assert!(price.cache_write_1h >= price.cache_write_5m, "{}", row.id);
                assert!(price.cache_read <= price.input, "{}", row.id);
                assert!(price.output > 0.0 && price.input > 0.0, "{}", row.id);
            }
            assert!(
                row.tiers.windows(2).all(|w| w[0].above < w[1].above),
                "{}: tiers out of order",
                row.id
            );
        }
        for date in [
            CLAUDE_PRICES_AS_OF,
            OPENAI_PRICES_AS_OF,
            GEMINI_PRICES_AS_OF,
        ] {
            assert_eq!(date.len(), 10);
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn usage_block() -> impl Strategy<Value = Value> {
            crate::testing::json_value(
                &["gpt-5", "gemini-2.5-pro", "1e400", "-5", "12"],
                &[
                    "input_tokens",
                    "cached_input_tokens",
                    "cache_write_input_tokens",
                    "output_tokens",
                    "reasoning_output_tokens",
                    "input",
                    "cached",
                    "output",
                    "thoughts",
                    "tool",
                ],
            )
        }

        proptest! {
            /// Any usage block from an OpenAI or Gemini producer gives counts that are not
            /// negative, and any model name a cost that is absent or a finite, non-negative
            /// number (never a panic, never NaN in a sum).
            #[test]
            fn any_usage_and_name_cost_nothing_or_a_real_amount(
                block in usage_block(),
                name in prop_oneof![
                    ".{0,24}",
                    prop::sample::select(vec!["gpt-5.1-codex", "gemini-2.5-pro", "gpt-5.4",
                        "claude-sonnet-4-5[1m]", "GPT-5.6", "models/gemini-3.1-pro-preview"])
                        .prop_map(str::to_string),
                ],
            ) {
                for u in [Usage::openai(&block), Usage::gemini(&block)] {
                    for n in [u.input, u.output, u.cache_read, u.cache_write] {
                        prop_assert!(n >= 0.0 || n.is_nan() || n.is_infinite(), "{u:?}");
                    }
                    if let Some(c) = cost_usd(&name, &u)
                        && u.prompt_tokens().is_finite()
                        && u.output.is_finite()
                    {
                        prop_assert!(c.is_finite() && c >= 0.0, "{name}: {c} for {u:?}");
                    }
                }
            }
        }
    }
}
