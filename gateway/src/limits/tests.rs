//! The limits at the library level: the scan, the measure, and hostile documents run through
//! the real schema with its extensions (no sockets; `tests/tests/e2e/limits.rs` sends a few of them
//! to a running gateway).

use async_graphql::parser::parse_query;
use serde_json::Value;

use super::*;
use crate::app::AppState;
use crate::config::Config;

/// graphql-js's `getIntrospectionQuery` with every option of the issue on (descriptions,
/// specifiedByUrl, directiveIsRepeatable, schemaDescription, inputValueDeprecation).
pub(crate) const INTROSPECTION_QUERY: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/introspection-query.graphql"));

fn limits() -> LimitsConfig {
    LimitsConfig::default()
}

fn measure(query: &str) -> Result<(), LimitError> {
    check_document(&parse_query(query).expect("parses"), &limits())
}

/// `open` repeated `n` times, then `middle`, then `close` repeated `n` times.
fn nest(open: &str, middle: &str, close: &str, n: usize) -> String {
    format!("{}{middle}{}", open.repeat(n), close.repeat(n))
}

#[test]
fn the_scan_counts_every_kind_of_bracket() {
    assert_eq!(check_nesting(&nest("[", "1", "]", 32), 32), Ok(()));
    for (open, close) in [("[", "]"), ("{", "}"), ("(", ")"), ("{a:", "}")] {
        assert_eq!(
            check_nesting(&nest(open, "1", close, 33), 32),
            Err(LimitError::NestingTooDeep { max: 32 }),
            "{open}"
        );
    }
    // Mixed kinds add up.
    assert!(check_nesting(&nest("{a(x:[", "1", "])}", 11), 32).is_err());
    assert!(check_nesting(&nest("{a(x:[", "1", "])}", 10), 32).is_ok());
    // Closing brackets free their level.
    assert_eq!(check_nesting(&"{a}".repeat(1000), 1), Ok(()));
}

#[test]
fn the_scan_skips_strings_block_strings_and_comments_but_nothing_else() {
    let deep = "[".repeat(40);
    for hidden in [
        format!("\"{deep}\""),
        format!("\"\\\"{deep}\""),
        format!("\"\"\"{deep}\"\"\""),
        format!("\"\"\"\\\"\"\"{deep}\"\"\""),
        format!("# {deep}\n"),
        format!("# {deep}\r"),
    ] {
        assert_eq!(check_nesting(&format!("{{ a(x: {hidden}) }}"), 4), Ok(()), "{hidden}");
    }
    for visible in [
        // The string closed before the brackets.
        format!("\"a\" {deep}"),
        // An escaped backslash does not escape the quote after it.
        format!("\"\\\\\" {deep}"),
        // A string ends at a line break: the parser sees what follows.
        format!("\"a\n{deep}"),
        format!("\"a\\\n{deep}"),
        // A block string closes at `"""`, and a comment at a line break.
        format!("\"\"\"a\"\"\" {deep}"),
        format!("# a\n{deep}"),
        format!("# a\r{deep}"),
        // `""` is an empty string, not the start of a block string.
        format!("\"\" {deep}"),
    ] {
        assert!(check_nesting(&visible, 4).is_err(), "{visible:?}");
    }
}

#[test]
fn an_unterminated_block_string_is_refused() {
    // async-graphql's parser would read `""` and then the ordinary string `" "`, and recurse
    // into the brackets after it: GraphQL's lexer reads `"""` greedily and refuses the document.
    let deep = "[".repeat(40);
    for text in [format!("[\"\"\" \" {deep}"), format!("\"\"\"\n{deep}"), "\"\"\"a\\\"\"\"".to_owned()] {
        assert_eq!(check_nesting(&text, 4), Err(LimitError::UnterminatedBlockString), "{text}");
    }
    assert_eq!(LimitError::UnterminatedBlockString.code(), "GRAPHQL_PARSE_FAILED");
}

