//! The gateway's edge against hostile callers (issue 8, sections 3, 4, 5, 8 and 9): the CSRF
//! rule for the session cookie, introspection, GraphiQL and suggestions as `banyan serve` has
//! them by default, errors that carry a code and the request id but nothing internal, the
//! connection-level caps, and malformed requests. Each refusal is checked by its status and code,
//! the gateway keeps serving, and the devstack's call log shows no backend was asked where none
//! should be.

use std::time::Duration;

use banyan_devstack::{Backend, Fault};
use banyan_tests::ws::{TRANSPORT_WS, WsClient};
use banyan_tests::{GraphqlResponse, OWNER, TestStack, contract_operations, read, template_id, workspace_id};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const GQL: &str = "application/graphql-response+json";
const JSON: &str = "application/json";
/// The identity check every credential costs, on the monolith.
const ME: &str = "GET /api/v1/me/";
/// An admin token long enough for `admin.token`'s rule.
const ADMIN_TOKEN: &str = "edge-security-admin-token-0123456789";
/// A bound on waiting for a socket to answer or end: against hangs, not a measurement.
const SOCKET_BOUND: Duration = Duration::from_secs(30);

fn owner_session(stack: &TestStack) -> String {
    let owner = stack.devstack.dataset().users.iter().find(|u| u.id == OWNER).expect("the owner is seeded");
    format!("sessionid={}", owner.session_id)
}

fn owner_username(stack: &TestStack) -> String {
    stack.devstack.dataset().users.iter().find(|u| u.id == OWNER).expect("seeded").username.clone()
}

async fn send(request: reqwest::RequestBuilder) -> (GraphqlResponse, Option<String>) {
    let response = request.send().await.expect("the gateway answers");
    let request_id = response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (read(response).await, request_id)
}

/// The gateway still answers, without asking any backend (so call counts stay exact).
async fn assert_answers_anonymously(stack: &TestStack) {
    let response = stack.graphql_as(None, "{ __typename }", json!({})).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.data()["__typename"], "Query");
}

// ---- Section 3: CSRF ----

#[tokio::test]
async fn a_cross_site_simple_get_or_post_with_the_session_cookie_is_refused_before_the_monolith() {
    let stack = TestStack::start().await;
    let cookie = owner_session(&stack);
    let query = "{ me { username } }";
    let get = || stack.http().get(stack.graphql_url()).query(&[("query", query)]).header("cookie", &cookie);
    let post = |content_type: Option<&str>| {
        let mut request = stack.http().post(stack.graphql_url()).header("cookie", &cookie);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(json!({ "query": query }).to_string())
    };
    // What a page on another site can make a browser send: any GET; a POST as a form or text.
    let forgeable = [
        ("GET", get()),
        ("GET, graphql-response+json", get().header("accept", GQL)),
        ("POST text/plain", post(Some("text/plain;charset=UTF-8"))),
        ("POST form", post(Some("application/x-www-form-urlencoded"))),
        ("POST multipart", post(Some("multipart/form-data; boundary=x"))),
        ("POST without Content-Type", post(None)),
    ];
    for (what, request) in forgeable {
        let (response, _) = send(request).await;
        // 403 and the code, not the 415 a text/plain body would get: the rule comes first.
        assert_eq!(response.status, 403, "{what}: {:?}", response.body);
        assert_eq!(response.error_codes(), ["CSRF_PREVENTED"], "{what}");
        assert!(response.body.get("data").is_none(), "{what}");
    }
    assert_eq!(stack.devstack.calls().total(), 0, "no backend saw a refused request");

    // The same requests with a header that forces a preflight, or as JSON, go through.
    let username = owner_username(&stack);
    let preflighted = [
        ("GET x-banyan-csrf", get().header("x-banyan-csrf", "1")),
        ("GET apollo-require-preflight", get().header("apollo-require-preflight", "true")),
        ("GET x-apollo-operation-name", get().header("x-apollo-operation-name", "Me")),
        ("POST text/plain x-banyan-csrf", post(Some("text/plain")).header("x-banyan-csrf", "1")),
        ("POST application/json", post(Some(JSON))),
    ];
    for (what, request) in preflighted {
        let (response, _) = send(request).await;
        // text/plain is still not GraphQL's media type: through the CSRF rule, then 415.
        if what.starts_with("POST text/plain") {
            assert_eq!(response.status, 415, "{what}: {:?}", response.body);
            assert_eq!(response.error_codes(), ["UNSUPPORTED_MEDIA_TYPE"], "{what}");
            continue;
        }
        assert_eq!(response.status, 200, "{what}: {:?}", response.body);
        assert_eq!(response.data()["me"]["username"], username, "{what}");
    }
    assert!(stack.devstack.calls().count(ME) >= 1, "the session was checked once let through");

    // A token is not ambient: a plain GET with it is not a CSRF risk and is served.
    let (response, _) = send(
        stack
            .http()
            .get(stack.graphql_url())
            .query(&[("query", query)])
            .header("authorization", format!("Token {}", stack.token(OWNER))),
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.data()["me"]["username"], username);
    // Nor is a request without any credential.
    let (response, _) =
        send(stack.http().get(stack.graphql_url()).query(&[("query", "{ __typename }")])).await;
    assert_eq!(response.status, 200);
    stack.stop().await;
}

