//! `sightline serve`: resolve settings, bind the port, run the hub until asked to stop.
//!
//! Exit codes: 2 for bad settings (including a non-loopback bind without a token), 3 when an
//! adapter cannot start, 4 when the port is taken. Stopping (SIGINT, SIGTERM, `sightline stop`)
//! drains the write queue before exiting, so nothing acknowledged is lost.
//!
//! Background sources run under the core's supervisor (`commands::sources` is the factory), so
//! the settings API can start, stop and reconfigure each while the hub runs; the notifier always
//! runs and follows the live rules (flags, else the config file's `[notify.*]` tables).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sightline_server::HubSettings;
use sightline_store::StoreConfig;

use crate::cli::ServeArgs;
use crate::config::{self, parse_retention};
use crate::exit::Exit;

/// Paths events come in by that are not sources of their own (`--source` accepts them).
const KNOWN_SOURCES: &[&str] = &["http", "ws"];

pub fn run(args: ServeArgs, config_path: Option<&Path>) -> anyhow::Result<i32> {
    let file = config::load(config_path)?;
    let audit_configured = args.live.audit_log.is_some() || file.audit_log.is_some();
    let mut security = super::live::security(&args.live, &file, Path::new("sightline.db"))?;
    let tls = super::live::tls(&args.live, &file)?;
    let otlp_export = super::live::otlp_export(&args.live, &file)?;
    let notify = super::notify::settings(&args.notify, "")?;
    // Rules saved from Settings apply when no notification flag was given.
    let notify_rules = match (&notify, &file.notify) {
        (None, Some(rules)) => {
            rules
                .check()
                .map_err(|e| Exit::config(format!("config file [notify.*]: {e}")))?;
            Some(rules.clone())
        }
        _ => None,
    };
    let source_tables = file.source.clone().unwrap_or_default();
    if let Some(name) = super::sources::unknown_tables(&source_tables) {
        return Err(Exit::config(format!(
            "config file: [source.{name}] is not a background source; known: {}",
            sightline_sources::REGISTRY
                .iter()
                .map(|r| r.name)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let selected_by_flag = args.source.clone();
    let selected_by_file = file.sources.clone();
    // The exporter and HTTP plugins trust `--cacert` / SIGHTLINE_CA_FILE: a file they cannot
    // use is a configuration error now, not a failure found at the first export.
    sightline_forward::http::Trust::from_process().map_err(|e| Exit::config(e.to_string()))?;
    let port = args.port.or(file.port).unwrap_or(config::DEFAULT_PORT);
    let bind = args
        .bind
        .or(file.bind)
        .unwrap_or_else(|| config::DEFAULT_BIND.into());
    let ip: IpAddr = bind
        .parse()
        .map_err(|_| Exit::config(format!("--bind `{bind}` is not an IP address")))?;
    // An empty value (`SIGHTLINE_TOKEN=`) means "no token"; anything else must be a usable
    // token: a blank or short one would otherwise turn auth off where it was meant on.
    let token = args.token.or(file.token.clone()).filter(|t| !t.is_empty());
    if let Some(t) = &token {
        sightline_server::auth::TokenTable::default()
            .add_checked(t, &[sightline_server::auth::Role::Admin], "--token")
            .map_err(|e| Exit::config(format!("--token / SIGHTLINE_TOKEN: {e}")))?;
    }
    if !ip.is_loopback() && token.is_none() && security.tokens.is_empty() {
        return Err(Exit::config(format!(
            "binding {ip} exposes the hub beyond this machine; set a token with --token, SIGHTLINE_TOKEN or --token-file"
        )));
    }
    let sources = args.source.or(file.sources).unwrap_or_default();
    for s in &sources {
        let adapters = sightline_sources::source_names();
        if !KNOWN_SOURCES.contains(&s.as_str()) && !adapters.contains(&s.as_str()) {
            return Err(Exit::config(format!(
                "unknown source `{s}`; known: {}, {}",
                KNOWN_SOURCES.join(", "),
                adapters.join(", ")
            )));
        }
    }
    let retention = parse_retention(
        args.retention
            .or(file.retention)
            .as_deref()
            .unwrap_or(config::DEFAULT_RETENTION),
    )?;
    let db = args
        .db
        .or(file.db)
        .unwrap_or_else(|| config::data_dir().join("sightline.db"));
    if !audit_configured {
        security.audit_path = Some(super::live::default_audit_path(&db));
    }
    let liveness = config::liveness(
        args.idle_after.or(file.idle_after).as_deref(),
        args.liveness_every.or(file.liveness_every),
    )?;
    let mut store = StoreConfig::new(&db);
    store.retention = retention;
    let settings = HubSettings {
        token,
        max_body: args
            .max_body
            .or(file.max_body)
            .unwrap_or(config::DEFAULT_MAX_BODY),
        retention_days: retention.map(|d| d.as_secs_f64() / 86_400.0),
        security,
        config_file: config::path_in_use(config_path),
        ..HubSettings::default()
    };

    if let Some(plugins) = &file.plugins
        && std::env::var_os("SIGHTLINE_PLUGINS").is_none()
    {
        #[allow(
            unsafe_code,
            reason = "set_var is unsafe once threads exist; none does yet at this point"
        )]
        // SAFETY: no other thread exists yet (the runtime starts below); the plugin registry
        // reads this variable once, at first use.
        unsafe {
            std::env::set_var("SIGHTLINE_PLUGINS", serde_json::to_string(plugins)?)
        };
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let addr = SocketAddr::new(ip, port);
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(Exit::port_in_use(format!(
                    "port {port} on {ip} is in use (is a hub already running? try `sightline status`); choose another with --port"
                )));
            }
            Err(e) => return Err(Exit::config(format!("cannot listen on {addr}: {e}"))),
        };
        // The composition root: the core, the server over it with every endpoint source
        // mounted, the plugin runner, the exporter and the background sources.
        let parts = sightline_server::Parts {
            settings,
            endpoints: sightline_sources::endpoints(),
            plugins: std::sync::Arc::new(sightline_forward::Plugins),
        };
        let hub = sightline_server::open_hub(store, parts)
            .map_err(|e| Exit::config(format!("{e} (choose another database with --db)")))?;
        recover_claude_subagents(hub.core()).await;
        let core = hub.core().clone();
        let local = listener
            .local_addr()
            .map_err(|e| Exit::config(format!("cannot read the address of {addr}: {e}")))?;
        let url = format!("{}://{}", if tls.is_some() { "https" } else { "http" }, local);
        // The exporter and the notifier start before the server takes its first request: each
        // follows the store from the head it reads when it starts, so an event posted the
        // moment the port answers is exported and judged too.
        let exporter = otlp_export
            .as_deref()
            .map(|url| sightline_forward::otlp_export::start(core.clone(), url, Default::default()));
        // The notifier always runs, so rules can be set from Settings; with no rule it only
        // reads the bus.
        let notifier = match notify {
            Some(mut n) => {
                n.dashboard_url = Some(url.clone());
                sightline_forward::notify::start(core.clone(), n)
            }
            None => sightline_forward::notify::start_live(
                core.clone(),
                notify_rules.unwrap_or_default(),
                Some(url.clone()),
            ),
        };
        let notifier = match notifier {
            Ok(n) => n,
            Err(e) => {
                if let Some(exporter) = exporter {
                    exporter.stop().await;
                }
                return Err(Exit::config(e));
            }
        };
        let running = match &tls {
            Some(tls) => sightline_server::start_tls(hub, listener, tls.clone())?,
            None => sightline_server::start(hub, listener)?,
        };
        // The liveness sweep: ends runs whose producer is gone, quiets idle agent sessions.
        let sweeper = sightline_core::liveness::start(core.clone(), liveness);
        // Background sources (transcripts, OpenCode stream, JSONL, logs, tmux) under the
        // supervisor; see docs/SOURCES-SETUP.md for their settings. One that cannot start is
        // exit code 3.
        let adapter_config = sightline_sources::AdapterConfig::from_env(&config::data_dir(), &db);
        let (initial, to_run) = super::sources::initial(
            &adapter_config,
            &source_tables,
            selected_by_flag.as_deref(),
            selected_by_file.as_deref(),
        );
        let factory = super::sources::factory(adapter_config);
        let (flush_stop, flush_rx) = tokio::sync::watch::channel(false);
        let flusher = factory.flush_checkpoints(core.clone(), flush_rx);
        let supervisor = std::sync::Arc::new(sightline_core::supervisor::Supervisor::new(
            core.clone(),
            factory,
            initial,
        ));
        for e in sightline_sources::endpoints() {
            core.health().ensure(e.spec().source);
        }
        for name in to_run {
            if let Err(e) = supervisor.start(name).await {
                supervisor.stop_all().await;
                running.hub.request_shutdown();
                let _ = running.wait().await;
                return Err(Exit::adapter(e.to_string()));
            }
        }
        core.controls().set_sources(supervisor.clone());
        let adapters_names = supervisor.running().await;
        tracing::info!(
            %url,
            database = %db.display(),
            sources = ?adapters_names,
            tls = tls.is_some(),
            auth = running.hub.security().auth_required(),
            "sightline started; dashboard at {url}/"
        );
        println!("sightline listening on {url}");
        let _ = std::io::stdout().flush();

        if args.open {
            let _ = std::process::Command::new("xdg-open").arg(&url).spawn();
        }
        let stopper = core.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received: draining the write queue, then stopping");
            stopper.request_shutdown();
        });
        let result = running.wait().await;
        sweeper.stop().await;
        tracing::info!("stopping: background sources, then the exporter");
        supervisor.stop_all().await;
        flush_stop.send_replace(true);
        let _ = flusher.await;
        if let Some(exporter) = exporter {
            exporter.stop().await;
        }
        notifier.stop().await;
        result?;
        tracing::info!("stopped; every queued event is committed");
        Ok(0)
    })
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    // Give a second signal a way out if draining ever hangs.
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        #[allow(
            clippy::exit,
            reason = "a second Ctrl-C while draining hangs is the user's way out: 130, as shells expect"
        )]
        std::process::exit(130);
    });
    tokio::time::sleep(Duration::ZERO).await;
}

