// One SSE connection for the whole page (browsers allow ~6 HTTP/1.1 connections per host, so
// every page shares this one and filters client-side). Events land in a bounded ring and the
// lane model; subscribers get them once per animation frame.
import { api, frameBatcher, Stream, type StreamState } from './api';
import { apply, newState, type LaneState } from './lanes';
import { backfill } from './backfill.svelte';
import type { Filter, SEvent } from './types';

export const RING_SIZE = 5000;
const SEED = 2000;

type Listener = (batch: SEvent[]) => void;

class Live {
  ring: SEvent[] = [];
  lanes: LaneState = newState();
  /** Bumped once per flushed batch; components read it to know when to recompute. */
  version = $state(0);
  conn = $state<StreamState>('connecting');
  received = $state(0);
  headSeq = $state(0);
  private listeners = new Set<Listener>();
  private stream: Stream | null = null;
  private started = false;

  start() {
    if (this.started) return;
    this.started = true;
    this.seed().catch(() => this.connect(null));
  }

  private async seed() {
    const page = await api.search({}, { limit: SEED, order: 'desc' });
    const evs = page.events.slice().reverse();
    this.ingest(evs);
    const last = evs.length ? evs[evs.length - 1].seq : 0;
    this.connect(last);
  }

  private connect(since: number | null) {
    const batch = frameBatcher<SEvent>((b) => this.ingest(b));
    this.stream = new Stream({}, since ?? 0, (e) => batch.push(e), (s) => (this.conn = s), () => {
      // The hub's database changed under us (restart with a new DB, or a wiped one): drop what
      // we had and start over from the new database rather than mixing two histories.
      batch.cancel();
      this.stream?.close();
      this.ring = [];
      this.lanes = newState();
      backfill.reset();
      this.version++;
      this.seed().catch(() => this.connect(null));
    });
  }

  private ingest(batch: SEvent[]) {
    if (!batch.length) return;
    for (const e of batch) apply(this.lanes, e);
    this.ring.push(...batch);
    if (this.ring.length > RING_SIZE) this.ring.splice(0, this.ring.length - RING_SIZE);
    this.received += batch.length;
    this.headSeq = batch[batch.length - 1].seq;
    for (const l of this.listeners) l(batch);
    this.version++;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}

export const live = new Live();

/** Client-side version of the hub's filter (same semantics: OR within a field, AND across). */
export function matches(f: Filter, e: SEvent): boolean {
  if (f.sources?.length && !f.sources.includes(e.source)) return false;
  if (f.source_events?.length && !f.source_events.includes(e.source_event)) return false;
  if (f.runs?.length && !(e.run_id && f.runs.includes(e.run_id))) return false;
  if (f.sessions?.length && !(e.session_id && f.sessions.includes(e.session_id))) return false;
  if (f.agents?.length && !(e.agent && f.agents.includes(e.agent))) return false;
  if (f.entity_types?.length && !f.entity_types.includes(e.entity_type)) return false;
  if (f.statuses?.length && !(e.status && f.statuses.includes(e.status))) return false;
  if (f.severities?.length && !f.severities.includes(e.severity)) return false;
  if (f.since && e.ts < f.since) return false;
  if (f.until && e.ts > f.until) return false;
  if (f.q) {
    // Approximation of the hub's full text: substring over title, summary and payload.
    const q = f.q.toLowerCase();
    const hay = (e.title + ' ' + (e.summary ?? '') + ' ' + JSON.stringify(e.payload)).toLowerCase();
    if (!q.split(/\s+/).every((w) => hay.includes(w))) return false;
  }
  return true;
}
