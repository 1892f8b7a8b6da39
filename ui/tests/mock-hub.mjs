// Development-only stand-in for the hub (the real tests run against target/debug/sightline).
// In-memory implementation of the subset of docs/API.md the dashboard uses, so the UI can be
// developed and looked at before/without a Rust build:  node tests/mock-hub.mjs [port]
// It serves ui/dist at / and loads the fixtures at start.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { fixtures } from './fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dist = path.join(here, '..', 'dist');
const port = Number(process.argv[2] ?? 4517);
const events = [];
const subs = new Set();
const epoch = 'mock-epoch';
const FIELDS = ['run_id', 'session_id', 'parent_session_id', 'agent', 'entity_id', 'status', 'summary', 'duration_ms', 'metrics', 'host', 'pid', 'thread_id', 'correlation_id'];

function ingest(list) {
  const seqs = [];
  for (const e of list) {
    const full = { seq: events.length + 1, event_id: e.event_id ?? `gen-${events.length + 1}`, ts: e.ts ?? new Date().toISOString(), severity: 'info', tags: [], payload: {}, ...Object.fromEntries(FIELDS.map((f) => [f, null])), ...e };
    full.seq = events.length + 1;
    events.push(full);
    seqs.push(full.seq);
    for (const s of subs) if (match(s.filter, full)) s.res.write(`event: sightline.event\nid: ${full.seq}\ndata: ${JSON.stringify(full)}\n\n`);
  }
  return seqs;
}

function parseFilter(q) {
  const l = (k) => (q.get(k) ? q.get(k).split(',') : null);
  return { sources: l('sources'), agents: l('agents'), runs: l('runs'), sessions: l('sessions'), entity_types: l('entity_types'), statuses: l('statuses'), severities: l('severities'), since: q.get('since'), until: q.get('until'), q: q.get('q') };
}
function match(f, e) {
  if (f.sources && !f.sources.includes(e.source)) return false;
  if (f.agents && !f.agents.includes(e.agent)) return false;
  if (f.runs && !f.runs.includes(e.run_id)) return false;
  if (f.sessions && !f.sessions.includes(e.session_id)) return false;
  if (f.entity_types && !f.entity_types.includes(e.entity_type)) return false;
  if (f.statuses && !f.statuses.includes(e.status)) return false;
  if (f.severities && !f.severities.includes(e.severity)) return false;
  if (f.since && e.ts < f.since) return false;
  if (f.until && e.ts > f.until) return false;
  if (f.q && !(e.title + ' ' + (e.summary ?? '') + JSON.stringify(e.payload)).toLowerCase().includes(f.q.toLowerCase())) return false;
  return true;
}

function agg(list, key) {
  const m = new Map();
  for (const e of list) {
    const k = e[key]; if (!k) continue;
    let r = m.get(k);
    if (!r) m.set(k, (r = { [key]: k, run_id: e.run_id, source: e.source, agent: e.agent, parent_session_id: e.parent_session_id, title: e.title, status: null, started_at: e.ts, ended_at: null, last_event_at: e.ts, event_count: 0, error_count: 0, session_count: 0, input_tokens: 0, output_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0, cost_usd: 0, _s: new Set() }));
    r.event_count++; r.last_event_at = e.ts;
    if (e.session_id) r._s.add(e.session_id);
    if (e.severity === 'error') r.error_count++;
    if (['session', 'workflow', 'process', 'run'].includes(e.entity_type) && e.status && (key === 'session_id' || !e.parent_session_id)) { r.status = e.status; if (['success', 'failed', 'cancelled'].includes(e.status)) r.ended_at = e.ts; }
    if (e.entity_type === 'permission' && e.status === 'blocked') r.status = 'blocked';
    const mt = e.metrics ?? {};
    r.input_tokens += mt.input_tokens ?? 0; r.output_tokens += mt.output_tokens ?? 0; r.cache_read_tokens += mt.cache_read_tokens ?? 0; r.cost_usd += mt.cost_usd ?? 0;
  }
  return [...m.values()].map((r) => { r.session_count = r._s.size; delete r._s; r.duration_ms = Date.parse(r.ended_at ?? r.last_event_at) - Date.parse(r.started_at); return r; });
}

