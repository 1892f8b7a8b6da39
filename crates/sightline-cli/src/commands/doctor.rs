//! `sightline doctor`: checks the things users commonly get wrong (the config file, the
//! port, the database's directory, the Claude Code hooks and where they send, the clients'
//! hub URL, OpenCode, tmux, the Python agent for the default `python3`, TLS and the CA file)
//! and says how to fix each. Every check has a name, a status (ok, warn, fail, skipped), a
//! one-line finding and a fix; the output is a table or `--json`; the exit code is 1 when any
//! check fails, else 0.
//!
//! It reads the settings exactly as `serve` and the clients resolve them
//! (`commands::config::resolve`). It must never change anything it checks (no file left
//! behind: the write probe removes its own; no database opened; no hook rewritten), never
//! print a secret, and never hang: every probe of the network or of a program has a timeout.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::cli::SettingsArgs;
use crate::commands::config::{Effective, resolve};

/// How long a network probe may take: a hub or OpenCode on this machine answers in
/// milliseconds, and doctor runs nine checks in a row.
const PROBE: Duration = Duration::from_millis(1500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skipped => "skip",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub finding: String,
    /// What to do; `None` when there is nothing to do.
    pub fix: Option<String>,
}

fn check(name: &'static str, status: Status, finding: impl Into<String>) -> Check {
    Check {
        name,
        status,
        finding: finding.into(),
        fix: None,
    }
}

impl Check {
    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

pub fn run(args: &SettingsArgs, explicit_config: Option<&Path>) -> anyhow::Result<i32> {
    let e = resolve(args, explicit_config);
    let checks = vec![
        config_file(&e),
        port(&e),
        database(&e),
        claude_hooks(&e),
        client_url(&e),
        opencode(&e),
        tmux(&e),
        python_agent(),
        tls(&e),
    ];
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({"ok": !failed, "checks": checks}),
        )?;
        writeln!(out)?;
    } else {
        for c in &checks {
            writeln!(out, "{:<5} {:<13} {}", c.status.label(), c.name, c.finding)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "{:<19} fix: {fix}", "")?;
            }
        }
        let count = |s| checks.iter().filter(|c| c.status == s).count();
        writeln!(
            out,
            "{} ok, {} warn, {} failed, {} skipped",
            count(Status::Ok),
            count(Status::Warn),
            count(Status::Fail),
            count(Status::Skipped)
        )?;
    }
    out.flush()?;
    Ok(if failed { 1 } else { 0 })
}

fn config_file(e: &Effective) -> Check {
    let path = e
        .config_file
        .value
        .as_ref()
        .map_or_else(|| "(none)".to_string(), |p| p.display().to_string());
    if let Some(error) = &e.config_error {
        return check("config", Status::Fail, error.clone()).fix(format!(
            "correct {path} (keys and values are in the README's configuration section), or point --config / SIGHTLINE_CONFIG at another file"
        ));
    }
    if let Err(error) = crate::config::parse_retention(
        e.list
            .iter()
            .find(|s| s.name == "retention")
            .and_then(|s| s.value.as_deref())
            .unwrap_or(crate::config::DEFAULT_RETENTION),
    ) {
        return check("config", Status::Fail, format!("{error:#}"))
            .fix("set retention to a duration like 14d, 36h or 0 (keep forever)");
    }
    match e.config_file.value.as_ref().filter(|p| p.is_file()) {
        Some(p) => check(
            "config",
            Status::Ok,
            format!("settings read from {}", p.display()),
        ),
        None => check(
            "config",
            Status::Ok,
            format!("no config file at {path}; flags, environment and defaults apply"),
        ),
    }
}

const PROBE_TIMEOUTS: sightline_forward::http::Timeouts = sightline_forward::http::Timeouts {
    connect: None,
    global: Some(PROBE),
};

