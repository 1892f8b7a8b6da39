//! Settings that control the hub while it runs (role admin, by the route table; the guard audits
//! every call): `GET /api/v1/settings`, `PUT /api/v1/settings/retention`, `POST /api/v1/tokens`,
//! `DELETE /api/v1/tokens/{name}`, `GET /api/v1/settings/sources`,
//! `PUT /api/v1/settings/sources/{name}`, `GET` and `PUT /api/v1/settings/notify`.
//!
//! Sources are reached through the core's `SourceControl` trait object (the CLI's supervisor),
//! never the sources crate; notification rules through the core's watch channel, which the
//! notifier follows.
//!
//! A change applies at once (retention at the writer's next sweep, a token at the next request)
//! and is written to the config file the hub was started with (`config_file`), so it survives a
//! restart; when the file cannot be written the change still applies and the answer says it was
//! not persisted. This module must never return or log a token's value, except the one answer
//! that creates it.

use std::io::Read;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sightline_core::SourceHealth;
use sightline_core::supervisor::{NotifyRules, SourceChange, SourceControlError, SourceStatus};
use sightline_store::retention::{parse_period, period_text};

use crate::auth::Role;
use crate::config_file;
use crate::error::ApiError;
use crate::hub::Hub;

/// One token as the settings list shows it: never its value.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TokenInfo {
    pub name: String,
    pub roles: Vec<String>,
    /// `config` (flags, token file, config file at start) or `api` (created while running).
    pub origin: &'static str,
    /// Whether the API can revoke it (the owner's `--token` and token-file lines cannot).
    pub revocable: bool,
}

/// `GET /api/v1/settings`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SettingsView {
    /// How long events are kept: `14d`, `36h`, ... or `0` for forever.
    pub retention: String,
    pub retention_days: Option<f64>,
    /// The config file changes are written to (`null`: changes last until the hub stops).
    pub config_file: Option<String>,
    /// Whether requests need a token at all.
    pub auth_required: bool,
    pub tokens: Vec<TokenInfo>,
    /// Every source's health: state, last event, errors.
    pub sources: Vec<SourceHealth>,
}

/// What a change did.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SettingsChange {
    pub retention: String,
    /// True when the change was written to the config file (it survives a restart).
    pub persisted: bool,
    /// Why it was not, when it was not.
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// `14d`, `36h`, `90m`, `300s`, a bare number of days, or `0` to keep everything; at least a
    /// minute, at most ten years. (Fractions such as `1.5d` are taken too; the pattern gives
    /// the whole numbers.)
    #[schemars(pattern(
        r"^(0|[1-9][0-9]{0,2}d?|[1-9][0-9]{0,3}h|[1-9][0-9]{0,4}m|[1-9][0-9]{2,5}s)$"
    ))]
    pub retention: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Letters, digits, `.`, `_`, `-`; at most 64; not `token` (the owner's) or `unusable`.
    #[schemars(pattern(r"^[A-Za-z0-9._-]{1,64}$"))]
    pub name: String,
    /// At least one of `read`, `ingest`, `admin`.
    #[schemars(length(min = 1), inner(pattern(r"^(read|ingest|admin)$")))]
    pub roles: Vec<String>,
}

/// `POST /api/v1/tokens`: the only answer that carries a token's value.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedToken {
    pub name: String,
    pub roles: Vec<String>,
    /// Shown once: store it now.
    pub token: String,
    pub persisted: bool,
    pub note: Option<String>,
    /// True when this was the first token: every request now needs one.
    pub auth_now_required: bool,
}

/// `DELETE /api/v1/tokens/{name}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RevokedToken {
    pub revoked: String,
    pub persisted: bool,
    pub note: Option<String>,
}

/// Where changes persist, if anywhere.
fn persist(
    hub: &Hub,
    edit: impl FnOnce(&std::path::Path) -> Result<(), config_file::ConfigFileError>,
) -> (bool, Option<String>) {
    match &hub.settings().config_file {
        None => (
            false,
            Some("the hub has no config file; the change lasts until it stops (start it with --config to keep changes)".into()),
        ),
        Some(path) => match edit(path) {
            Ok(()) => (true, None),
            Err(e) => {
                tracing::warn!("settings: {e}");
                (false, Some(e.to_string()))
            }
        },
    }
}

fn role_names(roles: &std::collections::BTreeSet<Role>) -> Vec<String> {
    roles.iter().map(|r| r.as_str().to_string()).collect()
}