#[tokio::test]
async fn the_csrf_rule_can_be_turned_off() {
    let stack = TestStack::start_with(Default::default(), |config| config.csrf.enabled = false).await;
    let (response, _) = send(
        stack
            .http()
            .get(stack.graphql_url())
            .query(&[("query", "{ me { username } }")])
            .header("cookie", owner_session(&stack)),
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.data()["me"]["username"], owner_username(&stack));
    stack.stop().await;
}

// ---- Section 4: introspection, GraphiQL, suggestions ----

/// The gateway as `banyan serve` configures it by default, with an admin token.
async fn serve_defaults() -> TestStack {
    TestStack::start_with(Default::default(), |config| {
        let listen = config.server.listen;
        config.server = banyan_gateway::config::ServerConfig { listen, ..Default::default() };
        config.admin.token = ADMIN_TOKEN.to_owned();
    })
    .await
}

#[tokio::test]
async fn introspection_in_serve_without_the_secret_is_refused_and_typename_still_works() {
    let stack = serve_defaults().await;
    let introspections = [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Query\") { name } }",
        "{ __typename ...F } fragment F on Query { __schema { types { name } } }",
        "query A { __typename } query B { ... on Query { t: __type(name: \"User\") { name } } }",
    ];
    for query in introspections {
        for user in [None, Some(OWNER)] {
            let body = json!({ "query": query, "operationName": query.contains("query B").then_some("B") });
            let mut request = stack.http().post(stack.graphql_url()).header("accept", GQL).json(&body);
            if let Some(user) = user {
                request = request.header("authorization", format!("Token {}", stack.token(user)));
            }
            let (response, _) = send(request).await;
            assert_eq!(response.status, 400, "{query}: {:?}", response.body);
            assert_eq!(response.error_codes(), ["INTROSPECTION_DISABLED"], "{query}");
            assert!(response.body.get("data").is_none(), "{query}");
        }
    }
    // A wrong admin token, or the right one in the wrong header, grants nothing.
    for (header, value) in
        [("x-banyan-admin-token", "wrong-token-wrong-token-wrong"), ("x-banyan-csrf", ADMIN_TOKEN)]
    {
        let (response, _) = send(
            stack
                .http()
                .post(stack.graphql_url())
                .header(header, value)
                .json(&json!({ "query": introspections[0] })),
        )
        .await;
        assert_eq!(response.error_codes(), ["INTROSPECTION_DISABLED"], "{header}");
    }
    // `__typename` is not schema introspection.
    assert_answers_anonymously(&stack).await;
    // The admin token opens it, over POST and GET.
    let (response, _) = send(
        stack
            .http()
            .post(stack.graphql_url())
            .header("x-banyan-admin-token", ADMIN_TOKEN)
            .json(&json!({ "query": introspections[0] })),
    )
    .await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(response.data()["__schema"]["queryType"]["name"], "Query");
    let (response, _) = send(
        stack
            .http()
            .get(stack.graphql_url())
            .query(&[("query", introspections[1])])
            .header("x-banyan-admin-token", ADMIN_TOKEN),
    )
    .await;
    assert_eq!(response.data()["__type"]["name"], "Query", "{:?}", response.body);

    // Over WebSocket, the same decision (one extension for both transports).
    let mut socket = WsClient::signed_in(&stack, OWNER).await;
    socket.subscribe("1", introspections[0], json!({})).await;
    let answer = socket.next().await.expect("an answer");
    let errors = if answer["type"] == "error" { &answer["payload"] } else { &answer["payload"]["errors"] };
    assert_eq!(errors[0]["extensions"]["code"], "INTROSPECTION_DISABLED", "{answer}");
    socket.close().await;
    // The admin token on the upgrade request grants it there too.
    let mut socket = WsClient::connect(&stack, TRANSPORT_WS, &[("x-banyan-admin-token", ADMIN_TOKEN)]).await;
    socket.init(json!({})).await;
    assert_eq!(socket.next().await.expect("an ack")["type"], "connection_ack");
    socket.subscribe("1", introspections[0], json!({})).await;
    let answer = socket.next().await.expect("an answer");
    assert_eq!(answer["type"], "next", "{answer}");
    assert_eq!(answer["payload"]["data"]["__schema"]["queryType"]["name"], "Query", "{answer}");
    socket.close().await;

    // No GraphiQL page: a browser's GET without a query is a malformed GraphQL request.
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = stack.http().get(stack.graphql_url()).header("accept", browser).send().await.expect("answers");
    assert_eq!(page.status(), 400);
    assert!(!page.text().await.unwrap_or_default().contains("graphiql"), "no GraphiQL in serve by default");
    stack.stop().await;
}

