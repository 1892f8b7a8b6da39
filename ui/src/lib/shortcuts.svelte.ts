// Every keyboard shortcut of the dashboard, in ONE table. The global key handler (App) looks a
// key up here and runs the handler bound to that entry; the `?` help lists this same table, so
// the help can never be stale and a shortcut cannot exist without being listed. Pages bind their
// own entries' handlers while mounted (bind() returns the unbind). This module must never act on
// a key that is not in the table, and never take a key from a text field unless the entry says
// so (`field`), so typing stays typing.

export interface Shortcut {
  id: string;
  /** KeyboardEvent.key values, with `Ctrl+` / `Meta+` / `Alt+` prefixes for modified keys. */
  keys: string[];
  label: string;
  /** Where it works: shown as the help's group heading. */
  scope: string;
  /** Taken while typing in a field matching this selector (`*` any field); otherwise never. */
  field?: string;
}

export const SHORTCUTS: Shortcut[] = [
  { id: 'help', keys: ['?'], label: 'Show these shortcuts', scope: 'Everywhere' },
  { id: 'palette', keys: ['Ctrl+k', 'Meta+k'], label: 'Command palette: jump to a page, run or session', scope: 'Everywhere', field: '*' },
  { id: 'search', keys: ['/'], label: "Focus the page's search", scope: 'Everywhere' },
  { id: 'escape', keys: ['Escape'], label: 'Close the dialog or drawer, or leave the field', scope: 'Everywhere', field: '*' },
  { id: 'theme', keys: ['t'], label: 'Switch between light and dark', scope: 'Everywhere' },
  { id: 'down', keys: ['j'], label: 'Next row of the list (Live, Runs, Timeline, Incidents, Workflows)', scope: 'Lists' },
  { id: 'up', keys: ['k'], label: 'Previous row of the list', scope: 'Lists' },
  { id: 'open', keys: ['Enter'], label: 'Open the selected row', scope: 'Lists' },
  { id: 'palette-down', keys: ['ArrowDown'], label: 'Next match', scope: 'Command palette', field: '[data-palette-input]' },
  { id: 'palette-up', keys: ['ArrowUp'], label: 'Previous match', scope: 'Command palette', field: '[data-palette-input]' },
  { id: 'palette-go', keys: ['Enter'], label: 'Go to the selected match', scope: 'Command palette', field: '[data-palette-input]' },
  { id: 'conv-hit', keys: ['Enter'], label: 'Scroll to the first match', scope: 'Conversation search', field: '[data-testid="conv-search"]' },
  { id: 'replay-play', keys: [' '], label: 'Play or pause', scope: 'Replay' },
  { id: 'replay-back', keys: ['ArrowLeft'], label: 'Step back one event', scope: 'Replay' },
  { id: 'replay-forward', keys: ['ArrowRight'], label: 'Step forward one event', scope: 'Replay' },
];

/** How a key is shown in the help: `Ctrl K`, `⌘ K`, `Space`, `↓`. */
export function keyLabel(k: string): string {
  const NAMES: Record<string, string> = { ' ': 'Space', ArrowDown: '↓', ArrowUp: '↑', ArrowLeft: '←', ArrowRight: '→', Escape: 'Esc', Enter: '↵', Meta: '⌘' };
  return k.split('+').map((p, i) => NAMES[p] ?? (i > 0 ? p.toUpperCase() : p)).join(' ');
}

/** A handler returns false when the key does not apply right now (the browser then keeps it). */
type Handler = (e: KeyboardEvent) => boolean | void;
const handlers = new Map<string, Handler>();

export function bind(id: string, fn: Handler): () => void {
  if (!SHORTCUTS.some((s) => s.id === id)) throw new Error(`bind(${id}): not in SHORTCUTS; add it to the table first`);
  handlers.set(id, fn);
  return () => { if (handlers.get(id) === fn) handlers.delete(id); };
}

/** The event as a table key: modifiers first, then the key (letters lower-case under a modifier). */
export function combo(e: KeyboardEvent): string {
  const mods = (e.ctrlKey ? 'Ctrl+' : '') + (e.metaKey ? 'Meta+' : '') + (e.altKey ? 'Alt+' : '');
  const k = mods && e.key.length === 1 ? e.key.toLowerCase() : e.key;
  return mods + k;
}

function typingIn(t: EventTarget | null): HTMLElement | null {
  const el = t as HTMLElement | null;
  if (!el || !el.tagName) return null;
  return el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || el.isContentEditable ? el : null;
}

/** Runs the first bound entry for this key that applies; true when one handled it. */
export function dispatch(e: KeyboardEvent): boolean {
  const k = combo(e);
  const field = typingIn(e.target);
  for (const s of SHORTCUTS) {
    if (!s.keys.includes(k)) continue;
    if (field) {
      if (!s.field || (s.field !== '*' && !field.matches(s.field))) continue;
    } else if (s.field && s.field !== '*') continue;
    const h = handlers.get(s.id);
    if (!h) continue;
    if (h(e) === false) continue;
    e.preventDefault();
    return true;
  }
  return false;
}

/** The dialogs the table opens, shared by App, the help and the palette. */
export const overlays = $state({ help: false, palette: false });