/// The shared client stack's plain agent (docs/ARCHITECTURE.md, "HTTP clients"), bounded by
/// the probe's time, for the probes of plain-HTTP addresses (a hub without TLS, OpenCode).
fn probe_agent() -> ureq::Agent {
    sightline_forward::http::plain_agent(&PROBE_TIMEOUTS)
}

/// Does a sightline hub answer at this address, through this agent? (Its health route is
/// public: the probe sends no token.) The error is the request's, for [`who_answers`] to read.
fn is_hub(agent: &ureq::Agent, url: &str) -> Result<bool, ureq::Error> {
    let mut answer = agent.get(format!("{url}/api/v1/health")).call()?;
    Ok(answer
        .body_mut()
        .read_json::<Value>()
        .is_ok_and(|v| v["service"] == "sightline"))
}

/// What answers on a taken port.
enum Answer {
    /// A sightline hub, over plain HTTP or over TLS this machine trusts (`https` says which).
    Hub { https: bool },
    /// A TLS server this machine cannot verify (a hub with a private CA not given to the
    /// clients looks like this): what the client stack said of it.
    UnverifiedTls(String),
    /// Nothing that says it is a sightline hub.
    Other,
}

/// Who holds `host:port`, whatever the config says of TLS (a hub may have been started with
/// other flags): plain HTTP first, then TLS with this process's trust (the system's roots and
/// `--cacert`). Verification is never turned off: a certificate that is not trusted is named
/// as such, and the server behind it stays unknown.
fn who_answers(authority: &str) -> Answer {
    if is_hub(&probe_agent(), &format!("http://{authority}")).unwrap_or(false) {
        return Answer::Hub { https: false };
    }
    let https = format!("https://{authority}");
    // A CA file that cannot be read is the `tls` check's finding; here the system's roots do.
    let Ok(agent) = sightline_forward::http::Trust::from_process()
        .unwrap_or_else(|_| sightline_forward::http::Trust::system())
        .agent(&PROBE_TIMEOUTS)
    else {
        return Answer::Other;
    };
    match is_hub(&agent, &https) {
        Ok(true) => Answer::Hub { https: true },
        Ok(false) => Answer::Other,
        Err(e) => match sightline_forward::http::explain(&e, &https, "the server") {
            (sightline_forward::http::FailureKind::Tls, why) => Answer::UnverifiedTls(why),
            _ => Answer::Other,
        },
    }
}

fn port(e: &Effective) -> Check {
    let port = e.port.value;
    let change = format!(
        "stop that program, or choose another port with --port, SIGHTLINE_PORT or `port = ...` in the config file (now from {})",
        e.port.origin
    );
    let ip: IpAddr = match e.bind.value.parse() {
        Ok(ip) => ip,
        Err(_) => {
            return check(
                "port",
                Status::Fail,
                format!("bind address `{}` is not an IP address", e.bind.value),
            )
            .fix(format!(
                "use an IP address such as 127.0.0.1 with --bind or SIGHTLINE_BIND (now from {})",
                e.bind.origin
            ));
        }
    };
    if port == 0 {
        return check("port", Status::Ok, "port 0: serve picks a free port");
    }
    match TcpListener::bind(SocketAddr::new(ip, port)) {
        Ok(_) => check(
            "port",
            Status::Ok,
            format!("port {port} on {ip} is free for `sightline serve`"),
        ),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            let served = e.served_url();
            let authority = served.split_once("://").map_or(&*served, |(_, a)| a);
            match who_answers(authority) {
                Answer::Hub { https } => check(
                    "port",
                    Status::Ok,
                    format!(
                        "a sightline hub is already running on port {port}{} (a second `serve` would exit 4)",
                        if https { " over TLS" } else { "" }
                    ),
                ),
                Answer::UnverifiedTls(why) => check(
                    "port",
                    Status::Warn,
                    format!(
                        "port {port} on {ip} is taken by a TLS server this machine cannot verify (a sightline hub whose CA the clients were not given looks like this): {why}"
                    ),
                )
                .fix(format!(
                    "if it is your hub, give the clients (status, hook, tail) its CA with --cacert or SIGHTLINE_CA_FILE; if not, {change}"
                )),
                Answer::Other => check(
                    "port",
                    Status::Fail,
                    format!(
                        "port {port} on {ip} is taken by another program (no sightline hub answers there, over HTTP or TLS)"
                    ),
                )
                .fix(change),
            }
        }
        Err(err) => check(
            "port",
            Status::Fail,
            format!("cannot listen on {ip}:{port}: {err}"),
        )
        .fix(change),
    }
}