#[test]
fn fragment_fan_out_is_counted_without_expanding_it() {
    // 30 fragments each spreading the previous one twice: 2^30 expansions.
    let mut query = String::from("{ ...F29 } fragment F0 on Query { __typename }");
    for i in 1..30 {
        query.push_str(&format!(" fragment F{i} on Query {{ ...F{p} ...F{p} }}", p = i - 1));
    }
    assert_eq!(measure(&query), Err(LimitError::TooManyFragmentSpreads { max: 1000 }));
}

#[test]
fn a_big_fragment_spread_many_times_is_counted() {
    let fields: String = (0..200).map(|i| format!("f{i}: __typename ")).collect();
    let spreads = "...F ".repeat(60);
    let query = format!("{{ {spreads} }} fragment F on Query {{ {fields} }}");
    let limits = LimitsConfig { max_aliases: usize::MAX, ..limits() };
    let document = parse_query(&query).expect("parses");
    assert_eq!(check_document(&document, &limits), Err(LimitError::TooManySelections { max: 10_000 }));
}

#[test]
fn cycles_are_refused_not_followed() {
    assert_eq!(measure("{ ...A } fragment A on Query { ...A }"), Err(LimitError::FragmentCycle("A".into())));
    let error = measure("{ ...A } fragment A on Query { ...B } fragment B on Query { __typename ...A }");
    assert!(matches!(error, Err(LimitError::FragmentCycle(_))), "{error:?}");
    // An unused cycle too: validation walks every fragment.
    let error = measure("{ __typename } fragment A on Query { ... on Query { ...A } }");
    assert!(matches!(error, Err(LimitError::FragmentCycle(_))), "{error:?}");
}

#[test]
fn nesting_through_fragment_spreads_is_bounded() {
    // 40 fragments in a chain: each level is shallow in the text, deep once expanded.
    let mut query = String::from("{ ...F0 }");
    for i in 0..40 {
        query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
    }
    query.push_str(" fragment F40 on Query { __typename }");
    assert_eq!(measure(&query), Err(LimitError::NestingTooDeep { max: 32 }));
    // The same chain measured from a fragment first (cached), then from the operation.
    let reordered = query.replacen("{ ...F0 }", "query First { ...F30 } query Second { ...F0 }", 1);
    assert_eq!(measure(&reordered), Err(LimitError::NestingTooDeep { max: 32 }));
}

#[test]
fn depth_is_measured_through_fragments_and_apart_for_introspection() {
    let twelve = format!("{{ {} }}", nest("a { ", "b", " }", 11));
    assert_eq!(measure(&twelve), Ok(()));
    let thirteen = format!("{{ {} }}", nest("a { ", "b", " }", 12));
    assert_eq!(measure(&thirteen), Err(LimitError::QueryTooDeep { found: 13, max: 12 }));
    // The same thirteen levels, split by a fragment and an inline fragment.
    let split = format!(
        "{{ ...F }} fragment F on Query {{ {} }}",
        nest("a { ", &format!("... on Query {{ {} }}", nest("b { ", "c", " }", 5)), " }", 7)
    );
    assert_eq!(measure(&split), Err(LimitError::QueryTooDeep { found: 13, max: 12 }));
    // `__typename` is not a level, as in async-graphql.
    let with_typename = format!("{{ {} }}", nest("a { ", "__typename", " }", 12));
    assert_eq!(measure(&with_typename), Ok(()));
}

#[test]
fn the_standard_introspection_query_fits_and_deep_introspection_does_not() {
    assert_eq!(measure(INTROSPECTION_QUERY), Ok(()));
    // Its introspection depth is 15: __schema types fields args type, 9 × ofType, name.
    let tight = LimitsConfig { max_introspection_depth: 14, ..limits() };
    let document = parse_query(INTROSPECTION_QUERY).expect("parses");
    assert_eq!(
        check_document(&document, &tight),
        Err(LimitError::IntrospectionTooDeep { found: 15, max: 14 })
    );
    // Deep, but only through ofType: refused by depth.
    let of_types = format!("{{ __schema {{ types {{ {} }} }} }}", nest("ofType { ", "name", " }", 18));
    assert_eq!(measure(&of_types), Err(LimitError::IntrospectionTooDeep { found: 21, max: 20 }));
    // Shallow, but multiplying type lists: graphql-js's rule.
    let lists = "{ __type(name: \"Query\") { fields { type { fields { type { fields { name } } } } } } }";
    assert_eq!(measure(lists), Err(LimitError::IntrospectionListsTooDeep { found: 3 }));
    let lists_through_fragments = "{ __schema { types { ...T } } } \
        fragment T on __Type { interfaces { possibleTypes { ... on __Type { inputFields { name } } } } }";
    assert_eq!(measure(lists_through_fragments), Err(LimitError::IntrospectionListsTooDeep { found: 3 }));
    // A data field named `fields` is no introspection list.
    assert_eq!(measure("{ fields { fields { fields { fields { a } } } } }"), Ok(()));
}

