// The real hub binary for the client's tests (Node and browser): `sightline serve` on a port,
// with its URL read from the "sightline listening on" line, and a few helpers around it.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export function hubBinary() {
  const bin = process.env.SIGHTLINE_BIN ?? join(REPO, 'target/debug/sightline');
  if (!existsSync(bin)) execFileSync('cargo', ['build', '-q', '-p', 'sightline'], { cwd: REPO, stdio: 'inherit' });
  return bin;
}

export async function freePort() {
  return new Promise((res) => {
    const s = createNetServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** A real hub: `sightline serve` with these extra arguments, on `port` (0: any). */
export async function startHub({ db, port = 0, args = [], token } = {}) {
  const proc = spawn(hubBinary(), ['serve', '--port', String(port), '--source', 'http', '--db', db, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SIGHTLINE_TOKEN: '', HOME: dirname(db), XDG_CONFIG_HOME: dirname(db), RUST_LOG: 'warn' },
  });
  let log = '';
  proc.stderr.on('data', (d) => (log += d));
  const line = await new Promise((res, rej) => {
    const rl = createInterface({ input: proc.stdout });
    rl.once('line', (l) => res(l));
    proc.once('exit', (c) => rej(new Error(`hub exited with ${c}: ${log}`)));
  });
  assert.match(line, /^sightline listening on /);
  const url = line.split(' ').pop().replace(/\/$/, '');
  const headers = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  return {
    url,
    proc,
    audit: () => {
      const file = `${db}.audit.jsonl`;
      return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
    },
    /** POST /api/v1/events from Node (not from the page): the "other producer". */
    async post(events) {
      const res = await fetch(url + '/api/v1/events', { method: 'POST', headers, body: JSON.stringify(events) });
      const body = await res.json();
      assert.equal(res.status, 202, JSON.stringify(body));
      return body.seqs;
    },
    async get(path) {
      const res = await fetch(url + path, { headers });
      assert.equal(res.status, 200, path);
      return res.json();
    },
    stop: (signal = 'SIGTERM') =>
      new Promise((r) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return r();
        proc.once('exit', r);
        proc.kill(signal);
      }),
  };
}

/**
 * A private CA and a certificate for 127.0.0.1 / localhost signed by it, made with the openssl
 * CLI in `dir`: { ca, cert, key } paths. The CA is distinct from the leaf because TLS clients
 * refuse a CA certificate used as the server's own.
 */
export function makeTestCa(dir) {
  const p = (n) => join(dir, n);
  const ssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=sightline test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', p('ca.key'), '-out', p('ca.pem'));
  ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', p('key.pem'), '-out', p('leaf.csr'));
  writeFileSync(p('leaf.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n'
    + 'extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl('x509', '-req', '-in', p('leaf.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', p('leaf.ext'), '-out', p('cert.pem'));
  return { ca: p('ca.pem'), cert: p('cert.pem'), key: p('key.pem') };
}