/// Can this process create files in `dir`? Tried for real, since permission bits do not tell
/// (root, ACLs, read-only mounts).
fn writable_dir(dir: &Path) -> Result<(), std::io::Error> {
    tempfile::Builder::new()
        .prefix(".sightline-doctor-")
        .tempfile_in(dir)
        .map(drop)
}

fn database(e: &Effective) -> Check {
    let db = &e.db.value;
    let choose = format!(
        "or choose another file with --db, SIGHTLINE_DB or `db = ...` in the config file (now from {})",
        e.db.origin
    );
    if db.is_dir() {
        return check(
            "database",
            Status::Fail,
            format!("{} is a directory, not a database file", db.display()),
        )
        .fix(format!("name a file inside it, {choose}"));
    }
    let dir = match db.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    // The nearest directory that exists: serve creates the rest.
    let mut existing = dir.as_path();
    while !existing.exists() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => {
                existing = Path::new(".");
                break;
            }
        }
    }
    if !existing.is_dir() {
        return check(
            "database",
            Status::Fail,
            format!(
                "cannot create {}: {} is not a directory",
                dir.display(),
                existing.display()
            ),
        )
        .fix(format!(
            "move {} out of the way, {choose}",
            existing.display()
        ));
    }
    if let Err(err) = writable_dir(existing) {
        return check(
            "database",
            Status::Fail,
            format!(
                "cannot write in {} ({err}); SQLite needs to create the database and its -wal and -shm files there",
                existing.display()
            ),
        )
        .fix(format!(
            "make it writable (chmod u+w {}), {choose}",
            existing.display()
        ));
    }
    if db.exists() {
        if let Err(err) = std::fs::OpenOptions::new().read(true).write(true).open(db) {
            return check(
                "database",
                Status::Fail,
                format!("cannot open {} for writing: {err}", db.display()),
            )
            .fix(format!(
                "make it writable (chmod u+w {}), {choose}",
                db.display()
            ));
        }
        let mut head = [0u8; 16];
        let read = std::fs::File::open(db)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        if read > 0 && head[..read.min(16)] != b"SQLite format 3\0"[..read.min(16)] {
            return check(
                "database",
                Status::Fail,
                format!("{} is not a SQLite database", db.display()),
            )
            .fix(format!("move it away, {choose}"));
        }
        return check(
            "database",
            Status::Ok,
            format!("{} exists and is writable", db.display()),
        );
    }
    check(
        "database",
        Status::Ok,
        format!(
            "{} will be created (its directory is writable)",
            db.display()
        ),
    )
}

/// `scheme://host:port` of a URL, with loopback names made one, for comparing where two
/// URLs lead. `None` when it is not an http(s) URL.
fn endpoint(url: &str) -> Option<(String, String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse::<u16>() {
            Ok(p) => (h.to_string(), p),
            Err(_) if authority.starts_with('[') && authority.ends_with(']') => {
                (authority.to_string(), default_port(&scheme)?)
            }
            Err(_) => return None,
        },
        _ => (authority.to_string(), default_port(&scheme)?),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let host = if loopback {
        "loopback".to_string()
    } else {
        host
    };
    Some((scheme, host, port))
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// Does `url` lead to the hub `serve` would run? A hub bound to every address answers at any
/// of this machine's names, so then only the scheme and port must agree.
fn same_hub(url: &str, e: &Effective) -> bool {
    let Some((scheme, host, port)) = endpoint(url) else {
        return false;
    };
    let Some((s2, h2, p2)) = endpoint(&e.served_url()) else {
        return false;
    };
    let any_address = matches!(e.bind.value.as_str(), "0.0.0.0" | "::");
    scheme == s2 && port == p2 && (host == h2 || any_address)
}

/// Claude Code's settings files that may hold hooks: the user's, then this project's.
fn claude_settings_files() -> Vec<PathBuf> {
    let user = std::env::var_os("CLAUDE_CONFIG_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|h| PathBuf::from(h).join(".claude"))
        });
    let mut files: Vec<PathBuf> = user
        .into_iter()
        .flat_map(|d| [d.join("settings.json"), d.join("settings.local.json")])
        .collect();
    files.push(PathBuf::from(".claude/settings.json"));
    files.push(PathBuf::from(".claude/settings.local.json"));
    files
}