#[test]
fn aliases_are_counted_as_written() {
    let document = parse_query(
        "query A { a: me { b: id } ...F ... on Query { c: me { id } } } fragment F on Query { d: me { id } }",
    )
    .expect("parses");
    assert_eq!(count_aliases(&document), 4);
}

// ---- Through the schema and its extensions ----

fn schema_with(configure: impl FnOnce(&mut Config)) -> crate::app::AppState {
    AppState::for_tests(|config| {
        // These tests introspect, as GraphiQL does in `banyan dev` (`serve` refuses by default).
        config.server.introspection = true;
        configure(config);
    })
}

/// Executes `query` as the HTTP layer does (through the gateway's pipeline, which hands what
/// only the extensions can check to the schema that has them) and returns the JSON response.
async fn run(state: &AppState, query: &str, variables: Value) -> Value {
    let request =
        async_graphql::Request::new(query).variables(async_graphql::Variables::from_json(variables));
    serde_json::to_value(state.graphql.execute(request).await).expect("serializes")
}

fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>").to_owned()).collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_schema_answers_the_standard_introspection_query() {
    let state = schema_with(|_| {});
    let response = run(&state, INTROSPECTION_QUERY, Value::Null).await;
    assert!(response.get("errors").is_none(), "{:?}", response.get("errors"));
    let types = response["data"]["__schema"]["types"].as_array().expect("types");
    let query_type = types.iter().find(|t| t["name"] == "Query").expect("Query is listed");
    assert!(query_type["fields"].as_array().is_some_and(|f| !f.is_empty()));
}

#[tokio::test]
async fn each_limit_answers_with_its_code() {
    let state = schema_with(|_| {});
    let cases = [
        (format!("{{ __typename @include(if: {}) }}", nest("[", "true", "]", 40)), "NESTING_TOO_DEEP"),
        ("{ __typename ".to_owned(), "GRAPHQL_PARSE_FAILED"),
        ("{ ...A } fragment A on Query { ...A }".to_owned(), "FRAGMENT_CYCLE"),
        ("{ nope }".to_owned(), "GRAPHQL_VALIDATION_FAILED"),
    ];
    for (query, code) in &cases {
        let response = run(&state, query, Value::Null).await;
        assert_eq!(codes(&response), [*code], "{query}");
        assert!(response.get("data").is_none_or(Value::is_null), "{query}");
    }
    // Complexity: async-graphql counts it, the extension refuses it with a code.
    let small = schema_with(|config| config.limits.max_complexity = 3);
    let response = run(&small, "{ __schema { queryType { name kind } } }", Value::Null).await;
    assert_eq!(codes(&response), ["QUERY_TOO_COMPLEX"]);
    let response = run(&small, "{ __schema { queryType { name } } }", Value::Null).await;
    assert!(response.get("errors").is_none(), "{response}");
}

#[tokio::test]
async fn documents_at_the_nesting_ceiling_do_not_exhaust_the_stack() {
    // The test thread has the same 2 MiB stack as a tokio worker. At the highest nesting the
    // configuration allows, a list literal and an input object run through parsing and
    // validation.
    let state = schema_with(|config| config.limits.max_nesting = 128);
    for value in [nest("[", "\"x\"", "]", 126), nest("{a:", "1", "}", 126)] {
        let response = run(&state, &format!("{{ __type(name: {value}) {{ name }} }}"), Value::Null).await;
        assert!(response["errors"].as_array().is_some_and(|e| !e.is_empty()), "a type error, no crash");
    }
}

