//! The liveness sweep over a real store (SQLite in a temp directory) and real processes: an
//! agent session quiet past the idle time becomes idle and work brings it back; a process
//! whose pid is gone fails with the reason, and a real end event that arrives after the
//! synthetic one wins; a process heard from elsewhere fails after its heartbeats stop and runs
//! again when they resume; a process that is alive is left alone.

use std::time::Duration;

use serde_json::{Value, json};
use sightline_core::liveness::{self, Settings};
use sightline_core::{Backpressure, Core};
use sightline_schema::{Event, Timestamp, parse_event};
use sightline_store::StoreConfig;
use sightline_store::query::{self, Run, Session};
use tokio::sync::watch;

fn event(v: Value) -> Event {
    parse_event(v.to_string().as_bytes(), Timestamp::now()).unwrap()
}

fn at(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

async fn submit(core: &Core, events: Vec<Value>) {
    core.submit(
        "test",
        events.into_iter().map(event).collect(),
        Backpressure::Refuse,
    )
    .await
    .unwrap();
}

async fn run(core: &Core, id: &str) -> Run {
    let id = id.to_string();
    core.store()
        .read(move |c| query::get_run(c, &id))
        .await
        .unwrap()
        .expect("the run exists")
        .run
}

async fn session(core: &Core, run_id: &str, id: &str) -> Session {
    let (run_id, id) = (run_id.to_string(), id.to_string());
    core.store()
        .read(move |c| query::sessions_of_run(c, &run_id))
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.session_id == id)
        .expect("the session exists")
}

async fn sweep_memo(
    core: &Core,
    settings: &Settings,
    now: i64,
    memo: &mut liveness::ProducerMemo,
) -> liveness::Report {
    let (_keep, stopped) = watch::channel(false);
    liveness::sweep_with(core, settings, Timestamp(now), stopped, memo)
        .await
        .unwrap()
}

async fn sweep(core: &Core, settings: &Settings, now: i64) -> liveness::Report {
    let (_stop, stopped) = watch::channel(false);
    liveness::sweep(core, settings, Timestamp(now), stopped)
        .await
        .unwrap()
}

/// The sweep's settings with the idle rule after `minutes` (`None`: off), the rest default.
fn idle_after(minutes: Option<u64>) -> Settings {
    Settings {
        idle_after: minutes.map(|m| Duration::from_secs(m * 60)),
        ..Settings::default()
    }
}

fn open() -> (tempfile::TempDir, Core) {
    let dir = tempfile::tempdir().unwrap();
    let core = Core::open(StoreConfig::new(dir.path().join("db.sqlite"))).unwrap();
    (dir, core)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("these tests need /proc (Linux)")
        .trim()
        .to_string()
}

/// A pid that is certainly gone: a child this test started and reaped.
fn dead_pid() -> i64 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i64;
    child.wait().unwrap();
    pid
}

#[tokio::test]
async fn an_agent_session_quiet_past_the_idle_time_is_idle_and_work_brings_it_back() {
    let (_dir, core) = open();
    let now = Timestamp::now().millis();
    let hour_ago = now - 3_600_000;
    submit(
        &core,
        vec![
            json!({"source": "claude", "source_event": "SessionStart", "entity_type": "session",
                   "title": "s", "run_id": "c1", "session_id": "c1", "status": "running", "ts": at(hour_ago - 1000)}),
            json!({"source": "claude", "source_event": "PreToolUse", "entity_type": "tool",
                   "title": "Bash", "run_id": "c1", "session_id": "c1", "status": "running", "ts": at(hour_ago)}),
            // A recent one stays active.
            json!({"source": "claude", "source_event": "SessionStart", "entity_type": "session",
                   "title": "s", "run_id": "c2", "session_id": "c2", "status": "running", "ts": at(now - 60_000)}),
        ],
    )
    .await;
    let settings = idle_after(Some(30));
    let report = sweep(&core, &settings, now).await;
    assert_eq!(
        (report.idle_runs, report.idle_sessions),
        (1, 1),
        "{report:?}"
    );
    let s = session(&core, "c1", "c1").await;
    assert_eq!(s.status.map(|s| s.as_str()), Some("idle"));
    assert_eq!(s.alive, Some(false));
    assert_eq!(s.ended_by.as_deref(), Some("liveness"));
    assert_eq!(s.liveness_rule.as_deref(), Some("idle"));
    assert!(
        s.liveness_reason
            .as_deref()
            .unwrap()
            .contains("no event for 60 min (idle after 30 min)"),
        "{s:?}"
    );
    assert!(
        s.ended_at.is_none(),
        "idle is not an end: the user may come back"
    );
    let r = run(&core, "c1").await;
    assert_eq!(r.status.map(|s| s.as_str()), Some("idle"));
    let other = run(&core, "c2").await;
    assert_eq!(other.status.map(|s| s.as_str()), Some("running"));
    assert_eq!(other.alive, Some(true));
    // Idle no longer counts as active.
    let stats = core
        .store()
        .read(move |c| query::stats(c, Timestamp(0), Timestamp(now)))
        .await
        .unwrap();
    assert_eq!(stats.active_sessions, 1, "only c2: {stats:?}");

    // A second sweep changes nothing more.
    assert_eq!(
        sweep(&core, &settings, now).await,
        liveness::Report::default()
    );

    // The user comes back: work reopens it and the note is gone.
    submit(
        &core,
        vec![json!({"source": "claude", "source_event": "UserPromptSubmit", "entity_type": "prompt",
                    "title": "again", "run_id": "c1", "session_id": "c1", "status": "running", "ts": at(now)})],
    )
    .await;
    let s = session(&core, "c1", "c1").await;
    assert_eq!(s.status.map(|s| s.as_str()), Some("running"), "{s:?}");
    assert_eq!(
        (s.alive, s.ended_by.clone(), s.liveness_reason.clone()),
        (Some(true), None, None)
    );
}

