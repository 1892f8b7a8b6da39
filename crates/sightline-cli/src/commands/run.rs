//! `sightline run -- CMD ...`: runs a program and monitors it.
//!
//! A Python program gets the tracing agent: its directory of `sitecustomize.py` goes first on
//! PYTHONPATH (chaining any existing sitecustomize, as opentelemetry-instrument does) with the
//! SIGHTLINE_* variables, and the agent reports the process itself (source `python`). Any other
//! program is watched from outside (source `process`): its stdout and stderr lines become `log`
//! events (and are still printed), CPU and RSS are sampled each second from /proc, and the exit
//! status is reported.
//!
//! It must never change what the program sees on its standard streams beyond line buffering,
//! never fail the program when the hub is down (events are then dropped with one warning), and
//! always exit with the program's own exit code: Ctrl-C reaches the program (it shares the
//! terminal's process group) while `run` itself waits for it, and SIGTERM is passed on.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use sightline_schema::Timestamp;

use crate::cli::HubArgs;
use crate::client::HubClient;
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Run id for the events (default: a new one).
    #[arg(long, env = "SIGHTLINE_RUN_ID")]
    pub run_id: Option<String>,
    /// Do not load the Python tracing agent; watch the program from outside instead.
    #[arg(long)]
    pub no_python_agent: bool,
    /// Python: module globs to trace (default: the program's own code).
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// Python: module globs not to trace.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Python: start with tracing off (switch it on live from the hub).
    #[arg(long)]
    pub no_trace: bool,
    /// Python: child Python processes are not traced.
    #[arg(long)]
    pub no_follow_children: bool,
    /// The program and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

pub fn run(args: &RunArgs) -> anyhow::Result<i32> {
    let program = &args.command[0];
    let run_id = args.run_id.clone().unwrap_or_else(new_run_id);
    if !args.no_python_agent && is_python(program) {
        match python_agent_dir(program) {
            Ok(dir) => return run_python(args, &run_id, &dir),
            Err(why) => eprintln!(
                "sightline: not tracing Python functions: {why}\nsightline: watching the process from outside instead"
            ),
        }
    }
    run_any(args, &run_id)
}

fn new_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("proc-{:x}-{:x}", nanos, std::process::id())
}

fn spawn_error(program: &str, e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Exit::config(format!("{program}: command not found"))
    } else {
        anyhow::anyhow!("could not start {program}: {e}")
    }
}

/// `run`'s signal handling while its program runs: SIGINT is ignored here (the terminal delivers
/// it to the program too, and `run` must outlive it to report its exit) and SIGTERM is passed on
/// to the program. The handlers are registered before the program starts: when the thread that
/// waits on them registered them itself, a Ctrl-C or SIGTERM that came before that thread was
/// scheduled (later on a loaded machine) killed `run`, and the program's exit went unreported.
struct SignalGuard {
    /// The program's pid once it started, and whether a SIGTERM came before it did.
    state: Arc<Mutex<(Option<u32>, bool)>>,
}

impl SignalGuard {
    /// None if the handlers could not be set up (signals then keep their default action).
    fn install() -> Option<SignalGuard> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let (mut int, mut term) = {
            let _in_runtime = rt.enter();
            (
                signal(SignalKind::interrupt()).ok()?,
                signal(SignalKind::terminate()).ok()?,
            )
        };
        let state = Arc::new(Mutex::new((None, false)));
        let shared = state.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                rt.block_on(async move {
                    loop {
                        tokio::select! {
                            _ = int.recv() => {}
                            _ = term.recv() => {
                                let pid = {
                                    let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                                    s.1 = s.0.is_none();
                                    s.0
                                };
                                if let Some(pid) = pid {
                                    terminate(pid);
                                }
                            }
                        }
                    }
                });
            })
            .ok()?;
        Some(SignalGuard { state })
    }

    /// The program started as `pid`; a SIGTERM that came while it was starting is passed on now.
    fn started(&self, pid: u32) {
        let pending = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.0 = Some(pid);
            std::mem::take(&mut s.1)
        };
        if pending {
            terminate(pid);
        }
    }
}

/// Sends SIGTERM to `pid`; no libc in this crate: the standard `kill` command sends it.
fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stdin(Stdio::null())
        .status();
}

/// The program's exit code as a shell reports it (128 + signal when killed).
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

// --- Python -------------------------------------------------------------------------------

fn resolve(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

/// `python`, `python3`, `python3.12`, or a script whose shebang runs one.
fn is_python(program: &str) -> bool {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let looks = |n: &str| {
        n.strip_prefix("python")
            .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit() || c == '.'))
    };
    if looks(name) {
        return true;
    }
    let Some(path) = resolve(program) else {
        return false;
    };
    let mut head = [0u8; 128];
    let n = std::fs::File::open(&path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let first = String::from_utf8_lossy(&head[..n]);
    first.starts_with("#!")
        && first
            .lines()
            .next()
            .is_some_and(|l| l.split(['/', ' ']).any(looks))
}

