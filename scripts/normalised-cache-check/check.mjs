// Runs the SPA's own operations (frontend-contract's persisted-operations manifest) through Apollo
// Client's InMemoryCache, the normalised cache the SPA uses, against a running Banyan, and checks
// the cache stays right (issue 15):
//   1. two templates' editors opened in turn: the first reads back from the cache unchanged;
//   2. a saved block: the cached draft's version reads back as the server's, and a stale save's
//      conflict replaces the cached draft with the current one;
//   3. every Node type (asked of the schema, so a new one is covered or fails here): a cached
//      object made stale is refreshed through node(id:).
// Exits 1 on any failure, with what differed. Usage:
//   node check.mjs <graphql url> <authorization header value> <persisted-operations.json>
import { readFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';

const [url, authorization, manifestPath] = process.argv.slice(2);
if (!url || !authorization || !manifestPath) {
  console.error('usage: node check.mjs <graphql url> <authorization> <persisted-operations.json>');
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
const operation = (name) => {
  const found = manifest.operations.find((op) => op.name === name);
  if (!found) throw new Error(`the contract has no operation ${name}`);
  return gql(found.body);
};

const failures = [];
const check = (ok, what, detail) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures.push(`${what}: ${JSON.stringify(detail)}`);
};

// Apollo reports cache data loss (an object without identity replaced by another) as a warning:
// with identity everywhere there must be none.
const warnings = [];
const warn = console.warn;
console.warn = (...args) => {
  warnings.push(args.map(String).join(' '));
  warn(...args);
};

const introspect = async (query) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization },
    body: JSON.stringify({ query }),
  });
  const body = await response.json();
  if (body.errors) throw new Error(`introspection failed: ${JSON.stringify(body.errors)}`);
  return body.data;
};
const nodeTypes = (await introspect('{ __type(name: "Node") { possibleTypes { name } } }')).__type.possibleTypes.map(
  (t) => t.name,
);
const unions = (await introspect('{ __schema { types { kind name possibleTypes { name } } } }')).__schema.types
  .filter((t) => t.kind === 'UNION' || t.kind === 'INTERFACE')
  .reduce((acc, t) => ({ ...acc, [t.name]: t.possibleTypes.map((p) => p.name) }), {});

const newClient = () =>
  new ApolloClient({
    link: new HttpLink({ uri: url, headers: { authorization } }),
    cache: new InMemoryCache({ possibleTypes: unions }),
  });
const client = newClient();
const query = async (name, variables, fetchPolicy = 'network-only') => {
  const result = await client.query({ query: operation(name), variables, fetchPolicy });
  if (result.error) throw new Error(`${name}: ${result.error.message}`);
  return result.data;
};

// The owner's first workspace and two of its templates with drafts.
const switcher = await query('WorkspaceSwitcher', {});
const workspaceId = switcher.workspaces[0].id;
const list = await query('TemplateList', { workspaceId, first: 50 });
const templateIds = list.templates.edges.map((e) => e.node.id);
const editors = [];
for (const id of templateIds) {
  const data = await query('TemplateEditor', { id });
  if (data.template?.draft) editors.push({ id, data });
  if (editors.length === 2) break;
}
if (editors.length < 2) throw new Error('fewer than two templates with drafts in the first workspace');
const [first, second] = editors;

// 1. Opening the second editor leaves the first one's cached editor as the server sent it.
const firstFromCache = client.readQuery({ query: operation('TemplateEditor'), variables: { id: first.id } });
check(
  isDeepStrictEqual(firstFromCache, first.data),
  'two editors opened in turn: the first reads back from the cache unchanged',
  { server: first.data.template.draft.blocks, cache: firstFromCache?.template?.draft?.blocks },
);
const secondFromCache = client.readQuery({ query: operation('TemplateEditor'), variables: { id: second.id } });
check(isDeepStrictEqual(secondFromCache, second.data), 'the second editor reads back unchanged too', {});

