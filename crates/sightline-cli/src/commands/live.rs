//! `serve`'s security and fleet settings (docs/SECURITY.md): token file and config tokens,
//! Host/Origin allow-lists, rate limits, audit log, TLS, and `--otlp-export`.
//!
//! Resolved once at start-up; every mistake is a config error (exit 2) that says what to fix.
//! This module must never print a token.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use sightline_server::auth::{RateLimit, SecuritySettings, TokenTable};

use crate::config::FileConfig;
use crate::exit::Exit;

#[derive(Debug, Args, Default)]
pub struct LiveArgs {
    /// Token file: one `TOKEN ROLES [NAME]` per line; roles are read, ingest, admin
    /// (comma-separated). Reloaded only at start.
    #[arg(long, env = "SIGHTLINE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Extra host names this hub answers to (IP literals, localhost and the machine's name
    /// always work); `*` turns the Host check off.
    #[arg(
        long = "allow-host",
        env = "SIGHTLINE_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<String>,
    /// Browser origins allowed besides the hub's own (e.g. https://dash.example).
    #[arg(
        long = "allow-origin",
        env = "SIGHTLINE_ALLOW_ORIGINS",
        value_delimiter = ','
    )]
    pub allow_origins: Vec<String>,
    /// Requests per second per token (bursts of twice that); 0 turns it off. Default 20000.
    #[arg(long)]
    pub rate_limit: Option<f64>,
    /// Requests per second per client address (bursts of twice that); 0 turns it off.
    /// Default 2000, not applied to loopback clients unless --rate-limit-loopback.
    #[arg(long)]
    pub rate_limit_addr: Option<f64>,
    /// Apply the per-address limit to loopback clients too.
    #[arg(long)]
    pub rate_limit_loopback: bool,
    /// Audit log file (JSON lines); default `<db>.audit.jsonl`.
    #[arg(long, env = "SIGHTLINE_AUDIT_LOG")]
    pub audit_log: Option<PathBuf>,
    /// TLS certificate chain (PEM); serves HTTPS/WSS with --tls-key.
    #[arg(long, env = "SIGHTLINE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "SIGHTLINE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Forward every event to an OpenTelemetry collector (OTLP/HTTP protobuf base URL, e.g.
    /// http://127.0.0.1:4318; an https:// one is verified like a hub, see --cacert).
    #[arg(long, env = "SIGHTLINE_OTLP_EXPORT")]
    pub otlp_export: Option<String>,
}

fn rate(value: Option<f64>, default: f64, flag: &str) -> anyhow::Result<Option<RateLimit>> {
    match value.unwrap_or(default) {
        0.0 => Ok(None),
        v if v.is_finite() && v > 0.0 => Ok(Some(RateLimit::new(v))),
        v => Err(Exit::config(format!(
            "--{flag} {v} must be a positive number of requests per second, or 0"
        ))),
    }
}

/// Security settings from flags, then the config file.
pub fn security(args: &LiveArgs, file: &FileConfig, db: &Path) -> anyhow::Result<SecuritySettings> {
    let mut tokens = TokenTable::default();
    if let Some(specs) = &file.tokens {
        tokens
            .add_specs(specs)
            .map_err(|e| Exit::config(format!("config file tokens: {e}")))?;
    }
    if let Some(path) = args.token_file.as_ref().or(file.token_file.as_ref()) {
        tokens
            .load_file(path)
            .map_err(|e| Exit::config(e.to_string()))?;
    }
    let defaults = SecuritySettings::default();
    let pick = |a: &Vec<String>, f: &Option<Vec<String>>| {
        if a.is_empty() {
            f.clone().unwrap_or_default()
        } else {
            a.clone()
        }
    };
    Ok(SecuritySettings {
        tokens,
        allowed_hosts: pick(&args.allow_hosts, &file.allow_hosts),
        allowed_origins: pick(&args.allow_origins, &file.allow_origins),
        rate_per_token: rate(
            args.rate_limit.or(file.rate_limit),
            defaults.rate_per_token.map_or(0.0, |r| r.per_second),
            "rate-limit",
        )?,
        rate_per_addr: rate(
            args.rate_limit_addr.or(file.rate_limit_addr),
            defaults.rate_per_addr.map_or(0.0, |r| r.per_second),
            "rate-limit-addr",
        )?,
        limit_loopback: args.rate_limit_loopback,
        audit_path: Some(
            args.audit_log
                .clone()
                .or(file.audit_log.clone())
                .unwrap_or_else(|| default_audit_path(db)),
        ),
        ..defaults
    })
}

/// `<db>.audit.jsonl`, beside the database.
pub fn default_audit_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".audit.jsonl");
    db.with_file_name(name)
}

/// TLS config when a certificate and key are given.
pub fn tls(
    args: &LiveArgs,
    file: &FileConfig,
) -> anyhow::Result<Option<Arc<sightline_server::auth::TlsServerConfig>>> {
    let cert = args.tls_cert.clone().or(file.tls_cert.clone());
    let key = args.tls_key.clone().or(file.tls_key.clone());
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => sightline_server::auth::load_tls(&c, &k)
            .map(Some)
            .map_err(|e| Exit::config(e.to_string())),
        _ => Err(Exit::config(
            "TLS needs both a certificate and a key (--tls-cert and --tls-key)",
        )),
    }
}

/// The OTLP export URL, if any.
pub fn otlp_export(args: &LiveArgs, file: &FileConfig) -> anyhow::Result<Option<String>> {
    match args.otlp_export.clone().or(file.otlp_export.clone()) {
        None => Ok(None),
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => Ok(Some(u)),
        Some(u) => Err(Exit::config(format!(
            "--otlp-export `{u}` is not the http:// or https:// URL of an OTLP/HTTP receiver"
        ))),
    }
}
