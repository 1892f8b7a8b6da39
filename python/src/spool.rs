//! The agent's spool on disk: events that could not reach the hub before the process exited
//! (`python-RUN.ndjson`), their delivery by a later process (claimed one file at a time as
//! `python-RUN.ndjson.sending-PID`, streamed in batches by the sender thread, removed once
//! delivered), and `rejected/`, where events the hub refused for good are set aside.
//!
//! Everything here runs on the sender thread or at exit, never on a traced call. It must never
//! make a file or directory that another user can read (files 0600, directories 0700, whatever
//! the umask), never read a file without a cap, and never let one bad file or line stop the
//! files after it: an oversized spool file is set aside and the others still go.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The spool's cap: all `python-*` files together (being delivered or waiting), and so any
/// one of them. What a process cannot spool within it at exit is dropped and reported. A
/// file over it was not written by this agent's rules (or by an older agent) and is set aside
/// rather than read: delivering it would hold the sender for minutes.
pub const SPOOL_MAX_BYTES: u64 = 64 << 20;
/// One spooled line over this is dropped (counted): the hub's default body limit is 8 MiB, so
/// no single event larger than that can ever be accepted.
pub const MAX_LINE_BYTES: usize = 8 << 20;
/// `rejected/` keeps at most this many files and bytes; the oldest go first. Large enough for
/// an oversized spool file (twice the spool's cap) and many small refusals.
pub const REJECTED_MAX_FILES: usize = 32;
pub const REJECTED_MAX_BYTES: u64 = 128 << 20;
/// A claimed file whose holder has not touched it for this long is adopted even though a
/// process with its pid is alive. Holders touch the file at every delivery attempt (at least
/// every 30 s while they hold it), so only a hung holder, or an unrelated process that reused
/// the pid, leaves it this old.
pub const STALE_CLAIM: Duration = Duration::from_secs(10 * 60);
/// At most this many spool files are looked at per process start (bounds the listing).
const MAX_CANDIDATES: usize = 10_000;

/// Makes `dir` (and missing parents) with mode 0700, whatever the umask. An existing `dir`
/// that this user owns is tightened to 0700 too, unless it is sticky (a shared directory such
/// as /tmp, which must keep its mode: the files in it are private anyway).
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let existed = dir.is_dir();
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let meta = fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let sticky = meta.mode() & 0o1000 != 0;
    if (!existed || (meta.uid() == me && !sticky)) && meta.mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens `path` for appending, created 0600; an existing file is set to 0600 as well (the
/// umask only removes bits from the creation mode, and an older agent wrote 0644).
fn private_append(path: &Path) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// Is a file name one of the spool's (waiting or claimed)?
fn spool_name(name: &str) -> bool {
    name.starts_with("python-") && (name.ends_with(".ndjson") || name.contains(".ndjson.sending-"))
}

/// Bytes held by the spool's files (waiting and claimed), not counting `rejected/`.
fn spool_bytes(dir: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .filter(|e| spool_name(&e.file_name().to_string_lossy()))
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// What `write_exit_spool` did.
#[derive(Debug, Default, PartialEq)]
pub struct Spooled {
    pub path: Option<PathBuf>,
    pub written: usize,
    /// Events that did not fit within `SPOOL_MAX_BYTES` (or could not be written).
    pub lost: usize,
}

/// Writes the events left at exit to `dir/python-RUN.ndjson` (0600, in a 0700 directory),
/// keeping the spool within `SPOOL_MAX_BYTES`: lifecycle, exception and statistics events
/// first, then the newest detailed calls that still fit, all in their original order.
pub fn write_exit_spool(
    dir: &Path,
    run_id: &str,
    events: &[(String, bool)],
) -> std::io::Result<Spooled> {
    private_dir(dir)?;
    let mut budget = SPOOL_MAX_BYTES.saturating_sub(spool_bytes(dir));
    let mut keep = vec![false; events.len()];
    for (i, (line, droppable)) in events.iter().enumerate() {
        let n = line.len() as u64 + 1;
        if !droppable && n <= budget {
            keep[i] = true;
            budget -= n;
        }
    }
    for (i, (line, droppable)) in events.iter().enumerate().rev() {
        let n = line.len() as u64 + 1;
        if *droppable && n <= budget {
            keep[i] = true;
            budget -= n;
        }
    }
    let written = keep.iter().filter(|k| **k).count();
    let mut out = Spooled {
        path: None,
        written,
        lost: events.len() - written,
    };
    if written == 0 {
        return Ok(out);
    }
    // A run id is the agent's own (`py-…`) or the user's SIGHTLINE_RUN_ID: keep it a name.
    let safe: String = run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect();
    let path = dir.join(format!("python-{safe}.ndjson"));
    let mut buf = String::new();
    for ((line, _), k) in events.iter().zip(&keep) {
        if *k {
            buf.push_str(line);
            buf.push('\n');
        }
    }
    private_append(&path)?.write_all(buf.as_bytes())?;
    out.path = Some(path);
    Ok(out)
}

/// Sets events aside in `dir/rejected/` (one new file per call), then drops the oldest files
/// there beyond `REJECTED_MAX_FILES` / `REJECTED_MAX_BYTES`. Returns the file written.
pub fn set_aside(dir: &Path, kind: &str, lines: &[String]) -> std::io::Result<PathBuf> {
    let rej = dir.join("rejected");
    private_dir(dir)?;
    private_dir(&rej)?;
    let path = rej.join(format!(
        "python-{}-{}-{kind}.ndjson",
        now_ms(),
        std::process::id()
    ));
    let mut buf = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        buf.push_str(l);
        buf.push('\n');
    }
    private_append(&path)?.write_all(buf.as_bytes())?;
    bound_rejected(&rej);
    Ok(path)
}

/// Moves a whole spool file into `rejected/` (a rename: no copy of a file that is already too
/// big), then bounds the directory.
fn set_aside_file(dir: &Path, file: &Path, kind: &str) -> std::io::Result<PathBuf> {
    let rej = dir.join("rejected");
    private_dir(&rej)?;
    let path = rej.join(format!(
        "python-{}-{}-{kind}.ndjson",
        now_ms(),
        std::process::id()
    ));
    fs::rename(file, &path)?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
    bound_rejected(&rej);
    Ok(path)
}

/// Drops the oldest files of `rejected/` until both bounds hold.
fn bound_rejected(rej: &Path) {
    let Ok(rd) = fs::read_dir(rej) else { return };
    let mut files: Vec<(SystemTime, String, u64)> = rd
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file().then(|| {
                (
                    m.modified().unwrap_or(UNIX_EPOCH),
                    e.file_name().to_string_lossy().into_owned(),
                    m.len(),
                )
            })
        })
        .collect();
    files.sort();
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    let mut count = files.len();
    for (_, name, len) in files {
        if count <= REJECTED_MAX_FILES && total <= REJECTED_MAX_BYTES {
            break;
        }
        if fs::remove_file(rej.join(&name)).is_ok() {
            count -= 1;
            total -= len;
        }
    }
}

