//! No field goes missing from a response. With each backend failing, every query and mutation
//! of `frontend-contract/` runs through the gateway, and each response is walked against the
//! operation's selection set, independently of the executor (apollo-compiler reads the
//! committed schema and the operation): every selected response key must be present, a `null`
//! may stand only where the schema allows one, and a `null` `data` only where a non-null root
//! field failed (the specification's null propagation).

use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::{ExecutableDocument, Schema, ast, validation::Valid};
use banyan_devstack::{Backend, Fault};
use banyan_tests::{TestStack, contract_operations, template_id, workspace_id};
use serde_json::{Map, Value, json};

fn schema() -> Valid<Schema> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/schema.graphql");
    let text = std::fs::read_to_string(&path).expect("schema/schema.graphql is readable");
    Schema::parse_and_validate(text, "schema.graphql").expect("the committed schema is valid")
}

/// What the walk found wrong with one response.
struct Walk<'a> {
    schema: &'a Valid<Schema>,
    document: &'a Valid<ExecutableDocument>,
    variables: &'a Value,
    problems: Vec<String>,
}

impl<'a> Walk<'a> {
    fn included(&self, directives: &ast::DirectiveList) -> bool {
        let flag = |name: &str| {
            directives.get(name).and_then(|d| d.specified_argument_by_name("if")).map(|v| match v.as_ref() {
                ast::Value::Boolean(b) => *b,
                ast::Value::Variable(var) => self.variables[var.as_str()].as_bool().unwrap_or(false),
                _ => false,
            })
        };
        flag("skip") != Some(true) && flag("include") != Some(false)
    }

    /// The spec's CollectFields for an object of type `runtime`: response key → the field
    /// selections merged under it, in order.
    fn collect(&self, runtime: &str, set: &'a SelectionSet, out: &mut Vec<(String, Vec<&'a Field>)>) {
        let document: &'a ExecutableDocument = self.document;
        for selection in &set.selections {
            match selection {
                Selection::Field(field) => {
                    if !self.included(&field.directives) {
                        continue;
                    }
                    let key = field.response_key().to_string();
                    match out.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, fields)) => fields.push(field),
                        None => out.push((key, vec![field])),
                    }
                }
                Selection::FragmentSpread(spread) => {
                    if !self.included(&spread.directives) {
                        continue;
                    }
                    if let Some(fragment) = document.fragments.get(&spread.fragment_name)
                        && self.applies(fragment.type_condition().as_str(), runtime)
                    {
                        self.collect(runtime, &fragment.selection_set, out);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = inline
                        .type_condition
                        .as_ref()
                        .is_none_or(|condition| self.applies(condition.as_str(), runtime));
                    if self.included(&inline.directives) && applies {
                        self.collect(runtime, &inline.selection_set, out);
                    }
                }
            }
        }
    }

    fn applies(&self, condition: &str, runtime: &str) -> bool {
        condition == runtime || self.schema.is_subtype(condition, runtime)
    }

    fn object(&mut self, path: &str, sets: &[&'a SelectionSet], object: &Map<String, Value>) {
        let Some(first) = sets.first() else { return };
        let static_type = first.ty.as_str();
        let runtime = if self.schema.get_object(static_type).is_some() {
            static_type.to_owned()
        } else {
            match object.get("__typename").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => {
                    self.problems.push(format!("{path}: abstract `{static_type}` without __typename"));
                    return;
                }
            }
        };
        let mut fields = Vec::new();
        for set in sets {
            self.collect(&runtime, set, &mut fields);
        }
        for (key, selections) in fields {
            let here = format!("{path}.{key}");
            let Some(value) = object.get(&key) else {
                self.problems.push(format!("{here}: missing"));
                continue;
            };
            if key == "__typename" {
                continue;
            }
            let ty = &selections[0].definition.ty;
            let sub: Vec<&SelectionSet> = selections.iter().map(|f| &f.selection_set).collect();
            self.value(&here, ty, &sub, value);
        }
    }

    fn value(&mut self, path: &str, ty: &ast::Type, sets: &[&'a SelectionSet], value: &Value) {
        if value.is_null() {
            if ty.is_non_null() {
                self.problems.push(format!("{path}: null in a non-null position `{ty}`"));
            }
            return;
        }
        if ty.is_list() {
            match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.value(&format!("{path}.{i}"), ty.item_type(), sets, item);
                    }
                }
                None => self.problems.push(format!("{path}: not a list")),
            }
            return;
        }
        let named = ty.inner_named_type();
        let composite = self.schema.get_object(named).is_some()
            || self.schema.get_interface(named).is_some()
            || self.schema.get_union(named).is_some();
        if composite {
            match value.as_object() {
                Some(object) => self.object(path, sets, object),
                None => self.problems.push(format!("{path}: not an object")),
            }
        }
    }
}

