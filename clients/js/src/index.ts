/**
 * Client for a sightline hub (browser and Node 20+).
 *
 * - `subscribe(filter, handlers)` / `events(filter)`: live events over one WebSocket (`/ws`),
 *   several subscriptions per connection, each resumed after its last seq when the connection
 *   comes back (exponential backoff with jitter), so a hub restart loses and repeats nothing.
 * - `publish(events)`: each event gets an `event_id` first so a retry is never stored twice.
 *   In Node: POST with retries on 429/503 and network errors. In browsers: the WebSocket's
 *   `publish`, acknowledged after commit and re-sent after a reconnect, because a page on another
 *   origin (allowed with the hub's `--allow-origin`) can open the WebSocket but not read REST
 *   answers, and neither WebSocket nor EventSource can carry an `Authorization` header.
 * - `workflow(id)`: reports a workflow execution's status, steps, progress, logs, errors and
 *   completion (`POST /api/v1/workflows/{id}/updates`, or `workflow_update` over the WebSocket).
 *
 * WebSocket: the runtime's own (`globalThis.WebSocket`: browsers, Node 22+) where there is one;
 * the `ws` package, loaded lazily by a dynamic import, only where there is not (Node 20), or in
 * Node when a private CA is configured (the global WebSocket cannot be given one).
 *
 * TLS: `https://` URLs mean `wss://` for the WebSocket. Trust is the runtime's: the browser's
 * store, Node's bundled roots plus `NODE_EXTRA_CA_CERTS`. For a hub whose certificate a private
 * CA signed, Node also takes the CA itself (`ca`, or the PEM file `SIGHTLINE_CA_FILE`), added to
 * Node's roots for REST and the WebSocket. An untrusted certificate is final, like a refused
 * token: a `HubError` with `code: 'tls'` that says what to set, no endless retries.
 *
 * Tokens: Node sends `Authorization: Bearer` (REST and the WebSocket upgrade); with the global
 * WebSocket (browsers, Node 22+) the token goes in an `auth` message, never in the URL. A refused
 * token (close 4001) is final: every subscription's `onError` and every pending publish get a
 * `HubError` with `code: 'unauthorized'`, and the client stops reconnecting.
 *
 * The protocol is docs/PROTOCOL.md. This module must never swallow a gap: when the hub says a
 * resume could not be complete, `onReset` is called with its reason.
 */

// The event and its vocabularies are generated from the Rust types (crates/sightline-schema,
// tests/generated.rs), so they cannot drift from what the hub writes; never edit them here.
import type { Severity, SightlineEvent, Source, Status } from './generated/event.js';
export type { EntityType, Severity, SightlineEvent, Source, Status } from './generated/event.js';

/** The filter language: lists are OR within a field, AND across fields. */
export interface Filter {
  sources?: Source[];
  source_events?: string[];
  runs?: string[];
  sessions?: string[];
  agents?: string[];
  entity_types?: string[];
  statuses?: Status[];
  severities?: Severity[];
  since?: string;
  until?: string;
  q?: string;
}

/** What a producer sends: the required fields plus any optional ones. */
export type NewEvent = Partial<Omit<SightlineEvent, 'seq'>> &
  Pick<SightlineEvent, 'source' | 'source_event' | 'entity_type' | 'title'>;

export type WorkflowUpdateType = 'status' | 'log' | 'progress' | 'error' | 'complete';

export interface WorkflowUpdateData {
  status?: string;
  message?: string;
  progress?: number;
  step?: string;
  error?: string;
  level?: string;
  /** Which attempt of a retried step this is: a whole number from 1 (docs/PROTOCOL.md). */
  attempt?: number;
  [key: string]: unknown;
}

/** Options of {@link WorkflowReporter.step}. */
export interface StepOptions {
  /**
   * The attempt this run of the step is, a whole number from 1, when the caller retries it
   * itself. Without it the hub counts: a step that ended and runs again is the next attempt.
   */
  attempt?: number;
}

/** The minimal WebSocket surface used (the browser's, Node 22's global, or `ws`). */
export interface WebSocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketFactory = (url: string, headers: Record<string, string>) => WebSocketLike | Promise<WebSocketLike>;

export type Transport = 'http' | 'ws';

