//! The one tailer of agents' JSONL session files — Claude Code transcripts, Codex rollouts,
//! Gemini CLI session logs: it finds the `*.jsonl` files under a directory, reads whole lines of
//! each from its checkpointed byte offset, maps each line with the source's own mapping,
//! commits the events, then moves the checkpoint; and polls until stop. A line that is not
//! JSON, or whose mapping fails or panics, becomes an error event and a health error and reading
//! goes on after it: one bad line never stops a file.
//!
//! This module must never write to the files it reads, and never move a checkpoint past events
//! that were not committed.

use std::collections::HashMap;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sightline_schema::validate::describe_json_error;
use sightline_schema::{Event, Source, Timestamp};

use crate::framework::{AdapterContext, AdapterError};
use crate::util::{contain, line_error_event, redacted};

/// Most bytes read from one file in one pass (a pass ends at the last whole line).
const READ_CHUNK: u64 = 16 * 1024 * 1024;
/// Most bytes of a file's first line read to learn its session when reading starts in the middle
/// (a Codex `session_meta` carries its ~20 KB base instructions).
const FIRST_LINE_MAX: u64 = 1024 * 1024;
/// Most events handed to the ingest path at once (a backfill of a large file is many commits,
/// each small enough to keep the write queue moving).
const EMIT_BATCH: usize = 1000;

/// What one read of a JSONL file gave.
#[derive(Debug, Default)]
pub struct Chunk {
    /// The events of the lines read, and an error event for each line that could not be mapped.
    pub events: Vec<Event>,
    /// The offset after the last whole line read (the next checkpoint).
    pub next: u64,
    /// Why each line that could not be mapped was not (already redacted), for health.
    pub errors: Vec<String>,
}

/// Reads whole JSON lines of `path` from `offset` (at most [`READ_CHUNK`] bytes) and maps each
/// with `map` (given the value and its byte offset). A line that is not JSON, whose mapping
/// fails or panics, becomes an error event of `source` (ids prefixed `id_prefix`) and a message,
/// and reading goes on after it. A file shorter than `offset` was rewritten and is read again
/// from the start (event ids make the re-read harmless).
pub fn read_jsonl(
    path: &Path,
    offset: u64,
    source: Source,
    id_prefix: &str,
    now: Timestamp,
    mut map: impl FnMut(&Value, u64) -> Vec<Result<Event, String>>,
) -> std::io::Result<Chunk> {
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let offset = if len < offset { 0 } else { offset };
    let mut chunk = Chunk {
        next: offset,
        ..Chunk::default()
    };
    if len == offset {
        return Ok(chunk);
    }
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(READ_CHUNK).read_to_end(&mut buf)?;
    let Some(last_nl) = buf.iter().rposition(|b| *b == b'\n') else {
        if buf.len() as u64 >= READ_CHUNK {
            // One line longer than the chunk: skip it rather than stall the file forever.
            let message = format!(
                "{}: the line at byte {offset} is longer than {READ_CHUNK} bytes; skipped",
                path.display()
            );
            chunk.events.extend(line_error_event(
                source, id_prefix, path, offset, "", &message, now,
            ));
            chunk.errors.push(message);
            chunk.next = offset + buf.len() as u64;
        }
        return Ok(chunk);
    };
    let mut at = offset;
    for raw in buf[..last_nl].split(|b| *b == b'\n') {
        let line_start = at;
        at += raw.len() as u64 + 1;
        let line = raw.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let mapped = contain(|| {
            let value = serde_json::from_slice::<Value>(line)
                .map_err(|e| format!("not JSON: {}", describe_json_error(&e)))?;
            Ok(map(&value, line_start))
        });
        let failures: Vec<String> = match mapped {
            Ok(results) => results
                .into_iter()
                .filter_map(|r| match r {
                    Ok(e) => {
                        chunk.events.push(e);
                        None
                    }
                    Err(m) => Some(m),
                })
                .collect(),
            Err(m) => vec![m],
        };
        for failure in failures {
            let text = String::from_utf8_lossy(line);
            chunk.events.extend(line_error_event(
                source, id_prefix, path, line_start, &text, &failure, now,
            ));
            chunk.errors.push(redacted(&format!(
                "{}: the line at byte {line_start}: {failure}",
                path.display()
            )));
        }
    }
    chunk.next = offset + last_nl as u64 + 1;
    Ok(chunk)
}

/// The first line of a file as JSON (at most [`FIRST_LINE_MAX`] bytes), if it is JSON.
pub fn first_json_line(path: &Path) -> Option<Value> {
    let file = std::fs::File::open(path).ok()?;
    let mut reader = std::io::BufReader::new(file.take(FIRST_LINE_MAX));
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).ok()?;
    serde_json::from_slice(line.trim_ascii()).ok()
}

/// Every `*.jsonl` under `dir` (any depth), shallower files first and then by name, so that a
/// session's own file is read before its sub-agents' files below it.
pub fn jsonl_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "jsonl") => {
                    out.push(path)
                }
                _ => {}
            }
        }
    }
    out.sort_by_key(|p| (p.components().count(), p.clone()));
    out
}

