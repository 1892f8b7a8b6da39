// The Live page's model, as a pure reducer over events in seq order. Live applies it
// incrementally as SSE batches arrive; Replay applies it to a prefix of a recorded run. Both
// use this one function, so replaying a run to its end reaches exactly the live state.
import type { LiveSession, SEvent, Status, Wait } from './types';

export interface Chip {
  seq: number;
  severity: string;
  status: string | null;
  entity_type: string;
  title: string;
  ts: string;
  /** `ts` as epoch ms, parsed once (the view positions every chip by it). */
  t: number;
}

/**
 * Something with a duration on a lane's time axis: a tool call (or workflow step, or task) from
 * its start event to its end event, or a wait (a permission prompt, a question, an idle prompt)
 * until the next sign of life. Times are epoch ms. `end` is null while it is still open; the view
 * draws open spans up to "now". A span is never mutated once handed out: closing one replaces
 * its object, so a lane snapshot can share the array's items.
 */
export interface Span {
  id: string;
  kind: 'call' | 'wait';
  start: number;
  end: number | null;
  title: string;
  status: string | null;
  seq: number;
  wait?: string;
}

export interface Lane {
  key: string;
  session_id: string | null;
  run_id: string | null;
  parent: string | null;
  agent: string | null;
  source: string;
  title: string;
  status: Status | null;
  blocked: string | null; // the permission prompt's title while blocked
  ended: boolean;
  firstTs: string;
  lastTs: string;
  lastSeq: number;
  count: number;
  errors: number;
  tokens: number;
  cost: number;
  activity: string | null; // what it's doing now (running tool, step, call)
  chips: Chip[];
  /** Calls and waits with their durations, newest last, at most SPANS_PER_LANE. */
  spans: Span[];
  rev: number; // bumped on every change: lets the view reuse unchanged snapshots
  // From the hub's state (GET /api/v1/live); absent in Replay, which has only events.
  project?: string | null;
  prompt?: string | null;
  cwd?: string | null;
  wait?: Wait | null;
  /** The hub's row itself, for what its liveness says (ended by the hub and why). */
  row?: LiveSession;
}

export interface LaneState {
  lanes: Map<string, Lane>;
  snaps: Map<string, Lane>;
  /** Live's lanes built from the hub's rows (hubTree), reused while unchanged. */
  hubSnaps?: Map<string, { s: LiveSession; rev: number; lane: Lane }>;
  applied: number;
  lastSeq: number;
}

export const CHIPS_PER_LANE = 48;
/** Enough for the last hour of a steady agent (a call every minute or so); a lane as busy as a
 * traced process shows its newest ones, older spans fall off the front like chips do. */
export const SPANS_PER_LANE = 64;
/** Entity types whose start and end events (same correlation or entity id) make one span. */
const SPANNED: ReadonlySet<string> = new Set(['tool', 'step', 'task']);
/** How far back an end event looks for its open start (a lane's spans are bounded anyway). */
const OPEN_LOOKBACK = SPANS_PER_LANE;

export function newState(): LaneState {
  return { lanes: new Map(), snaps: new Map(), applied: 0, lastSeq: 0 };
}

/** One lane per session; events without a session fall back to their run, then their process. */
export function laneKey(e: SEvent): string {
  return e.session_id ?? (e.run_id ? 'run:' + e.run_id : `${e.source}:${e.host ?? ''}:${e.pid ?? '?'}`);
}

const LIFECYCLE = new Set(['session', 'run', 'workflow', 'process']);
const ENDED: ReadonlySet<string> = new Set(['success', 'failed', 'cancelled']);