export interface ClientOptions {
  /** The hub, default `SIGHTLINE_URL` (Node) or `http://127.0.0.1:4517`. */
  url?: string;
  /** Bearer token, default `SIGHTLINE_TOKEN` (Node). */
  token?: string;
  /** How to open a WebSocket; default: the global one, else the `ws` package. */
  webSocket?: WebSocketFactory;
  /** Defaults to the global fetch (in Node with a `ca`: `node:https` carrying that CA). */
  fetch?: typeof fetch;
  /**
   * Node only: the PEM text of CA certificate(s) to trust for an `https://` hub besides Node's
   * bundled roots, such as the private CA that signed the hub's certificate. Default: the
   * contents of the file `SIGHTLINE_CA_FILE` names, if set. (`NODE_EXTRA_CA_CERTS=ca.pem` does
   * the same for the whole process and also reaches the global WebSocket.) Browsers ignore it:
   * they trust what the browser's store trusts.
   */
  ca?: string | Uint8Array | Array<string | Uint8Array>;
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * How `publish` and workflow updates travel: `'http'` (POST; the default in Node) or `'ws'`
   * (the shared WebSocket, acknowledged after commit; the default in browsers).
   */
  publishVia?: Transport;
}

export interface SubscribeOptions {
  /** Replay stored events after this seq first (0 = everything); default: live only. */
  since?: number;
}

export interface Handlers {
  onEvent: (event: SightlineEvent) => void;
  /** The hub could not resume completely (another database, or retention); live from here. */
  onReset?: (reason: string) => void;
  /** The subscription fell behind and catches up from storage (nothing is skipped). */
  onLagged?: () => void;
  onError?: (error: Error) => void;
}

export class HubError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly body?: unknown,
    /** The hub's error code (`unauthorized`, `forbidden`, `invalid_events`, ...) when it gave one. */
    readonly code?: string,
  ) {
    super(message);
    this.name = 'HubError';
  }
}

/** Node (or a runtime that says it is Node): REST works from anywhere. */
const isNode = (): boolean => {
  const g = globalThis as unknown as { process?: { versions?: { node?: string } } };
  return typeof g.process?.versions?.node === 'string';
};

/** WebSocket close codes of docs/PROTOCOL.md. */
const CLOSE_UNAUTHORIZED = 4001;

