// Dashboard benchmark: 1,000,000 events stored, 1,000 events/s arriving.
// Measures, in headless Chromium against the real hub:
//   - Timeline first render (navigation start → first rows in the DOM; and API fetch → rows)
//   - frame times on Timeline and Live while 1,000 events/s arrive over SSE
//   - frame times while scrolling a 100,000-row timeline
// Usage: node tests/bench/dashboard-bench.mjs [--events 1000000] [--rate 1000] [--seconds 10]
// The figures go to docs/BENCHMARKS.md ("Dashboard") by hand.
import { startHub } from '../hub.mjs';
import { launch } from '../browser.mjs';

const arg = (k, d) => { const i = process.argv.indexOf('--' + k); return i > 0 ? Number(process.argv[i + 1]) : d; };
const N = arg('events', 1_000_000);
const RATE = arg('rate', 1000);
const SECONDS = arg('seconds', 10);
const BATCH = 5000;

const SOURCES = ['claude', 'claude', 'claude', 'python', 'python', 'workflow', 'opencode', 'process'];
const TYPES = { claude: ['tool', 'tool', 'tool', 'message', 'permission', 'session'], python: ['call', 'call', 'call', 'exception'], workflow: ['step', 'log', 'workflow'], opencode: ['tool', 'message', 'todo'], process: ['log', 'metric', 'process'] };
const STAT = ['success', 'success', 'success', 'running', 'failed', null];

let k = 0;
function event(i, ts) {
  const src = SOURCES[i % SOURCES.length];
  const types = TYPES[src];
  const et = types[(i >> 3) % types.length];
  const run = `${src}-run-${(i >> 10) % 1000}`;
  const err = i % 97 === 0;
  return {
    event_id: `bench-${i}`, ts, source: src, source_event: et === 'call' ? 'call' : 'PostToolUse',
    run_id: run, session_id: `${run}-s${(i >> 6) % 4}`, parent_session_id: (i >> 6) % 4 ? `${run}-s0` : undefined,
    agent: ['main', 'Explore', 'test-runner', 'build'][(i >> 6) % 4], entity_type: et, entity_id: et === 'call' ? `app.mod${i % 13}.fn${i % 7}` : `id-${i}`,
    status: err ? 'failed' : STAT[i % STAT.length] ?? undefined, severity: err ? 'error' : i % 31 === 0 ? 'warn' : 'info',
    title: et === 'call' ? `fn${i % 7}()` : `${['Read', 'Edit', 'Bash', 'Grep', 'Write'][i % 5]} ${i}`,
    summary: `src/file_${i % 500}.ts line ${i % 900}`, duration_ms: (i % 1000) / 3,
    metrics: et === 'message' ? { input_tokens: 1000 + (i % 5000), output_tokens: 200, cost_usd: 0.01 } : undefined,
    payload: { tool_input: { file_path: `src/file_${i % 500}.ts`, pattern: 'x'.repeat(i % 40) }, n: i },
  };
}

async function fill(hub) {
  const t0 = Date.now();
  const span = 23 * 3600 * 1000; // spread over the last 23 h
  const start = Date.now() - span;
  let posted = 0;
  const post = async (from) => {
    const lines = [];
    for (let i = from; i < Math.min(N, from + BATCH); i++) lines.push(JSON.stringify(event(i, new Date(start + Math.floor((i / N) * span)).toISOString())));
    for (;;) {
      const res = await fetch(hub.url + '/api/v1/events', { method: 'POST', headers: { 'content-type': 'application/x-ndjson' }, body: lines.join('\n') });
      if (res.status === 202) { await res.arrayBuffer(); break; }
      if (res.status === 503 || res.status === 429) { await new Promise((r) => setTimeout(r, 200)); continue; }
      throw new Error(`ingest ${res.status}: ${await res.text()}`);
    }
    posted += lines.length;
    if (posted % 100000 === 0) process.stderr.write(`  ${posted} events stored (${Math.round(posted / ((Date.now() - t0) / 1000))}/s)\n`);
  };
  const queue = [];
  for (let i = 0; i < N; i += BATCH) queue.push(i);
  await Promise.all([0, 1].map(async () => { while (queue.length) await post(queue.shift()); }));
  return (Date.now() - t0) / 1000;
}

/** Posts RATE events/s (batches every 50 ms) until stopped. */
function liveLoad(hub) {
  let i = N + 10;
  let stop = false;
  const per = Math.max(1, Math.round(RATE / 20));
  const loop = (async () => {
    let next = performance.now();
    while (!stop) {
      const evs = [];
      for (let j = 0; j < per; j++) evs.push(event(i++, new Date().toISOString()));
      await fetch(hub.url + '/api/v1/events', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(evs) }).then((r) => r.arrayBuffer());
      next += 50;
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
  })();
  return { async stop() { stop = true; await loop; return i - N - 10; } };
}

