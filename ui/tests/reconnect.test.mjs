// The page survives a hub restart: the live stream reconnects by itself, and when the new hub
// has another database (another epoch) the page drops the old state instead of mixing them.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { startHub } from './hub.mjs';
import { openDashboard } from './browser.mjs';

let hub, browser;
after(async () => { await browser?.close(); await hub?.stop(); });

const ev = (sid, title) => ({ source: 'claude', source_event: 'SessionStart', run_id: 'run-' + sid, session_id: sid, agent: 'main', entity_type: 'session', status: 'running', title });

test('live view reconnects after a hub restart with a new database', async () => {
  hub = await startHub({ plugins: false });
  const port = new URL(hub.url).port;
  const errors = [];
  const opened = await openDashboard({ errors, ignore: null, viewport: { width: 1280, height: 720 } });
  browser = opened.browser;
  const page = opened.page;
  await page.goto(hub.url + '/#/live');
  await hub.post([ev('before-restart', 'first hub')]);
  await page.waitForSelector('[data-lane="before-restart"]', { timeout: 10000 });
  // Post a few more so the page's cursor (seq 3) is ahead of the new hub's head.
  await hub.post([ev('before-restart', 'first hub again'), ev('before-restart', 'and again')]);

  await hub.stop();
  await page.waitForSelector('[data-conn="reconnecting"]', { timeout: 10000 });
  hub = await startHub({ plugins: false, port });
  await hub.post([ev('after-restart', 'second hub')]);

  await page.waitForSelector('[data-lane="after-restart"]', { timeout: 15000 });
  await page.waitForSelector('[data-conn="live"]', { timeout: 5000 });
  assert.equal(await page.locator('[data-lane="before-restart"]').count(), 0, 'state of the old database was dropped');
  // And it keeps streaming.
  await hub.post([ev('after-restart-2', 'still live')]);
  await page.waitForSelector('[data-lane="after-restart-2"]', { timeout: 5000 });
  assert.deepEqual(errors, []);
});
