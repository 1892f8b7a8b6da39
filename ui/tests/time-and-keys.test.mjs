// The dashboard's time and keyboard (issue 14, points 3 and 9), against a real hub (hub.mjs) in
// headless system Chromium, fed in the sources' own shapes: the canonical Claude / workflow /
// Python fixtures (fixtures.mjs) and Claude Code hook payloads (/api/v1/hooks/claude).
//   1. Live lanes on a real time axis: positions proportional to time, a bar's width to its
//      call's duration, waits drawn, the window selectable, and still smooth at 1,000 events/s.
//   2. Replay's scrubber marks errors and waits; clicking one seeks there.
//   3. The Run page links each session to its conversation.
//   4. Ctrl-K / Cmd-K palette: finds a run by project (fuzzy), a session by id, keyboard only,
//      accessible (role=dialog, aria-activedescendant).
//   5. `?` lists every entry of the one shortcut table, and each listed key does something.
//   6. 390 px and 800 px: no horizontal overflow on any page, key content visible, the sidebar
//      a menu button.
// Screenshots (Live light/dark/800/390, Replay's marks, the palette, the help) go to
// docs/screenshots/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub } from './hub.mjs';
import { docScreenshots, openDashboard, shootLightDarkNarrow } from './browser.mjs';
import { fixtures } from './fixtures.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = docScreenshots();
const T = 'k' + Date.now().toString(36);
const HOOKED = `sess-orbit-${T}`; // a Claude Code session posted as hooks, in a git repository

let hub, browser, ctx, page, repo;
const pageErrors = [];

async function hook(payload) {
  const res = await fetch(hub.url + '/api/v1/hooks/claude', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  assert.ok(res.status < 300, `hook ${payload.hook_event_name} → ${res.status}`);
}
async function open(route, ready) {
  // A fresh document each time: a hash change alone would keep the last test's dialogs and state.
  await page.goto('about:blank');
  await page.goto(`${hub.url}/#/${route}`);
  if (ready) await page.waitForSelector(ready, { timeout: 10000 });
}
const attr = (sel, a) => page.getAttribute(sel, a);

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  hub = await startHub({ plugins: false });
  // The fixture set, recent enough for a 5-minute window: it starts 3 minutes ago.
  const fx = fixtures(T, Date.now() - 3 * 60 * 1000);
  assert.equal((await hub.post(fx)).accepted, fx.length);
  repo = fs.mkdtempSync(path.join(os.tmpdir(), 'sightline-keys-'));
  const cwd = path.join(repo, 'orbit-deck');
  fs.mkdirSync(path.join(cwd, '.git'), { recursive: true });
  const base = { session_id: HOOKED, cwd, transcript_path: '/dev/null' };
  await hook({ ...base, hook_event_name: 'SessionStart', source: 'startup', model: 'claude-sonnet-4-5' });
  await hook({ ...base, hook_event_name: 'UserPromptSubmit', prompt: 'Tighten the docking tolerances' });
  await hook({ ...base, hook_event_name: 'PreToolUse', tool_name: 'Read', tool_use_id: `tu-1-${T}`, tool_input: { file_path: 'dock.rs' } });
  await hook({ ...base, hook_event_name: 'PostToolUse', tool_name: 'Read', tool_use_id: `tu-1-${T}`, tool_input: { file_path: 'dock.rs' }, tool_response: { ok: true } });
  ({ browser, ctx, page } = await openDashboard({ errors: pageErrors }));
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  if (repo) fs.rmSync(repo, { recursive: true, force: true });
});

/** Every bar, chip and tick of a lane with where it is drawn and where the axis says it should be. */
function geometry(laneKey) {
  return page.evaluate((key) => {
    const panel = document.querySelector('[data-testid="lanes"]');
    const now = Number(panel.dataset.now), win = Number(panel.dataset.win) * 1000;
    const lane = document.querySelector(`[data-lane="${key}"]`);
    const track = lane.querySelector('[data-testid="track"]').getBoundingClientRect();
    const x = (t) => track.left + ((t - (now - win)) / win) * track.width;
    const spans = [...lane.querySelectorAll('[data-span]')].map((el) => {
      const r = el.getBoundingClientRect();
      const start = Number(el.dataset.start), end = el.dataset.end ? Number(el.dataset.end) : null;
      return { kind: el.dataset.span, status: el.dataset.status, start, end, left: r.left, right: r.right, width: r.width, wantLeft: x(start), wantRight: end == null ? x(now) : x(end) };
    });
    const chips = [...lane.querySelectorAll('[data-chip]')].map((el) => { const r = el.getBoundingClientRect(); return { t: Number(el.dataset.t), mid: r.left + r.width / 2, want: x(Number(el.dataset.t)) }; });
    const ruler = document.querySelector('[data-testid="time-axis"] .ruler').getBoundingClientRect();
    const xr = (t) => ruler.left + ((t - (now - win)) / win) * ruler.width;
    const ticks = [...document.querySelectorAll('[data-tick]')].map((el) => { const r = el.getBoundingClientRect(); return { t: Number(el.dataset.tick), mid: r.left + r.width / 2, want: xr(Number(el.dataset.tick)) }; });
    return { now, win, track: { left: track.left, width: track.width }, ruler: { left: ruler.left, width: ruler.width }, spans, chips, ticks };
  }, laneKey);
}

