//! Redaction (docs/CONTRACT.md §8.5): secrets are removed before anything is stored or streamed.
//!
//! Rules, applied recursively to every nested value:
//! - a value under a sensitive key (`password`, `db_pass`, `pwd`, `user_token`, `api_key`,
//!   `ssh_key`, `authorization`, `cookie`, `dsn`, `credentials`, `secret*`, ...) is replaced
//!   whole; a key that itself holds a secret is renamed;
//! - an array that reads as a command line (`["mysql", "-p", "pw"]`, `["--token", "t"]`,
//!   `["-u", "a:pw"]`) loses the value that follows a secret-taking flag;
//! - inside any string, secret-looking substrings are replaced: `NAME=value` / `NAME: value` /
//!   `"NAME": "value"` / `--NAME value` where NAME looks sensitive (a quoted value goes whole),
//!   HTTP auth headers and schemes (`Bearer`, `Basic`), credentials in URLs
//!   (`scheme://user:pw@host`), `curl -u user:pw`, `-p pw` after mysql/mariadb/mongo/sshpass,
//!   the published token formats of the common providers, JWTs, PEM private keys, webhook
//!   URLs, connection strings and `.env` lines.
//!
//! One Aho-Corasick pass per string finds every candidate, so clean strings cost a single scan
//! and no allocation; only ASCII bytes are ever compared, and every cut is moved to a char
//! boundary, so no input can make this module panic. This module must never log or keep what
//! it removes, and never split a character.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use serde_json::{Map, Value};

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// The longest identifier (in bytes) that is read as a name in free text: a longer run of
/// identifier bytes is data, not a name, and bounding it keeps scanning linear.
const MAX_NAME: usize = 96;
/// How far a value, a command line or a PEM header is looked for, so that one pathological
/// string cannot make a scan quadratic.
const MAX_LOOKAHEAD: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

/// What a key says about itself and its value.
#[derive(Clone, Copy, PartialEq, Eq)]
struct KeyClass {
    /// Its value is a secret, whatever it holds.
    sensitive: bool,
    /// The key's own text holds a secret (`{"ghp_…": 1}`): it must be renamed.
    holds_secret: bool,
}

/// Is this key's value a secret, whatever it holds?
pub fn is_sensitive_key(key: &str) -> bool {
    key_class(key).sensitive
}

fn key_class(key: &str) -> KeyClass {
    // Payload keys repeat from event to event (`tool_name`, `cwd`, ...): the answer is
    // remembered per thread, for a bounded number of short keys, so the common case is one hash
    // lookup instead of a dozen substring searches. A pure function's memo: same answers.
    const MEMO_KEYS: usize = 4096;
    const MEMO_KEY_LEN: usize = 64;
    thread_local! {
        static MEMO: std::cell::RefCell<std::collections::HashMap<Box<str>, KeyClass>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    let compute = |key: &str| KeyClass {
        sensitive: classify_key(key),
        holds_secret: redact_str(key).is_some(),
    };
    if key.len() > MEMO_KEY_LEN {
        return compute(key);
    }
    MEMO.with(|memo| {
        if let Some(&known) = memo.borrow().get(key) {
            return known;
        }
        let answer = compute(key);
        let mut memo = memo.borrow_mut();
        if memo.len() < MEMO_KEYS {
            memo.insert(key.into(), answer);
        }
        answer
    })
}

/// Splits a key into lower-case ASCII words: `dbPass` → `db`, `pass`; `X-Api-Key` → `x`,
/// `api`, `key`; `DB_PWD` → `db`, `pwd`. Anything that is not an ASCII letter or digit
/// (including non-ASCII) separates words.
fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && prev_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            word.push(c.to_ascii_lowercase());
        } else {
            prev_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

fn classify_key(key: &str) -> bool {
    // Whole-word-insensitive: these name a secret wherever they appear in the key
    // (`x-api-key`, `SecretAccessKey`, `set-cookie`, `AccountKey`, `db_password_hash`).
    const CONTAINS: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "apikey",
        "accesskey",
        "privatekey",
        "authorization",
        "authentication",
        "cookie",
        "credential",
        "sessionkey",
        "signingkey",
        "sshkey",
        "encryptionkey",
        "decryptionkey",
        "masterkey",
        "accountkey",
        "clientkey",
        "hmackey",
        "authheader",
        "connectionstring",
        "connstr",
        "sharedaccesssignature",
        "amzsignature",
    ];
    // Short words that name a secret only as a whole word (`db_pass`, not `compass`;
    // `token_value`, not `tokens`), and not when the key is about the secret rather than the
    // secret itself (`token_count`, `password_file` is handled by CONTAINS on purpose: a path
    // in a password field is cheap to lose).
    const WORDS: &[&str] = &["token", "pwd", "pass", "dsn", "creds", "sig"];
    const ABOUT: &[&str] = &[
        "count",
        "counts",
        "len",
        "length",
        "type",
        "types",
        "kind",
        "file",
        "path",
        "dir",
        "env",
        "name",
        "names",
        "id",
        "ids",
        "url",
        "uri",
        "endpoint",
        "enabled",
        "required",
        "method",
        "mode",
        "scheme",
        "format",
        "expiry",
        "expires",
        "ttl",
        "limit",
        "limits",
        "usage",
        "budget",
        "field",
        "label",
        "hint",
        "policy",
        "provider",
        "version",
        "present",
        "exists",
        "missing",
        "index",
        "size",
        "num",
        "number",
        "total",
        "max",
        "min",
        "estimate",
        "used",
        "remaining",
        "rate",
        "rates",
        "per",
        "cost",
        "price",
        "window",
    ];
    let words = key_words(key);
    let Some(last) = words.last() else {
        return false;
    };
    let joined: String = words.concat();
    if CONTAINS.iter().any(|w| joined.contains(w)) {
        return true;
    }
    if words.len() > 1 && ABOUT.contains(&last.as_str()) {
        return false;
    }
    if words.iter().any(|w| WORDS.contains(&w.as_str())) {
        return true;
    }
    // One-word spellings: `accesstoken`, `dbpass`, `mysqlpwd`, `basicauth`, `oauth`.
    const NOT_PASS: &[&str] = &[
        "bypass",
        "compass",
        "overpass",
        "underpass",
        "surpass",
        "trespass",
        "encompass",
    ];
    if joined.ends_with("token") || joined.ends_with("pwd") || joined.ends_with("auth") {
        return true;
    }
    if last.ends_with("pass") && !NOT_PASS.contains(&last.as_str()) {
        return true;
    }
    // `.env` style: an all-capitals `*_KEY` (`APP_KEY`, `LICENSE_KEY`, `OPENAI_KEY`) is a key.
    let env_style = key.len() > 4
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    env_style && (last == "key" || last == "keys" || last == "pat")
}