/// Is the process that claimed a file (`.sending-PID`, last touched at `mtime`) gone? Dead
/// (`kill(pid, 0)` says no such process), this very process under a pid it reused (a claim
/// this process did not make), a live process that started after the claim was last touched
/// (the pid was reused), or a claim untouched for `STALE_CLAIM`.
pub fn claim_abandoned(pid: i32, mtime: SystemTime, now: SystemTime) -> bool {
    if pid <= 0 {
        return true;
    }
    if pid as u32 == std::process::id() {
        return true; // our own claims are in memory and never looked up here
    }
    if now.duration_since(mtime).unwrap_or_default() > STALE_CLAIM {
        return true;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let alive = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !alive {
        return true;
    }
    // Start time from /proc (Linux); elsewhere the age rule above is the only guard.
    match process_start(pid) {
        Some(started) => started > mtime + Duration::from_secs(2),
        None => false,
    }
}

/// When the process `pid` started (`/proc/PID/stat` field 22, in clock ticks since boot, plus
/// the boot time from `/proc/stat`).
fn process_start(pid: i32) -> Option<SystemTime> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(UNIX_EPOCH + Duration::from_secs(btime) + Duration::from_millis(ticks * 1000 / hz))
}

fn touch(path: &Path) {
    if let Ok(f) = File::options().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// A spool file this process claimed and is delivering.
struct Claimed {
    path: PathBuf,
    /// Bytes already delivered (or set aside) from the start of the file.
    offset: u64,
}

/// One batch read from a claimed file.
pub struct Chunk {
    pub lines: Vec<String>,
    /// Where the file's next unread line starts.
    end: u64,
    /// Lines over `MAX_LINE_BYTES` skipped on the way (dropped).
    pub skipped: usize,
}

/// What a process delivers from the spool: the files it found at start, one claimed at a time.
#[derive(Default)]
pub struct Resender {
    dir: Option<PathBuf>,
    /// Files to claim, oldest name first.
    candidates: Vec<PathBuf>,
    current: Option<Claimed>,
    /// A batch of the current file is with the hub.
    in_flight: bool,
    /// Set at exit: take no more work.
    released: bool,
    /// What went wrong last (an oversized file set aside, a read error), for `stats()`.
    pub last_error: Option<String>,
}

impl Resender {
    /// Lists `dir`'s spool files: waiting ones, and claims abandoned by their process.
    pub fn scan(dir: PathBuf) -> Resender {
        let mut r = Resender {
            dir: Some(dir.clone()),
            ..Resender::default()
        };
        let Ok(rd) = fs::read_dir(&dir) else { return r };
        let now = SystemTime::now();
        let mut names: Vec<String> = rd
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| spool_name(n))
            .collect();
        names.sort();
        for n in names.into_iter().take(MAX_CANDIDATES) {
            let p = dir.join(&n);
            if let Some((_, pid)) = n.rsplit_once(".sending-") {
                let Ok(pid) = pid.parse::<i32>() else {
                    continue;
                };
                let Ok(mtime) = fs::metadata(&p).and_then(|m| m.modified()) else {
                    continue;
                };
                if !claim_abandoned(pid, mtime, now) {
                    continue;
                }
            }
            r.candidates.push(p);
        }
        r.candidates.reverse(); // popped from the back: oldest name first
        r
    }

    /// Anything left to deliver?
    pub fn pending(&self) -> bool {
        !self.released && (self.current.is_some() || !self.candidates.is_empty())
    }

    /// The next batch to deliver (at most `max_lines` lines and about `max_bytes`), claiming
    /// the next file when the current one is done. Oversized files are set aside on the way.
    pub fn next_chunk(&mut self, max_lines: usize, max_bytes: usize) -> Option<Chunk> {
        if self.released || self.in_flight {
            return None;
        }
        loop {
            if self.current.is_none() {
                let p = self.candidates.pop()?;
                self.claim(p);
                continue;
            }
            let cur = self.current.as_ref().expect("checked above");
            match read_chunk(&cur.path, cur.offset, max_lines, max_bytes) {
                Ok(c) if c.lines.is_empty() && c.skipped == 0 => {
                    // Delivered to the end.
                    let _ = fs::remove_file(&cur.path);
                    self.current = None;
                }
                Ok(c) => {
                    touch(&cur.path);
                    self.in_flight = true;
                    return Some(c);
                }
                Err(e) => {
                    self.last_error = Some(format!("reading {}: {e}", cur.path.display()));
                    self.current = None; // left as a claim of this pid: adopted after exit
                }
            }
        }
    }

    /// Renames a candidate to `.sending-PID` (atomic: one process wins each file); a file
    /// over the cap goes to `rejected/` instead.
    fn claim(&mut self, p: PathBuf) {
        let Some(dir) = self.dir.clone() else { return };
        let Some(name) = p.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return;
        };
        let base = name.split(".sending-").next().unwrap_or(&name).to_string();
        let mine = dir.join(format!("{base}.sending-{}", std::process::id()));
        if fs::rename(&p, &mine).is_err() {
            return; // another process took it first
        }
        touch(&mine);
        match fs::metadata(&mine) {
            Ok(m) if m.len() > SPOOL_MAX_BYTES => {
                match set_aside_file(&dir, &mine, "oversized-spool") {
                    Ok(to) => {
                        self.last_error = Some(format!(
                            "spool file {name} is {} bytes, over the {SPOOL_MAX_BYTES}-byte cap: set aside as {}",
                            m.len(),
                            to.display()
                        ));
                    }
                    Err(e) => {
                        self.last_error =
                            Some(format!("could not set aside oversized {name}: {e}"));
                    }
                }
            }
            Ok(_) => {
                self.current = Some(Claimed {
                    path: mine,
                    offset: 0,
                })
            }
            Err(_) => {}
        }
    }

    /// The batch from `next_chunk` was settled (delivered or set aside): move past it.
    pub fn advance(&mut self, chunk_end: u64) {
        self.in_flight = false;
        if let Some(c) = self.current.as_mut() {
            c.offset = chunk_end;
        }
    }

    /// The batch will be tried again: keep the offset.
    pub fn retry_later(&mut self) {
        self.in_flight = false;
    }

    /// At exit: take no more work. A partly delivered file is cut to what is left and given
    /// back under its waiting name, for the next process. A batch still with the hub is in
    /// that remainder (the hub stores an `event_id` once, so a repeat is harmless).
    pub fn release(&mut self) {
        self.released = true;
        let Some(c) = self.current.take() else { return };
        let name = c.path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(base) = name.as_deref().and_then(|n| n.split(".sending-").next()) else {
            return;
        };
        let back = c.path.with_file_name(base);
        let r = (|| -> std::io::Result<()> {
            if c.offset > 0 {
                let mut rest = Vec::new();
                let mut f = File::open(&c.path)?;
                f.seek(SeekFrom::Start(c.offset))?;
                f.take(SPOOL_MAX_BYTES).read_to_end(&mut rest)?;
                let tmp = c
                    .path
                    .with_extension(format!("rest-{}", std::process::id()));
                let mut t = OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)?;
                t.set_permissions(fs::Permissions::from_mode(0o600))?;
                t.write_all(&rest)?;
                t.sync_all()?;
                fs::rename(&tmp, &c.path)?;
            }
            fs::rename(&c.path, &back)
        })();
        if let Err(e) = r {
            // Still a claim of this pid, which is about to exit: the next process adopts it.
            self.last_error = Some(format!("releasing {}: {e}", c.path.display()));
        }
    }

    pub fn chunk_end(c: &Chunk) -> u64 {
        c.end
    }
}

