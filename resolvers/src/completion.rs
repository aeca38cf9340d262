//! Completes responses the way the GraphQL specification asks when a field fails.
//!
//! async-graphql 7.2.1 handles a field error in `resolver_utils::container::do_resolve_container`
//! by recording the error and leaving the field's key out of its parent object, whatever the
//! field's type: a failed nullable field goes missing instead of being `null`, and a failed
//! non-null field goes missing instead of nulling its parent (and so on up to `data`). An
//! object all of whose fields failed becomes `null` (the container's result map is empty),
//! even in a non-null position.
//!
//! The specification ("Handling Execution Errors") asks that a failed field be `null`, and that
//! a `null` in a non-null position propagate to the nearest nullable parent, or to `data`.
//! [`NullCompletion`] does that after execution: while fields resolve, it records the path and
//! type of every field that fails and of every field whose resolution spans a failure (its
//! ancestors); then it puts the missing keys back as `null`, turns collapsed objects back into
//! objects, and propagates nulls through non-null positions. No other field is touched, and a
//! request with no failed field costs one atomic load per field.
//!
//! Queries, mutations and every subscription event (async-graphql runs the `execute` hook per
//! event) are completed. A key put back goes after its siblings in the object; it runs innermost
//! of the extensions, so the gateway's response ordering, outside it, puts the key back in its
//! place in the selection set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{
    ExecutableDocument, OperationDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::registry::{MetaTypeName, Registry};
use async_graphql::{Name, PathSegment, QueryPathNode, Response, ServerResult, Value};
use async_graphql::{QueryPathSegment, indexmap::IndexMap};

/// The extension factory: add it to the schema builder (done by `schema_builder`).
pub(crate) struct NullCompletion;

impl ExtensionFactory for NullCompletion {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(NullCompletionExtension::default())
    }
}

/// One step of a response path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// What one request recorded.
#[derive(Debug, Default)]
struct Record {
    /// Paths of the fields that failed.
    failed: Vec<Vec<Step>>,
    /// Return type (async-graphql's qualified name, e.g. `[Workspace!]!`) of each recorded field.
    types: HashMap<Vec<Step>, String>,
}

#[derive(Debug, Default)]
struct NullCompletionExtension {
    /// How many fields failed so far; a field whose resolution saw it grow is an ancestor of a
    /// failure (or ran beside one) and records its type.
    failures: AtomicUsize,
    record: Mutex<Record>,
}

fn path_of(node: &QueryPathNode<'_>) -> Vec<Step> {
    let mut path: Vec<Step> = std::iter::once(node)
        .chain(node.parents())
        .map(|n| match n.segment {
            QueryPathSegment::Name(name) => Step::Key(name.to_owned()),
            QueryPathSegment::Index(index) => Step::Index(index),
        })
        .collect();
    path.reverse();
    path
}

#[async_graphql::async_trait::async_trait]
impl Extension for NullCompletionExtension {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let (path_node, return_type) = (info.path_node, info.return_type);
        let before = self.failures.load(Ordering::Acquire);
        let result = next.run(ctx, info).await;
        let failed = result.is_err();
        if failed || self.failures.load(Ordering::Acquire) != before {
            let path = path_of(path_node);
            let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
            if failed {
                record.failed.push(path.clone());
            }
            record.types.insert(path, return_type.to_owned());
            if failed {
                self.failures.fetch_add(1, Ordering::AcqRel);
            }
        }
        result
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        let record = std::mem::take(&mut *self.record.lock().unwrap_or_else(PoisonError::into_inner));
        if !record.failed.is_empty() {
            complete(&mut response.data, &record);
        }
        response
    }
}

/// [`NullCompletion`]'s work for a response executed without it (by a schema with no
/// extension, so async-graphql resolves fields on its fast path): the failed fields are those
/// of the response's errors with a path, and the type of each position on their paths is read
/// from the operation and `registry` instead of being recorded while fields resolve.
pub fn complete_response(
    response: &mut Response,
    registry: &Registry,
    document: &ExecutableDocument,
    operation: &OperationDefinition,
) {
    let failed: Vec<Vec<Step>> = response
        .errors
        .iter()
        .filter(|error| !error.path.is_empty())
        .map(|error| {
            error
                .path
                .iter()
                .map(|segment| match segment {
                    PathSegment::Field(name) => Step::Key(name.clone()),
                    PathSegment::Index(index) => Step::Index(*index),
                })
                .collect()
        })
        .collect();
    if failed.is_empty() {
        return;
    }
    let root = match operation.ty {
        OperationType::Query => Some(registry.query_type.as_str()),
        OperationType::Mutation => registry.mutation_type.as_deref(),
        OperationType::Subscription => registry.subscription_type.as_deref(),
    };
    let mut record = Record::default();
    if let Some(root) = root {
        for path in &failed {
            record_types(registry, document, root, &operation.selection_set.node, path, &mut record.types);
        }
    }
    record.failed = failed;
    complete(&mut response.data, &record);
}