/// The free-text reading of a name is stricter for the bare word `pass` than a JSON key is:
/// `PASS: test_foo` (a test log) is not a password, `pass=x`, `pass:x` and `"pass": x` are.
fn name_is_sensitive(name: &str, quoted: bool, sep: u8, space_after: bool) -> bool {
    if !is_sensitive_key(name) {
        return false;
    }
    let bare_pass = name.trim_start_matches('-').eq_ignore_ascii_case("pass");
    !bare_pass || quoted || sep == b'=' || (sep == b':' && !space_after)
}

// ---------------------------------------------------------------------------------------------
// Free text: the candidates
// ---------------------------------------------------------------------------------------------

/// The characters a provider token is made of.
#[derive(Clone, Copy)]
enum Charset {
    /// Letters and digits.
    Alnum,
    /// Letters, digits, `-` and `_` (base64url and most provider tails).
    Url,
    /// Hexadecimal digits.
    Hex,
}

impl Charset {
    fn has(self, b: u8) -> bool {
        match self {
            Charset::Alnum => b.is_ascii_alphanumeric(),
            Charset::Url => b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
            Charset::Hex => b.is_ascii_hexdigit(),
        }
    }
}

#[derive(Clone, Copy)]
enum Tool {
    /// `-p pw` / `-ppw` (mysql, mariadb, mongo, sshpass).
    DashP,
    /// `-a pw` (redis-cli).
    DashA,
}

#[derive(Clone, Copy)]
enum Kind {
    /// A word that may start or end a sensitive name (`pass`, `token`, `key`, ...).
    Name,
    /// `Bearer <token>`.
    Bearer,
    /// `Basic <base64 of user:password>`.
    Basic,
    /// A provider's published prefix (matched case-sensitively) and its tail.
    Prefix { min_tail: usize, charset: Charset },
    /// Twilio API key SIDs: `SK` and exactly 32 hex digits.
    TwilioKey,
    /// AWS access key ids (`AKIA…`, `ASIA…`) and a secret access key written near one.
    Aws,
    /// `eyJ…` three base64url parts.
    Jwt,
    /// SendGrid `SG.<id>.<secret>`.
    SendGrid,
    /// `-----BEGIN … PRIVATE KEY-----` to its END line.
    Pem,
    /// `scheme://user:password@host`.
    UrlCredentials,
    /// A URL whose path is the credential (Slack, Discord, Teams webhooks).
    WebhookPath,
    /// `-u user:pw`, `--user user:pw`, `--proxy-user user:pw` (curl and friends).
    UserFlag,
    /// A command that takes its password in a short flag.
    PasswordTool(Tool),
}

const fn prefix(min_tail: usize, charset: Charset) -> Kind {
    Kind::Prefix { min_tail, charset }
}

/// Every candidate, lower-case (the automaton is ASCII-case-insensitive); provider prefixes are
/// then compared with their published case in `EXACT_CASE`.
const PATTERNS: &[(&str, Kind)] = &[
    // Names. The identifier around the word is read whole and classified like a JSON key.
    ("pass", Kind::Name),
    ("pwd", Kind::Name),
    ("secret", Kind::Name),
    ("token", Kind::Name),
    ("key", Kind::Name),
    ("auth", Kind::Name),
    ("cookie", Kind::Name),
    ("cred", Kind::Name),
    ("dsn", Kind::Name),
    ("sig", Kind::Name),
    // HTTP auth schemes outside a header.
    ("bearer ", Kind::Bearer),
    ("basic ", Kind::Basic),
    // AI providers: OpenAI `sk-`, `sk-proj-`, `sk-svcacct-`, `sk-admin-`; Anthropic
    // `sk-ant-api03-`, `sk-ant-admin01-`; OpenRouter `sk-or-v1-`; Groq, Replicate, xAI,
    // Perplexity, Hugging Face (user and org tokens).
    ("sk-", prefix(16, Charset::Url)),
    ("gsk_", prefix(30, Charset::Alnum)),
    ("r8_", prefix(30, Charset::Alnum)),
    ("xai-", prefix(30, Charset::Alnum)),
    ("pplx-", prefix(30, Charset::Alnum)),
    ("hf_", prefix(30, Charset::Alnum)),
    ("api_org_", prefix(30, Charset::Alnum)),
    // Payments: Stripe secret and restricted keys, webhook signing secrets.
    ("sk_live_", prefix(16, Charset::Alnum)),
    ("sk_test_", prefix(16, Charset::Alnum)),
    ("rk_live_", prefix(16, Charset::Alnum)),
    ("rk_test_", prefix(16, Charset::Alnum)),
    ("whsec_", prefix(16, Charset::Alnum)),
    // Chat: Slack bot, user, app-level, legacy workspace, refresh and config tokens.
    ("xoxa-", prefix(10, Charset::Url)),
    ("xoxb-", prefix(10, Charset::Url)),
    ("xoxp-", prefix(10, Charset::Url)),
    ("xoxs-", prefix(10, Charset::Url)),
    ("xoxr-", prefix(10, Charset::Url)),
    ("xoxe-", prefix(10, Charset::Url)),
    ("xapp-", prefix(10, Charset::Url)),
    // VCS hosts: GitHub classic and fine-grained, GitLab personal, deploy, runner, trigger,
    // feed, CI job tokens.
    ("ghp_", prefix(20, Charset::Alnum)),
    ("gho_", prefix(20, Charset::Alnum)),
    ("ghu_", prefix(20, Charset::Alnum)),
    ("ghs_", prefix(20, Charset::Alnum)),
    ("ghr_", prefix(20, Charset::Alnum)),
    ("github_pat_", prefix(20, Charset::Url)),
    ("glpat-", prefix(20, Charset::Url)),
    ("gldt-", prefix(20, Charset::Url)),
    ("glrt-", prefix(20, Charset::Url)),
    ("glptt-", prefix(20, Charset::Url)),
    ("glft-", prefix(20, Charset::Url)),
    ("glcbt-", prefix(20, Charset::Url)),
    // Cloud: Google API keys, OAuth access tokens and client secrets; DigitalOcean personal,
    // OAuth and refresh tokens; Shopify.
    ("aiza", prefix(30, Charset::Url)),
    ("ya29.", prefix(20, Charset::Url)),
    ("gocspx-", prefix(20, Charset::Url)),
    ("dop_v1_", prefix(32, Charset::Hex)),
    ("doo_v1_", prefix(32, Charset::Hex)),
    ("dor_v1_", prefix(32, Charset::Hex)),
    ("shpat_", prefix(32, Charset::Hex)),
    ("shpss_", prefix(32, Charset::Hex)),
    ("shpca_", prefix(32, Charset::Hex)),
    ("shppa_", prefix(32, Charset::Hex)),
    // Package registries: npm, PyPI (a macaroon, base64url), Sentry, Linear.
    ("npm_", prefix(30, Charset::Alnum)),
    ("pypi-", prefix(50, Charset::Url)),
    ("sntrys_", prefix(30, Charset::Url)),
    ("lin_api_", prefix(30, Charset::Alnum)),
    ("sk", Kind::TwilioKey),
    ("akia", Kind::Aws),
    ("asia", Kind::Aws),
    ("eyj", Kind::Jwt),
    ("sg.", Kind::SendGrid),
    ("-----begin", Kind::Pem),
    ("://", Kind::UrlCredentials),
    ("hooks.slack.com/services/", Kind::WebhookPath),
    ("hooks.slack.com/workflows/", Kind::WebhookPath),
    ("hooks.slack.com/triggers/", Kind::WebhookPath),
    ("discord.com/api/webhooks/", Kind::WebhookPath),
    ("discordapp.com/api/webhooks/", Kind::WebhookPath),
    ("webhook.office.com/webhookb2/", Kind::WebhookPath),
    ("-u ", Kind::UserFlag),
    ("--user", Kind::UserFlag),
    ("--proxy-user", Kind::UserFlag),
    ("mysql", Kind::PasswordTool(Tool::DashP)),
    ("mariadb", Kind::PasswordTool(Tool::DashP)),
    ("mongo", Kind::PasswordTool(Tool::DashP)),
    ("sshpass", Kind::PasswordTool(Tool::DashP)),
    ("redis-cli", Kind::PasswordTool(Tool::DashA)),
];

