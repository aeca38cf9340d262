//! Response objects in the order of the selection set, as the GraphQL specification asks
//! (CollectFields keeps the order of the document).
//!
//! async-graphql 7 resolves an object's fields concurrently and inserts each into the object
//! when it completes, so a field waiting on a backend lands after one that did not. This
//! extension builds the order each object should have from the operation (aliases, fragment
//! spreads and inline fragments flattened as CollectFields does) and reorders the data of every
//! response, for HTTP and WebSocket alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextSubscribe,
};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Request, Response, ServerResult, Value};

/// Guards the recursion of plan building; the limits extension, which runs first, already
/// refuses fragment cycles and deeper documents.
const MAX_PLAN_DEPTH: usize = 256;

/// The response keys of one object, in order, each with the plan of its own value.
#[derive(Debug, Default)]
struct Plan {
    keys: Vec<(Name, Plan)>,
    /// Whether a key here or below carries more than one selection set, whose objects are
    /// merged under it.
    merges: bool,
    /// Whether a key here or below is selected more than once (`{ id ... on User { id } }`),
    /// fragments taken whatever their type condition: when not, no object of the operation has
    /// a key twice.
    repeats: bool,
}

impl Plan {
    /// The plan of the objects that `sets` (one field's selection sets, merged) select.
    fn build(document: &ExecutableDocument, sets: &[&SelectionSet], depth: usize) -> Self {
        if depth > MAX_PLAN_DEPTH {
            return Self::default();
        }
        let mut collected = Collected::default();
        for set in sets {
            collect(document, set, &mut collected, depth);
        }
        let mut merges = false;
        let mut repeats = collected.repeated;
        let keys = collected
            .keys
            .into_iter()
            .map(|(key, subsets)| {
                let plan = if subsets.is_empty() {
                    Self::default()
                } else {
                    Self::build(document, &subsets, depth + 1)
                };
                merges |= subsets.len() > 1 || plan.merges;
                repeats |= plan.repeats;
                (key, plan)
            })
            .collect();
        Self { keys, merges, repeats }
    }

    /// Puts the keys of `value`'s objects in the planned order, through lists. An object is
    /// reordered in place, and only when out of order: its keys are not hashed again.
    fn apply(&self, value: &mut Value) {
        match value {
            Value::Object(object) if !self.keys.is_empty() => {
                let mut in_order = true;
                let mut last = 0;
                for (key, child) in object.iter_mut() {
                    let position = self.position(key, last);
                    if let Some(position) = position {
                        self.keys[position].1.apply(child);
                    }
                    // A key the plan does not know goes last (nothing should be there; keep
                    // whatever is rather than lose it).
                    let position = position.unwrap_or(usize::MAX);
                    in_order &= position >= last;
                    last = position;
                }
                if !in_order {
                    // Stable: keys the plan does not know keep their order among themselves.
                    object.sort_by_cached_key(|key, _| self.position(key, 0).unwrap_or(usize::MAX));
                }
            }
            Value::List(items) => items.iter_mut().for_each(|item| self.apply(item)),
            _ => {}
        }
    }

    /// Where `key` is in the plan, looked for from `hint` first (the next key of an object in
    /// order is usually the next one planned).
    fn position(&self, key: &Name, hint: usize) -> Option<usize> {
        let hint = hint.min(self.keys.len());
        let after = self.keys.get(hint..).unwrap_or_default();
        let before = self.keys.get(..hint).unwrap_or_default();
        after
            .iter()
            .position(|(planned, _)| planned == key)
            .map(|i| i + hint)
            .or_else(|| before.iter().position(|(planned, _)| planned == key))
    }
}

/// Response keys in order of first appearance, each with the selection sets its fields carry.
#[derive(Default)]
struct Collected<'a> {
    keys: Vec<(Name, Vec<&'a SelectionSet>)>,
    index: HashMap<Name, usize>,
    /// Whether a key was met more than once.
    repeated: bool,
}

