// The only way the UI talks to the hub: the REST + SSE API of docs/API.md.
import type { Filter, Health, Incident, LiveState, PluginInfo, ProcessControl, Run, RunRow, SEvent, Session, SessionNode, Stats } from './types';

const BASE = '/api/v1';

export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string, public details?: unknown) {
    super(message);
  }
}

export function token(): string | null {
  try { return localStorage.getItem('sightline.token'); } catch { return null; }
}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...(init.headers as Record<string, string>) };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  const res = await fetch(BASE + path, { ...init, headers });
  const text = await res.text();
  let body: any = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* non-JSON error page */ }
  if (!res.ok) {
    const e = body?.error;
    throw new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? (text.slice(0, 300) || res.statusText), e?.details);
  }
  return body as T;
}

/** Filter → query string with comma-separated lists (docs/CONTRACT.md §5). */
export function filterQuery(f: Filter, extra: Record<string, string | number | undefined | null> = {}): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) {
    if (v == null || v === '') continue;
    if (Array.isArray(v)) { if (v.length) p.set(k, v.join(',')); }
    else p.set(k, String(v));
  }
  for (const [k, v] of Object.entries(extra)) if (v != null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? '?' + s : '';
}

export const api = {
  stats: (since?: string) => request<Stats>('/stats' + (since ? `?since=${encodeURIComponent(since)}` : '')),
  health: () => request<Health>('/health'),
  runs: (q: Record<string, string | number | undefined | null> = {}) =>
    request<{ runs: RunRow[]; next_cursor: string | null }>('/runs' + filterQuery({}, q)),
  run: (id: string) =>
    request<{ run: Run; sessions: Session[]; by_entity_type: Record<string, number>; by_severity: Record<string, number> }>(
      '/runs/' + encodeURIComponent(id)),
  timeline: (id: string, after?: number, limit = 500) =>
    request<{ events: SEvent[]; next_cursor: number | null }>(
      `/runs/${encodeURIComponent(id)}/timeline` + filterQuery({}, { after, limit })),
  tree: (sessionId: string) => request<{ tree: SessionNode }>(`/sessions/${encodeURIComponent(sessionId)}/tree`),
  search: (f: Filter, opts: { limit?: number; before?: number; after?: number; order?: 'asc' | 'desc' } = {}) =>
    request<{ events: SEvent[]; next_cursor: number | null }>('/search' + filterQuery(f, opts as any)),
  event: (seq: number) => request<SEvent>('/events/' + seq),
  incidents: (since?: string, window_s?: number) =>
    request<{ incidents: Incident[] }>('/incidents' + filterQuery({}, { since, window_s })),
  plugins: () => request<{ plugins: PluginInfo[] }>('/plugins'),
  /** The live-control document a Python agent polls (version 0: nothing set yet). */
  control: (runId: string) =>
    request<ProcessControl>(`/processes/${encodeURIComponent(runId)}/control?wait_s=0`),
  setControl: (runId: string, update: Omit<ProcessControl, 'version'>) =>
    request<ProcessControl>(`/processes/${encodeURIComponent(runId)}/control`, {
      method: 'PUT', body: JSON.stringify(update), headers: { 'content-type': 'application/json' },
    }),
  /** The active and waiting sessions from the hub's derived rows (docs/API.md, Live). */
  live: (q: { recent_s?: number; run?: string } = {}) => request<LiveState>('/live' + filterQuery({}, q)),
  /** The distinct agents and sources of the newest 50,000 runs and sessions (filter menus). */
  agents: () => request<{ agents: string[]; sources: string[]; truncated: boolean }>('/agents'),
  /** One agent session's prompts, answers and tool calls in seq order. */
  conversation: (sessionId: string, after?: number, limit = 1000) =>
    request<{ events: SEvent[]; next_cursor: number | null }>(
      `/sessions/${encodeURIComponent(sessionId)}/conversation` + filterQuery({}, { after, limit })),
  invokePlugin: (name: string, body: unknown) =>
    request<any>(`/plugins/${encodeURIComponent(name)}/invoke`, {
      method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' },
    }),
};