// Workflows as GET /api/v1/workflows serves them (docs/API.md; the hub computes them in
// crates/sightline-store/src/workflow.rs): the run row, steps with their attempts (the producer's
// `attempt` metric, else counted: a step that ended and runs again starts the next), one progress
// figure. The bounds (5,000 steps, 100 attempts) are not modelled: a mock never holds that many.
const TERMINAL = ['success', 'failed', 'cancelled'];
function workflowOf(id) {
  const l = events.filter((e) => e.run_id === id);
  if (!l.length) return null;
  const r = agg(l, 'run_id')[0];
  const run = { run_id: r.run_id, source: r.source, agent: r.agent, title: r.title, status: r.status, started_at: r.started_at, ended_at: r.ended_at, last_event_at: r.last_event_at, duration_ms: r.duration_ms, event_count: r.event_count, error_count: r.error_count, session_count: r.session_count, input_tokens: r.input_tokens, output_tokens: r.output_tokens, cache_read_tokens: r.cache_read_tokens, cache_write_tokens: r.cache_write_tokens, cost_usd: r.cost_usd, alive: r.status && TERMINAL.includes(r.status) ? false : null, ended_by: null, liveness_rule: null, liveness_reason: null };
  const steps = new Map(); let reported = null;
  for (const e of l) {
    const progress = e.metrics?.progress;
    if (e.entity_type === 'workflow') { if (progress != null) reported = Math.min(100, Math.max(0, progress)); continue; }
    if (e.entity_type !== 'step') continue;
    const name = e.entity_id ?? e.title;
    let st = steps.get(name);
    if (!st) steps.set(name, (st = { step: { name, status: null, progress: null, started_at: e.ts, ended_at: null, duration_ms: null, attempt_count: 0, attempts: [], attempts_omitted: 0, last_seq: e.seq }, closed: false }));
    const s = st.step; s.last_seq = Math.max(s.last_seq, e.seq);
    const told = Number.isInteger(e.metrics?.attempt) && e.metrics.attempt >= 1 ? e.metrics.attempt : null;
    const cur = s.attempts.at(-1)?.attempt ?? null;
    const progressOnly = e.source_event === 'progress';
    const reopens = [null, 'running', 'queued', 'blocked'].includes(e.status ?? null);
    const n = told ?? (cur == null ? 1 : st.closed && !progressOnly && reopens ? cur + 1 : cur);
    let a = s.attempts.find((x) => x.attempt === n);
    if (!a) { s.attempt_count++; s.attempts.push((a = { attempt: n, status: null, started_at: e.ts, ended_at: null, duration_ms: null, error: null, first_seq: e.seq, last_seq: e.seq })); s.progress = null; }
    const latest = a === s.attempts.at(-1);
    a.last_seq = Math.max(a.last_seq, e.seq);
    if (e.ts < a.started_at) a.started_at = e.ts;
    const ended = TERMINAL.includes(a.status);
    if (e.status && !(ended && (e.status === 'retry' || progressOnly))) {
      a.status = e.status;
      if (TERMINAL.includes(e.status) || e.status === 'retry') { a.ended_at = e.ts; a.duration_ms = e.duration_ms ?? Math.max(0, Date.parse(e.ts) - Date.parse(a.started_at)); }
      else { a.ended_at = null; a.duration_ms = null; }
    }
    if ((e.severity === 'error' || e.status === 'failed') && a.error == null) a.error = e.summary ?? e.title;
    if (latest) { st.closed = a.ended_at != null; if (progress != null) s.progress = Math.min(100, Math.max(0, progress)); }
  }
  const end = TERMINAL.includes(run.status) ? run.status : null;
  const list = [...steps.values()].map(({ step: s }) => {
    s.attempts.sort((x, y) => x.attempt - y.attempt);
    const last = s.attempts.at(-1);
    if (end && !TERMINAL.includes(last.status)) {
      last.status = end;
      if (last.ended_at == null) { last.ended_at = run.ended_at; last.duration_ms = run.ended_at ? Math.max(0, Date.parse(run.ended_at) - Date.parse(last.started_at)) : null; }
    }
    s.status = last.status; s.ended_at = last.ended_at; s.duration_ms = last.duration_ms;
    if (s.status === 'success') s.progress = 100;
    return s;
  });
  const done = list.filter((s) => s.status === 'success').length;
  const [percent, basis] = list.length ? [(done * 100) / list.length, 'steps'] : run.status === 'success' ? [100, 'ended'] : reported != null ? [reported, 'reported'] : [0, 'none'];
  return { run, progress: { steps_done: done, steps_known: list.length, percent, basis, exact: true }, steps: list, steps_omitted: 0, steps_retried: list.filter((s) => s.attempt_count > 1).length };
}

function json(res, code, body) { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); }

const plugins = JSON.parse(process.env.SIGHTLINE_PLUGINS ?? JSON.stringify([
  { name: 'sample-analyzer', command: ['python3', path.join(here, '../../plugins/sample-analyzer.py')], description: 'slowest calls, error summary, cost by agent', timeout_ms: 5000 },
  { name: 'crashy', command: ['python3', '-c', 'exit(3)'], description: 'exits without answering', timeout_ms: 2000 },
])).map((p) => ({ ...p, kind: p.url ? 'http' : 'command', target: p.url ?? p.command.join(' ') }));