export function apply(state: LaneState, e: SEvent): void {
  const key = laneKey(e);
  let l = state.lanes.get(key);
  if (!l) {
    l = {
      key, session_id: e.session_id, run_id: e.run_id, parent: e.parent_session_id, agent: e.agent,
      source: e.source, title: e.title, status: null, blocked: null, ended: false,
      firstTs: e.ts, lastTs: e.ts, lastSeq: e.seq, count: 0, errors: 0, tokens: 0, cost: 0,
      activity: null, chips: [], spans: [], rev: 0,
    };
    state.lanes.set(key, l);
  }
  l.count++;
  l.rev++;
  if (e.ts > l.lastTs) l.lastTs = e.ts;
  l.lastSeq = e.seq;
  if (!l.parent && e.parent_session_id) l.parent = e.parent_session_id;
  if (!l.agent && e.agent) l.agent = e.agent;
  if (!l.run_id && e.run_id) l.run_id = e.run_id;
  if (e.severity === 'error' || e.status === 'failed') l.errors++;
  const m = e.metrics;
  if (m) {
    l.tokens += (m.input_tokens ?? 0) + (m.output_tokens ?? 0);
    l.cost += m.cost_usd ?? 0;
  }

  // Status: lifecycle entities set it; a permission prompt blocks until the next sign of life.
  if (e.entity_type === 'permission' || e.status === 'blocked') {
    if (e.status === 'blocked' || e.status === null) {
      l.blocked = e.title;
      l.status = 'blocked';
    } else if (l.blocked) {
      l.blocked = null;
      l.status = 'running';
    }
  } else if (LIFECYCLE.has(e.entity_type) && e.status) {
    if (e.entity_type === 'session' || e.entity_type === 'run' || !l.session_id || e.entity_type === 'workflow' || e.entity_type === 'process') {
      l.status = e.status;
      l.ended = ENDED.has(e.status);
      l.blocked = null; // a blocked status took the branch above
      if (e.entity_type === 'session' && (e.source_event === 'SessionStart' || e.source_event === 'SubagentStart')) l.title = e.title;
    }
  } else if (e.status) {
    // Work inside the session: it is running unless it ended.
    if (l.blocked) l.blocked = null; // a blocked status took the first branch
    if (!l.ended && (l.status === null || l.status === 'idle' || l.status === 'queued' || l.status === 'blocked')) l.status = 'running';
    if (e.status === 'running') l.activity = e.title;
    else if (l.activity === e.title) l.activity = null;
  }

  trackSpans(l, e);
  l.chips.push({ seq: e.seq, severity: e.severity, status: e.status, entity_type: e.entity_type, title: e.title, ts: e.ts, t: Date.parse(e.ts) });
  if (l.chips.length > CHIPS_PER_LANE) l.chips.splice(0, l.chips.length - CHIPS_PER_LANE);

  state.applied++;
  if (e.seq > state.lastSeq) state.lastSeq = e.seq;
}

function pushSpan(l: Lane, s: Span) {
  l.spans.push(s);
  if (l.spans.length > SPANS_PER_LANE) l.spans.splice(0, l.spans.length - SPANS_PER_LANE);
}

function closeWait(l: Lane, t: number) {
  for (let i = l.spans.length - 1; i >= Math.max(0, l.spans.length - OPEN_LOOKBACK); i--) {
    const s = l.spans[i];
    if (s.kind === 'wait' && s.end === null) l.spans[i] = { ...s, end: Math.max(s.start, t) };
  }
}

/** The span half of apply(): calls from their start and end events, waits from the lane's status. */
function trackSpans(l: Lane, e: SEvent) {
  const t = Date.parse(e.ts);
  if (!Number.isFinite(t)) return; // the hub validates ts; a bad one is simply not drawn
  const waiting = l.status === 'blocked' || l.status === 'idle';
  let open = false;
  for (let i = l.spans.length - 1; i >= Math.max(0, l.spans.length - OPEN_LOOKBACK) && !open; i--) open = l.spans[i].kind === 'wait' && l.spans[i].end === null;
  if (waiting && !open) {
    pushSpan(l, { id: 'wait:' + e.seq, kind: 'wait', start: t, end: null, title: l.blocked ?? e.title, status: l.status, seq: e.seq, wait: l.status === 'idle' ? 'idle' : (e.entity_type === 'permission' ? 'permission' : 'blocked') });
  } else if (!waiting && open) closeWait(l, t);
  if (!SPANNED.has(e.entity_type) || !e.status) return;
  const id = `${e.entity_type}:${e.correlation_id ?? e.entity_id ?? e.seq}`;
  const d = typeof e.duration_ms === 'number' && e.duration_ms > 0 ? e.duration_ms : 0;
  let at = -1;
  for (let i = l.spans.length - 1; i >= Math.max(0, l.spans.length - OPEN_LOOKBACK); i--) {
    if (l.spans[i].id === id) { at = i; break; }
  }
  const ended = e.status !== 'running' && e.status !== 'queued' && e.status !== 'blocked';
  if (at < 0) {
    // An end without its start (the start fell out of the window, or the source sends one event
    // per call): it began `duration_ms` before it ended.
    pushSpan(l, { id, kind: 'call', start: ended ? t - d : t, end: ended ? t : null, title: e.title, status: e.status, seq: e.seq });
  } else if (ended) {
    const s = l.spans[at];
    l.spans[at] = { ...s, start: Math.min(s.start, t - d), end: Math.max(t, s.start), status: e.status, seq: e.seq };
  }
}

