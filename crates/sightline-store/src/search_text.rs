//! Turns what a user types into search (`q`) into an FTS5 `MATCH` expression that SQLite always
//! accepts, plus the words the index cannot answer for, which the search checks in memory.
//!
//! Why it exists: `q` used to be spliced into FTS5 syntax word by word, so `main.rs`, `foo-bar`,
//! `don't` or `127.0.0.1` (punctuation inside a word makes FTS5 see a phrase, which an index
//! built with `detail=none` refuses) and operators or stray quotes answered 500. Here every
//! user word becomes one FTS5 string (`"…"`, quotes doubled) followed by `*`: FTS5 tokenises
//! inside the string itself, so no user text is ever read as an operator (`AND`, `NEAR`, `*`,
//! `(`, `-`, `^`, `:`), and a word its tokenizer splits is a phrase whose last token is a
//! prefix. The index is `detail=full` (see `fulltext.rs` for the measured cost), so phrases are
//! valid for any text in any script, including scripts whose marks the tokenizer treats as
//! separators (a Hindi word is several tokens): the tokenizer is never second-guessed here.
//!
//! Words follow the in-memory rule of live streams (`Filter::query_terms`): split on
//! whitespace, all required. What the index holds decides for indexed events; a word the index
//! cannot see (only punctuation or symbols, such as `*`, `(` or an emoji: the tokenizer indexes
//! none of them), a word past [`MAX_INDEXED_WORDS`], or a word longer than
//! [`MAX_INDEXED_WORD_BYTES`] (the index narrows with its beginning) is also checked in memory
//! as a case-insensitive substring of the event's searchable text, like live streams do.
//!
//! This module must never build SQL (only the bound `MATCH` argument), never fail, and never
//! let a user's character reach FTS5 outside a quoted string.

use std::cell::RefCell;
use std::collections::HashSet;

use rusqlite::Connection;

/// Most words the `MATCH` expression holds; more only slow the index down (each is a prefix
/// scan) while the first ones already narrow the candidates. The rest are checked in memory.
pub const MAX_INDEXED_WORDS: usize = 16;
/// Longest word (in bytes) the `MATCH` expression holds whole; a longer one is cut (at a
/// character boundary) and checked whole in memory.
pub const MAX_INDEXED_WORD_BYTES: usize = 256;

/// The search text of one request, ready for the index and for the in-memory check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextQuery {
    /// The FTS5 `MATCH` argument; `None` when no word is indexable (the in-memory check then
    /// decides alone, over a bounded scan).
    pub fts: Option<String>,
    /// Lower-cased words every result must contain as a substring of its searchable text,
    /// because the index could not answer for them exactly. Longest first (most selective).
    pub in_memory: Vec<String>,
}

impl TextQuery {
    /// Builds the query for `q` (any text: empty, huge, any script, any punctuation).
    pub fn new(q: &str) -> TextQuery {
        // Case-insensitive duplicates add nothing (both the index and memory fold case).
        let mut seen = HashSet::new();
        let words: Vec<&str> = q
            .split_whitespace()
            .filter(|w| seen.insert(w.to_lowercase()))
            .collect();
        // The longest words narrow the most: they go to the index first.
        let mut by_length = words;
        by_length.sort_by_key(|w| std::cmp::Reverse(w.len()));
        let mut phrases = Vec::new();
        let mut in_memory: Vec<String> = Vec::new();
        for w in by_length {
            let cut = cut_at_char(w, MAX_INDEXED_WORD_BYTES);
            let indexable = phrases.len() < MAX_INDEXED_WORDS && has_index_tokens(cut);
            if indexable {
                phrases.push(fts_string(cut));
            }
            if !indexable || cut.len() < w.len() {
                in_memory.push(w.to_lowercase());
            }
        }
        in_memory.sort_by_key(|w| std::cmp::Reverse(w.len()));
        TextQuery {
            fts: (!phrases.is_empty()).then(|| phrases.join(" ")),
            in_memory,
        }
    }

    /// Does an event's searchable text contain every word the index could not answer for?
    /// `lowered` is the text already lower-cased (`to_lowercase`).
    pub fn matches_in_memory(&self, lowered: &str) -> bool {
        self.in_memory.iter().all(|w| lowered.contains(w.as_str()))
    }
}

