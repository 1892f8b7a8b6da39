//! The audit log: authentication failures, refusals and admin actions, kept in a bounded ring
//! in memory and appended to a file (JSON lines) when configured.
//!
//! It must never record a token's value, and never let one caller's requests make it unbounded.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sightline_schema::Timestamp;

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
pub struct AuditLog {
    ring: Mutex<VecDeque<AuditEntry>>,
    file: Option<Mutex<std::fs::File>>,
    next: std::sync::atomic::AtomicU64,
}

const AUDIT_RING: usize = 10_000;

impl AuditLog {
    /// Opens the log; earlier entries in the file are loaded so queries span restarts.
    pub fn open(path: Option<&Path>) -> Self {
        let mut ring = VecDeque::new();
        let mut file = None;
        if let Some(path) = path {
            if let Ok(text) = std::fs::read_to_string(path) {
                for line in text.lines() {
                    if let Ok(e) = serde_json::from_str::<AuditEntry>(line) {
                        if ring.len() == AUDIT_RING {
                            ring.pop_front();
                        }
                        ring.push_back(e);
                    }
                }
            }
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(f) => file = Some(Mutex::new(f)),
                Err(e) => tracing::warn!("audit log {}: {e}; keeping it in memory", path.display()),
            }
        }
        let next = ring.back().map_or(1, |e: &AuditEntry| e.id + 1);
        AuditLog {
            ring: Mutex::new(ring),
            file,
            next: std::sync::atomic::AtomicU64::new(next),
        }
    }

    pub fn record(&self, mut entry: AuditEntry) {
        entry.id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(file) = &self.file
            && let Ok(line) = serde_json::to_string(&entry)
        {
            let mut f = file.lock().expect("audit file lock");
            let _ = writeln!(f, "{line}");
        }
        let mut ring = self.ring.lock().expect("audit lock");
        if ring.len() == AUDIT_RING {
            ring.pop_front();
        }
        ring.push_back(entry);
    }

    /// Entries after `after` (an id), optionally of one kind, oldest first, at most `limit`.
    pub fn query(&self, after: u64, kind: Option<&str>, limit: usize) -> Vec<AuditEntry> {
        let ring = self.ring.lock().expect("audit lock");
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
