//! The document cache (`server.document_cache_size`), over real sockets: a repeated query is
//! served from it (its hit counter in `/metrics` goes up), a text that differs by one character
//! is parsed anew and answered for what it says, a refused document is refused the same way
//! every time and never kept, and the cache holds at most its size. A cached document that has
//! passed validation is not validated in full again, but a request whose variables are wrong
//! still gets the full validation's refusal.

use banyan_tests::{OWNER, TestStack, contract_operation, metric_sample, workspace_id};
use serde_json::{Value, json};

/// The value of the un-labelled series `name` in the gateway's `/metrics`.
async fn metric(stack: &TestStack, name: &str) -> f64 {
    let text = stack.metrics_text().await;
    metric_sample(&text, name).unwrap_or_else(|| panic!("no {name} in {text}"))
}

async fn hits_and_misses(stack: &TestStack) -> (f64, f64) {
    (
        metric(stack, "banyan_document_cache_hits_total").await,
        metric(stack, "banyan_document_cache_misses_total").await,
    )
}

#[tokio::test]
async fn a_repeated_query_is_a_hit_and_a_changed_one_is_parsed_anew() {
    let stack = TestStack::start().await;
    let me = stack.monolith_get(OWNER, "/api/v1/me/").await;
    let (hits, misses) = hits_and_misses(&stack).await;

    let query = "{ me { username } }";
    let first = stack.graphql(query, Value::Null).await;
    let second = stack.graphql(query, Value::Null).await;
    for answer in [&first, &second] {
        assert_eq!(answer.data(), &json!({ "me": { "username": me["username"] } }), "{:?}", answer.body);
    }
    assert_eq!(hits_and_misses(&stack).await, (hits + 1.0, misses + 1.0));

    // One field more: another text, parsed, and answered for what it asks.
    let changed = stack.graphql("{ me { username email } }", Value::Null).await;
    assert_eq!(changed.data(), &json!({ "me": { "username": me["username"], "email": me["email"] } }));
    assert_eq!(hits_and_misses(&stack).await, (hits + 1.0, misses + 2.0));

    // A syntax change that breaks the document is a parse error, though its text is one
    // character away from a cached one; the cached one still answers.
    let broken = stack.graphql("{ me { username }", Value::Null).await;
    assert_eq!(broken.error_codes(), ["GRAPHQL_PARSE_FAILED"]);
    let again = stack.graphql(query, Value::Null).await;
    assert_eq!(again.data(), first.data());
    assert_eq!(hits_and_misses(&stack).await, (hits + 2.0, misses + 3.0));
    stack.stop().await;
}

#[tokio::test]
async fn a_refused_document_is_refused_every_time_and_never_kept() {
    let stack = TestStack::start_with(Default::default(), |config| config.limits.max_depth = 2).await;
    let (hits, misses) = hits_and_misses(&stack).await;
    for _ in 0..3 {
        let cycle = stack.graphql("{ ...A } fragment A on Query { ...A }", Value::Null).await;
        assert_eq!(cycle.error_codes(), ["FRAGMENT_CYCLE"]);
        let deep = stack.graphql("{ workspaces { members { user { username } } } }", Value::Null).await;
        assert_eq!(deep.error_codes(), ["QUERY_TOO_DEEP"]);
    }
    assert_eq!(hits_and_misses(&stack).await, (hits, misses + 6.0));
    assert_eq!(metric(&stack, "banyan_document_cache_entries").await, 0.0);
    stack.stop().await;
}

#[tokio::test]
async fn the_cache_holds_at_most_its_size() {
    let stack =
        TestStack::start_with(Default::default(), |config| config.server.document_cache_size = 2).await;
    for round in 0..2 {
        for n in 0..6 {
            let answer = stack.graphql(&format!("{{ a{n}: __typename }}"), Value::Null).await;
            assert_eq!(answer.data(), &json!({ format!("a{n}"): "Query" }), "round {round}");
        }
    }
    let entries = metric(&stack, "banyan_document_cache_entries").await;
    assert!((1.0..=2.0).contains(&entries), "{entries} entries");
    stack.stop().await;
}

/// The status and body of `query` with `variables`, POSTed to `addr` as the owner, without the
/// errors' request ids.
async fn post(stack: &TestStack, addr: std::net::SocketAddr, query: &str, variables: &Value) -> (u16, Value) {
    let response = stack.graphql_to(addr, Some(OWNER), query, variables.clone()).await;
    (response.status.as_u16(), response.without_request_ids())
}

#[tokio::test]
async fn a_document_validated_once_still_refuses_wrong_variables_as_a_full_validation_does() {
    let stack = TestStack::start().await;
    // Keeps no document, so validates every request in full.
    let uncached = stack.replica(|config| config.server.document_cache_size = 0).await;
    let query = contract_operation("TemplateList");
    let good = json!({ "workspaceId": workspace_id(1), "first": 5 });
    let (cached, full) = (stack.gateway.addr(), uncached.addr());
    let first = post(&stack, cached, &query, &good).await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(post(&stack, cached, &query, &good).await, first);
    assert_eq!(post(&stack, full, &query, &good).await, first);
    for bad in [
        json!({ "workspaceId": null }),
        json!({ "workspaceId": workspace_id(1), "first": "five" }),
        json!({ "workspaceId": workspace_id(1), "search": 12 }),
        json!({ "workspaceId": [workspace_id(1)] }),
    ] {
        let refused = post(&stack, cached, &query, &bad).await;
        assert_eq!(refused.0, 400, "{bad}: {}", refused.1);
        assert_eq!(refused, post(&stack, full, &query, &bad).await, "{bad}");
    }
    stack.stop().await;
}
