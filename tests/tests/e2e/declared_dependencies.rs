//! The migration report is only honest if every backend call is declared. Every contract
//! operation runs through the real gateway under several routings (every migrated field on the
//! monolith, every field on the services, and each field flipped alone either way), and every
//! call the devstack saw must be listed by the declarations of the fields the operation selects:
//! the chosen side of each migrated field, the [`Dependency`] of every other resolver, and the
//! gateway's own identity check.
//!
//! The reverse is not asserted: a declared call that was not made is fine (a loader may have
//! answered from its cache, or the field was null).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use banyan_devstack::EventKind;
use banyan_migration::{Backend, Catalog, Dependency, FieldDeclaration, RoutingTable};
use banyan_schema::{Contract, OperationType, load_sdl_file, operation_usage};
use banyan_tests::ws::{TRANSPORT_WS, WsClient};
use banyan_tests::{
    GraphqlResponse, OWNER, RoutingTableFile, TestStack, contract_operations, template_id, workspace_id,
};
use serde_json::{Value, json};

/// One routing: the backend serving each migrated field, forced by the override header, or, for
/// a shadow routing, by a routing table that also calls the other side of every read field.
struct Routing {
    name: String,
    backends: BTreeMap<&'static str, Backend>,
    shadowed: bool,
}

