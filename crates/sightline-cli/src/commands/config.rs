//! `sightline config`: the settings `serve` and the hub clients would use, each with where it
//! came from (a flag, an environment variable, the config file, or the default), as a table or
//! `--json`. `doctor` checks the same resolved settings.
//!
//! Flag and environment origins come from clap's own record of the command line
//! (`ArgMatches::value_source`) and the variable names from the argument definitions in
//! `cli.rs`, so there is no second list of them here. It must never print a secret: tokens
//! show only as `set`, with their origin.

use std::fmt;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory};
use serde_json::{Value, json};

use crate::cli::{Cli, SettingsArgs};
use crate::config::{self, FileConfig};

/// The environment variable of the clients' CA file (the global `--cacert`).
pub const CA_FILE_ENV: &str = "SIGHTLINE_CA_FILE";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The command line, as this flag.
    Flag(String),
    /// This environment variable.
    Env(String),
    /// The config file at this path.
    File(PathBuf),
    /// Nobody set it.
    Default,
}

impl Origin {
    fn kind(&self) -> &'static str {
        match self {
            Origin::Flag(_) => "flag",
            Origin::Env(_) => "env",
            Origin::File(_) => "config_file",
            Origin::Default => "default",
        }
    }

    fn from(&self) -> Option<String> {
        match self {
            Origin::Flag(f) => Some(f.clone()),
            Origin::Env(e) => Some(e.clone()),
            Origin::File(p) => Some(p.display().to_string()),
            Origin::Default => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Env(var) => write!(f, "env {var}"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub struct Resolved<T> {
    pub value: T,
    pub origin: Origin,
}

/// One line of `sightline config`.
#[derive(Debug, Clone)]
pub struct Setting {
    pub name: &'static str,
    /// `None` when unset; for a secret, `set` and never the value.
    pub value: Option<String>,
    pub secret: bool,
    pub origin: Origin,
}

/// Every setting `serve` and the clients resolve, typed where `doctor` needs the value.
#[derive(Debug)]
pub struct Effective {
    pub config_file: Resolved<Option<PathBuf>>,
    /// The config file could not be read or parsed (its settings are then left out).
    pub config_error: Option<String>,
    pub port: Resolved<u16>,
    pub bind: Resolved<String>,
    pub db: Resolved<PathBuf>,
    /// `None`: the sources that are on by default.
    pub sources: Resolved<Option<Vec<String>>>,
    pub tls_cert: Resolved<Option<PathBuf>>,
    pub tls_key: Resolved<Option<PathBuf>>,
    /// The URL the hub clients (`status`, `tail`, `hook`, `run`, ...) talk to.
    pub url: Resolved<String>,
    pub ca_file: Resolved<Option<PathBuf>>,
    pub list: Vec<Setting>,
}

impl Effective {
    /// The URL `serve` would listen on, as a client on this machine reaches it.
    pub fn served_url(&self) -> String {
        let scheme = if self.tls_cert.value.is_some() {
            "https"
        } else {
            "http"
        };
        let host = match self.bind.value.as_str() {
            "0.0.0.0" | "::" | "[::]" => "127.0.0.1".to_string(),
            h if h.contains(':') => format!("[{h}]"),
            h => h.to_string(),
        };
        format!("{scheme}://{host}:{}", self.port.value)
    }

    /// Is the named source among those `serve` would start?
    pub fn source_selected(&self, name: &str) -> bool {
        match &self.sources.value {
            Some(list) => list.iter().any(|s| s == name),
            None => sightline_sources::REGISTRY
                .iter()
                .any(|r| r.name == name && r.default_on),
        }
    }
}

/// Reads clap's record of the command line for the `config` or `doctor` subcommand.
struct Origins {
    top: ArgMatches,
    sub: ArgMatches,
    command: clap::Command,
}

impl Origins {
    /// Parses this process's own arguments again: `main` keeps only the typed `Cli`, and the
    /// value sources live in the matches.
    fn of_this_process() -> Origins {
        let command = Cli::command();
        let top = command
            .clone()
            .try_get_matches_from(std::env::args_os())
            .unwrap_or_default();
        let (name, sub) = top
            .subcommand()
            .map(|(n, m)| (n.to_string(), m.clone()))
            .unwrap_or_default();
        let command = command
            .find_subcommand(&name)
            .cloned()
            .unwrap_or_else(Cli::command);
        Origins { top, sub, command }
    }

    /// The definition of argument `id`: the subcommand's own, else a global one.
    fn arg(&self, id: &str) -> Option<clap::Arg> {
        self.command
            .get_arguments()
            .chain(Cli::command().get_arguments())
            .find(|a| a.get_id() == id)
            .cloned()
    }

    /// Flag or environment, when one of them gave the argument `id`.
    fn given(&self, id: &str) -> Option<Origin> {
        // `value_source` insists on known ids (it panics in debug builds otherwise).
        let source_in = |m: &ArgMatches| {
            m.ids()
                .any(|i| i.as_str() == id)
                .then(|| m.value_source(id))
                .flatten()
        };
        let source = source_in(&self.sub).or_else(|| source_in(&self.top))?;
        let arg = self.arg(id);
        match source {
            ValueSource::CommandLine => Some(Origin::Flag(
                arg.as_ref()
                    .and_then(|a| a.get_long())
                    .map_or_else(|| id.to_string(), |l| format!("--{l}")),
            )),
            ValueSource::EnvVariable => Some(Origin::Env(
                arg.as_ref()
                    .and_then(|a| a.get_env())
                    .map_or_else(|| id.to_string(), |e| e.to_string_lossy().into_owned()),
            )),
            _ => None,
        }
    }

    /// The value from a flag or the environment, else the config file, else the default.
    fn pick<T>(
        &self,
        id: &str,
        given: Option<T>,
        in_file: Option<T>,
        file: &Option<PathBuf>,
        default: T,
    ) -> Resolved<T> {
        if let (Some(value), Some(origin)) = (given, self.given(id)) {
            return Resolved { value, origin };
        }
        match (in_file, file) {
            (Some(value), Some(path)) => Resolved {
                value,
                origin: Origin::File(path.clone()),
            },
            _ => Resolved {
                value: default,
                origin: Origin::Default,
            },
        }
    }
}

fn show<T: fmt::Display>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(ToString::to_string)
}

fn show_path(v: &Option<PathBuf>) -> Option<String> {
    v.as_ref().map(|p| p.display().to_string())
}

fn setting(name: &'static str, value: Option<String>, origin: Origin) -> Setting {
    Setting {
        name,
        value,
        secret: false,
        origin,
    }
}

/// Resolves every setting the way `serve` and the clients do.
pub fn resolve(args: &SettingsArgs, explicit_config: Option<&std::path::Path>) -> Effective {
    let o = Origins::of_this_process();
    let config_file = match explicit_config {
        Some(p) => Resolved {
            value: Some(p.to_path_buf()),
            origin: o
                .given("config")
                .unwrap_or(Origin::Env("SIGHTLINE_CONFIG".into())),
        },
        None => Resolved {
            value: config::default_config_path(),
            origin: Origin::Default,
        },
    };
    let (file, config_error) = match config::load(explicit_config) {
        Ok(f) => (f, None),
        Err(e) => (FileConfig::default(), Some(format!("{e:#}"))),
    };
    let present = config_file.value.clone().filter(|p| p.is_file());
    let fp = &present;
    let s = &args.serve;
    let live = &s.live;

    let port = o.pick("port", s.port, file.port, fp, config::DEFAULT_PORT);
    let bind = o.pick(
        "bind",
        s.bind.clone(),
        file.bind.clone(),
        fp,
        config::DEFAULT_BIND.to_string(),
    );
    let data_dir = config::data_dir();
    let db = o.pick(
        "db",
        s.db.clone(),
        file.db.clone(),
        fp,
        data_dir.join("sightline.db"),
    );
    let sources = o.pick(
        "source",
        s.source.clone().map(Some),
        file.sources.clone().map(Some),
        fp,
        None,
    );
    let token = o.pick(
        "token",
        s.token.clone().filter(|t| !t.is_empty()),
        file.token.clone(),
        fp,
        String::new(),
    );
    let retention = o.pick(
        "retention",
        s.retention.clone(),
        file.retention.clone(),
        fp,
        config::DEFAULT_RETENTION.to_string(),
    );
    let idle_after = o.pick(
        "idle_after",
        s.idle_after.clone(),
        file.idle_after.clone(),
        fp,
        "30m".to_string(),
    );
    let max_body = o.pick(
        "max_body",
        s.max_body,
        file.max_body,
        fp,
        config::DEFAULT_MAX_BODY,
    );
    let token_file = o.pick(
        "token_file",
        live.token_file.clone().map(Some),
        file.token_file.clone().map(Some),
        fp,
        None,
    );
    let nonempty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let allow_hosts = o.pick(
        "allow_hosts",
        nonempty(&live.allow_hosts),
        file.allow_hosts.clone(),
        fp,
        Vec::new(),
    );
    let allow_origins = o.pick(
        "allow_origins",
        nonempty(&live.allow_origins),
        file.allow_origins.clone(),
        fp,
        Vec::new(),
    );
    let security = sightline_server::auth::SecuritySettings::default();
    let rate_limit = o.pick(
        "rate_limit",
        live.rate_limit,
        file.rate_limit,
        fp,
        security.rate_per_token.map_or(0.0, |r| r.per_second),
    );
    let rate_limit_addr = o.pick(
        "rate_limit_addr",
        live.rate_limit_addr,
        file.rate_limit_addr,
        fp,
        security.rate_per_addr.map_or(0.0, |r| r.per_second),
    );
    let audit_log = o.pick(
        "audit_log",
        live.audit_log.clone(),
        file.audit_log.clone(),
        fp,
        super::live::default_audit_path(&db.value),
    );
    let tls_cert = o.pick(
        "tls_cert",
        live.tls_cert.clone().map(Some),
        file.tls_cert.clone().map(Some),
        fp,
        None,
    );
    let tls_key = o.pick(
        "tls_key",
        live.tls_key.clone().map(Some),
        file.tls_key.clone().map(Some),
        fp,
        None,
    );
    let otlp_export = o.pick(
        "otlp_export",
        live.otlp_export.clone().map(Some),
        file.otlp_export.clone().map(Some),
        fp,
        None,
    );
    let url = Resolved {
        value: args.url.clone(),
        origin: o.given("url").unwrap_or(Origin::Default),
    };
    // The global `--cacert` (env SIGHTLINE_CA_FILE) of every client of a hub.
    let ca_file = match o.top.try_get_one::<PathBuf>("cacert") {
        Ok(Some(path)) => Resolved {
            value: Some(path.clone()),
            origin: o.given("cacert").unwrap_or(Origin::Env(CA_FILE_ENV.into())),
        },
        _ => match std::env::var_os(CA_FILE_ENV).filter(|v| !v.is_empty()) {
            Some(path) => Resolved {
                value: Some(PathBuf::from(path)),
                origin: Origin::Env(CA_FILE_ENV.into()),
            },
            None => Resolved {
                value: None,
                origin: Origin::Default,
            },
        },
    };

    let env_or_default = |var: &str| {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            Origin::Env(var.into())
        } else {
            Origin::Default
        }
    };
    let mut list = vec![
        Setting {
            value: show_path(&config_file.value).map(|p| {
                if config_error.is_some() {
                    format!("{p} (unreadable)")
                } else if present.is_some() {
                    p
                } else {
                    format!("{p} (not found)")
                }
            }),
            ..setting("config", None, config_file.origin.clone())
        },
        setting(
            "data_dir",
            Some(data_dir.display().to_string()),
            env_or_default("XDG_DATA_HOME"),
        ),
        setting("port", Some(port.value.to_string()), port.origin.clone()),
        setting("bind", Some(bind.value.clone()), bind.origin.clone()),
        setting(
            "db",
            Some(db.value.display().to_string()),
            db.origin.clone(),
        ),
        setting(
            "sources",
            Some(match &sources.value {
                Some(list) => list.join(","),
                None => sightline_sources::REGISTRY
                    .iter()
                    .filter(|r| r.default_on)
                    .map(|r| r.name)
                    .collect::<Vec<_>>()
                    .join(","),
            }),
            sources.origin.clone(),
        ),
        Setting {
            name: "token",
            value: (!token.value.is_empty()).then(|| "set".into()),
            secret: true,
            origin: token.origin.clone(),
        },
        setting(
            "tokens",
            file.tokens
                .as_ref()
                .map(|t| format!("{} from the config file", t.len())),
            match (&file.tokens, fp) {
                (Some(_), Some(p)) => Origin::File(p.clone()),
                _ => Origin::Default,
            },
        ),
        setting(
            "token_file",
            show_path(&token_file.value),
            token_file.origin,
        ),
        setting("retention", Some(retention.value), retention.origin),
        setting("idle_after", Some(idle_after.value), idle_after.origin),
        setting(
            "max_body",
            Some(max_body.value.to_string()),
            max_body.origin,
        ),
        setting(
            "allow_hosts",
            Some(allow_hosts.value.join(",")).filter(|s| !s.is_empty()),
            allow_hosts.origin,
        ),
        setting(
            "allow_origins",
            Some(allow_origins.value.join(",")).filter(|s| !s.is_empty()),
            allow_origins.origin,
        ),
        setting(
            "rate_limit",
            Some(rate_limit.value.to_string()),
            rate_limit.origin,
        ),
        setting(
            "rate_limit_addr",
            Some(rate_limit_addr.value.to_string()),
            rate_limit_addr.origin,
        ),
        setting(
            "audit_log",
            Some(audit_log.value.display().to_string()),
            audit_log.origin,
        ),
        setting(
            "tls_cert",
            show_path(&tls_cert.value),
            tls_cert.origin.clone(),
        ),
        setting("tls_key", show_path(&tls_key.value), tls_key.origin.clone()),
        setting("otlp_export", show(&otlp_export.value), otlp_export.origin),
        setting(
            "plugins",
            match (std::env::var_os("SIGHTLINE_PLUGINS"), &file.plugins) {
                (Some(_), _) => Some("set".into()),
                (None, Some(p)) => Some(format!("{} from the config file", p.len())),
                (None, None) => None,
            },
            match (std::env::var_os("SIGHTLINE_PLUGINS"), &file.plugins, fp) {
                (Some(_), _, _) => Origin::Env("SIGHTLINE_PLUGINS".into()),
                (None, Some(_), Some(p)) => Origin::File(p.clone()),
                _ => Origin::Default,
            },
        ),
        setting(
            "opencode_url",
            Some(sightline_sources::AdapterConfig::from_env(&data_dir, &db.value).opencode_url),
            env_or_default("SIGHTLINE_OPENCODE_URL"),
        ),
        setting("url", Some(url.value.clone()), url.origin.clone()),
        setting("ca_file", show_path(&ca_file.value), ca_file.origin.clone()),
    ];
    // `tokens` exists only in the config file; a row saying "not set" for it says nothing.
    list.retain(|s| s.name != "tokens" || s.value.is_some());
    Effective {
        config_file,
        config_error,
        port,
        bind,
        db,
        sources,
        tls_cert,
        tls_key,
        url,
        ca_file,
        list,
    }
}

pub fn run(args: &SettingsArgs, explicit_config: Option<&std::path::Path>) -> anyhow::Result<i32> {
    let effective = resolve(args, explicit_config);
    if args.json {
        let settings: Vec<Value> = effective
            .list
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "value": s.value,
                    "secret": s.secret,
                    "source": s.origin.kind(),
                    "from": s.origin.from(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "settings": settings,
                "config_error": effective.config_error,
            }))?
        );
    } else {
        if let Some(e) = &effective.config_error {
            eprintln!("sightline: the config file is not used: {e}");
        }
        let width = effective
            .list
            .iter()
            .filter_map(|s| s.value.as_ref().map(|v| v.chars().count()))
            .max()
            .unwrap_or(0)
            .min(60);
        for s in &effective.list {
            let value = s.value.as_deref().unwrap_or("(not set)");
            println!("{:<16} {value:<width$}  {}", s.name, s.origin);
        }
    }
    Ok(if effective.config_error.is_some() {
        crate::exit::CONFIG
    } else {
        0
    })
}