#[tokio::test]
async fn a_gone_pid_fails_its_run_and_a_late_real_exit_still_wins() {
    let (_dir, core) = open();
    let now = Timestamp::now().millis();
    let pid = dead_pid();
    let seen = now - 10_000;
    submit(
        &core,
        vec![
            json!({"source": "python", "source_event": "process_start", "entity_type": "process",
                   "title": "python job.py", "run_id": "p1", "session_id": "p1:main", "status": "running",
                   "host": hostname(), "pid": pid, "ts": at(seen - 5_000), "payload": {"heartbeat_s": 2.0}}),
            json!({"source": "python", "source_event": "heartbeat", "entity_type": "metric",
                   "title": "heartbeat", "run_id": "p1", "session_id": "p1:main",
                   "host": hostname(), "pid": pid, "ts": at(seen)}),
        ],
    )
    .await;
    let report = sweep(&core, &Settings::default(), now).await;
    assert_eq!(report.failed_runs, 1, "{report:?}");
    let r = run(&core, "p1").await;
    assert_eq!(r.status.map(|s| s.as_str()), Some("failed"), "{r:?}");
    assert_eq!(r.alive, Some(false));
    assert_eq!(r.liveness_rule.as_deref(), Some("pid"));
    assert_eq!(
        r.liveness_reason.as_deref(),
        Some(format!("process {pid} is gone (no exit event)").as_str())
    );
    // Dated at its last sign of life, not at the sweep.
    assert_eq!(r.ended_at, Some(Timestamp(seen)));

    // A late event from before the synthetic end changes nothing...
    submit(
        &core,
        vec![
            json!({"source": "python", "source_event": "process_start", "entity_type": "process",
                    "title": "dup", "run_id": "p1", "status": "running", "ts": at(seen - 1_000)}),
        ],
    )
    .await;
    assert_eq!(run(&core, "p1").await.liveness_rule.as_deref(), Some("pid"));
    // ...but the real exit, spooled and delivered late, says what really happened.
    submit(
        &core,
        vec![json!({"source": "python", "source_event": "process_exit", "entity_type": "process",
                    "title": "exit 0", "run_id": "p1", "status": "success", "host": hostname(), "pid": pid,
                    "ts": at(seen + 500)})],
    )
    .await;
    let r = run(&core, "p1").await;
    assert_eq!(r.status.map(|s| s.as_str()), Some("success"), "{r:?}");
    assert_eq!(
        (r.ended_by, r.liveness_rule, r.liveness_reason),
        (None, None, None)
    );
    assert_eq!(r.ended_at, Some(Timestamp(seen + 500)));
}