#[tokio::test]
async fn validation_errors_suggest_names_only_where_suggestions_are_on() {
    let misspelt = "{ me { usernam } }";
    let serve = serve_defaults().await;
    let dev = TestStack::start_with(Default::default(), |config| config.server.open_for_development()).await;
    let messages = |response: &GraphqlResponse| -> String {
        response.body["errors"].as_array().into_iter().flatten().map(|e| e["message"].to_string()).collect()
    };
    let on = dev.graphql(misspelt, json!({})).await;
    assert_eq!(on.error_codes(), ["GRAPHQL_VALIDATION_FAILED"]);
    // The control: the misspelling is close enough for a suggestion where they are on.
    assert!(messages(&on).contains("Did you mean \\\"username\\\""), "{}", messages(&on));
    let off = serve.graphql(misspelt, json!({})).await;
    assert_eq!(off.error_codes(), ["GRAPHQL_VALIDATION_FAILED"]);
    assert!(!messages(&off).contains("Did you mean"), "{}", messages(&off));
    assert!(!messages(&off).contains("username"), "no field name is proposed: {}", messages(&off));
    // Misspelt arguments too.
    let argument = "{ templates(workspaceId: \"x\", frist: 1) { totalCount } }";
    let off = serve.graphql(argument, json!({})).await;
    assert!(!messages(&off).contains("Did you mean"), "{}", messages(&off));
    serve.stop().await;
    dev.stop().await;
}

// ---- Section 5: error masking ----

/// Every error of `body`, over HTTP (`errors`) or WebSocket (`payload.errors`, or `payload` of an
/// `error` message).
fn all_errors(body: &Value) -> Vec<Value> {
    let errors = if body["type"] == "error" {
        &body["payload"]
    } else if body.get("payload").is_some() {
        &body["payload"]["errors"]
    } else {
        &body["errors"]
    };
    errors.as_array().cloned().unwrap_or_default()
}

