// Hash routing (#/runs/abc?x=1): the hub serves one index.html and knows nothing of UI routes.

function parse() {
  const h = location.hash.replace(/^#/, '') || '/live';
  const [path, qs = ''] = h.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { path, parts, query: new URLSearchParams(qs) };
}

export const route = $state(parse());

window.addEventListener('hashchange', () => {
  const r = parse();
  route.path = r.path;
  route.parts = r.parts;
  route.query = r.query;
});

export function go(path: string, query?: Record<string, string | string[] | undefined | null>) {
  let h = '#' + path;
  if (query) {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v == null || v === '' || (Array.isArray(v) && !v.length)) continue;
      p.set(k, Array.isArray(v) ? v.join(',') : v);
    }
    const s = p.toString();
    if (s) h += '?' + s;
  }
  if (location.hash !== h) location.hash = h;
}

/** Replace the query part without adding history entries (filters typing). */
export function setQuery(query: Record<string, string | string[] | undefined | null>) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v == null || v === '' || (Array.isArray(v) && !v.length)) continue;
    p.set(k, Array.isArray(v) ? v.join(',') : v);
  }
  const s = p.toString();
  const h = '#' + route.path + (s ? '?' + s : '');
  if (location.hash !== h) history.replaceState(null, '', h);
  route.query = p;
}

export const href = (path: string) => '#' + path;
