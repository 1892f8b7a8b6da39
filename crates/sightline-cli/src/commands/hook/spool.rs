//! The hook's spool: where `sightline hook` keeps payloads while the hub is not taking them, and
//! how later hook runs deliver them.
//!
//! Layout of the spool directory (0700; every file 0600, since payloads hold prompts, commands
//! and tool output as they came):
//!
//! - `claude-hooks.jsonl`: the segment being appended to, one `{id, ts, payload}` line per
//!   payload, written with one `O_APPEND` write so concurrent hooks never interleave;
//! - `claude-hooks.<key>.<offset>.<strikes>.ready`: a sealed segment waiting to be sent from
//!   byte `offset`; `strikes` counts the hub's consecutive 500s on it;
//! - `claude-hooks.<key>.<offset>.<strikes>.<claim>.sending`: a segment one hook run claimed (by
//!   renaming it, which only one run can do); a claim older than a minute belongs to a run that
//!   died and is taken over;
//! - `rejected/`: what the hub refused for good, or lines that cannot be sent, set aside as
//!   NDJSON (`<time>-<pid>-<n>.<reason>.jsonl`) so a person can look at them or post them again;
//!   bounded in files and bytes, oldest dropped.
//!
//! Bounds: the spool holds at most `SIGHTLINE_SPOOL_MAX` bytes (new payloads past it are dropped
//! and counted in `claude-hooks.dropped`); the active segment is sealed at 1 MiB; one hook run
//! sends at most 4 requests of at most 1 MiB each and starts none after 1 s.
//!
//! It must never block the hook for long, never resend a batch the hub refused for good, never
//! let one line, one answer or one file stop the lines and files after it, and never lose a line
//! it has not delivered or set aside. Delivering a line twice is harmless: the hub dedups by id.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{Outcome, post};
use crate::cli::HookArgs;

const ACTIVE: &str = "claude-hooks.jsonl";
const DROPPED: &str = "claude-hooks.dropped";
const PREFIX: &str = "claude-hooks.";
const READY: &str = ".ready";
const SENDING: &str = ".sending";
const REJECTED: &str = "rejected";

/// The active segment is sealed before it grows past this, so every segment can be sent in a
/// few slices and a failure never concerns more than one segment.
const SEGMENT_BYTES: u64 = 1024 * 1024;
/// Most bytes in one request (one longer line goes alone); far below the hub's 8 MiB default.
const SLICE_BYTES: usize = 1024 * 1024;
/// Most requests one hook run makes for the spool.
const FLUSH_REQUESTS: usize = 4;
/// No spool request starts after this much time in one hook run.
const FLUSH_TIME: Duration = Duration::from_secs(1);
/// Most spool bytes one hook run reads (lines it sets aside count too).
const SCAN_BYTES: u64 = 32 * 1024 * 1024;
/// Longest line the hook writes (its stdin cap and the envelope); a longer one is corrupt.
const LINE_MAX: usize = super::MAX_STDIN as usize + 4096;
/// A claim older than this belongs to a hook run that died while sending.
const STALE_CLAIM: Duration = Duration::from_secs(60);
/// 500s on a slice (each halves the next one; a success grows it back a step) before a single
/// line still failing is set aside as what the hub cannot take.
const POISON_STRIKES: u32 = 3;
/// Bounds of `rejected/`; the oldest files go first.
const REJECTED_FILES: usize = 64;
const REJECTED_BYTES: u64 = 8 * 1024 * 1024;
/// What is kept of a line too long to send.
const REJECTED_LINE_HEAD: usize = 64 * 1024;

/// One spool line for a payload (compact JSON, no newline inside), with what is known of the
/// process that produced it (`producer`, compact JSON, for the hub's liveness sweep).
pub fn line(id: &str, ts: i64, payload: &[u8], producer: Option<&str>) -> Vec<u8> {
    let mut line = Vec::with_capacity(payload.len() + 256);
    line.extend_from_slice(format!("{{\"id\":\"{id}\",\"ts\":{ts},").as_bytes());
    if let Some(p) = producer {
        line.extend_from_slice(format!("\"producer\":{p},").as_bytes());
    }
    line.extend_from_slice(b"\"payload\":");
    line.extend_from_slice(payload);
    line.extend_from_slice(b"}\n");
    line
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Unique within this process (names made in the same nanosecond).
fn seq() -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// A sealed segment's name fields. `key` (time and pid, no dots) orders segments oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    key: String,
    offset: u64,
    strikes: u32,
}

