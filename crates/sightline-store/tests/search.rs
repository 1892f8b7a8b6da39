//! Full-text search against a real store for what users actually type (issue 11 item 2):
//! punctuation inside words, operators, quotes, symbols, any script, emoji, empty and huge text.
//! Each must answer (never an error), find the event that contains it, and, where the index
//! answers with a phrase, not find events that merely hold its pieces apart.

use serde_json::json;
use sightline_schema::{Event, Filter, Timestamp, parse_event};
use sightline_store::query::{self, Order};
use sightline_store::search_text::TextQuery;
use sightline_store::{Store, StoreConfig, fulltext};

fn event(id: &str, text: &str) -> Event {
    // Title and source event are a word no query below contains or prefixes.
    let v = json!({"source": "custom", "source_event": "entry", "entity_type": "log",
        "title": "entry", "event_id": id, "payload": {"text": text}});
    parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
}

fn open(path: &std::path::Path) -> Store {
    Store::open(StoreConfig::new(path), Box::new(|_| {})).unwrap()
}

/// The texts stored; each case names the indexes (0-based) that must match.
const DOCS: &[&str] = &[
    "open src/main.rs now",                 // 0
    "main thing and the rs file",           // 1
    "listening on 127.0.0.1:4517",          // 2
    "127 is a number and 0.5 and 1 too",    // 3
    "call foo-bar here",                    // 4
    "foo and bar",                          // 5
    "I don't know",                         // 6
    "don went to the shop, t",              // 7
    r#"say a"b ok"#,                        // 8
    "the NEAR operator",                    // 9
    "glob * star",                          // 10
    "call f(x) now",                        // 11
    "run ls -x now",                        // 12
    "caret ^ here",                         // 13
    "key: value",                           // 14
    "日本語のテキスト",                     // 15
    "résumé in Привет and हिन्दी and مرحبا", // 16
    "the 🔑 key",                           // 17
    "שלום ελληνικά ภาษาไทย",                // 18
];

async fn search(store: &Store, q: &str) -> Vec<usize> {
    let filter = Filter {
        q: Some(q.to_string()),
        ..Filter::default()
    };
    let page = store
        .read(move |c| query::search(c, &filter, Order::Asc, None, 1000))
        .await
        .unwrap_or_else(|e| panic!("search for {q:?} failed: {e}"));
    page.items.iter().map(|e| e.seq as usize - 1).collect()
}

async fn store_with_docs(dir: &tempfile::TempDir) -> Store {
    let store = open(&dir.path().join("db.sqlite"));
    let events = DOCS
        .iter()
        .enumerate()
        .map(|(i, t)| event(&format!("d{i}"), t))
        .collect();
    store.write(events).await.unwrap();
    store
}

#[tokio::test]
async fn what_users_type_answers_and_finds_what_contains_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_docs(&dir).await;
    // (query, documents it must return exactly)
    let cases: &[(&str, &[usize])] = &[
        ("main.rs", &[0]),
        ("127.0.0.1", &[2]),
        ("foo-bar", &[4]),
        ("don't", &[6]),
        (r#"a"b"#, &[8]),
        ("NEAR", &[9]),
        ("near operator", &[9]),
        ("*", &[10]),
        ("(", &[11]),
        ("f(x)", &[11]),
        // The index answers for words with tokens: edge punctuation is not part of a token.
        ("-x", &[11, 12]),
        ("^", &[13]),
        (":", &[2, 14]),
        ("key:", &[14, 17]),
        ("日本語", &[15]),
        ("résumé", &[16]),
        ("привет", &[16]),
        ("हिन्दी", &[16]),
        ("مرحبا", &[16]),
        ("🔑", &[17]),
        ("🔑 key", &[17]),
        ("שלום", &[18]),
        ("ΕΛΛΗΝΙΚΆ", &[18]),
        ("ภาษาไทย", &[18]),
        ("\"main", &[0, 1]),
        ("NOT", &[]),
        ("OR", &[]),
        ("main OR foo", &[]),
    ];
    for (q, expected) in cases {
        assert_eq!(&search(&store, q).await, expected, "q = {q:?}");
    }
    // `AND` is a word, not an operator: it finds what contains "and".
    assert_eq!(search(&store, "AND").await, vec![1, 3, 5, 16]);
    assert_eq!(search(&store, "foo AND bar").await, vec![5]);
}

