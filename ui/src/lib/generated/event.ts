// Generated from the Rust types in crates/sightline-schema (via schema/event.schema.json)
// by crates/sightline-schema/tests/generated.rs. Do not edit: run `SIGHTLINE_BLESS=1 cargo test -p sightline-schema --test generated` to regenerate.

/** What the event is about. */
export type EntityType = 'run' | 'session' | 'task' | 'tool' | 'permission' | 'message' | 'prompt' | 'todo' | 'workflow' | 'step' | 'process' | 'call' | 'exception' | 'log' | 'metric' | 'pane';

/** How much a human should care. */
export type Severity = 'debug' | 'info' | 'warn' | 'error';

/** Where an event came from. */
export type Source = 'claude' | 'opencode' | 'docker' | 'workflow' | 'tmux' | 'python' | 'process' | 'otlp' | 'custom' | 'codex' | 'gemini';

/** The lifecycle state the event reports for its entity. */
export type Status = 'queued' | 'running' | 'idle' | 'retry' | 'success' | 'failed' | 'blocked' | 'cancelled';

/** A stored event as the hub returns it (docs/CONTRACT.md §2). Optional fields are written as null, never left out. */
export interface SightlineEvent {
  /** Assigned by the hub on commit; the cursor (≥ 1). */
  seq: number;
  event_id: string;
  /** RFC 3339 UTC with milliseconds and `Z`, e.g. `2026-11-21T10:00:00.123Z`. */
  ts: string;
  source: Source;
  source_event: string;
  run_id: string | null;
  session_id: string | null;
  parent_session_id: string | null;
  agent: string | null;
  entity_type: EntityType;
  entity_id: string | null;
  status: Status | null;
  severity: Severity;
  title: string;
  summary: string | null;
  duration_ms: number | null;
  metrics: Record<string, number> | null;
  host: string | null;
  pid: number | null;
  thread_id: number | null;
  correlation_id: string | null;
  tags: string[];
  payload: Record<string, unknown>;
}

export interface Filter {
  agents?: string[];
  /** Correlation ids: one lifecycle (a tool call's Pre/Post pair, a workflow step). */
  correlations?: string[];
  entity_types?: EntityType[];
  q?: string | null;
  runs?: string[];
  sessions?: string[];
  severities?: Severity[];
  /** RFC 3339 UTC with milliseconds and `Z`, e.g. `2026-11-21T10:00:00.123Z`. */
  since?: string | null;
  source_events?: string[];
  sources?: Source[];
  statuses?: Status[];
  /** RFC 3339 UTC with milliseconds and `Z`, e.g. `2026-11-21T10:00:00.123Z`. */
  until?: string | null;
}