describe('time and keys', () => {
  test('1: Live lanes sit on a shared time axis; bars span their calls, waits show, the window is selectable', async () => {
    await open('live', `[data-lane="sess-main-${T}"] [data-span]`);
    await page.selectOption('[data-testid="time-window"]', '300');
    await page.waitForSelector('[data-testid="lanes"][data-win="300"]');
    const g = await geometry(`sess-tests-${T}`);
    assert.equal(g.win, 300_000);
    // The failing Bash call of the test-runner subagent: 8.4 s from PreToolUse to its failure.
    const bash = g.spans.find((s) => s.kind === 'call' && s.status === 'failed');
    assert.ok(bash, JSON.stringify(g.spans));
    assert.equal(bash.end - bash.start, 8400);
    assert.ok(Math.abs(bash.left - bash.wantLeft) < 1.5, `bar starts at ${bash.left}, the axis says ${bash.wantLeft}`);
    assert.ok(Math.abs(bash.width - (8400 / 300_000) * g.track.width) < 1.5, `bar is ${bash.width}px for 8.4 s of ${g.track.width}px/5 min`);
    // Every ended call's bar: start and end where the axis puts them (a 2 px minimum for short ones).
    const main = await geometry(`sess-main-${T}`);
    const calls = main.spans.filter((s) => s.kind === 'call' && s.end != null);
    assert.ok(calls.length >= 5, `main has ${calls.length} calls`);
    for (const s of calls) {
      assert.ok(Math.abs(s.left - s.wantLeft) < 1.5, `call at ${s.start}: left ${s.left} vs ${s.wantLeft}`);
      assert.ok(Math.abs(s.width - Math.max(2, s.wantRight - s.wantLeft)) < 1.5, `call of ${s.end - s.start} ms: width ${s.width} vs ${s.wantRight - s.wantLeft}`);
    }
    // The Task call (4.3 s, spanning the Explore subagent) is wider than the 35 ms Read, in proportion.
    const widest = calls.reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a));
    assert.equal(widest.end - widest.start, 4300);
    // Chips: every event at its time, later events further right.
    assert.ok(main.chips.length > 10);
    for (const c of main.chips) assert.ok(Math.abs(c.mid - c.want) < 2, `chip at ${c.t}: ${c.mid} vs ${c.want}`);
    const sorted = main.chips.slice().sort((a, b) => a.t - b.t);
    assert.ok(sorted[sorted.length - 1].mid - sorted[0].mid > 20, 'events seconds apart are drawn apart');
    // The permission prompt left the main session waiting: an open wait band up to "now".
    const wait = main.spans.find((s) => s.kind === 'wait');
    assert.ok(wait, 'the wait is drawn');
    assert.equal(wait.end, null);
    assert.ok(Math.abs(wait.right - (main.track.left + main.track.width)) < 3, 'an open wait reaches now');
    // The ruler's ticks use the same axis (one a minute over 5 minutes).
    assert.ok(main.ticks.length >= 4 && main.ticks.length <= 6, `${main.ticks.length} ticks`);
    for (const k of main.ticks) assert.ok(Math.abs(k.mid - k.want) < 1.5, `tick ${k.t}: ${k.mid} vs ${k.want}`);
    // All tracks line up with the ruler, nested lanes included.
    assert.ok(Math.abs(g.track.left - main.ruler.left) < 1 && Math.abs(g.track.width - main.ruler.width) < 1, 'the subagent track is aligned with the axis');
    await page.screenshot({ path: path.join(SHOTS, 'live-timeaxis-light.png') });
    // A wider window: the same call is drawn a third as wide; the choice survives a reload.
    await page.selectOption('[data-testid="time-window"]', '900');
    await page.reload();
    await page.waitForSelector(`[data-testid="lanes"][data-win="900"] [data-lane="sess-tests-${T}"] [data-span]`, { timeout: 10000 });
    const g15 = await geometry(`sess-tests-${T}`);
    const bash15 = g15.spans.find((s) => s.kind === 'call' && s.status === 'failed');
    assert.ok(Math.abs(bash15.width - bash.width / 3) < 1.5, `${bash15.width} vs ${bash.width}/3`);
    await page.selectOption('[data-testid="time-window"]', '300');
  });

  test('1: a call that starts live grows until it ends; Live keeps the frame budget at 1,000 events/s', async (t) => {
    await open('live', `[data-lane="${HOOKED}"]`);
    await hook({ session_id: HOOKED, cwd: path.join(repo, 'orbit-deck'), transcript_path: '/dev/null', hook_event_name: 'PreToolUse', tool_name: 'Bash', tool_use_id: `tu-2-${T}`, tool_input: { command: 'cargo test' } });
    const open_ = `[data-lane="${HOOKED}"] [data-span="call"][data-end=""]`;
    await page.waitForSelector(open_, { timeout: 5000 });
    const w1 = (await page.locator(open_).boundingBox()).width;
    await page.waitForTimeout(2600); // the clock moves every second: the open bar follows it
    const w2 = (await page.locator(open_).boundingBox()).width;
    assert.ok(w2 > w1, `an open call grows with the clock (${w1} → ${w2})`);
    await hook({ session_id: HOOKED, cwd: path.join(repo, 'orbit-deck'), transcript_path: '/dev/null', hook_event_name: 'PostToolUse', tool_name: 'Bash', tool_use_id: `tu-2-${T}`, tool_input: { command: 'cargo test' }, tool_response: { stdout: 'ok' } });
    await page.waitForFunction((k) => !document.querySelector(`[data-lane="${k}"] [data-span="call"][data-end=""]`), HOOKED, { timeout: 5000 });

    // A traced Python process at 1,000 events/s (the agent's call shape: a batch every 50 ms,
    // sent on a clock, not after each answer) for 5 s: frames stay smooth. Each tick sends every
    // event due by now (one a millisecond since the start), not a fixed 50: on a loaded machine
    // the timer slips (a run beside two busy loops sent 618 events/s at 50 a tick), and a late tick makes up for
    // it as the agent's clock does, so the rate is the one meant and the rate check below
    // judges the hub and the page rather than this test's timer.
    let sent = 0, i = 0, failures = 0;
    const inflight = new Set();
    const loadStart = Date.now();
    const timer = setInterval(() => {
      // At most a second of events a post (a timer that slipped longer catches up over ticks).
      const due = Math.min(Date.now() - loadStart, i + 1000);
      if (due <= i) return;
      const batch = [];
      for (; i < due; i++) batch.push({ source: 'python', source_event: 'call', entity_type: 'call', run_id: `py-load-${T}`, pid: 777, thread_id: 1, entity_id: `c${i}`, title: 'handle', status: 'success', duration_ms: 0.5, payload: { function: 'handle', module: 'app', call_id: i } });
      const p = hub.post(batch).then((r) => { sent += r.accepted; }, () => { failures++; }).finally(() => inflight.delete(p));
      inflight.add(p);
    }, 50);
    await page.waitForSelector(`[data-lane="run:py-load-${T}"]`, { timeout: 10000 });
    const i0 = i, t0 = Date.now();
    const frames = await page.evaluate(() => new Promise((resolve) => {
      const out = []; let last = performance.now(); const end = last + 5000;
      const f = (t) => { out.push(t - last); last = t; if (t < end) requestAnimationFrame(f); else resolve(out.slice(2)); };
      requestAnimationFrame(f);
    }));
    const rate = ((i - i0) * 1000) / (Date.now() - t0);
    clearInterval(timer);
    await Promise.all([...inflight]);
    frames.sort((a, b) => a - b);
    const p50 = frames[Math.floor(frames.length * 0.5)];
    t.diagnostic(`Live under ${Math.round(rate)} events/s: ${frames.length} frames in 5 s, p50 ${p50.toFixed(1)} ms, p95 ${frames[Math.floor(frames.length * 0.95)].toFixed(1)} ms, max ${frames[frames.length - 1].toFixed(1)} ms`);
    assert.equal(failures, 0);
    assert.equal(sent, i, 'the hub accepted every event');
    // After the flood the page's seed (the newest 2,000 events) is all the traced process: the
    // quiet agent's lane still shows its calls and its wait, from its own latest events.
    await page.reload();
    await page.waitForSelector(`[data-lane="sess-main-${T}"] [data-span="call"]`, { timeout: 10000 });
    const quiet = await geometry(`sess-main-${T}`);
    assert.ok(quiet.spans.filter((s) => s.kind === 'call').length >= 5 && quiet.spans.some((s) => s.kind === 'wait'), JSON.stringify(quiet.spans));
    for (const s of quiet.spans.filter((x) => x.kind === 'call')) assert.ok(Math.abs(s.left - s.wantLeft) < 1.5);
    // The ticks catch up, so only the last one's lag is missing here; 80 % of the nominal rate is
    // still the load meant.
    assert.ok(rate >= 800, `the load ran at ${Math.round(rate)} events/s while frames were measured`);
    // 60 fps is 16.7 ms; on this shared 2-core machine a p50 within two frames is the floor.
    assert.ok(p50 <= 34, `Live's median frame under load is ${p50.toFixed(1)} ms (${frames.length} frames)`);
    assert.deepEqual(pageErrors, []);
  });

  test('2: the replay scrubber marks errors and waits; clicking a mark seeks to it', async () => {
    await open(`replay?run=claude-${T}`, '[data-testid="replay-marks"] [data-mark]');
    const total = Number(await attr('[data-testid="replay-pos"]', 'data-total'));
    const marks = await page.$$eval('[data-mark]', (els) => els.map((e) => ({ kind: e.dataset.mark, i: Number(e.dataset.i), seq: Number(e.dataset.seq), x: e.getBoundingClientRect().left + e.getBoundingClientRect().width / 2 })));
    // The fixture run has one failed tool call and one permission prompt that blocks.
    assert.deepEqual(marks.map((m) => m.kind).sort(), ['error', 'wait'], JSON.stringify(marks));
    const box = await page.locator('[data-testid="replay-marks"]').boundingBox();
    for (const m of marks) assert.ok(Math.abs(m.x - (box.x + ((m.i + 1) / total) * box.width)) < 1.5, `mark ${m.kind} at ${m.x}`);
    const err = marks.find((m) => m.kind === 'error');
    const wait = marks.find((m) => m.kind === 'wait');
    assert.ok(wait.i > err.i, 'the prompt came after the failure');
    await page.click('[data-mark="error"]');
    await page.waitForSelector(`[data-testid="replay-pos"][data-pos="${err.i + 1}"]`, { timeout: 3000 });
    // The event just applied is the failure.
    assert.equal(Number(await page.getAttribute('[data-testid="replay-lanes"] ~ .panel [data-seq]', 'data-seq')), err.seq);
    assert.equal(await page.getAttribute(`[data-testid="replay-lanes"] [data-lane="sess-tests-${T}"]`, 'data-status'), 'running');
    await page.click('[data-mark="wait"]');
    await page.waitForSelector(`[data-testid="replay-pos"][data-pos="${wait.i + 1}"]`, { timeout: 3000 });
    assert.equal(await page.getAttribute(`[data-testid="replay-lanes"] [data-lane="sess-main-${T}"]`, 'data-status'), 'blocked');
    // The scrubber's thumb is where the mark is: its value is the mark's position.
    assert.equal(await page.inputValue('[data-testid="replay-scrub"]'), String(wait.i + 1));
    await page.screenshot({ path: path.join(SHOTS, 'replay-marks.png') });
  });

  test('3: the Run page links every session to its conversation', async () => {
    await open(`run/claude-${T}`, `[data-session="sess-tests-${T}"]`);
    const links = await page.$$eval('[data-testid="session-tree"] [data-testid="conv-link"]', (els) => els.map((e) => e.getAttribute('href')));
    assert.deepEqual(links.sort(), [`sess-explore-${T}`, `sess-main-${T}`, `sess-tests-${T}`].map((s) => `#/session/${s}`).sort());
    await page.click(`[data-session="sess-tests-${T}"] > [data-testid="conv-link"]`);
    await page.waitForURL(new RegExp(`#/session/sess-tests-${T}$`));
    await page.waitForSelector('[data-testid="conversation"] [data-kind="tool"]', { timeout: 10000 });
    assert.match(await page.textContent('[data-testid="conversation"]'), /npm test -- auth/);
  });

  test('3: the Gantt labels each session with a link to its conversation', async () => {
    await open(`run/claude-${T}`, `[data-testid="gantt"] [data-session="sess-tests-${T}"]`);
    const links = await page.$$eval('[data-testid="gantt"] [data-testid="gantt-conv"]', (els) => els.map((e) => e.getAttribute('href')));
    assert.deepEqual(links.sort(), [`sess-explore-${T}`, `sess-main-${T}`, `sess-tests-${T}`].map((s) => `#/session/${s}`).sort());
    await page.click(`[data-testid="gantt"] [data-session="sess-tests-${T}"] [data-testid="gantt-conv"]`);
    await page.waitForURL(new RegExp(`#/session/sess-tests-${T}$`));
    await page.waitForSelector('[data-testid="conversation"] [data-kind="tool"]', { timeout: 10000 });
  });

  test('4: the ? help and the palette keep Tab inside while open and give focus back on close', async () => {
    await open('timeline', '[data-testid="event-list"]');
    const opener = 'nav a[data-nav="runs"]';
    const active = () => page.evaluate(() => {
      const a = document.activeElement;
      return { inDialog: !!a?.closest('[role="dialog"]'), nav: a?.getAttribute('data-nav') ?? null, tag: a?.tagName ?? null };
    });
    for (const [key, sel] of [['?', '[data-testid="shortcuts"]'], ['Control+k', '[data-testid="palette"]']]) {
      await page.focus(opener);
      assert.equal((await active()).nav, 'runs');
      await page.keyboard.press(key);
      await page.waitForSelector(sel, { timeout: 3000 });
      for (let i = 0; i < 6; i++) {
        await page.keyboard.press(i % 2 ? 'Shift+Tab' : 'Tab');
        await page.keyboard.press('Tab');
        assert.ok((await active()).inDialog, `${key}: Tab ${i} left the dialog: ${JSON.stringify(await active())}`);
      }
      await page.keyboard.press('Escape');
      await page.waitForSelector(sel, { state: 'detached', timeout: 3000 });
      assert.equal((await active()).nav, 'runs', `${key}: focus goes back to what opened it`);
    }
  });

  test('4: the Agent filter offers agents beyond the newest 200 runs', async () => {
    // An agent whose only run is older than 220 newer ones.
    const rare = `rare-agent-${T}`;
    const now = Date.now();
    const evs = [{ source: 'custom', source_event: 'step', entity_type: 'task', run_id: `rare-${T}`, agent: rare, title: 'old step', ts: new Date(now - 3600_000).toISOString() }];
    for (let i = 0; i < 220; i++) evs.push({ source: 'custom', source_event: 'step', entity_type: 'task', run_id: `filler-${T}-${i}`, agent: 'filler', title: 'step', ts: new Date(now - 1000 * i).toISOString() });
    assert.equal((await hub.post(evs)).accepted, evs.length);
    const newest = await hub.get('/api/v1/runs?limit=200');
    assert.ok(!newest.runs.some((r) => r.agent === rare), 'the newest 200 runs must not hold it, or this proves nothing');
    await open('timeline', '[data-testid="event-list"]');
    await page.click('[data-filter="agents"] > button');
    await page.waitForSelector(`[data-filter="agents"] [data-option="${rare}"]`, { state: 'attached', timeout: 5000 });
  });

  test('4: Ctrl-K finds a run by its project (fuzzy) and goes there; Cmd-K finds a session by id', async () => {
    await open('timeline', '[data-testid="event-list"]');
    await page.keyboard.press('Control+k');
    const dlg = page.locator('[role="dialog"][data-testid="palette"]');
    await dlg.waitFor({ timeout: 3000 });
    assert.equal(await dlg.getAttribute('aria-modal'), 'true');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'palette-input');
    // Letters of the project's name, in order, with gaps.
    await page.keyboard.type('orbdk');
    await page.waitForSelector(`[role="option"][data-key="run:${HOOKED}"]`, { timeout: 5000 });
    const first = await page.getAttribute('[role="option"]:first-child', 'data-key');
    assert.equal(first, `run:${HOOKED}`, 'the run in orbit-deck ranks first');
    const input = page.locator('[data-testid="palette-input"]');
    assert.equal(await input.getAttribute('aria-activedescendant'), 'pal-0');
    assert.equal(await page.getAttribute('#pal-0', 'aria-selected'), 'true');
    const n = Number(await page.getAttribute('#pal-list', 'data-count'));
    if (n > 1) {
      await page.keyboard.press('ArrowDown');
      assert.equal(await input.getAttribute('aria-activedescendant'), 'pal-1');
      await page.keyboard.press('ArrowUp');
    }
    assert.equal(await input.getAttribute('aria-activedescendant'), 'pal-0');
    await page.screenshot({ path: path.join(SHOTS, 'palette.png') });
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`#/run/${HOOKED}$`));
    assert.equal(await dlg.count(), 0, 'the palette closes');
    await page.waitForSelector('[data-testid="session-tree"]', { timeout: 10000 });

    // Cmd-K (Meta) too; a session by part of its id; Enter opens its conversation.
    await page.keyboard.press('Meta+k');
    await dlg.waitFor({ timeout: 3000 });
    await page.keyboard.type(`tests-${T}`);
    await page.waitForSelector(`#pal-0[data-key="session:sess-tests-${T}"]`, { timeout: 5000 });
    await page.keyboard.press('Enter');
    await page.waitForURL(new RegExp(`#/session/sess-tests-${T}$`));
    // The URL changes before the app's hashchange handler runs (and a route change closes every
    // overlay), so wait for the page itself before the next Ctrl-K, and for the box before typing.
    await page.waitForSelector('[data-testid="conversation"]', { timeout: 10000 });
    const openPalette = async () => {
      await page.keyboard.press('Control+k');
      await dlg.waitFor({ timeout: 3000 });
      await page.waitForFunction(() => document.activeElement?.dataset.testid === 'palette-input', null, { timeout: 3000 });
    };
    // A page by name; Escape closes without going anywhere.
    await openPalette();
    await page.keyboard.type('incid');
    await page.waitForSelector('#pal-0[data-key="page:incidents"]', { timeout: 3000 });
    await page.keyboard.press('Escape');
    assert.equal(await dlg.count(), 0);
    assert.match(page.url(), new RegExp(`#/session/sess-tests-${T}$`));
    // Nothing matches: said so.
    await openPalette();
    await page.keyboard.type('zzqqxx-no-such-thing');
    await page.waitForSelector('#pal-list[data-count="0"]', { timeout: 3000 });
    await page.keyboard.press('Escape');
  });

  test('5: ? lists every entry of the shortcut table, and every listed key does something', async () => {
    // The table, read from its source: the help must show exactly these entries.
    const src = fs.readFileSync(path.join(here, '..', 'src', 'lib', 'shortcuts.svelte.ts'), 'utf8');
    const table = [...src.matchAll(/\{ id: '([a-z-]+)', keys: \[([^\]]*)\]/g)].map((m) => ({ id: m[1], keys: [...m[2].matchAll(/'([^']*)'/g)].map((k) => k[1]) }));
    assert.ok(table.length >= 10, `read ${table.length} entries`);
    await open('live', '[data-testid="lanes"]');
    await page.keyboard.press('?');
    await page.waitForSelector('[data-testid="shortcuts"][role="dialog"]', { timeout: 3000 });
    const listed = await page.$$eval('[data-shortcut]', (els) => els.map((e) => ({ id: e.dataset.shortcut, keys: [...e.querySelectorAll('[data-key]')].map((k) => k.dataset.key) })));
    assert.deepEqual(listed, table, 'the help lists the table, in order, with every key');
    await page.screenshot({ path: path.join(SHOTS, 'shortcuts-help.png') });
    await page.keyboard.press('?');
    await page.waitForSelector('[data-testid="shortcuts"]', { state: 'detached', timeout: 3000 });

    const press = (k) => page.keyboard.press({ ' ': 'Space', 'Ctrl+k': 'Control+k', 'Meta+k': 'Meta+k' }[k] ?? k);
    const selectedSeq = () => page.getAttribute('[data-testid="event-list"] .er.sel', 'data-seq').catch(() => null);
    const pos = async () => Number(await attr('[data-testid="replay-pos"]', 'data-pos'));
    // What each entry does, checked after pressing its key (every listed key of the entry).
    const effects = {
      help: async (k) => { await press(k); await page.waitForSelector('[data-testid="shortcuts"]', { timeout: 2000 }); await page.keyboard.press('Escape'); },
      palette: async (k) => { await press(k); await page.waitForSelector('[data-testid="palette"]', { timeout: 2000 }); await page.keyboard.press('Escape'); },
      search: async (k) => {
        await open('timeline', '[data-testid="event-list"] [data-seq]');
        await press(k);
        assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'timeline-q');
      },
      escape: async (k) => {
        await open('timeline', '[data-testid="event-list"] [data-seq]');
        await page.click('[data-testid="event-list"] [data-seq]');
        await page.waitForSelector('[data-testid="drawer"]');
        await press(k);
        await page.waitForSelector('[data-testid="drawer"]', { state: 'detached', timeout: 2000 });
      },
      theme: async (k) => {
        const before = await page.evaluate(() => document.documentElement.dataset.theme ?? 'auto');
        await press(k);
        const after_ = await page.evaluate(() => document.documentElement.dataset.theme ?? 'auto');
        assert.notEqual(after_, before);
        await press(k);
        // The choice is remembered; forget it, or the dark screenshots below would be light.
        await page.evaluate(() => { localStorage.removeItem('sightline.theme'); delete document.documentElement.dataset.theme; });
      },
      down: async (k) => {
        await open('timeline', '[data-testid="event-list"] [data-seq]');
        await page.evaluate(() => document.activeElement?.blur());
        await press(k); await press(k);
        const a = await selectedSeq();
        assert.ok(a, 'j selects a row');
        await press(k);
        assert.notEqual(await selectedSeq(), a);
      },
      up: async (k) => {
        const a = await selectedSeq();
        await press(k);
        assert.ok(await selectedSeq() && (await selectedSeq()) !== a, 'k moves back');
      },
      open: async (k) => {
        await press(k);
        await page.waitForSelector('[data-testid="drawer"]', { timeout: 2000 });
        await page.keyboard.press('Escape');
      },
      'palette-down': async (k) => {
        await page.keyboard.press('Control+k');
        await page.waitForSelector('#pal-1');
        await press(k);
        assert.equal(await attr('[data-testid="palette-input"]', 'aria-activedescendant'), 'pal-1');
      },
      'palette-up': async (k) => {
        await press(k);
        assert.equal(await attr('[data-testid="palette-input"]', 'aria-activedescendant'), 'pal-0');
      },
      'palette-go': async (k) => {
        await page.keyboard.type('plugins');
        await page.waitForSelector('#pal-0[data-key="page:plugins"]');
        await press(k);
        await page.waitForURL(/#\/plugins$/);
      },
      'conv-hit': async (k) => {
        await open(`session/sess-tests-${T}?q=expiry`, '[data-testid="conversation"] mark');
        await page.evaluate(() => { document.querySelector('[data-testid="conversation"]').closest('.page').scrollTop = 0; });
        // Enough lines above the match that it starts out of view at this height.
        await page.setViewportSize({ width: 1440, height: 260 });
        const y0 = await page.evaluate(() => document.querySelector('[data-testid="conversation"] mark').getBoundingClientRect().top);
        await page.focus('[data-testid="conv-search"]');
        await press(k);
        await page.waitForFunction((y) => document.querySelector('[data-testid="conversation"] mark').getBoundingClientRect().top !== y, y0, { timeout: 2000 })
          .catch(() => assert.fail('Enter in the search scrolled nothing'));
        await page.setViewportSize({ width: 1440, height: 900 });
      },
      'replay-play': async (k) => {
        await open(`replay?run=claude-${T}&speed=1`, '[data-testid="replay-play"]:not([disabled])');
        await page.waitForSelector('[data-testid="replay-pos"][data-pos="0"]');
        await page.evaluate(() => document.activeElement?.blur());
        await press(k);
        await page.waitForFunction(() => document.querySelector('[data-testid="replay-play"]').textContent.includes('Pause'), null, { timeout: 2000 });
        await press(k);
        await page.waitForFunction(() => document.querySelector('[data-testid="replay-play"]').textContent.includes('Play'), null, { timeout: 2000 });
      },
      'replay-forward': async (k) => {
        const a = await pos();
        await press(k);
        assert.equal(await pos(), a + 1);
      },
      'replay-back': async (k) => {
        await page.fill('[data-testid="replay-scrub"]', '5');
        await page.evaluate(() => document.activeElement?.blur());
        const a = await pos();
        assert.equal(a, 5);
        await press(k);
        assert.equal(await pos(), a - 1);
      },
    };
    assert.deepEqual(Object.keys(effects).sort(), table.map((s) => s.id).sort(), 'every entry has its effect checked here');
    for (const s of table) for (const k of s.keys) {
      // Some effects need the previous one's state (down then up then open, the palette's keys).
      await effects[s.id](k).catch((e) => { throw new Error(`${s.id} (${JSON.stringify(k)}): ${e.message}`); });
    }
    assert.deepEqual(pageErrors, []);
  });

  test('6: every page fits 390 px and 800 px: no horizontal overflow, content visible, a menu button', async () => {
    const routes = [
      ['live', '[data-testid="lanes"]'], ['runs', '[data-testid="runs-table"]'], [`run/claude-${T}`, '[data-testid="session-tree"]'],
      [`session/sess-main-${T}`, '[data-testid="conversation"]'], ['timeline', '[data-testid="event-list"] [data-seq]'],
      ['incidents', '[data-testid="incident-groups"]'], [`workflows?run=wf-etl-${T}`, '[data-testid="workflow-list"]'],
      [`processes?run=py-${T}`, '[data-testid="process-list"]'], [`replay?run=claude-${T}`, '[data-testid="replay-scrub"]'],
      [`plugins?run=claude-${T}`, 'h1'], ['settings', 'h1'],
    ];
    const problems = [];
    for (const width of [390, 800]) {
      await page.setViewportSize({ width, height: 844 });
      for (const [r, key] of routes) {
        await open(r, key);
        await page.waitForTimeout(300); // let late panels (charts, the Gantt) lay out
        const m = await page.evaluate((sel) => {
          const se = document.scrollingElement;
          const pageBox = document.querySelector('.page');
          const el = document.querySelector(sel);
          const h1 = document.querySelector('.page h1');
          const rect = (e) => { const r = e.getBoundingClientRect(); return { left: r.left, right: r.right, width: r.width, height: r.height }; };
          // Anything that reaches past the right edge without a scroll box of its own to hold it.
          const clipped = [];
          for (const e of pageBox.querySelectorAll('*')) {
            const r = e.getBoundingClientRect();
            if (r.width === 0 || r.right <= innerWidth + 1) continue;
            let p = e.parentElement, held = false;
            while (p && p !== pageBox) { const o = getComputedStyle(p).overflowX; if ((o === 'auto' || o === 'scroll' || o === 'hidden') && p.getBoundingClientRect().right <= innerWidth + 1) { held = true; break; } p = p.parentElement; }
            if (!held) clipped.push(`${e.tagName.toLowerCase()}.${[...e.classList].join('.')}[${e.dataset.testid ?? ''}] right=${Math.round(r.right)}`);
          }
          return { doc: se.scrollWidth, inner: innerWidth, page: pageBox.scrollWidth - pageBox.clientWidth, key: rect(el), h1: h1 ? rect(h1) : null, clipped: clipped.slice(0, 5),
            menu: document.querySelector('[data-testid="menu-button"]').checkVisibility(), side: getComputedStyle(document.querySelector('nav.side')).visibility };
        }, key);
        const where = `${r} at ${width}px`;
        if (m.doc > m.inner) problems.push(`${where}: document ${m.doc} > ${m.inner}`);
        if (m.page > 1) problems.push(`${where}: the page scrolls sideways by ${m.page}px`);
        if (m.clipped.length) problems.push(`${where}: past the edge: ${m.clipped.join(', ')}`);
        if (!(m.key.width > 0 && m.key.height > 0 && m.key.left >= -1 && m.key.left < width)) problems.push(`${where}: ${key} not visible ${JSON.stringify(m.key)}`);
        if (m.h1 && !(m.h1.left >= 0 && m.h1.left < width && m.h1.width > 0)) problems.push(`${where}: the heading is off screen`);
        if (!m.menu || m.side !== 'hidden') problems.push(`${where}: sidebar ${m.side}, menu button ${m.menu}`);
      }
      // The menu opens the pages and closes on navigation.
      await page.click('[data-testid="menu-button"]');
      await page.waitForFunction(() => getComputedStyle(document.querySelector('nav.side')).visibility === 'visible', null, { timeout: 2000 });
      await page.click('nav.side [data-nav="runs"]');
      await page.waitForURL(/#\/runs$/);
      await page.waitForFunction(() => getComputedStyle(document.querySelector('nav.side')).visibility === 'hidden', null, { timeout: 2000 });
      if (width === 390) {
        await open('live', `[data-lane="sess-main-${T}"]`);
        await page.screenshot({ path: path.join(SHOTS, 'live-390.png') });
      }
    }
    assert.deepEqual(problems, []);
    // Back to the desktop layout: the sidebar is there and the menu button is not.
    await page.setViewportSize({ width: 1440, height: 900 });
    assert.equal(await page.evaluate(() => document.querySelector('[data-testid="menu-button"]').checkVisibility()), false);
    assert.equal(await page.evaluate(() => getComputedStyle(document.querySelector('nav.side')).visibility), 'visible');
  });

  test('screenshots: Live on its time axis, light, dark and 800 px', async () => {
    await page.setViewportSize({ width: 1440, height: 900 });
    await page.emulateMedia({ colorScheme: 'light' });
    await open('live', `[data-lane="sess-main-${T}"] [data-span]`);
    await page.waitForTimeout(300);
    await shootLightDarkNarrow(page, SHOTS, 'live');
    assert.deepEqual(pageErrors, []);
  });
});
