// Live's lanes whose own events are not in the page's stream ring: under a busy source the ring
// (seeded with the newest 2,000 events) holds only that source, and a quiet agent's lane would
// show no activity on the time axis. For each such lane shown, the page asks the hub once for
// that lane's newest PER_LANE events (GET /api/v1/search, one session or run) and folds them
// through the same reducer as the stream (lib/lanes apply), in a state of its own; hubTree
// merges its chips and spans before the stream's. It must never feed these events to the
// stream's state (Live's digest and Replay compare that one), and never ask for a lane twice
// or for more than MAX_LANES lanes, or more than PARALLEL at once.
import { api } from './api';
import { apply, laneKey, newState, type Lane, type LaneState } from './lanes';
import type { LiveSession } from './types';

const PER_LANE = 64; // a lane shows at most 48 chips and 64 spans
const MAX_LANES = 300; // Live renders 40 trees by default; past this, lanes wait for the stream
const PARALLEL = 3;

class Backfill {
  /** Bumped when a lane's older events arrive. */
  version = $state(0);
  private states = new Map<string, LaneState>();
  private asked = new Set<string>();
  private queue: LiveSession[] = [];
  private running = 0;

  lane(key: string): Lane | undefined {
    return this.states.get(key)?.lanes.get(key);
  }

  /** Ask for this lane's older events, once. */
  want(s: LiveSession) {
    if (this.asked.has(s.key) || this.asked.size >= MAX_LANES) return;
    if (!s.key.startsWith('run:') && !s.session_id) return;
    this.asked.add(s.key);
    this.queue.push(s);
    this.pump();
  }

  /** The hub's database changed: what was fetched belongs to the old one. */
  reset() {
    this.states.clear();
    this.asked.clear();
    this.queue = [];
    this.version++;
  }

  private pump() {
    while (this.running < PARALLEL && this.queue.length) {
      const s = this.queue.shift()!;
      const key = s.key;
      const filter = key.startsWith('run:') ? { runs: [key.slice(4)] } : { sessions: [s.session_id] };
      this.running++;
      api.search(filter, { limit: PER_LANE, order: 'desc' })
        .then((p) => {
          const st = newState();
          for (const e of p.events.slice().reverse()) if (laneKey(e) === key) apply(st, e);
          if (st.lanes.has(key)) { this.states.set(key, st); this.version++; }
        })
        .catch(() => {}) // the lane keeps what the stream brings; no retry storm
        .finally(() => { this.running--; this.pump(); });
    }
  }
}

export const backfill = new Backfill();
