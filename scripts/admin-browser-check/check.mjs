// Opens Banyan's migration admin page (`/admin/migration` of `banyan dev`) in headless Chromium
// and checks, with real traffic through the gateway's migration engine:
// 1. the page renders every migrated field on its default backend and the retirable endpoints;
// 2. after the routing table `banyan dev` printed is rewritten to put `Template.stats` in shadow
//    mode (the monolith serves, the service is compared on every request) and the gateway has
//    reloaded it, the contract's TemplateList operation, sent with the dev token, is shadowed:
//    the page, polling without a reload, shows the mode, compared calls growing and a match rate;
// 3. after the devstack's dual write to the monolith is turned off (`PUT /__devstack/legacy-sync`)
//    while its event generator keeps appending events, the legacy analytics fall behind and the
//    page shows a mismatch exemplar of TemplateList at `templates.edges.N.node.stats`, the
//    monolith's counts below the service's.
// Every wait is bounded; anything unexpected fails the check.
// Usage: node check.mjs <banyan dev's start-up output file> [screenshot.png]
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const [startupFile, screenshot = 'admin.png'] = process.argv.slice(2);
if (!startupFile) throw new Error('usage: node check.mjs <banyan dev start-up output> [screenshot.png]');
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

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
// The event counts of `TemplateStats`; the monolith's fall behind when the dual write is off.
const COUNTS = ['sent', 'delivered', 'opened', 'clicked', 'bounced', 'unique_opens'];
const TIMEOUT = 20000; // each wait for the page or the gateway
const MISMATCH_TIMEOUT = 45000; // waiting for the generator's events to reach listed templates
const STATS_ROW = '#fields tr[data-field="Template.stats"]';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// What `banyan dev` printed at start: its URLs, the dev credential and the routing table's path.
async function startup() {
  const patterns = {
    graphql: /GraphiQL:\s+(http:\/\/\S+\/graphql)/,
    authorization: /Authorization: (Token \S+)/,
    monolith: /Monolith \(REST\):\s+(http:\/\/[^/\s]+)\/api\/v1\//,
    routingTable: /Routing table:\s+(\S+) \(edit it/,
  };
  let text = '';
  for (let attempt = 0; attempt < 100; attempt += 1) {
    text = await readFile(startupFile, 'utf8');
    const found = Object.fromEntries(Object.entries(patterns).map(([name, re]) => [name, text.match(re)?.[1]]));
    if (Object.values(found).every(Boolean)) return found;
    await sleep(100);
  }
  throw new Error(`banyan dev's start-up output lacks a URL, the credential or the routing table:\n${text}`);
}

const dev = await startup();
const origin = new URL(dev.graphql).origin;
const pageUrl = `${origin}/admin/migration`;

async function adminJson() {
  const response = await fetch(`${origin}/admin/migration.json`, { signal: AbortSignal.timeout(TIMEOUT) });
  if (!response.ok) throw new Error(`/admin/migration.json answered ${response.status}`);
  return response.json();
}

async function graphql(body) {
  const response = await fetch(dev.graphql, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', authorization: dev.authorization },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT),
  });
  const text = await response.text();
  if (response.status !== 200) throw new Error(`${body.operationName} answered ${response.status}: ${text}`);
  const result = JSON.parse(text);
  if (result.errors) throw new Error(`${body.operationName} answered errors: ${JSON.stringify(result.errors)}`);
  return result;
}

// The contract's operations, as the frontend sends them.
const contract = (component, operation) => readFile(join(root, 'frontend-contract', component, `${operation}.graphql`), 'utf8');
const workspaceSwitcher = await contract('WorkspaceSwitcher', 'WorkspaceSwitcher');
const templateList = await contract('TemplateList', 'TemplateList');
const workspaceIds = (await graphql({ query: workspaceSwitcher, operationName: 'WorkspaceSwitcher' })).data.workspaces.map((w) => w.id);
if (!workspaceIds.length) throw new Error('the dev user has no workspace');

// One TemplateList per workspace of the dev user; each response must say (extensions.routing)
// that the monolith served every `stats` it resolved, shadowed by the service.
async function templateLists() {
  let stats = 0;
  for (const workspaceId of workspaceIds) {
    const result = await graphql({ query: templateList, operationName: 'TemplateList', variables: { workspaceId } });
    for (const served of result.extensions?.routing ?? []) {
      if (served.field !== 'Template.stats') continue;
      if (served.backend !== 'legacy' || served.mode !== 'shadow' || served.shadow !== 'service') {
        throw new Error(`Template.stats was not served in shadow by the monolith: ${JSON.stringify(served)}`);
      }
      stats += 1;
    }
  }
  if (stats === 0) throw new Error('TemplateList resolved no Template.stats in shadow (extensions.routing)');
  return stats;
}

