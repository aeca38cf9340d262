//! The GraphQL-over-HTTP specification, audited the way the reference implementation's
//! `serverAudits` does (graphql-http): media types, GET and POST, parameters, status codes.
//! One gateway serves all the checks; each check names the audit it mirrors.

use banyan_tests::{GraphqlResponse, TestStack, read};
use serde_json::{Value, json};

const GQL: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

async fn post(
    stack: &TestStack,
    content_type: Option<&str>,
    accept: Option<&str>,
    body: Option<String>,
) -> GraphqlResponse {
    let mut request = stack.http().post(stack.graphql_url());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    read(request.send().await.expect("answers")).await
}

async fn get(stack: &TestStack, params: &[(&str, &str)], accept: Option<&str>) -> GraphqlResponse {
    let mut request = stack.http().get(stack.graphql_url()).query(params);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    read(request.send().await.expect("answers")).await
}

fn typename() -> String {
    json!({ "query": "{ __typename }" }).to_string()
}

#[tokio::test]
async fn media_types_and_encoding() {
    let stack = TestStack::start().await;
    // 22EB, 4655, 47DE: the response type follows Accept; */* gets JSON.
    for (accept, expected) in [(GQL, GQL), (JSON, JSON), ("*/*", JSON)] {
        let response = post(&stack, Some(JSON), Some(accept), Some(typename())).await;
        assert_eq!(response.status, 200, "{accept}");
        assert!(response.content_type.starts_with(expected), "{accept} → {}", response.content_type);
        assert!(response.content_type.contains("charset=utf-8"), "82A3: {}", response.content_type);
        assert_eq!(response.data()["__typename"], "Query");
    }
    // 80D8: no Accept means JSON.
    let response = get(&stack, &[("query", "{ __typename }")], None).await;
    assert_eq!(response.status, 200);
    assert!(response.content_type.starts_with(JSON));
    // BF61, 78D5: UTF-8 with and without a charset; other charsets are refused.
    assert_eq!(
        post(&stack, Some("application/json; charset=utf-8"), None, Some(typename())).await.status,
        200
    );
    assert_eq!(
        post(&stack, Some("application/json; charset=latin1"), None, Some(typename())).await.status,
        415
    );
    // Neither type acceptable: 406.
    assert_eq!(post(&stack, Some(JSON), Some("text/plain"), Some(typename())).await.status, 406);
    stack.stop().await;
}

