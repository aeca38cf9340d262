// Opens Banyan's GraphiQL page in headless Chromium, checks that its docs explorer lists the
// fields of `Query` (GraphiQL loaded the schema with graphql-js's standard introspection query),
// runs a `templateEvents` subscription from it (GraphiQL's own WebSocket client, with the token
// `banyan dev` pre-fills), waits for a live event in the result pane, and saves a screenshot. The page's CDN assets are served from this
// folder's node_modules, so no internet is needed.
// Usage: node check.mjs http://127.0.0.1:4000/graphql [screenshot.png]
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';

const [url, screenshot = 'graphiql.png'] = process.argv.slice(2);
const assets = {
  'react@18/umd/react.development.js': 'node_modules/react/umd/react.development.js',
  'react-dom@18/umd/react-dom.development.js': 'node_modules/react-dom/umd/react-dom.development.js',
  'graphiql@4/graphiql.min.css': 'node_modules/graphiql/graphiql.min.css',
  'graphiql@4/graphiql.min.js': 'node_modules/graphiql/graphiql.min.js',
};
const ids = Array.from({ length: 30 }, (_, i) => Buffer.from(`Template:${i + 1}`).toString('base64'));
const query = `subscription { templateEvents(templateIds: ${JSON.stringify(ids)}) { sequence kind recipient templateId } }`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage();
  await page.route('https://**/*', (route) => {
    const asset = Object.keys(assets).find((path) => route.request().url().endsWith(path));
    if (!asset) return route.abort();
    return route.fulfill({
      status: 200,
      contentType: asset.endsWith('.css') ? 'text/css' : 'application/javascript',
      headers: { 'access-control-allow-origin': '*' },
      body: readFileSync(new URL(assets[asset], import.meta.url)),
    });
  });
  await page.addInitScript((q) => localStorage.setItem('graphiql:query', q), query);
  await page.goto(url);

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

  await page.click('.graphiql-execute-button', { timeout: 20000 });
  await page.waitForFunction(
    () => document.querySelector('.result-window')?.textContent.includes('"sequence"'),
    null,
    { timeout: 20000 },
  );
  const result = await page.evaluate(() => document.querySelector('.result-window').textContent);
  console.log(`GraphiQL received a live event: ${result.replace(/\s+/g, ' ').slice(0, 200)}`);
  await page.screenshot({ path: screenshot });
} finally {
  await browser.close();
}
