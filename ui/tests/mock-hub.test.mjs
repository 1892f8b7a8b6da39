// The dev-only mock hub (tests/mock-hub.mjs) against the real one for workflows: the same
// workflow updates go to the real hub, its stored events are replayed into the mock, and
// GET /api/v1/workflows and /api/v1/workflows/{id} must answer with the same shapes and the same
// steps, attempts and progress (so the Workflows page looks the same on either). Needs the real
// hub ($SIGHTLINE_BIN or target/debug/sightline); never run with SIGHTLINE_TEST_HUB=mock, which
// would compare the mock with itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub } from './hub.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

async function startMock() {
  const child = spawn(process.execPath, [path.join(here, 'mock-hub.mjs'), '0', '--empty'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('mock hub did not start in 10 s: ' + out)), 10000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`mock hub exited with ${code}: ${out}`)); });
  });
  return { url, stop: () => child.kill('SIGTERM') };
}

async function get(url) {
  const res = await fetch(url);
  return { status: res.status, body: await res.json() };
}

const keys = (o) => Object.keys(o).sort();

test('the mock hub serves workflows as the real hub does', { skip: process.env.SIGHTLINE_TEST_HUB === 'mock' ? 'SIGHTLINE_TEST_HUB=mock: nothing real to compare with' : false }, async () => {
  const hub = await startHub({ plugins: false });
  const mock = await startMock();
  try {
    const t0 = Date.parse('2026-11-30T10:00:00.000Z');
    const at = (s) => new Date(t0 + s * 1000).toISOString();
    const updates = {
      'wf-retried': [
        { type: 'status', timestamp: at(0), data: { status: 'running', message: 'start' } },
        { type: 'status', timestamp: at(1), data: { step: 'build', status: 'running' } },
        { type: 'progress', timestamp: at(2), data: { step: 'build', progress: 50 } },
        { type: 'status', timestamp: at(3), data: { step: 'build', status: 'success' } },
        { type: 'status', timestamp: at(4), data: { step: 'test', status: 'running' } },
        { type: 'error', timestamp: at(5), data: { step: 'test', error: 'flaky' } },
        { type: 'status', timestamp: at(6), data: { step: 'test', status: 'running' } },
        { type: 'status', timestamp: at(7), data: { step: 'deploy', status: 'running', attempt: 2 } },
        { type: 'status', timestamp: at(8), data: { step: 'deploy', status: 'failed', attempt: 1, duration_ms: 400 } },
        { type: 'complete', timestamp: at(9), data: { status: 'failed', error: 'deploy failed' } },
      ],
      'wf-reported': [
        { type: 'progress', timestamp: at(20), data: { progress: 30 } },
      ],
    };
    for (const [id, list] of Object.entries(updates)) {
      const res = await fetch(`${hub.url}/api/v1/workflows/${id}/updates`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(list) });
      assert.equal(res.status, 202, await res.text());
    }
    const stored = (await hub.get('/api/v1/search?order=asc&limit=1000')).events;
    assert.ok(stored.length >= 11, `stored ${stored.length}`);
    // Seqs must line up for first_seq/last_seq to compare: the mock numbers from 1 as well.
    assert.deepEqual(stored.map((e) => e.seq), stored.map((_, i) => i + 1));
    const res = await fetch(`${mock.url}/api/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(stored.map(({ seq, ...e }) => e)) });
    assert.equal(res.status, 202);

    const real = await get(`${hub.url}/api/v1/workflows?limit=1`);
    const fake = await get(`${mock.url}/api/v1/workflows?limit=1`);
    assert.equal(real.status, 200);
    assert.deepEqual(keys(fake.body), keys(real.body));
    assert.equal(fake.body.workflows.length, 1);
    assert.equal(fake.body.workflows[0].run.run_id, real.body.workflows[0].run.run_id, 'newest activity first');
    assert.equal(typeof fake.body.next_cursor, 'string', 'a second page is announced');
    const next = await get(`${mock.url}/api/v1/workflows?limit=1&cursor=${fake.body.next_cursor}`);
    assert.equal(next.body.workflows[0].run.run_id, 'wf-retried');
    assert.equal(next.body.next_cursor, null);
    assert.equal((await get(`${mock.url}/api/v1/workflows?limit=x`)).status, 400);

    for (const id of Object.keys(updates)) {
      const r = (await get(`${hub.url}/api/v1/workflows/${id}`)).body;
      const f = (await get(`${mock.url}/api/v1/workflows/${id}`)).body;
      assert.deepEqual(keys(f), keys(r));
      assert.deepEqual(keys(f.run), keys(r.run), 'the run row has the real fields');
      assert.equal(f.run.status, r.run.status);
      for (const k of ['progress', 'steps', 'steps_omitted', 'steps_retried']) assert.deepEqual(f[k], r[k], `${id}: ${k}`);
    }
    const retried = (await get(`${hub.url}/api/v1/workflows/wf-retried`)).body;
    // What the comparison covers, so a mock and hub that agreed on nothing could not pass.
    assert.deepEqual(retried.steps.map((s) => [s.name, s.status, s.attempt_count]), [['build', 'success', 1], ['test', 'failed', 2], ['deploy', 'failed', 2]]);
    assert.equal(retried.progress.basis, 'steps');

    const missing = await get(`${mock.url}/api/v1/workflows/nope`);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'not_found');
  } finally {
    mock.stop();
    await hub.stop();
  }
});
