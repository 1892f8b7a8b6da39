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
