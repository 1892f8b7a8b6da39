//! What one Claude Code route learns that another needs to place its events: which subagent a
//! tool call ran in, what type a subagent is, which subagent a teammate is, and which prompt a
//! turn answered.
//!
//! Claude Code reports one session through three routes that each see part of it: hooks carry
//! `agent_id` and `prompt_id` on every payload, OpenTelemetry logs carry `prompt.id` and at most
//! a subagent's type (`agent.name`) but no `agent_id`, and trace spans carry `agent_id` on some spans and neither on the
//! `claude_code.interaction` span of a turn. The routes share these small maps so that a tool
//! call's OTel log and execution span land in the subagent session its hooks named, and a
//! turn's span names the prompt it answered. A lookup that misses only means the event stays in
//! the root session (or keeps its span id): placement is never wrong, only less precise.
//!
//! Every map is bounded ([`MAX_ENTRIES`]) and cleared whole when full, so a long-running hub's
//! memory does not grow with the sessions it has seen. This module must never hold a lock while
//! doing anything but a map operation.
//!
//! The maps live in memory, so a restarted hub would not know which session a running
//! agent-teams teammate is. [`recover`] refills the subagents from what the store still holds
//! open: the composition root (`sightline serve`) reads the open subagent sessions of open
//! Claude runs before it takes requests and hands them here, so this crate never reads the
//! store itself.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

/// Entries per map before it is cleared: far more than the tool calls and subagents of the
/// sessions a machine runs at once, small enough (a few MB) to never matter.
pub const MAX_ENTRIES: usize = 20_000;
/// Prompts remembered per session (a turn's span arrives within seconds of its prompt).
const PROMPTS_PER_SESSION: usize = 16;

struct Maps {
    /// tool_use_id → the subagent (agent_id) that made the call.
    tool_agent: HashMap<String, String>,
    /// agent_id → agent type (`Explore`, `general-purpose`, ...).
    agent_type: HashMap<String, String>,
    /// session id → its recent prompts, (epoch ms, prompt id), oldest first.
    prompts: HashMap<String, Vec<(i64, String)>>,
    /// session id → its recent subagents: (agent id, agent type, started ms, stopped ms).
    subagents: HashMap<String, Vec<Subagent>>,
}

/// A subagent's lifetime, as its hooks told it.
#[derive(Debug, Clone)]
struct Subagent {
    id: String,
    kind: String,
    started: i64,
    stopped: Option<i64>,
}

static MAPS: LazyLock<Mutex<Maps>> = LazyLock::new(|| {
    Mutex::new(Maps {
        tool_agent: HashMap::new(),
        agent_type: HashMap::new(),
        prompts: HashMap::new(),
        subagents: HashMap::new(),
    })
});

fn with<T>(f: impl FnOnce(&mut Maps) -> T) -> T {
    f(&mut MAPS.lock().unwrap_or_else(PoisonError::into_inner))
}

fn bounded_insert<V>(map: &mut HashMap<String, V>, key: String, value: V) {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.clear();
    }
    map.insert(key, value);
}

/// Records that `tool_use_id` was called by subagent `agent_id`.
pub fn note_tool_agent(tool_use_id: &str, agent_id: &str) {
    with(|m| {
        bounded_insert(
            &mut m.tool_agent,
            tool_use_id.to_string(),
            agent_id.to_string(),
        )
    });
}

/// The subagent that made a tool call, when a route has said so.
pub fn tool_agent(tool_use_id: &str) -> Option<String> {
    with(|m| m.tool_agent.get(tool_use_id).cloned())
}

/// Records a subagent's type.
pub fn note_agent_type(agent_id: &str, agent_type: &str) {
    with(|m| {
        bounded_insert(
            &mut m.agent_type,
            agent_id.to_string(),
            agent_type.to_string(),
        )
    });
}

/// A subagent's type, when a hook has said it.
pub fn agent_type(agent_id: &str) -> Option<String> {
    with(|m| m.agent_type.get(agent_id).cloned())
}

