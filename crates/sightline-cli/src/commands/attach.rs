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
//! The target (often root) runs a script we write, so the script is staged where nobody else can
//! read or replace it: a new directory with an unpredictable name, mode 0700, under the user's
//! runtime directory (`$XDG_RUNTIME_DIR/sightline`) or data directory (`…/sightline/attach`);
//! the script is 0600. The token never appears in the script: it goes in its own 0600 file that
//! the script reads and deletes before starting the agent. The directory is removed when attach
//! returns, whatever the outcome.
//!
//! It must never leave the target stopped or traced: gdb detaches in every outcome, and a
//! missing ptrace permission is reported as such. It must never write the token anywhere but
//! that private token file, nor stage the script where another user can read or swap it.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    // The agent in the target will trust the private CA (`--cacert`): a file it could not use
    // is said here, before anything is injected.
    sightline_forward::http::Trust::from_process().map_err(|e| Exit::config(e.to_string()))?;
    let run_id = args.run_id.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("py-attach-{pid}-{nanos:x}")
    });
    // The target reads the staged files with its own user: when that is not ours (we are root,
    // it is not), the staging directory must be reachable and owned by it.
    let target_uid = fs_uid(&format!("/proc/{pid}/status"));
    let own_uid = fs_uid("/proc/self/status");
    let same_user = target_uid.is_none() || target_uid == own_uid;
    let base = staging_base(
        std::env::var_os("XDG_RUNTIME_DIR"),
        &crate::config::data_dir(),
        same_user,
    );
    let owner = if same_user { None } else { target_uid };
    let staged = stage(args, &run_id, &base, owner)?;
    let remote = (major, minor) >= (3, 14);
    let method = if remote { "sys.remote_exec" } else { "gdb" };
    let outcome = if remote {
        remote_exec(&exe, pid, &staged.script)
    } else {
        gdb_inject(pid, &staged.script)
    }
    .and_then(|_| {
        wait_done(
            &staged.done,
            pid,
            Duration::try_from_secs_f64(args.timeout).unwrap_or(Duration::MAX),
        )
    });
    // Removes the script, the token file if the agent never read it, and the directory.
    let _ = staged.dir.close();
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

