//! What operators and browsers rely on around the GraphQL endpoint: readiness while draining,
//! the request id from client to every backend, and the CORS allow-list.

use std::time::Duration;

use banyan_devstack::DevStackConfig;
use banyan_tests::{OWNER, TestStack, template_id};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::json;

/// `GET http://<gateway>/<path>`: the status, or `None` when no answer came (refused, reset).
async fn status_of(http: &reqwest::Client, url: &str) -> Option<StatusCode> {
    http.get(url).send().await.ok().map(|response| response.status())
}

#[tokio::test]
async fn readyz_answers_503_while_draining_and_requests_are_still_served() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        // Longer than the test: the drain is cut short by aborting the shutdown below.
        config.server.shutdown_delay = Duration::from_secs(3600);
    })
    .await;
    let http = stack.http().clone();
    let base = format!("http://{}", stack.gateway.addr());
    let (readyz, healthz) = (format!("{base}/readyz"), format!("{base}/healthz"));
    let token = stack.token(OWNER);
    assert_eq!(status_of(&http, &readyz).await, Some(StatusCode::OK), "ready before shutdown");

    let (devstack, gateway) = (stack.devstack, stack.gateway);
    let shutdown = tokio::spawn(gateway.shutdown());
    let mut seen = Vec::new();
    for _ in 0..100 {
        let status = status_of(&http, &readyz).await;
        seen.push(status);
        if status == Some(StatusCode::SERVICE_UNAVAILABLE) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.last(), Some(&Some(StatusCode::SERVICE_UNAVAILABLE)), "readyz while draining: {seen:?}");
    let body = http.get(&readyz).send().await.expect("still answering").text().await.expect("a body");
    assert_eq!(body, "shutting down");
    assert_eq!(status_of(&http, &healthz).await, Some(StatusCode::OK), "alive while draining");
    // New requests, on new connections, are still served while load balancers catch up.
    let fresh = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("a client");
    let response = fresh
        .post(format!("{base}/graphql"))
        .header("authorization", format!("Token {token}"))
        .json(&json!({ "query": "{ me { id } }" }))
        .send()
        .await
        .expect("served while draining");
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["data"]["me"]["id"], banyan_tests::user_id(OWNER), "{body}");

    shutdown.abort();
    let _ = shutdown.await;
    devstack.shutdown().await;
}

#[tokio::test]
async fn after_the_shutdown_delay_the_listener_closes() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.server.shutdown_delay = Duration::from_millis(200);
    })
    .await;
    let addr = stack.gateway.addr();
    let (devstack, gateway) = (stack.devstack, stack.gateway);
    gateway.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens on {addr} after shutdown");
    devstack.shutdown().await;
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The backends a query for a template's name, stats and draft reaches, as the devstack counts
/// them: the identity check, the monolith, EventService, DraftService.
const EVERY_BACKEND: [&str; 4] = [
    "GET /api/v1/me/",
    "GET /api/v1/templates/",
    "EventService/GetTemplateStats",
    "DraftService/BatchGetDrafts",
];

const TEMPLATE_QUERY: &str =
    "query($id: ID!) { template(id: $id) { name stats { sent } draft { version } } }";

