//! `sightline attach PID`: loads the Python tracing agent into a running Python process.
//!
//! Python 3.14+: `sys.remote_exec(pid, script)` from an interpreter of the same version.
//! Python 3.11–3.13: gdb. Like memray's attach, gdb first lets the process run to the entry of
//! one of CPython's own allocators (PyMem_*/PyObject_*, which are only ever called with the GIL
//! held and never inside one another), so no allocator lock is held; from there it only
//! *schedules* the agent with `Py_AddPendingCall`, and the interpreter runs it in the main
//! thread at its next safe point, with the GIL held. It never runs Python code at the arbitrary
//! instruction where the process happened to be stopped.
//!
//! It must never leave the target stopped or traced: gdb detaches in every outcome, and a
//! missing ptrace permission is reported as such.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

use crate::cli::HubArgs;
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// The process id of a running Python (3.11 or later).
    pub pid: u32,
    /// Run id for the events (default: a new one).
    #[arg(long)]
    pub run_id: Option<String>,
    /// A directory to put first on the target's sys.path, holding a `sightline` package built
    /// for its Python version (default: the target's own environment must have it).
    #[arg(long)]
    pub agent_path: Option<PathBuf>,
    /// Module globs to trace (default: the program's own code).
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// Module globs not to trace.
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Announce the process but leave tracing off (switch it on live from the hub).
    #[arg(long)]
    pub no_trace: bool,
    /// How long to wait for the target to run the agent.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
}

pub fn run(args: &AttachArgs) -> anyhow::Result<i32> {
    let pid = args.pid;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).map_err(|e| {
        Exit::config(format!(
            "no process {pid} that we may inspect ({e}); attach needs the same user or root"
        ))
    })?;
    let (major, minor) = python_version(&exe)?;
    if (major, minor) < (3, 11) {
        return Err(Exit::config(format!(
            "process {pid} runs Python {major}.{minor}; the agent needs 3.11 or later"
        )));
    }
    let run_id = args.run_id.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("py-attach-{pid}-{nanos:x}")
    });
    let dir = std::env::temp_dir();
    let script = dir.join(format!("sightline-attach-{pid}-{}.py", std::process::id()));
    let done = dir.join(format!(
        "sightline-attach-{pid}-{}.done",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&done);
    std::fs::write(&script, agent_script(args, &run_id, &done))?;
    let remote = (major, minor) >= (3, 14);
    let method = if remote { "sys.remote_exec" } else { "gdb" };
    let outcome = if remote {
        remote_exec(&exe, pid, &script)
    } else {
        gdb_inject(pid, &script)
    }
    .and_then(|_| wait_done(&done, pid, Duration::from_secs_f64(args.timeout)));
    let _ = std::fs::remove_file(&script);
    let _ = std::fs::remove_file(&done);
    let run_id = outcome?;
    println!("sightline: attached to {pid} (Python {major}.{minor}, {method}); run {run_id}");
    Ok(0)
}

fn python_version(exe: &Path) -> anyhow::Result<(u32, u32)> {
    let out = Command::new(exe)
        .args([
            "-S",
            "-c",
            "import sys; print(sys.version_info[0], sys.version_info[1])",
        ])
        .env("SIGHTLINE_DISABLE", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Exit::config(format!("{} is not a Python we can run: {e}", exe.display())))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text
        .split_whitespace()
        .filter_map(|s| s.parse::<u32>().ok());
    match (it.next(), it.next()) {
        (Some(a), Some(b)) if out.status.success() => Ok((a, b)),
        _ => Err(Exit::config(format!(
            "{} does not look like a Python interpreter",
            exe.display()
        ))),
    }
}

fn py_str(s: &str) -> String {
    // A Python string literal (JSON's escapes are a subset of Python's).
    serde_json::to_string(s).unwrap_or_else(|_| "''".into())
}

fn py_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| py_str(s)).collect::<Vec<_>>().join(", ")
    )
}

/// The code the target runs: starts the agent and reports back through `done`.
fn agent_script(args: &AttachArgs, run_id: &str, done: &Path) -> String {
    let path = args
        .agent_path
        .as_ref()
        .map(|p| format!("    sys.path.insert(0, {})\n", py_str(&p.to_string_lossy())))
        .unwrap_or_default();
    format!(
        r#"# Written by `sightline attach`; runs once inside the target process.
import sys
def _sightline_attach():
    done = {done}
    try:
{path}        import sightline
        a = sightline.start(url={url}, token={token}, run_id={run_id}, include={include} or None,
                            exclude={exclude} or None, trace={trace})
        msg = "ok " + a.run_id
    except BaseException as e:
        msg = "error " + type(e).__name__ + ": " + str(e)
    with open(done, "w") as f:
        f.write(msg)
_sightline_attach()
del _sightline_attach
"#,
        done = py_str(&done.to_string_lossy()),
        path = path,
        url = py_str(&args.hub.url),
        token = args
            .hub
            .token
            .as_deref()
            .map(py_str)
            .unwrap_or_else(|| "None".into()),
        run_id = py_str(run_id),
        include = py_list(&args.include),
        exclude = py_list(&args.exclude),
        trace = if args.no_trace { "False" } else { "True" },
    )
}

