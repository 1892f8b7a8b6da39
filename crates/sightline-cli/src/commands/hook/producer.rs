//! Which process a hook event comes from: the Claude Code process that ran `sightline hook`, so
//! the hub's liveness sweep can end its session when that process is gone (docs/SOURCES-SETUP.md,
//! "Liveness").
//!
//! The rule: Claude Code runs a command hook through a shell (`sh -c '<command>'`, possibly
//! nested), so the producer is the nearest ancestor of this process that is not a shell (nor
//! `env`/`timeout`-style wrappers), at most [`MAX_HOPS`] steps up. Its pid, start time (field 22
//! of `/proc/PID/stat`), boot id, pid namespace and host name are what `sightline run` and the
//! Python agent send for theirs. Without `/proc` (not Linux) nothing is sent and the session
//! keeps the idle rule. This module only reads `/proc`: it must never signal or wait on a
//! process, and never fail the hook (every read that fails just leaves the field out).

use serde_json::{Value, json};

/// How far up the process tree the walk goes before giving up (a shell in a shell in a
/// wrapper is 3; a deeper chain is not Claude Code running a hook).
const MAX_HOPS: usize = 6;

/// Programs that only pass a command on: the producer is above them.
const WRAPPERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "ash", "busybox", "env", "timeout", "nice",
    "nohup", "stdbuf", "setsid",
];

/// (command name, parent pid, start ticks) from the text of `/proc/PID/stat`. The command is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted after the last
/// `)`.
pub fn parse_stat(stat: &str) -> Option<(String, i64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_string();
    let mut fields = stat.get(close + 1..)?.split_whitespace();
    let _state = fields.next()?;
    let ppid = fields.next()?.parse().ok()?;
    // starttime is field 22 of the line; ppid was field 4.
    let ticks = fields.nth(17)?.parse().ok()?;
    Some((comm, ppid, ticks))
}

fn stat_of(pid: i64) -> Option<(String, i64, u64)> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether a command name is a shell or wrapper (the producer is further up).
pub fn is_wrapper(comm: &str) -> bool {
    WRAPPERS.contains(&comm)
}

/// The producer's pid and start ticks: the nearest non-wrapper ancestor of this process.
fn find() -> Option<(i64, u64)> {
    let mut pid = i64::from(std::os::unix::process::parent_id());
    for _ in 0..MAX_HOPS {
        if pid <= 1 {
            return None;
        }
        let (comm, ppid, ticks) = stat_of(pid)?;
        if !is_wrapper(&comm) {
            return Some((pid, ticks));
        }
        pid = ppid;
    }
    None
}

/// What the hub is told about the producer, or `None` when it cannot be found.
pub fn current() -> Option<Value> {
    let (pid, ticks) = find()?;
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    Some(json!({
        "pid": pid,
        "start_ticks": ticks,
        "boot_id": read("/proc/sys/kernel/random/boot_id"),
        "pid_ns": std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned()),
        "host": read("/proc/sys/kernel/hostname"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line =
            "1234 (a) b (c)) S 77 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 200";
        assert_eq!(parse_stat(line), Some(("a) b (c)".into(), 77, 98765)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) R 1"), None);
    }

    #[test]
    fn this_process_is_found_in_proc() {
        let me = std::process::id() as i64;
        let (_, ppid, _) = stat_of(me).expect("/proc/self/stat reads");
        assert_eq!(ppid, i64::from(std::os::unix::process::parent_id()));
    }

    #[test]
    fn shells_are_passed_over_and_programs_are_not() {
        assert!(is_wrapper("sh") && is_wrapper("bash"));
        assert!(!is_wrapper("claude") && !is_wrapper("node"));
    }

    proptest! {
        #[test]
        fn any_stat_text_is_read_without_panicking(s in "\\PC{0,200}") {
            let _ = parse_stat(&s);
        }

        #[test]
        fn any_command_name_is_read_back(comm in "[^\\n]{0,30}", ppid in 1i64..1 << 22, ticks in any::<u64>()) {
            let line = format!("9 ({comm}) S {ppid} 9 9 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {ticks} 0 0");
            prop_assert_eq!(parse_stat(&line), Some((comm, ppid, ticks)));
        }
    }
}
