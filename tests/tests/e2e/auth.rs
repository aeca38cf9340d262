//! Who may see what: no token, no data; another workspace's data is invisible; viewers cannot
//! write; and the caller's identity reaches every backend.

use banyan_devstack::{Backend, DevStackConfig, Fault};
use banyan_tests::{GraphqlResponse, OWNER, TestStack, block_id, template_id, workspace_id};
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

/// POSTs a GraphQL request with exactly these extra headers (no `Authorization` unless given).
async fn post_with(
    stack: &TestStack,
    headers: &[(&str, String)],
    query: &str,
    variables: Value,
) -> GraphqlResponse {
    let mut request = stack
        .http()
        .post(stack.graphql_url())
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    banyan_tests::read(request.send().await.expect("the gateway answers")).await
}

/// A CSRF secret as Django's `get_token` makes them: 32 characters of `a-zA-Z0-9`.
const CSRF_SECRET: &str = "k2Jd8sLq0ZxV7bNm4PwE6rTy1UiO9aHc";

const RENAME: &str = "mutation($id: ID!, $name: String!) { renameTemplate(id: $id, name: $name) { name } }";

#[tokio::test]
async fn a_session_cookie_signs_in_as_a_django_session() {
    let stack = TestStack::start().await;
    let owner = stack.devstack.dataset().user(OWNER).expect("seeded").clone();
    assert_ne!(owner.session_id, owner.token, "the devstack's session ids are not tokens");
    let cookie = format!("theme=dark; sessionid={}", owner.session_id);
    let response = post_with(&stack, &[("cookie", cookie)], "{ me { username } }", json!({})).await;
    assert_eq!(response.data()["me"]["username"], owner.username.as_str(), "{:?}", response.body);

    // The monolith saw the session as a Cookie, not as a token.
    let me = stack.devstack.calls().last_headers("GET /api/v1/me/").expect("the identity was checked");
    assert_eq!(me.get("cookie"), Some(&format!("sessionid={}", owner.session_id)));
    assert_eq!(me.get("authorization"), None);

    // A token is not a session id: as a cookie it signs no one in.
    let wrong =
        post_with(&stack, &[("cookie", format!("sessionid={}", owner.token))], "{ me { id } }", json!({}))
            .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_codes(), ["UNAUTHENTICATED"]);
    stack.stop().await;
}

#[tokio::test]
async fn a_mutation_by_session_carries_the_callers_csrf_proof() {
    let stack = TestStack::start().await;
    let owner = stack.devstack.dataset().user(OWNER).expect("seeded").clone();
    let variables = |name: &str| json!({ "id": template_id(3), "name": name });

    // Without the CSRF header, Django refuses the write: FORBIDDEN on the field, not a 5xx.
    let cookie = format!("sessionid={}; csrftoken={CSRF_SECRET}", owner.session_id);
    let refused = post_with(&stack, &[("cookie", cookie.clone())], RENAME, variables("No proof")).await;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.error_codes(), ["FORBIDDEN"], "{:?}", refused.body);
    assert_eq!(refused.data()["renameTemplate"], Value::Null);

    // With the cookie and the matching X-CSRFToken header, it goes through.
    let headers = [("cookie", cookie), ("x-csrftoken", CSRF_SECRET.to_owned())];
    let renamed = post_with(&stack, &headers, RENAME, variables("Renamed in a browser")).await;
    assert!(renamed.body.get("errors").is_none(), "{:?}", renamed.body);
    assert_eq!(renamed.data()["renameTemplate"]["name"], "Renamed in a browser");
    let patch = stack
        .devstack
        .calls()
        .last_headers("PATCH /api/v1/templates/{id}/")
        .expect("the monolith was called");
    assert_eq!(
        patch.get("cookie"),
        Some(&format!("sessionid={}; csrftoken={CSRF_SECRET}", owner.session_id))
    );
    assert_eq!(patch.get("x-csrftoken").map(String::as_str), Some(CSRF_SECRET));
    assert_eq!(patch.get("authorization"), None);
    // Reads (here the identity check) carry only the session: CSRF proof is for writes.
    let read = stack.devstack.calls().last_headers("GET /api/v1/me/").expect("the identity was checked");
    assert_eq!(read.get("cookie"), Some(&format!("sessionid={}", owner.session_id)));
    assert_eq!(read.get("x-csrftoken"), None);
    stack.stop().await;
}

#[tokio::test]
async fn drf_answering_403_to_an_unknown_credential_is_still_unauthenticated() {
    let devstack = DevStackConfig { session_authentication_first: true, ..DevStackConfig::default() };
    let stack = TestStack::start_with(devstack, |_| {}).await;
    let owner = stack.devstack.dataset().user(OWNER).expect("seeded").clone();
    let unknown = [
        ("authorization", "Token 0000000000000000000000000000000000000000".to_owned()),
        ("cookie", "sessionid=expiredexpiredexpiredexpired0000".to_owned()),
    ];
    for (name, value) in unknown {
        let response = post_with(&stack, &[(name, value)], "{ me { id } }", json!({})).await;
        assert_eq!(response.status, 401, "{name}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["UNAUTHENTICATED"], "{name}");
    }
    // The monolith did answer 403 to them.
    assert_eq!(stack.devstack.calls().count("GET /api/v1/me/"), 2);
    let session = post_with(
        &stack,
        &[("cookie", format!("sessionid={}", owner.session_id))],
        "{ me { id } }",
        json!({}),
    )
    .await;
    assert!(session.body.get("errors").is_none(), "{:?}", session.body);
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
            json!({ "input": { "blockId": block_id(foreign, "b1"), "content": "x", "expectedVersion": 1 } }),
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
            json!({ "input": { "blockId": block_id(template, "b1"), "content": "x", "expectedVersion": 1 } }),
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

#[tokio::test]
async fn a_refused_token_is_remembered_for_the_negative_ttl() {
    let stack = TestStack::start().await;
    let unknown = [("authorization", "Token 1111111111111111111111111111111111111111".to_owned())];
    for attempt in 0..2 {
        let response = post_with(&stack, &unknown, "{ me { id } }", json!({})).await;
        assert_eq!(response.status, 401, "attempt {attempt}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["UNAUTHENTICATED"], "attempt {attempt}");
    }
    // The second refusal came from the cache (default `auth.negative_cache_ttl`, 5s).
    assert_eq!(stack.devstack.calls().count("GET /api/v1/me/"), 1);
    stack.stop().await;
}

#[tokio::test]
async fn a_failed_identity_check_is_not_cached() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Monolith, Fault { refuse_connections: true, ..Fault::default() });
    let failed = stack.graphql("{ me { id } }", json!({})).await;
    assert_eq!(failed.status, 503, "{:?}", failed.body);
    assert_eq!(failed.error_codes(), ["BACKEND_UNAVAILABLE"]);
    stack.devstack.faults().clear(Backend::Monolith);
    // The same token works on the next request: the failure was neither cached as a refusal nor
    // as anything else.
    let answered = stack.graphql("{ me { id } }", json!({})).await;
    assert!(answered.body.get("errors").is_none(), "{:?}", answered.body);
    assert_eq!(answered.data()["me"]["id"], banyan_tests::user_id(OWNER));
    stack.stop().await;
}