fn ptrace_hint(pid: u32) -> String {
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!(
        "ptrace is not permitted on process {pid} (kernel.yama.ptrace_scope={scope}): run as root, \
         or as the same user with `sudo sysctl kernel.yama.ptrace_scope=0`; in a container add \
         --cap-add=SYS_PTRACE"
    )
}

fn remote_exec(exe: &Path, pid: u32, script: &Path) -> anyhow::Result<()> {
    let out = Command::new(exe)
        .args([
            "-c",
            "import sys; sys.remote_exec(int(sys.argv[1]), sys.argv[2])",
            &pid.to_string(),
            &script.to_string_lossy(),
        ])
        .env("SIGHTLINE_DISABLE", "1")
        .stdin(Stdio::null())
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("PermissionError") || err.contains("Operation not permitted") {
        return Err(Exit::config(ptrace_hint(pid)));
    }
    Err(anyhow::anyhow!(
        "sys.remote_exec failed: {}",
        err.lines().last().unwrap_or("")
    ))
}

fn gdb_inject(pid: u32, script: &Path) -> anyhow::Result<()> {
    let code = format!(
        "exec(compile(open({}).read(), 'sightline-attach', 'exec'), {{}})",
        py_str(&script.to_string_lossy())
    );
    // gdb parses C string literals: escape backslashes and quotes.
    let c_code = code.replace('\\', "\\\\").replace('"', "\\\"");
    let mut cmd = Command::new("gdb");
    cmd.args(["-p", &pid.to_string(), "-batch", "-nx"]);
    for ex in [
        "set pagination off".to_string(),
        "set confirm off".to_string(),
        "set unwindonsignal on".to_string(),
        "set breakpoint pending off".to_string(),
        "break PyMem_Malloc".to_string(),
        "break PyMem_Realloc".to_string(),
        "break PyMem_Free".to_string(),
        "break PyObject_Malloc".to_string(),
        "break PyObject_Free".to_string(),
        "continue".to_string(),
        "delete breakpoints".to_string(),
        format!(
            "print (int) Py_AddPendingCall((int (*)(void *)) PyRun_SimpleString, (void *) strdup(\"{c_code}\"))"
        ),
        "detach".to_string(),
        "quit".to_string(),
    ] {
        cmd.arg("-ex").arg(ex);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Exit::config(
                    "gdb is required to attach to Python 3.11-3.13 (e.g. `apt-get install gdb`)",
                )
            } else {
                anyhow::anyhow!("could not run gdb: {e}")
            }
        })?;
    let out = wait_with_timeout(child, Duration::from_secs(60))?;
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("ptrace: Operation not permitted")
        || text.contains("Could not attach to process")
    {
        return Err(Exit::config(ptrace_hint(pid)));
    }
    // The `print` above shows `$1 = 0` when the call was scheduled.
    if !text
        .lines()
        .any(|l| l.trim_start().starts_with('$') && l.trim_end().ends_with("= 0"))
    {
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = tail[tail.len().saturating_sub(6)..].join("\n");
        return Err(anyhow::anyhow!(
            "gdb could not schedule the agent in process {pid}:\n{tail}"
        ));
    }
    Ok(())
}

fn wait_with_timeout(
    mut child: std::process::Child,
    limit: Duration,
) -> anyhow::Result<std::process::Output> {
    let start = Instant::now();
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(anyhow::anyhow!(
                "gdb did not finish within {}s (the target never entered the interpreter's allocator)",
                limit.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_done(done: &Path, pid: u32, limit: Duration) -> anyhow::Result<String> {
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(done) {
            if let Some(run) = text.strip_prefix("ok ") {
                return Ok(run.trim().to_string());
            }
            if let Some(err) = text.strip_prefix("error ") {
                return Err(anyhow::anyhow!(
                    "the agent failed to start in process {pid}: {err}"
                ));
            }
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(anyhow::anyhow!(
                "process {pid} exited before the agent started"
            ));
        }
        if start.elapsed() > limit {
            return Err(anyhow::anyhow!(
                "process {pid} did not run the agent within {}s: it runs scheduled code only when \
                 its main thread executes Python bytecode (is it blocked in a long C call?)",
                limit.as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