/// Records the type of every field on `path` (each prefix ending with a key), walking the
/// selection sets from the root type `root`.
fn record_types(
    registry: &Registry,
    document: &ExecutableDocument,
    root: &str,
    root_set: &SelectionSet,
    path: &[Step],
    types: &mut HashMap<Vec<Step>, String>,
) {
    let mut parent = root.to_owned();
    let mut sets: Vec<&SelectionSet> = vec![root_set];
    for (position, step) in path.iter().enumerate() {
        // A list index stays on the field's own type, unwrapped by `type_at`.
        let Step::Key(key) = step else { continue };
        let mut found = None;
        let mut subsets = Vec::new();
        for set in &sets {
            find_field(document, set, key, None, &mut found, &mut subsets, 0);
        }
        let Some((name, condition)) = found else { return };
        let meta = condition
            .and_then(|on| registry.types.get(on))
            .and_then(|ty| ty.field_by_name(name))
            .or_else(|| registry.types.get(parent.as_str()).and_then(|ty| ty.field_by_name(name)));
        let Some(meta) = meta else { return };
        types.insert(path[..=position].to_vec(), meta.ty.clone());
        parent = MetaTypeName::concrete_typename(&meta.ty).to_owned();
        sets = subsets;
    }
}

/// Deepest fragment nesting followed when looking for a field; the gateway's limits refuse
/// deeper documents and fragment cycles before execution.
const MAX_FRAGMENT_NESTING: usize = 128;

/// The first field of `set` (fragments flattened) whose response key is `key`: its name and
/// the type condition it sits under, if any; and the selection sets of every such field.
fn find_field<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    key: &str,
    condition: Option<&'d str>,
    found: &mut Option<(&'d str, Option<&'d str>)>,
    subsets: &mut Vec<&'d SelectionSet>,
    nesting: usize,
) {
    if nesting > MAX_FRAGMENT_NESTING {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                if field.response_key().node.as_str() == key {
                    found.get_or_insert((field.name.node.as_str(), condition));
                    subsets.push(&field.selection_set.node);
                }
            }
            Selection::InlineFragment(fragment) => {
                let fragment = &fragment.node;
                let on = fragment.type_condition.as_ref().map(|c| c.node.on.node.as_str()).or(condition);
                find_field(document, &fragment.selection_set.node, key, on, found, subsets, nesting + 1);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    let on = Some(fragment.node.type_condition.node.on.node.as_str());
                    find_field(
                        document,
                        &fragment.node.selection_set.node,
                        key,
                        on,
                        found,
                        subsets,
                        nesting + 1,
                    );
                }
            }
        }
    }
}

/// Puts every failed field back as `null`, then propagates nulls through non-null positions.
fn complete(data: &mut Value, record: &Record) {
    // First every missing key, while every ancestor is still in place...
    for path in &record.failed {
        put_back(data, path);
    }
    // ...then propagation, which may null ancestors.
    for path in &record.failed {
        let mut position = path.clone();
        loop {
            match type_at(record, &position) {
                Some(ty) if ty.ends_with('!') => {}
                Some(_) => break,
                None => {
                    tracing::debug!(?position, "no recorded type for a failed position; left as null");
                    break;
                }
            }
            position.pop();
            if position.is_empty() {
                *data = Value::Null;
                break;
            }
            if let Some(value) = value_at(data, &position) {
                *value = Value::Null;
            }
        }
    }
}

/// Inserts `null` for the failed field at `path`, restoring objects that collapsed to `null`
/// on the way (a resolved field with failed children is an object, never a null).
fn put_back(data: &mut Value, path: &[Step]) {
    let mut current = data;
    for step in path {
        if matches!(step, Step::Key(_)) && matches!(current, Value::Null) {
            *current = Value::Object(IndexMap::new());
        }
        current = match (current, step) {
            (Value::Object(map), Step::Key(key)) => map.entry(Name::new(key)).or_insert(Value::Null),
            (Value::List(items), Step::Index(index)) => match items.get_mut(*index) {
                Some(item) => item,
                None => return,
            },
            _ => return,
        };
    }
}

fn value_at<'v>(data: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    let mut current = data;
    for step in path {
        current = match (current, step) {
            (Value::Object(map), Step::Key(key)) => map.get_mut(key.as_str())?,
            (Value::List(items), Step::Index(index)) => items.get_mut(*index)?,
            _ => return None,
        };
    }
    Some(current)
}