/// Nothing a client may not see: the devstack's addresses, URLs, the monolith's error body,
/// gRPC status names.
fn assert_nothing_internal(stack: &TestStack, text: &str) {
    let ports = [stack.devstack.monolith_addr(), stack.devstack.events_addr(), stack.devstack.drafts_addr()]
        .map(|addr| addr.port().to_string());
    for forbidden in
        ["127.0.0.1", "http://", "Service temporarily unavailable", "Unavailable:", "status:", "tcp"]
    {
        assert!(!text.contains(forbidden), "`{forbidden}` reached the client: {text}");
    }
    for port in ports {
        assert!(!text.contains(&format!(":{port}")), "a backend port ({port}) reached the client: {text}");
    }
}

fn template_list() -> String {
    contract_operations().into_iter().find(|(name, _)| name == "TemplateList").expect("in the contract").1
}

#[tokio::test]
async fn backend_failures_reach_the_client_as_a_code_a_safe_message_and_the_request_id() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Events, Fault::error_rate(1.0));
    let variables = json!({ "workspaceId": workspace_id(1), "first": 5 });
    // With the client's own request id, and with one the gateway makes up.
    for client_id in [Some("mask-test-1"), None] {
        let mut request = stack
            .http()
            .post(stack.graphql_url())
            .header("authorization", format!("Token {}", stack.token(OWNER)))
            .json(&json!({ "query": template_list(), "variables": variables }));
        if let Some(id) = client_id {
            request = request.header("x-request-id", id);
        }
        let (response, header_id) = send(request).await;
        let header_id = header_id.expect("every response has x-request-id");
        if let Some(id) = client_id {
            assert_eq!(header_id, id);
        }
        assert_eq!(response.status, 200);
        let errors = all_errors(&response.body);
        assert_eq!(errors.len(), 5, "one per stats field: {:?}", response.body);
        for error in &errors {
            assert_eq!(error["extensions"]["code"], "BACKEND_UNAVAILABLE", "{error}");
            assert_eq!(error["extensions"]["requestId"], header_id.as_str(), "{error}");
        }
        assert_nothing_internal(&stack, &response.body.to_string());
    }

    // The identity check failing: a request-level 503, with the code and the id.
    stack.devstack.faults().set(Backend::Monolith, Fault::error_rate(1.0));
    let (response, header_id) = send(
        stack
            .http()
            .post(stack.graphql_url())
            .header("authorization", format!("Token {}", stack.token(2)))
            .header("x-request-id", "mask-test-2")
            .json(&json!({ "query": "{ me { id } }" })),
    )
    .await;
    assert_eq!(response.status, 503, "{:?}", response.body);
    assert_eq!(response.error_codes(), ["BACKEND_UNAVAILABLE"]);
    assert_eq!(response.body["errors"][0]["extensions"]["requestId"], "mask-test-2");
    assert_eq!(header_id.as_deref(), Some("mask-test-2"));
    assert_nothing_internal(&stack, &response.body.to_string());
    stack.stop().await;
}

#[tokio::test]
async fn a_failing_subscription_carries_a_code_and_the_upgrades_request_id_over_websocket() {
    let stack = TestStack::start().await;
    stack.devstack.faults().set(Backend::Events, Fault::error_rate(1.0));
    let mut socket = WsClient::connect(&stack, TRANSPORT_WS, &[("x-request-id", "ws-mask-1")]).await;
    socket.init(json!({ "Authorization": format!("Token {}", stack.token(OWNER)) })).await;
    assert_eq!(socket.next().await.expect("an ack")["type"], "connection_ack");
    let feed = contract_operations()
        .into_iter()
        .find(|(name, _)| name == "TemplateEventsFeed")
        .expect("in the contract")
        .1;
    socket.subscribe("1", &feed, json!({ "templateIds": [template_id(1)] })).await;
    let answer = socket.next().await.expect("an answer");
    let errors = all_errors(&answer);
    assert!(!errors.is_empty(), "{answer}");
    for error in &errors {
        assert_eq!(error["extensions"]["code"], "BACKEND_UNAVAILABLE", "{answer}");
        assert_eq!(error["extensions"]["requestId"], "ws-mask-1", "{answer}");
    }
    assert_nothing_internal(&stack, &answer.to_string());
    socket.close().await;
    stack.stop().await;
}

