// The hub's live state (GET /api/v1/live): the active and waiting sessions from its derived rows,
// shared by the Live page and the "waiting for you" queue pinned on every page. It is refetched
// when the page's event stream shows that a session's state may have changed (a lifecycle,
// permission or prompt event, a wait or failure status, an event of a lane we do not list, any
// event of a lane that waits), at most every REFETCH_MS, and every POLL_MS regardless (clocks,
// idle windows). A waiting session therefore stays listed however many other events arrive: the
// list never comes from a window of recent events. This module must never refetch per event:
// at 1,000 events/s that would be 1,000 requests a second.
import { api } from './api';
import { live } from './live.svelte';
import type { LiveSession, LiveState, SEvent } from './types';

const REFETCH_MS = 1000;
const POLL_MS = 10_000;
/** Live lists sessions active in the last 30 minutes (and every waiting one): long enough that a
 * session thinking through a long tool call does not blink out, short enough to stay a glance. */
export const RECENT_S = 1800;
/** The window of "active" when the Live page shows finished sessions too. */
export const RECENT_ALL_S = 24 * 3600;
const STATE_TYPES = new Set(['session', 'permission', 'run', 'workflow', 'process', 'pane', 'prompt']);
const STATE_STATUSES = new Set(['blocked', 'idle', 'failed', 'cancelled']);

class HubState {
  sessions = $state.raw<LiveSession[]>([]);
  waiting = $state.raw<LiveSession[]>([]);
  loaded = $state(false);
  /** The last fetch failed (the hub is unreachable or refused). */
  failed = $state(false);
  asOf = $state<string | null>(null);
  truncated = $state(false);
  /** Bumped on each successful fetch. */
  version = $state(0);
  private recentS = RECENT_S;
  private keys = new Set<string>();
  private waitingKeys = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private inflight = false;
  private again = false;
  private lastFetch = 0;
  private started = false;

  start() {
    if (this.started) return;
    this.started = true;
    live.subscribe((batch) => { if (batch.some((e) => this.changes(e))) this.schedule(); });
    setInterval(() => this.schedule(), POLL_MS);
    this.fetch();
  }

  /** The Live page's "show finished" widens the window; the queue is the same either way. */
  setRecent(seconds: number) {
    if (seconds === this.recentS) return;
    this.recentS = seconds;
    this.schedule();
  }

  /** Fetch soon (the stream reconnected, the user asked). */
  refresh() { this.schedule(); }

  private changes(e: SEvent): boolean {
    if (STATE_TYPES.has(e.entity_type)) return true;
    if (e.status && STATE_STATUSES.has(e.status)) return true;
    const key = e.session_id ?? (e.run_id ? 'run:' + e.run_id : null);
    if (!key) return false;
    // A lane we do not list yet, or work in a lane that waits (work ends a wait).
    return !this.keys.has(key) || this.waitingKeys.has(key);
  }

  private schedule() {
    if (this.timer) return;
    const wait = Math.max(0, this.lastFetch + REFETCH_MS - Date.now());
    this.timer = setTimeout(() => { this.timer = null; this.fetch(); }, wait);
  }

  private async fetch() {
    if (this.inflight) { this.again = true; return; }
    this.inflight = true;
    this.lastFetch = Date.now();
    try {
      const s: LiveState = await api.live({ recent_s: this.recentS });
      this.apply(s);
      this.failed = false;
    } catch {
      this.failed = true;
    } finally {
      this.inflight = false;
      if (this.again) { this.again = false; this.schedule(); }
    }
  }

  private apply(s: LiveState) {
    // A row that did not change keeps its object, so Live reuses its lane and Svelte skips it:
    // under a busy source most refetches change a handful of rows, not all of them.
    const before = new Map(this.sessions.map((x) => [x.key, x]));
    const same = (a: LiveSession, b: LiveSession) => a.event_count === b.event_count && a.last_event_at === b.last_event_at
      && a.status === b.status && a.ended_at === b.ended_at && a.active === b.active && a.prompt === b.prompt
      && a.activity === b.activity && a.project === b.project && (a.wait?.seq ?? 0) === (b.wait?.seq ?? 0) && a.parent_session_id === b.parent_session_id;
    s.sessions = s.sessions.map((x) => { const o = before.get(x.key); return o && same(o, x) ? o : x; });
    this.sessions = s.sessions;
    this.waiting = waitingOf(s.sessions);
    this.keys = new Set(s.sessions.map((x) => x.key));
    this.waitingKeys = new Set(this.waiting.map((x) => x.key));
    this.asOf = s.as_of;
    this.truncated = s.truncated;
    this.loaded = true;
    this.version++;
  }
}

/** Sessions that wait for their user, longest-waiting first. */
export function waitingOf(sessions: LiveSession[]): LiveSession[] {
  return sessions
    .filter((x) => x.wait && !x.ended_at)
    .sort((a, b) => (a.wait!.since < b.wait!.since ? -1 : a.wait!.since > b.wait!.since ? 1 : 0));
}

export const hub = new HubState();

/** How a lane is named: project, agent type, and what it was asked (never `main`/`bash` alone). */
export function laneName(s: { project?: string | null; agent: string | null; source: string }): string {
  const agent = s.agent && s.agent !== 'main' ? s.agent : s.source;
  return s.project ? `${s.project} · ${agent}` : agent;
}

export const WAIT_LABEL: Record<string, string> = {
  permission: 'Waiting for permission',
  question: 'Asked you a question',
  idle: 'Waiting for your next prompt',
  failed_turn: 'Turn failed',
  blocked: 'Waiting for you',
};