/// Prefixes whose published case is not all lower-case.
const EXACT_CASE: &[(&str, &str)] = &[
    ("aiza", "AIza"),
    ("gocspx-", "GOCSPX-"),
    ("akia", "AKIA"),
    ("asia", "ASIA"),
    ("eyj", "eyJ"),
    ("sg.", "SG."),
    ("sk", "SK"),
];

static MATCHER: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        // A DFA costs a few hundred KiB once and scans clean text fastest.
        .kind(Some(AhoCorasickKind::DFA))
        .prefilter(false)
        .build(PATTERNS.iter().map(|(p, _)| p))
        .expect("static patterns build")
});

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

fn is_quote(b: u8) -> bool {
    matches!(b, b'"' | b'\'' | b'`')
}

/// Where an unquoted value ends: ASCII whitespace and the punctuation that separates fields in
/// query strings, JSON, shell and connection strings. Always an ASCII byte, so always a char
/// boundary; non-ASCII text belongs to the value.
fn ends_value(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t'
            | b'\n'
            | b'\r'
            | b'"'
            | b'\''
            | b'`'
            | b'&'
            | b','
            | b';'
            | b'}'
            | b']'
            | b')'
            | b'<'
            | b'>'
            | b'\\'
    )
}

/// Length of the run of bytes from `at` satisfying `pred`, at most `max`.
fn run_len(bytes: &[u8], at: usize, max: usize, pred: impl Fn(u8) -> bool) -> usize {
    bytes
        .get(at..)
        .unwrap_or_default()
        .iter()
        .take(max)
        .take_while(|b| pred(**b))
        .count()
}

fn is_redacted_at(bytes: &[u8], from: usize, to: usize) -> bool {
    bytes.get(from..to) == Some(REDACTED.as_bytes())
}

/// The spans found in one string, kept sorted and merged when the string is rebuilt.
struct Spans {
    list: Vec<(usize, usize)>,
}

impl Spans {
    fn push(&mut self, text: &str, from: usize, to: usize) {
        let bytes = text.as_bytes();
        if from >= to || is_redacted_at(bytes, from, to) {
            return;
        }
        // Every rule cuts at ASCII bytes, but a bounded scan may stop inside a character:
        // widening to char boundaries keeps the cut legal and never reveals more.
        let mut from = from.min(text.len());
        while !text.is_char_boundary(from) {
            from -= 1;
        }
        let mut to = to.min(text.len());
        while !text.is_char_boundary(to) {
            to += 1;
        }
        self.list.push((from, to));
    }
}

/// The base64 (standard or URL alphabet) value of a byte.
fn b64_value(b: u8) -> Option<u32> {
    Some(match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    } as u32)
}

/// Decodes base64 (padding optional) and tells whether every decoded byte satisfies `all`
/// and some satisfies `any`. Stops at `=`; anything else that is not base64 fails.
fn b64_check(input: &[u8], all: impl Fn(u8) -> bool, any: impl Fn(u8) -> bool) -> bool {
    let (mut acc, mut bits, mut seen_any, mut count) = (0u32, 0u32, false, 0usize);
    for &b in input {
        if b == b'=' {
            break;
        }
        let Some(v) = b64_value(b) else { return false };
        acc = ((acc << 6) | v) & 0xFFFF;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            let byte = ((acc >> bits) & 0xFF) as u8;
            if !all(byte) {
                return false;
            }
            seen_any |= any(byte);
            count += 1;
        }
    }
    count > 0 && seen_any
}

