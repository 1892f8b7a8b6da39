//! `GET /api/v1/live` (the active and waiting sessions from the hub's derived rows, with why
//! each waits, its project and current prompt) and `GET /api/v1/sessions/{id}/conversation`
//! (one agent session's prompts, answers and tool calls in order).
//!
//! The dashboard's Live page and its "waiting for you" queue are built from `/live`, refetched
//! when the event stream shows a session's state may have changed, so a waiting session stays
//! listed whatever else arrives. Projects are read from the hub's own file system (the hub is
//! local-first: it runs where the agents do). Handlers here must never write, and every cache
//! here has a bound written beside it.

use std::collections::HashMap;
use std::path::Path as FsPath;
use std::sync::{LazyLock, Mutex, PoisonError};

use axum::Json;
use axum::extract::{Path, Query, State};
use schemars::JsonSchema;
use serde::Serialize;
use sightline_schema::{EntityType, Timestamp};
use sightline_store::live::{self, Details, LiveQuery, LiveSession};

use crate::error::ApiError;
use crate::hub::Hub;
use crate::routes::query::EventsPage;

type Params = Query<HashMap<String, String>>;

/// The default window of `/live`: sessions with activity in the last 10 minutes (the Live
/// page's "active" since before this route), besides every waiting one.
const DEFAULT_RECENT_S: i64 = 600;
/// `recent_s` is capped at a week: the Live page's "show finished" asks for a day.
const MAX_RECENT_S: i64 = 7 * 24 * 3600;
/// Details cached per (database, lane), reused while the lane's event count and last activity
/// are unchanged. Cleared whole when full: a refill costs one bounded walk per lane.
const DETAILS_CACHE: usize = 20_000;
/// Working directory → project name, cleared whole when full.
const PROJECT_CACHE: usize = 4096;
/// Directories walked up from a working directory looking for `.git`.
const MAX_PARENTS: usize = 64;

/// Event types whose text says what a run is about: prompts, and lifecycle events (which carry
/// the working directory). Runs search (`q`) looks through these.
pub const TEXT_TYPES: &[EntityType] = &[
    EntityType::Prompt,
    EntityType::Session,
    EntityType::Run,
    EntityType::Process,
    EntityType::Workflow,
];

/// (database epoch, lane key) → (event count, last activity ms, details).
type DetailsCache = HashMap<(String, String), (i64, i64, Details)>;
static DETAILS: LazyLock<Mutex<DetailsCache>> = LazyLock::new(|| Mutex::new(HashMap::new()));
static PROJECTS: LazyLock<Mutex<HashMap<String, Option<String>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// `GET /api/v1/live`.
#[derive(Serialize, JsonSchema)]
pub struct LiveState {
    /// Newest activity first; ancestors listed for nesting have `active: false`.
    pub sessions: Vec<LiveSession>,
    /// Sessions not ended that wait for their user (`wait` set).
    pub waiting: usize,
    /// More sessions matched than the answer holds (1,000).
    pub truncated: bool,
    pub head_seq: u64,
    pub epoch: String,
    pub as_of: Timestamp,
}

pub async fn live_state(
    State(hub): State<Hub>,
    Query(p): Params,
) -> Result<Json<LiveState>, ApiError> {
    let recent_s = match p.get("recent_s").filter(|v| !v.is_empty()) {
        None => DEFAULT_RECENT_S,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|s| (0..=MAX_RECENT_S).contains(s))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "recent_s: `{v}` is not a number of seconds between 0 and {MAX_RECENT_S}"
                ))
            })?,
    };
    let now = Timestamp::now();
    let q = LiveQuery {
        now,
        recent_ms: recent_s * 1000,
        run_id: p.get("run").filter(|r| !r.is_empty()).cloned(),
    };
    // The head is read before the rows: a client that refetches on every event above it
    // misses nothing.
    let head_seq = hub.store().head_seq();
    let epoch = hub.store().epoch().to_string();
    let db = epoch.clone();
    let (sessions, truncated) = hub
        .store()
        .read(move |c| {
            let (rows, truncated) = live::live_rows(c, &q)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let details = cached_details(&db, &row, || live::details(c, &row))?;
                let project = details.cwd.as_deref().and_then(project_of);
                out.push(LiveSession {
                    key: row.key,
                    session: row.session,
                    active: row.active,
                    project,
                    details,
                });
            }
            Ok((out, truncated))
        })
        .await?;
    let waiting = sessions
        .iter()
        .filter(|s| s.details.wait.is_some() && s.session.ended_at.is_none())
        .count();
    Ok(Json(LiveState {
        sessions,
        waiting,
        truncated,
        head_seq,
        epoch,
        as_of: now,
    }))
}