/// The type of the value at `position`: the recorded type of the field it belongs to,
/// unwrapped once per trailing list index.
fn type_at<'r>(record: &'r Record, position: &[Step]) -> Option<&'r str> {
    let indices = position.iter().rev().take_while(|s| matches!(s, Step::Index(_))).count();
    let field = &position[..position.len() - indices];
    let mut ty = record.types.get(field)?.as_str();
    for _ in 0..indices {
        ty = ty.strip_suffix('!').unwrap_or(ty).strip_prefix('[')?.strip_suffix(']')?;
    }
    Some(ty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(failed: &[&[Step]], types: &[(&[Step], &str)]) -> Record {
        Record {
            failed: failed.iter().map(|p| p.to_vec()).collect(),
            types: types.iter().map(|(p, t)| (p.to_vec(), (*t).to_owned())).collect(),
        }
    }

    fn key(k: &str) -> Step {
        Step::Key(k.to_owned())
    }

    fn json(v: serde_json::Value) -> Value {
        Value::from_json(v).unwrap_or(Value::Null)
    }

    /// A response as async-graphql leaves it, completed from the errors' paths and the
    /// schema's types alone.
    fn completed(query: &str, data: serde_json::Value, failed: &[&[PathSegment]]) -> serde_json::Value {
        let document = async_graphql::parser::parse_query(query).expect("parses");
        let (_, operation) = document.operations.iter().next().expect("an operation");
        let mut response = Response::new(json(data));
        response.errors = failed
            .iter()
            .map(|path| {
                let mut error = async_graphql::ServerError::new("failed", None);
                error.path = path.to_vec();
                error
            })
            .collect();
        complete_response(&mut response, &crate::type_registry(), &document, &operation.node);
        response.data.into_json().unwrap_or_default()
    }

    fn field(name: &str) -> PathSegment {
        PathSegment::Field(name.to_owned())
    }

    #[test]
    fn types_are_read_from_the_operation_through_aliases_fragments_and_lists() {
        // `name: String!` fails under an alias inside a fragment: its template (nullable) is null.
        let query = "{ t: template(id: \"1\") { ...F } } fragment F on Template { id n: name }";
        let data = serde_json::json!({ "t": { "id": "1" } });
        assert_eq!(completed(query, data, &[&[field("t"), field("n")]]), serde_json::json!({ "t": null }));
        // `stats` (nullable) fails in item 1 of a non-null list of non-null templates: only it
        // is null.
        let query = "{ templates(workspaceId: \"w\") { nodes { id stats(window: LAST_7_DAYS) { sent } } } }";
        let data = serde_json::json!({ "templates": { "nodes": [ { "id": "a", "stats": { "sent": 1 } }, { "id": "b" } ] } });
        let failed = [field("templates"), field("nodes"), PathSegment::Index(1), field("stats")];
        assert_eq!(
            completed(query, data, &[&failed]),
            serde_json::json!({ "templates": { "nodes": [ { "id": "a", "stats": { "sent": 1 } }, { "id": "b", "stats": null } ] } })
        );
        // `id: ID!` fails in that item: the item is non-null, so is the list, so `templates`
        // (nullable) is null.
        let query = "{ templates(workspaceId: \"w\") { nodes { id } } }";
        let data = serde_json::json!({ "templates": { "nodes": [ { "id": "a" }, {} ] } });
        let failed = [field("templates"), field("nodes"), PathSegment::Index(1), field("id")];
        assert_eq!(completed(query, data, &[&failed]), serde_json::json!({ "templates": null }));
    }

    #[test]
    fn a_failed_nullable_field_is_null_beside_its_siblings() {
        let mut data = json(serde_json::json!({ "__typename": "Query" }));
        let r = record(&[&[key("workspaces")]], &[(&[key("workspaces")], "[Workspace!]")]);
        complete(&mut data, &r);
        assert_eq!(
            data.into_json().ok(),
            Some(serde_json::json!({ "__typename": "Query", "workspaces": null }))
        );
    }

    #[test]
    fn a_failed_non_null_field_nulls_the_nearest_nullable_parent() {
        // template { name (String!) } with template nullable: template becomes null.
        let mut data = json(serde_json::json!({ "template": { "id": "1" }, "me": { "id": "u" } }));
        let path = [key("template"), key("name")];
        let r = record(&[&path], &[(&path, "String!"), (&[key("template")], "Template")]);
        complete(&mut data, &r);
        assert_eq!(data.into_json().ok(), Some(serde_json::json!({ "template": null, "me": { "id": "u" } })));
    }

    #[test]
    fn a_null_in_a_non_null_list_item_nulls_the_list_and_up_to_data() {
        // items: [Item!]! at the root, item 1's `x: Int!` fails: the item, the list and data go.
        let mut data = json(serde_json::json!({ "items": [ { "x": 1 }, null ] }));
        let path = [key("items"), Step::Index(1), key("x")];
        let r = record(&[&path], &[(&path, "Int!"), (&[key("items")], "[Item!]!")]);
        complete(&mut data, &r);
        assert_eq!(data, Value::Null);
    }

    #[test]
    fn an_object_whose_every_field_failed_is_an_object_again() {
        let mut data = json(serde_json::json!({ "template": null }));
        let path = [key("template"), key("stats")];
        let r = record(&[&path], &[(&path, "Stats"), (&[key("template")], "Template")]);
        complete(&mut data, &r);
        assert_eq!(data.into_json().ok(), Some(serde_json::json!({ "template": { "stats": null } })));
    }
}