/// Finds the span(s) of the secret this candidate starts, if any. `boundary` is where the last
/// redaction ended: a candidate right there counts as standing at a word boundary, so that
/// redacting again finds nothing new.
fn find_secret(
    text: &str,
    start: usize,
    end: usize,
    kind: Kind,
    boundary: usize,
    spans: &mut Spans,
) -> Option<usize> {
    let bytes = text.as_bytes();
    let preceded_by_word = start > 0 && start != boundary && is_word_byte(bytes[start - 1]);
    let exact_case = |pattern: &str| {
        EXACT_CASE
            .iter()
            .find(|(lower, _)| *lower == pattern)
            .is_none_or(|(_, exact)| bytes.get(start..end) == Some(exact.as_bytes()))
    };
    let pattern = text
        .get(start..end)
        .unwrap_or_default()
        .to_ascii_lowercase();
    match kind {
        Kind::Name => name_value(text, start, end, spans),
        Kind::Bearer => {
            let n = run_len(bytes, end, MAX_LOOKAHEAD, is_token_byte);
            if n < 8 {
                return None;
            }
            spans.push(text, end, end + n);
            Some(end + n)
        }
        Kind::Basic => {
            let n = run_len(bytes, end, MAX_LOOKAHEAD, |b| {
                b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
            });
            // Basic credentials are base64 of `user:password`: the decoded colon tells them
            // from the word "basic" before an ordinary word.
            let cred = bytes.get(end..end + n).unwrap_or_default();
            if n < 4 || !b64_check(cred, |b| b != 0, |b| b == b':') {
                return None;
            }
            spans.push(text, end, end + n);
            Some(end + n)
        }
        Kind::Prefix { min_tail, charset } => {
            if preceded_by_word || !exact_case(&pattern) {
                return None;
            }
            // `ya29.` tokens and a few others use `.` inside; a tail stops at anything else.
            let n = run_len(bytes, end, MAX_LOOKAHEAD, |b| {
                charset.has(b) || (pattern == "ya29." && b == b'.')
            });
            if n < min_tail {
                return None;
            }
            spans.push(text, start, end + n);
            Some(end + n)
        }
        Kind::TwilioKey => {
            if preceded_by_word || !exact_case(&pattern) {
                return None;
            }
            let n = run_len(bytes, end, 33, |b| b.is_ascii_hexdigit());
            if n != 32 || bytes.get(end + n).is_some_and(|b| is_word_byte(*b)) {
                return None;
            }
            spans.push(text, start, end + n);
            Some(end + n)
        }
        Kind::Aws => {
            // Access key ids: `AKIA`/`ASIA` + 16 of [A-Z0-9].
            if preceded_by_word || !exact_case(&pattern) {
                return None;
            }
            let n = run_len(bytes, end, MAX_LOOKAHEAD, |b| {
                b.is_ascii_uppercase() || b.is_ascii_digit()
            });
            if n < 16 {
                return None;
            }
            spans.push(text, start, end + n);
            aws_secret_near(text, end + n, spans);
            Some(end + n)
        }
        Kind::Jwt => {
            if preceded_by_word || !exact_case(&pattern) {
                return None;
            }
            let b64 = |b: u8| Charset::Url.has(b);
            let head = run_len(bytes, end, MAX_LOOKAHEAD, b64);
            let mut at = end + head;
            if head < 8 || bytes.get(at) != Some(&b'.') {
                return None;
            }
            let body = run_len(bytes, at + 1, usize::MAX, b64);
            at += 1 + body;
            if body < 8 {
                return None;
            }
            if bytes.get(at) == Some(&b'.') {
                at += 1 + run_len(bytes, at + 1, usize::MAX, b64);
            }
            spans.push(text, start, at);
            Some(at)
        }
        Kind::SendGrid => {
            if preceded_by_word || !exact_case(&pattern) {
                return None;
            }
            let id = run_len(bytes, end, 64, |b| Charset::Url.has(b));
            let dot = end + id;
            if id < 16 || bytes.get(dot) != Some(&b'.') {
                return None;
            }
            let secret = run_len(bytes, dot + 1, MAX_LOOKAHEAD, |b| Charset::Url.has(b));
            if secret < 20 {
                return None;
            }
            spans.push(text, start, dot + 1 + secret);
            Some(dot + 1 + secret)
        }
        Kind::Pem => {
            // The header is one line: `-----BEGIN <type>-----`.
            let header_len = run_len(bytes, end, 80, |b| b != b'\n' && b != b'\r');
            let header = bytes.get(end..end + header_len).unwrap_or_default();
            let closes = header.windows(5).position(|w| w == b"-----")?;
            let label = header
                .get(..closes)
                .unwrap_or_default()
                .to_ascii_uppercase();
            if !label.windows(11).any(|w| w == b"PRIVATE KEY") {
                return None;
            }
            let rest = text.get(end..).unwrap_or_default();
            // Without an END line, everything after the header goes.
            let stop = rest
                .find("-----END")
                .map(|i| {
                    let after = i + 8;
                    let tail = bytes.get(end + after..).unwrap_or_default();
                    let close = tail
                        .iter()
                        .take(80)
                        .position(|b| *b == b'\n')
                        .map(|p| &tail[..p])
                        .unwrap_or(&tail[..tail.len().min(80)])
                        .windows(5)
                        .position(|w| w == b"-----")
                        .map(|p| p + 5)
                        .unwrap_or(0);
                    end + after + close
                })
                .unwrap_or(text.len());
            spans.push(text, start, stop);
            Some(stop)
        }
        Kind::UrlCredentials => url_credentials(text, end, spans),
        Kind::WebhookPath => {
            // `@` too: a Teams webhook's path is `<guid>@<guid>/IncomingWebhook/<id>/<guid>`.
            let n = run_len(bytes, end, MAX_LOOKAHEAD, |b| {
                b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'@')
            });
            if n < 8 {
                return None;
            }
            spans.push(text, end, end + n);
            Some(end + n)
        }
        Kind::UserFlag => user_flag(text, start, end, spans),
        Kind::PasswordTool(tool) => {
            password_tool(text, start, end, tool, spans);
            // The value may lie far ahead; scanning resumes right after the command's name.
            None
        }
    }
}

