// Runs every server audit of graphql-http (the GraphQL-over-HTTP reference implementation)
// against the URL given, prints the ones that are not ok, and exits 1 if any MUST fails or any
// audit errors. Usage: node audit.mjs http://127.0.0.1:4000/graphql
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql url>');
  process.exit(2);
}
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
let failedMust = false;
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  const result = await audit.fn();
  counts[result.status] = (counts[result.status] ?? 0) + 1;
  if (result.status !== 'ok') {
    console.log(`${result.status} ${result.id} ${result.name}: ${result.reason}`);
    if (result.name.startsWith('MUST') || result.status === 'error') failedMust = true;
  }
}
const total = Object.values(counts).reduce((a, b) => a + b, 0);
console.log(`graphql-http audits: ${counts.ok} ok, ${counts.notice} notice, ${counts.warn} warn, ${counts.error} error, of ${total}`);
process.exit(failedMust ? 1 : 0);