/// `GET /api/v1/settings`.
pub async fn get_settings(State(hub): State<Hub>) -> Json<SettingsView> {
    let keep = hub.store().retention();
    let security = hub.security();
    let runtime = security.runtime_tokens();
    let mut tokens: Vec<TokenInfo> = security
        .settings
        .tokens
        .grants()
        .filter(|g| !runtime.revoked.contains(&g.name))
        .map(|g| TokenInfo {
            name: g.name.clone(),
            roles: role_names(&g.roles),
            origin: "config",
            revocable: g.name != "token" && g.name != "unusable" && !g.name.contains(':'),
        })
        .collect();
    tokens.extend(runtime.created.grants().map(|g| TokenInfo {
        name: g.name.clone(),
        roles: role_names(&g.roles),
        origin: "api",
        revocable: true,
    }));
    drop(runtime);
    Json(SettingsView {
        retention: period_text(keep),
        retention_days: keep.map(|d| d.as_secs_f64() / 86_400.0),
        config_file: hub
            .settings()
            .config_file
            .as_ref()
            .map(|p| p.display().to_string()),
        auth_required: security.auth_required(),
        tokens,
        sources: hub.core().health().snapshot(),
    })
}

/// `PUT /api/v1/settings/retention`.
pub async fn put_retention(
    State(hub): State<Hub>,
    Json(body): Json<RetentionBody>,
) -> Result<Json<SettingsChange>, ApiError> {
    let keep = parse_period(&body.retention).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    hub.store().set_retention(keep);
    let text = period_text(keep);
    tracing::info!(retention = %text, "retention changed; the next sweep uses it");
    let (persisted, note) = persist(&hub, |p| config_file::set_retention(p, Some(&text)));
    Ok(Json(SettingsChange {
        retention: text,
        persisted,
        note,
    }))
}

/// 32 random bytes as hex, from the OS.
fn new_token_value() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            ApiError::Internal(format!(
                "no randomness for a token ({e}); create tokens in the config file instead"
            ))
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `POST /api/v1/tokens`.
pub async fn create_token(
    State(hub): State<Hub>,
    Json(body): Json<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if !config_file::is_word(&body.name, 64) || body.name == "token" || body.name == "unusable" {
        return Err(ApiError::BadRequest(
            "name: 1 to 64 letters, digits, `.`, `_` or `-` (not `token`, the owner's)".into(),
        ));
    }
    let mut roles = Vec::new();
    for r in &body.roles {
        roles.push(Role::parse(r).ok_or_else(|| {
            ApiError::BadRequest(format!("role `{r}` is not one of read, ingest, admin"))
        })?);
    }
    if roles.is_empty() {
        return Err(ApiError::BadRequest(
            "roles: give at least one of read, ingest, admin".into(),
        ));
    }
    let security = hub.security();
    let taken = security
        .settings
        .tokens
        .grants()
        .any(|g| g.name == body.name)
        && !security.runtime_tokens().revoked.contains(&body.name)
        || security
            .runtime_tokens()
            .created
            .grants()
            .any(|g| g.name == body.name);
    if taken {
        return Err(ApiError::BadRequest(format!(
            "a token named `{}` exists; revoke it first or choose another name",
            body.name
        )));
    }
    let first = !security.auth_required();
    if first && !roles.contains(&Role::Admin) {
        // The first token turns auth on: without admin in it, nobody could change settings.
        return Err(ApiError::BadRequest(
            "this is the hub's first token and turns authentication on: give it the admin role, or nobody could change settings afterwards".into(),
        ));
    }
    let token = new_token_value()?;
    security
        .runtime_tokens_mut()
        .created
        .add_checked(&token, &roles, &body.name)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let names: Vec<String> = roles.iter().map(|r| r.as_str().to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (persisted, note) = persist(&hub, |p| {
        config_file::add_token(p, &body.name, &token, &refs)
    });
    tracing::info!(name = %body.name, roles = ?names, persisted, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            name: body.name,
            roles: names,
            token,
            persisted,
            note,
            auth_now_required: first,
        }),
    ))
}

/// `DELETE /api/v1/tokens/{name}`.
pub async fn revoke_token(
    State(hub): State<Hub>,
    Path(name): Path<String>,
) -> Result<Json<RevokedToken>, ApiError> {
    let security = hub.security();
    let created = security.runtime_tokens_mut().created.remove_named(&name);
    let configured = security.settings.tokens.grants().any(|g| g.name == name);
    if !created && !configured {
        return Err(ApiError::NotFound(format!(
            "no token named `{name}`; GET /api/v1/settings lists them"
        )));
    }
    if configured {
        if name == "token" || name.contains(':') {
            return Err(ApiError::BadRequest(format!(
                "`{name}` comes from --token or a token file; change it there and restart"
            )));
        }
        security.runtime_tokens_mut().revoked.insert(name.clone());
    }
    let mut in_file = true;
    let (mut persisted, mut note) = persist(&hub, |p| {
        in_file = config_file::remove_token(p, &name)?;
        Ok(())
    });
    if persisted && !in_file && configured {
        // Configured elsewhere (a token file, an environment variable): revoked until restart.
        persisted = false;
        note = Some(format!(
            "`{name}` is not a [[tokens]] table of the config file; it is revoked until the hub restarts (remove it where it is configured)"
        ));
    }
    tracing::info!(%name, persisted, "token revoked");
    Ok(Json(RevokedToken {
        revoked: name,
        persisted,
        note,
    }))
}

