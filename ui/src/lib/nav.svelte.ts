// Keyboard list navigation: the focused list (the page's main list) registers itself here, and
// the global key handler in App drives it with j/k/enter.
export interface ListNav {
  move(delta: number): void;
  activate(): void;
}
let current: ListNav | null = null;

export function registerNav(n: ListNav): () => void {
  current = n;
  return () => { if (current === n) current = null; };
}
export function navMove(d: number) { current?.move(d); }
export function navActivate() { current?.activate(); }
