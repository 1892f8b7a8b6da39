// The Timeline's source picker and its URL, against a real hub (hub.mjs) in headless system
// Chromium:
//   1. On an empty hub (no stats name any source yet) the Source picker offers every word of the
//      schema's Source vocabulary, codex and gemini included: the list comes from the generated
//      types (src/lib/types.ts), not from a page's own list. So does the Runs page's select.
//   2. A Timeline link with a word the hub does not know (`?sources=claude,nosuch`) keeps the
//      known word in the filter and names the unknown one above the list, instead of dropping it
//      silently; the hub is asked only with the known word (no 400).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub } from './hub.mjs';
import { openDashboard } from './browser.mjs';

// Every word of `Source` in crates/sightline-schema (src/lib/generated/event.ts is generated
// from it), read from the generated file so this test follows the schema too.
const here = path.dirname(fileURLToPath(import.meta.url));
const generated = fs.readFileSync(path.join(here, '..', 'src', 'lib', 'generated', 'event.ts'), 'utf8');
const SCHEMA_SOURCES = [...generated.match(/export type Source = ([^;]+);/)[1].matchAll(/'([a-z_]+)'/g)].map((m) => m[1]);

let hub, browser, ctx, page;
const pageErrors = [];

before(async () => {
  hub = await startHub({ plugins: false });
  ({ browser, ctx, page } = await openDashboard({ errors: pageErrors }));
});

after(async () => {
  await ctx?.close();
  await browser?.close();
  await hub?.stop();
});

test('the schema names codex and gemini (the premise of the picker test)', () => {
  assert.ok(SCHEMA_SOURCES.includes('codex') && SCHEMA_SOURCES.includes('gemini'), `Source words: ${SCHEMA_SOURCES}`);
});

test('an empty hub: the Timeline source picker offers every schema source, codex and gemini included', async () => {
  const stats = await hub.get('/api/v1/stats');
  assert.deepEqual(Object.keys(stats.by_source ?? {}), [], 'the hub is empty: its stats name no source');
  await page.goto('about:blank');
  await page.goto(`${hub.url}/#/timeline`);
  await page.waitForSelector('[data-filter="sources"] button', { timeout: 10000 });
  // The stats and agents answers arrive after the first paint; wait for them before reading.
  await page.waitForLoadState('networkidle');
  await page.click('[data-filter="sources"] button');
  await page.waitForSelector('[data-filter="sources"] [data-option]', { timeout: 5000 });
  const offered = await page.$$eval('[data-filter="sources"] [data-option]', (els) => els.map((e) => e.getAttribute('data-option')));
  assert.deepEqual([...offered].sort(), [...SCHEMA_SOURCES].sort(), 'the picker offers exactly the schema\'s sources');
  // Picking codex filters by it: the URL carries it and the hub answers (no error shown).
  await page.click('[data-filter="sources"] [data-option="codex"]');
  await page.waitForFunction(() => location.hash.includes('sources=codex'), null, { timeout: 5000 });
  await page.waitForSelector('text=No events match these filters.', { timeout: 10000 });
  assert.deepEqual(pageErrors, []);
});

test('an empty hub: the Runs page offers codex and gemini too', async () => {
  await page.goto('about:blank');
  await page.goto(`${hub.url}/#/runs`);
  await page.waitForSelector('select[aria-label="Source"]', { timeout: 10000 });
  const options = await page.$$eval('select[aria-label="Source"] option', (els) => els.map((e) => e.textContent.trim()));
  for (const s of SCHEMA_SOURCES) assert.ok(options.includes(s), `Runs source select lacks ${s}: ${options}`);
});

test('a Timeline link with an unknown source keeps the known one and says which word it left out', async () => {
  const searches = [];
  page.on('request', (r) => { if (r.url().includes('/api/v1/search')) searches.push(r.url()); });
  await page.goto('about:blank');
  await page.goto(`${hub.url}/#/timeline?sources=claude,nosuch&statuses=bogus`);
  const note = await page.waitForSelector('[data-testid="timeline-ignored"]', { timeout: 10000 });
  const text = await note.textContent();
  assert.match(text, /source “nosuch”/);
  assert.match(text, /status “bogus”/);
  assert.doesNotMatch(text, /claude/, 'the known word is not reported as left out');
  // The known word stays selected in the picker.
  const label = await page.textContent('[data-filter="sources"] button');
  assert.match(label, /claude/);
  // The hub was asked with the known word only, and answered (no error on the page).
  await page.waitForSelector('text=No events match these filters.', { timeout: 10000 });
  assert.ok(searches.length > 0, 'the Timeline searched');
  for (const u of searches) assert.doesNotMatch(decodeURIComponent(u), /nosuch|bogus/, `a search carried an unknown word: ${u}`);
  assert.equal(await page.$('.err-text'), null, 'no error shown');
  // Dismissing the note removes it.
  await page.click('[data-testid="timeline-ignored"] button');
  assert.equal(await page.$('[data-testid="timeline-ignored"]'), null);
  assert.deepEqual(pageErrors, []);
});