/// One pass over `files`: each read from its checkpoint with `read` (given the per-file state,
/// made by `new_state` when the file is first seen), its events committed, then its checkpoint
/// moved. Returns how many events were committed.
pub async fn tail_pass<S>(
    ctx: &AdapterContext,
    files: Vec<PathBuf>,
    states: &mut HashMap<PathBuf, S>,
    new_state: &impl Fn(&Path) -> S,
    read: &mut impl FnMut(&Path, u64, &mut S) -> std::io::Result<Chunk>,
) -> Result<usize, AdapterError> {
    let mut total = 0;
    for path in files {
        let key = path.to_string_lossy().to_string();
        let mut offset = ctx.checkpoint(&key).and_then(|v| v.as_u64()).unwrap_or(0);
        // Most files did not change since the last pass: a stat, not an open.
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == offset) {
            continue;
        }
        let state = states
            .entry(path.clone())
            .or_insert_with(|| new_state(&path));
        loop {
            let Chunk {
                events,
                next,
                errors,
            } = match read(&path, offset, state) {
                Ok(r) => r,
                Err(e) => {
                    ctx.error(format!("{}: {e}", path.display()));
                    break;
                }
            };
            for message in errors {
                ctx.error(message);
            }
            if next == offset {
                break;
            }
            total += events.len();
            for batch in events.chunks(EMIT_BATCH) {
                ctx.emit(batch.to_vec()).await?;
            }
            offset = next;
            ctx.set_checkpoint(&key, json!(offset));
            if ctx.stopping() {
                return Ok(total);
            }
        }
    }
    // Files that went away need no state.
    states.retain(|p, _| p.exists());
    Ok(total)
}

/// The `read` of [`follow`] for a source whose lines map with the file's state alone: each read
/// at its own time, each line given to `map` with its byte offset.
pub fn jsonl_reader<S>(
    source: Source,
    id_prefix: &'static str,
    mut map: impl FnMut(&Value, u64, &mut S, Timestamp) -> Vec<Result<Event, String>>,
) -> impl FnMut(&Path, u64, &mut S) -> std::io::Result<Chunk> {
    move |path, offset, state| {
        let now = Timestamp::now();
        read_jsonl(path, offset, source, id_prefix, now, |v, at| {
            map(v, at, state, now)
        })
    }
}

/// A session-file source's whole life: while `root` does not exist the source is `waiting`;
/// once it does, every `poll` a [`tail_pass`] over `files(root)`, and the source is `running`.
/// Returns when stop is asked, or with the error that ended a commit.
pub async fn follow<S: Send>(
    ctx: &AdapterContext,
    root: &Path,
    poll: Duration,
    files: impl Fn(&Path) -> Vec<PathBuf>,
    new_state: impl Fn(&Path) -> S,
    mut read: impl FnMut(&Path, u64, &mut S) -> std::io::Result<Chunk>,
) -> Result<(), AdapterError> {
    let mut states: HashMap<PathBuf, S> = HashMap::new();
    loop {
        if !root.exists() {
            ctx.set_state("waiting");
        } else {
            tail_pass(ctx, files(root), &mut states, &new_state, &mut read).await?;
            ctx.set_state("running");
        }
        if ctx.sleep(poll).await {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_file_comes_before_its_sub_agents() {
        let dir = tempfile::tempdir().unwrap();
        let chats = dir.path().join("proj/chats");
        std::fs::create_dir_all(chats.join("a-parent")).unwrap();
        for f in ["a-parent/child.jsonl", "z-main.jsonl", "notes.txt"] {
            std::fs::write(chats.join(f), "").unwrap();
        }
        assert_eq!(
            jsonl_files(dir.path()),
            vec![
                chats.join("z-main.jsonl"),
                chats.join("a-parent/child.jsonl")
            ]
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Arbitrary bytes never stop the reader: every whole line is read and mapped or
            /// recorded as an error (one error event per line that is not JSON), and the offset
            /// lands after the last whole line; the bytes after it wait for their newline.
            #[test]
            fn any_bytes_are_read_through(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("s.jsonl");
                std::fs::write(&path, &bytes).unwrap();
                let mut mapped = 0;
                let chunk = read_jsonl(&path, 0, Source::Codex, "test", Timestamp::now(), |_, _| {
                    mapped += 1;
                    vec![]
                })
                .unwrap();
                let expected = bytes.iter().rposition(|b| *b == b'\n').map(|i| i as u64 + 1).unwrap_or(0);
                prop_assert_eq!(chunk.next, expected);
                let lines = bytes[..expected as usize]
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.trim_ascii().is_empty())
                    .count();
                prop_assert_eq!(mapped + chunk.errors.len(), lines);
                prop_assert_eq!(chunk.events.len(), chunk.errors.len());
            }
        }
    }
}