/// Every problem with `body` as the answer to `operation` of `document`.
fn walk(schema: &Valid<Schema>, source: &str, variables: &Value, body: &Value) -> Vec<String> {
    let document = ExecutableDocument::parse_and_validate(schema, source, "operation.graphql")
        .unwrap_or_else(|e| panic!("the contract operation validates: {e}"));
    let operation = document.operations.iter().next().expect("one operation");
    let mut walk = Walk { schema, document: &document, variables, problems: Vec::new() };
    let error_roots: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["path"].as_array()?.first()?.as_str())
        .collect();
    let root = operation.selection_set.ty.as_str();
    match &body["data"] {
        Value::Object(data) => walk.object("data", &[&operation.selection_set], data),
        Value::Null => {
            // Allowed only when a non-null root field failed.
            let mut fields = Vec::new();
            walk.collect(root, &operation.selection_set, &mut fields);
            let propagated = fields.iter().any(|(key, selections)| {
                selections[0].definition.ty.is_non_null() && error_roots.contains(&key.as_str())
            });
            if !propagated {
                walk.problems.push(format!("data is null but no non-null root field failed: {body}"));
            }
        }
        other => walk.problems.push(format!("data is {other}")),
    }
    walk.problems
}

/// Variables for each query and mutation, as the component would send them.
fn variables_for(name: &str, draft: &Value) -> Option<Value> {
    Some(match name {
        "UserMenu" | "WorkspaceSwitcher" => json!({}),
        "TemplateList" => json!({ "workspaceId": workspace_id(1), "first": 50 }),
        "RenameTemplate" => json!({ "id": template_id(3), "name": "Spring sale, final" }),
        "TemplateEditor" => json!({ "id": template_id(1) }),
        "UpdateDraftBlock" => json!({ "input": {
            "blockId": draft["blocks"][0]["id"],
            "content": "Hello again",
            "expectedVersion": draft["version"],
        }}),
        "AnalyticsDashboard" => json!({ "id": template_id(2), "window": "LAST_30_DAYS" }),
        "WorkspaceMembers" => json!({ "id": workspace_id(1) }),
        // Subscriptions run over WebSocket (tests/subscription.rs); their events are built
        // from the event itself and have no field that can fail.
        "TemplateEventsFeed" => return None,
        _ => panic!("contract operation {name} has no variables here: add them"),
    })
}

async fn every_operation_keeps_every_key_with(backend: Backend) {
    let schema = schema();
    let stack = TestStack::start().await;
    // Sign in and read the draft before the fault: the identity check is cached, and the edit
    // is made against the draft's real block and version.
    let editor = contract_operations()
        .into_iter()
        .find(|(name, _)| name == "TemplateEditor")
        .map(|(_, body)| body)
        .expect("TemplateEditor is in the contract");
    let before = stack.graphql(&editor, json!({ "id": template_id(1) })).await;
    let draft = before.data()["template"]["draft"].clone();
    assert!(draft["version"].is_number(), "{:?}", before.body);

    stack.devstack.faults().set(backend, Fault { error_rate: 1.0, ..Fault::default() });
    let mut failed_fields = 0;
    let mut problems = Vec::new();
    for (name, body) in contract_operations() {
        let Some(variables) = variables_for(&name, &draft) else { continue };
        let response = stack.graphql(&body, variables.clone()).await;
        assert_eq!(response.status, 200, "{backend:?} {name}: {:?}", response.body);
        failed_fields += response.body["errors"].as_array().map_or(0, Vec::len);
        for problem in walk(&schema, &body, &variables, &response.body) {
            problems.push(format!("{backend:?} {name}: {problem}\n  response: {}", response.body));
        }
    }
    assert!(failed_fields > 0, "the {backend:?} fault made some field fail");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    stack.stop().await;
}