/// The first word of a shell command, unquoted (what `install` writes: one shell word).
fn first_word(command: &str) -> String {
    let command = command.trim_start();
    if let Some(rest) = command.strip_prefix('\'') {
        let mut out = String::new();
        let mut rest = rest;
        loop {
            match rest.find('\'') {
                Some(i) => {
                    out.push_str(&rest[..i]);
                    rest = &rest[i + 1..];
                    if let Some(r) = rest.strip_prefix("\\''") {
                        out.push('\'');
                        rest = r;
                    } else {
                        return out;
                    }
                }
                None => {
                    out.push_str(rest);
                    return out;
                }
            }
        }
    }
    command
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Is `program` (a path, or a name looked up on PATH) an existing file?
fn runnable(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn claude_hooks(e: &Effective) -> Check {
    let hub = e.served_url();
    let mut found = Vec::new();
    let mut wrong = Vec::new();
    let mut wrong_http = false;
    let mut broken = Vec::new();
    let mut unreadable = Vec::new();
    let mut events_seen = std::collections::BTreeSet::new();
    for file in claude_settings_files() {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => {
                unreadable.push(format!("{}: {err}", file.display()));
                continue;
            }
        };
        let settings: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(err) => {
                unreadable.push(format!("{} is not JSON: {err}", file.display()));
                continue;
            }
        };
        // Command hooks run `sightline hook`, which reads SIGHTLINE_URL from Claude Code's
        // environment: the settings' `env` block, else the one Claude Code inherits.
        let env_url = settings
            .pointer("/env/SIGHTLINE_URL")
            .and_then(Value::as_str)
            .map(str::to_string);
        let Some(hooks) = settings.get("hooks").and_then(Value::as_object) else {
            continue;
        };
        for (event, groups) in hooks {
            let handlers = groups
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.get("hooks").and_then(Value::as_array))
                .flatten()
                .filter(|h| super::install::is_ours(h));
            for h in handlers {
                events_seen.insert(event.clone());
                found.push(file.clone());
                if let Some(url) = h.get("url").and_then(Value::as_str) {
                    if !same_hub(url, e) {
                        wrong.push(format!("{} ({event}) posts to {url}", file.display()));
                        wrong_http = true;
                    }
                    continue;
                }
                let command = h.get("command").and_then(Value::as_str).unwrap_or("");
                let program = first_word(command);
                if !runnable(&program) {
                    broken.push(format!(
                        "{} ({event}) runs {program}, which does not exist",
                        file.display()
                    ));
                }
                let url = env_url
                    .clone()
                    .or_else(|| {
                        std::env::var("SIGHTLINE_URL")
                            .ok()
                            .filter(|u| !u.is_empty())
                    })
                    .unwrap_or_else(|| "http://127.0.0.1:4517".into());
                if !same_hub(&url, e) {
                    wrong.push(format!(
                        "{} ({event}) runs `sightline hook`, which sends to {url}",
                        file.display()
                    ));
                }
            }
        }
    }
    found.dedup();
    if !unreadable.is_empty() && found.is_empty() {
        return check(
            "claude_hooks",
            Status::Fail,
            format!(
                "cannot read Claude Code's settings: {}",
                unreadable.join("; ")
            ),
        )
        .fix(
            "repair the file (Claude Code reads it as JSON), then run `sightline install claude`",
        );
    }
    if found.is_empty() {
        return check(
            "claude_hooks",
            Status::Warn,
            "no sightline hooks in Claude Code's settings; Claude Code sessions are seen only through their transcripts",
        )
        .fix("sightline install claude");
    }
    if !broken.is_empty() {
        return check(
            "claude_hooks",
            Status::Fail,
            format!(
                "{} hook(s) cannot run: {}",
                broken.len(),
                first_and_more(&broken)
            ),
        )
        .fix("sightline install claude (rewrites our hooks with this binary's path)");
    }
    if !wrong.is_empty() {
        return check(
            "claude_hooks",
            Status::Fail,
            format!(
                "{} hook(s) send elsewhere than this hub ({hub}): {}",
                wrong.len(),
                first_and_more(&wrong)
            ),
        )
        .fix(if wrong_http {
            format!(
                "sightline install claude --http --url {hub} (rewrites only sightline's hooks), or serve on the port the hooks use"
            )
        } else {
            format!(
                "set \"SIGHTLINE_URL\": \"{hub}\" in the settings' env block (command hooks read it), or serve on the port the hooks use"
            )
        });
    }
    let missing: Vec<&str> = super::install::CLAUDE_EVENTS
        .iter()
        .copied()
        .filter(|ev| !events_seen.contains(*ev))
        .collect();
    let files: Vec<String> = found.iter().map(|f| f.display().to_string()).collect();
    let mut files = files;
    files.dedup();
    if !missing.is_empty() {
        return check(
            "claude_hooks",
            Status::Warn,
            format!(
                "sightline hooks in {} miss {} event(s): {}",
                files.join(", "),
                missing.len(),
                missing.join(", ")
            ),
        )
        .fix("sightline install claude (adds the missing ones, keeps yours)");
    }
    check(
        "claude_hooks",
        Status::Ok,
        format!(
            "hooks for all {} events in {} send to {hub}",
            super::install::CLAUDE_EVENTS.len(),
            files.join(", ")
        ),
    )
}