/// A small deterministic generator (xorshift), so the property test needs no dependency and
/// every run sees the same documents.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn between(&mut self, low: usize, high: usize) -> usize {
        low + self.below(high - low + 1)
    }
}

/// A hostile document of kind `kind` (see the match), its size drawn from `rng`.
fn hostile(kind: usize, rng: &mut Rng) -> String {
    let deep = [33, 100, 1_000, 10_000, 100_000][rng.below(5)];
    match kind {
        0 => format!("{{ __typename @include(if: {}) }}", nest("[", "true", "]", deep)),
        1 => format!("{{ __type(name: {}) {{ name }} }}", nest("{a:", "1", "}", deep)),
        2 => format!("{{ {} }}", nest("a { ", "b", " }", deep)),
        3 => format!("{{ {} }}", nest("... on Query { ", "__typename", " }", deep)),
        4 => format!("{{ a{} }}", nest("(", "x: 1", ")", deep)),
        5 => format!("query ($v: {}) {{ __typename }}", nest("[", "Int", "]", deep)),
        6 => format!("query ($v: [Int] = {}) {{ __typename }}", nest("[", "1", "]", deep)),
        7 => {
            // Fragment fan-out: each fragment spreads the previous one 2 to 4 times.
            let count = rng.between(12, 60);
            let fan = rng.between(2, 4);
            let mut query = format!("{{ ...F{} }} fragment F0 on Query {{ __typename }}", count - 1);
            for i in 1..count {
                query.push_str(&format!(
                    " fragment F{i} on Query {{ {} }}",
                    format!("...F{} ", i - 1).repeat(fan)
                ));
            }
            query
        }
        8 => {
            // A chain of fragments, far deeper than the text shows.
            let count = rng.between(40, 20_000);
            let mut query = String::from("{ ...F0 }");
            for i in 0..count {
                query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", i + 1));
            }
            query + &format!(" fragment F{count} on Query {{ __typename }}")
        }
        9 => {
            // A fragment cycle, long or short.
            let count = rng.between(1, 5_000);
            let mut query = String::from("{ ...F0 }");
            for i in 0..count {
                query.push_str(&format!(" fragment F{i} on Query {{ ...F{} }}", (i + 1) % count));
            }
            query
        }
        // Sizes up to the HTTP body limit (1 MiB by default).
        10 => format!("{{ {} }}", "x".repeat(rng.between(100_000, 1_000_000))),
        11 => {
            let count = rng.between(1_000, 30_000);
            (0..count).map(|i| format!("query Q{i} {{ a{i}: __typename }} ")).collect()
        }
        12 => format!("{{ {} }}", "__typename ".repeat(rng.between(10_001, 90_000))),
        13 => {
            // Many arguments, repeated or not: one validation error each, reported up to a cap.
            let count = rng.between(1_000, 60_000);
            let arguments: String = if rng.below(2) == 0 {
                "a: 1 ".repeat(count)
            } else {
                (0..count).map(|i| format!("a{i}: 1 ")).collect()
            };
            format!("{{ __type(name: \"Query\" {arguments}) {{ name }} }}")
        }
        14 => {
            let count = rng.between(1_000, 40_000);
            let variables: String = (0..count).map(|i| format!("$v{i}: Int ")).collect();
            format!("query ({variables}) {{ __typename }}")
        }
        _ => {
            // Deep brackets hidden after a string that really closes, and a block string with
            // an escaped delimiter.
            format!("{{ a(x: \"\\\"\", y: \"\"\"\\\"\"\"\"\"\", z: {}) }}", nest("[", "1", "]", deep))
        }
    }
}

/// The codes a hostile document may be refused with: a limit, or the parser or validation when
/// the document is not even well-formed GraphQL.
const REFUSALS: [&str; 13] = [
    "GRAPHQL_VALIDATION_FAILED",
    "NESTING_TOO_DEEP",
    "TOO_MANY_FRAGMENT_SPREADS",
    "TOO_MANY_SELECTIONS",
    "FRAGMENT_CYCLE",
    "TOO_MANY_ALIASES",
    "QUERY_TOO_DEEP",
    "GRAPHQL_PARSE_FAILED",
    "QUERY_TOO_COMPLEX",
    "QUERY_TOO_COSTLY",
    "TOO_MANY_TOKENS",
    "TOO_MANY_ROOT_FIELDS",
    "TOO_MANY_DIRECTIVES",
];

