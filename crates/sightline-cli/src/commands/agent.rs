//! `sightline agent install [--python PY] [--wheel FILE] [--yes]`: installs the Python tracing
//! agent (the `sightline-agent` distribution, imported as `sightline`) into one interpreter, from
//! the wheels the release archive ships beside the binary (`python/`, or
//! `../share/sightline/python` after an install into a prefix) or from a given wheel.
//!
//! It asks the interpreter what it is (CPython version, machine, libc, pip, what already owns
//! the `sightline` import name), picks the wheel whose tags fit, says the exact command, and runs
//! `PY -m pip install --no-index WHEEL` only with the user's consent: it must never install
//! without a `y` on a terminal or `--yes`, never reach the network (the wheel has no
//! dependencies, hence `--no-index`), and never install over an unrelated package that owns the
//! same import name.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::exit::Exit;

/// The agent's distribution name on the wheel files (PEP 427 normalises `-` to `_`). The PyPI
/// name `sightline` belongs to an unrelated project; `sightline-agent` was free.
pub const DISTRIBUTION: &str = "sightline_agent";

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(subcommand)]
    pub command: AgentCommand,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Install the tracing agent into a Python interpreter (`PY -m pip install --no-index WHEEL`).
    Install(InstallAgentArgs),
}

#[derive(Debug, Args)]
pub struct InstallAgentArgs {
    /// The interpreter to install into: a path or a name on PATH (a venv's bin/python installs
    /// into that venv).
    #[arg(long, default_value = "python3", value_name = "PY")]
    pub python: String,
    /// The wheel to install (default: the one for this interpreter among the wheels shipped
    /// beside the binary).
    #[arg(long, value_name = "FILE")]
    pub wheel: Option<PathBuf>,
    /// Install without asking (for scripts). Without it, install asks on the terminal and
    /// refuses when there is none.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

pub fn run(args: &AgentArgs) -> anyhow::Result<i32> {
    match &args.command {
        AgentCommand::Install(args) => install(args),
    }
}

// --- the interpreter ----------------------------------------------------------------------

/// What the interpreter says about itself (the probe script's one JSON line).
#[derive(Debug, Deserialize)]
pub struct Interpreter {
    pub implementation: String,
    pub version: (u32, u32),
    pub machine: String,
    pub executable: String,
    pub pip: bool,
    /// Distributions other than a build of this agent that provide the top-level `sightline`
    /// package.
    pub owners: Vec<String>,
    /// The installed version of `sightline-agent`, if any.
    pub installed: Option<String>,
    /// `glibc` and e.g. `2.36`, or empty strings on another libc.
    pub libc: String,
    pub libc_version: String,
}

impl Interpreter {
    /// `cp312` for CPython 3.12.
    pub fn tag(&self) -> String {
        format!("cp{}{}", self.version.0, self.version.1)
    }

    fn glibc(&self) -> Option<(u32, u32)> {
        if self.libc != "glibc" {
            return None;
        }
        let (major, minor) = self.libc_version.split_once('.')?;
        Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
    }
}

// Runs without the agent's bootstrap (SIGHTLINE_DISABLE) and prints one JSON line. Every lookup
// that can fail on an odd interpreter falls back instead of raising, so the answer always parses.
const PROBE: &str = r#"
import json, platform, sys, importlib.util
owners, installed = [], None
try:
    from importlib.metadata import packages_distributions, version, files
    # Owners of the top-level `sightline` that are not a build of this agent (any build,
    # whatever its distribution name, ships sightline/_native).
    owners = sorted(
        name for name in set(packages_distributions().get("sightline", []))
        if not any("sightline/_native" in str(f) for f in (files(name) or []))
    )
    try:
        installed = version("sightline-agent")
    except Exception:
        installed = None
except Exception:
    pass
libc = platform.libc_ver()
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": list(sys.version_info[:2]),
    "machine": platform.machine(),
    "executable": sys.executable,
    "pip": importlib.util.find_spec("pip") is not None,
    "owners": owners,
    "installed": installed,
    "libc": libc[0] or "",
    "libc_version": libc[1] or "",
}))
"#;

