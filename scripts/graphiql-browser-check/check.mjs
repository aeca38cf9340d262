// Opens Banyan's GraphiQL page in headless Chromium with every request that would leave
// 127.0.0.1 blocked (and recorded), and checks that it works offline: GraphiQL and React load
// from the gateway itself; the docs explorer lists the fields of `Query` (graphql-js's standard
// introspection query worked); one tab per contract operation is open, with its variables; the
// AnalyticsDashboard tab runs and its answer carries `extensions.routing`; the TemplateEventsFeed
// tab runs a subscription over GraphiQL's own WebSocket client, with the token `banyan dev`
// pre-fills, until a live event arrives. It fails on any request that tried to leave the machine
// and on any Content-Security-Policy violation. Saves a screenshot.
// Usage: node check.mjs http://127.0.0.1:4000/graphql [screenshot.png]
import { chromium } from 'playwright-core';
import { readdirSync, readFileSync } from 'node:fs';

const [url, screenshot = 'graphiql.png'] = process.argv.slice(2);
const contract = new URL('../../frontend-contract/', import.meta.url);
// The contract's operations, by the names their documents give them (fragment files have none).
const operations = readdirSync(contract, { withFileTypes: true })
  .filter((entry) => entry.isDirectory())
  .flatMap((dir) => readdirSync(new URL(`${dir.name}/`, contract)).map((file) => new URL(`${dir.name}/${file}`, contract)))
  .filter((file) => file.pathname.endsWith('.graphql'))
  .flatMap((file) => [...readFileSync(file, 'utf8').matchAll(/^\s*(?:query|mutation|subscription)\s+(\w+)/gm)].map((m) => m[1]));
if (operations.length === 0) throw new Error(`no operations found in ${contract.pathname}`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const leaks = [];
const violations = [];
try {
  const context = await browser.newContext();
  // The network is blocked: anything not for the gateway on 127.0.0.1 is refused and recorded.
  await context.route('**/*', (route) => {
    const target = new URL(route.request().url());
    if (target.hostname === '127.0.0.1') return route.continue();
    leaks.push(route.request().url());
    return route.abort('internetdisconnected');
  });
  const page = await context.newPage();
  await page.exposeFunction('reportViolation', (text) => violations.push(text));
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (event) =>
      window.reportViolation(`${event.violatedDirective}: ${event.blockedURI || 'inline'} (${event.sourceFile}:${event.lineNumber})`),
    );
  });
  const response = await page.goto(url);
  const policy = response.headers()['content-security-policy'] ?? '';
  if (!policy.includes("script-src 'self'") || /https?:\/\//.test(policy)) {
    throw new Error(`the page's Content-Security-Policy allows more than the gateway: ${policy}`);
  }

  // The docs explorer: root types, then Query's fields. Empty when introspection fails.
  await page.click('.graphiql-sidebar button[aria-label*="Documentation Explorer"]', { timeout: 20000 });
  await page.click('.graphiql-doc-explorer-content a.graphiql-doc-explorer-type-name:text-is("Query")', {
    timeout: 20000,
  });
  await page.waitForSelector('.graphiql-doc-explorer-field-name', { timeout: 20000 });
  const title = await page.textContent('.graphiql-doc-explorer-title');
  const fields = await page.$$eval('.graphiql-doc-explorer-field-name', (nodes) => nodes.map((n) => n.textContent));
  const expected = ['me', 'workspaces', 'templates'];
  if (title?.trim() !== 'Query' || !expected.every((field) => fields.includes(field))) {
    throw new Error(`the docs explorer shows ${title}: ${fields.join(', ')}; expected Query with ${expected.join(', ')}`);
  }
  console.log(`GraphiQL's docs explorer lists the fields of Query: ${fields.join(', ')}`);

  // One tab per contract operation, titled with its name.
  const tabs = await page.$$eval('.graphiql-tab .graphiql-tab-button', (nodes) => nodes.map((n) => n.textContent.trim()));
  const operationTabs = tabs.filter((tab) => operations.includes(tab));
  const missing = operations.filter((name) => !tabs.includes(name));
  if (missing.length) throw new Error(`no tab for ${missing.join(', ')}; tabs: ${tabs.join(', ')}`);
  console.log(`GraphiQL opens a tab per contract operation: ${operationTabs.join(', ')}`);

  const runTab = async (name, until) => {
    await page.click(`.graphiql-tab-button:text-is("${name}")`, { timeout: 20000 });
    // The editor shows the tab's document before Run knows its operation name.
    await page.waitForFunction(
      (operation) => document.querySelector('.graphiql-query-editor')?.textContent.includes(` ${operation}(`) ||
        document.querySelector('.graphiql-query-editor')?.textContent.includes(` ${operation} `),
      name,
      { timeout: 20000 },
    );
    await page.waitForTimeout(300);
    await page.click('.graphiql-execute-button', { timeout: 20000 });
    const result = () => page.evaluate(() => document.querySelector('.result-window')?.textContent.replace(/\s+/g, ' '));
    try {
      await page.waitForFunction(
        (needle) => document.querySelector('.result-window')?.textContent.includes(needle),
        until,
        { timeout: 20000 },
      );
    } catch (error) {
      await page.screenshot({ path: screenshot });
      throw new Error(`${name}: no ${until} in the result pane, which shows: ${(await result())?.slice(0, 500)}`);
    }
    return result();
  };
  // The pane renders only the lines in view, so the answer's extensions are read off the wire.
  const answer = page.waitForResponse(
    (r) => r.request().method() === 'POST' && (r.request().postData() ?? '').includes('AnalyticsDashboard'),
    { timeout: 20000 },
  );
  const dashboard = await runTab('AnalyticsDashboard', '"openRate"');
  const body = await (await answer).json();
  if (dashboard.includes('"errors"') || !body.data?.template || !Array.isArray(body.extensions?.routing)) {
    throw new Error(`AnalyticsDashboard did not answer with data and extensions.routing: ${JSON.stringify(body).slice(0, 300)}`);
  }
  const served = body.extensions.routing.map((r) => `${r.field} by ${r.backend}`).join(', ');
  console.log(`AnalyticsDashboard ran from its tab with its variables; extensions.routing: ${served}`);
  const feed = await runTab('TemplateEventsFeed', '"sequence"');
  console.log(`TemplateEventsFeed received a live event: ${feed.slice(0, 160)}…`);
  await page.screenshot({ path: screenshot });
} finally {
  await browser.close();
}
if (leaks.length) throw new Error(`requests tried to leave 127.0.0.1: ${leaks.join(', ')}`);
if (violations.length) throw new Error(`Content-Security-Policy violations: ${violations.join('; ')}`);
console.log('No request left 127.0.0.1, and the page broke none of its Content-Security-Policy.');
