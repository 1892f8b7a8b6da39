//! The audit log: authentication failures, refusals and admin actions, kept in a bounded ring
//! in memory and appended to a file (JSON lines) when configured.
//!
//! It must never record a token's value, and never let one caller's requests make it unbounded.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sightline_schema::Timestamp;

use super::limits::{Limiter, RateLimit};

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEntry {
    pub id: u64,
    pub ts: Timestamp,
    /// `auth_failed`, `forbidden`, `rate_limited`, `host_refused`, `origin_refused`,
    /// `admin_action`.
    pub kind: String,
    pub addr: Option<String>,
    pub token: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub detail: Option<String>,
}

/// Kept in memory (the last [`AUDIT_RING`] entries) and appended to a file when configured.
///
/// Bounded against a flood (a web page can make thousands of refused requests a second): every
/// field is capped, refusals are rate-limited per address (the suppressed count is written
/// on the next entry that passes), the file is rotated at [`ROTATE_AT`] bytes (one old file
/// kept), and only its tail is read at start.
pub struct AuditLog {
    ring: Mutex<VecDeque<AuditEntry>>,
    file: Option<Mutex<AuditFile>>,
    next: std::sync::atomic::AtomicU64,
    per_addr: Limiter,
    suppressed: Mutex<HashMap<String, u64>>,
}

struct AuditFile {
    file: std::fs::File,
    path: PathBuf,
    size: u64,
}

const AUDIT_RING: usize = 2_000;
/// The file is renamed to `<path>.1` (replacing the previous one) past this size.
pub const ROTATE_AT: u64 = 8 * 1024 * 1024;
/// What is read back at start: the tail of the file.
const READ_BACK: u64 = 1024 * 1024;
/// Refusals recorded per address and kind: sustained per second, and in a burst.
const REFUSALS_PER_SECOND: f64 = 5.0;
/// Field caps, in bytes.
const CAP_SHORT: usize = 64;
const CAP_LONG: usize = 256;

fn cap(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn read_tail(path: &Path) -> Vec<AuditEntry> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(READ_BACK);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    let _ = f.take(READ_BACK).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    if start > 0 {
        lines.next(); // most likely cut in the middle
    }
    let mut out: Vec<AuditEntry> = lines
        .filter_map(|l| serde_json::from_str::<AuditEntry>(l).ok())
        .collect();
    if out.len() > AUDIT_RING {
        out.drain(..out.len() - AUDIT_RING);
    }
    out
}

