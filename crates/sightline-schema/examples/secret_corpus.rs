//! Writes the secret corpus (tests/secrets/corpus.rs) as JSON, for test suites in other
//! languages: the Python agent's `tests/test_secrets.py` reads it, so there is one corpus and no
//! second copy of it. `python/run-tests.sh` runs it once per test run:
//! `cargo run -q -p sightline-schema --example secret_corpus -- OUT.json`.
//! The values are built at run time from each format's documented shape; this program must never
//! be used to write such a file anywhere it could be committed (the output goes under a
//! `target/` directory, which git ignores).

#[path = "../tests/secrets/corpus.rs"]
mod corpus;

use std::process::ExitCode;

use serde_json::json;

fn main() -> ExitCode {
    let Some(out) = std::env::args_os().nth(1) else {
        eprintln!(
            "usage: secret_corpus OUT.json (a path under target/: the file holds secret-shaped values)"
        );
        return ExitCode::from(2);
    };
    let secrets: Vec<_> = corpus::corpus()
        .into_iter()
        .map(|s| json!({"label": s.label, "text": s.text, "needles": s.needles, "command": s.command}))
        .collect();
    let scripts: Vec<_> = corpus::SCRIPTS
        .iter()
        .map(|(name, before, after)| json!({"name": name, "before": before, "after": after}))
        .collect();
    let doc = json!({
        "secrets": secrets,
        "sensitive_keys": corpus::SENSITIVE_KEYS,
        "scripts": scripts,
    });
    // Written whole then renamed, so a reader never sees half a corpus.
    let path = std::path::PathBuf::from(&out);
    let mut tmp = path.clone().into_os_string();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    if let Err(e) =
        std::fs::write(&tmp, doc.to_string()).and_then(|()| std::fs::rename(&tmp, &path))
    {
        eprintln!(
            "secret_corpus: could not write {}: {e} (does its directory exist?)",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