/** Frame deltas measured inside the page with requestAnimationFrame. */
async function frames(page, seconds, during = async () => {}) {
  await page.evaluate(() => {
    window.__frames = []; let last = performance.now();
    window.__longtasks = 0;
    try { new PerformanceObserver((l) => (window.__longtasks += l.getEntries().length)).observe({ entryTypes: ['longtask'] }); } catch {}
    const f = (t) => { window.__frames.push(t - last); last = t; if (!window.__stopFrames) requestAnimationFrame(f); };
    window.__stopFrames = false; requestAnimationFrame(f);
  });
  await during();
  await page.waitForTimeout(seconds * 1000);
  const d = await page.evaluate(() => { window.__stopFrames = true; return { f: window.__frames.slice(2), long: window.__longtasks }; });
  const s = d.f.slice().sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { frames: s.length, fps: Math.round(s.length / seconds), p50: q(0.5), p95: q(0.95), p99: q(0.99), max: s[s.length - 1], over50: s.filter((x) => x > 50).length, longtasks: d.long };
}
const fmt = (r) => `${r.frames} frames (${r.fps} fps): p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms, ${r.over50} frames > 50 ms, ${r.longtasks} long tasks`;

const hub = await startHub({ plugins: false });
try {
  console.log(`filling ${N} events…`);
  const fillS = await fill(hub);
  const health = await hub.get('/api/v1/health');
  console.log(`stored ${health.storage.events} events in ${fillS.toFixed(1)} s (${Math.round(N / fillS)}/s), db ${(health.storage.size_bytes / 1e6).toFixed(0)} MB`);

  const browser = await launch();
  const page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
  // Warm the HTTP cache for the bundle like a returning user; first render is measured on the next loads.
  await page.goto(hub.url + '/#/settings'); await page.waitForTimeout(500);

  const renders = [];
  for (let r = 0; r < 5; r++) {
    await page.goto('about:blank');
    await page.goto(hub.url + '/#/timeline');
    await page.waitForFunction(() => window.__timelineFirstRender != null, null, { timeout: 30000 });
    renders.push(await page.evaluate(() => ({
      nav: performance.getEntriesByName('timeline-first-render')[0].startTime,
      api: window.__timelineFirstRender,
    })));
  }
  const med = (a) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
  console.log(`timeline first render (1M stored): navigation → rows ${med(renders.map((x) => x.nav)).toFixed(0)} ms median (${renders.map((x) => x.nav.toFixed(0)).join(', ')}); query → rows ${med(renders.map((x) => x.api))} ms median`);

  // Live load on the Timeline page.
  let load = liveLoad(hub);
  await page.waitForTimeout(1500);
  const tl = await frames(page, SECONDS);
  let sent = await load.stop();
  const shown = Number(await page.getAttribute('[data-testid="event-list"]', 'data-count'));
  console.log(`timeline under ${RATE} events/s (${sent} sent, list has ${shown} rows): ${fmt(tl)}`);

  // Live load on the Live page (lanes).
  await page.goto(hub.url + '/#/live');
  await page.waitForSelector('[data-lane]', { timeout: 30000 });
  load = liveLoad(hub);
  await page.waitForTimeout(1500);
  const lv = await frames(page, SECONDS);
  sent = await load.stop();
  const lanes = await page.locator('[data-lane]').count();
  console.log(`live lanes under ${RATE} events/s (${sent} sent, ${lanes} lanes): ${fmt(lv)}`);

  // Scroll a 100,000-row timeline.
  await page.goto(hub.url + '/#/timeline?range=all');
  await page.waitForSelector('[data-testid="event-list"] [data-seq]');
  const tLoad = Date.now();
  while (Number(await page.getAttribute('[data-testid="event-list"]', 'data-count')) < 100000) {
    await page.evaluate(() => { const el = document.querySelector('[data-testid="event-list"]'); el.scrollTop = el.scrollHeight; el.dispatchEvent(new Event('scroll')); });
    await page.waitForTimeout(30);
    if (Date.now() - tLoad > 180000) break;
  }
  const rows = Number(await page.getAttribute('[data-testid="event-list"]', 'data-count'));
  const domRows = await page.locator('[data-testid="event-list"] [data-seq]').count();
  await page.evaluate(() => (document.querySelector('[data-testid="event-list"]').scrollTop = 0));
  const sc = await frames(page, 5, async () => {
    await page.evaluate(() => {
      const el = document.querySelector('[data-testid="event-list"]');
      const step = () => { el.scrollTop += 900; if (!window.__stopFrames) requestAnimationFrame(step); };
      requestAnimationFrame(step);
    });
  });
  console.log(`scrolling ${rows} rows (${domRows} in the DOM, loaded in ${((Date.now() - tLoad) / 1000).toFixed(1)} s): ${fmt(sc)}`);
  const mem = await page.evaluate(() => performance.memory ? Math.round(performance.memory.usedJSHeapSize / 1e6) : null);
  console.log(`page JS heap after all of it: ${mem} MB`);
  await browser.close();
} finally {
  await hub.stop();
}