#[tokio::test]
async fn a_live_pid_is_left_alone_and_a_silent_remote_process_fails_then_revives() {
    let (_dir, core) = open();
    let now = Timestamp::now().millis();
    let me = std::process::id() as i64;
    let (_, my_start_ticks) =
        liveness::parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap()).unwrap();
    submit(
        &core,
        vec![
            // This very process, with its start time, quiet for an hour: the pid says it is
            // alive (a younger process with this pid and no start time would be a reused pid).
            json!({"source": "python", "source_event": "process_start", "entity_type": "process",
                   "title": "me", "run_id": "alive", "status": "running", "host": hostname(), "pid": me,
                   "ts": at(now - 3_600_000), "payload": {"start_ticks": my_start_ticks}}),
            // A process on another machine, heartbeat 1 s, silent for 60 s.
            json!({"source": "python", "source_event": "process_start", "entity_type": "process",
                   "title": "remote", "run_id": "far", "session_id": "far:main", "status": "running",
                   "host": "elsewhere.invalid", "pid": 4242, "ts": at(now - 60_000),
                   "payload": {"heartbeat_s": 1}}),
        ],
    )
    .await;
    let report = sweep(&core, &Settings::default(), now).await;
    assert_eq!(report.failed_runs, 1, "{report:?}");
    let alive = run(&core, "alive").await;
    assert_eq!(alive.status.map(|s| s.as_str()), Some("running"));
    assert_eq!(alive.alive, Some(true));
    let far = run(&core, "far").await;
    assert_eq!(far.status.map(|s| s.as_str()), Some("failed"));
    assert_eq!(far.liveness_rule.as_deref(), Some("heartbeat"));
    assert_eq!(
        far.liveness_reason.as_deref(),
        Some("no heartbeat for 60 s (interval 1 s)")
    );
    let main = session(&core, "far", "far:main").await;
    assert_eq!(main.status.map(|s| s.as_str()), Some("failed"));
    assert_eq!(main.liveness_rule.as_deref(), Some("heartbeat"));

    // Its heartbeats resume (a network outage ended): running again at the next sweep.
    submit(
        &core,
        vec![
            json!({"source": "python", "source_event": "heartbeat", "entity_type": "metric",
                    "title": "heartbeat", "run_id": "far", "session_id": "far:main",
                    "host": "elsewhere.invalid", "pid": 4242, "ts": at(now)}),
        ],
    )
    .await;
    let report = sweep(&core, &Settings::default(), now + 100).await;
    assert_eq!(report.revived_runs, 1, "{report:?}");
    let far = run(&core, "far").await;
    assert_eq!(far.status.map(|s| s.as_str()), Some("running"), "{far:?}");
    assert_eq!(
        (far.alive, far.liveness_rule, far.ended_at),
        (Some(true), None, None)
    );
    let main = session(&core, "far", "far:main").await;
    assert_eq!(main.status.map(|s| s.as_str()), Some("running"), "{main:?}");
}

/// The session-pid rule: a Claude session whose process (named by `sightline hook`) is gone
/// ends `success` when it sat idle at a prompt, even after the idle rule made it idle; one whose
/// process is alive, or that names no process (http hooks), is left to the idle rule.
#[tokio::test]
async fn a_claude_session_whose_process_is_gone_ends_and_one_without_a_pid_is_left_idle() {
    let (_dir, core) = open();
    let now = Timestamp::now().millis();
    let long_ago = now - 3_600_000;
    let host = hostname();
    let gone = dead_pid();
    let me = std::process::id() as i64;
    // This process announces its start time, as `sightline hook` does (its session's events
    // are dated an hour ago, before this process started: without it, that reads as reuse).
    let my_ticks = liveness::parse_stat(&std::fs::read_to_string("/proc/self/stat").unwrap())
        .unwrap()
        .1;
    let producer = |pid: i64| {
        json!({"pid": pid, "start_ticks": (pid == me).then_some(my_ticks),
        "boot_id": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim()})
    };
    let start = |run: &str, pid: Option<i64>| {
        let mut e = json!({"source": "claude", "source_event": "SessionStart", "entity_type": "session",
            "title": "s", "run_id": run, "session_id": run, "status": "running", "ts": at(long_ago - 1000),
            "payload": {}});
        if let Some(pid) = pid {
            e["pid"] = json!(pid);
            e["host"] = json!(host);
            e["payload"]["sightline_producer"] = producer(pid);
        }
        e
    };
    let stop = |run: &str| {
        json!({"source": "claude", "source_event": "Stop", "entity_type": "session",
            "title": "idle", "run_id": run, "session_id": run, "status": "idle", "ts": at(long_ago)})
    };
    submit(
        &core,
        vec![
            start("gone", Some(gone)),
            stop("gone"),
            start("alive", Some(me)),
            stop("alive"),
            // Resumed (`claude --resume`) in a new process: the old one is gone, the new one
            // (this test) is alive, and it is the newest that counts.
            start("resumed", Some(gone)),
            {
                let mut e = start("resumed", Some(me));
                e["source_event"] = json!("UserPromptSubmit");
                e["entity_type"] = json!("prompt");
                e["ts"] = json!(at(now - 1000));
                e
            },
            start("http", None),
            json!({"source": "claude", "source_event": "PreToolUse", "entity_type": "tool",
                "title": "Bash", "run_id": "http", "session_id": "http", "status": "running", "ts": at(long_ago)}),
        ],
    )
    .await;
    // First the idle rule alone (no pid checked yet would matter: "gone" is idle already).
    let settings = idle_after(Some(30));
    let report = sweep(&core, &settings, now).await;
    assert_eq!(
        (report.ended_runs, report.ended_sessions),
        (1, 1),
        "{report:?}"
    );
    let s = session(&core, "gone", "gone").await;
    assert_eq!(s.status.map(|s| s.as_str()), Some("success"));
    assert_eq!(s.liveness_rule.as_deref(), Some("pid"));
    assert_eq!(
        s.liveness_reason.as_deref(),
        Some(format!("Claude Code process {gone} is gone (no SessionEnd)").as_str())
    );
    assert_eq!(s.alive, Some(false));
    assert_eq!(
        run(&core, "gone").await.status.map(|s| s.as_str()),
        Some("success")
    );
    // Alive process: untouched by the pid rule (idle by its own Stop, not ended).
    let a = session(&core, "alive", "alive").await;
    assert_eq!(a.status.map(|s| s.as_str()), Some("idle"));
    assert!(a.liveness_rule.is_none(), "{a:?}");
    let r = session(&core, "resumed", "resumed").await;
    assert!(r.liveness_rule.is_none() && r.ended_at.is_none(), "{r:?}");
    // No pid (http hooks): the idle rule, not ended.
    let h = session(&core, "http", "http").await;
    assert_eq!(h.status.map(|s| s.as_str()), Some("idle"));
    assert_eq!(h.liveness_rule.as_deref(), Some("idle"));
    // A second sweep finds nothing more to do.
    let again = sweep(&core, &settings, now + 5_000).await;
    assert_eq!(again, liveness::Report::default(), "{again:?}");
}

