//! Rate limiting over real sockets (issue 8, item 7): a token bucket per caller, 429 with
//! `Retry-After` and `RATE_LIMITED` once a caller's burst is spent; anonymous callers keyed by
//! address, signed-in ones by user; refused credentials paid for by their address, before the
//! monolith is asked again; `X-Forwarded-For` believed only from a trusted proxy.
//!
//! Deterministic: the buckets refill at one request per 10 000 s, so nothing refills while a
//! test runs, and no assertion depends on timing.

use banyan_devstack::DevStackConfig;
use banyan_tests::{GraphqlResponse, OWNER, TestStack, read};
use serde_json::json;

const BURST: u32 = 2;
const REQUESTS_PER_SECOND: f64 = 0.0001;
const ME: &str = "GET /api/v1/me/";

async fn start(trusted_proxies: &[&str]) -> TestStack {
    let trusted_proxies = trusted_proxies.iter().map(|s| (*s).to_owned()).collect();
    TestStack::start_with(DevStackConfig::default(), |config| {
        config.rate_limit.enabled = true;
        config.rate_limit.burst = BURST;
        config.rate_limit.requests_per_second = REQUESTS_PER_SECOND;
        config.rate_limit.trusted_proxies = trusted_proxies;
    })
    .await
}

/// POSTs `{ __typename }` with `authorization` and `forwarded_for` when given; the
/// `Retry-After` header comes back beside the response.
async fn typename(
    stack: &TestStack,
    authorization: Option<&str>,
    forwarded_for: Option<&str>,
) -> (GraphqlResponse, Option<String>) {
    let mut request = stack
        .http()
        .post(stack.graphql_url())
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ __typename }" }));
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    let response = request.send().await.expect("the gateway answers");
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (read(response).await, retry_after)
}

/// The caller got through (200, no errors).
fn admitted(response: &GraphqlResponse, what: &str) {
    assert_eq!(response.status, 200, "{what}: {:?}", response.body);
    assert!(response.body.get("errors").is_none(), "{what}: {:?}", response.body);
}

/// The caller was refused for its rate: 429, `RATE_LIMITED`, and a `Retry-After` of the whole
/// seconds until one token is back (one token at `REQUESTS_PER_SECOND`: 10 000 s, less the
/// moments the test has run).
fn limited(response: &GraphqlResponse, retry_after: Option<&str>, what: &str) {
    assert_eq!(response.status, 429, "{what}: {:?}", response.body);
    assert_eq!(response.error_codes(), ["RATE_LIMITED"], "{what}");
    let full_refill = (1.0 / REQUESTS_PER_SECOND) as u64;
    let seconds: u64 = retry_after
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: Retry-After {retry_after:?}"));
    assert!(
        (1..=full_refill).contains(&seconds) && seconds > full_refill / 2,
        "{what}: Retry-After {seconds}"
    );
}

#[tokio::test]
async fn an_anonymous_caller_gets_its_burst_then_429_with_retry_after() {
    let stack = start(&[]).await;
    for n in 0..BURST {
        let (response, retry_after) = typename(&stack, None, None).await;
        admitted(&response, &format!("request {n}"));
        assert_eq!(retry_after, None);
    }
    let (response, retry_after) = typename(&stack, None, None).await;
    limited(&response, retry_after.as_deref(), "over the burst");
    assert_eq!(response.body["errors"][0]["message"], "too many requests; retry later");
    // Still over, and GET is limited the same way.
    let get = stack
        .http()
        .get(stack.graphql_url())
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(get.status(), 429);
    // The gateway itself is healthy.
    let health = stack.http().get(format!("http://{}/healthz", stack.gateway.addr())).send().await;
    assert_eq!(health.map(|r| r.status().as_u16()).ok(), Some(200));
    stack.stop().await;
}

#[tokio::test]
async fn signed_in_callers_have_a_bucket_per_user_not_per_address() {
    let stack = start(&[]).await;
    let owner = format!("Token {}", stack.token(OWNER));
    let other = format!("Token {}", stack.token(OWNER + 1));
    for n in 0..BURST {
        admitted(&typename(&stack, Some(&owner), None).await.0, &format!("owner {n}"));
    }
    let (response, retry_after) = typename(&stack, Some(&owner), None).await;
    limited(&response, retry_after.as_deref(), "the owner over its burst");
    // From the same address: another user, and an anonymous caller, each have their own bucket.
    for n in 0..BURST {
        admitted(&typename(&stack, Some(&other), None).await.0, &format!("other user {n}"));
        admitted(&typename(&stack, None, None).await.0, &format!("anonymous {n}"));
    }
    let (response, retry_after) = typename(&stack, None, None).await;
    limited(&response, retry_after.as_deref(), "the address over its burst");
    stack.stop().await;
}