fn first_and_more(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} (and {} more)", items[0], n - 1),
    }
}

fn client_url(e: &Effective) -> Check {
    let hub = e.served_url();
    if endpoint(&e.url.value).is_none() {
        return check(
            "client_url",
            Status::Fail,
            format!("`{}` is not an http:// or https:// URL", e.url.value),
        )
        .fix(format!(
            "set SIGHTLINE_URL or --url to {hub} (now from {})",
            e.url.origin
        ));
    }
    if same_hub(&e.url.value, e) {
        return check(
            "client_url",
            Status::Ok,
            format!("clients (status, tail, hook, run) talk to {}", e.url.value),
        );
    }
    check(
        "client_url",
        Status::Warn,
        format!(
            "clients (status, tail, hook, run) talk to {} but serve listens on {hub}",
            e.url.value
        ),
    )
    .fix(format!(
        "export SIGHTLINE_URL={hub} (now from {}), unless the hub you use runs elsewhere",
        e.url.origin
    ))
}

fn opencode(e: &Effective) -> Check {
    if !e.source_selected(sightline_sources::opencode::NAME) {
        return check(
            "opencode",
            Status::Skipped,
            "the opencode source is not selected (--source / SIGHTLINE_SOURCES)",
        );
    }
    let config =
        sightline_sources::AdapterConfig::from_env(&crate::config::data_dir(), &e.db.value);
    let url = config.opencode_url.trim_end_matches('/').to_string();
    let configured = std::env::var_os("SIGHTLINE_OPENCODE_URL").is_some_and(|v| !v.is_empty());
    let Some((_, _, port)) = endpoint(&url) else {
        return check(
            "opencode",
            Status::Fail,
            format!("SIGHTLINE_OPENCODE_URL `{url}` is not an http:// URL"),
        )
        .fix("point SIGHTLINE_OPENCODE_URL at `opencode serve`, e.g. http://127.0.0.1:4096");
    };
    let host = url
        .split_once("://")
        .map(|(_, r)| r.split('/').next().unwrap_or(r))
        .unwrap_or(&url)
        .to_string();
    let reachable = host
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|addr| TcpStream::connect_timeout(&addr, PROBE).is_ok());
    if reachable {
        let agent = probe_agent();
        let status = agent
            .get(format!("{url}/config"))
            .call()
            .map(|r| r.status().as_u16());
        return match status {
            Ok(401) if config.opencode_password.is_none() => check(
                "opencode",
                Status::Fail,
                format!("OpenCode at {url} answered 401: it has a password"),
            )
            .fix("set OPENCODE_SERVER_PASSWORD to its password"),
            Ok(401) => check(
                "opencode",
                Status::Fail,
                format!("OpenCode at {url} refused OPENCODE_SERVER_PASSWORD"),
            )
            .fix("set OPENCODE_SERVER_PASSWORD to the password `opencode serve` uses"),
            Ok(_) => check("opencode", Status::Ok, format!("OpenCode answers at {url}")),
            Err(err) => check(
                "opencode",
                Status::Warn,
                format!("something listens at {url} but does not answer HTTP ({err})"),
            )
            .fix("point SIGHTLINE_OPENCODE_URL at `opencode serve`"),
        };
    }
    if !configured && !runnable("opencode") {
        return check(
            "opencode",
            Status::Skipped,
            "OpenCode is not installed (no `opencode` on PATH); the opencode source waits idle",
        );
    }
    check(
        "opencode",
        Status::Warn,
        format!("no OpenCode server answers at {url}; the opencode source keeps retrying"),
    )
    .fix(format!(
        "start it with `opencode serve --port {port}`, or point SIGHTLINE_OPENCODE_URL at yours; ignore this if you do not use OpenCode"
    ))
}