/// The sweeper remembers each agent run's process while the run has no new event: a later sweep
/// with that memory still ends the session when the process goes (nothing new was read), and a
/// run that named no process is read again once a new event arrives.
#[tokio::test]
async fn the_producer_memo_still_ends_a_gone_process_and_rereads_a_run_with_news() {
    let (_dir, core) = open();
    let now = Timestamp::now().millis();
    let host = hostname();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string();
    // A real process of this test's own, standing in for Claude Code; ended by its pid below.
    let mut child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = child.id() as i64;
    let ticks =
        liveness::parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap())
            .unwrap()
            .1;
    let start = |run: &str, pid: Option<i64>, ts: i64| {
        let mut e = json!({"source": "claude", "source_event": "UserPromptSubmit", "entity_type": "prompt",
            "title": "p", "run_id": run, "session_id": run, "status": "running", "ts": at(ts), "payload": {}});
        if let Some(pid) = pid {
            e["pid"] = json!(pid);
            e["host"] = json!(host);
            e["payload"]["sightline_producer"] =
                json!({"pid": pid, "start_ticks": ticks, "boot_id": boot});
        }
        e
    };
    submit(
        &core,
        vec![
            start("watched", Some(pid), now - 2_000),
            start("later", None, now - 2_000),
        ],
    )
    .await;
    let settings = idle_after(None);
    let mut memo = liveness::ProducerMemo::default();
    let first = sweep_memo(&core, &settings, now, &mut memo).await;
    assert_eq!(first, liveness::Report::default(), "alive: {first:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let second = sweep_memo(&core, &settings, now + 1_000, &mut memo).await;
    assert_eq!(second.failed_runs, 1, "{second:?}");
    let s = session(&core, "watched", "watched").await;
    assert_eq!(s.liveness_rule.as_deref(), Some("pid"), "{s:?}");
    // "later" named no process; now an event names one that is gone: the memo must not hide it.
    let gone = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let p = c.id() as i64;
        c.wait().unwrap();
        p
    };
    submit(&core, vec![start("later", Some(gone), now - 500)]).await;
    // Its event arrived since the last sweep: judged at the next sweep, once nothing new came.
    let third = sweep_memo(&core, &settings, now + 2_000, &mut memo).await;
    assert_eq!(third, liveness::Report::default(), "{third:?}");
    let fourth = sweep_memo(&core, &settings, now + 3_000, &mut memo).await;
    assert_eq!(fourth.failed_runs, 1, "{fourth:?}");
    assert_eq!(
        session(&core, "later", "later")
            .await
            .liveness_rule
            .as_deref(),
        Some("pid")
    );
}

