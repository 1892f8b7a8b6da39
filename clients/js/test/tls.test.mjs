// The client against the real hub serving TLS (`sightline serve --tls-cert --tls-key`) with a
// certificate signed by a private CA the test makes: trusted through the `ca` option, through
// SIGHTLINE_CA_FILE, and through NODE_EXTRA_CA_CERTS with the runtime's own WebSocket (Node 20's
// `--experimental-websocket` gives it one, and a loader hook makes importing `ws` an error, so
// this is the native path; the Chromium tests are the browser's). Without the CA every call
// fails at once with a `HubError` of code `tls` that says what to set.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

import { SightlineClient, HubError } from '../dist/index.js';
import { makeTestCa, startHub } from './hub.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
let dir, pki, hub;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sl-js-tls-'));
  pki = makeTestCa(dir);
  hub = await startHub({ db: join(dir, 'db.sqlite'), args: ['--tls-cert', pki.cert, '--tls-key', pki.key] });
  assert.match(hub.url, /^https:\/\/127\.0\.0\.1:\d+$/);
});

after(async () => {
  await hub?.stop();
});

const ev = (run, i) => ({ source: 'custom', source_event: 'x', entity_type: 'log', run_id: run, title: `tls ${i}` });

async function until(what, check, ms = 20_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Runs tls-child.mjs in a fresh Node with these flags and environment; its JSON report. */
function child(flags, env, publishVia) {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SIGHTLINE_') && k !== 'NODE_EXTRA_CA_CERTS'));
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [...flags, join(HERE, 'tls-child.mjs'), hub.url, publishVia], { env: { ...clean, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const last = stdout.trim().split('\n').pop();
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`child failed (${err}): ${stdout} ${stderr}`));
      }
    });
  });
}

test('the ca option: publish over HTTPS and over WSS, subscribe over WSS', async () => {
  const ca = readFileSync(pki.ca, 'utf8');
  for (const publishVia of ['http', 'ws']) {
    const run = `tls-ca-${publishVia}`;
    const client = new SightlineClient({ url: hub.url, ca, publishVia });
    try {
      const got = [];
      client.subscribe({ runs: [run] }, { onEvent: (e) => got.push(e.seq) }, { since: 0 });
      const seqs = await client.publish([0, 1, 2].map((i) => ev(run, i)));
      assert.equal(seqs.length, 3);
      await until(`${publishVia}: the events back over wss`, () => got.length === 3);
      assert.deepEqual(got, seqs);
      const stored = await client.request('GET', `/api/v1/search?runs=${run}&order=asc`);
      assert.deepEqual(stored.events.map((e) => e.seq), seqs, 'committed');
    } finally {
      client.close();
    }
  }
});

test('SIGHTLINE_CA_FILE in the environment (ws package, Node 20 without a global WebSocket)', async () => {
  for (const via of ['http', 'ws']) {
    const r = await child([], { SIGHTLINE_CA_FILE: pki.ca }, via);
    assert.equal(r.error, undefined, JSON.stringify(r));
    assert.equal(r.seqs.length, 3);
    assert.deepEqual(r.got, r.seqs);
    assert.equal(r.globalWebSocket, false, 'this Node has no global WebSocket: the ws package carried it');
  }
});

test("NODE_EXTRA_CA_CERTS with the runtime's own WebSocket, and ws never imported", async () => {
  const r = await child(['--experimental-websocket', '--import', join(HERE, 'no-ws.mjs')], { NODE_EXTRA_CA_CERTS: pki.ca }, 'ws');
  assert.equal(r.error, undefined, JSON.stringify(r));
  assert.equal(r.globalWebSocket, true);
  assert.ok(r.nativeSockets >= 1, `the global WebSocket opened the connection: ${JSON.stringify(r)}`);
  assert.deepEqual(r.got, r.seqs);
  // The hook is real: under it, importing ws fails.
  const probe = await new Promise((resolve) => {
    execFile(process.execPath, ['--import', join(HERE, 'no-ws.mjs'), '--input-type=module', '-e', "await import('ws')"],
      { cwd: join(HERE, '..') }, (err, _out, stderr) => resolve({ err, stderr }));
  });
  assert.ok(probe.err, 'importing ws under the hook must fail');
  assert.match(probe.stderr, /ws package was imported/);
});

test('a CA given to the client makes it take ws even where a global WebSocket exists (which takes no CA)', async () => {
  const r = await child(['--experimental-websocket'], { SIGHTLINE_CA_FILE: pki.ca }, 'ws');
  assert.equal(r.error, undefined, JSON.stringify(r));
  assert.equal(r.globalWebSocket, true);
  assert.equal(r.nativeSockets, 0, 'the global WebSocket was not used');
  assert.deepEqual(r.got, r.seqs);
});

test('without the CA: a HubError with code tls that says what to set, at once', async () => {
  const client = new SightlineClient({ url: hub.url, maxBackoffMs: 50 });
  try {
    const started = Date.now();
    await assert.rejects(client.publish(ev('tls-none', 0)), (e) => {
      assert.ok(e instanceof HubError);
      assert.equal(e.code, 'tls');
      assert.match(e.message, /not signed by a CA this client trusts/);
      assert.match(e.message, /SIGHTLINE_CA_FILE/);
      assert.match(e.message, /NODE_EXTRA_CA_CERTS/);
      return true;
    });
    assert.ok(Date.now() - started < 5_000, 'no retries on a certificate problem');
    const errors = [];
    client.subscribe({}, { onEvent: () => {}, onError: (e) => errors.push(e) });
    await until('the subscription error', () => errors.length > 0);
    assert.equal(errors[0].code, 'tls');
    assert.match(errors[0].message, /ca` option/);
  } finally {
    client.close();
  }
});

test('a SIGHTLINE_CA_FILE that is missing or not PEM is named in the error', async () => {
  const notPem = join(dir, 'not.pem');
  writeFileSync(notPem, 'hello\n');
  for (const [file, why] of [[join(dir, 'missing.pem'), /ENOENT/], [notPem, /no PEM certificate/]]) {
    process.env.SIGHTLINE_CA_FILE = file;
    const client = new SightlineClient({ url: hub.url });
    delete process.env.SIGHTLINE_CA_FILE;
    try {
      await assert.rejects(client.publish(ev('tls-bad-file', 0)), (e) => {
        assert.equal(e.code, 'tls');
        assert.ok(e.message.includes(file), e.message);
        assert.match(e.message, why);
        return true;
      });
    } finally {
      client.close();
    }
  }
});
