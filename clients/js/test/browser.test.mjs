// The client in a browser: the built bundle (dist/index.js, loaded as an ES module, no bundler)
// in headless Chromium (the system's /usr/bin/chromium through playwright-core, never a
// downloaded one), against the real hub binary.
//
// The page is served by a separate static server, as a user's own dashboard would be (the hub
// serves only its embedded dashboard), so it is another origin: the hub is started with
// `--allow-origin <that origin>`, and a page on an origin not listed is shown to be refused.
// Browsers cannot put headers on a WebSocket, so tokens go in the `auth` message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, startHub } from './hub.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUNDLE = resolve(HERE, '../dist/index.js');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WAIT = 20_000;

const dirs = [];
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'sl-js-browser-'));
  dirs.push(d);
  return d;
};

/** A static server for the test page and the built bundle: the user's dashboard origin. */
async function startPageServer() {
  const page = `<!doctype html><meta charset="utf-8"><title>sightline client in a browser</title>
<script type="module">
import * as sightline from '/client/index.js';
window.sightline = sightline;
</script>`;
  const server = createServer((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(page);
    } else if (req.url === '/client/index.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' });
      res.end(readFileSync(BUNDLE));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}

let browser;
let site; // the allowed origin
let foreign; // an origin the hub was not told about
before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
  site = await startPageServer();
  foreign = await startPageServer();
});
after(async () => {
  await browser?.close();
  await site?.close();
  await foreign?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A page on `origin` with the client loaded; records uncaught errors and WebSocket URLs. */
async function openPage(origin) {
  const page = await browser.newPage();
  const pageErrors = [];
  const socketUrls = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('websocket', (ws) => socketUrls.push(ws.url()));
  await page.goto(origin + '/');
  await page.waitForFunction(() => window.sightline?.SightlineClient, null, { timeout: WAIT });
  return { page, pageErrors, socketUrls };
}

/**
 * In the page: `window.clients[name]` with one subscription whose events, resets and errors are
 * recorded in `window.rec[name]`.
 */
function subscribeInPage(page, name, { url, token, filter, since }) {
  return page.evaluate(
    ({ name, url, token, filter, since }) => {
      window.clients ??= {};
      window.rec ??= {};
      const rec = (window.rec[name] = { events: [], resets: [], errors: [] });
      const client = new window.sightline.SightlineClient({ url, token, minBackoffMs: 50, maxBackoffMs: 500 });
      window.clients[name] = client;
      client.subscribe(
        filter,
        {
          onEvent: (e) => rec.events.push({ seq: e.seq, event_id: e.event_id, title: e.title, run_id: e.run_id, severity: e.severity }),
          onReset: (reason) => rec.resets.push(reason),
          onError: (e) => rec.errors.push({ name: e.name, code: e.code, status: e.status, message: e.message }),
        },
        since === undefined ? {} : { since },
      );
    },
    { name, url, token, filter, since },
  );
}

/** Closes the page's clients, the page and the hub, the end of every test. */
async function closeAll(page, hub) {
  await page.evaluate(() => Object.values(window.clients ?? {}).forEach((c) => c.close()));
  await page.close();
  await hub.stop();
}

const waitFor = (page, fn, arg) => page.waitForFunction(fn, arg, { timeout: WAIT, polling: 20 });
const recorded = (page, name) => page.evaluate((name) => window.rec[name], name);

async function until(what, check, ms = WAIT) {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const ev = (run, i, extra = {}) => ({
  source: 'custom', source_event: 'x', entity_type: 'log', run_id: run, title: `${run} ${i}`, event_id: `${run}-${i}-${Math.random().toString(16).slice(2)}`, ...extra,
});

/**
 * "Exactly these": after the expected events arrived, one more matching event is published and
 * awaited; events come in seq order, so anything unexpected would have arrived before it.
 */
async function expectExactly(page, name, hub, expectedSeqs, sentinel) {
  await waitFor(page, ([name, n]) => window.rec[name].events.length >= n, [name, expectedSeqs.length]);
  const [last] = await hub.post([sentinel]);
  await waitFor(page, ([name, seq]) => window.rec[name].events.some((e) => e.seq === seq), [name, last]);
  const got = await recorded(page, name);
  assert.deepEqual(got.events.map((e) => e.seq), [...expectedSeqs, last]);
  return got;
}

test('a filtered subscription from an allowed origin gets exactly the matching events, in seq order', async () => {
  const dir = tmp();
  const hub = await startHub({ db: join(dir, 'db.sqlite'), args: ['--allow-origin', site.origin] });
  const { page, pageErrors, socketUrls } = await openPage(site.origin);
  try {
    // Stored before the page subscribes (replayed with since: 0) and published after (live).
    const mix = (prefix) => {
      const out = [];
      for (const run of ['b1', 'b2']) for (const severity of ['info', 'error']) for (let i = 0; i < 3; i++)
        out.push(ev(run, `${prefix}${out.length}`, { severity }));
      return out;
    };
    const before = mix('a');
    const beforeSeqs = await hub.post(before);
    await subscribeInPage(page, 'main', { url: hub.url, filter: { runs: ['b1'], severities: ['error'] }, since: 0 });
    const match = (batch, seqs) => batch.map((e, i) => [e, seqs[i]]).filter(([e]) => e.run_id === 'b1' && e.severity === 'error').map(([, s]) => s);
    await waitFor(page, (n) => window.rec.main.events.length >= n, 3);
    const later = mix('b');
    const laterSeqs = await hub.post(later);
    const expected = [...match(before, beforeSeqs), ...match(later, laterSeqs)];
    assert.equal(expected.length, 6);
    const got = await expectExactly(page, 'main', hub, expected, ev('b1', 'sentinel', { severity: 'error' }));
    assert.ok(got.events.every((e) => e.run_id === 'b1' && e.severity === 'error'));
    assert.deepEqual(got.resets, []);
    assert.deepEqual(got.errors, []);
    assert.equal(await page.evaluate(() => typeof window.clients.main.epoch), 'string', 'welcome received');
    assert.ok(socketUrls.length >= 1 && socketUrls.every((u) => u === hub.url.replace(/^http/, 'ws') + '/ws'), socketUrls.join(' '));
    assert.deepEqual(pageErrors, []);
  } finally {
    await closeAll(page, hub);
  }
});

test('a page on an origin the hub does not allow is refused', async () => {
  const dir = tmp();
  const db = join(dir, 'db.sqlite');
  const hub = await startHub({ db, args: ['--allow-origin', site.origin] });
  const { page } = await openPage(foreign.origin);
  try {
    await subscribeInPage(page, 'main', { url: hub.url, filter: {}, since: 0 });
    await until('the refused origin in the audit log', () =>
      hub.audit().some((a) => a.kind === 'origin_refused' && a.path === '/ws' && a.status === 403 && a.detail === foreign.origin));
    await hub.post([ev('foreign', 1)]);
    // It never got a `welcome`, so it never had a connection to receive anything on.
    assert.equal(await page.evaluate(() => window.clients.main.epoch), undefined);
    assert.deepEqual((await recorded(page, 'main')).events, []);
  } finally {
    await closeAll(page, hub);
  }
});

test('publish from the browser: acknowledged after commit, stored once, seen by the hub', async () => {
  const dir = tmp();
  const hub = await startHub({ db: join(dir, 'db.sqlite'), args: ['--allow-origin', site.origin] });
  const { page, pageErrors } = await openPage(site.origin);
  try {
    await subscribeInPage(page, 'main', { url: hub.url, filter: { runs: ['from-page'] }, since: 0 });
    const batch = [0, 1, 2].map((i) => ev('from-page', i));
    const seqs = await page.evaluate((batch) => window.clients.main.publish(batch), batch);
    assert.equal(seqs.length, 3);
    assert.ok(seqs[0] < seqs[1] && seqs[1] < seqs[2], `seqs ${seqs}`);
    // Acked after commit: the hub already has them, under these seqs.
    const stored = (await hub.get('/api/v1/search?runs=from-page&limit=10')).events;
    assert.deepEqual(stored.map((e) => [e.seq, e.event_id, e.title]).sort((a, b) => a[0] - b[0]), batch.map((e, i) => [seqs[i], e.event_id, e.title]));
    // The REST API from the page too (the hub answers the allowed origin's preflight and marks
    // its answers readable): search sees the same events.
    const found = await page.evaluate(() => window.clients.main.search({ runs: ['from-page'] }, 10));
    assert.deepEqual(found.map((e) => e.seq).sort((a, b) => a - b), seqs);
    // A retry with the same event ids is not stored twice.
    assert.deepEqual(await page.evaluate((batch) => window.clients.main.publish(batch), batch), seqs);
    assert.equal((await hub.get('/api/v1/search?runs=from-page&limit=10')).events.length, 3);
    // The page's own subscription sees them once.
    const got = await expectExactly(page, 'main', hub, seqs, ev('from-page', 'sentinel'));
    assert.deepEqual(got.events.slice(0, 3).map((e) => e.event_id), batch.map((e) => e.event_id));
    // Invalid events are refused with the documented error, nothing stored.
    const refused = await page.evaluate(() =>
      window.clients.main.publish([{ source: 'custom', source_event: 'x', entity_type: 'log', title: 'ok', run_id: 'bad' }, { source: 'custom', run_id: 'bad' }])
        .then(() => 'accepted', (e) => ({ name: e.name, code: e.code })));
    assert.deepEqual(refused, { name: 'HubError', code: 'invalid_events' });
    assert.equal((await hub.get('/api/v1/search?runs=bad&limit=10')).events.length, 0);
    // The workflow reporter from the page.
    await page.evaluate(() => window.clients.main.workflow('wf-page', 'deploy').run(async (wf) => {
      await wf.step('build');
      await wf.progress(50);
      await wf.log('compiled');
    }));
    const run = await hub.get('/api/v1/runs/wf-page');
    assert.equal(run.run.status, 'success');
    assert.deepEqual(pageErrors, []);
  } finally {
    await closeAll(page, hub);
  }
});

test('a hub with tokens: the browser authenticates with the auth message; a wrong token is refused', async () => {
  const dir = tmp();
  const db = join(dir, 'db.sqlite');
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, 'browser-rw-token-0001 read,ingest page\nbrowser-ro-token-0001 read viewer\nbrowser-admin-token-01 admin test\n');
  const hub = await startHub({ db, args: ['--allow-origin', site.origin, '--token-file', tokens], token: 'browser-admin-token-01' });
  const { page, pageErrors, socketUrls } = await openPage(site.origin);
  try {
    // The right token: subscribe and publish.
    await subscribeInPage(page, 'rw', { url: hub.url, token: 'browser-rw-token-0001', filter: { runs: ['tok'] }, since: 0 });
    const batch = [ev('tok', 0), ev('tok', 1)];
    const seqs = await page.evaluate((batch) => window.clients.rw.publish(batch), batch);
    assert.equal(seqs.length, 2);
    await expectExactly(page, 'rw', hub, seqs, ev('tok', 'sentinel'));
    // A read-only token: subscribing works, publishing is `forbidden`.
    await subscribeInPage(page, 'ro', { url: hub.url, token: 'browser-ro-token-0001', filter: { runs: ['tok'] }, since: 0 });
    await waitFor(page, () => window.rec.ro.events.length >= 3);
    const forbidden = await page.evaluate(() => window.clients.ro.publish([{ source: 'custom', source_event: 'x', entity_type: 'log', title: 'no' }])
      .then(() => 'accepted', (e) => ({ code: e.code, status: e.status })));
    assert.deepEqual(forbidden, { code: 'forbidden', status: 403 });
    // A wrong token: the hub answers `error {code: "unauthorized"}` and closes with 4001; the
    // subscription's onError and the pending publish get it, and the client gives up.
    await subscribeInPage(page, 'wrong', { url: hub.url, token: 'not-a-token-of-this-hub', filter: {}, since: 0 });
    const wrongPublish = page.evaluate(() => window.clients.wrong.publish([{ source: 'custom', source_event: 'x', entity_type: 'log', title: 'no' }])
      .then(() => 'accepted', (e) => ({ code: e.code, status: e.status })));
    await waitFor(page, () => window.rec.wrong.errors.length >= 1);
    assert.deepEqual(await wrongPublish, { code: 'unauthorized', status: 401 });
    const wrong = await recorded(page, 'wrong');
    assert.equal(wrong.errors.length, 1);
    assert.deepEqual([wrong.errors[0].name, wrong.errors[0].code, wrong.errors[0].status], ['HubError', 'unauthorized', 401]);
    assert.deepEqual(wrong.events, []);
    assert.ok(hub.audit().some((a) => a.kind === 'auth_failed' && a.path === '/ws' && a.detail === 'wrong token in auth message'));
    // No token at all on a hub that requires one: the same error, at once.
    await subscribeInPage(page, 'none', { url: hub.url, filter: {}, since: 0 });
    await waitFor(page, () => window.rec.none.errors.length >= 1);
    assert.equal((await recorded(page, 'none')).errors[0].code, 'unauthorized');
    // Tokens never travel in the URL (which ends up in logs).
    assert.ok(socketUrls.length >= 4, socketUrls.join(' '));
    assert.ok(socketUrls.every((u) => !u.includes('access_token') && !u.includes('token-0001')), socketUrls.join(' '));
    assert.deepEqual(pageErrors, []);
  } finally {
    await closeAll(page, hub);
  }
});

test('resume across a SIGKILL of the hub: every event exactly once, including those published meanwhile', async () => {
  const dir = tmp();
  const db = join(dir, 'db.sqlite');
  const port = await freePort();
  const args = ['--allow-origin', site.origin];
  let hub = await startHub({ db, port, args });
  const { page, pageErrors } = await openPage(site.origin);
  try {
    await subscribeInPage(page, 'main', { url: hub.url, filter: { runs: ['restart'] }, since: 0 });
    const first = await hub.post(Array.from({ length: 100 }, (_, i) => ev('restart', i)));
    await waitFor(page, () => window.rec.main.events.length >= 100);
    await hub.stop('SIGKILL');
    // Published from the page while the hub is down: held and sent again after the reconnect.
    await page.evaluate((batch) => {
      window.during = window.clients.main.publish(batch, 40).then((s) => (window.duringSeqs = s), (e) => (window.duringError = e.message));
    }, Array.from({ length: 20 }, (_, i) => ev('restart', 100 + i)));
    hub = await startHub({ db, port, args });
    // Published by another producer right after the restart: replayed or live, never both.
    const later = await hub.post(Array.from({ length: 100 }, (_, i) => ev('restart', 120 + i)));
    await waitFor(page, () => window.duringSeqs || window.duringError);
    assert.equal(await page.evaluate(() => window.duringError), undefined);
    const during = await page.evaluate(() => window.duringSeqs);
    assert.equal(during.length, 20);
    const all = [...first, ...during, ...later].sort((a, b) => a - b);
    assert.equal(new Set(all).size, 220);
    const got = await expectExactly(page, 'main', hub, all, ev('restart', 'sentinel'));
    assert.equal(new Set(got.events.map((e) => e.event_id)).size, 221);
    assert.deepEqual(got.resets, []);
    assert.deepEqual(got.errors, []);
    assert.deepEqual(pageErrors, []);
  } finally {
    await closeAll(page, hub);
  }
});

test('onReset when the hub comes back with a new database', async () => {
  const dir = tmp();
  const port = await freePort();
  const args = ['--allow-origin', site.origin];
  let hub = await startHub({ db: join(dir, 'first.sqlite'), port, args });
  const { page, pageErrors } = await openPage(site.origin);
  try {
    await subscribeInPage(page, 'main', { url: hub.url, filter: { runs: ['epoch'] }, since: 0 });
    const first = await hub.post([0, 1, 2, 3].map((i) => ev('epoch', i)));
    await waitFor(page, () => window.rec.main.events.length >= 4);
    const oldEpoch = await page.evaluate(() => window.clients.main.epoch);
    await hub.stop('SIGKILL');
    hub = await startHub({ db: join(dir, 'second.sqlite'), port, args });
    await waitFor(page, () => window.rec.main.resets.length >= 1);
    const rec = await recorded(page, 'main');
    assert.equal(rec.resets.length, 1);
    assert.match(rec.resets[0], /another database/);
    const newEpoch = await page.evaluate(() => window.clients.main.epoch);
    assert.equal(typeof newEpoch, 'string');
    assert.notEqual(newEpoch, oldEpoch);
    // Live from the reset on: the new database's seqs start again below the old cursor, and
    // are delivered all the same.
    const second = await hub.post([0, 1].map((i) => ev('epoch', `new-${i}`)));
    assert.ok(second[1] <= first[3], `new seqs ${second} restart below the old ${first}`);
    const got = await expectExactly(page, 'main', hub, [...first, ...second], ev('epoch', 'sentinel'));
    assert.equal(got.resets.length, 1);
    assert.deepEqual(got.errors, []);
    assert.deepEqual(pageErrors, []);
  } finally {
    await closeAll(page, hub);
  }
});
