// Run by tls.test.mjs in a child Node (its own environment and flags): subscribes to a hub,
// publishes three events over `publishVia` (argv[3]), waits for them to come back, and prints
// one JSON line: { seqs, got, nativeSockets, globalWebSocket }. Trust comes only from the
// environment (SIGHTLINE_CA_FILE or NODE_EXTRA_CA_CERTS), never from an option.
import { SightlineClient } from '../dist/index.js';

const [url, publishVia] = process.argv.slice(2);
let nativeSockets = 0;
const Native = globalThis.WebSocket;
if (Native) {
  // Counts the sockets opened through the runtime's WebSocket (the spy is still that class).
  globalThis.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      nativeSockets++;
    }
  };
}
const run = `child-${process.pid}`;
const client = new SightlineClient({ url, publishVia });
const got = [];
const errors = [];
client.subscribe({ runs: [run] }, { onEvent: (e) => got.push(e.seq), onError: (e) => errors.push(String(e)) }, { since: 0 });
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: `timed out; errors: ${errors.join('; ')}`, got }));
  process.exit(1);
}, 20_000);
try {
  const seqs = await client.publish([0, 1, 2].map((i) => ({ source: 'custom', source_event: 'x', entity_type: 'log', run_id: run, title: `e${i}` })));
  while (got.length < 3 && errors.length === 0) await new Promise((r) => setTimeout(r, 25));
  console.log(JSON.stringify({ seqs, got, errors, nativeSockets, globalWebSocket: Boolean(Native) }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e), code: e.code }));
} finally {
  clearTimeout(timer);
  client.close();
}
