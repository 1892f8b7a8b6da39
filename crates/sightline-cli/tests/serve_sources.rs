//! `serve --source`: adapters are selected by name, an unknown name is exit 2, and an adapter
//! that cannot start is exit 3.

use std::process::Command;

fn serve(dir: &std::path::Path, sources: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .args(["serve", "--port", "0", "--source", sources])
        .arg("--db")
        .arg(dir.join("db.sqlite"))
        .env("XDG_DATA_HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env_remove("SIGHTLINE_LOG_FILES")
        .env_remove("SIGHTLINE_SOURCES")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn an_adapter_that_cannot_start_is_exit_3_and_an_unknown_source_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = serve(dir.path(), "claude-transcripts,logs");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("SIGHTLINE_LOG_FILES"), "{err}");
    let (code, err) = serve(dir.path(), "nonsense");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("claude-transcripts"),
        "lists the known sources: {err}"
    );
}
