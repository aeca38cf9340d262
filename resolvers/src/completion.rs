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
use async_graphql::{Name, QueryPathNode, Response, ServerResult, Value};
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