/// Asks `python` what it is; the error says how to name a working interpreter.
pub fn probe(python: &str) -> anyhow::Result<Interpreter> {
    let out = Command::new(python)
        .args(["-c", PROBE])
        .env("SIGHTLINE_DISABLE", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Exit::config(format!(
                "could not run the interpreter `{python}`: {e}; name one with --python PATH"
            ))
        })?;
    if !out.status.success() {
        return Err(Exit::config(format!(
            "`{python}` did not answer as a Python interpreter ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).map_err(|e| {
        anyhow::anyhow!(
            "`{python}` answered something unexpected ({e}): {}",
            line.trim()
        )
    })
}

// --- wheels -------------------------------------------------------------------------------

/// A wheel file name split into its parts (PEP 427: `{dist}-{version}(-{build})?-{python}-{abi}-
/// {platform}.whl`, each tag possibly a `.`-separated set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    pub distribution: String,
    pub version: String,
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

/// Parses a wheel's file name; `None` for anything that is not one. File names come from
/// directories the user controls, so nothing here may panic.
pub fn parse_wheel_name(file: &str) -> Option<WheelName> {
    let stem = file.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    if !(parts.len() == 5 || parts.len() == 6) || parts.iter().any(|p| p.is_empty()) {
        return None;
    }
    let n = parts.len();
    let set = |s: &str| -> Option<Vec<String>> {
        let tags: Vec<String> = s.split('.').map(str::to_string).collect();
        (!tags.iter().any(String::is_empty)).then_some(tags)
    };
    Some(WheelName {
        distribution: parts[0].to_ascii_lowercase().replace(['-', '.'], "_"),
        version: parts[1].to_string(),
        python: set(parts[n - 3])?,
        abi: set(parts[n - 2])?,
        platform: set(parts[n - 1])?,
    })
}

/// The glibc a `manylinux` platform tag needs, and the machine it is for.
fn manylinux_needs(tag: &str) -> Option<((u32, u32), &str)> {
    // The legacy aliases of PEP 513/571/599, then PEP 600's `manylinux_2_17_x86_64`.
    for (alias, glibc) in [
        ("manylinux1_", (2, 5)),
        ("manylinux2010_", (2, 12)),
        ("manylinux2014_", (2, 17)),
    ] {
        if let Some(machine) = tag.strip_prefix(alias) {
            return Some((glibc, machine));
        }
    }
    let rest = tag.strip_prefix("manylinux_")?;
    let mut it = rest.splitn(3, '_');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some(((major, minor), it.next()?))
}

/// Why this wheel does not fit this interpreter, or `None` when it does.
pub fn misfit(wheel: &WheelName, py: &Interpreter) -> Option<String> {
    if wheel.distribution != DISTRIBUTION {
        return Some(format!(
            "it is `{}`, not the sightline agent",
            wheel.distribution
        ));
    }
    let tag = py.tag();
    if !wheel.python.contains(&tag) || !wheel.abi.contains(&tag) {
        return Some(format!(
            "it is for {} and the interpreter is {tag}",
            wheel.python.join(".")
        ));
    }
    let platform_fits = wheel.platform.iter().any(|p| {
        if p == &format!("linux_{}", py.machine) {
            return true;
        }
        match (manylinux_needs(p), py.glibc()) {
            (Some((needs, machine)), Some(has)) => machine == py.machine && needs <= has,
            _ => false,
        }
    });
    if !platform_fits {
        let libc = if py.libc.is_empty() {
            "an unknown libc".to_string()
        } else {
            format!("{} {}", py.libc, py.libc_version)
        };
        return Some(format!(
            "it is for {} and the interpreter runs on {} with {libc}",
            wheel.platform.join("."),
            py.machine
        ));
    }
    None
}

/// Where the release archive's wheels are, relative to the running binary (symlinks resolved,
/// so a link in ~/.local/bin finds the unpacked archive).
pub fn wheel_dirs() -> Vec<PathBuf> {
    let Some(dir) = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    let mut dirs = vec![dir.join("python")];
    if let Some(prefix) = dir.parent() {
        dirs.push(prefix.join("share").join("sightline").join("python"));
    }
    dirs
}

/// The agent wheels in the shipped directories.
pub fn shipped_wheels() -> Vec<(PathBuf, WheelName)> {
    let mut found = Vec::new();
    for dir in wheel_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(wheel) = parse_wheel_name(name).filter(|w| w.distribution == DISTRIBUTION) {
                found.push((path, wheel));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn choose_wheel(args: &InstallAgentArgs, py: &Interpreter) -> anyhow::Result<(PathBuf, String)> {
    if let Some(path) = &args.wheel {
        if !path.is_file() {
            return Err(Exit::config(format!(
                "no wheel at {}; give the path of a sightline_agent-*.whl file",
                path.display()
            )));
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let wheel = parse_wheel_name(name).ok_or_else(|| {
            Exit::config(format!(
                "{} is not named like a wheel (name-version-python-abi-platform.whl)",
                path.display()
            ))
        })?;
        if let Some(why) = misfit(&wheel, py) {
            return Err(Exit::config(format!(
                "{} does not fit {}: {why}",
                path.display(),
                py.executable
            )));
        }
        return Ok((path.clone(), wheel.version));
    }
    let shipped = shipped_wheels();
    let mut reasons = Vec::new();
    for (path, wheel) in &shipped {
        match misfit(wheel, py) {
            None => return Ok((path.clone(), wheel.version.clone())),
            Some(why) => reasons.push(format!(
                "  {}: {why}",
                path.file_name().unwrap_or_default().to_string_lossy()
            )),
        }
    }
    let searched: Vec<String> = wheel_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let message = if shipped.is_empty() {
        format!(
            "no agent wheels beside this binary (looked in {}); the release archive ships them in python/. \
             Give one with --wheel FILE, or build from a source checkout: `{} -m pip install {}`",
            searched.join(" and "),
            shell_quote(&py.executable),
            source_checkout()
                .map(|p| shell_quote(&p.display().to_string()))
                .unwrap_or_else(|| "CHECKOUT/python".to_string())
        )
    } else {
        format!(
            "none of the shipped agent wheels fits {} (CPython {}.{}, {}); the agent supports CPython 3.11 to 3.14:\n{}",
            py.executable,
            py.version.0,
            py.version.1,
            py.machine,
            reasons.join("\n")
        )
    };
    Err(Exit::config(message))
}

// --- install ------------------------------------------------------------------------------

/// `arg` quoted for a POSIX shell when it needs it, so printed commands can be pasted.
pub fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn install(args: &InstallAgentArgs) -> anyhow::Result<i32> {
    let py = probe(&args.python)?;
    if py.implementation != "cpython" {
        return Err(Exit::config(format!(
            "{} is {}, and the agent runs only on CPython 3.11 to 3.14",
            py.executable, py.implementation
        )));
    }
    if !py.owners.is_empty() {
        return Err(Exit::config(format!(
            "{} already has another package that is imported as `sightline` ({}); the agent \
             would overwrite it. Install the agent into a virtual environment instead \
             (`python3 -m venv DIR`, then --python DIR/bin/python) or uninstall that package first",
            py.executable,
            py.owners.join(", ")
        )));
    }
    let (wheel, version) = choose_wheel(args, &py)?;
    if py.installed.as_deref() == Some(version.as_str()) && args.wheel.is_none() {
        eprintln!(
            "sightline: the agent {version} is already installed for {}; nothing to do",
            py.executable
        );
        return Ok(0);
    }
    if !py.pip {
        return Err(Exit::config(format!(
            "{} has no pip; add it with `{} -m ensurepip --upgrade` (or the system package python3-pip), then run this again",
            py.executable,
            shell_quote(&py.executable)
        )));
    }
    let pip_args = [
        "-m",
        "pip",
        "install",
        "--no-index",
        "--disable-pip-version-check",
    ];
    let command = format!(
        "{} {} {}",
        shell_quote(&py.executable),
        pip_args.join(" "),
        shell_quote(&wheel.display().to_string())
    );
    eprintln!(
        "sightline: install the Python agent {version} into {} (CPython {}.{}) with:\n  {command}",
        py.executable, py.version.0, py.version.1
    );
    if !args.yes && !consent()? {
        eprintln!("sightline: nothing installed");
        return Ok(1);
    }
    let status = Command::new(&py.executable)
        .args(pip_args)
        .arg(&wheel)
        .env("SIGHTLINE_DISABLE", "1")
        .stdin(Stdio::null())
        .status()
        .map_err(|e| anyhow::anyhow!("could not run {}: {e}", py.executable))?;
    if !status.success() {
        return Err(anyhow::anyhow!(
            "pip could not install the agent ({status}; its message is above). If it says the \
             environment is externally managed, make a virtual environment (`python3 -m venv DIR`) \
             and run `sightline agent install --python DIR/bin/python`"
        ));
    }
    let dir = crate::commands::run::python_agent_dir(&py.executable).map_err(|why| {
        anyhow::anyhow!("pip installed the wheel but the agent does not load: {why}")
    })?;
    eprintln!(
        "sightline: installed ({}); `sightline run -- {} app.py` now traces it function by function",
        dir.parent().unwrap_or(&dir).display(),
        shell_quote(&py.executable)
    );
    Ok(0)
}

/// Asks `Install? [y/N]` on the terminal; refuses outright when there is no terminal to ask on.
fn consent() -> anyhow::Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Exit::config(
            "not installing without consent: there is no terminal to ask on; run again with --yes",
        ));
    }
    eprint!("Install? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    // A bounded read: one line of an answer, at most 64 bytes of it kept.
    std::io::stdin().lock().read_line(&mut answer)?;
    let answer: String = answer.trim().chars().take(64).collect();
    Ok(matches!(answer.to_ascii_lowercase().as_str(), "y" | "yes"))
}

/// The exact command that installs the agent for `python`, for messages elsewhere (`run`).
pub fn install_hint(python: &str) -> String {
    let me = self_command();
    if !shipped_wheels().is_empty() {
        return format!("{me} agent install --python {}", shell_quote(python));
    }
    if let Some(source) = source_checkout() {
        return format!(
            "{} -m pip install {}",
            shell_quote(python),
            shell_quote(&source.display().to_string())
        );
    }
    format!(
        "{me} agent install --python {} --wheel sightline_agent-VERSION-cpXY-cpXY-PLATFORM.whl \
         (the wheels are in the release archive's python/ directory)",
        shell_quote(python)
    )
}

/// The agent's source (`python/` of the checkout this binary was built from), when it is still
/// there: pip can build the agent from it (maturin, with Rust). A shipped binary has none.
fn source_checkout() -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../python");
    source
        .join("pyproject.toml")
        .is_file()
        .then(|| source.canonicalize().unwrap_or(source))
}

/// `sightline` when that name on PATH is this binary, else this binary's full path.
fn self_command() -> String {
    let me = std::env::current_exe().and_then(|p| p.canonicalize()).ok();
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("sightline"))
            .find(|p| p.is_file())
            .and_then(|p| p.canonicalize().ok())
    });
    match me {
        Some(me) if on_path.as_ref() == Some(&me) => "sightline".to_string(),
        Some(me) => shell_quote(&me.display().to_string()),
        None => "sightline".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn py(version: (u32, u32), machine: &str, glibc: &str) -> Interpreter {
        Interpreter {
            implementation: "cpython".into(),
            version,
            machine: machine.into(),
            executable: "/usr/bin/python3".into(),
            pip: true,
            owners: vec![],
            installed: None,
            libc: if glibc.is_empty() { "" } else { "glibc" }.into(),
            libc_version: glibc.into(),
        }
    }

    #[test]
    fn parses_wheel_names() {
        let w = parse_wheel_name("sightline_agent-0.1.0-cp312-cp312-manylinux_2_34_x86_64.whl")
            .expect("a wheel name");
        assert_eq!(w.distribution, "sightline_agent");
        assert_eq!(w.version, "0.1.0");
        assert_eq!(w.python, ["cp312"]);
        assert_eq!(w.platform, ["manylinux_2_34_x86_64"]);
        let w =
            parse_wheel_name("x-1-7-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
                .expect("a wheel name with a build tag and a tag set");
        assert_eq!(w.platform.len(), 2);
        for bad in [
            "sightline_agent-0.1.0.tar.gz",
            "a-b-c.whl",
            "a--b-c-d.whl",
            "a-b-c-d-e-f-g.whl",
            ".whl",
            "a-b-c..d-e.whl",
        ] {
            assert_eq!(parse_wheel_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn picks_by_version_machine_and_glibc() {
        let w = parse_wheel_name("sightline_agent-0.1.0-cp312-cp312-manylinux_2_34_x86_64.whl")
            .unwrap();
        assert_eq!(misfit(&w, &py((3, 12), "x86_64", "2.36")), None);
        assert!(
            misfit(&w, &py((3, 13), "x86_64", "2.36"))
                .unwrap()
                .contains("cp313")
        );
        assert!(misfit(&w, &py((3, 12), "aarch64", "2.36")).is_some());
        assert!(
            misfit(&w, &py((3, 12), "x86_64", "2.31")).is_some(),
            "too old a glibc"
        );
        assert!(misfit(&w, &py((3, 12), "x86_64", "")).is_some(), "musl");
        let legacy =
            parse_wheel_name("sightline_agent-0.1.0-cp311-cp311-manylinux2014_x86_64.whl").unwrap();
        assert_eq!(misfit(&legacy, &py((3, 11), "x86_64", "2.17")), None);
        let other = parse_wheel_name("numpy-2.0-cp312-cp312-manylinux_2_17_x86_64.whl").unwrap();
        assert!(misfit(&other, &py((3, 12), "x86_64", "2.36")).is_some());
    }

    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(shell_quote("/usr/bin/python3.12"), "/usr/bin/python3.12");
        assert_eq!(shell_quote("/my dir/py"), "'/my dir/py'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    proptest! {
        // Any file name: no panic, and whatever parses has non-empty parts.
        #[test]
        fn any_name_parses_or_not_without_panic(name in any::<String>()) {
            if let Some(w) = parse_wheel_name(&name) {
                prop_assert!(!w.distribution.is_empty() && !w.version.is_empty());
                prop_assert!(w.python.iter().chain(&w.abi).chain(&w.platform).all(|t| !t.is_empty()));
            }
        }

        // A well-formed name gives back its parts.
        #[test]
        fn well_formed_names_round_trip(
            dist in "[a-z][a-z0-9_]{0,12}",
            version in "[0-9]{1,3}(\\.[0-9]{1,3}){0,2}",
            minor in 0u32..20,
            glibc in 5u32..40,
        ) {
            let tag = format!("cp3{minor}");
            let platform = format!("manylinux_2_{glibc}_x86_64");
            let name = format!("{dist}-{version}-{tag}-{tag}-{platform}.whl");
            let w = parse_wheel_name(&name).expect("well formed");
            prop_assert_eq!(w.distribution, dist);
            prop_assert_eq!(w.version, version);
            prop_assert_eq!(w.python, vec![tag.clone()]);
            prop_assert_eq!(w.platform, vec![platform]);
        }

        // The interpreter's tag decides: a wheel fits exactly the version it was built for.
        #[test]
        fn fits_only_its_own_version(built in 11u32..15, runs in 11u32..15) {
            let name = format!("sightline_agent-0.1.0-cp3{built}-cp3{built}-manylinux_2_28_x86_64.whl");
            let w = parse_wheel_name(&name).unwrap();
            prop_assert_eq!(misfit(&w, &py((3, runs), "x86_64", "2.36")).is_none(), built == runs);
        }
    }
}