/// `NAME=value`, `NAME: value`, `"NAME": "value"`, `--NAME value`, `<NAME>value</NAME>`:
/// the identifier around the trigger word is read whole, classified like a JSON key, and the
/// value after the separator goes (a quoted or bracketed value goes whole).
fn name_value(text: &str, start: usize, end: usize, spans: &mut Spans) -> Option<usize> {
    let bytes = text.as_bytes();
    let back = bytes[..start]
        .iter()
        .rev()
        .take(MAX_NAME + 1)
        .take_while(|b| is_ident_byte(**b))
        .count();
    let fwd = run_len(bytes, end, MAX_NAME + 1, is_ident_byte);
    if back + (end - start) + fwd > MAX_NAME {
        return None;
    }
    let (name_start, name_end) = (start - back, end + fwd);
    let mut at = name_end;
    let opened_by = name_start.checked_sub(1).map(|i| bytes[i]);
    let quoted = opened_by.is_some_and(is_quote);
    // A quoted name closes its quote (`"password":`, `\"password\":`, `os.environ["KEY"] =`).
    if bytes.get(at) == Some(&b'\\') && bytes.get(at + 1).is_some_and(|b| is_quote(*b)) {
        at += 2;
    } else if bytes.get(at).is_some_and(|b| is_quote(*b)) {
        at += 1;
    }
    if bytes.get(at) == Some(&b']') {
        at += 1;
    }
    let xml = opened_by == Some(b'<') && bytes.get(at) == Some(&b'>');
    let gap = run_len(bytes, at, MAX_LOOKAHEAD, |b| b == b' ' || b == b'\t');
    at += gap;
    let name = text.get(name_start..name_end)?;
    let sep = match bytes.get(at) {
        _ if xml => b'>',
        Some(&b) if b == b'=' || b == b':' => b,
        // `--password pw`, `--token t`: a long flag followed by its value.
        _ if name.starts_with("--") && gap > 0 => b' ',
        _ => return None,
    };
    if sep != b' ' {
        at += 1;
        // `:=`, `=>`, `==`.
        if matches!(bytes.get(at), Some(b'=' | b'>')) {
            at += 1;
        }
    }
    let space_after = run_len(bytes, at, MAX_LOOKAHEAD, |b| b == b' ' || b == b'\t');
    at += space_after;
    if !name_is_sensitive(name, quoted, sep, space_after > 0) {
        return None;
    }
    if sep == b' ' && bytes.get(at) == Some(&b'-') {
        return None; // `--token --verbose`: the next flag, not a value.
    }
    let norm = name.to_ascii_lowercase().replace(['-', '_'], "");
    // A header value is everything to the end of the line (`Cookie: a=1; b=2`, `Digest …`).
    let whole_line = norm.ends_with("authorization")
        || norm.ends_with("authentication")
        || norm.ends_with("cookie");
    // A header inside a quoted argument (`-H 'Cookie: a=1'`) ends at that quote; a bare one
    // runs to the end of the line.
    let header_quote = whole_line
        .then_some(opened_by.filter(|b| is_quote(*b)))
        .flatten();
    let (from, to) = value_span(bytes, at, whole_line, header_quote, sep == b'>')?;
    let mut from = from;
    // `Authorization: Bearer x` keeps the scheme visible, when it is a known scheme (a token
    // followed by a space is not a scheme and must go).
    if whole_line || norm.contains("auth") {
        let word = run_len(bytes, from, 20, |b| b.is_ascii_alphanumeric() || b == b'-');
        let scheme = bytes.get(from..from + word).unwrap_or_default();
        if AUTH_SCHEMES
            .iter()
            .any(|s| s.as_bytes().eq_ignore_ascii_case(scheme))
            && word + 1 < to - from
            && bytes.get(from + word) == Some(&b' ')
        {
            from += word + 1;
        }
    }
    let value = bytes.get(from..to).unwrap_or_default();
    // Nulls and booleans carry no secret (the same rule as for JSON keys), and a value that
    // is already redacted stays as it is.
    if matches!(value, b"null" | b"true" | b"false" | b"None" | b"nil") {
        return Some(to);
    }
    spans.push(text, from, to);
    Some(to)
}

/// The HTTP authentication schemes whose name stays visible before a redacted credential.
const AUTH_SCHEMES: &[&str] = &[
    "basic",
    "bearer",
    "digest",
    "token",
    "bot",
    "negotiate",
    "ntlm",
    "hoba",
    "mutual",
    "dpop",
    "oauth",
    "ssws",
    "sharedkey",
    "aws4-hmac-sha256",
];

/// Where the value starting at `at` ends: a quoted value to its closing quote (or the end of
/// the line), a bracketed one to its matching bracket, a header to the end of the line (or to
/// `header_quote`), an unquoted one to the first separator.
fn value_span(
    bytes: &[u8],
    at: usize,
    whole_line: bool,
    header_quote: Option<u8>,
    xml: bool,
) -> Option<(usize, usize)> {
    let first = *bytes.get(at)?;
    let escaped_quote = first == b'\\' && bytes.get(at + 1).is_some_and(|b| is_quote(*b));
    if is_quote(first) || escaped_quote {
        let (quote, from) = if escaped_quote {
            (bytes[at + 1], at + 2)
        } else {
            (first, at + 1)
        };
        let mut i = from;
        while let Some(&b) = bytes.get(i) {
            if b == b'\n' || b == b'\r' {
                break;
            }
            if b == b'\\' {
                if escaped_quote && bytes.get(i + 1) == Some(&quote) {
                    break;
                }
                i += 2;
                continue;
            }
            if b == quote {
                break;
            }
            i += 1;
        }
        let to = i.min(bytes.len());
        return (to > from).then_some((from, to));
    }
    if (first == b'{' || first == b'[') && !xml {
        return Some((at, matching_bracket(bytes, at)));
    }
    let n = if xml {
        run_len(bytes, at, usize::MAX, |b| b != b'<' && b != b'\n')
    } else if whole_line {
        run_len(bytes, at, usize::MAX, |b| {
            !matches!(b, b'\n' | b'\r') && Some(b) != header_quote
        })
    } else {
        let mut n = run_len(bytes, at, usize::MAX, |b| !ends_value(b));
        // `password=token="a b"`: a quote right after `=` or `:` opens a nested value, which
        // belongs to this one (stopping there would keep the nested value).
        while n > 0
            && matches!(bytes[at + n - 1], b'=' | b':')
            && bytes.get(at + n).is_some_and(|b| is_quote(*b))
        {
            let quote = bytes[at + n];
            let inner = run_len(bytes, at + n + 1, usize::MAX, |b| b != quote && b != b'\n');
            n += 1 + inner + usize::from(bytes.get(at + n + 1 + inner) == Some(&quote));
            n += run_len(bytes, at + n, usize::MAX, |b| !ends_value(b));
        }
        n
    };
    (n > 0).then_some((at, at + n))
}

/// The end (exclusive) of the bracketed value at `at`, honouring quoted strings; the end of
/// the line when it does not close.
fn matching_bracket(bytes: &[u8], at: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string: Option<u8> = None;
    let mut i = at;
    while let Some(&b) = bytes.get(i) {
        match in_string {
            Some(q) => {
                if b == b'\\' {
                    i += 1;
                } else if b == q {
                    in_string = None;
                }
            }
            None => match b {
                b'"' | b'\'' => in_string = Some(b),
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            },
        }
        i += 1;
    }
    let line = bytes[at..].iter().position(|b| *b == b'\n');
    line.map_or(bytes.len(), |p| at + p)
}

