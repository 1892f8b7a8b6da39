//! Generative tests of full-text search against a real database file: whatever a user types
//! becomes a query SQLite accepts, and a stored word is found by searching for it.
//!
//! One store per test (opening one per case would dominate the run); proptest's runner is
//! driven by hand so that every case shares it.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use sightline_schema::filter::searchable_text;
use sightline_schema::{Event, Filter, Timestamp, parse_event};
use sightline_store::query::{self, Order};
use sightline_store::search_text::TextQuery;
use sightline_store::{Store, StoreConfig, fulltext};

fn event(id: &str, run: &str, text: &str) -> Event {
    let v = json!({"source": "custom", "source_event": "entry", "entity_type": "log",
        "title": "entry", "event_id": id, "run_id": run, "payload": {"text": text}});
    parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
}

/// Characters users type that mean something to FTS5 or SQL, or split words.
const NASTY: &[&str] = &[
    "\"", "'", "*", "(", ")", "-", "+", "^", ":", ".", ",", "/", "\\", "{", "}", "[", "]", "%",
    "_", "AND", "OR", "NOT", "NEAR", "near", "\0", "\u{feff}", "\u{93e}", "🔑", "🧪", "é",
    "e\u{301}", "日本", "हि", "İ", "ẞ", "ǅ", "Ⓐ", "\u{e000}", " ", "\t", "\n", "a", "Z", "7",
];

/// Any text: arbitrary unicode, runs of the characters above, and huge strings.
fn user_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(NASTY), 0..40).prop_map(|v| v.concat()),
        prop::collection::vec(any::<char>(), 0..300).prop_map(|v| v.into_iter().collect()),
        (prop::sample::select(NASTY), 1000..12_000usize).prop_map(|(s, n)| s.repeat(n / s.len())),
        prop::collection::vec(prop::sample::select(NASTY), 1..8)
            .prop_map(|v| v.concat().repeat(400)),
    ]
}

fn store(dir: &tempfile::TempDir) -> Store {
    Store::open(
        StoreConfig::new(dir.path().join("db.sqlite")),
        Box::new(|_| {}),
    )
    .unwrap()
}

#[test]
fn any_text_is_a_query_sqlite_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Indexed documents, so that every MATCH is really evaluated.
    let docs: Vec<Event> = NASTY
        .iter()
        .enumerate()
        .map(|(i, t)| event(&format!("d{i}"), "docs", &format!("{t} main.rs {t}x")))
        .collect();
    rt.block_on(store.write(docs)).unwrap();
    let fts =
        rusqlite::Connection::open(fulltext::index_path(&dir.path().join("db.sqlite"))).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&user_text(), |q| {
            // The expression alone, straight against the index file.
            if let Some(expr) = TextQuery::new(&q).fts {
                fts.query_row(
                    "SELECT COUNT(*) FROM events_fts WHERE events_fts MATCH ?1",
                    [&expr],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| TestCaseError::fail(format!("{expr:?}: {e}")))?;
            }
            // And through search, in both directions.
            for order in [Order::Asc, Order::Desc] {
                let filter = Filter {
                    q: Some(q.clone()),
                    ..Filter::default()
                };
                store
                    .read_blocking(|c| query::search(c, &filter, order, None, 50))
                    .map_err(|e| TestCaseError::fail(format!("{q:?}: {e}")))?;
            }
            Ok(())
        })
        .unwrap();
}

/// Characters the tokenizer does not index though Rust calls some of them alphabetic (vowel
/// signs, combining marks, circled letters) or that are symbols and punctuation.
const TOKENLESS: &[&str] = &[
    "\u{93e}", "\u{94d}", "\u{345}", "\u{301}", "Ⓐ", "ⓩ", "🔑", "*", "(", "-", "'", "\"",
    "\u{fe0f}",
];

/// A word: no whitespace (search splits on it), not empty.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(TOKENLESS), 1..6).prop_map(|v| v.concat()),
        prop::collection::vec(prop::sample::select(NASTY), 1..12).prop_map(|v| v.concat()),
        "[a-z]{1,8}([.:/\\-'\"_][a-z0-9]{1,6}){0,4}",
        "[a-z]{300,400}",
    ]
    .prop_map(|w| w.chars().filter(|c| !c.is_whitespace()).collect::<String>())
    .prop_filter("a word", |w: &String| !w.is_empty())
}

#[test]
fn a_stored_word_is_found_by_searching_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Other documents, some sharing pieces with the words, so the index is never trivial.
    let noise: Vec<Event> = (0..200)
        .map(|i| {
            event(
                &format!("n{i}"),
                "noise",
                &format!("main rs a.b {i} é 日本 x"),
            )
        })
        .collect();
    rt.block_on(store.write(noise)).unwrap();
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::cell::Cell::new(0);
    runner
        .run(
            &(word(), "[a-z ]{0,20}", "[a-z ]{0,20}"),
            |(w, before, after)| {
                case.set(case.get() + 1);
                let run = format!("case-{}", case.get());
                let text = format!("{before} {w} {after}");
                let acks = rt
                    .block_on(store.write(vec![event(&run, &run, &text)]))
                    .unwrap();
                let seq = acks[0].seq;
                // Redaction may rewrite what was stored (a word that looks like a credential):
                // the property is about words the stored event really contains.
                let stored = store
                    .read_blocking(move |c| query::get_event(c, seq))
                    .unwrap()
                    .unwrap();
                prop_assume!(searchable_text(&stored).contains(&w));
                let filter = Filter {
                    q: Some(w.clone()),
                    runs: vec![run],
                    ..Filter::default()
                };
                let page = store
                    .read_blocking(|c| query::search(c, &filter, Order::Desc, None, 10))
                    .map_err(|e| TestCaseError::fail(format!("{w:?}: {e}")))?;
                prop_assert_eq!(
                    page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
                    vec![seq],
                    "{:?} in {:?}",
                    w,
                    text
                );
                Ok(())
            },
        )
        .unwrap();
}
