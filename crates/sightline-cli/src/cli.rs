//! The command line (docs/CONTRACT.md §7): every subcommand, its flags and their environment variables.
//! Values given neither as a flag nor in the environment come from the config file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "sightline",
    version,
    about = "A live, persistent view of the agents and processes on this machine"
)]
pub struct Cli {
    /// Config file (TOML); defaults to $XDG_CONFIG_HOME/sightline/config.toml.
    #[arg(long, global = true, env = "SIGHTLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr as `text` or `json` (the level comes from SIGHTLINE_LOG or
    /// RUST_LOG, default info).
    #[arg(long, global = true, env = "SIGHTLINE_LOG_FORMAT", value_enum, default_value_t = crate::logging::LogFormat::Text)]
    pub log_format: crate::logging::LogFormat,
    /// A private CA's certificate (PEM) to trust besides the system's roots, for an `https://`
    /// hub, collector or plugin whose certificate it signed.
    #[arg(long, global = true, env = "SIGHTLINE_CA_FILE", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub: API, live streams and dashboard on one port.
    Serve(ServeArgs),
    /// Is a hub running? Prints its health.
    Status(HubArgs),
    /// Stop a running hub gracefully (it commits everything queued first).
    Stop(HubArgs),
    /// Follow the live event stream in the terminal.
    Tail(TailArgs),
    /// Export a run's events.
    Export(ExportArgs),
    /// Import events from a file written by export (json, ndjson, csv, yaml).
    Import(ImportArgs),
    /// Replay a recording (JSONL or YAML) into the hub as if it happened now.
    Replay(ReplayArgs),
    /// Run and monitor a program; Python programs get the tracing agent.
    Run(crate::commands::run::RunArgs),
    /// Attach the Python tracing agent to a running Python process.
    Attach(crate::commands::attach::AttachArgs),
    /// The Claude Code hook command: reads the hook payload on stdin and sends it to the hub
    /// (spooled when the hub is down). Always exits 0, prints nothing.
    Hook(HookArgs),
    /// Install (or --uninstall) the hooks or plugin that send events to the hub: claude, opencode.
    Install(InstallArgs),
    /// Print the settings `serve` and the clients would use, and where each came from (flag,
    /// environment variable, config file, default). Takes `serve`'s flags.
    Config(SettingsArgs),
    /// Check what is commonly wrong (port, database, Claude hooks, OpenCode, tmux, the Python
    /// agent, TLS) and say how to fix each; exits 1 when a check fails. Takes `serve`'s flags.
    Doctor(SettingsArgs),
    /// The Python tracing agent: `sightline agent install [--python PY]` installs it into an
    /// interpreter from the wheels shipped beside this binary.
    Agent(crate::commands::agent::AgentArgs),
    /// Print the shell completion script for bash, zsh or fish (used by scripts/dist.sh).
    #[command(hide = true)]
    Completions(CompletionsArgs),
    /// Write the man pages (sightline.1 and one per subcommand) into a directory (used by
    /// scripts/dist.sh).
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The directory to write the pages into (created if missing).
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "SIGHTLINE_PORT")]
    pub port: Option<u16>,
    /// Address to bind; anything but loopback requires --token.
    #[arg(long, env = "SIGHTLINE_BIND")]
    pub bind: Option<String>,
    /// SQLite database file.
    #[arg(long, env = "SIGHTLINE_DB")]
    pub db: Option<PathBuf>,
    /// Adapters to run, comma-separated (default: all that need no setup).
    #[arg(long, env = "SIGHTLINE_SOURCES", value_delimiter = ',')]
    pub source: Option<Vec<String>>,
    /// Require this bearer token on the API.
    #[arg(long, env = "SIGHTLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Keep events this long (e.g. 14d, 36h, 0 for forever).
    #[arg(long, env = "SIGHTLINE_RETENTION")]
    pub retention: Option<String>,
    /// Largest ingest request body in bytes.
    #[arg(long, env = "SIGHTLINE_MAX_BODY")]
    pub max_body: Option<usize>,
    /// Agent sessions with no event for this long stop counting as active and show as idle
    /// (e.g. 30m, 2h; 0 turns it off; default 30m). See docs/SOURCES-SETUP.md, "Liveness".
    #[arg(long, env = "SIGHTLINE_IDLE_AFTER")]
    pub idle_after: Option<String>,
    /// How often, in seconds, the hub checks that the producers of open runs are alive
    /// (default 5).
    #[arg(long, env = "SIGHTLINE_LIVENESS_EVERY")]
    pub liveness_every: Option<f64>,
    /// Open the dashboard in a browser once listening.
    #[arg(long)]
    pub open: bool,
    /// Tokens and roles, Host/Origin, rate limits, audit, TLS, OTLP export.
    #[command(flatten)]
    pub live: crate::commands::live::LiveArgs,
    /// Desktop and webhook notifications (waiting, failures, cost).
    #[command(flatten)]
    pub notify: crate::commands::notify::NotifyArgs,
}