export interface LaneNode { lane: Lane; children: LaneNode[]; latest: string; depth: number }

/** Subagents under their parent; siblings and roots by latest activity in their subtree. */
export function laneTree(state: LaneState, keep: (l: Lane) => boolean = () => true): LaneNode[] {
  const nodes = new Map<string, LaneNode>();
  // Lanes are mutated in place by apply(); hand the view a snapshot so Svelte sees new values
  // (a mutated object compares equal to itself and would not re-render).
  // Unchanged lanes keep their snapshot object, so Svelte skips them entirely.
  for (const l of state.lanes.values()) {
    if (!keep(l)) continue;
    let snap = state.snaps.get(l.key);
    if (!snap || snap.rev !== l.rev) { snap = { ...l, chips: l.chips.slice(), spans: l.spans.slice() }; state.snaps.set(l.key, snap); }
    nodes.set(l.key, { lane: snap, children: [], latest: l.lastTs, depth: 0 });
  }
  const roots: LaneNode[] = [];
  for (const n of nodes.values()) {
    const p = n.lane.parent ? nodes.get(n.lane.parent) : undefined;
    if (p && p !== n) p.children.push(n); else roots.push(n);
  }
  const fix = (n: LaneNode, depth: number): string => {
    n.depth = depth;
    for (const c of n.children) { const t = fix(c, depth + 1); if (t > n.latest) n.latest = t; }
    n.children.sort((a, b) => (a.latest < b.latest ? 1 : -1));
    return n.latest;
  };
  for (const r of roots) fix(r, 0);
  roots.sort((a, b) => (a.latest < b.latest ? 1 : -1));
  return roots;
}

/** A compact, order-independent fingerprint of the state: what Replay and Live compare. */
export function digest(state: LaneState, keep: (l: Lane) => boolean = () => true): string {
  const rows: string[] = [];
  for (const l of state.lanes.values()) {
    if (!keep(l)) continue;
    rows.push([l.key, l.parent ?? '', l.status ?? '', l.blocked ? 'B' : '', l.count, l.errors, l.tokens, l.cost.toFixed(6), l.lastSeq].join('|'));
  }
  return rows.sort().join(';');
}

/** Older events' chips (`a`) before the stream's (`b`), each event once, the newest kept. */
function mergeChips(a: Chip[] | undefined, b: Chip[] | undefined): Chip[] {
  if (!a?.length) return b ? b.slice() : [];
  if (!b?.length) return a.slice();
  const first = b[0].seq;
  const out = a.filter((c) => c.seq < first).concat(b);
  return out.length > CHIPS_PER_LANE ? out.slice(out.length - CHIPS_PER_LANE) : out;
}

/** Older spans before the stream's; a span the stream also has (a call it saw end) is the stream's. */
function mergeSpans(a: Span[] | undefined, b: Span[] | undefined): Span[] {
  if (!a?.length) return b ? b.slice() : [];
  if (!b?.length) return a.slice();
  const ids = new Set(b.map((x) => x.id));
  const out = a.filter((x) => !ids.has(x.id)).concat(b);
  return out.length > SPANS_PER_LANE ? out.slice(out.length - SPANS_PER_LANE) : out;
}

/** A lane's spans from its stream lane, plus the hub's wait when the stream never saw it begin
 * (the page opened after the prompt): a wait is drawn from its own `since`, whatever the window. */
function hubSpans(s: LiveSession, spans: Span[]): Span[] {
  if (s.wait && !s.ended_at) {
    const since = Date.parse(s.wait.since);
    const open = spans.some((x) => x.kind === 'wait' && x.end === null);
    if (!open && Number.isFinite(since)) spans.push({ id: 'wait:' + s.wait.seq, kind: 'wait', start: since, end: null, title: s.wait.title, status: 'blocked', seq: s.wait.seq, wait: s.wait.kind });
  } else if (spans.length && spans.some((x) => x.kind === 'wait' && x.end === null)) {
    // The hub says it no longer waits: close the stream's open wait at the lane's last event.
    const t = Date.parse(s.last_event_at ?? '') || Date.now();
    return spans.map((x) => (x.kind === 'wait' && x.end === null ? { ...x, end: Math.max(x.start, t) } : x));
  }
  return spans;
}