/// Runs a program with a time limit; its stdout when it exits 0.
fn run_briefly(program: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = std::io::Read::read_to_string(&mut o, &mut out);
                }
                return if status.success() {
                    Ok(out.trim().to_string())
                } else {
                    Err(format!("exited with {status}"))
                };
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("did not answer within 5 s".into());
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn tmux(e: &Effective) -> Check {
    let selected = e.source_selected(sightline_sources::tmux::NAME);
    match run_briefly("tmux", &["-V"]) {
        Ok(version) if selected => check(
            "tmux",
            Status::Ok,
            format!("{version} on PATH; the tmux source follows its panes"),
        ),
        Ok(version) => check(
            "tmux",
            Status::Ok,
            format!("{version} on PATH (the tmux source is not selected)"),
        ),
        Err(_) if !selected => check(
            "tmux",
            Status::Skipped,
            "tmux is not on PATH, and the tmux source is not selected",
        ),
        Err(err) => {
            let status = if e.sources.value.is_some() {
                // Asked for by name: the user expects panes.
                Status::Fail
            } else {
                Status::Warn
            };
            check(
                "tmux",
                status,
                format!("tmux is not on PATH ({err}); the tmux source sees no panes"),
            )
            .fix("install tmux (e.g. `apt install tmux` or `brew install tmux`), or leave tmux out of --source")
        }
    }
}

fn python_agent() -> Check {
    if !runnable("python3") {
        return check(
            "python_agent",
            Status::Skipped,
            "no python3 on PATH; `sightline run` of Python programs needs one",
        );
    }
    match super::run::python_agent_dir("python3") {
        Ok(dir) => check(
            "python_agent",
            Status::Ok,
            format!("the default python3 imports the agent ({})", dir.display()),
        ),
        Err(message) => {
            let mut lines = message.lines();
            let finding = lines.next().unwrap_or("the agent does not import").trim();
            let finding = finding
                .trim_end_matches(':')
                .trim_end_matches("; install it with");
            let fix: Vec<&str> = lines.map(str::trim).filter(|l| !l.is_empty()).collect();
            let c = check(
                "python_agent",
                Status::Warn,
                format!("{finding}; `sightline run` traces Python programs only with it"),
            );
            if fix.is_empty() {
                c.fix("sightline agent install --python python3")
            } else {
                c.fix(fix.join(" "))
            }
        }
    }
}