/// `config` and `doctor`: the settings of `serve` and of the hub clients, resolved as they would.
#[derive(Debug, Args)]
pub struct SettingsArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// The hub's URL, as the clients (status, tail, hook, run, ...) use it.
    #[arg(long, env = "SIGHTLINE_URL", default_value = "http://127.0.0.1:4517")]
    pub url: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args, Clone)]
pub struct HubArgs {
    /// The hub's URL (`https://` for a hub serving TLS; see --cacert for a private CA).
    #[arg(long, env = "SIGHTLINE_URL", default_value = "http://127.0.0.1:4517")]
    pub url: String,
    /// Bearer token for a hub that requires one.
    #[arg(long, env = "SIGHTLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Args)]
pub struct TailArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Sources (claude, opencode, docker, workflow, tmux, python, process, otlp, custom).
    #[arg(long = "source", value_delimiter = ',')]
    pub sources: Vec<String>,
    /// Run ids.
    #[arg(long = "run", value_delimiter = ',')]
    pub runs: Vec<String>,
    /// Session ids (also matches their direct children).
    #[arg(long = "session", value_delimiter = ',')]
    pub sessions: Vec<String>,
    /// Agents.
    #[arg(long = "agent", value_delimiter = ',')]
    pub agents: Vec<String>,
    /// Entity types (tool, session, call, ...).
    #[arg(long = "type", value_delimiter = ',')]
    pub entity_types: Vec<String>,
    /// Statuses (running, failed, blocked, ...).
    #[arg(long = "status", value_delimiter = ',')]
    pub statuses: Vec<String>,
    /// Severities (debug, info, warn, error).
    #[arg(long = "severity", value_delimiter = ',')]
    pub severities: Vec<String>,
    /// Full-text query: every word must appear.
    #[arg(short = 'q', long = "query")]
    pub q: Option<String>,
    /// Start by replaying events after this seq (0 = everything stored).
    #[arg(long)]
    pub since_seq: Option<u64>,
    /// Print each event as one JSON line.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many events.
    #[arg(long)]
    pub limit: Option<u64>,
    /// Ring the terminal bell when an agent waits for you or something fails.
    #[arg(long)]
    pub bell: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// The run to export.
    pub run: String,
    /// Output format.
    #[arg(long, default_value = "json", value_parser = ["json", "ndjson", "csv", "yaml"])]
    pub format: String,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// The file to import.
    pub file: PathBuf,
    /// Its format (default: from the file's extension).
    #[arg(long, value_parser = ["json", "ndjson", "csv", "yaml"])]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// A recording: JSONL/NDJSON or YAML events.
    pub path: PathBuf,
    /// Playback speed: 1 is real time, 10 is ten times faster, 0 is as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Keep the recording's ids (by default run, session and event ids get a replay suffix so
    /// the replay is a new run beside the original).
    #[arg(long)]
    pub keep_ids: bool,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(flatten)]
    pub hub: HubArgs,
    /// Give up on the hub after this many milliseconds (the payload is spooled).
    #[arg(long, env = "SIGHTLINE_HOOK_TIMEOUT_MS", default_value_t = 1000)]
    pub timeout_ms: u64,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// What to install into: claude, opencode, codex (its `config.toml` `[otel]` section) or
    /// gemini (its `settings.json` `telemetry`).
    #[arg(value_parser = ["claude", "opencode", "codex", "gemini"])]
    pub target: String,
    /// The project's settings (.claude/settings.json or .opencode/plugins/) in the current directory.
    #[arg(long, conflicts_with = "user")]
    pub project: bool,
    /// The user's settings (~/.claude/settings.json or ~/.config/opencode/plugins/); the default.
    #[arg(long)]
    pub user: bool,
    /// An explicit settings.json (claude) or plugin file (opencode) to edit.
    #[arg(long, conflicts_with_all = ["project", "user"])]
    pub settings: Option<PathBuf>,
    /// Remove only sightline's entries.
    #[arg(long)]
    pub uninstall: bool,
    /// Claude Code: use `http` hooks posting to the hub instead of the `sightline hook` command
    /// (SessionStart keeps the command, it accepts nothing else).
    #[arg(long)]
    pub http: bool,
    /// With --http: send `Authorization: Bearer $SIGHTLINE_TOKEN` (read from Claude Code's environment).
    #[arg(long, requires = "http")]
    pub with_token: bool,
    /// The hub's URL written into http hooks and the OpenCode plugin.
    #[arg(long, env = "SIGHTLINE_URL", default_value = "http://127.0.0.1:4517")]
    pub url: String,
    /// Codex and Gemini: the hub's bearer token, written as the `Authorization` header of their
    /// OpenTelemetry export (a hub serving with a token refuses it otherwise).
    #[arg(long, env = "SIGHTLINE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print what would change without writing.
    #[arg(long)]
    pub dry_run: bool,
}
