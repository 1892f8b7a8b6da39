// The TypeScript client against the real hub binary: publish, several filtered subscriptions on
// one connection, the workflow reporter, and a reconnect across a hub restart (same port, same
// database) with no event lost or repeated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SightlineClient } from '../dist/index.js';
import { freePort, startHub } from './hub.mjs';

const ev = (run, i, extra = {}) => ({
  source: 'custom', source_event: 'x', entity_type: 'log', run_id: run, title: `event ${i}`, event_id: `${run}-${i}`, ...extra,
});

async function until(what, check, ms = 20_000) {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('publish and three filtered subscriptions on one connection', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sl-js-'));
  const hub = await startHub({ db: join(dir, 'db.sqlite') });
  const client = new SightlineClient({ url: hub.url });
  try {
    const got = { a: [], b: [], c: [] };
    client.subscribe({ sources: ['claude'] }, { onEvent: (e) => got.a.push(e.seq) }, { since: 0 });
    client.subscribe({ runs: ['r2'] }, { onEvent: (e) => got.b.push(e.seq) }, { since: 0 });
    client.subscribe({ severities: ['error'], sources: ['custom'] }, { onEvent: (e) => got.c.push(e.seq) }, { since: 0 });
    const batch = [];
    for (const run of ['r1', 'r2', 'r3']) for (const source of ['claude', 'custom']) for (const severity of ['info', 'error'])
      batch.push(ev(run, batch.length, { source, severity }));
    const seqs = await client.publish(batch);
    assert.equal(seqs.length, 12);
    const want = (pred) => batch.map((e, i) => [e, seqs[i]]).filter(([e]) => pred(e)).map(([, s]) => s);
    await until('all three subscriptions', () => got.a.length === 6 && got.b.length === 4 && got.c.length === 3);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(got.a, want((e) => e.source === 'claude'));
    assert.deepEqual(got.b, want((e) => e.run_id === 'r2'));
    assert.deepEqual(got.c, want((e) => e.source === 'custom' && e.severity === 'error'));
    // Idempotent retries: the same ids give the same seqs.
    assert.deepEqual(await client.publish(batch), seqs);
    // The async iterator.
    const it = client.events({ runs: ['r3'] }, { since: 0 });
    const first = await it.next();
    assert.equal(first.value.run_id, 'r3');
    await it.return();
  } finally {
    client.close();
    await hub.stop();
  }
});

test('workflow reporter: steps, progress, logs, errors, completion', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sl-js-'));
  const hub = await startHub({ db: join(dir, 'db.sqlite') });
  const client = new SightlineClient({ url: hub.url });
  try {
    await client.workflow('wf-js', 'deploy').run(async (wf) => {
      await wf.step('build');
      await wf.progress(50);
      await wf.log('compiled');
      await wf.step('ship');
      await wf.progress(100);
    });
    await assert.rejects(client.workflow('wf-js-bad').run(async (wf) => {
      await wf.step('migrate');
      throw new Error('lock timeout');
    }), /lock timeout/);
    const ok = await client.request('GET', '/api/v1/runs/wf-js');
    assert.equal(ok.run.status, 'success');
    const bad = await client.request('GET', '/api/v1/runs/wf-js-bad');
    assert.equal(bad.run.status, 'failed');
    const progress = (await client.search({ runs: ['wf-js'] })).filter((e) => e.metrics?.progress !== undefined);
    assert.deepEqual(progress.map((e) => e.metrics.progress).sort((a, b) => a - b), [50, 100]);
  } finally {
    client.close();
    await hub.stop();
  }
});