/// Tells the Claude source which subagent sessions (agent-teams teammates among them) are
/// still open in the store, before the hub takes requests: the source keeps that in memory
/// (`sightline_sources::claude::link`), and without it a teammate's hooks after a restart
/// would go to a made-up lane. Bounded by the store's sweep limit (the newest 500 open Claude
/// runs, 500 open sessions each); a failed read only loses that precision, so it is logged, not
/// fatal.
async fn recover_claude_subagents(core: &sightline_core::Core) {
    use sightline_sources::claude::link::{self, OpenSubagent};
    use sightline_store::liveness::{open_or_idle_runs, sessions_of_run};
    let open = core
        .store()
        .read(|c| {
            let mut open = Vec::new();
            for run in open_or_idle_runs(c, &[sightline_schema::Source::Claude])? {
                for s in sessions_of_run(c, &run.run_id)? {
                    if let (Some(parent), Some(agent)) = (s.parent_session_id, s.agent) {
                        open.push(OpenSubagent {
                            parent_session: parent,
                            agent_id: s.session_id,
                            agent,
                            last_event_ms: s.last_event_at,
                        });
                    }
                }
            }
            Ok(open)
        })
        .await;
    match open {
        Ok(open) => {
            let learnt = link::recover(open);
            tracing::debug!("{learnt} open Claude subagent sessions recovered from the store");
        }
        Err(e) => tracing::warn!(
            "could not read the open Claude subagent sessions ({e}): a teammate that started before this start gets a lane of its own"
        ),
    }
}
