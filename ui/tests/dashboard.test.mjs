// Browser tests of the dashboard against a real hub (see hub.mjs), in headless system Chromium.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub } from './hub.mjs';
import { openDashboard } from './browser.mjs';
import { fixtures, liveBurst } from './fixtures.mjs';
import { runTraced } from './agent.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = path.join(here, '..', 'test-results');
const T = 't' + Date.now().toString(36); // fixture tag: unique ids per test run

let hub, browser, ctx, page;
const pageErrors = [];

async function open(route, ready) {
  await page.goto(`${hub.url}/#/${route}`);
  if (ready) await page.waitForSelector(ready, { timeout: 10000 });
}
const count = async () => Number(await page.getAttribute('[data-testid="event-list"]', 'data-count'));
async function waitCount(pred, what) {
  await page.waitForFunction(
    (src) => { const el = document.querySelector('[data-testid="event-list"]'); return el && new Function('n', 'return ' + src)(Number(el.dataset.count)); },
    pred, { timeout: 10000 },
  ).catch(async () => assert.fail(`${what}: timeline count is ${await count()}`));
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  hub = await startHub();
  const r = await hub.post(fixtures(T));
  assert.equal(r.accepted, fixtures(T).length);
  ({ browser, ctx, page } = await openDashboard({ errors: pageErrors }));
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

describe('dashboard', () => {
  test('the hub serves the dashboard it embeds, and it is this build of ui/dist', async () => {
    const res = await fetch(hub.url + '/');
    assert.equal(res.status, 200);
    const served = await res.text();
    const built = fs.readFileSync(path.join(here, '..', 'dist', 'index.html'), 'utf8');
    assert.equal(served, built, 'the binary embeds a different ui/dist: run `cargo build` after `npm run build`');
    const asset = served.match(/assets\/index-[^"]+\.js/)[0];
    const js = await fetch(`${hub.url}/${asset}`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type'), /javascript/);
  });

  test('live lanes update as events are posted, and a subagent nests under its parent', async () => {
    await open('live', `[data-lane="sess-main-${T}"]`);
    // The main session is blocked on the permission prompt and stands out.
    const main = page.locator(`[data-lane="sess-main-${T}"]`);
    assert.equal(await main.getAttribute('data-status'), 'blocked');
    assert.ok(await main.locator('[data-testid="blocked"]').isVisible());
    // The Explore subagent is nested: depth 1, parent = main, rendered right after its parent's subtree starts.
    const explore = page.locator(`[data-lane="sess-explore-${T}"]`);
    assert.equal(await explore.getAttribute('data-parent'), `sess-main-${T}`);
    assert.equal(await explore.getAttribute('data-depth'), '1');

    // Post new live events: a subagent appears under main without a reload.
    const before = await page.locator('[data-lane]').count();
    await hub.post(liveBurst(T, 1));
    const lane = page.locator(`[data-lane="sess-live-${T}-1"]`);
    await lane.waitFor({ timeout: 5000 });
    assert.equal(await lane.getAttribute('data-depth'), '1');
    assert.equal(await lane.getAttribute('data-parent'), `sess-main-${T}`);
    assert.equal(await lane.getAttribute('data-status'), 'running');
    assert.equal(await page.locator('[data-lane]').count(), before + 1);
    // Nesting in DOM order: every child lane comes after its parent lane.
    const order = await page.$$eval('[data-lane]', (els) => els.map((e) => e.getAttribute('data-lane')));
    assert.ok(order.indexOf(`sess-live-${T}-1`) > order.indexOf(`sess-main-${T}`));
    // And chips keep coming: the lane's chip count grows with each event.
    const chips = await lane.locator('[data-chip]').count();
    await hub.post([{ event_id: `live-${T}-1-3`, source: 'claude', source_event: 'PostToolUse', run_id: `claude-${T}`, session_id: `sess-live-${T}-1`, parent_session_id: `sess-main-${T}`, agent: 'general-purpose', entity_type: 'tool', entity_id: 'tl-1', correlation_id: 'tl-1', status: 'success', duration_ms: 812, title: 'WebFetch' }]);
    await page.waitForFunction(([sel, n]) => document.querySelectorAll(sel).length > n, [`[data-lane="sess-live-${T}-1"] [data-chip]`, chips], { timeout: 5000 });
    await page.screenshot({ path: path.join(SHOTS, 'live.png') });
  });

  test('run page shows the session tree with subagents under the main session', async () => {
    await open(`run/claude-${T}`, `[data-session="sess-main-${T}"]`);
    await page.waitForSelector(`[data-session="sess-main-${T}"] [data-session="sess-explore-${T}"]`, { timeout: 5000 });
    await page.waitForSelector(`[data-session="sess-main-${T}"] [data-session="sess-tests-${T}"]`);
    const n = Number(await page.textContent('[data-testid="run-events"]'));
    assert.ok(n >= fixtures(T).filter((e) => e.run_id === `claude-${T}`).length, `run has ${n} events`);
    await page.screenshot({ path: path.join(SHOTS, 'run.png') });
  });

  test('filters narrow the timeline', async () => {
    await open('timeline', '[data-testid="event-list"] [data-seq]');
    const all = await count();
    assert.ok(all >= 200, `timeline shows ${all}`);
    // Severity = error
    await page.click('[data-filter="severities"] button');
    await page.check('[data-filter="severities"] [data-option="error"]');
    await waitCount(`n > 0 && n < ${all}`, 'severity filter');
    const sevs = await page.$$eval('[data-testid="event-list"] [data-seq] .sev', (els) => els.map((e) => e.textContent.trim()));
    assert.ok(sevs.length > 0 && sevs.every((s) => s === 'error'), `severities: ${sevs}`);
    const errors = await count();
    // AND with source = python narrows further.
    await page.click('[data-filter="sources"] button');
    await page.check('[data-filter="sources"] [data-option="python"]');
    await waitCount(`n > 0 && n < ${errors}`, 'source filter');
    const srcs = await page.$$eval('[data-testid="event-list"] [data-seq] > :nth-child(3)', (els) => els.map((e) => e.textContent.trim()));
    assert.ok(srcs.every((s) => s === 'python'), `sources: ${srcs}`);
    assert.match(page.url(), /severities=error/);
    // Clear, then full text.
    await page.goto(`${hub.url}/#/timeline?q=ZeroDivisionError`);
    await page.reload();
    await waitCount('n >= 1', 'text filter');
    const titles = await page.$$eval('[data-testid="event-list"] [data-seq]', (els) => els.map((e) => e.textContent));
    assert.ok(titles.every((t) => /ZeroDivision/.test(t)), titles.join('\n'));
    assert.ok(await count() < all);
    // Time range: a custom window ending half-way through the fixtures' 9 minutes.
    const mid = new Date(Date.now() - 5 * 60 * 1000).toISOString();
    await page.goto(`${hub.url}/#/timeline?range=custom&until=${encodeURIComponent(mid)}`);
    await page.reload();
    await waitCount(`n > 0 && n < ${all}`, 'time range');
    const last = await page.$eval('[data-testid="event-list"] [data-seq]', (el) => Number(el.dataset.seq));
    const ev = await hub.get(`/api/v1/events/${last}`);
    assert.ok(ev.ts <= mid, `newest shown event ${ev.ts} is before ${mid}`);
    assert.ok(await page.inputValue('[data-filter="until"]'));
    await page.goto(`${hub.url}/#/timeline`);
  });

  test('timeline keeps its scroll position while live events arrive', async () => {
    await open('timeline?range=all', '[data-testid="event-list"] [data-seq]');
    await page.reload();
    await page.waitForSelector('[data-testid="event-list"] [data-seq]');
    const vp = page.locator('[data-testid="event-list"]');
    await vp.evaluate((el) => (el.scrollTop = 28 * 40));
    await page.waitForTimeout(200);
    const topSeq = () => page.evaluate(() => {
      const vp = document.querySelector('[data-testid="event-list"]');
      const top = vp.getBoundingClientRect().top;
      const row = [...vp.querySelectorAll('[data-seq]')].find((r) => r.getBoundingClientRect().bottom > top + 2);
      return row?.dataset.seq;
    });
    const before = await topSeq();
    const n0 = await count();
    await hub.post(liveBurst(T, 2).concat(liveBurst(T, 3)));
    await waitCount(`n >= ${n0 + 4}`, 'live prepend');
    await page.waitForTimeout(100);
    assert.equal(await topSeq(), before, 'the row at the top of the viewport did not move');
  });

  test('the drawer shows the payload; keyboard j/k/enter/esc work', async () => {
    await open(`timeline?q=${encodeURIComponent('npm test')}&severities=error`, '[data-testid="event-list"] [data-seq]');
    await page.reload();
    await page.waitForSelector('[data-testid="event-list"] [data-seq]');
    await page.click('[data-testid="event-list"] [data-seq]');
    await page.waitForSelector('[data-testid="payload"]');
    const payload = await page.textContent('[data-testid="payload"]');
    assert.match(payload, /tool_response/);
    assert.match(payload, /exit_code/);
    assert.match(payload, /npm test -- auth/);
    // Correlated: the PreToolUse of the same tool call.
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="correlated"] button').length >= 2, null, { timeout: 5000 });
    await page.waitForTimeout(300); // let the slide-in finish before the screenshot
    await page.screenshot({ path: path.join(SHOTS, 'drawer.png') });
    await page.keyboard.press('Escape');
    await page.waitForSelector('[data-testid="drawer"]', { state: 'detached' });
    // Keyboard: / focuses search, esc leaves it, j selects the first row, enter opens it.
    await page.goto(`${hub.url}/#/timeline`);
    await page.reload();
    await page.waitForSelector('[data-testid="event-list"] [data-seq]');
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement?.dataset.testid), 'timeline-q');
    await page.keyboard.press('Escape');
    await page.keyboard.press('j');
    await page.keyboard.press('j');
    await page.keyboard.press('k');
    const sel = await page.getAttribute('[data-testid="event-list"] .sel', 'data-seq');
    const first = await page.getAttribute('[data-testid="event-list"] [data-seq]', 'data-seq');
    assert.equal(sel, first);
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid="drawer-title"]');
    await page.keyboard.press('Escape');
    // On Live, j selects the first lane and enter opens its run at that session.
    await open('live', '[data-lane]');
    await page.keyboard.press('j');
    const lane = await page.getAttribute('.lane.sel', 'data-lane');
    assert.equal(lane, await page.getAttribute('[data-lane]', 'data-lane'));
    await page.keyboard.press('Enter');
    await page.waitForURL(/#\/run\/.+session=/);
    assert.ok(decodeURIComponent(page.url()).includes(`session=${lane}`), page.url());
  });

  test('replay reaches the same final state as live', async () => {
    await page.goto(`${hub.url}/#/live?run=claude-${T}`);
    await page.reload(); // a fresh page: the live state is rebuilt from the hub, not carried over
    await page.waitForFunction((run) => (document.querySelector('[data-testid="lanes"]')?.dataset.digest ?? '').includes(run), `sess-main-${T}`, { timeout: 10000 });
    const liveDigest = await page.getAttribute('[data-testid="lanes"]', 'data-digest');
    assert.ok(liveDigest && liveDigest.includes(`sess-main-${T}`), liveDigest);
    // Play at 50×: the run lasts ~25 s of event time, gaps capped at 3 s.
    await open(`replay?run=claude-${T}&speed=50`, '[data-testid="replay-play"]:not([disabled])');
    const total = Number(await page.getAttribute('[data-testid="replay-pos"]', 'data-total'));
    assert.ok(total > 20);
    await page.click('[data-testid="replay-play"]');
    await page.waitForFunction((t) => document.querySelector('[data-testid="replay-pos"]')?.dataset.pos === String(t), total, { timeout: 15000 });
    assert.equal(await page.getAttribute('[data-testid="replay-lanes"]', 'data-digest'), liveDigest);
    // Deterministic: scrubbing back then jumping to the end gives the same state again.
    await page.fill('[data-testid="replay-scrub"]', '5');
    assert.notEqual(await page.getAttribute('[data-testid="replay-lanes"]', 'data-digest'), liveDigest);
    await page.click('[data-testid="replay-end"]');
    assert.equal(await page.getAttribute('[data-testid="replay-lanes"]', 'data-digest'), liveDigest);
    await page.fill('[data-testid="replay-scrub"]', String(Math.floor(total * 0.7)));
    await page.screenshot({ path: path.join(SHOTS, 'replay.png') });
  });

  test('a crashing or hanging plugin shows an error and the page keeps working', async () => {
    await open(`plugins?run=claude-${T}`, '[data-invoke="crashy"]');
    await page.waitForFunction(() => !document.querySelector('[data-invoke="crashy"]').disabled, null, { timeout: 10000 });
    await page.click('[data-invoke="crashy"]');
    await page.waitForSelector('[data-testid="plugin-error"]', { timeout: 10000 });
    assert.match(await page.textContent('[data-testid="plugin-error"]'), /fail|crash|exit/i);
    await page.click('[data-invoke="hangs"]');
    await page.waitForSelector('[data-testid="plugin-error"]', { timeout: 10000 });
    assert.match(await page.textContent('[data-testid="plugin-error"]'), /time/i);
    // The page still works: the sample analyzer answers.
    await page.click('[data-invoke="sample-analyzer"]');
    await page.waitForSelector('[data-testid="plugin-result"]', { timeout: 15000 });
    const res = await page.textContent('[data-testid="plugin-result"]');
    assert.match(res, /slowest/i);
    assert.match(res, /npm test -- auth/); // the 8.4 s failing Bash call is the slowest
    await page.screenshot({ path: path.join(SHOTS, 'plugins.png') });
    // And the hub is alive.
    const h = await hub.get('/api/v1/health');
    assert.equal(h.status, 'ok');
  });

  test('workflows show progress, steps and log; processes show calls, slowest and locals', async () => {
    await open(`workflows?run=wf-sync-${T}`, '[data-testid="wf-steps"] [data-step="merge"]');
    assert.match(await page.textContent('[data-testid="wf-steps"] [data-step="merge"]'), /failed/);
    assert.match(await page.textContent('[data-testid="wf-log"]'), /ConnectionResetError/);
    await page.click(`[data-testid="workflow-list"] [data-run="wf-etl-${T}"]`);
    await page.waitForSelector('[data-testid="wf-steps"] [data-step="transform"]');
    const prog = Number(await page.getAttribute('[data-testid="wf-progress"]', 'data-progress'));
    assert.ok(prog > 0 && prog < 100, `progress ${prog}`);
    await page.screenshot({ path: path.join(SHOTS, 'workflows.png') });

    await open(`processes?run=py-${T}`, '[data-testid="functions"] [data-fn="billing.render.pdf"]');
    const slow = page.locator('[data-testid="calls"] [data-slow="1"]');
    assert.ok(await slow.count() >= 1);
    assert.match(await slow.first().textContent(), /ms/);
    await page.waitForSelector('[data-testid="stack"] [data-frame="2"]');
    assert.match(await page.textContent('[data-testid="locals"]'), /subtotal/);
    await page.click('[data-testid="stack"] [data-frame="1"]');
    assert.match(await page.textContent('[data-testid="locals"]'), /Invoice 1139/);
    await page.click('[data-testid="functions"] [data-fn="billing.render.pdf"]');
    await page.screenshot({ path: path.join(SHOTS, 'processes.png') });
  });

  test('processes: live control switches a real Python process on and off, and its call tree nests calls', async () => {
    const runId = `py-live-${T}`;
    const LOOP = [
      'import os, time',
      'def work(i):',
      '    return sum(range(i % 50))',
      'def tick(n):',
      '    for i in range(n):',
      '        work(i)',
      'deadline = time.time() + 90',
      'while not os.path.exists("stop") and time.time() < deadline:',
      '    tick(5)',
      '    time.sleep(0.05)',
    ].join('\n') + '\n';
    const prog = runTraced(hub.url, runId, LOOP, { SIGHTLINE_TRACE: '0' });
    const calls = async () => (await hub.get(`/api/v1/search?runs=${runId}&entity_types=call&limit=1000`)).events.length;
    const until = async (what, pred, ms = 30000) => {
      const end = Date.now() + ms;
      while (!(await pred())) {
        if (Date.now() > end) assert.fail(`${what} within ${ms} ms; agent stderr: ${prog.stderr()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      // Python's start-up and the agent's first delivery can be slow on a loaded machine.
      await until('process_start', async () => (await hub.get(`/api/v1/search?runs=${runId}&source_events=process_start&limit=1`)).events.length === 1);
      await page.goto(`${hub.url}/#/processes?run=${runId}`);
      await page.waitForSelector('[data-testid="control"][data-tracing="off"]', { timeout: 20000 });
      assert.equal(await calls(), 0, 'started with tracing off');

      // On: the process applies it (its own control_applied event) and calls arrive, nested.
      await page.click('[data-testid="toggle-tracing"]');
      await page.waitForSelector('[data-testid="control"][data-state="applied"][data-tracing="on"]', { timeout: 20000 });
      await page.waitForSelector('[data-testid="functions"] [data-fn="__main__.work"]', { timeout: 15000 });
      await page.waitForSelector('[data-testid="call-tree"] [data-node="__main__.tick"][data-depth="0"] + [data-node="__main__.work"][data-depth="1"]', { timeout: 15000 });
      const tick = Number(await page.getAttribute('[data-testid="call-tree"] [data-node="__main__.tick"]', 'data-count'));
      const work = Number(await page.getAttribute('[data-testid="call-tree"] [data-node="__main__.work"]', 'data-count'));
      assert.ok(tick >= 1 && work >= 5 * tick - 5, `tick ×${tick}, work ×${work}`);

      // A bad number is refused in the page; nothing is sent.
      const v0 = Number(await page.getAttribute('[data-testid="control"]', 'data-version'));
      await page.fill('[data-testid="ctl-min"]', 'soon');
      await page.click('[data-testid="ctl-apply"]');
      assert.match(await page.textContent('[data-testid="ctl-error"]'), /Minimum duration must be a number/);
      assert.equal((await hub.get(`/api/v1/processes/${runId}/control?wait_s=0`)).version, v0);

      // Filters: a minimum duration no call reaches stops detailed calls, without a restart.
      await page.fill('[data-testid="ctl-min"]', '1000');
      await page.click('[data-testid="ctl-apply"]');
      await page.waitForSelector(`[data-testid="control"][data-state="applied"][data-version="${v0 + 1}"]`, { timeout: 15000 });
      const settled = await calls();
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(await calls(), settled, 'detailed calls still sent after min_duration_ms=1000');

      // Off again.
      await page.click('[data-testid="toggle-tracing"]');
      await page.waitForSelector('[data-testid="control"][data-state="applied"][data-tracing="off"]', { timeout: 15000 });
      await page.screenshot({ path: path.join(SHOTS, 'processes-control.png') });

      // The process ends: the panel says so and stops offering changes.
      fs.writeFileSync(path.join(prog.child.spawnargs.at(-1), '..', 'stop'), '');
      await page.waitForSelector('[data-testid="control"][data-state="ended"]', { timeout: 20000 });
      assert.ok(await page.isDisabled('[data-testid="toggle-tracing"]'));
      // The page learns of the exit from the process's last event; the interpreter may still
      // be finishing (the agent hands its last batch over at exit): let it end by itself.
      if (prog.child.exitCode == null) {
        await Promise.race([
          new Promise((r) => prog.child.once('exit', r)),
          new Promise((r) => setTimeout(r, 20000)),
        ]);
      }
    } finally {
      await prog.stop();
    }
    assert.equal(prog.child.exitCode, 0, prog.stderr());
  });

  test('an OpenTelemetry trace shows as a waterfall nested by parent span, children sent first', async () => {
    const trace = (T + '0'.repeat(32)).replace(/[^0-9a-f]/g, 'a').slice(0, 32);
    const t0 = BigInt(Date.now() - 5000) * 1_000_000n;
    const ms = (n) => String(t0 + BigInt(n) * 1_000_000n);
    const span = (id, parent, name, from, to, extra = {}) => ({
      traceId: trace, spanId: id.padEnd(16, '0'), parentSpanId: parent ? parent.padEnd(16, '0') : '', name, kind: 2,
      startTimeUnixNano: ms(from), endTimeUnixNano: ms(to), attributes: [{ key: 'app.step', value: { stringValue: name } }], ...extra,
    });
    // As an SDK's batch processor sends them: in the order they ended, children first, and a
    // span whose parent never arrives.
    const spans = [
      span('c3', 'b2', 'render template', 120, 180),
      span('b1', 'a1', 'db.query', 10, 90),
      span('b2', 'a1', 'render', 100, 200, { status: { code: 2, message: 'template missing' } }),
      span('a1', null, 'GET /checkout', 0, 250),
      span('d1', 'ff', 'late callback', 260, 270),
    ];
    const res = await fetch(hub.url + '/v1/traces', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'shop' } }] }, scopeSpans: [{ scope: { name: 'test' }, spans }] }] }),
    });
    assert.equal(res.status, 200, await res.text());
    await open(`run/${trace}`, '[data-testid="waterfall"][data-count="5"]');
    const rows = await page.$$eval('[data-testid="waterfall"] [data-span]', (els) => els.map((e) => `${e.dataset.depth}:${e.dataset.span}`));
    assert.deepEqual(rows, ['0:GET /checkout', '1:db.query', '1:render', '2:render template', '0:late callback']);
    await page.screenshot({ path: path.join(SHOTS, 'run-trace.png') });
  });

  test('screenshots of every page, light and dark, without page errors', async () => {
    // A second, older set of runs so the screenshots look like a day of work, not one run.
    await hub.post(fixtures(T + 'b', Date.now() - 47 * 60 * 1000));
    const pages = ['live', 'runs', `run/claude-${T}`, 'timeline', 'incidents', `workflows?run=wf-etl-${T}`, `processes?run=py-${T}`, `replay?run=claude-${T}`, `plugins?run=py-${T}`, 'settings'];
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      for (const r of pages) {
        await page.goto(`${hub.url}/#/${r}`);
        await page.reload();
        await page.waitForLoadState('networkidle').catch(() => {});
        await page.waitForTimeout(400);
        if (r.startsWith('replay')) await page.click('[data-testid="replay-end"]');
        const name = r.split(/[/?]/)[0];
        await page.screenshot({ path: path.join(SHOTS, `${scheme}-${name}.png`) });
      }
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      if (scheme === 'dark') assert.notEqual(bg, 'rgb(245, 246, 248)', 'dark theme applied');
    }
    await page.emulateMedia({ colorScheme: 'light' });
    // Incidents page lists the failures (grouped by fingerprint by default; by time window too).
    await page.goto(`${hub.url}/#/incidents`);
    await page.waitForSelector('[data-testid="incident-groups"] [data-group]', { timeout: 5000 });
    await page.selectOption('[data-testid="incident-mode"]', 'window');
    await page.waitForSelector('[data-testid="incidents"] [data-incident]', { timeout: 5000 });
    assert.deepEqual(pageErrors, []);
  });

  test('prefers-reduced-motion turns animations off', async () => {
    // The drawer slides in normally; with reduced motion it just appears.
    const drawerAnimation = async () => {
      await open('timeline', '[data-testid="event-list"] [data-seq]');
      await page.click('[data-testid="event-list"] [data-seq]');
      await page.waitForSelector('[data-testid="drawer"]');
      const a = await page.evaluate(() => getComputedStyle(document.querySelector('[data-testid="drawer"]')).animationName);
      await page.keyboard.press('Escape');
      return a;
    };
    await page.emulateMedia({ reducedMotion: 'no-preference' });
    assert.notEqual(await drawerAnimation(), 'none');
    await page.emulateMedia({ reducedMotion: 'reduce' });
    assert.equal(await drawerAnimation(), 'none');
    await page.emulateMedia({ reducedMotion: 'no-preference' });
  });
});