/// Records that `session` got prompt `prompt_id` at `at_ms` (a prompt seen twice, by a hook
/// and by an OTel log, is kept once, at its earliest time).
pub fn note_prompt(session: &str, prompt_id: &str, at_ms: i64) {
    with(|m| {
        if m.prompts.len() >= MAX_ENTRIES && !m.prompts.contains_key(session) {
            m.prompts.clear();
        }
        let list = m.prompts.entry(session.to_string()).or_default();
        match list.iter_mut().find(|(_, id)| id == prompt_id) {
            Some(entry) => entry.0 = entry.0.min(at_ms),
            None => {
                list.push((at_ms, prompt_id.to_string()));
                list.sort_by_key(|(at, _)| *at);
                if list.len() > PROMPTS_PER_SESSION {
                    list.remove(0);
                }
            }
        }
    });
}

/// The prompt a turn of `session` that ran until `until_ms` answered: the latest one given
/// at or before then. Clocks of the routes differ by a few ms, so a prompt noted up to
/// [`PROMPT_SLACK_MS`] after the turn's end still counts.
pub fn prompt_before(session: &str, until_ms: i64) -> Option<String> {
    with(|m| {
        m.prompts.get(session).and_then(|list| {
            list.iter()
                .rev()
                .find(|(at, _)| *at <= until_ms + PROMPT_SLACK_MS)
                .map(|(_, id)| id.clone())
        })
    })
}

/// Records that subagent `agent_id` of type `kind` started in `session` at `at_ms`.
pub fn note_subagent_start(session: &str, agent_id: &str, kind: &str, at_ms: i64) {
    with(|m| {
        if m.subagents.len() >= MAX_ENTRIES && !m.subagents.contains_key(session) {
            m.subagents.clear();
        }
        let list = m.subagents.entry(session.to_string()).or_default();
        if list.iter().any(|a| a.id == agent_id) {
            return;
        }
        list.push(Subagent {
            id: agent_id.to_string(),
            kind: kind.to_string(),
            started: at_ms,
            stopped: None,
        });
        if list.len() > SUBAGENTS_PER_SESSION {
            list.remove(0);
        }
    });
}

/// Records that subagent `agent_id` of `session` stopped at `at_ms`.
pub fn note_subagent_stop(session: &str, agent_id: &str, at_ms: i64) {
    with(|m| {
        if let Some(a) = m
            .subagents
            .get_mut(session)
            .and_then(|list| list.iter_mut().find(|a| a.id == agent_id))
        {
            a.stopped = Some(at_ms);
        }
    });
}

/// The one subagent of type `kind` of `session` that was running at `at_ms`, if exactly one
/// was (OTel logs name a subagent's type, never its id; two of a type at once are ambiguous,
/// and an ambiguous event stays in the root session).
pub fn subagent_at(session: &str, kind: &str, at_ms: i64) -> Option<String> {
    with(|m| {
        let list = m.subagents.get(session)?;
        let mut running = list.iter().filter(|a| {
            a.kind == kind
                && a.started <= at_ms + PROMPT_SLACK_MS
                && a.stopped.is_none_or(|end| at_ms <= end + PROMPT_SLACK_MS)
        });
        let first = running.next()?;
        running.next().is_none().then(|| first.id.clone())
    })
}

/// The newest subagent of `session` that is the agent-teams teammate `name`, if the hooks told
/// of it: a teammate's `SubagentStart` names it by `agent_id` (`a<name>-<hash>` in 2.1.197) and
/// `agent_type` (its name), while `TeammateIdle` and its tasks name only `teammate_name`.
pub fn teammate_agent(session: &str, name: &str) -> Option<String> {
    let prefix = format!("a{name}-");
    with(|m| {
        m.subagents
            .get(session)?
            .iter()
            .rev()
            .find(|a| a.kind == name || a.id.starts_with(&prefix))
            .map(|a| a.id.clone())
    })
}

/// A subagent session the store still holds open, as [`recover`] takes it: the session that
/// started it (its parent), its own session id (the hook's `agent_id`), its agent (the hook's
/// `agent_type`, a teammate's name) and when it was last heard from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSubagent {
    pub parent_session: String,
    pub agent_id: String,
    pub agent: String,
    pub last_event_ms: i64,
}