#[tokio::test]
async fn empty_huge_and_hostile_text_never_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_docs(&dir).await;
    // Empty text filters nothing.
    assert_eq!(search(&store, "").await.len(), DOCS.len());
    assert_eq!(search(&store, " \t\n").await.len(), DOCS.len());
    // 10 KB of words, of one word, and of punctuation: answered, and nothing holds all of it.
    let words: String = (0..2000).map(|i| format!("w{i} ")).collect();
    assert!(words.len() > 10_000);
    assert_eq!(search(&store, &words).await, Vec::<usize>::new());
    assert_eq!(
        search(&store, &"x".repeat(10_240)).await,
        Vec::<usize>::new()
    );
    assert_eq!(
        search(&store, &"\"(*:^-".repeat(2_000)).await,
        Vec::<usize>::new()
    );
    // 10 KB whose every word is in one document still finds it.
    let repeated = "main.rs ".repeat(1_300);
    assert_eq!(search(&store, &repeated).await, vec![0]);
    for q in [
        "\"",
        "\"\"",
        "\"a b\"",
        "a\0b",
        "NEAR(main rs)",
        "main + rs",
        "{main rs}",
        "body:main",
        "- x",
        "*main*",
        "'\\",
        "\u{feff}",
        "\u{93e}",
    ] {
        search(&store, q).await;
    }
}

#[tokio::test]
async fn punctuated_words_are_phrases_not_scattered_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_docs(&dir).await;
    // Documents 1, 3, 5 and 7 hold every piece of a query, apart: none is returned.
    for (q, apart) in [
        ("main.rs", 1),
        ("127.0.0.1", 3),
        ("foo-bar", 5),
        ("don't", 7),
    ] {
        let found = search(&store, q).await;
        assert!(!found.contains(&apart), "{q} matched {:?}", DOCS[apart]);
        // Each piece on its own does find the scattered document.
        for piece in q.split(|c: char| !c.is_alphanumeric()) {
            if !piece.is_empty() {
                assert!(
                    search(&store, piece).await.contains(&apart),
                    "{piece} of {q}"
                );
            }
        }
    }
}

#[tokio::test]
async fn pages_of_in_memory_words_continue_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("db.sqlite"));
    // 12,000 events, every 5,500th holds the emoji: matches are a scan budget (5,000) apart,
    // so pages end on the budget, empty or short, and still continue to every match.
    assert_eq!(query::SEARCH_SCAN_BUDGET, 5_000);
    let events: Vec<Event> = (0..12_000)
        .map(|i| {
            let text = if i % 5500 == 5499 {
                "found 🔑 here"
            } else {
                "plain"
            };
            event(&format!("p{i}"), text)
        })
        .collect();
    for chunk in events.chunks(2000) {
        store.write(chunk.to_vec()).await.unwrap();
    }
    // The tokenizer has no token in this emoji: only the in-memory check can answer.
    assert_eq!(TextQuery::new("🔑").fts, None);
    let filter = Filter {
        q: Some("🔑".into()),
        ..Filter::default()
    };
    let mut cursor = None;
    let mut found = Vec::new();
    let mut pages = 0;
    loop {
        let f = filter.clone();
        let page = store
            .read(move |c| query::search(c, &f, Order::Desc, cursor, 3))
            .await
            .unwrap();
        pages += 1;
        found.extend(page.items.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "paging never ends");
    }
    assert_eq!(found, vec![11_000, 5_500]);
    assert_eq!(pages, 3, "12,000 rows in pages of at most 5,000 read");
}

/// A database whose index file was made by an older sightline (`detail=none`, fully caught
/// up): the first open rebuilds it, and phrase queries then work.
#[tokio::test]
async fn an_index_of_the_older_format_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite");
    {
        let store = store_with_docs(&dir).await;
        store.close();
    }
    {
        let fts = rusqlite::Connection::open(fulltext::index_path(&db)).unwrap();
        let through: i64 = fts
            .query_row("SELECT indexed_through FROM fts_state", [], |r| r.get(0))
            .unwrap();
        assert_eq!(through as usize, DOCS.len());
        fts.execute_batch(
            "DROP TABLE events_fts;
             CREATE VIRTUAL TABLE events_fts USING fts5(body, content='', contentless_delete=1, detail=none);",
        )
        .unwrap();
        for (i, text) in DOCS.iter().enumerate() {
            fts.execute(
                "INSERT INTO events_fts (rowid, body) VALUES (?1, ?2)",
                rusqlite::params![i as i64 + 1, format!("entry entry text {text}")],
            )
            .unwrap();
        }
    }
    let store = open(&db);
    assert_eq!(search(&store, "main.rs").await, vec![0]);
    assert_eq!(search(&store, "listening").await, vec![2]);
    let fts = rusqlite::Connection::open(fulltext::index_path(&db)).unwrap();
    let sql: String = fts
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'events_fts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sql.contains("detail=full"), "{sql}");
}