/// `GET /api/v1/settings/sources`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SourcesView {
    /// Every configurable background source: its settings, whether it runs, its health.
    pub sources: Vec<SourceStatus>,
}

/// `PUT /api/v1/settings/sources/{name}`: the source after the change.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SourceChanged {
    pub source: SourceStatus,
    /// True when `[source.<name>]` was written to the config file (it survives a restart).
    pub persisted: bool,
    pub note: Option<String>,
}

/// `GET /api/v1/settings/notify`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NotifyView {
    pub rules: NotifyRules,
    /// Whether this machine can show desktop notifications (`notify-send`, `osascript`).
    pub desktop_available: bool,
    /// What to install when it cannot.
    pub desktop_note: Option<String>,
}

/// `PUT /api/v1/settings/notify`: the rules now in force.
#[derive(Debug, Serialize, JsonSchema)]
pub struct NotifyChanged {
    pub rules: NotifyRules,
    pub persisted: bool,
    pub note: Option<String>,
}

fn source_control(
    hub: &Hub,
) -> Result<std::sync::Arc<dyn sightline_core::supervisor::SourceControl>, ApiError> {
    hub.core().controls().sources().cloned().ok_or_else(|| {
        ApiError::Unavailable(
            "this hub runs no background sources to configure (it was started without the source supervisor; `sightline serve` has one)".into(),
        )
    })
}

/// `GET /api/v1/settings/sources`.
pub async fn get_sources(State(hub): State<Hub>) -> Result<Json<SourcesView>, ApiError> {
    let control = source_control(&hub)?;
    Ok(Json(SourcesView {
        sources: control.list().await,
    }))
}

/// `PUT /api/v1/settings/sources/{name}`: start, stop or reconfigure one source.
pub async fn put_source(
    State(hub): State<Hub>,
    Path(name): Path<String>,
    Json(change): Json<SourceChange>,
) -> Result<Json<SourceChanged>, ApiError> {
    let control = source_control(&hub)?;
    let status = control.apply(&name, change).await.map_err(|e| match e {
        SourceControlError::Unknown(_) => ApiError::NotFound(e.to_string()),
        SourceControlError::Invalid(m) => ApiError::BadRequest(format!("{name}: {m}")),
    })?;
    let (persisted, note) = persist(&hub, |p| {
        config_file::set_source(p, &status.name, status.running, &status.config)
    });
    tracing::info!(source = %name, running = status.running, persisted, "source changed");
    Ok(Json(SourceChanged {
        source: status,
        persisted,
        note,
    }))
}

fn desktop_state(hub: &Hub) -> (bool, Option<String>) {
    match hub.core().controls().desktop() {
        Some(Ok(())) => (true, None),
        Some(Err(e)) => (false, Some(e.clone())),
        None => (false, Some("no notifier runs in this hub".into())),
    }
}

/// `GET /api/v1/settings/notify`.
pub async fn get_notify(State(hub): State<Hub>) -> Json<NotifyView> {
    let (desktop_available, desktop_note) = desktop_state(&hub);
    Json(NotifyView {
        rules: hub.core().controls().notify_rules(),
        desktop_available,
        desktop_note,
    })
}

/// `PUT /api/v1/settings/notify`: the three rules, whole; the next event uses them.
pub async fn put_notify(
    State(hub): State<Hub>,
    Json(rules): Json<NotifyRules>,
) -> Result<Json<NotifyChanged>, ApiError> {
    let controls = hub.core().controls();
    if controls.desktop().is_none() {
        return Err(ApiError::Unavailable(
            "no notifier runs in this hub (`sightline serve` starts one)".into(),
        ));
    }
    rules.check().map_err(ApiError::BadRequest)?;
    if let (false, Some(why)) = desktop_state(&hub)
        && let Some((name, _)) = rules
            .each()
            .into_iter()
            .find(|(_, r)| r.enabled && r.desktop)
    {
        return Err(ApiError::BadRequest(format!(
            "{name}: desktop notifications are not available here: {why}"
        )));
    }
    controls.set_notify_rules(rules.clone());
    let (persisted, note) = persist(&hub, |p| config_file::set_notify(p, &rules));
    tracing::info!(persisted, "notification rules changed");
    Ok(Json(NotifyChanged {
        rules,
        persisted,
        note,
    }))
}