/// `scheme://user:password@host`: the password goes, the user and host stay. A user alone
/// goes when it looks like a token (`https://<token>@github.com`, Sentry DSNs).
fn url_credentials(text: &str, end: usize, spans: &mut Spans) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at_sign = None;
    let mut i = end;
    while let Some(&b) = bytes.get(i) {
        if i - end > 512
            || matches!(
                b,
                b'/' | b'?'
                    | b'#'
                    | b' '
                    | b'\t'
                    | b'\n'
                    | b'\r'
                    | b'"'
                    | b'\''
                    | b'`'
                    | b'<'
                    | b'>'
                    | b'\\'
            )
        {
            break;
        }
        if b == b'@' {
            at_sign = Some(i);
        }
        i += 1;
    }
    let at_sign = at_sign?;
    let userinfo = bytes.get(end..at_sign)?;
    match userinfo.iter().position(|b| *b == b':') {
        Some(colon) => {
            let from = end + colon + 1;
            if from < at_sign {
                spans.push(text, from, at_sign);
            }
        }
        None => {
            if userinfo.len() >= 16 && userinfo.iter().all(|b| is_token_byte(*b)) {
                spans.push(text, end, at_sign);
            }
        }
    }
    Some(at_sign)
}

/// `-u user:password` (curl, wget, httpie), `--user user:pw`, `--proxy-user user:pw`: the part
/// after the first colon goes. A value without a colon (`git push -u origin`) or with `://`
/// after it (`pip install -U https://…`) is not a credential.
fn user_flag(text: &str, start: usize, end: usize, spans: &mut Spans) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut at = end;
    if bytes[start..end].ends_with(b" ") {
        // `-u ` must be a flag of its own.
        if start > 0 && !matches!(bytes[start - 1], b' ' | b'\t' | b'"' | b'\'' | b'\n') {
            return None;
        }
    } else {
        // `--user` / `--proxy-user` then ` ` or `=`, not `--username`.
        match bytes.get(at) {
            Some(b' ' | b'=') => at += 1,
            _ => return None,
        }
    }
    at += run_len(bytes, at, 64, |b| b == b' ');
    if bytes.get(at).is_some_and(|b| is_quote(*b)) {
        at += 1;
    }
    let n = run_len(bytes, at, MAX_LOOKAHEAD, |b| {
        !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'`')
    });
    let value = bytes.get(at..at + n)?;
    let colon = value.iter().position(|b| *b == b':')?;
    if value.get(colon + 1) == Some(&b'/') || colon + 1 >= n {
        return None;
    }
    spans.push(text, at + colon + 1, at + n);
    Some(at + n)
}

/// After `mysql`/`mariadb`/`mongo…`/`sshpass` (`-p pw`, `-ppw`) or `redis-cli` (`-a pw`), in
/// the same command (up to a newline, `|`, `;` or `&`): the password flag's value goes.
///
/// The rule is tied to these commands on purpose: `-p` means a port, a parent directory or a
/// package almost everywhere else (`ssh -p 22`, `mkdir -p`, `cargo test -p crate`). For mysql,
/// `-p word` (with a space) names a database and prompts for the password; it goes anyway,
/// since the word is as often a password typed in the wrong place.
fn password_tool(text: &str, start: usize, end: usize, tool: Tool, spans: &mut Spans) {
    let bytes = text.as_bytes();
    if start > 0
        && !matches!(
            bytes[start - 1],
            b' ' | b'\t' | b'\n' | b'/' | b'"' | b'\'' | b'('
        )
    {
        return;
    }
    // The command's name may go on (`mysqldump`, `mongosh`), then a space.
    let mut at = end + run_len(bytes, end, 32, |b| b.is_ascii_alphanumeric() || b == b'-');
    if !matches!(bytes.get(at), Some(b' ' | b'\t')) {
        return;
    }
    let flag = match tool {
        Tool::DashP => b'p',
        Tool::DashA => b'a',
    };
    let limit = (at + MAX_LOOKAHEAD).min(bytes.len());
    let mut expect_value = false;
    while at < limit {
        at += run_len(bytes, at, limit - at, |b| b == b' ' || b == b'\t');
        let Some(&first) = bytes.get(at) else { break };
        if matches!(first, b'\n' | b'\r' | b'|' | b';' | b'&') {
            break;
        }
        let len = if is_quote(first) {
            1 + run_len(bytes, at + 1, limit - at, |b| b != first && b != b'\n') + 1
        } else {
            run_len(bytes, at, limit - at, |b| {
                !matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'|' | b';' | b'&')
            })
        }
        .min(bytes.len() - at);
        let arg = &bytes[at..at + len];
        if expect_value {
            if first != b'-' {
                let (from, to) = if is_quote(first) && len >= 2 {
                    (at + 1, at + len - 1)
                } else {
                    (at, at + len)
                };
                spans.push(text, from, to);
            }
            return;
        }
        if arg == [b'-', flag] {
            expect_value = true;
        } else if arg.len() > 2 && arg[0] == b'-' && arg[1] == flag && tool_attached(tool) {
            spans.push(text, at + 2, at + len);
            return;
        }
        at += len.max(1);
    }
}

fn tool_attached(tool: Tool) -> bool {
    matches!(tool, Tool::DashP)
}

/// An AWS secret access key (40 base64 characters) written within a few lines after an access
/// key id: `aws_access_key_id=AKIA… aws_secret_access_key=…` is caught by its name, this
/// catches the bare pair (`AKIA… wJalrXUtnFEMI/K7MDENG/…`).
fn aws_secret_near(text: &str, from: usize, spans: &mut Spans) {
    let bytes = text.as_bytes();
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'/' || b == b'+';
    let limit = (from + 256).min(bytes.len());
    let mut i = from;
    while i < limit {
        if !is_b64(bytes[i]) {
            i += 1;
            continue;
        }
        let n = run_len(bytes, i, 41, is_b64);
        let before_ok = i == 0 || !(is_b64(bytes[i - 1]) || bytes[i - 1] == b'=');
        if n == 40 && before_ok && bytes.get(i + 40) != Some(&b'=') {
            let run = &bytes[i..i + 40];
            let mixed = run.iter().any(u8::is_ascii_uppercase)
                && run.iter().any(u8::is_ascii_lowercase)
                && run
                    .iter()
                    .any(|b| b.is_ascii_digit() || *b == b'/' || *b == b'+');
            if mixed {
                spans.push(text, i, i + 40);
                return;
            }
        }
        i += run_len(bytes, i, usize::MAX, is_b64).max(1);
    }
}

