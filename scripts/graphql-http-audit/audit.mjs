// Runs every server audit of graphql-http (the GraphQL-over-HTTP reference implementation)
// against the URL given, prints each one that is not ok and the tally, and exits 1 unless every
// audit, MUST and SHOULD alike, is ok and there are at least the expected number of them.
// Usage: node audit.mjs http://127.0.0.1:4000/graphql 61
import { serverAudits } from 'graphql-http';

const [url, expectedArg] = process.argv.slice(2);
const expected = Number(expectedArg);
if (!url || !Number.isInteger(expected) || expected < 1) {
  console.error('usage: node audit.mjs <graphql url> <expected number of audits>');
  process.exit(2);
}
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url, fetchFn: fetch })) {
  let result;
  try {
    result = await audit.fn();
  } catch (e) {
    result = { status: 'error', reason: `the audit threw: ${e}` };
  }
  counts[result.status] = (counts[result.status] ?? 0) + 1;
  if (result.status !== 'ok') {
    console.log(`${result.status} ${audit.id} ${audit.name}: ${result.reason}`);
  }
}
const total = Object.values(counts).reduce((a, b) => a + b, 0);
console.log(
  `graphql-http audits: ${counts.ok}/${total} ok (${counts.notice} notice, ${counts.warn} warn, ${counts.error} error); expected ${expected}/${expected}`,
);
process.exit(counts.ok === total && total >= expected ? 0 : 1);
