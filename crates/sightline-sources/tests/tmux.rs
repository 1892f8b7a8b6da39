//! The tmux adapter against a real tmux server started here on its own socket (`tmux -L`):
//! sessions, windows and panes appearing and disappearing, new pane lines (rate-capped), pane
//! status busy → idle and waiting-for-input, and filtering by tmux session and window.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use sightline_core::Core;
use sightline_schema::Filter;
use sightline_sources::Adapter;
use sightline_sources::framework::{AdapterContext, Checkpoints};
use sightline_sources::tmux::{Socket, TmuxAdapter, TmuxConfig};
use sightline_store::StoreConfig;

struct Server {
    socket: String,
}

impl Server {
    fn tmux(&self, args: &[&str]) {
        let out = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux must be installed");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
        // tmux leaves its socket file behind: /tmp/tmux-<uid>/<name>.
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().next().map(str::to_string))
            });
        if let Some(uid) = uid {
            let dir = std::env::var("TMUX_TMPDIR").unwrap_or_else(|_| "/tmp".into());
            let _ = std::fs::remove_file(format!("{dir}/tmux-{uid}/{}", self.socket));
        }
    }
}

fn events(hub: &Core, rt: &tokio::runtime::Runtime, filter: &str) -> Vec<Value> {
    let pairs: Vec<(String, String)> = filter
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let filter = Filter::from_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    let f = filter.clone();
    let head = hub.store().head_seq();
    let all = rt
        .block_on(
            hub.store()
                .read(move |c| sightline_store::query::replay(c, &f, 0, head, 100_000)),
        )
        .unwrap();
    all.into_iter()
        .filter(|e| filter.matches(e))
        .map(|e| serde_json::from_str(&e.to_json()).unwrap())
        .collect()
}

fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn tmux_sessions_windows_panes_output_and_status() {
    let server = Server {
        socket: format!("sightline-test-{}", std::process::id()),
    };
    server.tmux(&[
        "new-session",
        "-d",
        "-s",
        "alpha",
        "-x",
        "120",
        "-y",
        "40",
        "sh",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let rt = sightline_testkit::runtime();
    let hub =
        rt.block_on(async { Core::open(StoreConfig::new(dir.path().join("db.sqlite"))).unwrap() });
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let adapter = Arc::new(TmuxAdapter {
        config: TmuxConfig {
            socket: Socket::Name(server.socket.clone()),
            poll: Duration::from_millis(150),
            quiet: Duration::from_millis(1200),
            line_events_per_sec: 4.0,
            lines_per_event: 20,
            history: 200,
        },
    });
    let ctx = AdapterContext::new(hub.sink("tmux", stop_rx), Checkpoints::load(None));
    let task = rt.spawn(adapter.run(ctx));
    let has =
        |filter: &str, pred: &dyn Fn(&Value) -> bool| events(&hub, &rt, filter).iter().any(pred);

    // Discovery.
    wait_for("session, window and pane of alpha", || {
        has("runs=tmux:alpha", &|e| {
            e["source_event"] == "session-created" && e["session_id"] == "tmux:alpha"
        }) && has("runs=tmux:alpha", &|e| {
            e["source_event"] == "window-created" && e["session_id"] == "tmux:alpha:0"
        }) && has("runs=tmux:alpha", &|e| {
            e["source_event"] == "pane-created" && e["session_id"] == "tmux:alpha:0.0"
        })
    });
    server.tmux(&["new-window", "-t", "alpha", "-n", "build", "sh"]);
    server.tmux(&["split-window", "-t", "alpha:1", "sh"]);
    server.tmux(&["new-session", "-d", "-s", "beta", "sh"]);
    wait_for("window 1 with two panes, and session beta", || {
        has("sessions=tmux:alpha:1", &|e| {
            e["source_event"] == "pane-created" && e["session_id"] == "tmux:alpha:1.1"
        }) && has("sessions=tmux:alpha:1", &|e| {
            e["source_event"] == "pane-created" && e["session_id"] == "tmux:alpha:1.0"
        }) && has("runs=tmux:beta", &|e| e["source_event"] == "pane-created")
    });

    // New lines, then idle after the quiet period.
    server.tmux(&[
        "send-keys",
        "-t",
        "alpha:1.0",
        "for i in 1 2 3 4 5; do echo line-$i; done",
        "Enter",
    ]);
    wait_for("the five lines", || {
        let lines: Vec<String> = events(
            &hub,
            &rt,
            "sessions=tmux:alpha:1.0&source_events=pane-output",
        )
        .iter()
        .flat_map(|e| {
            e["payload"]["lines"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
        (1..=5).all(|i| lines.iter().filter(|l| **l == format!("line-{i}")).count() == 1)
    });
    wait_for("busy then idle", || {
        let statuses: Vec<String> = events(
            &hub,
            &rt,
            "sessions=tmux:alpha:1.0&source_events=pane-status",
        )
        .iter()
        .map(|e| e["status"].as_str().unwrap().to_string())
        .collect();
        statuses.ends_with(&["idle".to_string()]) && statuses.contains(&"running".to_string())
    });

    // A prompt that asks the user: waiting (blocked), with the question as summary.
    server.tmux(&[
        "send-keys",
        "-t",
        "alpha:1.1",
        "printf 'Do you want to proceed? [y/N] '; read answer",
        "Enter",
    ]);
    wait_for("waiting for input", || {
        has("sessions=tmux:alpha:1.1&source_events=pane-status", &|e| {
            e["status"] == "blocked" && e["summary"].as_str().unwrap_or("").contains("[y/N]")
        })
    });
    server.tmux(&["send-keys", "-t", "alpha:1.1", "y", "Enter"]);

    // A flood is rate-capped: a few events per second, the rest counted as skipped.
    let before = events(
        &hub,
        &rt,
        "sessions=tmux:alpha:0.0&source_events=pane-output",
    )
    .len();
    server.tmux(&["send-keys", "-t", "alpha:0.0", "seq 1 20000", "Enter"]);
    std::thread::sleep(Duration::from_millis(2500));
    server.tmux(&[
        "send-keys",
        "-t",
        "alpha:0.0",
        "echo done-flooding",
        "Enter",
    ]);
    wait_for("the flood to settle", || {
        has("sessions=tmux:alpha:0.0&source_events=pane-output", &|e| {
            e["payload"]["lines"]
                .as_array()
                .is_some_and(|l| l.iter().any(|x| x == "done-flooding"))
        })
    });
    let flood = events(
        &hub,
        &rt,
        "sessions=tmux:alpha:0.0&source_events=pane-output",
    );
    let sent = flood.len() - before;
    assert!(
        sent <= 25,
        "rate-capped: {sent} output events for 20,000 lines"
    );
    let skipped: u64 = flood
        .iter()
        .map(|e| e["payload"]["skipped_lines"].as_u64().unwrap_or(0))
        .sum();
    assert!(skipped > 0, "the excess is counted");

    // Filters: a tmux session, a window (with its panes), never another session's events.
    let alpha1 = events(&hub, &rt, "sessions=tmux:alpha:1");
    assert!(!alpha1.is_empty());
    assert!(
        alpha1.iter().all(|e| e["session_id"]
            .as_str()
            .unwrap()
            .starts_with("tmux:alpha:1")),
        "window filter"
    );
    let beta = events(&hub, &rt, "runs=tmux:beta");
    assert!(!beta.is_empty());
    assert!(beta.iter().all(|e| e["run_id"] == "tmux:beta"));
    assert!(
        events(&hub, &rt, "runs=tmux:alpha")
            .iter()
            .all(|e| e["run_id"] == "tmux:alpha")
    );

    // Disappearance: a window and its panes, then a whole session.
    server.tmux(&["kill-window", "-t", "alpha:1"]);
    server.tmux(&["kill-session", "-t", "beta"]);
    wait_for("closed events", || {
        has("sessions=tmux:alpha:1", &|e| {
            e["source_event"] == "window-closed"
        }) && has("sessions=tmux:alpha:1", &|e| {
            e["source_event"] == "pane-closed" && e["session_id"] == "tmux:alpha:1.1"
        }) && has("runs=tmux:beta", &|e| e["source_event"] == "session-closed")
    });
    let closed = events(&hub, &rt, "runs=tmux:alpha&source_events=pane-closed");
    assert_eq!(closed.len(), 2, "exactly the two panes of window 1 closed");

    stop.send_replace(true);
    rt.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    });
}
