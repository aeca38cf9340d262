//! The document cache (`server.document_cache_size`), over real sockets: a repeated query is
//! served from it (its hit counter in `/metrics` goes up), a text that differs by one character
//! is parsed anew and answered for what it says, a refused document is refused the same way
//! every time and never kept, and the cache holds at most its size.

use banyan_tests::{OWNER, TestStack, metric_sample};
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