/// One FTS5 string for a word, prefix-matched: `"…"*`, inner quotes doubled. NUL would end
/// the expression early in FTS5 (an unterminated string): it separates tokens like a space.
fn fts_string(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 4);
    out.push('"');
    for c in word.chars() {
        match c {
            '"' => out.push_str("\"\""),
            '\0' => out.push(' '),
            c => out.push(c),
        }
    }
    out.push_str("\"*");
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn cut_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The same tokenizer as the index, in a private in-memory database: asking it is the only
/// exact way to know whether a word has tokens (its character classes are SQLite's Unicode
/// tables, which neither `char` methods nor this crate reproduce). One per thread, made once.
const TOKENIZER_SCHEMA: &str = "
CREATE VIRTUAL TABLE words USING fts5(body, detail=full);
CREATE VIRTUAL TABLE word_tokens USING fts5vocab(words, 'instance');";

thread_local! {
    static TOKENIZER: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// True when the index's tokenizer finds at least one token in `word`. An FTS5 string without
/// tokens matches nothing on its own, so such a word must be left to the in-memory check.
fn has_index_tokens(word: &str) -> bool {
    // Letters and digits of ASCII are always tokens; most words end here without SQLite.
    if word.bytes().any(|b| b.is_ascii_alphanumeric()) {
        return true;
    }
    if word.is_ascii() {
        return false;
    }
    let word = word.replace('\0', " ");
    TOKENIZER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Connection::open_in_memory()
                .and_then(|c| c.execute_batch(TOKENIZER_SCHEMA).map(|()| c))
                .ok();
        }
        match slot.as_ref().map(|c| count_tokens(c, &word)) {
            Some(Ok(n)) => n > 0,
            // Cannot ask (out of memory): the in-memory check is always correct, if slower.
            _ => false,
        }
    })
}

fn count_tokens(conn: &Connection, word: &str) -> rusqlite::Result<i64> {
    let tx = conn.unchecked_transaction()?;
    tx.prepare_cached("INSERT INTO words (rowid, body) VALUES (1, ?1)")?
        .execute([word])?;
    let n = tx
        .prepare_cached("SELECT COUNT(*) FROM word_tokens")?
        .query_row([], |r| r.get(0))?;
    // Rolled back on drop: the table stays empty.
    drop(tx);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_one_quoted_prefix_string() {
        let q = TextQuery::new(r#"main.rs a"b NEAR AND"#);
        assert_eq!(
            q.fts.as_deref(),
            Some(r#""main.rs"* "NEAR"* "a""b"* "AND"*"#)
        );
        assert!(q.in_memory.is_empty());
    }

    #[test]
    fn words_without_tokens_are_checked_in_memory() {
        let q = TextQuery::new("* ( 🔑 : ^ -");
        assert_eq!(q.fts, None);
        assert_eq!(q.in_memory.len(), 6);
        assert!(q.matches_in_memory("a * ( 🔑 : ^ - b"));
        assert!(!q.matches_in_memory("a * ( : ^ - b"));
        // `-x` has a token: the index answers.
        let q = TextQuery::new("-x");
        assert_eq!(q.fts.as_deref(), Some(r#""-x"*"#));
        // Marks alone are separators to the tokenizer, though Rust calls them alphabetic.
        assert_eq!(TextQuery::new("\u{93e}").fts, None);
        assert_eq!(TextQuery::new("हिन्दी").fts.as_deref(), Some("\"हिन्दी\"*"));
    }

    #[test]
    fn long_and_many_words_are_bounded() {
        let long = "x".repeat(1000) + "é";
        let q = TextQuery::new(&long);
        assert_eq!(
            q.fts.as_deref().map(str::len),
            Some(MAX_INDEXED_WORD_BYTES + 3)
        );
        assert_eq!(q.in_memory, vec![long.to_lowercase()]);
        let many: String = (0..500).map(|i| format!("w{i} ")).collect();
        let q = TextQuery::new(&many);
        let phrases = q.fts.unwrap().matches("\"*").count();
        assert_eq!(phrases, MAX_INDEXED_WORDS);
        assert_eq!(q.in_memory.len(), 500 - MAX_INDEXED_WORDS);
        assert_eq!(TextQuery::new("").fts, None);
        assert_eq!(TextQuery::new("  \t\n ").in_memory.len(), 0);
    }

    #[test]
    fn nul_never_ends_the_string() {
        let q = TextQuery::new("a\0b");
        assert_eq!(q.fts.as_deref(), Some("\"a b\"*"));
    }
}
