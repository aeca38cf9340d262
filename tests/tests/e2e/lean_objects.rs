//! Objects resolved on the lean path (the default gateway, with no per-field extension) answer
//! exactly as async-graphql's own containers do (a replica with `server.field_spans`, whose
//! extension every field must pass through): the same data and the same errors, for every
//! query of the contract, a wide query, fragments, merged selections, and a failing backend.

use std::net::SocketAddr;

use banyan_devstack::{Backend, Fault};
use banyan_tests::{OWNER, TestStack, contract_operation, template_id, workspace_id};
use serde_json::{Value, json};

/// The answer of the gateway at `addr`, as the owner, with its errors sorted (each path
/// reports its errors in the order its fields finish) and without their request ids.
async fn answer(stack: &TestStack, addr: SocketAddr, query: &str, variables: &Value) -> Value {
    let response = stack.graphql_to(addr, Some(OWNER), query, variables.clone()).await;
    assert_eq!(response.status, 200, "{query}: {}", response.body);
    let mut body = response.without_request_ids();
    if let Some(errors) = body.get_mut("errors").and_then(Value::as_array_mut) {
        errors.sort_by_key(Value::to_string);
    }
    body
}

/// The fields of `type_name` that are leaves (scalars and enums, in lists or not) and take no
/// required argument, as the gateway at `addr` introspects them: every plain field the type may
/// answer leanly, whatever its list of them says.
async fn leaves(stack: &TestStack, addr: SocketAddr, type_name: &str) -> String {
    let query = "query Leaves($name: String!) { __type(name: $name) { fields { name \
                 args { defaultValue type { kind } } \
                 type { kind ofType { kind ofType { kind ofType { kind } } } } } } }";
    let body = answer(stack, addr, query, &json!({ "name": type_name })).await;
    let fields = body["data"]["__type"]["fields"].as_array().cloned().unwrap_or_default();
    let mut leaves = Vec::new();
    for field in &fields {
        let mut ty = &field["type"];
        while ty["kind"] == "NON_NULL" || ty["kind"] == "LIST" {
            ty = &ty["ofType"];
        }
        let required = field["args"].as_array().is_some_and(|args| {
            args.iter().any(|arg| arg["type"]["kind"] == "NON_NULL" && arg["defaultValue"].is_null())
        });
        if (ty["kind"] == "SCALAR" || ty["kind"] == "ENUM") && !required {
            leaves.push(field["name"].as_str().unwrap_or_default().to_owned());
        }
    }
    assert!(!leaves.is_empty(), "{type_name}: {body}");
    leaves.join(" ")
}

