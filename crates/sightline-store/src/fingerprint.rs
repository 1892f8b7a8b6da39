//! Incidents by fingerprint: failures grouped by what failed rather than by when. A Python
//! exception's fingerprint is its type, its message normalised and its location; an agent's
//! failed tool call is the tool and its error's class; anything else is its source, kind and
//! normalised title. Each group has its count, first and last seen, and the runs it hit.
//!
//! The normaliser reads untrusted text (messages, titles, tool errors): it is a single pass over
//! characters with no backtracking and a hard output cap, so no input can make it slow or large,
//! and it never panics. Reads are bounded like `query::incidents` (the latest
//! [`FAILURES_READ`] failures). This module never writes.

use std::collections::HashMap;

use rusqlite::Connection;
use serde::Serialize;
use serde_json::Value;
use sightline_schema::{EntityType, Event, Source, Timestamp};

use crate::StoreError;
use crate::query::get_event;
use crate::rows::{EVENT_COLUMNS, event_from_row};

/// Most characters of a normalised message: enough to tell errors apart, small enough to key.
pub const MAX_NORMALISED: usize = 160;
/// Failures (the latest by seq) one call reads.
pub const FAILURES_READ: i64 = 20_000;
/// Runs listed per group (the count of runs is exact either way).
pub const RUNS_LISTED: usize = 20;
/// Most groups one call returns.
pub const MAX_GROUPS: usize = 500;

/// Replaces the parts of a message that differ between occurrences of the same error: quoted
/// values (`'…'`, `"…"`, `` `…` ``) become `<str>`, hexadecimal and long ids (UUIDs, hashes,
/// addresses) `<hex>`/`<id>`, numbers (PR numbers, ports, counts, durations) `<n>`; whitespace
/// runs become one space. The result has at most [`MAX_NORMALISED`] characters.
pub fn normalise_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_NORMALISED) + 8);
    let chars: Vec<char> = text.chars().take(4 * MAX_NORMALISED + 64).collect();
    let mut i = 0;
    let mut count = 0usize;
    let push = |out: &mut String, count: &mut usize, s: &str| {
        for c in s.chars() {
            if *count >= MAX_NORMALISED {
                return;
            }
            out.push(c);
            *count += 1;
        }
    };
    while i < chars.len() && count < MAX_NORMALISED {
        let c = chars[i];
        // Quoted values: up to the next same quote (within the bounded input). An apostrophe
        // right after a letter or digit ("can't") is not a quote; the rule looks at the output
        // so that normalising twice changes nothing.
        if matches!(c, '\'' | '"' | '`')
            && !(c == '\'' && out.chars().next_back().is_some_and(char::is_alphanumeric))
            && let Some(p) = chars[i + 1..].iter().position(|&d| d == c)
        {
            push(&mut out, &mut count, "<str>");
            i += p + 2;
            continue;
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                push(&mut out, &mut count, " ");
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphanumeric() {
            // A token of letters, digits, `-` and `_`: classify it whole.
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '-' || chars[i] == '_')
            {
                i += 1;
            }
            let token: String = chars[start..i].iter().collect();
            let digits = token.chars().filter(char::is_ascii_digit).count();
            let hexish = token.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
            let replacement = if token.starts_with("0x")
                && token.len() > 2
                && token[2..].chars().all(|c| c.is_ascii_hexdigit())
            {
                Some("<hex>")
            } else if digits == 0 {
                None
            } else if token.chars().all(|c| c.is_ascii_digit()) {
                Some("<n>")
            } else if hexish && token.len() >= 8 {
                Some("<hex>")
            } else if token.len() >= 12 && digits * 4 >= token.len() {
                // Mixed ids (`req_8f3kd92jd0`, `ses-b10c-r42`): mostly digits and long.
                Some("<id>")
            } else {
                None
            };
            match replacement {
                Some(r) => {
                    // Keep a word prefix before digits (`PR#123` → `PR#<n>`, `v2` stays).
                    push(&mut out, &mut count, r)
                }
                None => {
                    // Digits inside a word (`worker3`, `http2`) are numbers too.
                    let mut in_num = false;
                    for ch in token.chars() {
                        if ch.is_ascii_digit() {
                            if !in_num {
                                push(&mut out, &mut count, "<n>");
                            }
                            in_num = true;
                        } else {
                            in_num = false;
                            let mut b = [0u8; 4];
                            push(&mut out, &mut count, ch.encode_utf8(&mut b));
                        }
                    }
                }
            }
            continue;
        }
        let mut b = [0u8; 4];
        push(&mut out, &mut count, c.encode_utf8(&mut b));
        i += 1;
    }
    out.trim_end().to_string()
}