/// The user id a process opens files with (the fourth `Uid:` field of `/proc/PID/status`).
fn fs_uid(status: &str) -> Option<u32> {
    let text = std::fs::read_to_string(status).ok()?;
    let line = text.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

/// Where the staging directories go. For a target of our own user: the runtime directory (a
/// private tmpfs on most desktops), else the data directory — never a shared directory where
/// another user could read the script or plant one. For a target of another user (we are root),
/// a directory only root could use is unreachable to it: then the system's temporary directory,
/// where the staging directory is created exclusively (mkdtemp) and handed to the target's user.
fn staging_base(runtime_dir: Option<OsString>, data_dir: &Path, same_user: bool) -> PathBuf {
    if !same_user {
        return std::env::temp_dir();
    }
    runtime_dir
        .map(PathBuf::from)
        .filter(|d| d.is_absolute() && d.is_dir())
        .map(|d| d.join("sightline"))
        .unwrap_or_else(|| data_dir.join("attach"))
}

/// The files one attach hands to the target, in their private directory (removed on drop).
struct Staged {
    dir: tempfile::TempDir,
    script: PathBuf,
    done: PathBuf,
}

/// Creates a file only its owner may read, failing if anything is already there.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

/// Writes the script (and the token file) into a new private directory under `base`; `owner`
/// is the target's user when it is not ours.
fn stage(
    args: &AttachArgs,
    run_id: &str,
    base: &Path,
    owner: Option<u32>,
) -> anyhow::Result<Staged> {
    let cannot = |what: &Path, e: std::io::Error| {
        anyhow::anyhow!(
            "cannot prepare the attach script in {} ({e}); set XDG_RUNTIME_DIR or XDG_DATA_HOME \
             to a directory you own",
            what.display()
        )
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(base)
        .map_err(|e| cannot(base, e))?;
    if owner.is_none() {
        // Ours alone, even if an older version (or the user) created it wider.
        let _ = std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o700));
    }
    // Unpredictable name, created exclusively, 0700.
    let dir = tempfile::Builder::new()
        .prefix("attach-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(base)
        .map_err(|e| cannot(base, e))?;
    let script = dir.path().join("agent.py");
    let done = dir.path().join("done");
    let token = match args.hub.token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => {
            let path = dir.path().join("token");
            write_private(&path, t.as_bytes()).map_err(|e| cannot(&path, e))?;
            Some(path)
        }
        None => None,
    };
    write_private(
        &script,
        agent_script(args, run_id, &done, token.as_deref()).as_bytes(),
    )
    .map_err(|e| cannot(&script, e))?;
    if let Some(uid) = owner {
        for path in [Some(dir.path()), Some(script.as_path()), token.as_deref()]
            .into_iter()
            .flatten()
        {
            std::os::unix::fs::chown(path, Some(uid), None).map_err(|e| {
                anyhow::anyhow!(
                    "cannot hand {} to the target's user {uid} ({e}); attach to another user's \
                     process needs root",
                    path.display()
                )
            })?;
        }
    }
    Ok(Staged { dir, script, done })
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

/// The code the target runs: reads (and deletes) the token file, starts the agent, and reports
/// back through `done`. No secret is written into it.
fn agent_script(args: &AttachArgs, run_id: &str, done: &Path, token: Option<&Path>) -> String {
    let path = args
        .agent_path
        .as_ref()
        .map(|p| {
            format!(
                "        sys.path.insert(0, {})\n",
                py_str(&p.to_string_lossy())
            )
        })
        .unwrap_or_default();
    format!(
        r#"# Written by `sightline attach`; runs once inside the target process.
import sys
def _sightline_attach():
    import os
    done = {done}
    token_file = {token_file}
    try:
        token = None
        if token_file is not None:
            try:
                with open(token_file) as f:
                    token = f.read()
            finally:
                try:
                    os.unlink(token_file)
                except OSError:
                    pass
{path}        import sightline
        a = sightline.start(url={url}, token=token, run_id={run_id}, include={include} or None,
                            exclude={exclude} or None, trace={trace}{ca_file})
        msg = "ok " + a.run_id
    except BaseException as e:
        msg = "error " + type(e).__name__ + ": " + str(e)
    fd = os.open(done, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(msg)
_sightline_attach()
del _sightline_attach
"#,
        done = py_str(&done.to_string_lossy()),
        token_file = token
            .map(|p| py_str(&p.to_string_lossy()))
            .unwrap_or_else(|| "None".into()),
        path = path,
        url = py_str(&args.hub.url),
        run_id = py_str(run_id),
        include = py_list(&args.include),
        exclude = py_list(&args.exclude),
        trace = if args.no_trace { "False" } else { "True" },
        ca_file = ca_file_option(),
    )
}

/// `, ca_file='…'` when this command trusts a private CA (`--cacert` / SIGHTLINE_CA_FILE), so
/// the agent in the target process trusts it too; absolute, since the target has its own
/// working directory. Nothing otherwise: the agent then reads the target's own environment.
fn ca_file_option() -> String {
    match sightline_forward::http::ca_file() {
        Some(path) => {
            let path = std::path::absolute(&path).unwrap_or(path);
            format!(", ca_file={}", py_str(&path.to_string_lossy()))
        }
        None => String::new(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::HubArgs;

    const SECRET: &str = "attach-secret-token-0001";

    fn args(token: Option<&str>, agent_path: Option<PathBuf>) -> AttachArgs {
        AttachArgs {
            hub: HubArgs {
                url: "http://127.0.0.1:4517".into(),
                token: token.map(str::to_string),
            },
            pid: 1,
            run_id: None,
            agent_path,
            include: vec![],
            exclude: vec![],
            no_trace: false,
            timeout: 1.0,
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_staged_script_is_private_unpredictable_and_holds_no_token() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("runtime").join("sightline");
        let staged = stage(&args(Some(SECRET), None), "run-1", &base, None).unwrap();
        assert_eq!(mode(&base), 0o700, "the base directory is the user's alone");
        let dir = staged.dir.path().to_path_buf();
        assert_eq!(dir.parent(), Some(base.as_path()), "staged under the base");
        assert_eq!(mode(&dir), 0o700);
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("attach-") && name.len() > "attach-".len() + 4,
            "{name}"
        );
        assert!(!name.contains(&std::process::id().to_string()), "{name}");
        assert_eq!(staged.script.parent(), Some(dir.as_path()));
        assert_eq!(mode(&staged.script), 0o600);
        let script = std::fs::read_to_string(&staged.script).unwrap();
        assert!(!script.contains(SECRET), "the token is not in the script");
        let token = dir.join("token");
        assert_eq!(mode(&token), 0o600);
        assert_eq!(std::fs::read_to_string(&token).unwrap(), SECRET);
        assert!(script.contains(&py_str(&token.to_string_lossy())));

        // A second attach gets another name; removal takes everything with it.
        let other = stage(&args(Some(SECRET), None), "run-2", &base, None).unwrap();
        assert_ne!(other.dir.path(), dir);
        drop(staged);
        assert!(!dir.exists(), "the staging directory is removed after use");

        // No token: no token file, and the agent falls back to the target's own environment.
        let none = stage(&args(None, None), "run-3", &base, None).unwrap();
        assert!(!none.dir.path().join("token").exists());
        assert!(
            std::fs::read_to_string(&none.script)
                .unwrap()
                .contains("token_file = None")
        );
    }

    #[test]
    fn an_existing_wider_base_is_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("attach");
        std::fs::create_dir(&base).unwrap();
        std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o755)).unwrap();
        let _staged = stage(&args(Some(SECRET), None), "run-1", &base, None).unwrap();
        assert_eq!(mode(&base), 0o700);
    }

    #[test]
    fn the_staging_base_is_the_users_own_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let data = Path::new("/home/u/.local/share/sightline");
        assert_eq!(
            staging_base(Some(tmp.path().into()), data, true),
            tmp.path().join("sightline")
        );
        assert_eq!(staging_base(None, data, true), data.join("attach"));
        // A runtime directory that is relative or missing is not used.
        assert_eq!(
            staging_base(Some("run/user".into()), data, true),
            data.join("attach")
        );
        assert_eq!(
            staging_base(Some("/nonexistent/run/user/1".into()), data, true),
            data.join("attach")
        );
        assert!(!staging_base(None, data, true).starts_with(std::env::temp_dir()));
    }

    /// Runs the staged script the way gdb makes the target run it, with a stand-in `sightline`
    /// package: the agent gets the token, and the token file is gone before it starts.
    #[test]
    fn the_script_hands_the_token_over_and_deletes_its_file() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("agent");
        std::fs::create_dir_all(pkg.join("sightline")).unwrap();
        std::fs::write(
            pkg.join("sightline").join("__init__.py"),
            include_str!("../../tests/fixtures/standin_agent.py"),
        )
        .unwrap();
        let base = tmp.path().join("base");
        let staged = stage(&args(Some(SECRET), Some(pkg)), "run-py", &base, None).unwrap();
        let token_file = staged.dir.path().join("token");
        let out = tmp.path().join("out.json");
        let code = format!(
            "exec(compile(open({}).read(), 'sightline-attach', 'exec'), {{}})",
            py_str(&staged.script.to_string_lossy())
        );
        let run = match Command::new("python3")
            .args(["-S", "-c", &code])
            .env("SIGHTLINE_STANDIN_OUT", &out)
            .env("TOKEN_FILE", &token_file)
            .env_remove("SIGHTLINE_TOKEN")
            .output()
        {
            Ok(run) => run,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("python3 is not installed: the script was not run");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        assert!(run.status.success(), "{run:?}");
        let done = std::fs::read_to_string(&staged.done).unwrap();
        assert_eq!(done, "ok run-py");
        assert_eq!(mode(&staged.done), 0o600);
        let got: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(got["token"], SECRET);
        assert_eq!(
            got["token_file_left"], false,
            "deleted before the agent starts"
        );
        assert!(!token_file.exists());
    }
}
