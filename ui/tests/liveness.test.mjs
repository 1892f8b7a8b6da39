// Liveness on the dashboard (issue 13, point 5), against a real hub in headless Chromium: a
// process whose pid is gone (a real child this test started and reaped) is shown failed on its
// run page and in Processes with "ended by the hub: process N is gone (no exit event)"; a
// process that is alive but quiet shows "silent since", on its run page and in its Live lane; a
// Claude Code session whose process (named by `sightline hook`'s producer header) is gone shows
// why in its Live lane and in the Run page's session tree. The hub sweeps every 0.5 s.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { startHub } from './hub.mjs';
import { openDashboard } from './browser.mjs';

const T = 'lv' + Date.now().toString(36);
let hub, browser, page;

before(async () => {
  hub = await startHub({ plugins: false, args: ['--liveness-every', '0.5'] });
  ({ browser, page } = await openDashboard({ viewport: { width: 1280, height: 800 } }));
});

after(async () => {
  await browser?.close();
  await hub?.stop();
});

test('a process whose pid is gone is shown ended by the hub, with the reason', async () => {
  // A pid that is certainly gone: a child started and reaped here.
  const gone = spawnSync('true').pid;
  const run = `py-gone-${T}`;
  const now = Date.now();
  await hub.post([
    { source: 'python', source_event: 'process_start', entity_type: 'process', title: 'python job.py', run_id: run,
      session_id: `${run}:main`, status: 'running', host: os.hostname(), pid: gone, ts: new Date(now - 2000).toISOString() },
  ]);
  const reason = `process ${gone} is gone (no exit event)`;
  let r;
  for (let i = 0; i < 100; i++) {
    r = (await hub.get(`/api/v1/runs/${run}`)).run;
    if (r.status === 'failed') break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(r.status, 'failed', JSON.stringify(r));
  assert.equal(r.liveness_reason, reason);
  await page.goto(`${hub.url}/#/run/${run}`);
  const line = page.locator('.page-h [data-testid="liveness"]');
  await line.waitFor({ timeout: 10000 });
  assert.equal(await line.textContent(), `ended by the hub: ${reason}`);
  assert.equal(await line.getAttribute('data-rule'), 'pid');
  // Its session, ended with it, says the same in the session tree.
  const node = page.locator(`[data-testid="session-tree"] [data-session="${run}:main"] [data-testid="liveness"]`);
  await node.waitFor({ timeout: 10000 });
  assert.equal(await node.textContent(), `ended by the hub: ${reason}`);
  await page.goto(`${hub.url}/#/processes`);
  const item = page.locator(`[data-run="${run}"] [data-testid="liveness"]`);
  await item.waitFor({ timeout: 10000 });
  assert.match(await item.textContent(), /process \d+ is gone/);
});

test('a live process that has been quiet shows since when', async () => {
  // This test's own process (alive), quiet for a minute, with its start time so the sweep
  // knows it is the same process.
  const run = `py-quiet-${T}`;
  const stat = fs.readFileSync('/proc/self/stat', 'utf8');
  const startTicks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  const at = new Date(Date.now() - 60_000);
  await hub.post([
    { source: 'python', source_event: 'process_start', entity_type: 'process', title: 'python server.py', run_id: run,
      status: 'running', host: os.hostname(), pid: process.pid, ts: at.toISOString(), payload: { start_ticks: startTicks } },
  ]);
  await new Promise((res) => setTimeout(res, 1500)); // three sweeps: it must stay running
  const r = (await hub.get(`/api/v1/runs/${run}`)).run;
  assert.equal(r.status, 'running', JSON.stringify(r));
  assert.equal(r.alive, true);
  await page.goto(`${hub.url}/#/run/${run}`);
  const line = page.locator('.page-h [data-testid="liveness"]');
  await line.waitFor({ timeout: 10000 });
  assert.match(await line.textContent(), /^silent since \d\d:\d\d:\d\d/);
  assert.equal(await line.getAttribute('data-rule'), 'silent');
});

test('Live lanes and the Run page session tree: a quiet process says since when, a Claude session ended by the hub says why', async () => {
  // The quiet process of the test above, on Live: its lane says "silent since".
  await page.goto('about:blank');
  await page.goto(`${hub.url}/#/live`);
  const quiet = page.locator(`[data-lane="run:py-quiet-${T}"] [data-testid="liveness"]`);
  await quiet.waitFor({ timeout: 10000 });
  assert.match(await quiet.textContent(), /^silent since \d\d:\d\d:\d\d/);

  // A Claude Code session fed by `sightline hook`, whose process (a pid certainly gone) was
  // named in the producer header, cut off mid-tool.
  const gone = spawnSync('true').pid;
  const sid = `claude-gone-${T}`;
  const producer = JSON.stringify({ pid: gone, host: os.hostname() });
  for (const p of [
    { hook_event_name: 'SessionStart', source: 'startup' },
    { hook_event_name: 'UserPromptSubmit', prompt: 'Run the long job' },
    { hook_event_name: 'PreToolUse', tool_name: 'Bash', tool_use_id: `tu-${T}`, tool_input: { command: 'sleep 600' } },
  ]) {
    const res = await fetch(hub.url + '/api/v1/hooks/claude', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-sightline-producer': producer },
      body: JSON.stringify({ session_id: sid, cwd: '/tmp', ...p }),
    });
    assert.ok(res.status < 300, `hook ${p.hook_event_name} → ${res.status}`);
  }
  const reason = `Claude Code process ${gone} is gone (no SessionEnd)`;
  let r;
  for (let i = 0; i < 100; i++) {
    r = await hub.get(`/api/v1/runs/${sid}`);
    if (r.run.status === 'failed') break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(r.run.status, 'failed', JSON.stringify(r.run));
  assert.equal(r.run.liveness_reason, reason);

  // Live: the lane is ended and says why, instead of its last event.
  const lane = page.locator(`[data-lane="${sid}"]`);
  await lane.waitFor({ timeout: 15000 });
  const why = lane.locator('[data-testid="liveness"]');
  await why.waitFor({ timeout: 15000 });
  assert.equal(await why.textContent(), `ended by the hub: ${reason}`);
  assert.equal(await why.getAttribute('data-rule'), 'pid');
  assert.equal(await lane.getAttribute('data-status'), 'failed');

  // The Run page's session tree: the session says the same.
  await page.goto(`${hub.url}/#/run/${sid}`);
  const node = page.locator(`[data-testid="session-tree"] [data-session="${sid}"] [data-testid="liveness"]`);
  await node.waitFor({ timeout: 10000 });
  assert.equal(await node.textContent(), `ended by the hub: ${reason}`);
});