fn text<'a>(payload: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a str> {
    payload
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// What a failure is, for grouping: (kind, fingerprint, human title).
pub fn fingerprint(e: &Event) -> (&'static str, String, String) {
    let p = &e.payload;
    if e.entity_type == EntityType::Exception {
        let ty = text(p, "type")
            .or(e.entity_id.as_deref())
            .unwrap_or("Exception");
        let message = text(p, "message").unwrap_or("");
        let location = e
            .summary
            .as_deref()
            .map(|s| s.trim_start_matches("at ").to_string())
            .unwrap_or_default();
        let norm = normalise_message(message);
        let title = if norm.is_empty() {
            ty.to_string()
        } else {
            format!("{ty}: {norm}")
        };
        return (
            "exception",
            format!("exception|{ty}|{norm}|{location}"),
            if location.is_empty() {
                title
            } else {
                format!("{title} — at {location}")
            },
        );
    }
    if e.entity_type == EntityType::Tool {
        let tool = text(p, "tool_name").unwrap_or(e.title.as_str());
        let error = text(p, "error")
            .or_else(|| {
                p.get("tool_response")
                    .and_then(|r| r.get("error"))
                    .and_then(Value::as_str)
            })
            .or(e.summary.as_deref())
            .unwrap_or("");
        let first_line = error.lines().next().unwrap_or("");
        let class = normalise_message(first_line);
        let title = if class.is_empty() {
            format!("{tool} failed")
        } else {
            format!("{tool}: {class}")
        };
        return ("tool", format!("tool|{}|{tool}|{class}", e.source), title);
    }
    let norm = normalise_message(&e.title);
    (
        "other",
        format!("{}|{}|{norm}", e.source, e.entity_type),
        norm,
    )
}

/// One group of failures with the same fingerprint.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IncidentGroup {
    pub fingerprint: String,
    /// `exception`, `tool` or `other`.
    pub kind: String,
    pub title: String,
    pub source: Source,
    pub count: i64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Runs affected (at most [`RUNS_LISTED`], most recent last); `run_count` is exact.
    pub runs: Vec<String>,
    pub run_count: usize,
    /// The latest failure of the group.
    pub sample: Event,
}

/// The groups answer: newest activity first.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IncidentGroups {
    pub groups: Vec<IncidentGroup>,
    /// Failures read (at most [`FAILURES_READ`]).
    pub failures: usize,
    /// True when older failures in the range were not read: counts are lower bounds.
    pub partial: bool,
}

struct Open {
    kind: &'static str,
    title: String,
    source: Source,
    count: i64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    last_seq: u64,
    runs: Vec<String>,
    all_runs: std::collections::HashSet<String>,
}

/// Failures since `since` grouped by [`fingerprint`].
pub fn incident_groups(
    conn: &Connection,
    since: Timestamp,
    limit: usize,
) -> Result<IncidentGroups, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE (severity = 4 OR status = 6) \
         ORDER BY seq DESC LIMIT ?1"
    ))?;
    let mut rows = stmt.query([FAILURES_READ + 1])?;
    let mut groups: HashMap<String, Open> = HashMap::new();
    let mut failures = 0usize;
    let mut read = 0i64;
    let mut partial = false;
    while let Some(row) = rows.next()? {
        read += 1;
        let e = event_from_row(row)?;
        if read > FAILURES_READ {
            // One past the budget: older failures exist; if this one is in range, some were
            // not counted.
            partial = e.ts.millis() >= since.millis();
            break;
        }
        if e.ts.millis() < since.millis() {
            continue;
        }
        failures += 1;
        let (kind, key, title) = fingerprint(&e);
        let g = groups.entry(key).or_insert_with(|| Open {
            kind,
            title,
            source: e.source,
            count: 0,
            first_seen: e.ts,
            last_seen: e.ts,
            last_seq: e.seq,
            runs: Vec::new(),
            all_runs: Default::default(),
        });
        g.count += 1;
        g.first_seen = g.first_seen.min(e.ts);
        g.last_seen = g.last_seen.max(e.ts);
        if let Some(r) = &e.run_id
            && g.all_runs.insert(r.clone())
            && g.runs.len() < RUNS_LISTED
        {
            g.runs.push(r.clone());
        }
    }
    drop(rows);
    drop(stmt);
    let mut list: Vec<(String, Open)> = groups.into_iter().collect();
    list.sort_by(|a, b| {
        b.1.last_seen
            .cmp(&a.1.last_seen)
            .then(b.1.last_seq.cmp(&a.1.last_seq))
    });
    list.truncate(limit.clamp(1, MAX_GROUPS));
    let mut out = Vec::with_capacity(list.len());
    for (fingerprint, g) in list {
        let Some(sample) = get_event(&tx, g.last_seq)? else {
            continue;
        };
        out.push(IncidentGroup {
            fingerprint,
            kind: g.kind.to_string(),
            title: g.title,
            source: g.source,
            count: g.count,
            first_seen: g.first_seen,
            last_seen: g.last_seen,
            run_count: g.all_runs.len(),
            runs: g.runs,
            sample,
        });
    }
    Ok(IncidentGroups {
        groups: out,
        failures,
        partial,
    })
}