/// One pass of the candidate rules; `None` when nothing was found.
fn redact_candidates(text: &str) -> Option<String> {
    let mut spans = Spans { list: Vec::new() };
    let mut search_from = 0;
    let mut boundary = usize::MAX;
    while search_from < text.len() {
        let Some(rest) = text.get(search_from..) else {
            // Unreachable by construction; widen rather than skip what is left.
            search_from += 1;
            continue;
        };
        let Some(m) = MATCHER.find(rest) else {
            break;
        };
        let (start, end) = (search_from + m.start(), search_from + m.end());
        let kind = PATTERNS[m.pattern().as_usize()].1;
        let found_before = spans.list.len();
        let resume = find_secret(text, start, end, kind, boundary, &mut spans);
        if spans.list.len() > found_before {
            boundary = spans.list.last().map_or(boundary, |s| s.1);
        }
        // Candidates inside a redacted span are not looked at again (linear time); a span that
        // lies ahead (a command's password) does not hide what is in between.
        // A rejected candidate may overlap the start of another (`AccessKey` holds `sK` and
        // `Key`): the search goes on from the next byte (an ASCII pattern's first byte, so
        // the next byte is a char boundary).
        search_from = match resume {
            Some(to) if to > end => to,
            Some(_) => end,
            None => start + 1,
        };
    }
    rebuild(text, spans.list)
}

/// Replaces the (possibly overlapping or adjacent) spans, each run of them by one marker.
fn rebuild(text: &str, mut list: Vec<(usize, usize)>) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    list.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut copied_to = 0;
    let mut open: Option<(usize, usize)> = None;
    let flush = |out: &mut String, copied_to: &mut usize, (from, to): (usize, usize)| {
        out.push_str(text.get(*copied_to..from).unwrap_or_default());
        out.push_str(REDACTED);
        *copied_to = to;
    };
    for (from, to) in list {
        open = match open {
            Some((f, t)) if from <= t => Some((f, t.max(to))),
            Some(done) => {
                flush(&mut out, &mut copied_to, done);
                Some((from, to))
            }
            None => Some((from, to)),
        };
    }
    if let Some(done) = open {
        flush(&mut out, &mut copied_to, done);
    }
    out.push_str(text.get(copied_to..).unwrap_or_default());
    (out != text).then_some(out)
}

/// Discord bot tokens have no fixed prefix: `<base64 of the bot's numeric id>.<6>.<27+>`. They
/// are found from their dots (a cheap memchr) and confirmed by decoding the first part to
/// digits, which ordinary dotted words never do.
fn redact_discord(text: &str) -> Option<String> {
    // The shortest token: 23 + 1 + 6 + 1 + 27.
    if text.len() < 58 {
        return None;
    }
    let bytes = text.as_bytes();
    let part = |b: u8| Charset::Url.has(b);
    let mut spans = Vec::new();
    let mut skip_to = 0;
    for (dot, _) in text.match_indices('.') {
        if dot < skip_to || dot < 23 {
            continue;
        }
        let first = bytes[..dot]
            .iter()
            .rev()
            .take(29)
            .take_while(|b| part(**b))
            .count();
        let first_start = dot - first;
        if !(23..=28).contains(&first)
            || !matches!(bytes[first_start], b'M' | b'N' | b'O')
            || first_start > 0 && (part(bytes[first_start - 1]) || bytes[first_start - 1] == b'.')
        {
            continue;
        }
        let second = run_len(bytes, dot + 1, 7, part);
        let third_at = dot + 1 + second + 1;
        if second != 6 || bytes.get(dot + 1 + second) != Some(&b'.') {
            continue;
        }
        let third = run_len(bytes, third_at, MAX_LOOKAHEAD, part);
        if third < 27 || bytes.get(third_at + third) == Some(&b'.') {
            continue;
        }
        if !b64_check(&bytes[first_start..dot], |b| b.is_ascii_digit(), |_| true) {
            continue;
        }
        spans.push((first_start, third_at + third));
        skip_to = third_at + third;
    }
    rebuild(text, spans)
}

/// One full pass: the candidate rules, then Discord's dotted tokens.
fn redact_once(text: &str) -> Option<String> {
    match redact_candidates(text) {
        Some(out) => Some(redact_discord(&out).unwrap_or(out)),
        None => redact_discord(text),
    }
}

/// Redacts secret-looking substrings; `None` when the string is clean (the common case).
///
/// Idempotent: redacting the result again changes nothing. A removal can bring two pieces of
/// text together into something a rule reads differently, so a string that had a secret is
/// passed over again until nothing changes (in practice one extra pass, only for such strings).
pub fn redact_str(text: &str) -> Option<String> {
    let mut current = redact_once(text)?;
    for _ in 0..8 {
        match redact_once(&current) {
            Some(next) => current = next,
            None => break,
        }
    }
    Some(current)
}

// ---------------------------------------------------------------------------------------------
// JSON values
// ---------------------------------------------------------------------------------------------

/// Redacts a JSON value in place, recursively.
pub fn redact_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(clean) = redact_str(s) {
                *s = clean;
            }
        }
        Value::Array(items) => {
            // Each string first, then the command-line rule over what they became: a flag is
            // judged as it will be stored. Judged before, `--x-authorization: a=b` held an `=`
            // (so no flag) that its own redaction then removed, and redacting the result again
            // took the next element too: not idempotent (found by the `redact` fuzz target).
            items.iter_mut().for_each(redact_value);
            redact_argv(items);
        }
        Value::Object(map) => redact_map(map),
        _ => {}
    }
}