impl AuditLog {
    /// Opens the log; the tail of the file is loaded so queries span restarts.
    pub fn open(path: Option<&Path>) -> Self {
        let mut ring = VecDeque::new();
        let mut file = None;
        if let Some(path) = path {
            ring.extend(read_tail(path));
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => {
                    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                    file = Some(Mutex::new(AuditFile {
                        file: f,
                        path: path.to_path_buf(),
                        size,
                    }))
                }
                Err(e) => tracing::warn!("audit log {}: {e}; keeping it in memory", path.display()),
            }
        }
        let next = ring.back().map_or(1, |e: &AuditEntry| e.id + 1);
        AuditLog {
            ring: Mutex::new(ring),
            file,
            next: std::sync::atomic::AtomicU64::new(next),
            per_addr: Limiter::new(RateLimit {
                per_second: REFUSALS_PER_SECOND,
                burst: REFUSALS_PER_SECOND * 4.0,
            }),
            suppressed: Mutex::new(HashMap::new()),
        }
    }

    pub fn record(&self, mut entry: AuditEntry) {
        // Admin actions are always kept; refusals are what a stranger can cause at will.
        if entry.kind != "admin_action" {
            // Per address and kind: a flood of one refusal must not hide another kind of
            // refusal from the same address.
            let key = format!("{}|{}", entry.addr.as_deref().unwrap_or(""), entry.kind);
            let mut suppressed = self
                .suppressed
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if self.per_addr.take(&key).is_err() {
                if suppressed.len() < 10_000 || suppressed.contains_key(&key) {
                    *suppressed.entry(key).or_insert(0) += 1;
                }
                return;
            }
            if let Some(n) = suppressed.remove(&key) {
                let detail = entry.detail.take().unwrap_or_default();
                entry.detail = Some(format!(
                    "{detail} (+{n} similar entries from this address suppressed)"
                ));
            }
        }
        entry.kind = cap(entry.kind, CAP_SHORT);
        entry.addr = entry.addr.map(|a| cap(a, CAP_SHORT));
        entry.token = entry.token.map(|t| cap(t, CAP_SHORT));
        entry.method = cap(entry.method, 16);
        entry.path = cap(entry.path, CAP_LONG);
        entry.detail = entry.detail.map(|d| cap(d, CAP_LONG));
        entry.id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(file) = &self.file
            && let Ok(line) = serde_json::to_string(&entry)
        {
            let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
            if f.size + line.len() as u64 + 1 > ROTATE_AT {
                let mut old = f.path.clone().into_os_string();
                old.push(".1");
                if std::fs::rename(&f.path, &old).is_ok()
                    && let Ok(fresh) = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&f.path)
                {
                    f.file = fresh;
                    f.size = 0;
                }
            }
            if writeln!(f.file, "{line}").is_ok() {
                f.size += line.len() as u64 + 1;
            }
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == AUDIT_RING {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// Entries after `after` (an id), optionally of one kind, oldest first, at most `limit`.
    pub fn query(&self, after: u64, kind: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<AuditEntry> = ring
            .iter()
            .rev()
            .filter(|e| e.id > after && kind.is_none_or(|k| e.kind == k))
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(addr: &str, path: String) -> AuditEntry {
        AuditEntry {
            id: 0,
            ts: Timestamp::now(),
            kind: "host_refused".into(),
            addr: Some(addr.into()),
            token: None,
            method: "GET".into(),
            path,
            status: 403,
            detail: Some("évil.example".repeat(100)),
        }
    }

    #[test]
    fn a_flood_is_bounded_in_memory_on_disk_and_per_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(Some(&path));
        for i in 0..50_000 {
            log.record(refusal(
                &format!("10.0.{}.{}", i / 250, i % 250),
                "/x".repeat(50_000),
            ));
        }
        let ring = log.query(0, None, 100_000);
        assert!(ring.len() <= AUDIT_RING);
        for e in &ring {
            assert!(
                e.path.len() <= CAP_LONG + 3 && e.detail.as_ref().unwrap().len() <= CAP_LONG + 3
            );
        }
        let on_disk = std::fs::metadata(&path).unwrap().len();
        let old = std::fs::metadata(dir.path().join("audit.jsonl.1"))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(on_disk <= ROTATE_AT && old <= ROTATE_AT, "{on_disk} {old}");
        // One address cannot fill the log: most of its refusals are counted, not written.
        let one = AuditLog::open(None);
        for _ in 0..1_000 {
            one.record(refusal("192.0.2.1", "/y".into()));
        }
        let kept = one.query(0, None, 10_000).len();
        assert!(kept <= 40, "{kept} entries kept from one address");
        // Reopening reads only the tail.
        let again = AuditLog::open(Some(&path));
        assert!(again.query(0, None, 100_000).len() <= AUDIT_RING);
    }

    /// Issue 11, item 8: at start only the file's last [`READ_BACK`] bytes are read, not the
    /// whole file (which a flood may have made large). Written by hand with entries of ~1 KiB:
    /// reading the whole file would fill the ring (2,000 entries, ids up to 3,000); reading the
    /// tail gives about a thousand, all from the end, and a cut first line is skipped.
    #[test]
    fn only_the_tail_of_the_file_is_read_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut text = String::new();
        for id in 1..=3_000u64 {
            let mut e = refusal("192.0.2.7", "/z".into());
            e.id = id;
            e.detail = Some("d".repeat(900));
            text.push_str(&serde_json::to_string(&e).unwrap());
            text.push('\n');
        }
        std::fs::write(&path, &text).unwrap();
        let log = AuditLog::open(Some(&path));
        let back = log.query(0, None, 100_000);
        let per_line = text.len() as u64 / 3_000;
        let fit = (READ_BACK / per_line) as usize;
        assert!(
            !back.is_empty() && back.len() <= fit,
            "{} entries read back; the last {READ_BACK} bytes hold at most {fit}",
            back.len()
        );
        assert!(
            back.first().unwrap().id > 3_000 - fit as u64,
            "first id read back {}",
            back.first().unwrap().id
        );
        assert_eq!(back.last().unwrap().id, 3_000);
        // New entries continue the ids of the file, not from 1.
        log.record(AuditEntry {
            kind: "admin_action".into(),
            ..refusal("192.0.2.7", "/after".into())
        });
        assert_eq!(log.query(3_000, None, 10)[0].id, 3_001);
    }
}
