//! Who may see what: no token, no data; another workspace's data is invisible; viewers cannot
//! write; and the caller's identity reaches every backend.

use banyan_tests::{OWNER, TestStack, template_id, workspace_id};
use serde_json::{Value, json};

#[tokio::test]
async fn no_token_no_data_but_introspection_works() {
    let stack = TestStack::start().await;
    let anonymous = stack.graphql_as(None, "{ me { id } }", json!({})).await;
    assert_eq!(anonymous.error_codes(), ["UNAUTHENTICATED"]);
    // `me` is nullable: the refused field is null, beside the other roots' data.
    assert_eq!(anonymous.body["data"], json!({ "me": null }));

    let typename = stack.graphql_as(None, "{ __typename __schema { queryType { name } } }", json!({})).await;
    assert_eq!(typename.status, 200);
    assert_eq!(typename.data()["__schema"]["queryType"]["name"], "Query");
    stack.stop().await;
}

#[tokio::test]
async fn a_bad_token_is_401() {
    let stack = TestStack::start().await;
    for authorization in ["Token 0000000000000000000000000000000000000000", "Basic abc"] {
        let response = banyan_tests::read(
            stack
                .http()
                .post(stack.graphql_url())
                .header("content-type", "application/json")
                .header("authorization", authorization)
                .body(r#"{"query":"{ me { id } }"}"#)
                .send()
                .await
                .expect("answers"),
        )
        .await;
        assert_eq!(response.status, 401, "{authorization}");
        assert_eq!(response.error_codes(), ["UNAUTHENTICATED"]);
    }
    stack.stop().await;
}

#[tokio::test]
async fn the_session_cookie_works_like_a_token() {
    let stack = TestStack::start().await;
    let response = banyan_tests::read(
        stack
            .http()
            .post(stack.graphql_url())
            .header("content-type", "application/json")
            .header("cookie", format!("theme=dark; sessionid={}", stack.token(OWNER)))
            .body(r#"{"query":"{ me { username } }"}"#)
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert!(response.data()["me"]["username"].is_string(), "{:?}", response.body);
    stack.stop().await;
}

#[tokio::test]
async fn another_workspaces_template_is_not_visible() {
    let stack = TestStack::start().await;
    let foreign = stack
        .devstack
        .dataset()
        .templates
        .iter()
        .find(|t| t.workspace == 3)
        .expect("workspace 3 has templates")
        .id;
    let by_id = stack
        .graphql("query($id: ID!) { template(id: $id) { name } }", json!({ "id": template_id(foreign) }))
        .await;
    assert_eq!(by_id.data()["template"], Value::Null);

    let by_node = stack
        .graphql("query($id: ID!) { node(id: $id) { id } }", json!({ "id": template_id(foreign) }))
        .await;
    assert_eq!(by_node.data()["node"], Value::Null);

    let workspace = stack
        .graphql("query($id: ID!) { workspace(id: $id) { name } }", json!({ "id": workspace_id(3) }))
        .await;
    assert_eq!(workspace.data()["workspace"], Value::Null);

    let list = stack
        .graphql(
            "query($id: ID!) { templates(workspaceId: $id) { totalCount } }",
            json!({ "id": workspace_id(3) }),
        )
        .await;
    let total = list.data()["templates"]["totalCount"].as_i64();
    assert!(total == Some(0) || list.error_codes().contains(&"NOT_FOUND".to_owned()), "{:?}", list.body);

    let edit = stack
        .graphql(
            "mutation($input: UpdateDraftBlockInput!) { updateDraftBlock(input: $input) { __typename } }",
            json!({ "input": { "templateId": template_id(foreign), "blockId": "b1", "content": "x", "expectedVersion": 1 } }),
        )
        .await;
    assert_eq!(edit.error_codes(), ["NOT_FOUND"]);
    stack.stop().await;
}

#[tokio::test]
async fn a_viewer_cannot_edit() {
    let stack = TestStack::start().await;
    let dataset = stack.devstack.dataset();
    let viewer = dataset
        .memberships
        .iter()
        .find(|m| m.role == banyan_devstack::dataset::Role::Viewer)
        .expect("a seeded viewer");
    let template = dataset
        .templates
        .iter()
        .find(|t| t.workspace == viewer.workspace && t.id % 50 != 0)
        .expect("a template")
        .id;
    let response = stack
        .graphql_as(
            Some(viewer.user),
            "mutation($input: UpdateDraftBlockInput!) { updateDraftBlock(input: $input) { __typename } }",
            json!({ "input": { "templateId": template_id(template), "blockId": "b1", "content": "x", "expectedVersion": 1 } }),
        )
        .await;
    assert_eq!(response.error_codes(), ["FORBIDDEN"]);
    let rename = stack
        .graphql_as(
            Some(viewer.user),
            "mutation($id: ID!) { renameTemplate(id: $id, name: \"x\") { id } }",
            json!({ "id": template_id(template) }),
        )
        .await;
    assert_eq!(rename.error_codes(), ["FORBIDDEN"]);
    stack.stop().await;
}

#[tokio::test]
async fn the_callers_identity_reaches_every_backend() {
    let stack = TestStack::start().await;
    let response = stack
        .graphql(
            "query($id: ID!) { template(id: $id) { name stats { sent } draft { version } } }",
            json!({ "id": template_id(1) }),
        )
        .await;
    assert!(response.body.get("errors").is_none(), "{:?}", response.body);
    let calls = stack.devstack.calls();
    let monolith = calls.last_headers("GET /api/v1/templates/").expect("the monolith was called");
    assert_eq!(
        monolith.get("authorization").map(String::as_str),
        Some(format!("Token {}", stack.token(OWNER)).as_str())
    );
    for method in ["EventService/GetTemplateStats", "DraftService/BatchGetDrafts"] {
        let metadata = calls.last_headers(method).unwrap_or_else(|| panic!("{method} was called"));
        assert_eq!(metadata.get("x-banyan-user-id").map(String::as_str), Some("1"), "{method}");
        assert!(metadata.contains_key("grpc-timeout"), "{method} carries a deadline");
    }
    stack.stop().await;
}