// 2. A save through the editor's own mutation, from what the cache holds.
const cachedDraft = firstFromCache.template.draft;
const saved = await client.mutate({
  mutation: operation('UpdateDraftBlock'),
  variables: {
    input: { blockId: cachedDraft.blocks[0].id, content: 'saved by the cache check', expectedVersion: cachedDraft.version },
  },
});
const result = saved.data?.updateDraftBlock;
check(result?.__typename === 'DraftUpdated', 'the save applied', saved);
const server = await newClient().query({ query: operation('TemplateEditor'), variables: { id: first.id } });
const afterSave = client.readQuery({ query: operation('TemplateEditor'), variables: { id: first.id } });
check(
  afterSave.template.draft.version === server.data.template.draft.version &&
    afterSave.template.draft.version === cachedDraft.version + 1,
  "after the save the cached draft's version is the server's",
  { cache: afterSave.template.draft.version, server: server.data.template.draft.version },
);
check(
  afterSave.template.draft.blocks[0].content === 'saved by the cache check',
  'after the save the cached block holds the saved text',
  afterSave.template.draft.blocks[0],
);

// A second editor (another client) saves; this client's stale save gets the current draft back.
const other = newClient();
await other.mutate({
  mutation: operation('UpdateDraftBlock'),
  variables: {
    input: { blockId: cachedDraft.blocks[0].id, content: 'saved elsewhere', expectedVersion: afterSave.template.draft.version },
  },
});
const stale = await client.mutate({
  mutation: operation('UpdateDraftBlock'),
  variables: {
    input: { blockId: cachedDraft.blocks[0].id, content: 'stale', expectedVersion: afterSave.template.draft.version },
  },
});
const afterConflict = client.readQuery({ query: operation('TemplateEditor'), variables: { id: first.id } });
check(
  stale.data?.updateDraftBlock?.__typename === 'DraftVersionConflict' &&
    afterConflict.template.draft.version === stale.data.updateDraftBlock.currentVersion &&
    afterConflict.template.draft.blocks[0].content === 'saved elsewhere',
  'a conflict puts the current draft into the cache',
  { result: stale.data?.updateDraftBlock?.__typename, cache: afterConflict.template.draft },
);

// 3. Every Node type: make a cached object stale, refresh it through node(id:).
await query('UserMenu', {});
await query('WorkspaceMembers', { id: workspaceId });
const staleField = {
  User: ['fullName', 'stale name'],
  Workspace: ['name', 'stale name'],
  Template: ['name', 'stale name'],
  Draft: ['version', -1],
  Block: ['content', 'stale content'],
  WorkspaceMember: ['role', 'STALE'],
};
const entries = client.cache.extract();
for (const type of nodeTypes) {
  const plan = staleField[type];
  if (!plan) {
    check(false, `node(id:) refresh of ${type}`, 'no refresh planned for this Node type: add it to check.mjs');
    continue;
  }
  const [field, staleValue] = plan;
  const key = Object.keys(entries).find((k) => k.startsWith(`${type}:`) && entries[k][field] !== undefined);
  if (!key) {
    check(false, `node(id:) refresh of ${type}`, `no cached ${type} with ${field} from the contract's operations`);
    continue;
  }
  const id = entries[key].id;
  const serverValue = entries[key][field];
  client.cache.modify({ id: key, fields: { [field]: () => staleValue } });
  const fragment = gql(`fragment Refresh${type} on ${type} { id ${field} }`);
  const staleRead = client.cache.readFragment({ id: key, fragment });
  const refresh = gql(`query Refresh${type}($id: ID!) { node(id: $id) { __typename id ... on ${type} { ${field} } } }`);
  const refreshed = await client.query({ query: refresh, variables: { id }, fetchPolicy: 'network-only' });
  const after = client.cache.readFragment({ id: key, fragment });
  check(
    staleRead?.[field] === staleValue && refreshed.data?.node?.__typename === type && after?.[field] === serverValue,
    `node(id:) refreshes a stale cached ${type} (${field})`,
    { stale: staleRead?.[field], refreshed: refreshed.data?.node, cache: after?.[field], server: serverValue },
  );
}

check(warnings.length === 0, 'Apollo Client warned about nothing (no cache data lost)', warnings);
console.log(`normalised-cache check: ${failures.length === 0 ? 'passed' : `${failures.length} failed`} (${nodeTypes.length} Node types: ${nodeTypes.join(', ')})`);
for (const f of failures) console.log(`  ${f}`);
process.exit(failures.length === 0 ? 0 : 1);