/// CollectFields: the response keys of `set` in order of first appearance, fragments flattened.
fn collect<'a>(
    document: &'a ExecutableDocument,
    set: &'a SelectionSet,
    collected: &mut Collected<'a>,
    depth: usize,
) {
    if depth > MAX_PLAN_DEPTH {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                let key = field.alias.as_ref().unwrap_or(&field.name).node.clone();
                let next = collected.keys.len();
                let index = *collected.index.entry(key.clone()).or_insert(next);
                if index == next {
                    collected.keys.push((key, Vec::new()));
                } else {
                    collected.repeated = true;
                }
                if !field.selection_set.node.items.is_empty() {
                    collected.keys[index].1.push(&field.selection_set.node);
                }
            }
            Selection::InlineFragment(fragment) => {
                collect(document, &fragment.node.selection_set.node, collected, depth + 1);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(document, &fragment.node.selection_set.node, collected, depth + 1);
                }
            }
        }
    }
}

/// The order of every object an operation selects, for the gateway's own pipeline
/// (`crate::pipeline`), which runs without this extension.
#[derive(Debug)]
pub(crate) struct ResponseOrder(Plan);

impl ResponseOrder {
    /// The order of the objects `operation`, an operation of `document`, selects.
    pub(crate) fn of(document: &ExecutableDocument, operation: &OperationDefinition) -> Self {
        Self(Plan::build(document, &[&operation.selection_set.node], 0))
    }

    /// Puts the keys of every object of `data` in the order of the selection set.
    pub(crate) fn apply(&self, data: &mut Value) {
        self.0.apply(data);
    }

    /// Whether the operation selects a response key more than once with a selection set (`{ a
    /// { x } a { y } }`, or through fragments): the objects under it are merged.
    pub(crate) fn merges_objects(&self) -> bool {
        self.0.merges
    }

    /// Whether an object of the operation may have a response key selected more than once
    /// (`{ id ... on User { id } }`; fragments are counted whatever their type condition).
    pub(crate) fn repeats_keys(&self) -> bool {
        self.0.repeats
    }
}

/// The plan of the operation `request` runs, when its document is parsed and names one.
fn plan_for(request: &mut Request) -> Option<Plan> {
    let operation_name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name.as_str())?,
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next()?
        }
        (DocumentOperations::Multiple(_), None) => return None,
    };
    Some(Plan::build(document, &[&operation.node.selection_set.node], 0))
}

/// Registers [`SelectionOrderExtension`]; register it after the limits, which bound the document.
pub(crate) struct SelectionOrder;

impl ExtensionFactory for SelectionOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SelectionOrderExtension { plan: Arc::default() })
    }
}

/// One per request: the plan made at `prepare_request`, applied to every response.
pub(crate) struct SelectionOrderExtension {
    plan: Arc<Mutex<Option<Arc<Plan>>>>,
}