#[tokio::test]
async fn a_spool_of_a_dead_process_delivered_in_batches_is_not_ended_between_them() {
    // A Python program ran while the hub was away and spooled everything, its exit included;
    // the next process delivers the spool in batches. Its pid is gone, but a sweep between
    // two batches must not end the run: the real exit is further down the spool.
    let (_dir, core) = open();
    let now = Timestamp::now().millis();
    let pid = dead_pid();
    let seen = now - 60_000;
    let ev = |event: &str, entity: &str, status: Option<&str>, ts: i64| {
        let mut e = json!({"source": "python", "source_event": event, "entity_type": entity,
            "title": event, "run_id": "spooled", "session_id": "spooled:main",
            "host": hostname(), "pid": pid, "ts": at(ts), "payload": {"heartbeat_s": 2.0}});
        if let Some(s) = status {
            e["status"] = json!(s);
        }
        e
    };
    let settings = idle_after(None);
    let mut memo = liveness::ProducerMemo::default();
    // The hub has swept before (the memo is warm), with nothing open.
    let idle = sweep_memo(&core, &settings, now, &mut memo).await;
    assert_eq!(idle, liveness::Report::default());
    submit(
        &core,
        vec![
            ev("process_start", "process", Some("running"), seen),
            ev("call", "call", None, seen + 1),
        ],
    )
    .await;
    let between = sweep_memo(&core, &settings, now + 1_000, &mut memo).await;
    assert_eq!(
        between,
        liveness::Report::default(),
        "ended mid-delivery: {between:?}"
    );
    submit(
        &core,
        vec![
            ev("call", "call", None, seen + 2),
            ev("process_exit", "process", Some("success"), seen + 3),
        ],
    )
    .await;
    let after = sweep_memo(&core, &settings, now + 2_000, &mut memo).await;
    assert_eq!(after, liveness::Report::default(), "{after:?}");
    let r = run(&core, "spooled").await;
    assert_eq!(r.status.map(|s| s.as_str()), Some("success"), "{r:?}");
    assert_eq!(
        (r.liveness_rule, r.event_count),
        (None, 4),
        "only the spool's own events"
    );

    // The same spool without its exit (the process was killed): ended once it stops arriving.
    submit(
        &core,
        vec![
            json!({"source": "python", "source_event": "process_start", "entity_type": "process",
            "title": "killed", "run_id": "killed", "session_id": "killed:main", "status": "running",
            "host": hostname(), "pid": pid, "ts": at(seen), "payload": {"heartbeat_s": 2.0}}),
        ],
    )
    .await;
    let arriving = sweep_memo(&core, &settings, now + 3_000, &mut memo).await;
    assert_eq!(arriving, liveness::Report::default(), "{arriving:?}");
    let settled = sweep_memo(&core, &settings, now + 4_000, &mut memo).await;
    assert_eq!(settled.failed_runs, 1, "{settled:?}");
    assert_eq!(
        run(&core, "killed").await.liveness_rule.as_deref(),
        Some("pid")
    );
}

/// The periodic sweep's first look judges nothing by pid either (`ProducerMemo::settling`): a
/// hub's first sweep may fall in the middle of a spool's delivery as well as any later one
/// (a Python test met it five seconds after its hub started). A run still silent at the next
/// sweep is ended then.
#[tokio::test]
async fn a_hubs_first_sweep_does_not_end_a_spool_mid_delivery() {
    let (_dir, core) = open();
    let now = Timestamp::now().millis();
    let pid = dead_pid();
    let seen = now - 60_000;
    submit(
        &core,
        vec![
            json!({"source": "python", "source_event": "process_start", "entity_type": "process",
            "title": "first", "run_id": "first-look", "session_id": "first-look:main",
            "status": "running", "host": hostname(), "pid": pid, "ts": at(seen),
            "payload": {"heartbeat_s": 2.0}}),
        ],
    )
    .await;
    let settings = idle_after(None);
    let mut memo = liveness::ProducerMemo::settling();
    let first = sweep_memo(&core, &settings, now, &mut memo).await;
    assert_eq!(
        first,
        liveness::Report::default(),
        "ended on the first look: {first:?}"
    );
    assert_eq!(run(&core, "first-look").await.liveness_rule, None);
    let second = sweep_memo(&core, &settings, now + 1_000, &mut memo).await;
    assert_eq!(second.failed_runs, 1, "{second:?}");
    assert_eq!(
        run(&core, "first-look").await.liveness_rule.as_deref(),
        Some("pid")
    );
}