const server = http.createServer(async (req, res) => {
  const u = new URL(req.url, 'http://x');
  const p = u.pathname;
  let body = '';
  for await (const c of req) body += c;
  if (req.method === 'POST' && p === '/api/v1/events') {
    const v = JSON.parse(body); const seqs = ingest(Array.isArray(v) ? v : [v]);
    return json(res, 202, { accepted: seqs.length, seqs, duplicates: 0 });
  }
  if (p === '/api/v1/events/stream') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(`retry: 2000\nevent: sightline.hello\ndata: ${JSON.stringify({ epoch, head_seq: events.length })}\n\n`);
    const f = parseFilter(u.searchParams);
    const last = Number(req.headers['last-event-id'] ?? u.searchParams.get('last_event_id') ?? events.length);
    for (const e of events.slice(last)) if (match(f, e)) res.write(`event: sightline.event\nid: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`);
    const s = { res, filter: f }; subs.add(s); req.on('close', () => subs.delete(s));
    return;
  }
  if (p === '/api/v1/search') {
    const f = parseFilter(u.searchParams); const lim = Number(u.searchParams.get('limit') ?? 100);
    const before = Number(u.searchParams.get('before') ?? Infinity), after = Number(u.searchParams.get('after') ?? 0);
    const asc = u.searchParams.get('order') === 'asc';
    let l = events.filter((e) => e.seq < before && e.seq > after && match(f, e));
    if (!asc) l.reverse();
    const page = l.slice(0, lim);
    return json(res, 200, { events: page, next_cursor: l.length > lim ? page[page.length - 1].seq : null });
  }
  let m;
  if ((m = p.match(/^\/api\/v1\/runs\/([^/]+)\/timeline$/))) {
    const id = decodeURIComponent(m[1]); const after = Number(u.searchParams.get('after') ?? 0); const lim = Number(u.searchParams.get('limit') ?? 500);
    const l = events.filter((e) => e.run_id === id && e.seq > after); const page = l.slice(0, lim);
    return json(res, 200, { events: page, next_cursor: l.length > lim ? page[page.length - 1].seq : null });
  }
  if ((m = p.match(/^\/api\/v1\/runs\/([^/]+)$/))) {
    const id = decodeURIComponent(m[1]); const l = events.filter((e) => e.run_id === id);
    const run = agg(l, 'run_id')[0]; if (!run) return json(res, 404, { error: { code: 'not_found', message: 'no such run' } });
    const sessions = agg(l, 'session_id').map((s) => ({ ...s, total_input_tokens: s.input_tokens, total_output_tokens: s.output_tokens, total_cost_usd: s.cost_usd }));
    const by = (k) => l.reduce((a, e) => ((a[e[k]] = (a[e[k]] ?? 0) + 1), a), {});
    return json(res, 200, { run, sessions, by_entity_type: by('entity_type'), by_severity: by('severity') });
  }
  if (p === '/api/v1/runs') {
    let runs = agg(events, 'run_id');
    const q = u.searchParams;
    if (q.get('source')) runs = runs.filter((r) => r.source === q.get('source'));
    if (q.get('status')) runs = runs.filter((r) => r.status === q.get('status'));
    if (q.get('agent')) runs = runs.filter((r) => r.agent === q.get('agent'));
    runs.sort((a, b) => (a.last_event_at < b.last_event_at ? 1 : -1));
    return json(res, 200, { runs: runs.slice(0, Number(q.get('limit') ?? 50)), next_cursor: null });
  }
  if (p === '/api/v1/workflows') {
    const q = u.searchParams;
    const raw = q.get('limit') || '100';
    if (!/^\d+$/.test(raw)) return json(res, 400, { error: { code: 'bad_request', message: `limit: \`${raw}\` is not a whole number (1 to 200)` } });
    const lim = Math.min(200, Math.max(1, Number(raw)));
    // The cursor is opaque to clients; here it is the offset into the newest-first list.
    const from = Number(q.get('cursor') || 0);
    const ids = agg(events.filter((e) => e.source === 'workflow'), 'run_id').sort((a, b) => (a.last_event_at < b.last_event_at ? 1 : -1)).map((r) => r.run_id);
    const page = ids.slice(from, from + lim);
    return json(res, 200, { workflows: page.map(workflowOf), next_cursor: from + lim < ids.length ? String(from + lim) : null });
  }
  if ((m = p.match(/^\/api\/v1\/workflows\/([^/]+)$/))) {
    const id = decodeURIComponent(m[1]); const w = workflowOf(id);
    return w ? json(res, 200, w) : json(res, 404, { error: { code: 'not_found', message: `no workflow \`${id}\`: its updates go to POST /api/v1/workflows/{id}/updates` } });
  }
  if ((m = p.match(/^\/api\/v1\/events\/(\d+)$/))) return json(res, 200, events[Number(m[1]) - 1]);
  if (p === '/api/v1/stats') {
    const by = (k) => events.reduce((a, e) => ((a[e[k]] = (a[e[k]] ?? 0) + 1), a), {});
    const err = events.filter((e) => e.severity === 'error').length;
    const runs = agg(events, 'run_id');
    return json(res, 200, { total_events: events.length, error_events: err, error_rate: events.length ? err / events.length : 0, events_per_minute: 42, active_sessions: 6, by_entity_type: by('entity_type'), by_source: by('source'), by_severity: by('severity'), total_cost_usd: runs.reduce((a, r) => a + r.cost_usd, 0), total_input_tokens: runs.reduce((a, r) => a + r.input_tokens, 0), total_output_tokens: runs.reduce((a, r) => a + r.output_tokens, 0), head_seq: events.length, epoch });
  }
  if (p === '/api/v1/incidents') {
    const g = new Map();
    for (const e of events) if (e.severity === 'error' || e.status === 'failed') {
      const k = `${e.run_id}|${e.correlation_id ?? e.entity_id}`; let i = g.get(k);
      if (!i) g.set(k, (i = { key: k, run_id: e.run_id, correlation_id: e.correlation_id, title: e.title, source: e.source, count: 0, first_seen: e.ts, first_seq: e.seq, sample: e }));
      i.count++; i.last_seen = e.ts; i.last_seq = e.seq;
    }
    return json(res, 200, { incidents: [...g.values()].sort((a, b) => (a.last_seen < b.last_seen ? 1 : -1)) });
  }
  if (p === '/api/v1/health') return json(res, 200, { status: 'ok', version: '0.1.0-mock', epoch, head_seq: events.length, uptime_s: 5423, storage: { path: '/home/dev/.local/share/sightline/sightline.db', size_bytes: 48_300_000, events: events.length, retention_days: 14 }, queue: { depth: 0, capacity: 65536, dropped: 0, rejected: 0 }, adapters: [{ name: 'http', state: 'running', last_event_at: new Date().toISOString(), lag_ms: 2, errors: 0, last_error: null }, { name: 'claude-hooks', state: 'running', last_event_at: new Date().toISOString(), lag_ms: 4, errors: 0, last_error: null }, { name: 'opencode', state: 'error', last_event_at: null, lag_ms: null, errors: 3, last_error: 'connect ECONNREFUSED 127.0.0.1:4096' }, { name: 'otlp', state: 'running', last_event_at: null, lag_ms: null, errors: 0, last_error: null }], subscribers: subs.size });
  if (p === '/api/v1/plugins') return json(res, 200, { plugins });
  if ((m = p.match(/^\/api\/v1\/plugins\/([^/]+)\/invoke$/))) {
    const pl = plugins.find((x) => x.name === m[1]);
    if (!pl) return json(res, 404, { error: { code: 'not_found', message: 'no such plugin' } });
    const ch = spawn(pl.command[0], pl.command.slice(1)); let out = '';
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; ch.kill('SIGKILL'); }, pl.timeout_ms ?? 5000);
    ch.stdout.on('data', (d) => (out += d));
    const inv = JSON.parse(body);
    const evs = inv.events ?? (inv.seqs ?? []).map((s) => events[s - 1]).filter(Boolean);
    ch.stdin.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'analyze', params: { events: evs, context: inv.context ?? {} } }) + '\n');
    ch.on('close', (code) => { clearTimeout(timer);
      try { const r = JSON.parse(out.split('\n')[0]); return json(res, 200, { plugin: pl.name, ok: true, duration_ms: 30, result: r.result }); }
      catch { return json(res, timedOut ? 504 : 502, { error: { code: timedOut ? 'plugin_timeout' : 'plugin_failed', message: timedOut ? `plugin timed out after ${pl.timeout_ms} ms` : `plugin exited with status ${code} before answering` } }); }
    });
    return;
  }
  // static
  const f = path.join(dist, p === '/' ? 'index.html' : p);
  if (f.startsWith(dist) && fs.existsSync(f) && fs.statSync(f).isFile()) {
    const ext = path.extname(f);
    res.writeHead(200, { 'content-type': { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' }[ext] ?? 'application/octet-stream' });
    return res.end(fs.readFileSync(f));
  }
  json(res, 404, { error: { code: 'not_found', message: p } });
});

if (!process.argv.includes('--empty')) { ingest(fixtures('a', Date.now() - 30 * 60 * 1000)); ingest(fixtures('b')); }
server.listen(port, '127.0.0.1', () => console.log(`sightline listening on http://127.0.0.1:${server.address().port}`));