impl SelectionOrderExtension {
    fn current_plan(plan: &Mutex<Option<Arc<Plan>>>) -> Option<Arc<Plan>> {
        plan.lock().ok().and_then(|plan| plan.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for SelectionOrderExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(plan) = plan_for(&mut request)
            && let Ok(mut slot) = self.plan.lock()
        {
            *slot = Some(Arc::new(plan));
        }
        next.run(ctx, request).await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        if let Some(plan) = Self::current_plan(&self.plan) {
            plan.apply(&mut response.data);
        }
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let plan = self.plan.clone();
        next.run(ctx, stream)
            .map(move |mut response| {
                if let Some(plan) = Self::current_plan(&plan) {
                    plan.apply(&mut response.data);
                }
                response
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(value: &Value) -> Vec<&str> {
        match value {
            Value::Object(object) => object.keys().map(Name::as_str).collect(),
            _ => Vec::new(),
        }
    }

    #[test]
    fn a_key_selected_twice_with_selection_sets_merges_objects_and_no_other_does() {
        let merges = |query: &str| plan_for(&mut Request::new(query)).expect("a plan").merges;
        for query in [
            "{ a { x } a { y } }",
            "{ a { x } ...F } fragment F on Query { a { y } }",
            "{ l { items { x } ... on L { items { y } } } }",
            "{ b: a { x } b: c { x } }",
        ] {
            assert!(merges(query), "{query}");
        }
        for query in
            ["{ a { x } b: a { y } }", "{ a b a }", "{ a { x x y: x } ... { c } }", "{ l { items { x } } }"]
        {
            assert!(!merges(query), "{query}");
        }
    }

    #[test]
    fn a_key_selected_twice_anywhere_is_a_repeat_and_an_alias_is_not() {
        let repeats = |query: &str| plan_for(&mut Request::new(query)).expect("a plan").repeats;
        for query in [
            "{ a a }",
            "{ a { x x } }",
            "{ a { x ... on A { x } } }",
            "{ a { ...F } } fragment F on A { x y: z y: z }",
            "{ l { items { x } ... on L { items { y } } } }",
            // A condition no object meets still counts: the check is by the document alone.
            "{ n { x ... on Other { x } } }",
        ] {
            assert!(repeats(query), "{query}");
        }
        for query in ["{ a { x } b: a { y } }", "{ a { x y: x } ... { c } }", "{ a { x } b { x } }"] {
            assert!(!repeats(query), "{query}");
        }
    }

    #[test]
    fn objects_follow_the_selection_set_through_aliases_fragments_and_lists() {
        let mut request = Request::new(
            "query Q { b: me { z a ...U } ... on Query { a } list { y x } } \
             fragment U on User { m ... on User { b z } }",
        )
        .operation_name("Q");
        let plan = plan_for(&mut request).expect("a plan");
        let mut data = Value::from_json(serde_json::json!({
            "list": [{ "x": 1, "y": 2 }, { "x": 3, "y": 4 }],
            "a": 1,
            "b": { "b": 1, "a": 2, "m": 3, "z": 4 },
        }))
        .expect("a value");
        plan.apply(&mut data);
        assert_eq!(keys(&data), ["b", "a", "list"]);
        let Value::Object(root) = &data else { panic!("an object") };
        assert_eq!(keys(&root["b"]), ["z", "a", "m", "b"]);
        let Value::List(items) = &root["list"] else { panic!("a list") };
        assert!(items.iter().all(|item| keys(item) == ["y", "x"]));
    }

    /// Every order of an object's keys, against the order written out by hand: planned keys in
    /// the plan's order, then keys the plan does not know in the order they came, with each
    /// child reordered by its own key's plan.
    #[test]
    fn every_order_of_keys_comes_out_planned_with_unknown_keys_last() {
        let mut request = Request::new("{ a { y x } b c d }");
        let plan = plan_for(&mut request).expect("a plan");
        let arrived = ["d", "q", "a", "c", "p", "b"];
        let mut orders = vec![Vec::new()];
        for _ in 0..arrived.len() {
            orders = orders
                .into_iter()
                .flat_map(|order: Vec<&str>| {
                    let unused: Vec<&str> = arrived.iter().copied().filter(|k| !order.contains(k)).collect();
                    unused.into_iter().map(move |k| {
                        let mut next = order.clone();
                        next.push(k);
                        next
                    })
                })
                .collect();
        }
        assert_eq!(orders.len(), 720);
        for order in orders {
            let mut object = async_graphql::indexmap::IndexMap::new();
            for key in &order {
                let value = match *key {
                    "a" => Value::from_json(serde_json::json!({ "x": 1, "y": 2 })).expect("a value"),
                    other => Value::from(other),
                };
                object.insert(Name::new(key), value);
            }
            let mut data = Value::Object(object);
            plan.apply(&mut data);
            let unknown: Vec<&str> = order.iter().copied().filter(|k| matches!(*k, "p" | "q")).collect();
            let expected: Vec<&str> = ["a", "b", "c", "d"].into_iter().chain(unknown).collect();
            assert_eq!(keys(&data), expected, "arrived as {order:?}");
            let Value::Object(root) = &data else { panic!("an object") };
            assert_eq!(keys(&root["a"]), ["y", "x"], "arrived as {order:?}");
            assert_eq!(root["c"], Value::from("c"), "values stay with their keys");
        }
    }
}