/// The interpreter a Python command runs (for a script, the one in its shebang).
fn interpreter(program: &str) -> String {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("");
    if name.starts_with("python") {
        return program.to_string();
    }
    let line = resolve(program)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| t.lines().next().map(str::to_string))
        .unwrap_or_default();
    let parts: Vec<&str> = line.trim_start_matches("#!").split_whitespace().collect();
    match parts.as_slice() {
        [env, py, ..] if env.ends_with("/env") => py.to_string(),
        [py, ..] => py.to_string(),
        [] => "python3".to_string(),
    }
}

/// Asks the program's interpreter where the agent's bootstrap directory is; when the agent is
/// missing, the error carries the exact command that installs it (`commands/agent.rs`).
pub(crate) fn python_agent_dir(program: &str) -> Result<PathBuf, String> {
    let py = interpreter(program);
    let out = Command::new(&py)
        .args([
            "-c",
            "import os, sightline; print(os.path.join(os.path.dirname(sightline.__file__), '_bootstrap'))",
        ])
        .env("SIGHTLINE_DISABLE", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not run {py}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the sightline agent is not installed for {py}; install it with:\n  {}",
            crate::commands::agent::install_hint(&py)
        ));
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !dir.join("sitecustomize.py").is_file() {
        return Err(format!("{} has no sitecustomize.py", dir.display()));
    }
    Ok(dir)
}

fn run_python(args: &RunArgs, run_id: &str, bootstrap: &Path) -> anyhow::Result<i32> {
    let mut cmd = Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    let mut path = vec![bootstrap.to_path_buf()];
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        path.extend(std::env::split_paths(&existing));
    }
    cmd.env("PYTHONPATH", std::env::join_paths(path)?)
        .env("SIGHTLINE_URL", &args.hub.url)
        .env("SIGHTLINE_RUN_ID", run_id)
        .env_remove("SIGHTLINE_DISABLE");
    if let Some(t) = &args.hub.token {
        cmd.env("SIGHTLINE_TOKEN", t);
    }
    // The agent trusts the same private CA as this command (`--cacert` reaches it this way).
    // Absolute: the program may change its working directory before the agent reads it.
    if let Some(ca) = sightline_forward::http::ca_file() {
        let ca = std::path::absolute(&ca).unwrap_or(ca);
        cmd.env(sightline_forward::http::CA_FILE_ENV, ca);
    }
    if !args.include.is_empty() {
        cmd.env("SIGHTLINE_INCLUDE", args.include.join(","));
    }
    if !args.exclude.is_empty() {
        cmd.env("SIGHTLINE_EXCLUDE", args.exclude.join(","));
    }
    if args.no_trace {
        cmd.env("SIGHTLINE_TRACE", "0");
    }
    if args.no_follow_children {
        cmd.env("SIGHTLINE_FOLLOW_CHILDREN", "0");
    }
    // The same signal handling as any program's: `run` outlives a Ctrl-C and passes SIGTERM on
    // (without it, a SIGTERM ended `run` and left the program running on its own).
    let signals = SignalGuard::install();
    let mut child = cmd.spawn().map_err(|e| spawn_error(&args.command[0], e))?;
    if let Some(signals) = &signals {
        signals.started(child.id());
    }
    let status = child.wait()?;
    Ok(exit_code(status))
}

// --- any program ----------------------------------------------------------------------------

struct Ctx {
    run_id: String,
    host: String,
    pid: u32,
}

impl Ctx {
    fn event(&self, source_event: &str, entity_type: &str, title: &str) -> Value {
        let title: String = title.chars().take(500).collect();
        json!({
            "ts": Timestamp::now().to_rfc3339(),
            "source": "process",
            "source_event": source_event,
            "run_id": self.run_id,
            "session_id": self.run_id,
            "entity_type": entity_type,
            "title": if title.trim().is_empty() { "(empty line)".to_string() } else { title },
            "pid": self.pid,
            "host": self.host,
        })
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// (cpu seconds, rss bytes, threads) of a process from /proc.
fn sample(pid: u32) -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Clock ticks are 100 per second on every Linux we target (USER_HZ); pages are 4 KiB
    // unless statm says otherwise, so RSS comes from status (kB) to be exact.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let threads: u64 = f.get(17)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Some(((utime + stime) / 100.0, rss_kb * 1024, threads))
}

/// Sends queued events in NDJSON batches; gives up quietly (one warning) when the hub is down.
fn sender(client: HubClient, rx: mpsc::Receiver<Value>) {
    let mut warned = false;
    let mut batch: Vec<Value> = Vec::new();
    loop {
        let closed = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) => {
                batch.push(ev);
                while batch.len() < 1000 {
                    match rx.try_recv() {
                        Ok(ev) => batch.push(ev),
                        Err(_) => break,
                    }
                }
                false
            }
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => true,
        };
        if !batch.is_empty() {
            let mut body = String::new();
            for ev in batch.drain(..) {
                body.push_str(&ev.to_string());
                body.push('\n');
            }
            if let Err(e) = client.post("/api/v1/events", "application/x-ndjson", body.as_bytes())
                && !warned
            {
                eprintln!("sightline: events not delivered: {e:#}");
                warned = true;
            }
        }
        if closed {
            return;
        }
    }
}