/// Redacts every value of an object, replacing whole values under sensitive keys and renaming
/// keys that hold a secret themselves.
pub fn redact_map(map: &mut Map<String, Value>) {
    let mut renamed: Vec<String> = Vec::new();
    for (key, value) in map.iter_mut() {
        let class = key_class(key);
        if class.holds_secret {
            renamed.push(key.clone());
        }
        // Nulls and booleans (`has_token: false`) carry no secret; everything else goes whole.
        if class.sensitive && !matches!(value, Value::Null | Value::Bool(_)) {
            if value.as_str() != Some(REDACTED) {
                *value = Value::String(REDACTED.to_string());
            }
            continue;
        }
        redact_value(value);
    }
    // Rare: the map is only rebuilt when a key held a secret. Two such keys must not overwrite
    // each other, so a clash gets a number (deterministic: maps iterate in key order).
    for key in renamed {
        let Some(value) = map.remove(&key) else {
            continue;
        };
        let base = redact_str(&key).unwrap_or(key);
        let mut name = base.clone();
        let mut n = 2;
        while map.contains_key(&name) {
            name = format!("{base} ({n})");
            n += 1;
        }
        map.insert(name, value);
    }
}

/// An array of strings that reads as a command line: the value after a flag that takes a
/// secret goes (`["--password", "pw"]`, `["-u", "a:pw"]`, `["mysql", "-p", "pw"]`,
/// `["mysql", "-ppw"]`, `["redis-cli", "-a", "pw"]`).
fn redact_argv(items: &mut [Value]) {
    if items.len() < 2
        || !items
            .iter()
            .any(|v| v.as_str().is_some_and(|s| s.starts_with('-')))
    {
        return;
    }
    let program = items
        .first()
        .and_then(Value::as_str)
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase())
        .unwrap_or_default();
    let dash_p = ["mysql", "mariadb", "mongo", "sshpass"]
        .iter()
        .any(|t| program.starts_with(t));
    let dash_a = program == "redis-cli";
    let mut i = 0;
    while i < items.len() {
        let Some(flag) = items[i].as_str() else {
            i += 1;
            continue;
        };
        if dash_p && flag.len() > 2 && flag.starts_with("-p") && !flag.starts_with("-p=") {
            items[i] = Value::String(format!("-p{REDACTED}"));
            i += 1;
            continue;
        }
        let whole = (flag.starts_with("--")
            && !flag.contains('=')
            && flag.len() > 2
            && is_sensitive_key(&flag[2..]))
            || (dash_p && flag == "-p")
            || (dash_a && flag == "-a");
        let user = matches!(flag, "-u" | "-U" | "--user" | "--proxy-user");
        if let Some(Value::String(next)) = items.get_mut(i + 1)
            && !next.starts_with('-')
            && next != REDACTED
        {
            if whole {
                *next = REDACTED.to_string();
                i += 2;
                continue;
            }
            if user
                && let Some(colon) = next.find(':')
                && !next[colon + 1..].starts_with('/')
                && colon + 1 < next.len()
                && &next[colon + 1..] != REDACTED
            {
                next.replace_range(colon + 1.., REDACTED);
                i += 2;
                continue;
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_values_under_sensitive_keys_at_any_depth() {
        let mut v = json!({"config": {"db_password": "hunter2", "user_token": "abc",
            "nested": [{"API_KEY": "k"}, {"Authorization": "Basic Zm9vOmJhcg=="}]},
            "input_tokens": 1200, "cookie": "sid=1", "name": "ok"});
        redact_value(&mut v);
        let text = v.to_string();
        for secret in ["hunter2", "\"abc\"", "\"k\"", "Zm9vOmJhcg", "sid=1"] {
            assert!(!text.contains(secret), "{secret} survived in {text}");
        }
        assert_eq!(v["input_tokens"], 1200);
        assert_eq!(v["name"], "ok");
    }

    #[test]
    fn finds_secrets_inside_free_text() {
        let cases = [
            "curl -H 'Authorization: Bearer abcdefgh12345678' https://x",
            "export OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwxyz",
            "key sk-ant-api03-abcdefghijklmnopqrstuv in log",
            "aws AKIAIOSFODNN7EXAMPLE used",
            "gh ghp_abcdefghijklmnopqrstuvwxyz0123456789",
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "db_password=hunter2 next",
            "{\"password\": \"hunter2\"}",
        ];
        for case in cases {
            let out = redact_str(case).unwrap_or_else(|| panic!("nothing redacted in {case}"));
            for secret in [
                "abcdefgh12345678",
                "abcdefghijklmnopqrstuvwxyz",
                "abcdefghijklmnopqrstuv",
                "IOSFODNN7EXAMPLE",
                "dozjgNryP4J3",
                "MIIEowIBAAKCAQEA",
                "hunter2",
            ] {
                assert!(!out.contains(secret), "{secret} survived in {out}");
            }
            assert!(out.contains(REDACTED));
        }
    }

    #[test]
    fn leaves_ordinary_text_alone() {
        for clean in [
            "Read src/token_parser.rs",
            "the password field is empty",
            "task-list of 3 items",
            "input_tokens: 1200",
            "token_count: 12",
            "PASS: test_parse_event",
            "cargo test -p sightline-schema",
            "ssh -p 2222 host && mkdir -p a/b",
            "git push -u origin main",
            "pip install -U https://example.invalid/pkg.whl",
            "Basic information about the design",
            "a bearer of bad news",
            "ssh://git@example.invalid/repo.git",
            "the key: value of a map",
            "has_password: false, token: null",
            "Asia/Tokyo and ASIAN markets",
            "skipped: SKILLS.md",
            "design: signal; assign: x",
            "compass: north",
        ] {
            assert_eq!(redact_str(clean), None, "{clean} was changed");
        }
    }

    #[test]
    fn classifies_keys_by_words() {
        for key in [
            "db_pass",
            "pass",
            "passwd",
            "pwd",
            "db_pwd",
            "ssh_key",
            "encryption_key",
            "master_key",
            "private_key",
            "auth_header",
            "Authentication",
            "token_value",
            "dsn",
            "credentials",
            "secret",
            "secretAccessKey",
            "client_secret",
            "cookie",
            "set-cookie",
            "session_token",
            "accessToken",
            "X-Api-Key",
            "AccountKey",
            "OPENAI_KEY",
            "basic_auth",
        ] {
            assert!(is_sensitive_key(key), "{key} is not sensitive");
        }
        for key in [
            "input_tokens",
            "output_tokens",
            "max_tokens",
            "token_count",
            "tool_name",
            "cwd",
            "key",
            "cache_key",
            "bypass",
            "compass",
            "author",
            "tokenizer",
            "signal",
        ] {
            assert!(!is_sensitive_key(key), "{key} is sensitive");
        }
    }
}
