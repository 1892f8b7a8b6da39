//! Fuzz target: the search-query builder (`sightline_store::search_text::TextQuery`) on any
//! text. It must never panic, every `MATCH` expression it builds must be accepted by SQLite's
//! FTS5 against a table made like the store's full-text index, and a document made of the
//! query's own words must be found by it (what users type finds what it says).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rusqlite::Connection;
use sightline_store::search_text::TextQuery;

thread_local! {
    static DB: Connection = {
        let c = Connection::open_in_memory().expect("in-memory database");
        c.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(body, detail=full);",
        )
        .expect("fts5 table");
        c
    };
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let query = TextQuery::new(q);
    let Some(fts) = query.fts.as_deref() else {
        return;
    };
    DB.with(|c| {
        c.execute("DELETE FROM t", []).unwrap();
        c.execute("INSERT INTO t(body) VALUES (?1)", [q]).unwrap();
        let found: i64 = c
            .query_row("SELECT count(*) FROM t WHERE t MATCH ?1", [fts], |r| r.get(0))
            .unwrap_or_else(|e| panic!("FTS5 refused {fts:?} (from {q:?}): {e}"));
        assert_eq!(found, 1, "the query {fts:?} does not find its own text {q:?}");
    });
});