/// Reads up to `max_lines` lines (about `max_bytes`) of `path` from `offset`. Lines over
/// `MAX_LINE_BYTES` are skipped without being held in memory.
fn read_chunk(
    path: &Path,
    offset: u64,
    max_lines: usize,
    max_bytes: usize,
) -> std::io::Result<Chunk> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut r = BufReader::new(f);
    let mut chunk = Chunk {
        lines: Vec::new(),
        end: offset,
        skipped: 0,
    };
    let mut bytes = 0usize;
    let mut buf = Vec::new();
    while chunk.lines.len() < max_lines && bytes < max_bytes {
        buf.clear();
        let n = (&mut r)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        chunk.end += n as u64;
        if buf.last() != Some(&b'\n') && n > MAX_LINE_BYTES {
            // Too long: skip to the end of this line.
            loop {
                let avail = r.fill_buf()?;
                if avail.is_empty() {
                    break;
                }
                match avail.iter().position(|b| *b == b'\n') {
                    Some(i) => {
                        r.consume(i + 1);
                        chunk.end += i as u64 + 1;
                        break;
                    }
                    None => {
                        let l = avail.len();
                        r.consume(l);
                        chunk.end += l as u64;
                    }
                }
            }
            chunk.skipped += 1;
            continue;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        bytes += line.len() + 1;
        chunk.lines.push(line.to_string());
    }
    Ok(chunk)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "sightline-spool-test-{tag}-{}-{}",
            std::process::id(),
            now_ms()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_dead_pid_and_a_reused_pid_are_abandoned_a_live_fresh_claim_is_not() {
        let now = SystemTime::now();
        // pid 1 is alive and started long before any claim made now.
        assert!(!claim_abandoned(1, now, now));
        // A claim last touched before pid 1 started: pid 1 cannot be the claimer (reused).
        assert!(claim_abandoned(
            1,
            UNIX_EPOCH + Duration::from_secs(1),
            UNIX_EPOCH + Duration::from_secs(2)
        ));
        // Untouched for longer than STALE_CLAIM.
        assert!(claim_abandoned(
            1,
            now - STALE_CLAIM - Duration::from_secs(1),
            now
        ));
        // A pid that does not exist (beyond pid_max).
        assert!(claim_abandoned(i32::MAX - 1, now, now));
        // Our own pid: a claim we did not make in this process.
        assert!(claim_abandoned(std::process::id() as i32, now, now));
    }

    #[test]
    fn long_lines_are_skipped_without_stopping_the_rest() {
        let d = tmpdir("long");
        let p = d.join("python-x.ndjson");
        let mut body = String::from("{\"a\":1}\n");
        body.push_str(&"x".repeat(MAX_LINE_BYTES + 10));
        body.push_str("\n{\"b\":2}\n");
        fs::write(&p, &body).unwrap();
        let c = read_chunk(&p, 0, 100, 1 << 20).unwrap();
        assert_eq!(c.lines, ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(c.skipped, 1);
        assert_eq!(c.end, body.len() as u64);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn exit_spool_keeps_critical_events_within_the_cap_and_is_private() {
        let d = tmpdir("exit");
        let big = "d".repeat(1 << 20);
        let mut events: Vec<(String, bool)> = (0..70).map(|_| (big.clone(), true)).collect();
        events.insert(0, ("start".into(), false));
        events.push(("exit".into(), false));
        // SAFETY: umask has no preconditions; the test restores the old mask.
        let old = unsafe { libc::umask(0) };
        let out = write_exit_spool(&d.join("spool"), "py-1", &events);
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        let out = out.unwrap();
        assert!(out.lost >= 7 && out.written + out.lost == 72, "{out:?}");
        let path = out.path.unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("start\n") && text.ends_with("exit\n"));
        assert!(text.len() as u64 <= SPOOL_MAX_BYTES);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(d.join("spool")).unwrap().mode() & 0o777, 0o700);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rejected_keeps_the_newest_files_within_its_bounds() {
        let d = tmpdir("rej");
        for i in 0..(REJECTED_MAX_FILES + 5) {
            set_aside(&d, &format!("t{i:03}"), &[format!("{{\"i\":{i}}}")]).unwrap();
        }
        let names: Vec<String> = fs::read_dir(d.join("rejected"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), REJECTED_MAX_FILES);
        assert!(names
            .iter()
            .any(|n| n.contains(&format!("t{:03}", REJECTED_MAX_FILES + 4))));
        assert!(!names.iter().any(|n| n.contains("t000")));
        fs::remove_dir_all(&d).unwrap();
    }
}
