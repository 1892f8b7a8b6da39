// Shapes from docs/API.md. The hub returns every field (null where absent).

// The event and its vocabularies are generated from the Rust types (crates/sightline-schema,
// tests/generated.rs), so they cannot drift from what the hub writes; never edit them here.
// `SEvent` is the dashboard's name for the generated `SightlineEvent`; `Filter` (the one filter
// of SSE, search, count and export, docs/CONTRACT.md §5: lists OR within, AND across) is the
// generated one too, so its lists hold the vocabularies' words, not any string.
import type { EntityType, Severity, SightlineEvent, Source, Status } from './generated/event';
export type { EntityType, Filter, Severity, Source, Status } from './generated/event';
export type SEvent = SightlineEvent;

// Each vocabulary's words, once: a table that must name every word of its generated type
// (`satisfies Record<..>`), so a word added to the schema fails the check here until it is
// listed. The pickers' lists (SOURCES, ...) and the narrowing checks (isSource, ...) are both
// derived from these tables; no page keeps a list of its own.
const SOURCE_WORDS = {
  claude: true, opencode: true, docker: true, workflow: true, tmux: true, python: true,
  process: true, otlp: true, custom: true, codex: true, gemini: true,
} satisfies Record<Source, true>;
const ENTITY_TYPE_WORDS = {
  run: true, session: true, task: true, tool: true, permission: true, message: true, prompt: true,
  todo: true, workflow: true, step: true, process: true, call: true, exception: true, log: true,
  metric: true, pane: true,
} satisfies Record<EntityType, true>;
const SEVERITY_WORDS = { debug: true, info: true, warn: true, error: true } satisfies Record<Severity, true>;
const STATUS_WORDS = {
  queued: true, running: true, idle: true, retry: true, success: true, failed: true, blocked: true,
  cancelled: true,
} satisfies Record<Status, true>;

const wordsOf = <T extends string>(words: Record<T, true>): readonly T[] => Object.freeze(Object.keys(words) as T[]);
/** Every word of each vocabulary, in the schema's order: what a picker offers on an empty hub. */
export const SOURCES = wordsOf(SOURCE_WORDS);
export const ENTITY_TYPES = wordsOf(ENTITY_TYPE_WORDS);
export const SEVERITIES = wordsOf(SEVERITY_WORDS);
export const STATUSES = wordsOf(STATUS_WORDS);

// Text from outside (the URL, a stats key) narrowed to a vocabulary, so a filter is built from
// known words only (the hub answers an unknown one with a 400).
const oneOf = <T extends string>(words: Record<T, true>) => {
  const known = new Set<string>(Object.keys(words));
  return (s: string): s is T => known.has(s);
};
export const isSource = oneOf(SOURCE_WORDS);
export const isEntityType = oneOf(ENTITY_TYPE_WORDS);
export const isSeverity = oneOf(SEVERITY_WORDS);
export const isStatus = oneOf(STATUS_WORDS);

export interface Run {
  run_id: string;
  source: string;
  agent: string | null;
  title: string | null;
  status: Status | null;
  started_at: string | null;
  ended_at: string | null;
  last_event_at: string | null;
  duration_ms: number | null;
  event_count: number;
  error_count: number;
  session_count: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  cost_usd: number;
  /** Liveness (docs/API.md): false once ended or made idle by the hub's sweep, true while a
   *  covered source keeps it open, null when no rule covers its source. */
  alive?: boolean | null;
  ended_by?: 'liveness' | null;
  liveness_rule?: 'pid' | 'heartbeat' | 'idle' | 'stream' | null;
  liveness_reason?: string | null;
}

export interface Session {
  session_id: string;
  run_id: string | null;
  parent_session_id: string | null;
  agent: string | null;
  source: string;
  title: string | null;
  status: Status | null;
  started_at: string | null;
  ended_at: string | null;
  last_event_at: string | null;
  event_count: number;
  error_count: number;
  input_tokens: number;
  output_tokens: number;
  cache_read_tokens?: number;
  cache_write_tokens?: number;
  cost_usd: number;
  total_input_tokens?: number;
  total_output_tokens?: number;
  total_cost_usd?: number;
  /** Liveness (docs/API.md): false once ended or made idle by the hub's sweep, true while a
   *  covered source keeps it open, null when no rule covers its source. */
  alive?: boolean | null;
  ended_by?: 'liveness' | null;
  liveness_rule?: 'pid' | 'heartbeat' | 'idle' | 'stream' | null;
  liveness_reason?: string | null;
}

export interface SessionNode extends Session {
  children: SessionNode[];
}

export interface Stats {
  total_events: number;
  error_events: number;
  error_rate: number;
  events_per_minute: number;
  active_sessions: number;
  by_entity_type: Record<string, number>;
  by_source: Record<string, number>;
  by_severity: Record<string, number>;
  total_cost_usd: number;
  total_input_tokens: number;
  total_output_tokens: number;
  head_seq: number;
  epoch: string;
}

export interface Incident {
  key: string;
  run_id: string | null;
  correlation_id: string | null;
  title: string;
  source: string;
  count: number;
  first_seen: string;
  last_seen: string;
  first_seq: number;
  last_seq: number;
  sample: SEvent;
}

export interface Health {
  status: string;
  version: string;
  epoch: string;
  head_seq: number;
  uptime_s: number;
  storage: { path: string; size_bytes: number; events: number; retention_days: number };
  queue: { depth: number; capacity: number; dropped: number; rejected: number };
  adapters: { name: string; state: string; last_event_at: string | null; lag_ms: number | null; errors: number; last_error: string | null }[];
  subscribers: number;
}

export interface PluginInfo {
  name: string;
  kind: string;
  target?: string;
  description?: string | null;
  timeout_ms?: number;
}

/** `GET/PUT /api/v1/processes/{run_id}/control` (docs/API.md): absent fields mean "as started". */
export interface ProcessControl {
  version: number;
  enabled?: boolean;
  include?: string[];
  exclude?: string[];
  min_duration_ms?: number;
  max_detail_per_s?: number;
}

/** Why a session waits for its user (`GET /api/v1/live`). */
export type WaitKind = 'permission' | 'question' | 'idle' | 'failed_turn' | 'blocked';

export interface Wait {
  kind: WaitKind;
  title: string;
  summary: string | null;
  since: string;
  seq: number;
}

/** One lane of Live from the hub's derived rows: a session, or `run:<id>` for a run without sessions. */
export interface LiveSession extends Session {
  key: string;
  /** False for an ancestor listed only so its active subagents nest under it. */
  active: boolean;
  project: string | null;
  cwd: string | null;
  prompt: string | null;
  activity: string | null;
  wait: Wait | null;
}

export interface LiveState {
  sessions: LiveSession[];
  waiting: number;
  truncated: boolean;
  head_seq: number;
  epoch: string;
  as_of: string;
}

/** A run in `GET /api/v1/runs` with where it ran. */
export interface RunRow extends Run {
  cwd?: string | null;
  project?: string | null;
}
