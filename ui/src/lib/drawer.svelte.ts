// The detail drawer is global: any page opens it with an event (or a seq to fetch).
import type { SEvent } from './types';

export const drawer = $state<{ event: SEvent | null; seq: number | null }>({ event: null, seq: null });

export function openEvent(e: SEvent) {
  drawer.event = e;
  drawer.seq = e.seq;
}
export function openSeq(seq: number) {
  drawer.event = null;
  drawer.seq = seq;
}
export function closeDrawer() {
  drawer.event = null;
  drawer.seq = null;
}