test('workflow reporter: a step retried with its attempt number is one step with two attempts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sl-js-'));
  const hub = await startHub({ db: join(dir, 'db.sqlite') });
  const client = new SightlineClient({ url: hub.url });
  try {
    const wf = client.workflow('wf-js-retry', 'deploy');
    await wf.start();
    // The caller names attempt 3 then 4 (earlier ones ran elsewhere): counted, the hub would
    // have said 1 and 2.
    await wf.step('push', 'first try', { attempt: 3 });
    await wf.progress(40);
    await wf.error(new Error('registry 503'));
    await wf.step('push', 'again', { attempt: 4 });
    await wf.log('pushed');
    await wf.complete('success');
    await assert.rejects(wf.step('push', 'bad', { attempt: 0 }), RangeError);
    await assert.rejects(wf.step('push', 'bad', { attempt: 1.5 }), RangeError);
    const got = await client.request('GET', '/api/v1/workflows/wf-js-retry');
    assert.equal(got.steps.length, 1, JSON.stringify(got.steps));
    const [push] = got.steps;
    assert.equal(push.name, 'push');
    assert.equal(push.attempt_count, 2);
    assert.deepEqual(push.attempts.map((a) => [a.attempt, a.status]), [[3, 'failed'], [4, 'success']]);
    assert.match(push.attempts[0].error, /registry 503/);
    assert.equal(got.steps_retried, 1);
    // The attempt travels with the step's later updates, not only with step().
    const sent = (await client.search({ runs: ['wf-js-retry'] })).filter((e) => e.entity_type === 'step');
    assert.ok(sent.every((e) => e.metrics?.attempt === 3 || e.metrics?.attempt === 4), JSON.stringify(sent.map((e) => [e.source_event, e.metrics])));
  } finally {
    client.close();
    await hub.stop();
  }
});

test('reconnects across a hub restart and resumes with no loss and no repeat', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sl-js-'));
  const db = join(dir, 'db.sqlite');
  const port = await freePort();
  let hub = await startHub({ db, port });
  const client = new SightlineClient({ url: hub.url, minBackoffMs: 50, maxBackoffMs: 500 });
  const received = [];
  client.subscribe({ runs: ['restart'] }, { onEvent: (e) => received.push(e) }, { since: 0 });
  try {
    const first = await client.publish(Array.from({ length: 150 }, (_, i) => ev('restart', i)));
    await until('the first 150', () => received.length === 150);
    await hub.stop('SIGKILL');
    // Published while the hub is down: the client retries until it is back.
    const later = client.publish(Array.from({ length: 150 }, (_, i) => ev('restart', 150 + i)), 40);
    await new Promise((r) => setTimeout(r, 800));
    hub = await startHub({ db, port });
    const laterSeqs = await later;
    await until('all 300 after the restart', () => received.length >= 300);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(received.map((e) => e.seq), [...first, ...laterSeqs]);
    assert.equal(new Set(received.map((e) => e.event_id)).size, 300);
  } finally {
    client.close();
    await hub.stop();
  }
});

test('Node: a token the hub refuses at the upgrade is final, not retried forever', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sl-js-'));
  const db = join(dir, 'db.sqlite');
  const hub = await startHub({ db, args: ['--token', 'right-token'] });
  const url = hub.url;
  const client = new SightlineClient({ url, token: 'wrong-token' });
  try {
    const errors = [];
    client.subscribe({}, { onEvent: () => {}, onError: (e) => errors.push(e) }, { since: 0 });
    await until('the subscription to fail', () => errors.length > 0, 10_000);
    assert.equal(errors[0].code, 'unauthorized');
    assert.equal(errors[0].status, 401);
    // No reconnection storm: the hub's audit log sees one or two refusals, not dozens.
    await new Promise((r) => setTimeout(r, 2000));
    const res = await fetch(`${url}/api/v1/audit?limit=1000`, { headers: { authorization: 'Bearer right-token' } });
    const audit = await res.json();
    const refusals = audit.entries.filter((a) => a.kind === 'auth_failed' && a.path === '/ws');
    assert.ok(refusals.length >= 1 && refusals.length <= 2, `auth failures: ${refusals.length}`);
    await assert.rejects(client.publish([ev('nope', 1)]), (e) => e.status === 401);
  } finally {
    client.close();
    await hub.stop();
  }
});