fn tls(e: &Effective) -> Check {
    let mut found = Vec::new();
    match (&e.tls_cert.value, &e.tls_key.value) {
        (Some(cert), Some(key)) => {
            if let Err(err) = sightline_server::auth::load_tls(cert, key) {
                return check("tls", Status::Fail, format!("serve's TLS: {err}")).fix(format!(
                    "point --tls-cert / --tls-key (now from {} and {}) at a readable PEM certificate chain and its private key",
                    e.tls_cert.origin, e.tls_key.origin
                ));
            }
            found.push(format!("serve uses TLS ({})", cert.display()));
        }
        (None, None) => found.push("serve uses plain HTTP".into()),
        _ => {
            return check(
                "tls",
                Status::Fail,
                "serve has only one of a TLS certificate and key",
            )
            .fix("give both --tls-cert and --tls-key (or SIGHTLINE_TLS_CERT and SIGHTLINE_TLS_KEY), or neither");
        }
    }
    match &e.ca_file.value {
        Some(ca) => {
            // The clients' own loader: doctor judges the file exactly as they will.
            if let Err(err) = sightline_forward::http::load_ca_file(ca) {
                return check("tls", Status::Fail, format!("CA file: {err}")).fix(format!(
                    "point --cacert or SIGHTLINE_CA_FILE (now from {}) at your CA's certificate in PEM, or unset it to trust only the system's roots",
                    e.ca_file.origin
                ));
            }
            found.push(format!(
                "clients trust {} besides the system roots",
                ca.display()
            ));
        }
        None => found.push("clients trust the system roots".into()),
    }
    let https_hub = e.tls_cert.value.is_some();
    let https_url = e.url.value.starts_with("https://");
    if https_hub && !https_url {
        return check(
            "tls",
            Status::Fail,
            format!(
                "serve uses TLS but the clients' URL is {} (plain HTTP)",
                e.url.value
            ),
        )
        .fix(format!("export SIGHTLINE_URL={}", e.served_url()));
    }
    check("tls", Status::Ok, found.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn endpoints_compare_loopback_names_and_default_ports() {
        assert_eq!(
            endpoint("http://localhost:4517/x"),
            Some(("http".into(), "loopback".into(), 4517))
        );
        assert_eq!(
            endpoint("http://127.0.0.1:4517"),
            endpoint("http://[::1]:4517/api")
        );
        assert_eq!(
            endpoint("https://hub.example"),
            Some(("https".into(), "hub.example".into(), 443))
        );
        assert_eq!(
            endpoint("http://u:p@h:1/"),
            Some(("http".into(), "h".into(), 1))
        );
        assert_eq!(endpoint("ftp://h"), None);
        assert_eq!(endpoint("http://h:notaport"), None);
    }

    #[test]
    fn first_word_unquotes_what_install_writes() {
        for path in [
            "/usr/bin/sightline",
            "/opt/my apps/sightline",
            "/tmp/it's/sightline",
        ] {
            let word = super::super::install::shell_word(path);
            assert_eq!(first_word(&format!("{word} hook")), path);
        }
    }

    proptest! {
        #[test]
        fn endpoint_never_panics(url in "\\PC{0,60}") {
            let _ = endpoint(&url);
        }

        #[test]
        fn first_word_inverts_shell_word(path in "[^\\x00]{1,40}") {
            let word = super::super::install::shell_word(&path);
            prop_assert_eq!(first_word(&format!("{word} hook")), path);
        }
    }
}
