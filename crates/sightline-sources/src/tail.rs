//! Reading appended whole lines from files, from a byte offset: the shared core of the JSONL
//! and log tailers. A file that shrank is read again from the start (it was rotated or
//! rewritten). This module must never write to the files it reads.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Most bytes read per call.
const CHUNK: u64 = 8 * 1024 * 1024;

/// Whole lines after `offset` (without their newline) and the offset after the last one.
pub fn read_lines(path: &Path, offset: u64) -> std::io::Result<(Vec<String>, u64)> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let offset = if len < offset { 0 } else { offset };
    if len == offset {
        return Ok((vec![], offset));
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.take(CHUNK).read_to_end(&mut buf)?;
    let Some(last) = buf.iter().rposition(|b| *b == b'\n') else {
        if buf.len() as u64 >= CHUNK {
            return Ok((vec![], offset + buf.len() as u64));
        }
        return Ok((vec![], offset));
    };
    let lines = buf[..last]
        .split(|b| *b == b'\n')
        .map(|l| {
            String::from_utf8_lossy(l)
                .trim_end_matches('\r')
                .to_string()
        })
        .collect();
    Ok((lines, offset + last as u64 + 1))
}

/// The files named: each file itself, and the files with extension `ext` inside each directory.
pub fn expand(paths: &[PathBuf], ext: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            if let Ok(entries) = std::fs::read_dir(p) {
                let mut files: Vec<PathBuf> = entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|f| {
                        f.is_file() && ext.is_none_or(|x| f.extension().is_some_and(|e| e == x))
                    })
                    .collect();
                files.sort();
                out.extend(files);
            }
        } else if p.exists() {
            out.push(p.clone());
        }
    }
    out
}
