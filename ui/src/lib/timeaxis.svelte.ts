// The time axis Live and Replay share: which window is shown (5, 15 or 60 minutes, remembered in
// localStorage), its ticks, and the numbers the lanes' CSS positions bars and chips with.
// Positions are CSS, not script: a bar carries its own start (and end) once, as custom
// properties, and the panel carries the axis (`--t0`, `--tn`, `--win`), so moving "now" every
// second restyles one element and re-renders none. This module must never make the view
// re-render every chip when the clock moves: at 1,000 events/s that would blow the frame budget.

/** Seconds are counted from this page-load epoch so CSS gets small numbers (floats lose ms at 1e12). */
export const BASE = Math.floor(Date.now() / 60_000) * 60_000;

/** Epoch ms → seconds since BASE, as a CSS number. */
export const rel = (ms: number): string => ((ms - BASE) / 1000).toFixed(3);

export interface Window { s: number; label: string; step: number }
/** Selectable windows, each with a tick step that gives five to six labelled ticks. */
export const WINDOWS: Window[] = [
  { s: 300, label: '5 min', step: 60 },
  { s: 900, label: '15 min', step: 180 },
  { s: 3600, label: '60 min', step: 600 },
];
const KEY = 'sightline.window';

function initial(): number {
  try {
    const v = Number(localStorage.getItem(KEY));
    if (WINDOWS.some((w) => w.s === v)) return v;
  } catch {}
  return 900;
}

class Axis {
  /** The window's length in seconds. */
  win = $state(initial());
  set(s: number) {
    if (!WINDOWS.some((w) => w.s === s)) return;
    this.win = s;
    try { localStorage.setItem(KEY, String(s)); } catch {}
  }
}
export const axis = new Axis();

/** The panel's custom properties: the window ends at `now` (epoch ms). */
export function axisStyle(now: number, winS: number): string {
  return `--t0:${rel(now - winS * 1000)};--tn:${rel(now)};--win:${winS}`;
}

const pad2 = (n: number) => (n < 10 ? '0' + n : '' + n);

const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** Ticks at whole steps of local time inside (now - win, now]: the window's own step, or for any
 * other length (Replay fits its run) the first whole step that gives at most six. */
export function ticks(now: number, winS: number): { t: number; label: string }[] {
  const step = (WINDOWS.find((x) => x.s === winS)?.step ?? STEPS.find((s) => winS / s <= 6) ?? 86400) * 1000;
  const t0 = now - winS * 1000;
  const out: { t: number; label: string }[] = [];
  // Align to the local clock (a zone offset that is not whole minutes still gets round labels).
  const off = new Date(now).getTimezoneOffset() * 60_000;
  // The last 8 % of the ruler is the "now" label's: a tick there would sit under it.
  for (let t = Math.ceil((t0 - off) / step) * step + off; t <= now - winS * 80; t += step) {
    const d = new Date(t);
    out.push({ t, label: `${pad2(d.getHours())}:${pad2(d.getMinutes())}${step < 60_000 ? ':' + pad2(d.getSeconds()) : ''}` });
  }
  return out;
}
