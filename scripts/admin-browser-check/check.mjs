// Opens Banyan's migration admin page (`/admin/migration` of `banyan dev`) in headless Chromium
// and checks that it renders every migrated field with its mode and the retirable endpoints,
// then that it updates without a reload after a shadow comparison is recorded in the engine.
//
// The gateway's request path does not drive the migration engine yet on this branch, so the
// comparison is recorded through `banyan dev`'s `POST /admin/migration/dev/shadow`, which runs it
// through the engine's own executor (README, "Migration report and admin page"). Once GraphQL
// requests shadow fields, send a request under a shadow routing table here instead.
// Usage: node check.mjs http://127.0.0.1:4000/graphql [screenshot.png]
import { chromium } from 'playwright-core';

const [graphqlUrl, screenshot = 'admin.png'] = process.argv.slice(2);
const origin = new URL(graphqlUrl).origin;
const pageUrl = `${origin}/admin/migration`;

// The declarations (migration/src/banyan.rs), each on its declared default backend, the service;
// with every field there, the legacy views and legacy draft writes are what nothing needs.
const declared = [
  'Template.stats',
  'Template.draft',
  'Template.recentEvents',
  'Mutation.updateDraftBlock',
  'Mutation.insertDraftBlock',
  'Mutation.deleteDraftBlock',
];
const retirable = [
  'DELETE /api/v1/templates/{id}/draft/blocks/{block_id}/',
  'GET /api/v1/templates/{id}/analytics/',
  'GET /api/v1/templates/{id}/draft/',
  'GET /api/v1/templates/{id}/events/',
  'PATCH /api/v1/templates/{id}/draft/blocks/{block_id}/',
  'POST /api/v1/templates/{id}/draft/blocks/',
];
const TIMEOUT = 20000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  // Self-contained: any request off the gateway's origin fails the check.
  const foreign = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(origin)) foreign.push(request.url());
  });
  await page.goto(pageUrl);
  await page.waitForFunction((n) => document.querySelectorAll('#fields tr[data-field]').length === n, declared.length, {
    timeout: TIMEOUT,
  });
  const rows = await page.$$eval('#fields tr[data-field]', (trs) =>
    trs.map((tr) => ({ key: tr.dataset.field, mode: tr.dataset.mode, mismatched: tr.dataset.mismatched })));
  const keys = rows.map((r) => r.key);
  if (JSON.stringify(keys) !== JSON.stringify(declared)) {
    throw new Error(`the page lists ${keys.join(', ')}; expected ${declared.join(', ')}`);
  }
  const notService = rows.filter((r) => r.mode !== 'service');
  if (notService.length) throw new Error(`fields not on their default backend: ${JSON.stringify(notService)}`);
  const shown = await page.$$eval('#retirable li[data-endpoint]', (lis) => lis.map((li) => li.dataset.endpoint));
  if (JSON.stringify(shown) !== JSON.stringify(retirable)) {
    throw new Error(`retirable endpoints shown: ${shown.join(', ')}; expected ${retirable.join(', ')}`);
  }
  const before = rows.find((r) => r.key === 'Template.stats').mismatched;
  if (before !== '0') throw new Error(`Template.stats starts with ${before} mismatches`);
  console.log(`the page renders ${keys.length} fields (all on their service) and ${shown.length} retirable endpoints`);

  // Traffic: one shadow comparison of Template.stats whose answers differ at `sent`.
  await page.evaluate(() => { window.notReloaded = true; });
  const recorded = await fetch(`${origin}/admin/migration/dev/shadow`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ key: 'Template.stats', operation: 'TemplateList', primary: { sent: 5 }, secondary: { sent: 6 } }),
  });
  if (recorded.status !== 202) throw new Error(`recording a shadow answered ${recorded.status}`);

  await page.waitForFunction(
    () => document.querySelector('#fields tr[data-field="Template.stats"]')?.dataset.mismatched === '1' &&
      document.querySelector('#exemplars tr[data-exemplar="Template.stats"]')?.textContent.includes('sent'),
    null,
    { timeout: TIMEOUT },
  );
  if (!(await page.evaluate(() => window.notReloaded === true))) throw new Error('the page reloaded instead of updating');
  const row = await page.textContent('#fields tr[data-field="Template.stats"]');
  const exemplar = await page.textContent('#exemplars tr[data-exemplar="Template.stats"]');
  if (!row.includes('0.0%')) throw new Error(`the match rate is not shown as 0.0%: ${row}`);
  console.log(`after the comparison, without a reload: ${row.replace(/\s+/g, ' ').trim()} | ${exemplar.replace(/\s+/g, ' ').trim()}`);
  if (foreign.length) throw new Error(`the page requested other origins: ${foreign.join(', ')}`);
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