fn cached_details(
    db: &str,
    row: &live::LiveRow,
    compute: impl FnOnce() -> Result<Details, sightline_store::StoreError>,
) -> Result<Details, sightline_store::StoreError> {
    let key = (db.to_string(), row.key.clone());
    let version = (row.session.event_count, row.session.last_event_at.millis());
    if let Some((count, last, d)) = DETAILS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        && (*count, *last) == version
    {
        return Ok(d.clone());
    }
    let d = compute()?;
    let mut cache = DETAILS.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= DETAILS_CACHE {
        cache.clear();
    }
    cache.insert(key, (version.0, version.1, d.clone()));
    Ok(d)
}

/// The project a working directory belongs to: the name of the nearest directory at or above
/// it that holds `.git` (a repository or a worktree), else the directory's own name. A path
/// that does not exist on this machine gets its own last component.
pub fn project_of(cwd: &str) -> Option<String> {
    if let Some(hit) = PROJECTS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(cwd)
    {
        return hit.clone();
    }
    let path = FsPath::new(cwd);
    // The directory comes from an event: only an absolute path is looked up (a relative one
    // would be read against the hub's own directory), and only `.git`'s existence is asked.
    let repo = path.is_absolute().then(|| {
        path.ancestors()
            .take(MAX_PARENTS)
            .find(|dir| dir.join(".git").exists())
    });
    let repo = repo.flatten();
    let name = repo
        .unwrap_or(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .or_else(|| (!cwd.is_empty()).then(|| cwd.to_string()));
    let mut cache = PROJECTS.lock().unwrap_or_else(PoisonError::into_inner);
    if cache.len() >= PROJECT_CACHE {
        cache.clear();
    }
    cache.insert(cwd.to_string(), name.clone());
    name
}

pub async fn conversation(
    State(hub): State<Hub>,
    Path(session_id): Path<String>,
    Query(p): Params,
) -> Result<Json<EventsPage>, ApiError> {
    let number = |key: &str, default: u64| -> Result<u64, ApiError> {
        match p.get(key).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::BadRequest(format!("{key}: `{v}` is not a number"))),
        }
    };
    let after = number("after", 0)?;
    let limit = number("limit", 500)? as usize;
    let id = session_id.clone();
    let page = hub
        .store()
        .read(move |c| live::conversation(c, &id, after, limit))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no session `{session_id}`")))?;
    Ok(Json(EventsPage {
        events: page.items,
        next_cursor: page.next_cursor,
    }))
}

#[cfg(test)]
mod tests {
    use super::project_of;
    use proptest::prelude::*;

    #[test]
    fn repository_then_directory_name() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("shop");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("src/api")).unwrap();
        let inside = repo.join("src/api").display().to_string();
        assert_eq!(project_of(&inside).as_deref(), Some("shop"));
        assert_eq!(
            project_of("/nowhere/at/all/billing").as_deref(),
            Some("billing")
        );
        assert_eq!(project_of("relative/web").as_deref(), Some("web"));
        assert_eq!(project_of("/").as_deref(), Some("/"));
        assert_eq!(project_of(""), None);
    }

    proptest! {
        /// Any text from an event: no panic, and the answer is a piece of the text (a path
        /// component of it) or nothing.
        #[test]
        fn any_directory_text(cwd in "\\PC{0,80}") {
            if let Some(p) = project_of(&cwd) {
                prop_assert!(!p.is_empty());
                prop_assert!(cwd.contains(p.as_str()), "{p:?} is not part of {cwd:?}");
            }
        }
    }
}

/// `GET /api/v1/agents`.
#[derive(Serialize, JsonSchema)]
pub struct AgentsSeen {
    /// Distinct agent names of the newest 50,000 runs and 50,000 sessions, sorted (at most 500).
    pub agents: Vec<String>,
    /// Distinct sources of the same rows, sorted.
    pub sources: Vec<String>,
    /// Older rows went unread, or there were more than 500 agents.
    pub truncated: bool,
}

/// The agents and sources seen, for filters that must offer more than a page of runs shows.
pub async fn agents(State(hub): State<Hub>) -> Result<Json<AgentsSeen>, ApiError> {
    let (agents, sources, truncated) = hub.store().read(live::agents_seen).await?;
    Ok(Json(AgentsSeen {
        agents,
        sources,
        truncated,
    }))
}
