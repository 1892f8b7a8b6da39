// Calls and shapes of the routes behind the dashboard's charts, Gantt, exact counts, fingerprinted
// incidents and the settings that control the hub (docs/API.md). Kept apart from api.ts so the
// shared client stays small; it uses the same token and the same error type, and must never
// swallow an error: every failure reaches the page as an ApiError with the hub's message.
import { ApiError, filterQuery, token } from './api';
import type { Filter, SEvent } from './types';

const BASE = '/api/v1';

async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...(init.headers as Record<string, string>) };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  const res = await fetch(BASE + path, { ...init, headers });
  const text = await res.text();
  let body: any = null;
  try { body = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const e = body?.error;
    throw new ApiError(res.status, e?.code ?? `http_${res.status}`, e?.message ?? (text.slice(0, 300) || res.statusText), e?.details);
  }
  return body as T;
}

const json = (method: string, body: unknown): RequestInit =>
  ({ method, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

/** How many events a filter matches; `exact: false` means "at least". */
export interface Count { count: number; exact: boolean }

export type SeriesBy = 'total' | 'source' | 'entity_type' | 'severity' | 'agent' | 'run' | 'model' | 'project';

export interface SeriesLine {
  key: string;
  events: number[];
  errors: number[];
  input_tokens: number[];
  output_tokens: number[];
  cost_usd: number[];
  total_events: number;
}

export interface Series {
  by: SeriesBy;
  bucket_ms: number;
  start_ms: number;
  buckets: number;
  lines: SeriesLine[];
  scanned: number;
  partial: boolean;
}

export const insight = {
  count: (f: Filter, before?: number) => call<Count>('/count' + filterQuery(f, { before })),
  series: (q: { since?: string; until?: string; bucket_s?: number; by?: SeriesBy }) =>
    call<Series>('/series' + filterQuery({}, q as Record<string, string | number | undefined>)),
  /** One page of a run's events by seq, either way: `after` pages forward, `before` back. */
  runPage: async (runId: string, dir: { after?: number; before?: number; last?: boolean }, limit = 1000) => {
    if (dir.before != null || dir.last) {
      const p = await call<{ events: SEvent[]; next_cursor: number | null }>(
        '/search' + filterQuery({ runs: [runId] }, { order: 'desc', before: dir.before, limit }));
      return { events: p.events.slice().reverse(), more: p.next_cursor != null };
    }
    const p = await call<{ events: SEvent[]; next_cursor: number | null }>(
      `/runs/${encodeURIComponent(runId)}/timeline` + filterQuery({}, { after: dir.after, limit }));
    return { events: p.events, more: p.next_cursor != null };
  },
  call,
  json,
};

/** A count as a label: "1,317" when exact, "at least 1,000,000" when not. */
export function countLabel(c: Count | null, fmt: (n: number) => string = (n) => n.toLocaleString('en-US')): string {
  if (!c) return '…';
  return c.exact ? fmt(c.count) : `at least ${fmt(c.count)}`;
}