#[tokio::test]
async fn every_leaf_of_every_lean_type_answers_as_its_generated_resolver() {
    let stack = TestStack::start().await;
    let replica = stack.replica(|config| config.server.field_spans = true).await;
    let (lean, containers) = (stack.gateway.addr(), replica.addr());
    let mut leaf = std::collections::HashMap::new();
    for type_name in
        ["Template", "User", "Workspace", "WorkspaceMember", "TemplateStats", "Draft", "Block", "EmailEvent"]
    {
        leaf.insert(type_name, leaves(&stack, containers, type_name).await);
    }
    let user = &leaf["User"];
    let query = format!(
        "query Every($ws: ID!, $t: ID!) {{ me {{ {user} }} \
         workspace(id: $ws) {{ {workspace} members {{ {member} user {{ {user} }} }} }} \
         template(id: $t) {{ {template} createdBy {{ {user} }} workspace {{ {workspace} }} \
         stats {{ {stats} }} s90: stats(window: LAST_90_DAYS) {{ {stats} }} \
         draft {{ {draft} blocks {{ {block} }} updatedBy {{ {user} }} template {{ {template} }} }} \
         recentEvents(first: 5) {{ nodes {{ {event} template {{ id }} }} }} }} }}",
        workspace = leaf["Workspace"],
        member = leaf["WorkspaceMember"],
        template = leaf["Template"],
        stats = leaf["TemplateStats"],
        draft = leaf["Draft"],
        block = leaf["Block"],
        event = leaf["EmailEvent"],
    );
    let variables = json!({ "ws": workspace_id(1), "t": template_id(1) });
    let expected = answer(&stack, containers, &query, &variables).await;
    assert_eq!(answer(&stack, lean, &query, &variables).await, expected, "{query}");
    assert!(expected.get("errors").is_none(), "{expected}");
    // Every object the query reaches is there, so each type's leaves were all answered.
    let template = &expected["data"]["template"];
    for present in [
        &expected["data"]["me"]["id"],
        &expected["data"]["workspace"]["members"][0]["user"]["id"],
        &template["createdBy"]["id"],
        &template["stats"]["window"],
        &template["draft"]["blocks"][0]["id"],
        &template["draft"]["template"]["id"],
        &template["recentEvents"]["nodes"][0]["templateId"],
    ] {
        assert!(present.is_string(), "{expected}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn lean_objects_answer_as_async_graphqls_containers() {
    let stack = TestStack::start().await;
    let replica = stack.replica(|config| config.server.field_spans = true).await;
    let (lean, containers) = (stack.gateway.addr(), replica.addr());

    // The harness's wide query, with a page's cursors and each template's workspace added.
    let wide = "{ workspaces { id name members { id role user { id fullName } } \
                templates(first: 10) { totalCount pageInfo { startCursor endCursor hasNextPage } \
                edges { cursor node { id createdBy { fullName } workspace { name } stats { sent openRate } \
                draft { version blocks { id kind } } } } } } }";
    // Fragments on the type and on the interface it implements, inline fragments, aliases, a
    // field asked twice with different sub-selections, `__typename` at every level.
    let tricky = "query Tricky($ws: ID!) { templates(workspaceId: $ws, first: 7) { __typename \
                  edges { __typename node { ...Row ... on Node { id __typename } ... { n: name } \
                  createdBy { id } createdBy { fullName __typename } s7: stats { sent } } } \
                  nodes { id name } pageInfo { startCursor endCursor hasPreviousPage } } } \
                  fragment Row on Template { id name status stats(window: LAST_30_DAYS) { window sent openRate } \
                  workspace { ...W } } fragment W on Workspace { id name slug }";
    // Objects merged under a key selected twice, by async-graphql's containers (the root, a
    // connection) and by lean objects.
    let merged = "query Merged($ws: ID!) { me { id } me { fullName } templates(workspaceId: $ws, first: 5) \
                  { edges { node { id createdBy { id } } } edges { cursor node { name createdBy { fullName } } } } }";
    let documents = [
        (contract_operation("TemplateList"), json!({ "workspaceId": workspace_id(1) })),
        (contract_operation("TemplateList"), json!({ "workspaceId": workspace_id(2), "first": 100 })),
        (contract_operation("TemplateEditor"), json!({ "id": template_id(1) })),
        (contract_operation("AnalyticsDashboard"), json!({ "id": template_id(1), "window": "LAST_30_DAYS" })),
        (contract_operation("WorkspaceMembers"), json!({ "id": workspace_id(1) })),
        (contract_operation("UserMenu"), json!({})),
        (contract_operation("WorkspaceSwitcher"), json!({})),
        (wide.to_owned(), json!({})),
        (tricky.to_owned(), json!({ "ws": workspace_id(1) })),
        (merged.to_owned(), json!({ "ws": workspace_id(1) })),
    ];
    let mut objects = 0;
    for (query, variables) in &documents {
        let expected = answer(&stack, containers, query, variables).await;
        assert_eq!(answer(&stack, lean, query, variables).await, expected, "{query}");
        assert!(expected.get("errors").is_none(), "{query}: {expected}");
        objects += expected.to_string().matches('{').count();
    }
    assert!(objects > 800, "the documents resolved {objects} objects");

    // A failing backend: each stats field null with its error, the rest of every object kept.
    stack.devstack.faults().set(Backend::Events, Fault { error_rate: 1.0, ..Fault::default() });
    for (query, variables) in &documents[..1] {
        let expected = answer(&stack, containers, query, variables).await;
        assert_eq!(answer(&stack, lean, query, variables).await, expected, "{query}");
        let errors = expected["errors"].as_array().map_or(0, Vec::len);
        assert_eq!(errors, 50, "{expected}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn a_key_selected_twice_is_answered_once_in_the_bytes_sent() {
    let stack = TestStack::start().await;
    let replica = stack.replica(|config| config.server.field_spans = true).await;
    // Leaves selected twice (through an interface's fragment, a fragment spread, an alias used
    // twice) and no object merged: the written path, where each object must see the repeat.
    let query = "query Repeats($ws: ID!) { templates(workspaceId: $ws, first: 3) { edges { node { \
                 id name ... on Node { id } ...Row createdBy { fullName fullName } } } } } \
                 fragment Row on Template { n: status n: status name }";
    let variables = json!({ "ws": workspace_id(1) });
    let expected = answer(&stack, replica.addr(), query, &variables).await;
    assert_eq!(answer(&stack, stack.gateway.addr(), query, &variables).await, expected);
    assert!(expected.get("errors").is_none(), "{expected}");
    let sent = stack
        .http()
        .post(format!("http://{}/graphql", stack.gateway.addr()))
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("the gateway answers")
        .text()
        .await
        .expect("a body");
    // serde_json keeps the last of two equal keys, so the comparison above cannot see a repeat;
    // the bytes can. Three templates: each key once per object.
    for (key, times) in [("\"id\":", 3), ("\"name\":", 3), ("\"n\":", 3), ("\"fullName\":", 3)] {
        assert_eq!(sent.matches(key).count(), times, "{key} in {sent}");
    }
    stack.stop().await;
}
