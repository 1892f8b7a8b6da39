// Browser tests of issue 14, points 8 and 9 and the remnants of 6/7, against the real hub binary
// (hub.mjs) in headless system Chromium. Workflow executions arrive in the producer's own shape
// (POST /api/v1/workflows/{id}/updates): a failed workflow ends `failed` with every session of it,
// the list card and the detail show the same progress (the hub's one figure), a retried step
// shows each attempt with its number, status, duration and error, and nothing is cut silently:
// the workflow list and the Plugins run picker page past their first hundred.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub } from './hub.mjs';
import { docScreenshots, openDashboard } from './browser.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = docScreenshots();
const T = 'w' + Date.now().toString(36);
const SYNC = `crm-sync-${T}`;
const DEPLOY = `deploy-${T}`;
const ETL = `etl-${T}`;
const FILLER = 104; // with the four below: more than one page (100) of workflows

let hub, browser, ctx, page;
const pageErrors = [];

async function updates(id, body) {
  const res = await fetch(`${hub.url}/api/v1/workflows/${encodeURIComponent(id)}/updates`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  const text = await res.text();
  assert.equal(res.status, 202, `POST updates of ${id} → ${res.status}: ${text}`);
}
async function open(route, ready) {
  // A fresh load each time: a hash change alone would keep the page's state.
  await page.goto('about:blank');
  await page.goto(`${hub.url}/#/${route}`);
  if (ready) await page.waitForSelector(ready, { timeout: 10000 });
}
const at = (base, s) => new Date(base + s * 1000).toISOString();

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  // Its own empty config file: the user's default one (tokens, sources) must not apply.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sightline-wf-'));
  fs.writeFileSync(path.join(dir, 'config.toml'), '# written by the test\n');
  hub = await startHub({ plugins: false, dir, args: ['--config', path.join(dir, 'config.toml')] });
  const base = Date.now() - 10 * 60 * 1000;
  // Fillers first, so the three under test are the newest and on the first page.
  for (let i = 0; i < FILLER; i++) {
    await updates(`nightly-${T}-${String(i).padStart(3, '0')}`, [
      { type: 'status', timestamp: at(base, i), data: { status: 'running', message: `nightly ${i}` } },
      { type: 'complete', timestamp: at(base, i + 1), data: { message: `nightly ${i} done` } },
    ]);
  }
  const b = base + 200_000;
  // A workflow that fails at its second step while the third is queued.
  await updates(SYNC, [
    { type: 'status', timestamp: at(b, 0), data: { status: 'running', message: 'crm-sync' } },
    { type: 'status', timestamp: at(b, 1), data: { step: 'fetch', status: 'running' } },
    { type: 'log', timestamp: at(b, 2), data: { step: 'fetch', message: 'fetched 1200 rows' } },
    { type: 'status', timestamp: at(b, 3), data: { step: 'fetch', status: 'completed' } },
    { type: 'status', timestamp: at(b, 4), data: { step: 'merge', status: 'running' } },
    { type: 'status', timestamp: at(b, 5), data: { step: 'push', status: 'pending' } },
  ]);
  await updates(SYNC, [
    { type: 'log', timestamp: at(b, 8), data: { step: 'merge', level: 'error', message: 'ConnectionResetError: warehouse closed the connection' } },
    { type: 'error', timestamp: at(b, 9), data: { step: 'merge', error: 'ConnectionResetError: warehouse closed the connection' } },
    { type: 'complete', timestamp: at(b, 10), data: { status: 'failed', message: 'crm-sync failed at merge' } },
  ]);
  // A deploy whose upload step took three attempts, then succeeded.
  await updates(DEPLOY, [
    { type: 'status', timestamp: at(b, 20), data: { status: 'running', message: 'deploy-docs' } },
    { type: 'status', timestamp: at(b, 21), data: { step: 'build', status: 'running' } },
    { type: 'status', timestamp: at(b, 25), data: { step: 'build', status: 'success' } },
    { type: 'status', timestamp: at(b, 26), data: { step: 'upload', status: 'running', attempt: 1 } },
    { type: 'error', timestamp: at(b, 28), data: { step: 'upload', error: '503 Service Unavailable from the CDN', attempt: 1 } },
    { type: 'status', timestamp: at(b, 30), data: { step: 'upload', status: 'running', attempt: 2 } },
    { type: 'error', timestamp: at(b, 33), data: { step: 'upload', error: 'timeout after 3 s', attempt: 2 } },
    { type: 'status', timestamp: at(b, 35), data: { step: 'upload', status: 'running', attempt: 3 } },
    { type: 'status', timestamp: at(b, 36.5), data: { step: 'upload', status: 'completed', attempt: 3 } },
    { type: 'complete', timestamp: at(b, 37), data: { message: 'deploy-docs done' } },
  ]);
  // A workflow still running: two of four steps done.
  await updates(ETL, [
    { type: 'status', timestamp: at(b, 40), data: { status: 'running', message: 'nightly-etl' } },
    ...['extract', 'validate'].flatMap((s, i) => [
      { type: 'status', timestamp: at(b, 41 + i * 2), data: { step: s, status: 'running' } },
      { type: 'status', timestamp: at(b, 42 + i * 2), data: { step: s, status: 'success' } },
    ]),
    { type: 'status', timestamp: at(b, 46), data: { step: 'transform', status: 'running' } },
    { type: 'progress', timestamp: at(b, 47), data: { step: 'transform', progress: 40 } },
    { type: 'status', timestamp: at(b, 47), data: { step: 'load', status: 'queued' } },
  ]);
  ({ browser, ctx, page } = await openDashboard({ errors: pageErrors }));
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

describe('workflows', () => {
  test('a failed workflow shows failed in the list and the detail, with every session ended', async () => {
    await open(`workflows?run=${SYNC}`, `[data-testid="wf-steps"] [data-step="push"]`);
    const card = page.locator(`[data-testid="workflow-list"] [data-run="${SYNC}"]`);
    assert.match(await card.textContent(), /failed/);
    // The queued step ended with its workflow: nothing of it is left running.
    for (const [step, status] of [['fetch', 'success'], ['merge', 'failed'], ['push', 'failed']]) {
      assert.match(await page.textContent(`[data-testid="wf-steps"] [data-step="${step}"]`), new RegExp(status), step);
    }
    assert.match(await page.textContent('[data-testid="wf-log"]'), /ConnectionResetError/);
    // The hub says the same: the run and each of its sessions ended failed (or success).
    const run = await hub.get(`/api/v1/runs/${SYNC}`);
    assert.equal(run.run.status, 'failed');
    const statuses = Object.fromEntries(run.sessions.map((s) => [s.session_id, s.status]));
    assert.deepEqual(statuses, { [SYNC]: 'failed', [`${SYNC}/fetch`]: 'success', [`${SYNC}/merge`]: 'failed', [`${SYNC}/push`]: 'failed' });
    assert.ok(run.sessions.every((s) => s.ended_at), 'every session has ended');
    // And the Live page shows none of it running: its lanes, if shown, say how they ended.
    await open('live', `[data-lane^="${ETL}"]`); // the running workflow is there
    const lanes = await page.locator(`[data-lane^="${SYNC}"]`).evaluateAll((els) => els.map((e) => [e.dataset.lane, e.dataset.status]));
    for (const [lane, status] of lanes) assert.ok(['failed', 'success'].includes(status), `live lane ${lane} is ${status}`);
    assert.equal(await page.locator(`[data-lane="${ETL}"]`).getAttribute('data-status'), 'running');
  });

  test('the list card and the detail show one progress figure', async () => {
    await open(`workflows?run=${SYNC}`, `[data-testid="wf-steps"] [data-step="push"]`);
    const card = (id) => page.locator(`[data-testid="workflow-list"] [data-run="${id}"]`);
    const detail = async () => Number(await page.getAttribute('[data-testid="wf-progress"]', 'data-progress'));
    assert.equal(await card(SYNC).getAttribute('data-progress'), '33'); // 1 of 3 steps done
    assert.equal(await detail(), 33);
    assert.match(await page.textContent('[data-testid="wf-progress-text"]'), /33% · 1\/3 steps done/);
    assert.match(await card(SYNC).textContent(), /33%/);
    await card(ETL).click();
    await page.waitForSelector('[data-testid="wf-steps"] [data-step="transform"]');
    assert.equal(await detail(), 50); // 2 of 4
    assert.equal(await card(ETL).getAttribute('data-progress'), '50');
    // A step finishes live: both move together, to the hub's figure.
    await updates(ETL, [{ type: 'status', timestamp: new Date().toISOString(), data: { step: 'transform', status: 'success' } }]);
    await page.waitForFunction((id) => document.querySelector(`[data-testid="workflow-list"] [data-run="${id}"]`)?.getAttribute('data-progress') === '75', ETL, { timeout: 10000 });
    await page.waitForFunction(() => document.querySelector('[data-testid="wf-progress"]')?.getAttribute('data-progress') === '75', null, { timeout: 10000 });
    const hubFigure = await hub.get(`/api/v1/workflows/${ETL}`);
    assert.equal(hubFigure.progress.percent, 75);
    // A workflow that starts while the page is open appears at the top, with its figure.
    const HOT = `hotfix-${T}`;
    await updates(HOT, [
      { type: 'status', timestamp: new Date().toISOString(), data: { status: 'running', message: 'hotfix' } },
      { type: 'status', timestamp: new Date().toISOString(), data: { step: 'patch', status: 'success' } },
      { type: 'status', timestamp: new Date().toISOString(), data: { step: 'release', status: 'running' } },
    ]);
    await page.waitForFunction((id) => document.querySelector('[data-testid="workflow-list"] [data-run]')?.getAttribute('data-run') === id, HOT, { timeout: 10000 });
    assert.equal(await card(HOT).getAttribute('data-progress'), '50');
    assert.deepEqual(pageErrors, []);
  });

  test('a retried step shows each attempt: number, status, duration and error', async () => {
    await open(`workflows?run=${DEPLOY}`, `[data-testid="wf-steps"] [data-step="upload"]`);
    const step = page.locator('[data-testid="wf-steps"] [data-step="upload"]');
    assert.equal(await step.getAttribute('data-attempts'), '3');
    assert.match(await step.textContent(), /3 attempts/);
    assert.match(await step.textContent(), /success/);
    const rows = page.locator('[data-testid="wf-steps"] [data-step-attempt="upload"]');
    assert.equal(await rows.count(), 3);
    const text = await rows.allTextContents();
    assert.match(text[0], /attempt 1/); assert.match(text[0], /failed/); assert.match(text[0], /503 Service Unavailable/); assert.match(text[0], /2\.00 s/);
    assert.match(text[1], /attempt 2/); assert.match(text[1], /failed/); assert.match(text[1], /timeout after 3 s/); assert.match(text[1], /3\.00 s/);
    assert.match(text[2], /attempt 3/); assert.match(text[2], /success/); assert.match(text[2], /1\.50 s/);
    assert.doesNotMatch(text[2], /Unavailable|timeout/);
    // A step that ran once shows no attempt rows.
    assert.equal(await page.locator('[data-testid="wf-steps"] [data-step-attempt="build"]').count(), 0);
    // The card says a step was retried.
    assert.match(await page.textContent(`[data-testid="workflow-list"] [data-run="${DEPLOY}"]`), /1 retried/);
    await page.screenshot({ path: path.join(SHOTS, 'workflows-attempts.png') });
  });

  test('no silent caps: the workflow list and the Plugins run picker page past 100', async () => {
    const total = FILLER + 4; // three from the start, one started live
    await open('workflows', '[data-testid="workflow-list"] [data-run]');
    assert.equal(await page.locator('[data-testid="workflow-list"] [data-run]').count(), 100);
    assert.match(await page.textContent('[data-testid="wf-count"]'), /100 executions loaded · more below/);
    await page.click('[data-testid="wf-more"]');
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="workflow-list"] [data-run]').length === n, total, { timeout: 10000 });
    assert.equal(await page.locator('[data-testid="wf-more"]').count(), 0, 'no more to load');
    assert.match(await page.textContent('[data-testid="wf-count"]'), new RegExp(`^${total} executions$`));
    // The oldest workflow is reachable and correct.
    await page.click(`[data-testid="workflow-list"] [data-run="nightly-${T}-000"]`);
    await page.waitForFunction(() => document.querySelector('[data-testid="wf-progress"]')?.getAttribute('data-progress') === '100', null, { timeout: 10000 });

    await open('plugins', '[data-testid="plugin-run"]');
    await page.waitForFunction(() => document.querySelector('[data-testid="plugin-run"]')?.getAttribute('data-runs') === '100', null, { timeout: 10000 });
    const more = page.locator('[data-testid="plugin-run"] option', { hasText: 'More runs' });
    assert.equal(await more.count(), 1, 'the picker says there are more runs');
    await page.selectOption('[data-testid="plugin-run"]', { label: await more.textContent() });
    await page.waitForFunction((n) => document.querySelector('[data-testid="plugin-run"]')?.getAttribute('data-runs') === String(n), total, { timeout: 10000 });
    assert.equal(await page.locator('[data-testid="plugin-run"] option', { hasText: 'More runs' }).count(), 0);
    assert.deepEqual(pageErrors, []);
  });
});