/** Every event of a run, paging the timeline by seq. `cap` bounds memory on huge runs. */
export async function fullTimeline(runId: string, cap = 20000): Promise<{ events: SEvent[]; truncated: boolean }> {
  const out: SEvent[] = [];
  let after: number | undefined = undefined;
  for (;;) {
    const page = await api.timeline(runId, after, 1000);
    out.push(...page.events);
    if (page.next_cursor == null || page.events.length === 0) return { events: out, truncated: false };
    if (out.length >= cap) return { events: out, truncated: true };
    after = page.next_cursor;
  }
}

export type StreamState = 'connecting' | 'live' | 'reconnecting' | 'closed';

/**
 * SSE subscription with gap-free resume. EventSource resends Last-Event-ID by itself on
 * reconnect; we additionally remember the last seq so a fresh EventSource (after a filter
 * change or an error close) resumes with `last_event_id`.
 */
export class Stream {
  private es: EventSource | null = null;
  lastSeq: number | null;
  state: StreamState = 'connecting';
  private retry = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;

  /** The database the cursor belongs to; a hub with another epoch cannot resume it. */
  epoch: string | null = null;

  constructor(
    private filter: Filter,
    since: number | null,
    private onEvent: (e: SEvent) => void,
    private onState: (s: StreamState, info?: string) => void = () => {},
    /** The hub could not resume our cursor (new database, or cursor ahead of its head). */
    private onReset: (reason: string) => void = () => {},
  ) {
    this.lastSeq = since;
    this.open();
  }

  private open() {
    const extra: Record<string, string | number | null> = { last_event_id: this.lastSeq, epoch: this.epoch };
    const t = token();
    if (t) extra.access_token = t; // EventSource cannot send headers; the hub accepts this parameter
    const es = new EventSource(BASE + '/events/stream' + filterQuery(this.filter, extra));
    this.es = es;
    es.addEventListener('open', () => { this.retry = 0; this.set('live'); });
    es.addEventListener('sightline.event', (m) => {
      const ev = JSON.parse((m as MessageEvent).data) as SEvent;
      if (this.lastSeq != null && ev.seq <= this.lastSeq) return; // never a duplicate
      this.lastSeq = ev.seq;
      this.onEvent(ev);
    });
    es.addEventListener('sightline.hello', (m) => {
      const hello = JSON.parse((m as MessageEvent).data) as { epoch: string };
      // EventSource's own reconnects keep the old URL; a changed epoch means a new database.
      if (this.epoch && hello.epoch !== this.epoch) { this.epoch = hello.epoch; this.lastSeq = null; this.onReset('epoch changed'); }
      this.epoch = hello.epoch;
    });
    es.addEventListener('sightline.reset', (m) => {
      // Our cursor means nothing to this hub: everything it sends from now on is new.
      this.lastSeq = null;
      this.onReset(String((m as MessageEvent).data));
    });
    es.addEventListener('error', () => {
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (e.g. a non-200); reopen ourselves with backoff from our cursor.
        es.close();
        this.set('reconnecting');
        const delay = Math.min(10000, 500 * 2 ** this.retry++);
        this.timer = setTimeout(() => this.open(), delay);
      } else this.set('reconnecting');
    });
  }

  private set(s: StreamState) {
    if (s !== this.state) { this.state = s; this.onState(s); }
  }

  close() {
    if (this.timer) clearTimeout(this.timer);
    this.es?.close();
    this.set('closed');
  }
}

/**
 * Batches callbacks into one flush per animation frame: a burst of 1,000 SSE events becomes
 * one state update and one render instead of 1,000.
 */
export function frameBatcher<T>(flush: (items: T[]) => void): { push: (x: T) => void; cancel: () => void } {
  let buf: T[] = [];
  let raf = 0;
  const run = () => { raf = 0; const b = buf; buf = []; if (b.length) flush(b); };
  return {
    push(x: T) {
      buf.push(x);
      // rAF stops in background tabs; fall back to a timer so the buffer cannot grow unbounded.
      if (!raf) raf = document.hidden ? (setTimeout(run, 250) as unknown as number) : requestAnimationFrame(run);
    },
    cancel() { if (raf) { cancelAnimationFrame(raf); clearTimeout(raf); } raf = 0; buf = []; },
  };
}
