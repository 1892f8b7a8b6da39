// Runs a real Python program under the real sightline agent for the dashboard tests. The agent
// is the one `python/run-tests.sh` builds into python/target/venvs/3.1x (scripts/test.sh runs
// that suite before this one); $SIGHTLINE_TEST_PYTHON names another interpreter that has it.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './hub.mjs';

export function agentPython() {
  const candidates = [process.env.SIGHTLINE_TEST_PYTHON, ...['3.12', '3.13', '3.14', '3.11'].map(
    (v) => path.join(repoRoot, 'python', 'target', 'venvs', v, 'bin', 'python'))].filter(Boolean);
  for (const py of candidates) {
    if (!fs.existsSync(py)) continue;
    try {
      execFileSync(py, ['-c', 'import sightline._native'], { stdio: 'ignore', env: { ...process.env, SIGHTLINE_DISABLE: '1' } });
      return py;
    } catch { /* not built for this one */ }
  }
  throw new Error('no Python with the sightline agent built: run `bash python/run-tests.sh` first '
    + '(or set SIGHTLINE_TEST_PYTHON to an interpreter where `import sightline._native` works)');
}

/** Starts `python -m sightline <script>` against the hub; returns {child, stop()}. */
export function runTraced(hubUrl, runId, source, extraEnv = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sightline-ui-py-'));
  const script = path.join(dir, 'app.py');
  fs.writeFileSync(script, source);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SIGHTLINE_')));
  Object.assign(env, { SIGHTLINE_URL: hubUrl, SIGHTLINE_RUN_ID: runId, SIGHTLINE_HEARTBEAT_S: '0.5', SIGHTLINE_SPOOL_DIR: path.join(dir, 'spool') }, extraEnv);
  const child = spawn(agentPython(), ['-m', 'sightline', script], { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  child.stdout.resume();
  return {
    child,
    stderr: () => err,
    async stop() {
      if (child.exitCode == null) {
        child.kill('SIGTERM');
        await new Promise((r) => child.once('exit', r));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
