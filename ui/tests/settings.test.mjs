// Browser test of the Settings page's Sources and Notifications sections (issue 14, point 8)
// against the real hub binary (hub.mjs) in headless system Chromium: the log tailer is given a
// real file, started, stopped and started again from the page (its events appear, stop, and
// resume), and the failure rule is pointed at a real local webhook receiver from the page (a
// failed run reaches it; a bad URL is refused with the hub's words). Both land in the config
// file. A source stopped and started from outside (the API, as the CLI or another tab would)
// shows its new state on the open page without a reload, and a draft being typed survives.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { startHub } from './hub.mjs';
import { openDashboard } from './browser.mjs';

let hub, browser, page, config, logFile, receiver, webhook;
const received = [];
const pageErrors = [];

async function logEvents() {
  const page = await hub.get('/api/v1/search?runs=log:agent.log&limit=1000');
  return page.events.length;
}

async function until(what, check, ms = 10000) {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sightline-settings-'));
  config = path.join(dir, 'config.toml');
  fs.writeFileSync(config, '# written by the test\n');
  logFile = path.join(dir, 'agent.log');
  fs.writeFileSync(logFile, 'tool Bash failed: exit code 2 (first)\n');
  // A webhook receiver on port 0: every body it gets is kept.
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => { received.push({ path: req.url, body: JSON.parse(body) }); res.end('ok'); });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  webhook = `http://127.0.0.1:${receiver.address().port}/services/T0/B0/secret`;
  hub = await startHub({ dir, args: ['--config', config] });
  ({ browser, page } = await openDashboard({ errors: pageErrors, ignore: null, viewport: { width: 1440, height: 1200 } }));
});

after(async () => {
  await browser?.close();
  await hub?.stop();
  receiver?.close();
});

describe('settings: sources and notification rules', () => {
  test('a source is configured, started, stopped and started again from the page', async () => {
    await page.goto(`${hub.url}/#/settings`);
    await page.waitForSelector('tr[data-source="logs"]');
    assert.equal((await page.textContent('[data-source-state="logs"]')).trim(), 'stopped');
    // A relative path is refused by the hub, and the page says why.
    await page.fill('[data-source-config="logs"]', 'agent.log');
    await page.click('[data-source-save="logs"]');
    await page.waitForSelector('[data-testid="settings-notice"].err-text');
    assert.match(await page.textContent('[data-testid="settings-notice"]'), /absolute/);

    await page.fill('[data-source-config="logs"]', logFile);
    await page.click('[data-source-save="logs"]');
    await page.waitForSelector('[data-testid="settings-notice"]:has-text("settings applied")');
    await page.click('[data-source-toggle="logs"]');
    await page.waitForSelector('[data-testid="settings-notice"]:has-text("logs: started")');
    await until('the first line as an event', async () => (await logEvents()) === 1);
    await page.waitForSelector('[data-source-state="logs"]:has-text("running")');

    await page.click('[data-source-toggle="logs"]');
    await page.waitForSelector('[data-source-state="logs"]:has-text("stopped")');
    fs.appendFileSync(logFile, 'tool Edit failed: no such file (while stopped)\n');
    // The tailer polls every 500 ms: 2 s is four polls a running one would have made.
    await new Promise((r) => setTimeout(r, 2000));
    assert.equal(await logEvents(), 1, 'a stopped source read a line');

    await page.click('[data-source-toggle="logs"]');
    await page.waitForSelector('[data-source-state="logs"]:has-text("running")');
    await until('the line written while stopped, after the restart', async () => (await logEvents()) === 2);
    const file = fs.readFileSync(config, 'utf8');
    assert.match(file, /^\[source\.logs\]\nrunning = true\npaths = \[".*agent\.log"\]$/m, file);
    assert.ok(file.startsWith('# written by the test\n'), file);
  });

  test('a source stopped and started elsewhere shows its state on the open page', async () => {
    // The previous test left the tailer running; the page is still open on Settings.
    await page.waitForSelector('[data-source-state="logs"]:has-text("running")');
    const draft = 'typed but not saved';
    await page.fill('[data-source-config="logs"]', draft);
    const put = async (running) => {
      const res = await fetch(`${hub.url}/api/v1/settings/sources/logs`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ running }) });
      assert.equal(res.status, 200, await res.text());
    };
    await put(false);
    await page.waitForSelector('[data-source-state="logs"]:has-text("stopped")', { timeout: 10000 });
    await put(true);
    await page.waitForSelector('[data-source-state="logs"]:has-text("running")', { timeout: 10000 });
    // The re-reads did not throw away what the user was typing.
    assert.equal(await page.inputValue('[data-source-config="logs"]'), draft);
    await page.fill('[data-source-config="logs"]', logFile);
  });

  test('a notification rule is edited on the page and reaches a webhook', async () => {
    const rule = '[data-rule="failure"]';
    await page.waitForSelector(`${rule} [data-field="enabled"]`);
    await page.check(`${rule} [data-field="enabled"]`);
    // A webhook that is not http(s) is refused; the message does not repeat its path.
    await page.fill(`${rule} [data-field="webhooks"]`, 'ftp://example.com/hidden-path');
    await page.click('[data-testid="notify-save"]');
    await page.waitForSelector('[data-testid="settings-notice"].err-text');
    const refusal = await page.textContent('[data-testid="settings-notice"]');
    assert.match(refusal, /failure: webhook must start with http/);
    assert.doesNotMatch(refusal, /hidden-path/);

    await page.fill(`${rule} [data-field="webhooks"]`, webhook);
    await page.fill(`${rule} [data-field="interval_s"]`, '30');
    await page.click('[data-testid="notify-save"]');
    await page.waitForSelector('[data-testid="settings-notice"]:has-text("failures on")');
    const view = await hub.get('/api/v1/settings/notify');
    assert.equal(view.rules.failure.enabled, true);
    assert.deepEqual(view.rules.failure.webhooks, [webhook]);
    assert.equal(view.rules.failure.interval_s, 30);

    await hub.post({ source: 'workflow', source_event: 'run_failed', entity_type: 'workflow', run_id: 'wf-page', status: 'failed', severity: 'error', title: 'page-test deploy failed' });
    await until('the webhook', async () => received.length >= 1);
    assert.equal(received[0].path, '/services/T0/B0/secret');
    assert.deepEqual(Object.keys(received[0].body), ['text']);
    assert.match(received[0].body.text, /page-test deploy failed/);
    const file = fs.readFileSync(config, 'utf8');
    assert.match(file, /^\[notify\.failure\]\nenabled = true$/m, file);
    assert.match(file, /^interval_s = 30$/m, file);
    assert.deepEqual(pageErrors, []);
  });
});