fn pump(
    stream: impl Read + Send + 'static,
    name: &'static str,
    ctx: std::sync::Arc<Ctx>,
    tx: mpsc::Sender<Value>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(stream);
        let mut buf = Vec::new();
        let mut n = 0u64;
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // Echo exactly what the program wrote.
            let _ = if name == "stdout" {
                let mut o = std::io::stdout().lock();
                o.write_all(&buf).and_then(|_| o.flush())
            } else {
                let mut o = std::io::stderr().lock();
                o.write_all(&buf).and_then(|_| o.flush())
            };
            n += 1;
            let line = String::from_utf8_lossy(&buf);
            let line = line.trim_end_matches(['\n', '\r']);
            let mut ev = ctx.event("output", "log", line);
            ev["severity"] = json!(if name == "stderr" { "warn" } else { "info" });
            ev["payload"] = json!({"stream": name, "line_no": n, "text": line});
            let _ = tx.send(ev);
        }
    })
}

fn run_any(args: &RunArgs, run_id: &str) -> anyhow::Result<i32> {
    let started = Instant::now();
    let signals = SignalGuard::install();
    let mut child = Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(&args.command[0], e))?;
    let pid = child.id();
    if let Some(signals) = &signals {
        signals.started(pid);
    }
    let ctx = std::sync::Arc::new(Ctx {
        run_id: run_id.to_string(),
        host: host_name(),
        pid,
    });
    let (tx, rx) = mpsc::channel::<Value>();
    let client = HubClient::new(&args.hub);
    let sender = std::thread::spawn(move || sender(client, rx));

    let mut start = ctx.event("process_start", "process", &args.command.join(" "));
    start["status"] = json!("running");
    start["payload"] = json!({
        "argv": args.command,
        "cwd": std::env::current_dir().ok(),
        "ppid": std::process::id(),
        // For the hub's liveness sweep (docs/SOURCES-SETUP.md, "Liveness"): the resource
        // sample below is the heartbeat, and the boot id and start time tell the child from
        // another process that gets its pid later.
        "heartbeat_s": 1.0,
        "boot_id": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string()),
        "pid_ns": std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok().map(|p| p.to_string_lossy().into_owned()),
        "start_ticks": std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| {
            sightline_core::liveness::parse_stat(&s).map(|(_, ticks)| ticks)
        }),
    });
    let _ = tx.send(start);

    let out = pump(
        child.stdout.take().expect("piped"),
        "stdout",
        ctx.clone(),
        tx.clone(),
    );
    let err = pump(
        child.stderr.take().expect("piped"),
        "stderr",
        ctx.clone(),
        tx.clone(),
    );

    // Sample resources each second until the child exits.
    let mut last: Option<(Instant, f64)> = None;
    let mut peak_rss = 0u64;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if let Some((cpu, rss, threads)) = sample(pid) {
            peak_rss = peak_rss.max(rss);
            let now = Instant::now();
            let pct = last
                .map(|(t, c)| (cpu - c) / now.duration_since(t).as_secs_f64().max(1e-3) * 100.0)
                .unwrap_or(0.0);
            if last.is_some() {
                let mut ev = ctx.event(
                    "resources",
                    "metric",
                    &format!("cpu {pct:.1}% rss {:.1} MB", rss as f64 / 1e6),
                );
                ev["entity_id"] = json!("process");
                ev["metrics"] = json!({"cpu_percent": pct, "rss_bytes": rss, "threads": threads, "cpu_seconds": cpu});
                let _ = tx.send(ev);
            }
            last = Some((now, cpu));
        }
        // Poll the exit often, sample once a second.
        let tick = Instant::now();
        while tick.elapsed() < Duration::from_secs(1) {
            if child.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let _ = out.join();
    let _ = err.join();
    let code = exit_code(status);
    let mut end = ctx.event("process_exit", "process", &format!("exit {code}"));
    end["status"] = json!(if code == 0 { "success" } else { "failed" });
    end["severity"] = json!(if code == 0 { "info" } else { "error" });
    end["duration_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
    end["metrics"] = json!({"exit_code": code, "peak_rss_bytes": peak_rss});
    {
        use std::os::unix::process::ExitStatusExt;
        end["payload"] = json!({"exit_code": status.code(), "signal": status.signal()});
    }
    let _ = tx.send(end);
    drop(tx);
    let _ = sender.join();
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_python_commands() {
        assert!(is_python("python"));
        assert!(is_python("python3.12"));
        assert!(is_python("/usr/bin/python3"));
        assert!(!is_python("pythonista"));
        assert!(!is_python("/bin/sh"));
    }
}