const env = (name: string): string | undefined => {
  const g = globalThis as unknown as { process?: { env?: Record<string, string | undefined> } };
  const v = g.process?.env?.[name];
  return v === '' ? undefined : v;
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Exponential backoff with jitter: a random delay in [d/2, d], d doubling up to `max`. */
export function backoff(attempt: number, min: number, max: number): number {
  const d = Math.min(max, min * 2 ** attempt);
  return d / 2 + Math.random() * (d / 2);
}

const randomId = (): string => {
  const c = (globalThis as unknown as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return `${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}-${Math.random().toString(16).slice(2)}`;
};

type Pem = string | Uint8Array;

/**
 * The runtime's WebSocket where there is one; `ws` (imported only now) where there is not, or
 * when extra CAs must be trusted (Node), since the global WebSocket takes no TLS options.
 */
async function defaultWebSocket(url: string, headers: Record<string, string>, ca?: Pem[]): Promise<WebSocketLike> {
  const G = (globalThis as unknown as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (G && !ca) return new G(url); // browsers (and Node 22+): the token goes in an `auth` message
  const mod = (await import('ws')) as unknown as { default: new (url: string, opts: unknown) => WebSocketLike };
  return new mod.default(url, ca ? { headers, ca: await withNodeRoots(ca) } : { headers });
}

/** Imports a Node built-in by a computed name: browser bundlers leave it alone. */
const nodeModule = (name: string): Promise<unknown> => import(/* @vite-ignore */ name);

/** Node's bundled roots plus `ca`: Node's `ca` option replaces the roots, and a hub reached by
 * a public name must keep working. */
async function withNodeRoots(ca: Pem[]): Promise<Pem[]> {
  const tls = (await nodeModule('node:tls')) as { rootCertificates: readonly string[] };
  return [...tls.rootCertificates, ...ca];
}

/** What `request` reads of a response (a subset of fetch's `Response`). */
interface MiniResponse {
  status: number;
  ok: boolean;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

type MiniFetch = (url: string, init: { method: string; headers: Record<string, string>; body?: string }) => Promise<MiniResponse>;

/** A fetch over `node:https` that trusts `ca` too (Node's global fetch cannot be given a CA). */
async function httpsFetchWithCa(ca: Pem[]): Promise<MiniFetch> {
  const https = (await nodeModule('node:https')) as {
    request(url: string, opts: unknown, cb: (res: NodeResponse) => void): NodeRequest;
  };
  const allCa = await withNodeRoots(ca);
  return (url, init) =>
    new Promise((resolve, reject) => {
      const req = https.request(url, { method: init.method, headers: init.headers, ca: allCa }, (res) => {
        const chunks: Uint8Array[] = [];
        res.on('data', (c: Uint8Array) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = new TextDecoder().decode(concat(chunks));
          const status = res.statusCode ?? 0;
          resolve({
            status,
            ok: status >= 200 && status < 300,
            headers: {
              get: (n: string) => {
                const v = res.headers[n.toLowerCase()];
                return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
              },
            },
            text: async () => body,
          });
        });
      });
      req.on('error', reject);
      // As undici's fetch does: a hub silent for 5 minutes is a network error (then retried).
      req.setTimeout(300_000, () => req.destroy(new Error('no answer from the hub in 300 s')));
      req.end(init.body);
    });
}

interface NodeResponse {
  statusCode?: number;
  headers: Record<string, string | string[] | undefined>;
  on(ev: string, cb: (arg: never) => void): void;
}

interface NodeRequest {
  on(ev: string, cb: (e: Error) => void): void;
  setTimeout(ms: number, cb: () => void): void;
  destroy(e: Error): void;
  end(body?: string): void;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** OpenSSL's codes for a certificate Node does not trust (or that names another host). */
const TLS_TRUST_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * The advice for a TLS failure retrying cannot fix (found in an error, its `cause` or its
 * `error`, as fetch and `ws` wrap them), or `undefined` for any other failure.
 */
function tlsTrustProblem(e: unknown): string | undefined {
  for (let x = e, depth = 0; x && typeof x === 'object' && depth < 4; depth++) {
    const o = x as { code?: unknown; message?: unknown; cause?: unknown; error?: unknown };
    if (typeof o.code === 'string' && TLS_TRUST_CODES.has(o.code)) {
      const what = o.code === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? 'does not name this host: use the name or IP address in its subjectAltName'
        : o.code === 'CERT_HAS_EXPIRED' || o.code === 'CERT_NOT_YET_VALID'
          ? 'is outside its validity dates: renew it'
          : "is not signed by a CA this client trusts: for a private CA pass its PEM as the `ca` option or set SIGHTLINE_CA_FILE (Node), or start Node with NODE_EXTRA_CA_CERTS=ca.pem";
      return `the hub's TLS certificate ${what} (${o.code}: ${String(o.message ?? '')})`;
    }
    x = o.cause ?? o.error;
  }
  return undefined;
}

interface SubState {
  id: string;
  filter: Filter;
  handlers: Handlers;
  /** Last seq delivered (or the start point); `undefined` = live only, not started yet. */
  cursor: number | undefined;
  /** The epoch of the database `cursor` belongs to (from `subscribed`). */
  epoch: string | undefined;
  active: boolean;
}

/** A `publish` / `workflow_update` waiting for its `ack`; re-sent after a reconnect. */
interface Outgoing {
  text: string;
  resolve: (ack: { seqs: number[]; duplicates: number }) => void;
  reject: (e: Error) => void;
  /** Connections lost (or not made) while this waited; past `maxAttempts` it fails. */
  failures: number;
  maxAttempts: number;
  /** Sent on the current connection. */
  sent: boolean;
}

/** A live subscription; `close()` ends it. */
export interface Subscription {
  readonly id: string;
  /** The last seq delivered. */
  readonly cursor: number | undefined;
  close(): void;
}

export class SightlineClient {
  readonly url: string;
  readonly token: string | undefined;
  /** The hub database's epoch, from `welcome`. */
  epoch: string | undefined;
  private readonly fetchImpl: typeof fetch;
  /** Set when `options.fetch` was given: REST goes through it whatever the CA. */
  private readonly customFetch: boolean;
  private readonly openSocket: WebSocketFactory;
  private readonly caOption: Pem[] | undefined;
  /** `SIGHTLINE_CA_FILE` when the client was made (read when first needed). */
  private readonly caFile: string | undefined;
  /** The extra CAs for this hub (Node, https only), loaded once. */
  private caLoaded: Promise<Pem[] | undefined> | undefined;
  private restFetch: Promise<MiniFetch> | undefined;
  /** Why the last connection failed in TLS, until the close that follows. */
  private tlsRefused: string | undefined;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private socket: WebSocketLike | undefined;
  private connecting = false;
  private closed = false;
  private attempt = 0;
  private subs = new Map<string, SubState>();
  private nextId = 1;
  private outgoing = new Map<string, Outgoing>();
  private nextOut = 1;
  private ready = false;
  private queue: string[] = [];
  /** The HTTP status a refused WebSocket upgrade got (Node's `ws`), until the close that follows. */
  private refusedWith: number | undefined;
  /** Set when the hub refused the token: final, no more reconnects. */
  private fatal: HubError | undefined;
  private readonly publishVia: Transport;

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? env('SIGHTLINE_URL') ?? 'http://127.0.0.1:4517').replace(/\/+$/, '');
    this.token = options.token ?? env('SIGHTLINE_TOKEN');
    const f = options.fetch ?? (globalThis as { fetch?: typeof fetch }).fetch;
    if (!f) throw new Error('no fetch available; pass options.fetch');
    this.fetchImpl = f.bind(globalThis);
    this.customFetch = options.fetch !== undefined;
    this.caOption = options.ca === undefined ? undefined : Array.isArray(options.ca) ? options.ca : [options.ca];
    this.caFile = env('SIGHTLINE_CA_FILE');
    this.openSocket = options.webSocket ?? (async (url, headers) => defaultWebSocket(url, headers, await this.extraCa()));
    this.minBackoff = options.minBackoffMs ?? 200;
    this.maxBackoff = options.maxBackoffMs ?? 10_000;
    this.publishVia = options.publishVia ?? (isNode() ? 'http' : 'ws');
  }

  // ---- TLS ----------------------------------------------------------------------------------

  /**
   * The CAs to trust besides the runtime's (Node, `https://` only): `ca`, else the file
   * `SIGHTLINE_CA_FILE` names. A file that cannot be read or holds no certificate is a
   * `HubError` (`code: 'tls'`) that says so.
   */
  private extraCa(): Promise<Pem[] | undefined> {
    this.caLoaded ??= (async () => {
      if (!isNode() || !/^https:/i.test(this.url)) return undefined;
      if (this.caOption) return this.caOption;
      const file = this.caFile;
      if (!file) return undefined;
      const fs = (await nodeModule('node:fs/promises')) as { readFile(p: string, enc: string): Promise<string> };
      let pem: string;
      try {
        pem = await fs.readFile(file, 'utf8');
      } catch (e) {
        throw new HubError(`SIGHTLINE_CA_FILE ${file}: ${(e as Error).message}: give it the PEM file of the CA that signed the hub's certificate`, undefined, undefined, 'tls');
      }
      if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
        throw new HubError(`SIGHTLINE_CA_FILE ${file}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it`, undefined, undefined, 'tls');
      }
      return [pem];
    })();
    return this.caLoaded;
  }

  /** fetch, or (Node with extra CAs and no `options.fetch`) `node:https` carrying them. */
  private fetcher(): Promise<MiniFetch> {
    this.restFetch ??= (async () => {
      const ca = this.customFetch ? undefined : await this.extraCa();
      return ca ? httpsFetchWithCa(ca) : (this.fetchImpl as unknown as MiniFetch);
    })();
    // A CA file that failed to load is tried again on the next call (it may be fixed by then).
    this.restFetch.catch(() => {
      this.restFetch = undefined;
      this.caLoaded = undefined;
    });
    return this.restFetch;
  }

  // ---- REST ---------------------------------------------------------------------------------

  /** One API call with retries on 429/503 and network errors; resolves to the parsed JSON. */
  async request<T = unknown>(method: string, path: string, body?: unknown, maxAttempts = 6): Promise<T> {
    let lastError: unknown;
    const doFetch = await this.fetcher();
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      try {
        const headers: Record<string, string> = { Accept: 'application/json' };
        if (body !== undefined) headers['Content-Type'] = 'application/json';
        if (this.token) headers.Authorization = `Bearer ${this.token}`;
        const res = await doFetch(this.url + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        const text = await res.text();
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          /* not JSON: keep the text */
        }
        if ((res.status === 429 || res.status === 503) && attempt + 1 < maxAttempts) {
          const retryAfter = Number(res.headers.get('retry-after'));
          await sleep(Math.max(backoff(attempt, this.minBackoff, this.maxBackoff), (retryAfter || 0) * 1000));
          continue;
        }
        if (!res.ok) {
          const err = (parsed as { error?: { message?: string } })?.error?.message ?? text;
          throw new HubError(`${method} ${path}: HTTP ${res.status}: ${err}`, res.status, parsed);
        }
        return parsed as T;
      } catch (e) {
        if (e instanceof HubError) throw e;
        const tls = tlsTrustProblem(e);
        if (tls) throw new HubError(`${method} ${path}: ${tls}`, undefined, e, 'tls');
        lastError = e;
        if (attempt + 1 < maxAttempts) await sleep(backoff(attempt, this.minBackoff, this.maxBackoff));
      }
    }
    throw new HubError(`${method} ${path}: the hub at ${this.url} is unreachable: ${String(lastError)}`);
  }

  /** Stores events after commit; resolves to their seqs (in order). */
  async publish(events: NewEvent | NewEvent[], maxAttempts = 8): Promise<number[]> {
    const batch = (Array.isArray(events) ? events : [events]).map((e) => ({ event_id: randomId(), ...e }));
    if (this.publishVia === 'ws') return (await this.sendForAck({ type: 'publish', events: batch }, maxAttempts)).seqs;
    const answer = await this.request<{ seqs: number[] }>('POST', '/api/v1/events', batch, maxAttempts);
    return answer.seqs;
  }

  /** Workflow updates (docs/PROTOCOL.md, "Workflow executions"); resolves to their seqs. */
  async workflowUpdates(workflowId: string, updates: unknown[], maxAttempts = 6): Promise<number[]> {
    if (this.publishVia === 'ws') {
      return (await this.sendForAck({ type: 'workflow_update', workflow_id: workflowId, updates }, maxAttempts)).seqs;
    }
    const path = `/api/v1/workflows/${encodeURIComponent(workflowId)}/updates`;
    return (await this.request<{ seqs: number[] }>('POST', path, updates, maxAttempts)).seqs;
  }

  /**
   * Sends a `publish` / `workflow_update` over the WebSocket and resolves with its `ack` (sent by
   * the hub after commit). Survives reconnects: the message is sent again on the next connection
   * (its event ids make that safe), until `maxAttempts` connections were lost or not made.
   */
  private sendForAck(msg: Record<string, unknown>, maxAttempts: number): Promise<{ seqs: number[]; duplicates: number }> {
    if (this.fatal) return Promise.reject(this.fatal);
    if (this.closed) return Promise.reject(new HubError('client closed'));
    const id = `p${this.nextOut++}`;
    return new Promise((resolve, reject) => {
      const out: Outgoing = { text: JSON.stringify({ ...msg, id }), resolve, reject, failures: 0, maxAttempts, sent: false };
      this.outgoing.set(id, out);
      if (this.ready) this.sendOutgoing(out);
      else void this.connect();
    });
  }

  private sendOutgoing(out: Outgoing): void {
    if (this.socket && this.ready && this.socket.readyState === 1) {
      this.socket.send(out.text);
      out.sent = true;
    }
  }

  async search(filter: Filter = {}, limit = 100): Promise<SightlineEvent[]> {
    const params = new URLSearchParams({ limit: String(limit) });
    for (const [k, v] of Object.entries(filter)) {
      if (v === undefined) continue;
      params.set(k, Array.isArray(v) ? v.join(',') : String(v));
    }
    return (await this.request<{ events: SightlineEvent[] }>('GET', `/api/v1/search?${params}`)).events;
  }

  workflow(id: string, name?: string): WorkflowReporter {
    return new WorkflowReporter(this, id, name);
  }

  // ---- live ---------------------------------------------------------------------------------

  /** Subscribes over the shared WebSocket; reconnects and resumes by itself. */
  subscribe(filter: Filter, handlers: Handlers, options: SubscribeOptions = {}): Subscription {
    const id = `s${this.nextId++}`;
    const state: SubState = { id, filter, handlers, cursor: options.since, epoch: undefined, active: true };
    this.subs.set(id, state);
    if (this.fatal) {
      const err = this.fatal;
      queueMicrotask(() => handlers.onError?.(err));
    } else if (this.ready) this.sendSubscribe(state);
    else void this.connect();
    return {
      id,
      get cursor() {
        return state.cursor;
      },
      close: () => {
        state.active = false;
        this.subs.delete(id);
        if (this.ready) this.send({ type: 'unsubscribe', id });
      },
    };
  }

  /** The same as an async iterator; `break` ends the subscription. */
  events(filter: Filter = {}, options: SubscribeOptions = {}): AsyncIterableIterator<SightlineEvent> {
    const buffer: SightlineEvent[] = [];
    let wake: (() => void) | undefined;
    let failure: Error | undefined;
    const sub = this.subscribe(
      filter,
      {
        onEvent: (e) => {
          buffer.push(e);
          wake?.();
        },
        onError: (e) => {
          failure = e;
          wake?.();
        },
      },
      options,
    );
    const iterator: AsyncIterableIterator<SightlineEvent> = {
      [Symbol.asyncIterator]() {
        return iterator;
      },
      async next() {
        while (buffer.length === 0) {
          if (failure) throw failure;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
        return { value: buffer.shift()!, done: false };
      },
      async return() {
        sub.close();
        return { value: undefined, done: true };
      },
    };
    return iterator;
  }

  /** Closes the WebSocket and every subscription; pending publishes are rejected. */
  close(): void {
    this.closed = true;
    this.subs.clear();
    this.socket?.close(1000, 'client closed');
    for (const o of this.outgoing.values()) o.reject(new HubError('client closed'));
    this.outgoing.clear();
  }

  private wsUrl(): string {
    return this.url.replace(/^http/, 'ws') + '/ws';
  }

  private send(msg: unknown): void {
    const text = JSON.stringify(msg);
    if (this.socket && this.ready && this.socket.readyState === 1) this.socket.send(text);
    else this.queue.push(text);
  }

  private sendSubscribe(s: SubState): void {
    const msg: Record<string, unknown> = { type: 'subscribe', id: s.id, filter: s.filter };
    if (s.cursor !== undefined) {
      msg.since = s.cursor;
      const epoch = s.epoch ?? this.epoch;
      if (epoch) msg.epoch = epoch;
    }
    this.send(msg);
  }

  private async connect(): Promise<void> {
    if (this.connecting || this.socket || this.closed || this.fatal) return;
    this.connecting = true;
    try {
      const headers: Record<string, string> = {};
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const ws = await this.openSocket(this.wsUrl(), headers);
      this.socket = ws;
      ws.onmessage = (ev) => this.onMessage(String(ev.data));
      ws.onclose = (ev) => this.onClose(ev?.code, ev?.reason);
      ws.onerror = (ev: unknown) => {
        // Node's `ws` reports an upgrade the hub answered with an HTTP status (a wrong token
        // in the header, a refused Host or Origin) as this error, then a 1006 close.
        const e = ev as { message?: unknown; error?: { message?: unknown } } | undefined;
        const m = /Unexpected server response: (\d{3})/.exec(String(e?.message ?? e?.error?.message ?? ''));
        if (m) this.refusedWith = Number(m[1]);
        this.tlsRefused = tlsTrustProblem(ev);
      };
    } catch (e) {
      this.connecting = false;
      if (e instanceof HubError && e.code === 'tls') {
        this.fail(e);
        return;
      }
      this.connectionLost();
      this.scheduleReconnect();
      return;
    }
    this.connecting = false;
  }

  private onClose(code?: number, reason?: string): void {
    this.socket = undefined;
    this.ready = false;
    const refused = this.refusedWith;
    this.refusedWith = undefined;
    const tls = this.tlsRefused;
    this.tlsRefused = undefined;
    if (this.closed) return;
    if (tls) {
      // Retrying cannot help until someone configures the CA.
      this.fail(new HubError(tls, undefined, undefined, 'tls'));
      return;
    }
    if (code === CLOSE_UNAUTHORIZED || refused === 401) {
      this.fail(new HubError(`unauthorized: ${reason || 'the hub refused the token'}`, 401, undefined, 'unauthorized'));
      return;
    }
    if (refused === 403) {
      // Retrying cannot help: the Host or Origin is not allowed (see docs/SECURITY.md).
      this.fail(new HubError('forbidden: the hub refused this connection (Host or Origin not allowed)', 403, undefined, 'forbidden'));
      return;
    }
    this.connectionLost();
    this.scheduleReconnect();
  }

  /** A connection ended or could not be made: what waited for an ack is sent again later. */
  private connectionLost(): void {
    for (const [id, o] of this.outgoing) {
      o.sent = false;
      if (++o.failures >= o.maxAttempts) {
        this.outgoing.delete(id);
        o.reject(new HubError(`the hub at ${this.url} is unreachable (${o.failures} connections lost or refused)`));
      }
    }
  }

  /** Final: the token was refused. Tell every subscription and pending publish, stop. */
  private fail(err: HubError): void {
    this.fatal = err;
    this.socket?.close(1000, 'client gives up');
    for (const o of this.outgoing.values()) o.reject(err);
    this.outgoing.clear();
    for (const s of this.subs.values()) s.handlers.onError?.(err);
  }

  /** Connected (and authenticated): (re)send subscriptions, queued messages, unacked publishes. */
  private onReady(): void {
    this.ready = true;
    this.attempt = 0;
    for (const s of this.subs.values()) this.sendSubscribe(s);
    for (const q of this.queue.splice(0)) this.socket?.send(q);
    for (const o of this.outgoing.values()) this.sendOutgoing(o);
  }

  private scheduleReconnect(): void {
    if (this.closed || this.fatal || (this.subs.size === 0 && this.outgoing.size === 0)) return;
    const delay = backoff(this.attempt++, this.minBackoff, this.maxBackoff);
    setTimeout(() => void this.connect(), delay);
  }

  private onMessage(text: string): void {
    let msg: any;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    switch (msg.type) {
      case 'welcome': {
        // A new database keeps old cursors meaningless; each subscription resumes with the
        // epoch its cursor came from, and the hub answers `recovered: false` (→ `onReset`).
        this.epoch = msg.epoch ?? this.epoch;
        if (msg.auth_required) {
          if (!this.token) {
            this.fail(new HubError('unauthorized: the hub requires a token; pass options.token', 401, undefined, 'unauthorized'));
            break;
          }
          // Browsers' WebSocket cannot send headers: the token goes in the first message, and
          // nothing else is sent until the hub says `authenticated` (or closes with 4001).
          this.socket?.send(JSON.stringify({ type: 'auth', token: this.token }));
          break;
        }
        this.onReady();
        break;
      }
      case 'authenticated': {
        this.onReady();
        break;
      }
      case 'subscribed': {
        const s = this.subs.get(String(msg.id));
        if (!s) break;
        if (msg.epoch) s.epoch = String(msg.epoch);
        if (!msg.recovered) {
          s.cursor = Number(msg.from_seq) - 1;
          s.handlers.onReset?.(String(msg.reason ?? 'resume was not complete'));
        } else if (s.cursor === undefined) {
          s.cursor = Number(msg.from_seq) - 1; // live: a reconnect resumes after this point
        }
        break;
      }
      case 'ack': {
        const o = msg.id !== undefined ? this.outgoing.get(String(msg.id)) : undefined;
        if (!o) break;
        this.outgoing.delete(String(msg.id));
        o.resolve({ seqs: (msg.seqs ?? []).map(Number), duplicates: Number(msg.duplicates ?? 0) });
        break;
      }
      case 'event': {
        const s = this.subs.get(String(msg.sub));
        if (!s || !s.active) break;
        if (s.cursor !== undefined && msg.seq <= s.cursor) break; // already delivered
        s.cursor = msg.seq;
        s.handlers.onEvent(msg.event as SightlineEvent);
        break;
      }
      case 'lagged': {
        this.subs.get(String(msg.sub))?.handlers.onLagged?.();
        break;
      }
      case 'error': {
        const code = String(msg.code);
        const status = code === 'unauthorized' ? 401 : code === 'forbidden' ? 403 : undefined;
        const err = new HubError(`${code}: ${msg.message}`, status, msg, code);
        const id = msg.id === undefined ? undefined : String(msg.id);
        const o = id === undefined ? undefined : this.outgoing.get(id);
        if (o) {
          if (code === 'queue_full' || code === 'unavailable' || code === 'store') {
            // Nothing was stored: send it again after the hub's delay (ids keep it idempotent).
            if (++o.failures >= o.maxAttempts) {
              this.outgoing.delete(id!);
              o.reject(err);
            } else {
              o.sent = false;
              const wait = Math.max(Number(msg.retry_after_ms) || 0, backoff(o.failures, this.minBackoff, this.maxBackoff));
              setTimeout(() => this.sendOutgoing(o), wait);
            }
          } else {
            this.outgoing.delete(id!);
            o.reject(err);
          }
        } else if (id !== undefined && this.subs.has(id)) {
          this.subs.get(id)!.handlers.onError?.(err);
        }
        // `unauthorized` without an id is followed by close 4001, handled in onClose.
        break;
      }
      default:
        break;
    }
  }
}

/** Reports one workflow execution. */
export class WorkflowReporter {
  currentStep: string | undefined;
  /** The attempt given to the current step's `step()`, sent with its later updates too. */
  currentAttempt: number | undefined;
  private started = Date.now();

  constructor(readonly client: SightlineClient, readonly id: string, readonly name?: string) {}

  /** Sends one update; resolves to its seq. */
  async update(type: WorkflowUpdateType, data: WorkflowUpdateData = {}): Promise<number> {
    const clean: WorkflowUpdateData = {};
    for (const [k, v] of Object.entries(data)) if (v !== undefined) clean[k] = v;
    if (this.name && clean.workflow === undefined) clean.workflow = this.name;
    const seqs = await this.client.workflowUpdates(this.id, [{ type, id: randomId(), data: clean }]);
    return seqs[0];
  }

  start(message?: string) {
    this.started = Date.now();
    return this.update('status', { status: 'running', message: message ?? `${this.name ?? this.id} started` });
  }

  /**
   * Starts a step (ending the previous one with success). `attempt` names which attempt of a
   * retried step this is; it is sent with the step's later progress, logs, errors and end too.
   * Throws a RangeError, sending nothing, when it is not a whole number from 1.
   */
  async step(step: string, message?: string, options: StepOptions = {}) {
    const { attempt } = options;
    if (attempt !== undefined && !(Number.isSafeInteger(attempt) && attempt >= 1)) {
      throw new RangeError(`attempt must be a whole number from 1, got ${attempt}`);
    }
    if (this.currentStep && this.currentStep !== step) await this.update('status', { status: 'success', step: this.currentStep, attempt: this.currentAttempt });
    this.currentStep = step;
    this.currentAttempt = attempt;
    return this.update('status', { status: 'running', step, message, attempt });
  }

  /** The attempt to send with an update of `step`: the current step's, else none. */
  private attemptOf(step: string | undefined) {
    return step !== undefined && step === this.currentStep ? this.currentAttempt : undefined;
  }

  progress(progress: number, step?: string, message?: string) {
    const s = step ?? this.currentStep;
    return this.update('progress', { progress, step: s, message, attempt: this.attemptOf(s) });
  }

  log(message: string, level: Severity = 'info') {
    return this.update('log', { message, level, step: this.currentStep, attempt: this.attemptOf(this.currentStep) });
  }

  error(error: unknown, step?: string) {
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    const s = step ?? this.currentStep;
    return this.update('error', { error: text, step: s, attempt: this.attemptOf(s) });
  }

  async complete(status: 'success' | 'failed' | 'cancelled' = 'success', message?: string) {
    if (this.currentStep) {
      await this.update('status', { status, step: this.currentStep, attempt: this.currentAttempt });
      this.currentStep = undefined;
      this.currentAttempt = undefined;
    }
    return this.update('complete', { status, message, duration_ms: Date.now() - this.started });
  }

  /** Runs `body`, reporting start, then completion or the error and a failed completion. */
  async run<T>(body: (wf: WorkflowReporter) => Promise<T>): Promise<T> {
    await this.start();
    try {
      const result = await body(this);
      await this.complete('success');
      return result;
    } catch (e) {
      await this.error(e);
      await this.complete('failed', e instanceof Error ? e.message : String(e));
      throw e;
    }
  }
}