impl Routing {
    /// The override header, `None` for a shadow routing (the table routes).
    fn header(&self) -> Option<String> {
        (!self.shadowed).then(|| {
            self.backends
                .iter()
                .map(|(key, backend)| format!("{key}={backend}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// The routing table of a shadow routing: every read field shadowed with its backend as the
    /// primary, every request compared; writes (never shadowed) on their backend.
    fn table(&self, catalog: &Catalog) -> String {
        catalog
            .fields()
            .map(|field| {
                let backend = self.backend(field.key);
                if field.is_write() {
                    format!("[fields.\"{}\"]\nmode = \"{backend}\"\n", field.key)
                } else {
                    format!(
                        "[fields.\"{}\"]\nmode = \"shadow\"\nprimary = \"{backend}\"\nsample_rate = 1.0\n",
                        field.key
                    )
                }
            })
            .collect()
    }

    fn backend(&self, key: &str) -> Backend {
        self.backends.get(key).copied().unwrap_or_else(|| panic!("`{key}` is in every routing"))
    }
}

/// Every migrated field on one side; then each field alone on the other side of the rest; then
/// every read field shadowed, each side in turn the primary.
fn routings(catalog: &Catalog) -> Vec<Routing> {
    let everything_on =
        |backend: Backend| catalog.fields().map(|f| (f.key, backend)).collect::<BTreeMap<_, _>>();
    let mut routings = Vec::new();
    for backend in [Backend::Legacy, Backend::Service] {
        routings.push(Routing {
            name: format!("every migrated field on {backend}"),
            backends: everything_on(backend),
            shadowed: false,
        });
    }
    for backend in [Backend::Legacy, Backend::Service] {
        for field in catalog.fields() {
            let mut backends = everything_on(backend.other());
            backends.insert(field.key, backend);
            routings.push(Routing {
                name: format!("{} alone on {backend} (the rest on {})", field.key, backend.other()),
                backends,
                shadowed: false,
            });
        }
    }
    for primary in [Backend::Legacy, Backend::Service] {
        routings.push(Routing {
            name: format!("every read field shadowed, {primary} primary (writes on {primary})"),
            backends: everything_on(primary),
            shadowed: true,
        });
    }
    routings
}

/// Which schema fields (`Type.field`) each contract operation selects, read by banyan-schema's
/// usage walk (through fragments and type conditions) over the committed schema.
fn selected_fields() -> BTreeMap<String, (OperationType, BTreeSet<String>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let schema = load_sdl_file(root.join("schema/schema.graphql")).expect("the schema loads");
    let contract = Contract::load(root.join("frontend-contract")).expect("the contract loads");
    operation_usage(&schema, &contract)
        .into_iter()
        .map(|usage| {
            let name = usage.operation.expect("contract operations are named");
            (name, (usage.operation_type, usage.fields))
        })
        .collect()
}

/// The calls the declarations allow an operation selecting `fields` to make under `routing`,
/// each with the declaration that lists it.
fn declared_calls(
    catalog: &Catalog,
    fields: &BTreeSet<String>,
    routing: &Routing,
) -> BTreeMap<&'static str, Vec<String>> {
    let mut allowed: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut allow = |calls: &[banyan_migration::BackendCall], by: String| {
        for call in calls {
            allowed.entry(call.name).or_default().push(by.clone());
        }
    };
    let dependency = |coordinate: &str| -> Option<&'static Dependency> {
        catalog.dependencies().iter().find(|d| d.coordinate == coordinate)
    };
    // The gateway checks the caller's identity on every request.
    let identity = dependency("gateway:identity").expect("the identity check is declared");
    allow(identity.calls, identity.coordinate.to_owned());
    for field in fields {
        let migrated: Option<&FieldDeclaration> = catalog.fields().find(|f| f.key == field);
        if let Some(migrated) = migrated {
            let backend = routing.backend(migrated.key);
            allow(migrated.implementation(backend).calls, format!("{field} on {backend}"));
            if routing.shadowed && !migrated.is_write() {
                let shadow = backend.other();
                allow(migrated.implementation(shadow).calls, format!("{field} shadowed on {shadow}"));
            }
        }
        if let Some(dependency) = dependency(field) {
            allow(dependency.calls, field.clone());
        }
    }
    allowed
}

/// Variables for each contract operation, as its component would send them. A write's are read
/// from the store its routing writes to.
async fn variables_for(stack: &TestStack, name: &str, routing: &Routing) -> Value {
    match name {
        "UserMenu" | "WorkspaceSwitcher" => json!({}),
        "TemplateList" => json!({ "workspaceId": workspace_id(1), "first": 3 }),
        "RenameTemplate" => json!({ "id": template_id(3), "name": "Spring sale, final" }),
        "TemplateEditor" => json!({ "id": template_id(draft_template(stack)) }),
        "AnalyticsDashboard" => json!({ "id": template_id(2), "window": "LAST_30_DAYS", "eventsFirst": 5 }),
        "TemplateEventsFeed" => json!({ "templateIds": [template_id(2)] }),
        "WorkspaceMembers" => json!({ "id": workspace_id(1) }),
        "UpdateDraftBlock" => {
            let template = draft_template(stack);
            let store = routing.backend("Mutation.updateDraftBlock");
            let query = "query($id: ID!) { template(id: $id) { draft { version blocks { id } } } }";
            let response = post(
                stack,
                Some(&format!("Template.draft={store}")),
                query,
                json!({ "id": template_id(template) }),
            )
            .await;
            assert!(response.body.get("errors").is_none(), "the draft on {store}: {:?}", response.body);
            let draft = &response.data()["template"]["draft"];
            json!({ "input": {
                "blockId": draft["blocks"][0]["id"].as_str().expect("a block"),
                "content": format!("edited under {}", routing.name),
                "expectedVersion": draft["version"].as_u64().expect("a version"),
            } })
        }
        _ => panic!("contract operation {name} has no variables in this test: add them to variables_for"),
    }
}

/// A template of the owner's first workspace with a draft in the seeded data.
fn draft_template(stack: &TestStack) -> u64 {
    let dataset = stack.devstack.dataset();
    dataset
        .templates
        .iter()
        .find(|t| t.workspace == 1 && dataset.draft(t.id).is_some())
        .map(|t| t.id)
        .expect("a template with a draft")
}

/// POSTs as [`OWNER`] with `route` as the override header (if any) and the routing extension
/// asked for.
async fn post(stack: &TestStack, route: Option<&str>, query: &str, variables: Value) -> GraphqlResponse {
    let mut request = stack
        .http()
        .post(stack.graphql_url())
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .header("x-banyan-show-routing", "true")
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(route) = route {
        request = request.header("x-banyan-route", route);
    }
    banyan_tests::read(request.send().await.expect("the gateway answers")).await
}

/// Runs the subscription over WebSocket until one event arrives, then leaves and waits for the
/// gateway to close its gRPC stream.
async fn subscribe_until_an_event(stack: &TestStack, routing: &Routing, query: &str, variables: Value) {
    let mut socket = WsClient::connect(stack, TRANSPORT_WS, &[]).await;
    let mut payload = json!({ "Authorization": format!("Token {}", stack.token(OWNER)) });
    if let Some(route) = routing.header() {
        payload["x-banyan-route"] = json!(route);
    }
    socket.init(payload).await;
    let ack = socket.next().await.expect("an answer to connection_init");
    assert_eq!(ack["type"], "connection_ack", "{}: {ack}", routing.name);
    socket.subscribe("feed", query, variables).await;
    wait_for("the gateway opened its event stream", || stack.devstack.active_event_streams() == 1).await;
    stack.devstack.append_events(vec![(2, EventKind::Opened)]).await;
    let message = socket.next().await.expect("an event");
    assert_eq!(message["type"], "next", "{}: {message}", routing.name);
    assert!(message["payload"].get("errors").is_none(), "{}: {message}", routing.name);
    socket.close().await;
    wait_for("the gateway closed its event stream", || stack.devstack.active_event_streams() == 0).await;
}

/// Polls `done` every 25 ms, at most 400 times, and fails with `what` if it never holds.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test]
async fn every_call_of_every_contract_operation_is_declared_under_every_routing() {
    let catalog = Catalog::banyan().expect("the declarations agree");
    let selected = selected_fields();
    // Starts on the declared defaults; shadow routings rewrite the table.
    let table = RoutingTableFile::new("declared-dependencies", "");
    let table_path = table.path.clone();
    let stack = TestStack::start_with(banyan_devstack::DevStackConfig::default(), move |config| {
        config.migration.routing_table = Some(table_path);
        config.migration.reload_interval = Duration::from_millis(50);
        config.migration.allow_route_override = true;
        config.migration.expose_routing = true;
    })
    .await;
    let engine = stack.gateway.engine().clone();
    let operations = contract_operations();
    assert!(operations.len() >= 8, "the contract has the components' operations");
    let routings = routings(&catalog);
    assert_eq!(routings.len(), 2 + 2 * catalog.fields().count() + 2);

    let mut undeclared = Vec::new();
    let mut checked = 0_u32;
    for routing in &routings {
        if routing.shadowed {
            let text = routing.table(&catalog);
            let expected = RoutingTable::parse(&text, "expected", &catalog).expect("a valid table");
            table.write(&text);
            wait_for("the shadow table is live", || {
                let live = engine.live.snapshot();
                catalog
                    .keys()
                    .all(|key| live.route(key).map(|r| &r.mode) == expected.route(key).map(|r| &r.mode))
            })
            .await;
        }
        for (name, body) in &operations {
            let (operation_type, fields) =
                selected.get(name).unwrap_or_else(|| panic!("{name}: the usage walk knows it"));
            let variables = variables_for(&stack, name, routing).await;
            stack.devstack.calls().reset();
            if *operation_type == OperationType::Subscription {
                subscribe_until_an_event(&stack, routing, body, variables).await;
            } else {
                let response = post(&stack, routing.header().as_deref(), body, variables).await;
                assert_eq!(response.status, 200, "{name} under {}: {:?}", routing.name, response.body);
                assert!(
                    response.body.get("errors").is_none(),
                    "{name} under {}: {:?}",
                    routing.name,
                    response.body
                );
                // The routing really applied: every migrated field served says by which backend.
                for served in response.body["extensions"]["routing"].as_array().into_iter().flatten() {
                    let key = served["field"].as_str().expect("a field key");
                    assert_eq!(
                        served["backend"],
                        routing.backend(key).as_str(),
                        "{name} under {}",
                        routing.name
                    );
                    if routing.shadowed && !key.starts_with("Mutation.") {
                        let other = routing.backend(key).other();
                        assert_eq!(served["shadow"], other.as_str(), "{name} under {}", routing.name);
                    }
                }
                // A shadow call outlives the response: wait for every one to be done.
                wait_for("the shadow calls are done", || {
                    catalog.keys().all(|key| engine.executor.in_flight(key) == 0)
                })
                .await;
            }
            let seen = stack.devstack.calls().snapshot();
            assert!(!seen.is_empty(), "{name} under {}: no backend was called", routing.name);
            let allowed = declared_calls(&catalog, fields, routing);
            for (call, count) in &seen {
                if !allowed.contains_key(call.as_str()) {
                    undeclared.push(format!(
                        "operation {name} under routing \"{}\": undeclared call `{call}` ({count}x); \
                         the selected fields declare {:?}",
                        routing.name,
                        allowed.keys().collect::<Vec<_>>()
                    ));
                }
            }
            checked += 1;
        }
    }
    assert!(undeclared.is_empty(), "calls the declarations don't list:\n{}", undeclared.join("\n"));
    assert_eq!(checked as usize, routings.len() * operations.len());
    stack.stop().await;
}

/// The reverse direction, where it means something: every declaration names a field the schema
/// has (a declaration of a renamed field would vouch for nothing), and every root field, the
/// resolvers that always reach a backend, is declared, migrated or not.
#[test]
fn every_declaration_names_a_schema_field_and_every_root_field_is_declared() {
    let catalog = Catalog::banyan().expect("the declarations agree");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sdl = load_sdl_file(root.join("schema/schema.graphql")).expect("the schema loads");
    let schema = sdl.schema();
    let mut problems = Vec::new();
    let declared: Vec<&str> = catalog
        .fields()
        .map(|f| f.key)
        .chain(catalog.dependencies().iter().map(|d| d.coordinate))
        .filter(|coordinate| !coordinate.starts_with("gateway:"))
        .collect();
    for coordinate in &declared {
        let exists = coordinate
            .split_once('.')
            .is_some_and(|(type_name, field)| schema.type_field(type_name, field).is_ok());
        if !exists {
            problems.push(format!("`{coordinate}` is declared but the schema has no such field"));
        }
    }
    for operation_type in ["Query", "Mutation", "Subscription"] {
        let Some(object) = schema.get_object(operation_type) else { continue };
        for field in object.fields.keys() {
            let coordinate = format!("{operation_type}.{field}");
            if !declared.contains(&coordinate.as_str()) {
                problems.push(format!("root field `{coordinate}` declares no backend calls"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