// ---- Section 8: connection-level defence ----

/// Reads until the server closes the connection (or resets it), within [`SOCKET_BOUND`]; what
/// it sent before closing.
async fn read_until_closed(socket: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(SOCKET_BOUND, socket.read_to_end(&mut received)).await;
    match read {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Err(_) => panic!("the server kept the connection open for {SOCKET_BOUND:?}"),
    }
    received
}

/// One `GET path` on an open keep-alive connection; the status line.
async fn get_on(socket: &mut TcpStream, path: &str) -> String {
    socket.write_all(format!("GET {path} HTTP/1.1\r\nHost: banyan\r\n\r\n").as_bytes()).await.expect("sent");
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    // `/healthz` answers "ok" with a Content-Length: read until the headers and the body are in.
    while !received.windows(4).any(|w| w == b"\r\n\r\n") || !received.ends_with(b"ok") {
        let n = tokio::time::timeout(SOCKET_BOUND, socket.read(&mut buffer))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&received));
        received.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&received).lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_client_that_stalls_in_its_headers_is_disconnected() {
    let stack = TestStack::start_with(Default::default(), |config| {
        config.server.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let mut socket = TcpStream::connect(stack.gateway.addr()).await.expect("connects");
    // Half a header line, then nothing.
    socket.write_all(b"GET /healthz HTTP/1.1\r\nHost: ban").await.expect("sent");
    let received = read_until_closed(&mut socket).await;
    let text = String::from_utf8_lossy(&received);
    assert!(!text.contains("200 OK"), "the stalled request was not served: {text}");
    assert_answers_anonymously(&stack).await;
    stack.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_are_closed_until_one_is_freed() {
    let stack = TestStack::start_with(Default::default(), |config| {
        config.server.max_connections = 2;
        // Idle kept-alive connections must hold their places for the whole test.
        config.server.header_read_timeout = Duration::from_secs(300);
    })
    .await;
    let addr = stack.gateway.addr();
    let mut first = TcpStream::connect(addr).await.expect("connects");
    let mut second = TcpStream::connect(addr).await.expect("connects");
    assert!(get_on(&mut first, "/healthz").await.starts_with("HTTP/1.1 200"));
    assert!(get_on(&mut second, "/healthz").await.starts_with("HTTP/1.1 200"));
    // The third: the kernel completes the handshake, the gateway closes it unanswered.
    let mut third = TcpStream::connect(addr).await.expect("the kernel accepts");
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nHost: banyan\r\n\r\n").await;
    let received = read_until_closed(&mut third).await;
    assert!(received.is_empty(), "over the cap: {}", String::from_utf8_lossy(&received));
    // The two inside are still served.
    assert!(get_on(&mut first, "/healthz").await.starts_with("HTTP/1.1 200"));
    // One leaves; a new connection gets its place (once the gateway has seen it close).
    drop(first);
    let mut served = false;
    for _ in 0..100 {
        let mut next = TcpStream::connect(addr).await.expect("connects");
        let _ = next.write_all(b"GET /healthz HTTP/1.1\r\nHost: banyan\r\nConnection: close\r\n\r\n").await;
        if String::from_utf8_lossy(&read_until_closed(&mut next).await).starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a freed place is taken by the next connection");
    drop(second);
    stack.stop().await;
}

/// `server.max_concurrent_executions`: an operation beyond the bound waits its turn rather than
/// executing beside the others. With a bound of 1 and the monolith slow, a second request's
/// backend call starts only once the first has finished, and both are answered whole.
#[tokio::test]
async fn operations_beyond_the_execution_bound_wait_their_turn() {
    const WORKSPACES: &str = "GET /api/v1/workspaces/";
    let stack = TestStack::start_with(Default::default(), |config| {
        config.server.max_concurrent_executions = 1;
        config.auth.identity_cache_ttl = Duration::from_secs(600);
        // Both requests, one after the other, well within every deadline.
        config.backends.monolith.timeout = Duration::from_secs(10);
        config.server.request_timeout = Duration::from_secs(20);
    })
    .await;
    // The caller's identity is checked (and cached) before the monolith turns slow.
    assert!(stack.graphql("{ __typename }", json!({})).await.body.get("errors").is_none());
    stack.devstack.faults().set(Backend::Monolith, Fault::latency(Duration::from_secs(3)));
    let send = || {
        let request = stack
            .http()
            .post(stack.graphql_url())
            .header("authorization", format!("Token {}", stack.token(OWNER)))
            .json(&json!({ "query": "{ workspaces { id } }" }));
        tokio::spawn(async move { request.send().await.expect("answered").json::<Value>().await })
    };
    let first = send();
    let mut started = false;
    for _ in 0..200 {
        if stack.devstack.calls().count(WORKSPACES) == 1 {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(started, "the first request reached the monolith");
    let second = send();
    // While the first is in the monolith (3 s), the second does not start its call.
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        assert_eq!(stack.devstack.calls().count(WORKSPACES), 1, "the second executes beside the first");
    }
    let expected: Vec<Value> = stack
        .devstack
        .dataset()
        .workspaces_of(OWNER)
        .into_iter()
        .map(|id| json!({ "id": workspace_id(id) }))
        .collect();
    for answer in [first, second] {
        let body = answer.await.expect("joined").expect("JSON");
        assert_eq!(body["data"]["workspaces"], json!(expected), "{body}");
    }
    assert_eq!(stack.devstack.calls().count(WORKSPACES), 2);
    stack.stop().await;
}

#[tokio::test]
async fn requests_over_the_in_flight_cap_get_503_server_busy_with_retry_after() {
    let stack = TestStack::start_with(Default::default(), |config| {
        config.server.max_in_flight_requests = 1;
        // Long enough to keep one request in flight while the test looks; it ends by itself
        // after that if the gateway has not noticed its client leave.
        config.backends.monolith.timeout = Duration::from_secs(5);
    })
    .await;
    // One request held in flight: its identity check hangs at the monolith.
    stack.devstack.faults().set(Backend::Monolith, Fault::hang());
    let held = {
        let request = stack
            .http()
            .post(stack.graphql_url())
            .header("authorization", format!("Token {}", stack.token(OWNER)))
            .json(&json!({ "query": "{ me { id } }" }));
        tokio::spawn(request.send())
    };
    let mut arrived = false;
    for _ in 0..200 {
        if stack.devstack.calls().count(ME) == 1 {
            arrived = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(arrived, "the held request reached the monolith");
    let (busy, request_id) = send(
        stack
            .http()
            .post(stack.graphql_url())
            .header("x-request-id", "busy-1")
            .json(&json!({ "query": "{ __typename }" })),
    )
    .await;
    assert_eq!(busy.status, 503, "{:?}", busy.body);
    assert_eq!(busy.error_codes(), ["SERVER_BUSY"]);
    assert_eq!(busy.body["errors"][0]["extensions"]["requestId"], "busy-1");
    assert_eq!(request_id.as_deref(), Some("busy-1"));
    let retry = stack
        .http()
        .get(stack.graphql_url())
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .expect("answers");
    assert_eq!(retry.status(), 503);
    assert_eq!(retry.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    // Probes are never turned away.
    let health =
        stack.http().get(format!("http://{}/healthz", stack.gateway.addr())).send().await.expect("answers");
    assert_eq!(health.status(), 200);
    // The held client leaves; its place frees once the gateway notices.
    held.abort();
    let mut served = false;
    for _ in 0..600 {
        if stack.graphql_as(None, "{ __typename }", json!({})).await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the gateway serves again once the held request is gone");
    stack.devstack.faults().set(Backend::Monolith, Fault::none());
    stack.stop().await;
}

// ---- Section 9: malformed requests ----

#[tokio::test]
async fn malformed_requests_get_their_status_and_code_and_no_backend_is_called() {
    let stack = TestStack::start().await;
    let token = format!("Token {}", stack.token(OWNER));
    // Signed in, so a request that got as far as the identity check would show on the monolith.
    let post = |content_type: Option<&str>, body: Vec<u8>| {
        let mut request =
            stack.http().post(stack.graphql_url()).header("authorization", &token).header("accept", GQL);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.body(body)
    };
    let anonymous = |body: Value| stack.http().post(stack.graphql_url()).header("accept", GQL).json(&body);
    let deep_list = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        ("truncated JSON", post(Some(JSON), "{\"query\": \"{ me { id } }\"".into()), 400, "BAD_REQUEST"),
        ("not JSON at all", post(Some(JSON), "query=%7B%20me%20%7D".into()), 400, "BAD_REQUEST"),
        (
            "a JSON array",
            post(Some(JSON), "[{\"query\": \"{ me { id } }\"}]".into()),
            400,
            "BATCH_NOT_SUPPORTED",
        ),
        (
            "invalid UTF-8",
            post(Some(JSON), b"{\"query\": \"{ me { id \xff } }\"}".to_vec()),
            400,
            "BAD_REQUEST",
        ),
        (
            "text/plain",
            post(Some("text/plain"), json!({ "query": "{ me { id } }" }).to_string().into()),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "application/graphql",
            post(Some("application/graphql"), "{ me { id } }".into()),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "form",
            post(Some("application/x-www-form-urlencoded"), "query=%7Bme%7D".into()),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "latin1",
            post(
                Some("application/json; charset=latin1"),
                json!({ "query": "{ me { id } }" }).to_string().into(),
            ),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "no Content-Type",
            post(None, json!({ "query": "{ me { id } }" }).to_string().into()),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (
            "oversized body",
            post(
                Some(JSON),
                json!({ "query": format!("{{ me {{ id }} }} # {}", "x".repeat(1_100_000)) })
                    .to_string()
                    .into(),
            ),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            "deeply nested variables (lists)",
            post(
                Some(JSON),
                format!("{{\"query\": \"{{ me {{ id }} }}\", \"variables\": {{\"v\": {deep_list}}}}}").into(),
            ),
            400,
            "BAD_REQUEST",
        ),
        (
            "deeply nested variables (objects)",
            post(
                Some(JSON),
                format!("{{\"query\": \"{{ me {{ id }} }}\", \"variables\": {{\"v\": {deep_object}}}}}")
                    .into(),
            ),
            400,
            "BAD_REQUEST",
        ),
        // Limits apply after the identity check: these two are sent anonymously.
        (
            "deeply nested list literal",
            anonymous(json!({ "query": format!("{{ __type(name: {deep_list}) {{ name }} }}") })),
            400,
            "NESTING_TOO_DEEP",
        ),
        (
            "deeply nested object literal",
            anonymous(json!({
                "query": format!("{{ __type(name: {}1{}) {{ name }} }}", "{a:".repeat(3_000), "}".repeat(3_000))
            })),
            400,
            "NESTING_TOO_DEEP",
        ),
        (
            "a malformed GET query string",
            stack
                .http()
                .get(format!("{}?query=%7B%20me%20%7D&variables=%7B", stack.graphql_url()))
                .header("authorization", &token)
                .header("accept", GQL),
            400,
            "BAD_REQUEST",
        ),
    ];
    for (what, request, status, code) in cases {
        let (response, _) = send(request).await;
        assert_eq!(response.status.as_u16(), status, "{what}: {:?}", response.body);
        assert_eq!(response.error_codes(), [code], "{what}");
        assert!(response.body.get("data").is_none(), "{what}");
        assert_answers_anonymously(&stack).await;
    }
    // Refused before the identity check: the token was never even looked up.
    assert_eq!(stack.devstack.calls().total(), 0, "{:?}", stack.devstack.calls().snapshot());
    // The control: the same token on a well-formed request costs one check.
    let response = stack.graphql("{ __typename }", json!({})).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
    assert_eq!(stack.devstack.calls().count(ME), 1);
    stack.stop().await;
}
