// Starts a real hub for the browser tests: `sightline serve --port 0 --db <tmp>/db.sqlite`, and
// waits for its "sightline listening on http://…" line. The binary is target/debug/sightline
// (repo root) or $SIGHTLINE_BIN. SIGHTLINE_TEST_HUB=mock uses the in-memory dev stand-in instead
// (only for working on the UI without a Rust build; CI uses the real hub).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');

export const TEST_PLUGINS = (dir) => {
  // A crashing plugin (exits without answering) and a hanging one (never answers) next to the
  // real sample, so the tests can show that failures come back as error answers.
  const crash = path.join(dir, 'crash-plugin.py');
  fs.writeFileSync(crash, 'import sys\nsys.stdin.readline()\nsys.stderr.write("boom: plugin crashed\\n")\nsys.exit(3)\n');
  const hang = path.join(dir, 'hang-plugin.py');
  fs.writeFileSync(hang, 'import sys, time\nsys.stdin.readline()\ntime.sleep(3600)\n');
  return JSON.stringify([
    { name: 'sample-analyzer', command: ['python3', path.join(repoRoot, 'plugins', 'sample-analyzer.py')], timeout_ms: 10000, description: 'slowest calls, error summary, cost by agent' },
    { name: 'crashy', command: ['python3', crash], timeout_ms: 5000, description: 'exits without answering' },
    { name: 'hangs', command: ['python3', hang], timeout_ms: 1500, description: 'never answers' },
  ]);
};

export async function startHub({ plugins = true, port = 0, dir: keep = null, args: extra = [] } = {}) {
  // `dir` reuses a directory (a restart over the same database and config); `args` adds flags.
  const dir = keep ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sightline-ui-'));
  const env = { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' };
  // Hermetic: never the machine's own config file (~/.config/sightline/config.toml may hold
  // another version's settings); a test that wants one passes `--config` in `args`.
  env.XDG_CONFIG_HOME = path.join(dir, 'xdg-config');
  delete env.SIGHTLINE_CONFIG;
  if (plugins) env.SIGHTLINE_PLUGINS = TEST_PLUGINS(dir);
  let cmd, args;
  if (process.env.SIGHTLINE_TEST_HUB === 'mock') {
    cmd = process.execPath; args = [path.join(here, 'mock-hub.mjs'), String(port), '--empty'];
  } else {
    cmd = process.env.SIGHTLINE_BIN ?? path.join(repoRoot, 'target', 'debug', 'sightline');
    if (!fs.existsSync(cmd)) throw new Error(`hub binary not found at ${cmd}: run \`cargo build\` first (or set SIGHTLINE_BIN)`);
    args = ['serve', '--port', String(port), '--db', path.join(dir, 'db.sqlite'), ...extra];
  }
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error('hub did not start in 20 s:\n' + out + log)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/sightline listening on (http:\/\/[^\s]+)/);
      if (m) { clearTimeout(t); resolve(m[1].replace(/\/$/, '')); }
    });
    child.on('exit', (code) => { clearTimeout(t); reject(new Error(`hub exited with ${code}:\n${out}${log}`)); });
  });
  child.stdout.resume();
  return {
    url, dir, child,
    log: () => log,
    async post(events) {
      const res = await fetch(url + '/api/v1/events', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) });
      const body = await res.json();
      if (res.status !== 202) throw new Error(`POST /api/v1/events → ${res.status}: ${JSON.stringify(body)}`);
      return body;
    },
    async get(p) {
      const res = await fetch(url + p);
      if (!res.ok) throw new Error(`GET ${p} → ${res.status}`);
      return res.json();
    },
    async stop({ keep = false } = {}) {
      child.kill('SIGTERM');
      await new Promise((r) => { if (child.exitCode != null) r(); else { child.once('exit', r); setTimeout(() => { child.kill('SIGKILL'); r(); }, 3000); } });
      if (!keep) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