#[tokio::test]
async fn hostile_documents_are_refused_with_a_code() {
    let state = schema_with(|_| {});
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let kinds = 16;
    for round in 0..3 * kinds {
        let kind = round % kinds;
        let query = hostile(kind, &mut rng);
        let response = run(&state, &query, Value::Null).await;
        let codes = codes(&response);
        assert!(
            !codes.is_empty() && codes.iter().all(|code| REFUSALS.contains(&code.as_str())),
            "kind {kind} ({} bytes): {codes:?} {}",
            query.len(),
            response.to_string().chars().take(300).collect::<String>()
        );
        assert!(response.get("data").is_none_or(Value::is_null), "kind {kind}: a request error");
        assert!(codes.len() <= MAX_REPORTED_ERRORS + 1, "kind {kind}: {} errors", codes.len());
    }
    // Still serving.
    let response = run(&state, "{ __typename }", Value::Null).await;
    assert_eq!(response["data"]["__typename"], "Query");
}

#[tokio::test]
async fn variables_and_extensions_nest_only_as_deep_as_serde_json_allows() {
    // serde_json refuses JSON nested deeper than 128 before any conversion recurses; at 120 the
    // value reaches async-graphql, whose coercion recurses as deep without harm.
    let too_deep = nest("[", "1", "]", 200);
    assert!(serde_json::from_str::<Value>(&too_deep).is_err());
    let state = schema_with(|_| {});
    let variables: Value = serde_json::from_str(&format!("{{\"v\": {}}}", nest("[", "1", "]", 120)))
        .expect("within serde_json's limit");
    let request = async_graphql::Request::new(
        "subscription ($v: [ID!]!) { templateEvents(templateIds: $v) { sequence } }",
    )
    .variables(async_graphql::Variables::from_json(variables));
    let first = futures::StreamExt::next(&mut state.graphql.full_schema().execute_stream(request))
        .await
        .expect("a response");
    assert!(!first.errors.is_empty(), "a coercion error, no crash");
}