#[tokio::test]
async fn get_requests_run_queries_only() {
    let stack = TestStack::start().await;
    // 5A70, D6D5, 6A70: queries in the URL, variables as URL-encoded JSON.
    let query = "query Type($name: String!) { __type(name: $name) { name } }";
    for accept in [GQL, JSON] {
        let response =
            get(&stack, &[("query", query), ("variables", r#"{"name":"Template"}"#)], Some(accept)).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.data()["__type"]["name"], "Template");
    }
    // 9C48: no mutations over GET, with Allow: POST.
    let response = stack
        .http()
        .get(stack.graphql_url())
        .query(&[("query", "mutation { renameTemplate(id: \"x\", name: \"y\") { id } }")])
        .header("accept", GQL)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    // Other methods are 405 too.
    let put = stack.http().put(stack.graphql_url()).send().await.expect("answers");
    assert_eq!(put.status(), 405);
    stack.stop().await;
}

#[tokio::test]
async fn post_requests_need_json() {
    let stack = TestStack::start().await;
    // 9ABE: no Content-Type is 4xx.
    let response = post(&stack, None, None, None).await;
    assert!(response.status.is_client_error(), "{}", response.status);
    // 7267, A5BF: a body is required.
    for accept in [GQL, JSON] {
        let response = post(&stack, Some(JSON), Some(accept), None).await;
        assert_eq!(response.status, 400, "{accept}");
        assert!(response.body.get("errors").is_some(), "{:?}", response.body);
    }
    // Not JSON at all.
    assert_eq!(post(&stack, Some("text/plain"), None, Some(typename())).await.status, 415);
    stack.stop().await;
}

#[tokio::test]
async fn malformed_parameters_are_400_and_good_ones_run() {
    let stack = TestStack::start().await;
    let invalid_values = [json!({ "obj": "ect" }), json!(0), json!(false), json!(["array"])];
    let mut bodies: Vec<(String, Value)> =
        vec![("missing query".into(), json!({ "notquery": "{ __typename }" }))];
    for value in &invalid_values {
        bodies.push((format!("query {value}"), json!({ "query": value })));
        bodies.push((
            format!("operationName {value}"),
            json!({ "query": "{ __typename }", "operationName": value }),
        ));
    }
    for value in [json!("string"), json!(0), json!(false), json!(["array"])] {
        bodies.push((format!("variables {value}"), json!({ "query": "{ __typename }", "variables": value })));
        bodies
            .push((format!("extensions {value}"), json!({ "query": "{ __typename }", "extensions": value })));
    }
    for (what, body) in &bodies {
        // 423L, LKJx, 6C0x, 476x, 58Bx, 3E3A: a malformed request is 400 whatever the media type,
        // with an error and no data.
        for accept in [Some(GQL), Some(JSON), None] {
            let response = post(&stack, Some(JSON), accept, Some(body.to_string())).await;
            assert_eq!(response.status, 400, "{what}, accept {accept:?}");
            assert!(response.body["errors"][0]["message"].is_string(), "{what}: {:?}", response.body);
            assert!(response.body.get("data").is_none(), "{what}: {:?}", response.body);
        }
    }
    // 13EE, B8B3, 94Bx/022x, 28B9, 1B7A: what is allowed runs without errors.
    let allowed = [
        json!({ "query": "{ __typename }" }),
        json!({ "operationName": "Query", "query": "query Query { __typename }" }),
        json!({ "query": "{ __typename }", "variables": null, "operationName": null, "extensions": null }),
        json!({ "query": "query Type($name: String!) { __type(name: $name) { name } }", "variables": { "name": "sometype" } }),
        json!({ "query": "{ __typename }", "extensions": { "some": "value" } }),
    ];
    for body in allowed {
        for accept in [GQL, JSON] {
            let response = post(&stack, Some(JSON), Some(accept), Some(body.to_string())).await;
            assert_eq!(response.status, 200, "{body}");
            assert!(response.body.get("errors").is_none(), "{body}: {:?}", response.body);
        }
    }
    stack.stop().await;
}

#[tokio::test]
async fn request_errors_are_400_for_graphql_response_json_and_200_for_json() {
    let stack = TestStack::start().await;
    // BCF8, B7N8: a body that is not JSON is 400 for both media types.
    for accept in [GQL, JSON] {
        let response = post(&stack, Some(JSON), Some(accept), Some("{ \"not a JSON".to_owned())).await;
        assert_eq!(response.status, 400, "{accept}");
    }
    // GraphQL request errors: 400 with graphql-response+json, 200 with JSON.
    let cases = [
        (
            "variable coercion failure",
            json!({ "query": "query($n: Int!) { __typename }", "variables": { "n": "x" } }).to_string(),
        ),
        ("document parse failure", json!({ "query": "{" }).to_string()),
        ("validation failure", json!({ "query": "{ 8f31403dfe404bccbb0e835f2629c6a7 }" }).to_string()),
        ("unknown operation", json!({ "query": "query A { __typename }", "operationName": "B" }).to_string()),
    ];
    for (what, body) in cases {
        // 556A, 74FF, 86EE (and D586, 5E5B: no data).
        let strict = post(&stack, Some(JSON), Some(GQL), Some(body.clone())).await;
        assert_eq!(strict.status, 400, "{what}");
        assert!(strict.body.get("data").is_none(), "{what}: {:?}", strict.body);
        assert!(strict.body["errors"][0]["message"].is_string(), "{what}");
        // 572B, FDE2, 7B9B.
        let legacy = post(&stack, Some(JSON), Some(JSON), Some(body)).await;
        assert_eq!(legacy.status, 200, "{what}");
        assert!(legacy.body.get("errors").is_some(), "{what}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn field_errors_keep_status_200_and_data() {
    let stack = TestStack::start().await;
    // A field error is not a request error: 200 and a data entry, even with graphql-response+json.
    let response = stack.graphql_as(None, "{ __typename me { id } }", json!({})).await;
    assert_eq!(response.status, 200);
    assert!(response.body.get("data").is_some());
    assert_eq!(response.error_codes(), ["UNAUTHENTICATED"]);
    stack.stop().await;
}

#[tokio::test]
async fn limits_refuse_expensive_documents() {
    let stack = TestStack::start().await;
    // Which limit fired is in the code (tests/tests/e2e/limits.rs checks each limit).
    let of_types = 17;
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {{ {} name {} }} }} }} }} }}",
        "ofType { ".repeat(of_types),
        "} ".repeat(of_types)
    );
    let response = stack.graphql(&deep, json!({})).await;
    assert_eq!(response.status, 400, "{:?}", response.body);
    assert_eq!(response.error_codes(), ["INTROSPECTION_TOO_DEEP"]);

    let aliases: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
    let response = stack.graphql(&format!("{{ {aliases} }}"), json!({})).await;
    assert_eq!(response.status, 400);
    assert_eq!(response.error_codes(), ["TOO_MANY_ALIASES"]);

    let oversized =
        json!({ "query": format!("{{ __typename }} # {}", "x".repeat(2 * 1024 * 1024)) }).to_string();
    let response = post(&stack, Some(JSON), Some(GQL), Some(oversized)).await;
    assert_eq!(response.status, 413);
    stack.stop().await;
}

#[tokio::test]
async fn browsers_get_graphiql_and_probes_get_health() {
    let stack = TestStack::start_with(banyan_devstack::DevStackConfig::default(), |config| {
        config.server.graphiql = true;
        config.server.graphiql_cdn = "https://npm.internal.example/".to_owned();
    })
    .await;
    let page =
        stack.http().get(stack.graphql_url()).header("accept", "text/html").send().await.expect("answers");
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap_or_default();
    assert!(html.contains("graphiql.min.js"), "the GraphiQL page");
    assert!(!html.contains("https://unpkg.com"), "assets come from the configured CDN");
    assert!(
        html.contains("https://npm.internal.example/graphiql@4.1.2/graphiql.min.js"),
        "assets come from the configured CDN, at the built-in version"
    );
    for path in ["healthz", "readyz"] {
        let response = stack
            .http()
            .get(format!("http://{}/{path}", stack.gateway.addr()))
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 200, "{path}");
    }
    let response = stack
        .http()
        .post(stack.graphql_url())
        .header("content-type", JSON)
        .body(typename())
        .send()
        .await
        .expect("answers");
    assert!(response.headers().contains_key("x-request-id"), "every response carries a request id");
    stack.stop().await;
}