/**
 * Live's lanes from the hub's state: which lanes exist, their status, why they wait, project and
 * prompt come from `sessions` (the hub's derived rows, so nothing falls out of a window); chips,
 * counts and the current activity come from the event stream's lane of the same key when the
 * page has one. Subagents nest under their parent (the hub lists ancestors of active lanes).
 */
export function hubTree(sessions: LiveSession[], state: LaneState, keep: (s: LiveSession) => boolean = () => true,
  older: (key: string) => Lane | undefined = () => undefined): LaneNode[] {
  const nodes = new Map<string, LaneNode>();
  // A lane keeps its object while neither its hub row nor its stream lane changed, so Svelte
  // skips it (the hub's rows are replaced only when a refetch brings news).
  const cache = (state.hubSnaps ??= new Map());
  for (const s of sessions) {
    if (!keep(s) && s.active) continue;
    // The stream's lane, and the lane of the session's own latest events fetched for it when
    // the stream's ring holds none of them (`older`, lib/backfill): their chips and spans merge.
    const ev = state.lanes.get(s.key);
    const bk = older(s.key);
    const rev = (ev?.rev ?? -1) + (bk ? 0.5 : 0);
    const hit = cache.get(s.key);
    if (hit && hit.s === s && hit.rev === rev) {
      nodes.set(s.key, { lane: hit.lane, children: [], latest: hit.lane.lastTs, depth: 0 });
      continue;
    }
    const lane: Lane = {
      key: s.key, session_id: s.key.startsWith('run:') ? null : s.session_id, run_id: s.run_id,
      parent: s.parent_session_id, agent: s.agent, source: s.source, title: s.title ?? s.key,
      status: s.status, blocked: s.wait && !s.ended_at ? s.wait.title : null, ended: !!s.ended_at,
      firstTs: s.started_at ?? '', lastTs: s.last_event_at ?? '', lastSeq: ev?.lastSeq ?? 0,
      count: s.event_count, errors: s.error_count, tokens: s.input_tokens + s.output_tokens, cost: s.cost_usd,
      activity: s.activity ?? ev?.activity ?? bk?.activity ?? null, chips: mergeChips(bk?.chips, ev?.chips),
      spans: hubSpans(s, mergeSpans(bk?.spans, ev?.spans)), rev: 0, project: s.project, prompt: s.prompt, cwd: s.cwd, wait: s.ended_at ? null : s.wait,
      row: s,
    };
    if (cache.size > 20000) cache.clear();
    cache.set(s.key, { s, rev, lane });
    nodes.set(s.key, { lane, children: [], latest: lane.lastTs, depth: 0 });
  }
  // Ancestors listed only for nesting are dropped when nothing of theirs is shown.
  const roots: LaneNode[] = [];
  for (const n of nodes.values()) {
    const p = n.lane.parent ? nodes.get(n.lane.parent) : undefined;
    if (p && p !== n) p.children.push(n); else roots.push(n);
  }
  const inactive = new Set(sessions.filter((s) => !s.active).map((s) => s.key));
  const fix = (n: LaneNode, depth: number): string => {
    n.depth = depth;
    n.children = n.children.filter((c) => !inactive.has(c.lane.key) || c.children.length);
    for (const c of n.children) { const t = fix(c, depth + 1); if (t > n.latest) n.latest = t; }
    n.children.sort((a, b) => (a.latest < b.latest ? 1 : -1));
    return n.latest;
  };
  const shown = roots.filter((r) => !inactive.has(r.lane.key) || r.children.length);
  for (const r of shown) fix(r, 0);
  // Waiting lanes first (they need the user), then by latest activity in their subtree.
  const waits = (n: LaneNode): boolean => !!n.lane.wait || n.children.some(waits);
  shown.sort((a, b) => (Number(waits(b)) - Number(waits(a))) || (a.latest < b.latest ? 1 : -1));
  return shown;
}