impl Segment {
    fn new() -> Segment {
        Segment {
            key: format!("{:020}-{}-{:08}", nanos(), std::process::id(), seq()),
            offset: 0,
            strikes: 0,
        }
    }

    fn ready_name(&self) -> String {
        format!(
            "{PREFIX}{}.{}.{}{READY}",
            self.key, self.offset, self.strikes
        )
    }

    fn sending_name(&self) -> String {
        let claim = format!("{}x{}x{}", std::process::id(), nanos(), seq());
        format!(
            "{PREFIX}{}.{}.{}.{claim}{SENDING}",
            self.key, self.offset, self.strikes
        )
    }

    /// Parses a `.ready` or `.sending` name; `None` for anything else (a legacy claim).
    fn parse(name: &str) -> Option<Segment> {
        let stem = name.strip_prefix(PREFIX)?;
        let fields: Vec<&str> = if let Some(s) = stem.strip_suffix(READY) {
            s.split('.').collect()
        } else {
            let s = stem.strip_suffix(SENDING)?;
            let mut f: Vec<&str> = s.split('.').collect();
            f.pop()?;
            f
        };
        match fields[..] {
            // Our keys always hold a '-': a name of an older version never parses as offsets.
            [key, offset, strikes] if key.contains('-') => Some(Segment {
                key: key.to_string(),
                offset: offset.parse().ok()?,
                strikes: strikes.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// What is left of a segment after a hook run worked on it.
enum Next {
    /// Everything delivered or set aside: remove it.
    Done,
    /// More to send next time (this run's budget is spent).
    Keep,
    /// The hub is not taking more now: stop the whole flush.
    Stop,
}

/// This run's allowance for the spool.
struct Budget<'a> {
    agent: &'a ureq::Agent,
    args: &'a HookArgs,
    start: Instant,
    requests: usize,
    scanned: u64,
}

impl Budget<'_> {
    fn spent(&self) -> bool {
        self.requests >= FLUSH_REQUESTS
            || self.start.elapsed() >= FLUSH_TIME
            || self.scanned >= SCAN_BYTES
    }
}

/// One line read with a bound on what is kept in memory.
enum ReadLine {
    Eof,
    /// The line with its newline (none at the end of the file).
    Line(Vec<u8>),
    /// Longer than `LINE_MAX`: its first bytes, and its length on disk.
    TooLong {
        head: Vec<u8>,
        len: u64,
    },
}

fn read_line(r: &mut impl BufRead) -> std::io::Result<ReadLine> {
    // `read_until` (std's, which finds the newline fast) through `take`, so memory stays bounded.
    let mut buf = Vec::new();
    let n = r
        .by_ref()
        .take(LINE_MAX as u64 + 1)
        .read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(ReadLine::Eof);
    }
    if n <= LINE_MAX || buf.last() == Some(&b'\n') {
        return Ok(ReadLine::Line(buf));
    }
    // Too long: pass over the rest of it, keeping only its head.
    let mut len = n as u64;
    buf.truncate(REJECTED_LINE_HEAD);
    let mut rest = Vec::new();
    loop {
        rest.clear();
        let n = r.by_ref().take(1024 * 1024).read_until(b'\n', &mut rest)?;
        len += n as u64;
        if n == 0 || rest.last() == Some(&b'\n') {
            break;
        }
    }
    Ok(ReadLine::TooLong { head: buf, len })
}

/// A line the hub can take: a JSON object with a `payload`.
fn sendable(line: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(line)
        .ok()
        .is_some_and(|v| v.get("payload").is_some())
}

/// The 1-based line numbers the hub's spool reply says it refused.
fn refused_lines(reply: &str) -> Vec<usize> {
    serde_json::from_str::<serde_json::Value>(reply)
        .ok()
        .and_then(|v| {
            v.get("refused").and_then(|r| r.as_array()).map(|a| {
                a.iter()
                    .filter_map(|e| e.get("line").and_then(|l| l.as_u64()))
                    .map(|l| l as usize)
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Lines to set aside, grouped by reason, written once their slice is settled.
#[derive(Default)]
struct Aside(BTreeMap<String, Vec<u8>>);

impl Aside {
    fn add(&mut self, reason: &str, line: &[u8]) {
        let buf = self.0.entry(reason.to_string()).or_default();
        buf.extend_from_slice(line.trim_ascii_end());
        buf.push(b'\n');
    }
}

/// One request's worth of lines, read from a segment.
struct Slice {
    body: Vec<u8>,
    /// Where each line starts in `body`.
    starts: Vec<usize>,
    /// The offset just past the last line taken (or set aside).
    end: u64,
    aside: Aside,
}

impl Slice {
    fn line(&self, i: usize) -> Option<&[u8]> {
        let start = *self.starts.get(i)?;
        let end = self.starts.get(i + 1).copied().unwrap_or(self.body.len());
        Some(&self.body[start..end])
    }
}

pub struct Spool {
    dir: PathBuf,
    max: u64,
}

impl Spool {
    pub fn new(dir: PathBuf, max: u64) -> Spool {
        Spool { dir, max }
    }

    fn ensure_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // A directory an older version created 0755.
        if std::fs::metadata(dir)?.mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    /// Bytes waiting in the spool (active, sealed and claimed segments).
    fn waiting_bytes(&self) -> u64 {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name == ACTIVE || name.ends_with(READY) || name.ends_with(SENDING)
            })
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Appends one line (from [`line`]); past the bound, drops it and counts it.
    pub fn append(&self, line: &[u8]) -> std::io::Result<()> {
        self.ensure_dir(&self.dir)?;
        if self.waiting_bytes() + line.len() as u64 > self.max {
            // Bounded: past the cap new events are dropped (and counted), never the agent slowed.
            return self.count_dropped();
        }
        let active = self.dir.join(ACTIVE);
        if let Ok(m) = std::fs::metadata(&active)
            && m.len() > 0
            && m.len() + line.len() as u64 > SEGMENT_BYTES
        {
            self.seal();
        }
        for _ in 0..3 {
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&active)?;
            let written = f.metadata()?;
            if written.mode() & 0o077 != 0 {
                // A segment an older version created 0644.
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
            // One write of one line with O_APPEND: concurrent hook processes do not interleave.
            f.write_all(line)?;
            match std::fs::metadata(&active) {
                Ok(now) if now.ino() == written.ino() && now.dev() == written.dev() => {
                    return Ok(());
                }
                // Sealed between our open and our write: the segment we wrote to may already be
                // sent and gone. Write the line again to the new one; the hub dedups by id.
                _ => continue,
            }
        }
        Ok(())
    }

    fn count_dropped(&self) -> std::io::Result<()> {
        let path = self.dir.join(DROPPED);
        let count: u64 = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        writeln!(f, "{}", count + 1)
    }

    /// Seals the active segment (if it holds anything) so it can be sent.
    fn seal(&self) {
        let active = self.dir.join(ACTIVE);
        if std::fs::metadata(&active).is_ok_and(|m| m.len() > 0) {
            let sealed = self.dir.join(Segment::new().ready_name());
            // Another run sealing at the same moment wins: then there is nothing to do.
            if std::fs::rename(&active, &sealed).is_ok() {
                let _ = std::fs::set_permissions(&sealed, std::fs::Permissions::from_mode(0o600));
            }
        }
    }

    /// Keeps `bytes` (NDJSON lines) in `rejected/` under `reason`, within its bounds.
    pub fn set_aside(&self, reason: &str, bytes: &[u8]) {
        let dir = self.dir.join(REJECTED);
        if self.ensure_dir(&dir).is_err() {
            return;
        }
        let name = format!(
            "{:020}-{}-{:08}.{reason}.jsonl",
            nanos(),
            std::process::id(),
            seq()
        );
        let keep = &bytes[..bytes.len().min(REJECTED_BYTES as usize)];
        if let Ok(mut f) = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join(name))
        {
            let _ = f.write_all(keep);
        }
        prune(&dir);
    }

    fn write_aside(&self, aside: Aside) {
        for (reason, bytes) in aside.0 {
            self.set_aside(&reason, &bytes);
        }
    }

    /// Delivers what waits in the spool, oldest first, within this run's budget.
    pub fn flush(&self, agent: &ureq::Agent, args: &HookArgs) {
        if !self.dir.is_dir() {
            return;
        }
        let _ = self.ensure_dir(&self.dir);
        self.seal();
        let mut budget = Budget {
            agent,
            args,
            start: Instant::now(),
            requests: 0,
            scanned: 0,
        };
        for (path, seg) in self.candidates() {
            if budget.spent() {
                break;
            }
            // Claim it: of two runs renaming the same file, one fails.
            let claimed = self.dir.join(seg.sending_name());
            if std::fs::rename(&path, &claimed).is_err() {
                continue;
            }
            // Renaming keeps the old mtime; the claim's age starts now.
            if let Ok(f) = OpenOptions::new().write(true).open(&claimed) {
                let _ = f.set_modified(SystemTime::now());
                let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
            }
            let mut seg = seg;
            let next = self
                .send_segment(&claimed, &mut seg, &mut budget)
                .unwrap_or(Next::Stop);
            match next {
                Next::Done => {
                    let _ = std::fs::remove_file(&claimed);
                }
                Next::Keep | Next::Stop => {
                    let _ = std::fs::rename(&claimed, self.dir.join(seg.ready_name()));
                }
            }
            if matches!(next, Next::Stop) {
                break;
            }
        }
    }

    /// Sealed segments and abandoned claims, oldest first.
    fn candidates(&self) -> Vec<(PathBuf, Segment)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return vec![];
        };
        let stale = |e: &std::fs::DirEntry| {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE_CLAIM)
        };
        let mut out = vec![];
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if name.ends_with(READY) {
                if let Some(seg) = Segment::parse(&name) {
                    out.push((path, seg));
                }
            } else if name.ends_with(SENDING) && stale(&entry) {
                match Segment::parse(&name) {
                    Some(seg) => out.push((path, seg)),
                    // A claim left by an older version: its whole file, from the start.
                    None => out.push((path, Segment::new())),
                }
            }
        }
        out.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        out
    }

    /// Sends `path` from `seg.offset` in slices until it is done or the budget is spent,
    /// keeping `seg` up to date so that whatever happens, the next run starts where this stopped.
    fn send_segment(
        &self,
        path: &Path,
        seg: &mut Segment,
        budget: &mut Budget<'_>,
    ) -> std::io::Result<Next> {
        let mut reader = BufReader::with_capacity(64 * 1024, File::open(path)?);
        loop {
            if budget.spent() {
                return Ok(Next::Keep);
            }
            // After repeated 500s, smaller slices close in on the line the hub fails on.
            let limit = (SLICE_BYTES >> seg.strikes.min(20)).max(1);
            let mut slice = read_slice(&mut reader, seg.offset, limit)?;
            budget.scanned += slice.end - seg.offset;
            if slice.starts.is_empty() {
                // Nothing sendable left: what was read is set aside, the segment is done.
                self.write_aside(slice.aside);
                seg.offset = slice.end;
                return Ok(Next::Done);
            }
            budget.requests += 1;
            let (outcome, reply) = post(
                budget.agent,
                budget.args,
                &slice.body,
                "application/x-ndjson",
                None,
                None,
            );
            let lines = slice.starts.len();
            let mut aside = std::mem::take(&mut slice.aside);
            match outcome {
                Outcome::Delivered => {
                    // Lines the hub could not map are not retried; they are kept for a person.
                    for n in refused_lines(&reply) {
                        if let Some(line) = n.checked_sub(1).and_then(|i| slice.line(i)) {
                            aside.add("refused", line);
                        }
                    }
                }
                Outcome::Refused(status) => aside.add(&format!("http{status}"), &slice.body),
                Outcome::TooLarge if lines > 1 => {
                    // The hub's body limit is lower than ours: halve and try again.
                    seg.strikes += 1;
                    continue;
                }
                Outcome::TooLarge => aside.add("http413", &slice.body),
                Outcome::Failed if lines == 1 && seg.strikes + 1 >= POISON_STRIKES => {
                    aside.add("http500", &slice.body);
                }
                Outcome::Failed if lines > 1 => {
                    // The hub answered this run's own payload, so the batch's content is the
                    // likely cause: narrow down now, within the budget.
                    seg.strikes += 1;
                    continue;
                }
                Outcome::Failed => {
                    // One line: fail it again on later runs before calling it poison.
                    seg.strikes += 1;
                    return Ok(Next::Stop);
                }
                Outcome::Retry => return Ok(Next::Stop),
            }
            self.write_aside(aside);
            seg.offset = slice.end;
            // Slices grow back one step per success (a reset would hit a poison line again at
            // full size and start the narrowing over).
            seg.strikes = seg.strikes.saturating_sub(1);
        }
    }
}

/// Reads lines from `offset` until `limit` bytes (at least one line); lines that cannot be
/// sent go to `aside` and are passed over.
fn read_slice(reader: &mut BufReader<File>, offset: u64, limit: usize) -> std::io::Result<Slice> {
    reader.seek(SeekFrom::Start(offset))?;
    let mut slice = Slice {
        body: Vec::new(),
        starts: Vec::new(),
        end: offset,
        aside: Aside::default(),
    };
    loop {
        match read_line(reader)? {
            ReadLine::Eof => break,
            ReadLine::TooLong { head, len } => {
                slice.aside.add("too-long", &head);
                slice.end += len;
            }
            ReadLine::Line(bytes) => {
                let text = bytes.trim_ascii();
                if text.is_empty() {
                    slice.end += bytes.len() as u64;
                    continue;
                }
                if !sendable(text) {
                    slice.aside.add("invalid", text);
                    slice.end += bytes.len() as u64;
                    continue;
                }
                if !slice.starts.is_empty() && slice.body.len() + text.len() + 1 > limit {
                    // Not taken: the next slice starts with it.
                    break;
                }
                slice.starts.push(slice.body.len());
                slice.body.extend_from_slice(text);
                slice.body.push(b'\n');
                slice.end += bytes.len() as u64;
                if slice.body.len() >= limit {
                    break;
                }
            }
        }
    }
    Ok(slice)
}

/// Drops the oldest files of `rejected/` until it is within its bounds.
fn prune(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(String, PathBuf, u64)> = entries
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| {
                (
                    e.file_name().to_string_lossy().to_string(),
                    e.path(),
                    m.len(),
                )
            })
        })
        .collect();
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    let mut count = files.len();
    for (_, path, len) in files {
        if count <= REJECTED_FILES && total <= REJECTED_BYTES {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            count -= 1;
            total -= len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_legacy_names_do_not_parse() {
        let mut seg = Segment::new();
        seg.offset = 12345;
        seg.strikes = 2;
        assert_eq!(Segment::parse(&seg.ready_name()), Some(seg.clone()));
        assert_eq!(Segment::parse(&seg.sending_name()), Some(seg.clone()));
        // Claims of the previous version: `<pid>.<nanos>[.<n>].sending`.
        assert_eq!(Segment::parse("claude-hooks.123.456.sending"), None);
        assert_eq!(Segment::parse("claude-hooks.123.456.0.sending"), None);
        assert_eq!(Segment::parse(ACTIVE), None);
    }

    #[test]
    fn slices_take_whole_lines_and_pass_over_what_cannot_be_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let good = |i: usize| format!("{{\"id\":\"{i}\",\"ts\":1,\"payload\":{{\"n\":{i}}}}}\n");
        let mut data = String::new();
        data += &good(0);
        data += "{\"id\":\"x\",\"payload\":\n"; // cut short
        data += "\n";
        data += &good(1);
        data += &good(2);
        std::fs::write(&path, &data).unwrap();
        let mut r = BufReader::new(File::open(&path).unwrap());
        let one = good(0).len();
        let s = read_slice(&mut r, 0, one + 1).unwrap();
        // The first line, the bad one passed over, the blank one; the next good one does not fit.
        assert_eq!(s.starts.len(), 1);
        assert_eq!(s.body, good(0).as_bytes());
        assert!(s.aside.0.contains_key("invalid"));
        let s2 = read_slice(&mut r, s.end, 1 << 20).unwrap();
        assert_eq!(s2.starts.len(), 2);
        assert_eq!(s2.line(1), Some(good(2).as_bytes()));
        assert_eq!(s2.end, data.len() as u64);
        let s3 = read_slice(&mut r, s2.end, 1 << 20).unwrap();
        assert!(s3.starts.is_empty() && s3.end == s2.end);
    }

    #[test]
    fn a_line_longer_than_any_payload_is_kept_as_its_head_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let mut data = vec![b'x'; LINE_MAX + 10];
        data.push(b'\n');
        data.extend_from_slice(b"{\"payload\":{}}\n");
        std::fs::write(&path, &data).unwrap();
        let mut r = BufReader::new(File::open(&path).unwrap());
        let s = read_slice(&mut r, 0, 1 << 20).unwrap();
        assert_eq!(s.aside.0["too-long"].len(), REJECTED_LINE_HEAD + 1);
        assert_eq!(s.body, b"{\"payload\":{}}\n");
        assert_eq!(s.end, data.len() as u64);
    }

    #[test]
    fn rejected_is_bounded_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::new(dir.path().to_path_buf(), 1 << 20);
        for i in 0..REJECTED_FILES + 10 {
            spool.set_aside("test", format!("{{\"n\":{i}}}\n").as_bytes());
        }
        let rejected = dir.path().join(REJECTED);
        let mut names: Vec<String> = std::fs::read_dir(&rejected)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        assert_eq!(names.len(), REJECTED_FILES);
        let newest = std::fs::read_to_string(rejected.join(names.last().unwrap())).unwrap();
        assert_eq!(newest, format!("{{\"n\":{}}}\n", REJECTED_FILES + 9));
        // Bytes too: one big item pushes the older ones out.
        spool.set_aside("big", &vec![b'y'; REJECTED_BYTES as usize - 10]);
        let total: u64 = std::fs::read_dir(&rejected)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert!(total <= REJECTED_BYTES, "{total}");
        let mode = std::fs::metadata(&rejected).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