#[tokio::test]
async fn validation_reports_at_most_a_hundred_errors() {
    // 15,000 tokens of arguments: within the token limit for this test.
    let state = schema_with(|config| config.limits.max_tokens = 20_000);
    let arguments: String = (0..5_000).map(|i| format!("a{i}: 1 ")).collect();
    let response =
        run(&state, &format!("{{ __type(name: \"Query\" {arguments}) {{ name }} }}"), Value::Null).await;
    let errors = response["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), MAX_REPORTED_ERRORS + 1);
    assert_eq!(
        errors[MAX_REPORTED_ERRORS]["message"],
        "Too many validation errors, error limit reached. Validation aborted."
    );
    assert!(codes(&response).iter().all(|code| code == "GRAPHQL_VALIDATION_FAILED"));
}

// ---- Cost, tokens, root fields, directives, operations, warn-only (issue 8, section 1) ----

/// The cost the limits extension computes for `query`, read from the refusal of a schema
/// whose `max_cost` is 0.
async fn cost_of(query: &str, variables: Value) -> u64 {
    let state = schema_with(|config| config.limits.max_cost = 0);
    let response = run(&state, query, variables).await;
    assert_eq!(codes(&response), ["QUERY_TOO_COSTLY"], "{query}: {response}");
    let message = response["errors"][0]["message"].as_str().expect("a message");
    let found = message.split("is ").nth(1).and_then(|rest| rest.split(';').next()).expect("the cost");
    found.parse().expect("a number")
}

/// The document of issue 8, section 1: under a workspace, 30 aliases of templates(first: 100)
/// → recentEvents(first: 100) → template → recentEvents(first: 100), nine fields deep.
pub(crate) fn amplification_document() -> String {
    let one = "templates(first: 100) { nodes { recentEvents(first: 100) \
               { nodes { template { recentEvents(first: 100) { nodes { kind } } } } } } }";
    let aliases: String = (0..30).map(|i| format!("a{i}: {one} ")).collect();
    format!("{{ workspace(id: \"V29ya3NwYWNlOjE=\") {{ {aliases} }} }}")
}

#[tokio::test]
async fn cost_multiplies_by_page_sizes_and_list_sizes() {
    // Counted by hand: a field is 1, a list multiplies what it selects.
    // templates(first: 3) { totalCount nodes { id } } = 1 + (1 + (1 + 3 × 1))
    assert_eq!(
        cost_of("{ templates(workspaceId: \"x\", first: 3) { totalCount nodes { id } } }", Value::Null).await,
        6
    );
    // The schema's default page size (20), a variable, and a variable's default.
    assert_eq!(cost_of("{ templates(workspaceId: \"x\") { nodes { id } } }", Value::Null).await, 1 + 1 + 20);
    let by_variable = "query ($n: Int!) { templates(workspaceId: \"x\", first: $n) { nodes { id } } }";
    assert_eq!(cost_of(by_variable, serde_json::json!({ "n": 7 })).await, 1 + 1 + 7);
    let by_default = "query ($n: Int = 9) { templates(workspaceId: \"x\", first: $n) { nodes { id } } }";
    assert_eq!(cost_of(by_default, Value::Null).await, 1 + 1 + 9);
    // `edges` is sized by the page too; fields beside it (pageInfo) are not multiplied.
    let edges = "{ templates(workspaceId: \"x\", first: 4) { pageInfo { hasNextPage } edges { cursor node { id name } } } }";
    assert_eq!(cost_of(edges, Value::Null).await, 1 + (1 + 1) + (1 + 4 * (1 + (1 + 2))));
    // A list without `first`: its declared size (workspaces: 10, members: 50), nested.
    let members = "{ workspaces { id members { role } } }";
    assert_eq!(cost_of(members, Value::Null).await, 1 + 10 * (1 + (1 + 50)));
    // Skipped fields cost nothing; introspection is 1 per field and not walked.
    let skipped =
        "query ($s: Boolean!) { me @skip(if: $s) { id } __typename workspaces @include(if: false) { id } }";
    assert_eq!(cost_of(skipped, serde_json::json!({ "s": true })).await, 1);
    // Through fragments and inline fragments, on the fragment's own type.
    let fragments = "{ template(id: \"x\") { ...T } } fragment T on Template { ... on Template { recentEvents(first: 5) { nodes { kind } } } }";
    assert_eq!(cost_of(fragments, Value::Null).await, 1 + (1 + (1 + 5)));
    // The amplification document: per alias 1 + (1 + 100 × (1 + (1 + (1 + (1 + (1 + 100)))))).
    let per_alias: u64 = 1 + (1 + 100 * (1 + (1 + 100 * (1 + (1 + (1 + 100))))));
    assert_eq!(cost_of(&amplification_document(), Value::Null).await, 1 + 30 * per_alias);
}

#[tokio::test]
async fn a_cached_documents_remembered_cost_is_never_another_requests() {
    // One document, cached after its first request. Its cost is 1 + 1 + $n when the list is not
    // skipped, and 0 when it is: the walk reads `$s`, and `$n` only when `$s` is false.
    let state = schema_with(|config| config.limits.max_cost = 10);
    let query = "query ($n: Int = 2, $s: Boolean = false) \
                 { templates(workspaceId: \"x\", first: $n) @skip(if: $s) { nodes { id } } }";
    let cases = [
        (serde_json::json!({ "n": 3 }), 5),
        (serde_json::json!({ "n": 50 }), 52),
        (serde_json::json!({ "n": 3 }), 5),
        (serde_json::json!({}), 4),
        (serde_json::json!({ "n": 50, "s": true }), 0),
        (serde_json::json!({ "n": 9, "s": true }), 0),
        (serde_json::json!({ "n": 9, "s": false }), 11),
        (serde_json::json!({ "n": 8 }), 10),
        (serde_json::json!({ "n": 50 }), 52),
    ];
    for (variables, cost) in cases {
        let response = run(&state, query, variables.clone()).await;
        let refused = codes(&response).iter().any(|code| code == "QUERY_TOO_COSTLY");
        assert_eq!(refused, cost > 10, "{variables}: {response}");
        if refused {
            let message = response["errors"][0]["message"].as_str().unwrap_or_default();
            assert!(message.contains(&format!("is {cost};")), "{variables}: {message}");
        }
    }
}

#[test]
fn a_remembered_cost_is_the_walks_for_each_operation_and_its_variables() {
    let registry = &banyan_resolvers::type_registry();
    let text = "query A($n: Int!) { templates(workspaceId: \"x\", first: $n) { nodes { id } } } \
                query B($n: Int!) { templates(workspaceId: \"x\", first: $n) { edges { node { id name } } } }";
    let document =
        crate::document_cache::DocumentCache::new(0).insert(text, parse_query(text).expect("parses"));
    let order = [("A", 3), ("A", 3), ("B", 3), ("A", 3), ("B", 7), ("B", 7), ("A", 7), ("A", 100)];
    for (name, n) in order {
        let variables = async_graphql::Variables::from_json(serde_json::json!({ "n": n }));
        let operation = select_operation(&document.document, Some(name)).expect("an operation");
        // Counted by hand: A = 1 + (1 + n × 1); B = 1 + (1 + n × (1 + 2)).
        let by_hand = if name == "A" { 2 + n } else { 2 + n * 3 };
        assert_eq!(document.cost(registry, (operation, Some(name)), &variables, 20), by_hand, "{name} {n}");
    }
}

#[tokio::test]
async fn every_contract_operation_fits_the_default_cost() {
    let state = schema_with(|_| {});
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend-contract");
    let contract = banyan_schema::Contract::load(&dir).expect("the contract loads");
    let manifest = banyan_schema::build_manifest(&contract).expect("the manifest builds");
    assert!(!manifest.operations.is_empty());
    for operation in manifest.operations {
        // Anonymous, so nothing runs past the limits but `UNAUTHENTICATED` fields.
        let response = run(&state, &operation.body, Value::Null).await;
        let codes = codes(&response);
        assert!(
            codes.iter().all(|code| !code.starts_with("QUERY_TOO") && !code.starts_with("TOO_MANY")),
            "{}: {codes:?}",
            operation.name
        );
    }
}

#[tokio::test]
async fn each_new_limit_answers_with_its_code() {
    let state = schema_with(|_| {});
    let flood = format!("{{ {} }}", "a ".repeat(20_000));
    let directives = format!("{{ __typename {} }}", "@skip(if: false) ".repeat(11));
    let roots = format!("{{ {} }}", (0..21).map(|i| format!("t{i}: __typename ")).collect::<String>());
    let cases = [
        (flood.as_str(), "TOO_MANY_TOKENS"),
        (directives.as_str(), "TOO_MANY_DIRECTIVES"),
        (roots.as_str(), "TOO_MANY_ROOT_FIELDS"),
        ("query A { __typename } query B { __typename }", "OPERATION_NAME_REQUIRED"),
    ];
    for (query, code) in cases {
        let response = run(&state, query, Value::Null).await;
        assert_eq!(codes(&response), [code], "{}", &query[..query.len().min(80)]);
    }
    let named = async_graphql::Request::new("query A { __typename }").operation_name("B");
    let response = serde_json::to_value(state.graphql.execute(named).await).expect("serializes");
    assert_eq!(codes(&response), ["UNKNOWN_OPERATION"]);
    // Over HTTP (`Schema::execute`), a subscription is refused with a code.
    let response =
        run(&state, "subscription { templateEvents(templateIds: []) { sequence } }", Value::Null).await;
    assert_eq!(codes(&response), ["SUBSCRIPTION_OVER_HTTP"]);
    // Validation errors still come first.
    let response = run(&state, "query A { nope } query B { __typename }", Value::Null).await;
    assert_eq!(codes(&response), ["GRAPHQL_VALIDATION_FAILED"]);
    // At the limits, each passes.
    let directives = format!("{{ __typename {} }}", "@skip(if: false) ".repeat(10));
    let roots = format!("{{ {} }}", (0..20).map(|i| format!("t{i}: __typename ")).collect::<String>());
    for query in [directives, roots] {
        let response = run(&state, &query, Value::Null).await;
        assert!(response.get("errors").is_none(), "{response}");
    }
}

#[test]
fn tokens_are_counted_as_the_lexer_reads_them() {
    let count = |text: &str| scan_text(text, 32, None).expect("scans");
    // { a ( b : "x , y" ) @ c ... F } : 13, commas, whitespace and comments aside.
    assert_eq!(count("{ a(b: \"x, y\") @c ...F }"), 11);
    assert_eq!(count("{ a, b,, c # d e f\n }"), 5);
    assert_eq!(count("query Q($v: [Int!] = [-1, 2.5e3]) { a }"), 19);
    assert_eq!(count("\"\"\" block { } \"\"\" { a }"), 4);
    // The scan stops as soon as the count passes the limit.
    assert_eq!(
        scan_text(&"a ".repeat(1_000_000), 32, Some(10)),
        Err(LimitError::TooManyTokens { found: 11, max: 10 })
    );
}

#[tokio::test]
async fn warn_only_limits_serve_log_and_count() {
    use crate::config::WarnableLimit;
    let state = schema_with(|config| {
        config.limits.max_cost = 5;
        config.limits.max_depth = 1;
        config.limits.max_tokens = 5;
        config.limits.warn_only =
            vec![WarnableLimit::Cost, WarnableLimit::Depth, WarnableLimit::Tokens].into();
    });
    // Cost 1 + (1 + 10 × 1) = 12 with the declared size of 10, depth 2, 8 tokens: all over,
    // all warn-only. Anonymous: the field answers UNAUTHENTICATED, past every limit.
    let response = run(&state, "{ workspaces { id } }", Value::Null).await;
    assert_eq!(codes(&response), ["UNAUTHENTICATED"], "{response}");
    for limit in [WarnableLimit::Cost, WarnableLimit::Depth, WarnableLimit::Tokens] {
        assert_eq!(state.limit_warnings.count(limit), 1, "{limit:?}");
    }
    assert_eq!(state.limit_warnings.count(WarnableLimit::Aliases), 0);
    // An enforced limit beside them still refuses, and counts nothing.
    let response = run(&state, "{ a: __typename b: workspaces { id } }", Value::Null).await;
    assert_eq!(codes(&response), ["UNAUTHENTICATED"], "{response}");
    let strict = schema_with(|config| config.limits.max_cost = 5);
    let response = run(&strict, "{ workspaces { id } }", Value::Null).await;
    assert_eq!(codes(&response), ["QUERY_TOO_COSTLY"]);
    assert_eq!(strict.limit_warnings.count(WarnableLimit::Cost), 0);
}

#[tokio::test]
async fn every_request_error_carries_a_code() {
    let state = schema_with(|_| {});
    let cases = [
        ("query ($n: Int!) { __typename }", Value::Null, "GRAPHQL_VALIDATION_FAILED"),
        ("query ($n: Int!) { __typename }", serde_json::json!({ "n": "abc" }), "GRAPHQL_VALIDATION_FAILED"),
        (
            "query ($n: [Int!]!) { __typename }",
            serde_json::json!({ "n": [null] }),
            "GRAPHQL_VALIDATION_FAILED",
        ),
        ("{ __type(name: 1) { name } }", Value::Null, "GRAPHQL_VALIDATION_FAILED"),
        ("query { __typename } fragment F on Query { __typename }", Value::Null, "GRAPHQL_VALIDATION_FAILED"),
        ("", Value::Null, "GRAPHQL_PARSE_FAILED"),
        // async-graphql's parser refuses a document without an operation.
        ("fragment F on Query { __typename }", Value::Null, "GRAPHQL_PARSE_FAILED"),
    ];
    for (query, variables, code) in cases {
        let response = run(&state, query, variables.clone()).await;
        assert_eq!(codes(&response), [code], "{query} {variables}: {response}");
    }
}
