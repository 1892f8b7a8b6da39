// Headless Chromium from the system (never downloaded), driven by playwright-core.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

/**
 * Where a test writes the screenshots the README and docs show. A plain test run writes them to
 * `ui/test-results/docs/` (git-ignored), so running the suite never dirties the tree;
 * `SIGHTLINE_UPDATE_SCREENSHOTS=1 npm test` retakes the committed ones in `docs/screenshots/`.
 */
export function docScreenshots() {
  const here = path.dirname(fileURLToPath(import.meta.url));
  return process.env.SIGHTLINE_UPDATE_SCREENSHOTS === '1'
    ? path.join(here, '..', '..', 'docs', 'screenshots')
    : path.join(here, '..', 'test-results', 'docs');
}

/**
 * The dashboard suites' browser: headless Chromium with one context (a 1440×900 light desktop
 * unless `viewport` and `colorScheme` say otherwise; `prepare(ctx)` runs before the page opens,
 * e.g. to grant permissions or add init scripts) and one page. With `errors` (an array), every
 * uncaught page error is pushed to it, and every console error but those `ignore` matches
 * (resource loads by default; `ignore: null` leaves the console unwatched), so a suite can assert
 * that the dashboard raised none.
 */
export async function openDashboard({
  errors = null,
  viewport = { width: 1440, height: 900 },
  colorScheme = 'light',
  ignore = /Failed to load resource/,
  prepare = null,
} = {}) {
  const browser = await launch();
  const ctx = await browser.newContext({ viewport, colorScheme });
  if (prepare) await prepare(ctx);
  const page = await ctx.newPage();
  if (errors) {
    page.on('pageerror', (e) => errors.push(e.message));
    if (ignore) page.on('console', (m) => { if (m.type() === 'error' && !ignore.test(m.text())) errors.push(m.text()); });
  }
  return { browser, ctx, page };
}

/**
 * Screenshots `<name>-light.png`, `<name>-dark.png` and `<name>-800.png` (light, 800 px wide)
 * of the page as it is, into `dir`; leaves the page light at 1440×900.
 */
export async function shootLightDarkNarrow(page, dir, name) {
  await page.screenshot({ path: path.join(dir, `${name}-light.png`) });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(dir, `${name}-dark.png`) });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 800, height: 900 });
  await page.screenshot({ path: path.join(dir, `${name}-800.png`) });
  await page.setViewportSize({ width: 1440, height: 900 });
}
