// Loaded with `node --import`: makes importing the `ws` package an error, so a test can prove
// the client used the runtime's own WebSocket and never fell back to `ws`.
import { register } from 'node:module';

const hook = `export async function resolve(specifier, context, next) {
  if (specifier === 'ws') throw new Error('the ws package was imported although a global WebSocket exists');
  return next(specifier, context);
}`;
register('data:text/javascript,' + encodeURIComponent(hook));