// Sends TemplateList round after round while `wait` runs; a failed request fails the check, and
// so does `wait` failing, naming `what` it awaited.
async function withTraffic(what, wait) {
  let stop = false;
  let failure;
  let rounds = 0;
  const traffic = (async () => {
    while (!stop) {
      try {
        await templateLists();
        rounds += 1;
      } catch (error) {
        failure = error;
        return;
      }
      await sleep(250);
    }
  })();
  try {
    return await Promise.race([
      wait().catch((error) => { throw new Error(`waiting for ${what}: ${error.message}`); }),
      traffic.then(() => { if (failure) throw failure; }).then(() => new Promise(() => {})),
    ]);
  } finally {
    stop = true;
    await traffic;
    if (failure) throw failure;
    console.log(`  (${rounds} rounds of TemplateList over ${workspaceIds.length} workspaces)`);
  }
}

// The row of Template.stats: its counts (data attributes) and its cells as shown.
const statsRow = (page) => page.$eval(STATS_ROW, (tr) => {
  const cells = [...tr.children].map((td) => td.textContent.replace(/\s+/g, ' ').trim());
  return {
    mode: tr.dataset.mode,
    compared: Number(tr.dataset.compared),
    mismatched: Number(tr.dataset.mismatched),
    cells,
    text: cells.join(' | '),
  };
});

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

  // 1. It renders.
  await page.goto(pageUrl);
  await page.waitForFunction((n) => document.querySelectorAll('#fields tr[data-field]').length === n, declared.length, {
    timeout: TIMEOUT,
  });
  const rows = await page.$$eval('#fields tr[data-field]', (trs) =>
    trs.map((tr) => ({ key: tr.dataset.field, mode: tr.dataset.mode, compared: tr.dataset.compared })));
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
  const uncompared = rows.filter((r) => r.compared !== '0');
  if (uncompared.length) throw new Error(`fields compared before any shadow: ${JSON.stringify(uncompared)}`);
  console.log(`the page renders ${keys.length} fields (all on their service) and ${shown.length} retirable endpoints`);
  // From here on the page must update by polling; a reload would lose this flag.
  await page.evaluate(() => { window.notReloaded = true; });

  // 2. Template.stats in shadow, the monolith serving, through the table `banyan dev` watches.
  const before = await adminJson();
  const original = await readFile(dev.routingTable, 'utf8');
  const section = /\[fields\."Template\.stats"\]\nmode = "service"\n/;
  if (!section.test(original)) throw new Error(`${dev.routingTable} has no \`Template.stats\` on the service:\n${original}`);
  const shadowTable = original.replace(
    section,
    '[fields."Template.stats"]\nmode = "shadow"\nprimary = "legacy"\nsample_rate = 1\n',
  );
  // Written whole and renamed into place, so a reload never reads half a file.
  await writeFile(`${dev.routingTable}.next`, shadowTable);
  await rename(`${dev.routingTable}.next`, dev.routingTable);
  let inForce;
  for (let attempt = 0; attempt < TIMEOUT / 100 && !inForce; attempt += 1) {
    const status = await adminJson();
    if (status.reload.rejections > before.reload.rejections) {
      throw new Error(`the gateway rejected the shadow table: ${status.reload.last_rejection}`);
    }
    const route = status.table.routes['Template.stats'];
    if (route.mode === 'shadow' && route.primary === 'legacy' && route.sample_rate === 1 &&
        status.reload.reloads > before.reload.reloads) {
      inForce = status;
    } else {
      await sleep(100);
    }
  }
  if (!inForce) throw new Error(`the shadow table was not in force within ${TIMEOUT} ms`);
  console.log(`the shadow table is in force (${inForce.reload.reloads} reload, from ${inForce.table.origin})`);
  await page.waitForFunction((row) => document.querySelector(row)?.dataset.mode === 'shadow', STATS_ROW, { timeout: TIMEOUT });

  // Real requests; the comparisons finish after each response, so the page is polled for them.
  const first = await withTraffic('the page to show a compared call', async () => {
    await page.waitForFunction((row) => Number(document.querySelector(row)?.dataset.compared) > 0, STATS_ROW, {
      timeout: TIMEOUT,
    });
    return statsRow(page);
  });
  const grown = await withTraffic('the page to show more compared calls', async () => {
    await page.waitForFunction(
      ([row, seen]) => Number(document.querySelector(row)?.dataset.compared) > seen,
      [STATS_ROW, first.compared],
      { timeout: TIMEOUT },
    );
    return statsRow(page);
  });
  // The page's columns: field, mode, service share, compared, match rate, ... The match rate is
  // matched / compared, recounted here from the row's counts.
  const share = (grown.compared - grown.mismatched) / grown.compared;
  const matchRate = `${(share * 100).toFixed(share > 0 && share < 0.01 ? 2 : 1)}%`;
  if (grown.cells[3] !== String(grown.compared) || grown.cells[4] !== matchRate) {
    throw new Error(`the page does not show ${grown.compared} compared at a ${matchRate} match rate: ${grown.text}`);
  }
  if (grown.mismatched === grown.compared) throw new Error(`with the dual write on, nothing matched: ${grown.text}`);
  console.log(`compared calls grow on the page (${first.compared} → ${grown.compared}), match rate ${matchRate}: ${grown.text}`);

  // 3. The monolith falls behind: the dual write off, the generator's events reach the services
  // only. (With it on, an event landing between the two calls, or one leaving the 7-day window,
  // can make a rare mismatch either way; the ones looked for here are after the flip, with the
  // monolith's count below the service's.)
  const monolithAdmin = `${dev.monolith}/__devstack/legacy-sync`;
  const flippedAt = Date.now();
  const turnedOff = await fetch(monolithAdmin, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ enabled: false }),
    signal: AbortSignal.timeout(TIMEOUT),
  });
  if (!turnedOff.ok) throw new Error(`PUT ${monolithAdmin} answered ${turnedOff.status}`);
  const sync = await (await fetch(monolithAdmin, { signal: AbortSignal.timeout(TIMEOUT) })).json();
  if (sync.enabled !== false) throw new Error(`the dual write is still on: ${JSON.stringify(sync)}`);
  const mismatchedAtFlip = (await adminJson()).counters['Template.stats'].counters.mismatched;
  // The page's exemplar rows: field, operation, field path, differences (one per item, as
  // `path: legacy N ≠ service M`), timings, when.
  const behind = await withTraffic('the page to show a mismatch exemplar with the monolith behind', async () => {
    const handle = await page.waitForFunction(
      ([row, seen, since, counts]) => {
        if (!(Number(document.querySelector(row)?.dataset.mismatched) > seen)) return null;
        for (const tr of document.querySelectorAll('#exemplars tr[data-exemplar="Template.stats"]')) {
          const cells = [...tr.children];
          const at = Date.parse(cells[5]?.textContent.replace(/(\.\d{3})\d*Z$/, '$1Z'));
          if (cells[1]?.textContent !== 'TemplateList' || !(at >= since)) continue;
          for (const li of cells[3].querySelectorAll('li')) {
            const m = li.textContent.match(/^\$\.(\w+): legacy (\d+) ≠ service (\d+)$/);
            if (m && counts.includes(m[1]) && Number(m[2]) < Number(m[3])) {
              return { fieldPath: cells[2].textContent, at: cells[5].textContent, difference: li.textContent };
            }
          }
        }
        return null;
      },
      [STATS_ROW, mismatchedAtFlip, flippedAt, COUNTS],
      { timeout: MISMATCH_TIMEOUT, polling: 200 },
    );
    return handle.jsonValue();
  });
  if (!(await page.evaluate(() => window.notReloaded === true))) throw new Error('the page reloaded instead of updating');
  if (!/^templates\.edges\.\d+\.node\.stats$/.test(behind.fieldPath)) {
    throw new Error(`the exemplar is not at a template's stats in TemplateList: ${JSON.stringify(behind)}`);
  }
  // The same exemplar in the JSON, with the monolith serving and the service compared.
  const recorded = (await adminJson()).exemplars['Template.stats'].find((e) => e.at === behind.at && e.field_path === behind.fieldPath);
  if (!recorded || recorded.operation !== 'TemplateList' || recorded.primary !== 'legacy' || recorded.secondary !== 'service' ||
      !recorded.differences.some((d) => `${d.path}: legacy ${d.primary} ≠ service ${d.secondary}` === behind.difference)) {
    throw new Error(`the page's exemplar ${JSON.stringify(behind)} is not in the JSON as behind: ${JSON.stringify(recorded)}`);
  }
  const after = await statsRow(page);
  console.log(`with the dual write off, without a reload: ${after.text}`);
  console.log(`  exemplar: TemplateList at ${behind.fieldPath}, ${behind.difference} (${behind.at})`);
  if (foreign.length) throw new Error(`the page requested other origins: ${foreign.join(', ')}`);
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