#[tokio::test]
async fn the_clients_request_id_reaches_every_backend_and_comes_back() {
    let stack = TestStack::start().await;
    let request_id = "client-chosen-7f3c9a";
    let response = stack
        .http()
        .post(stack.graphql_url())
        .header("authorization", format!("Token {}", stack.token(OWNER)))
        .header("x-request-id", request_id)
        .json(&json!({ "query": TEMPLATE_QUERY, "variables": { "id": template_id(1) } }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(header(response.headers(), "x-request-id"), Some(request_id), "echoed to the client");
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert!(body.get("errors").is_none(), "{body}");
    for backend in EVERY_BACKEND {
        let headers =
            stack.devstack.calls().last_headers(backend).unwrap_or_else(|| panic!("{backend} called"));
        assert_eq!(headers.get("x-request-id").map(String::as_str), Some(request_id), "{backend}");
    }
    stack.stop().await;
}

#[tokio::test]
async fn without_a_client_request_id_a_new_one_is_made_and_sent_to_every_backend() {
    let stack = TestStack::start().await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        // Count each request's calls on their own (the identity is cached after the first, so
        // only the data backends are checked).
        stack.devstack.calls().reset();
        let response = stack
            .http()
            .post(stack.graphql_url())
            .header("authorization", format!("Token {}", stack.token(OWNER)))
            .json(&json!({ "query": TEMPLATE_QUERY, "variables": { "id": template_id(2) } }))
            .send()
            .await
            .expect("an answer");
        let id =
            header(response.headers(), "x-request-id").expect("an x-request-id on the response").to_owned();
        let body: serde_json::Value = response.json().await.expect("JSON");
        assert!(body.get("errors").is_none(), "{body}");
        for backend in EVERY_BACKEND.iter().skip(1) {
            let headers =
                stack.devstack.calls().last_headers(backend).unwrap_or_else(|| panic!("{backend} called"));
            assert_eq!(headers.get("x-request-id"), Some(&id), "{backend}");
        }
        ids.push(id);
    }
    assert!(ids[0].len() >= 16, "an id worth the name: {:?}", ids[0]);
    assert_ne!(ids[0], ids[1], "each request gets its own id");
    stack.stop().await;
}

const ALLOWED: &str = "https://app.example.com";

async fn cors_stack() -> TestStack {
    TestStack::start_with(DevStackConfig::default(), |config| {
        config.cors.allowed_origins = vec![ALLOWED.to_owned()];
    })
    .await
}

async fn preflight(stack: &TestStack, origin: &str) -> reqwest::Response {
    stack
        .http()
        .request(reqwest::Method::OPTIONS, stack.graphql_url())
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, authorization")
        .send()
        .await
        .expect("an answer")
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_is_allowed_with_credentials() {
    let stack = cors_stack().await;
    let response = preflight(&stack, ALLOWED).await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(header(headers, "access-control-allow-credentials"), Some("true"));
    let methods = header(headers, "access-control-allow-methods").unwrap_or_default().to_ascii_uppercase();
    assert!(methods.contains("POST") && methods.contains("GET"), "{methods}");
    let allowed_headers =
        header(headers, "access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    for needed in ["content-type", "authorization"] {
        assert!(allowed_headers.contains(needed), "{needed} in {allowed_headers}");
    }
    let vary = header(headers, "vary").unwrap_or_default().to_ascii_lowercase();
    assert!(vary.contains("origin"), "caches keep answers per origin: vary = {vary}");
    // The default `cors.max_age`, 10 minutes, in seconds.
    assert_eq!(header(headers, "access-control-max-age"), Some("600"));

    // The request itself, from that origin, may be read by the page.
    let response = stack
        .http()
        .post(stack.graphql_url())
        .header("origin", ALLOWED)
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(header(response.headers(), "access-control-allow-origin"), Some(ALLOWED));
    stack.stop().await;
}

#[tokio::test]
async fn a_preflight_is_cached_for_the_configured_max_age() {
    let stack = TestStack::start_with(DevStackConfig::default(), |config| {
        config.cors.allowed_origins = vec![ALLOWED.to_owned()];
        config.cors.max_age = std::time::Duration::from_secs(90 * 60);
    })
    .await;
    let response = preflight(&stack, ALLOWED).await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(header(response.headers(), "access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(header(response.headers(), "access-control-max-age"), Some("5400"));
    stack.stop().await;
}

#[tokio::test]
async fn a_preflight_from_an_origin_not_on_the_list_is_not_allowed() {
    let stack = cors_stack().await;
    // Another host, a longer host with the allowed one as prefix, another scheme, another port.
    for origin in [
        "https://evil.example.net",
        "https://app.example.com.evil.net",
        "http://app.example.com",
        "https://app.example.com:8443",
    ] {
        let response = preflight(&stack, origin).await;
        let headers = response.headers();
        assert_eq!(header(headers, "access-control-allow-origin"), None, "{origin}: {headers:?}");

        let response = stack
            .http()
            .post(stack.graphql_url())
            .header("origin", origin)
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .expect("an answer");
        assert_eq!(header(response.headers(), "access-control-allow-origin"), None, "{origin}");
    }
    stack.stop().await;
}