#[tokio::test]
async fn refused_credentials_spend_their_address_and_then_cost_the_monolith_nothing() {
    let stack = start(&[]).await;
    stack.devstack.calls().reset();
    for n in 0..BURST {
        let (response, _) = typename(&stack, Some(&format!("Token guess-{n}")), None).await;
        assert_eq!(
            (response.status.as_u16(), response.error_codes()),
            (401, vec!["UNAUTHENTICATED".to_owned()])
        );
    }
    assert_eq!(stack.devstack.calls().count(ME), u64::from(BURST), "each guess was checked once");
    // The address is spent: the next guess is refused without asking the monolith, and so is
    // a valid credential from that address (the documented price of protecting `/me`).
    let (response, retry_after) = typename(&stack, Some("Token guess-next"), None).await;
    limited(&response, retry_after.as_deref(), "a guess from a spent address");
    let (response, retry_after) =
        typename(&stack, Some(&format!("Token {}", stack.token(OWNER))), None).await;
    limited(&response, retry_after.as_deref(), "a valid token from a spent address");
    assert_eq!(stack.devstack.calls().count(ME), u64::from(BURST), "the monolith was not asked again");
    stack.stop().await;
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    // The test client connects from 127.0.0.1: trusted here, so each forwarded address has its
    // own bucket, and the rightmost untrusted hop counts, not a forged leftmost one.
    let stack = start(&["127.0.0.0/8"]).await;
    for n in 0..BURST {
        let forged_left = format!("198.51.100.{n}, 203.0.113.1");
        admitted(&typename(&stack, None, Some(&forged_left)).await.0, &format!("203.0.113.1 #{n}"));
    }
    let (response, retry_after) = typename(&stack, None, Some("198.51.100.99, 203.0.113.1")).await;
    limited(&response, retry_after.as_deref(), "203.0.113.1 over its burst, whatever the left hops say");
    admitted(&typename(&stack, None, Some("203.0.113.2")).await.0, "another client behind the proxy");
    stack.stop().await;

    // Not trusted: the header is ignored and every request is 127.0.0.1's.
    let stack = start(&[]).await;
    for n in 0..BURST {
        admitted(&typename(&stack, None, Some(&format!("203.0.113.{n}"))).await.0, &format!("request {n}"));
    }
    let (response, retry_after) = typename(&stack, None, Some("203.0.113.200")).await;
    limited(&response, retry_after.as_deref(), "a fresh forwarded address from an untrusted peer");
    stack.stop().await;
}

#[tokio::test]
async fn a_websocket_spends_a_request_per_init_and_operation_then_closes_4429() {
    use banyan_tests::ws::{TRANSPORT_WS, WsClient};
    use std::time::Duration;
    let stack = start(&[]).await;
    let token = format!("Token {}", stack.token(OWNER));
    let mut client = WsClient::connect(&stack, TRANSPORT_WS, &[]).await;
    // `connection_init` is the first of the burst of 2, the first operation the second.
    client.init(json!({ "Authorization": token })).await;
    let ack = client.next().await.expect("an answer to connection_init");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    client.subscribe("1", "{ __typename }", json!({})).await;
    let next = client.next().await.expect("the first operation's result");
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["payload"]["data"]["__typename"], "Query", "{next}");
    assert_eq!(client.next().await.expect("complete")["type"], "complete");
    // The third request of the user is over the burst: the connection closes 4429, which
    // graphql-ws clients do not retry.
    client.subscribe("2", "{ __typename }", json!({})).await;
    let ending = client.read_until_close(Duration::from_secs(10)).await;
    assert!(ending.messages.is_empty(), "{:?}", ending.messages);
    let (code, reason) = ending.close.expect("a close frame");
    assert_eq!((code, reason.as_str()), (4429, "Too many requests"));
    // The same user over HTTP is limited too: it is one bucket per user.
    let (response, retry_after) =
        typename(&stack, Some(&format!("Token {}", stack.token(OWNER))), None).await;
    limited(&response, retry_after.as_deref(), "the same user over HTTP");
    stack.stop().await;
}