/// Re-learns subagents (agent-teams teammates among them) that started before this process,
/// from the sessions the store holds open (see the module's header), so that a running
/// teammate's `TeammateIdle` and `Task*` hooks after a restart keep its lane rather than a
/// made-up one. Each counts as started at its last event (what came before is stored already;
/// an OTel log of it from now on is later than that). A subagent the hooks already told of in
/// this process is left as they told it. Returns how many were learnt.
pub fn recover(open: impl IntoIterator<Item = OpenSubagent>) -> usize {
    let mut learnt = 0;
    for s in open {
        if s.parent_session.is_empty() || s.agent_id.is_empty() || s.parent_session == s.agent_id {
            continue;
        }
        let known = with(|m| {
            m.subagents
                .get(&s.parent_session)
                .is_some_and(|list| list.iter().any(|a| a.id == s.agent_id))
        });
        if known {
            continue;
        }
        note_subagent_start(&s.parent_session, &s.agent_id, &s.agent, s.last_event_ms);
        if agent_type(&s.agent_id).is_none() {
            note_agent_type(&s.agent_id, &s.agent);
        }
        learnt += 1;
    }
    learnt
}

/// Subagents remembered per session.
const SUBAGENTS_PER_SESSION: usize = 64;

/// How far after a turn's end a prompt may be noted and still be the turn's (route clocks).
pub const PROMPT_SLACK_MS: i64 = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_prompt_before_a_turn_is_its_prompt() {
        note_prompt("link-s1", "p1", 1_000);
        note_prompt("link-s1", "p2", 5_000);
        note_prompt("link-s1", "p1", 2_000);
        assert_eq!(prompt_before("link-s1", 4_000).as_deref(), Some("p1"));
        assert_eq!(prompt_before("link-s1", 9_000).as_deref(), Some("p2"));
        assert_eq!(prompt_before("link-s1", 500), None);
        assert_eq!(prompt_before("link-none", 9_000), None);
    }

    #[test]
    fn a_subagent_is_found_by_its_type_and_time_when_unambiguous() {
        note_subagent_start("link-s2", "a1", "Explore", 1_000);
        note_subagent_stop("link-s2", "a1", 2_000);
        note_subagent_start("link-s2", "a2", "Explore", 3_000);
        note_subagent_start("link-s2", "a3", "Explore", 3_500);
        assert_eq!(
            subagent_at("link-s2", "Explore", 1_500).as_deref(),
            Some("a1")
        );
        assert_eq!(subagent_at("link-s2", "Explore", 2_500), None);
        // Two of a type at once: ambiguous.
        assert_eq!(subagent_at("link-s2", "Explore", 4_000), None);
        assert_eq!(subagent_at("link-s2", "Plan", 1_500), None);
    }

    #[test]
    fn a_recovered_teammate_is_found_by_its_name_and_hooks_win() {
        let open = |agent_id: &str, agent: &str| OpenSubagent {
            parent_session: "link-lead".into(),
            agent_id: agent_id.into(),
            agent: agent.into(),
            last_event_ms: 10_000,
        };
        assert_eq!(teammate_agent("link-lead", "researcher"), None);
        let learnt = recover([
            open("aresearcher-1f2e", "researcher"),
            // The lead's own session and an empty row are no subagents.
            OpenSubagent {
                agent_id: "link-lead".into(),
                ..open("", "main")
            },
            open("", "x"),
        ]);
        assert_eq!(learnt, 1);
        assert_eq!(
            teammate_agent("link-lead", "researcher").as_deref(),
            Some("aresearcher-1f2e")
        );
        assert_eq!(
            agent_type("aresearcher-1f2e").as_deref(),
            Some("researcher")
        );
        // Running from its last event on: an OTel log of it is placed in it.
        assert_eq!(
            subagent_at("link-lead", "researcher", 12_000).as_deref(),
            Some("aresearcher-1f2e")
        );
        // What the hooks of this process said is kept: recovering it again learns nothing.
        note_subagent_start("link-lead", "awriter-9a", "writer", 20_000);
        assert_eq!(
            recover([
                open("awriter-9a", "writer"),
                open("aresearcher-1f2e", "researcher")
            ]),
            0
        );
        assert_eq!(subagent_at("link-lead", "writer", 15_000), None);
    }

    #[test]
    fn tool_calls_remember_their_subagent() {
        note_tool_agent("link-toolu", "agent-1");
        note_agent_type("agent-1", "Explore");
        assert_eq!(tool_agent("link-toolu").as_deref(), Some("agent-1"));
        assert_eq!(agent_type("agent-1").as_deref(), Some("Explore"));
        assert_eq!(tool_agent("link-other"), None);
    }
}