#[tokio::test]
async fn no_key_goes_missing_with_the_monolith_failing() {
    every_operation_keeps_every_key_with(Backend::Monolith).await;
}

#[tokio::test]
async fn no_key_goes_missing_with_the_event_store_failing() {
    every_operation_keeps_every_key_with(Backend::Events).await;
}

#[tokio::test]
async fn no_key_goes_missing_with_the_draft_store_failing() {
    every_operation_keeps_every_key_with(Backend::Drafts).await;
}

/// The reproduction: a failed root is `null` beside the other roots' data.
#[tokio::test]
async fn a_failed_root_is_null_beside_the_others() {
    let stack = TestStack::start().await;
    stack.graphql("{ __typename }", json!({})).await;
    stack.devstack.faults().set(Backend::Monolith, Fault { error_rate: 1.0, ..Fault::default() });
    let response = stack.graphql("{ __typename workspaces { id } }", json!({})).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.body["data"],
        json!({ "__typename": "Query", "workspaces": null }),
        "{:?}",
        response.body
    );
    assert_eq!(response.error_codes(), ["BACKEND_UNAVAILABLE"]);
    assert_eq!(response.body["errors"][0]["path"], json!(["workspaces"]));
    stack.stop().await;
}

/// The walker itself catches what it is for (so a passing run means something).
#[test]
fn the_walker_sees_a_missing_key_and_a_misplaced_null() {
    let schema = schema();
    let source = "query Q { __typename workspaces { id name } }";
    let missing = walk(&schema, source, &json!({}), &json!({ "data": { "__typename": "Query" } }));
    assert_eq!(missing, ["data.workspaces: missing"]);
    let misplaced = walk(
        &schema,
        source,
        &json!({}),
        &json!({ "data": { "__typename": "Query", "workspaces": [null] } }),
    );
    assert_eq!(misplaced, ["data.workspaces.0: null in a non-null position `Workspace!`"]);
    let unexplained = walk(&schema, source, &json!({}), &json!({ "data": null, "errors": [] }));
    assert_eq!(unexplained.len(), 1, "{unexplained:?}");
}

/// Subscription events are completed too: an event whose template's `draft` fails (the draft
/// store is down after the subscription started) carries `draft: null`, not a missing key.
#[tokio::test]
async fn a_failed_field_in_a_subscription_event_is_null() {
    let schema = schema();
    let stack = TestStack::start().await;
    let mut socket = banyan_tests::ws::WsClient::signed_in(&stack, banyan_tests::OWNER).await;
    let query = "subscription Feed($ids: [ID!]!) { templateEvents(templateIds: $ids) { sequence template { name draft { version } } } }";
    let variables = json!({ "ids": [template_id(1)] });
    socket.subscribe("1", query, variables.clone()).await;
    for _ in 0..100 {
        if stack.devstack.active_event_streams() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stack.devstack.active_event_streams(), 1, "the subscription started");

    stack.devstack.faults().set(Backend::Drafts, Fault { error_rate: 1.0, ..Fault::default() });
    stack.devstack.append_events(vec![(1, banyan_devstack::EventKind::Opened)]).await;
    let message = socket.next().await.expect("an event");
    assert_eq!(message["type"], "next", "{message}");
    let payload = &message["payload"];
    let template = &payload["data"]["templateEvents"]["template"];
    assert!(template["name"].is_string(), "{payload}");
    assert!(template.as_object().is_some_and(|t| t.get("draft") == Some(&Value::Null)), "{payload}");
    assert_eq!(payload["errors"][0]["extensions"]["code"], "BACKEND_UNAVAILABLE", "{payload}");
    assert_eq!(walk(&schema, query, &variables, payload), Vec::<String>::new());
    stack.stop().await;
}
