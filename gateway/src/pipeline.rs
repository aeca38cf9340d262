//! The gateway's own GraphQL pipeline around async-graphql's executor, for HTTP and both
//! WebSocket protocols: what the schema's extensions did per request, done here, so that in the
//! default configuration the schema has no extension at all.
//!
//! Why: async-graphql 7.2.1 resolves a field (and a list item) on its fast path only when no
//! extension is registered (`resolver_utils/container.rs`, `list.rs`). With any, every field
//! builds a `ResolveInfo`, looks its type up in the registry twice and goes through
//! `Extensions::resolve`, where each registered extension's `resolve` (an `async_trait` method:
//! one boxed future each, overridden or not) wraps the next. None of the gateway's extensions
//! needs that per-field hook, and the completion of failed fields
//! (`banyan_resolvers::complete_response`) reads types from the operation instead.
//!
//! One request, in the extensions' order:
//! 1. persisted operations: resolve a document sent by id (WebSocket; HTTP has resolved it
//!    before the identity check), remember an APQ registration until validation has passed;
//! 2. limits, steps 1 to 3, through the document cache (`crate::document_cache`), then the
//!    operation, its cost and a bound of its complexity ([`limits::precheck`]); the request's
//!    budget of backend calls;
//! 3. the introspection policy;
//! 4. async-graphql validates and executes the document it is handed (`set_parsed_query`): in
//!    full, or over HTTP, once a cached document has passed that and the request's variables
//!    pass `crate::validated`'s check, in its fast mode;
//! 5. each response: validation errors coded, failed fields completed, objects ordered as the
//!    selection set, the operation timed, the budget's excess logged, the APQ registration
//!    stored, every error masked with the request id.
//!
//! What needs a hook inside async-graphql, the refusals the limits apply after validation (so
//! that a document's validation errors come first) and warn-only excesses, is left to the
//! second schema, which carries the extensions as before: a request whose precheck is not
//! clean (no such operation, a subscription over HTTP, a cost or complexity bound over its
//! limit, a warn-only limit exceeded) is served by it, exactly as before this pipeline. With
//! `server.field_spans` or `[tracing]` on, every request is, since their extensions need the
//! per-field hook.

use std::any::TypeId;
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_graphql::parser::types::OperationType;
use async_graphql::registry::Registry;
use async_graphql::{Data, Request, Response};
use banyan_resolvers::{BanyanSchema, RequestScope};
use banyan_sources::CallBudget;
use futures::stream::{self, BoxStream, StreamExt};

use crate::config::LimitsConfig;
use crate::document_cache::{CachedDocument, DocumentCache};
use crate::error_masking::{WarningLimit, mask_response, request_id_of};
use crate::introspection::IntrospectionGrant;
use crate::limits::{self, LimitWarnings, Precheck};
use crate::metrics::{Metrics, OperationRecord};
use crate::persisted::{EXTENSION_KEY, PersistedError, PersistedOperations, PersistedQuery, Resolved};
use crate::response_order::ResponseOrder;

/// The GraphQL executor every transport calls. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Graphql(Arc<Inner>);

/// The schemas with no extension.
pub(crate) struct FastSchemas {
    /// Validates every document with all of async-graphql's rules.
    pub(crate) strict: BanyanSchema,
    /// Validates in async-graphql's fast mode: for a document that has passed the strict schema
    /// once, and a request whose variables `crate::validated` accepts there.
    pub(crate) validated_once: BanyanSchema,
}

/// What [`Graphql`] is built from.
pub(crate) struct GraphqlParts {
    /// The schemas with no extension; `None` when a per-field extension is configured.
    pub(crate) fast: Option<FastSchemas>,
    /// The schema with the gateway's extensions.
    pub(crate) full: BanyanSchema,
    pub(crate) limits: LimitsConfig,
    pub(crate) limit_warnings: Arc<LimitWarnings>,
    pub(crate) documents: DocumentCache,
    pub(crate) persisted: Arc<PersistedOperations>,
    pub(crate) metrics: Metrics,
    /// `server.introspection`.
    pub(crate) introspection: bool,
    /// The rate limit of backend-failure warnings, shared with the masking extension.
    pub(crate) masking: Arc<WarningLimit>,
}

struct Inner {
    parts: GraphqlParts,
    /// The schema's types: field types for completion, argument defaults for the cost.
    registry: Registry,
    /// Requests run on [`FastSchemas::validated_once`], for the tests to see which schema ran
    /// (not counted outside them: a shared counter on every request is not free).
    #[cfg(test)]
    validated_once_runs: AtomicU64,
}

/// Where a request goes once prepared.
enum Route {
    /// Answered before execution (a refusal), with the request id its errors carry.
    Answer(Response, Option<String>),
    /// To the schema with the extensions, untouched but for a persisted document filled in.
    Full(Request),
    /// To the schema without extensions.
    Fast(Request, Box<Finish>),
}

/// What finishing each response of a request on the fast path needs.
struct Finish {
    document: Arc<CachedDocument>,
    operation_name: Option<String>,
    operation_type: OperationType,
    order: Arc<ResponseOrder>,
    budget: Option<CallBudget>,
    /// Its labels, and its place among running subscriptions while the stream lives.
    record: OperationRecord,
    /// An APQ registration, stored once the document has passed validation.
    register: std::sync::Mutex<Option<(String, Arc<str>)>>,
    request_id: Option<String>,
}

impl Graphql {
    pub(crate) fn new(parts: GraphqlParts) -> Self {
        Self(Arc::new(Inner {
            parts,
            registry: banyan_resolvers::type_registry(),
            #[cfg(test)]
            validated_once_runs: AtomicU64::new(0),
        }))
    }

    /// Requests run on the schema that validates a document once (a test's count).
    #[cfg(test)]
    pub(crate) fn validated_once_runs(&self) -> u64 {
        self.0.validated_once_runs.load(Ordering::Relaxed)
    }

    /// Whether requests run on the schema without extensions (the default configuration).
    pub(crate) fn is_extension_free(&self) -> bool {
        self.0.parts.fast.is_some()
    }

    /// The schema with the gateway's extensions.
    #[cfg(test)]
    pub(crate) fn full_schema(&self) -> &BanyanSchema {
        &self.0.parts.full
    }

    /// Executes a query or mutation sent over HTTP (`Schema::execute`), or over the legacy
    /// WebSocket protocol, which runs queries as HTTP does.
    pub(crate) async fn execute(&self, request: Request) -> Response {
        self.execute_over_http(request, false).await
    }

    /// [`Self::execute`] for a caller that renders the response's data with
    /// `banyan_resolvers::write_data` (the HTTP transport): on the fast path its lean objects
    /// are written as JSON as they resolve (`banyan_resolvers::WrittenObjects`), unless the
    /// operation merges objects under a key selected twice, which async-graphql's containers do
    /// on maps only.
    pub(crate) async fn execute_to_render(&self, request: Request) -> Response {
        self.execute_over_http(request, true).await
    }

    async fn execute_over_http(&self, request: Request, written: bool) -> Response {
        let parts = &self.0.parts;
        let Some(fast) = &parts.fast else { return parts.full.execute(request).await };
        match self.prepare(request, None, true).await {
            Route::Answer(response, request_id) => self.mask(response, request_id.as_deref()),
            Route::Full(request) => parts.full.execute(request).await,
            Route::Fast(mut request, finish) => {
                if written && !finish.order.merges_objects() {
                    request.data.insert(if finish.order.repeats_keys() {
                        banyan_resolvers::WrittenObjects::checking_keys()
                    } else {
                        banyan_resolvers::WrittenObjects::with_unique_keys()
                    });
                }
                let started = Instant::now();
                let schema = if finish.document.validated_for(&request.variables, &self.0.registry) {
                    #[cfg(test)]
                    self.0.validated_once_runs.fetch_add(1, Ordering::Relaxed);
                    &fast.validated_once
                } else {
                    &fast.strict
                };
                let response = schema.execute(request).await;
                self.finish(response, &finish, started.elapsed()).await
            }
        }
    }

    /// Executes an operation sent over WebSocket (`Schema::execute_stream_with_session_data`):
    /// one response for a query or mutation, one per event for a subscription.
    pub(crate) fn execute_stream(
        &self,
        request: Request,
        session: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let session = session.unwrap_or_default();
        let parts = &self.0.parts;
        // Over WebSocket every document is validated in full: a subscription runs on one schema
        // from start to end, and an operation there is not on the hot path HTTP is.
        let Some(fast) = parts.fast.as_ref().map(|fast| fast.strict.clone()) else {
            return parts.full.execute_stream_with_session_data(request, session);
        };
        let this = self.clone();
        stream::once(async move {
            match this.prepare(request, Some(&*session), false).await {
                Route::Answer(response, request_id) => {
                    stream::once(std::future::ready(this.mask(response, request_id.as_deref()))).boxed()
                }
                Route::Full(request) => this.0.parts.full.execute_stream_with_session_data(request, session),
                Route::Fast(request, finish) => {
                    let finish: Arc<Finish> = Arc::from(finish);
                    let started = Instant::now();
                    fast.execute_stream_with_session_data(request, session)
                        .then(move |response| {
                            let (this, finish) = (this.clone(), finish.clone());
                            async move { this.finish(response, &finish, started.elapsed()).await }
                        })
                        .boxed()
                }
            }
        })
        .flatten()
        .boxed()
    }

    /// Steps 1 to 3 of the module's documentation.
    async fn prepare(&self, mut request: Request, session: Option<&Data>, over_http: bool) -> Route {
        let parts = &self.0.parts;
        let request_id = request_id_of(&request, session);
        // 1. Persisted operations, as `PersistedExtension` does for what HTTP has not resolved.
        let already = data::<Resolved>(&request.data).cloned();
        let resolved = match already {
            Some(resolved) => resolved,
            None => match self.resolve_persisted(&mut request).await {
                Ok(resolved) => {
                    request.data.insert(resolved.clone());
                    resolved
                }
                Err(error) => {
                    return Route::Answer(Response::from_errors(vec![error.into_server_error()]), request_id);
                }
            },
        };
        // 2. The limits.
        let precheck = limits::precheck(
            &request.query,
            request.operation_name.as_deref(),
            &request.variables,
            &self.0.registry,
            &parts.limits,
            &parts.documents,
            over_http,
        );
        let (document, operation_type) = match precheck {
            Precheck::Refused(error) => return Route::Answer(Response::from_errors(vec![error]), request_id),
            Precheck::Checked => return Route::Full(request),
            Precheck::Clean { document, operation_type } => (document, operation_type),
        };
        let budget = data::<RequestScope>(&request.data).map(|scope| scope.caller.budget.clone());
        if let Some(budget) = &budget {
            limits::limit_budget(budget, operation_type, &parts.limits);
        }
        // 3. The introspection policy.
        let granted = parts.introspection
            || request.data.contains_key(&TypeId::of::<IntrospectionGrant>())
            || session.is_some_and(|session| session.contains_key(&TypeId::of::<IntrospectionGrant>()));
        if !granted {
            if crate::introspection::selects_introspection(&document.document) {
                return Route::Answer(
                    Response::from_errors(vec![crate::introspection::disabled()]),
                    request_id,
                );
            }
            // Should a selection escape the walk above, async-graphql still answers nothing.
            request = request.disable_introspection();
        }
        let operation_name = request.operation_name.clone();
        let Ok(operation) = limits::select_operation(&document.document, operation_name.as_deref()) else {
            // `precheck` found it; should it not be there, the extensions decide.
            return Route::Full(request);
        };
        // A cached document keeps the order of the operation it last ran.
        let order = match document.order.get() {
            Some((name, order)) if *name == operation_name => order.clone(),
            _ => {
                let order = Arc::new(ResponseOrder::of(&document.document, operation));
                let _ = document.order.set((operation_name.clone(), order.clone()));
                order
            }
        };
        // A shared execution's subscribers count as running subscriptions one by one.
        let shared =
            request.data.contains_key(&TypeId::of::<banyan_resolvers::shared_execution::SharedFeed>());
        let record = parts.metrics.operation(&document.document, operation_name.as_deref(), !shared);
        request.set_parsed_query(document.document.clone());
        let finish = Finish {
            document,
            operation_name,
            operation_type,
            order,
            budget,
            record,
            register: std::sync::Mutex::new(resolved.register),
            request_id,
        };
        Route::Fast(request, Box::new(finish))
    }

    /// [`PersistedOperations::resolve`] for a request that comes with its persisted-query
    /// extension (a WebSocket operation); fills in the document sent by id.
    async fn resolve_persisted(&self, request: &mut Request) -> Result<Resolved, PersistedError> {
        let persisted = match request.extensions.remove(EXTENSION_KEY) {
            None => None,
            Some(value) => {
                let json = value.into_json().map_err(|_| PersistedError::Malformed)?;
                Some(PersistedQuery::from_json(&json)?)
            }
        };
        let resolved = self
            .0
            .parts
            .persisted
            .resolve(&request.query, request.operation_name.as_deref(), persisted)
            .await?;
        if let Some(text) = &resolved.query {
            request.query = text.to_string();
        }
        Ok(resolved)
    }

    /// Step 5 of the module's documentation, for one response of a request on the fast path.
    async fn finish(&self, mut response: Response, finish: &Finish, elapsed: Duration) -> Response {
        let parts = &self.0.parts;
        if is_request_error(&response) {
            // Everything else that refuses a request before execution was checked before it:
            // these are async-graphql's validation errors.
            response.errors = limits::code_validation_errors(std::mem::take(&mut response.errors));
        } else {
            let document = &finish.document.document;
            // A response that is not a request error has passed validation.
            finish.document.mark_validated();
            if let Ok(operation) = limits::select_operation(document, finish.operation_name.as_deref()) {
                banyan_resolvers::complete_response(&mut response, &self.0.registry, document, operation);
            }
            finish.order.apply(&mut response.data);
            if finish.operation_type != OperationType::Subscription {
                parts.metrics.observe(&finish.record, elapsed);
                if let Some(budget) = &finish.budget {
                    limits::after_execution(budget, &parts.limit_warnings);
                }
            }
            let registration = finish.register.lock().ok().and_then(|mut pending| pending.take());
            if let Some(registration) = registration {
                parts.persisted.register(registration).await;
            }
        }
        self.mask(response, finish.request_id.as_deref())
    }

    /// Masks `response`'s errors as every response's are, with `request_id`.
    pub(crate) fn mask(&self, response: Response, request_id: Option<&str>) -> Response {
        mask_response(response, request_id, &self.0.parts.masking)
    }
}

/// A request error: no data, and no error with a path (field errors always carry one).
fn is_request_error(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// A value of a request's data.
fn data<T: Send + Sync + 'static>(data: &Data) -> Option<&T> {
    data.get(&TypeId::of::<T>()).and_then(|value| value.downcast_ref::<T>())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::app::AppState;
    use crate::config::Config;
    use crate::error_masking::RequestId;

    fn state(configure: impl FnOnce(&mut Config)) -> AppState {
        AppState::for_tests(configure)
    }

    fn request(query: &str, operation: Option<&str>, variables: Value) -> async_graphql::Request {
        let mut request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables))
            .data(RequestId("req-1".to_owned()));
        if let Some(name) = operation {
            request = request.operation_name(name);
        }
        request
    }

    /// The pipeline's answer and the extensions' (the schema as it was before the pipeline),
    /// both serialized.
    async fn both(state: &AppState, query: &str, operation: Option<&str>) -> (String, String) {
        let piped = state.graphql.execute(request(query, operation, Value::Null)).await;
        let extended = state.graphql.full_schema().execute(request(query, operation, Value::Null)).await;
        let text = |response: &async_graphql::Response| serde_json::to_string(response).expect("serializes");
        (text(&piped), text(&extended))
    }

    #[tokio::test]
    async fn the_default_configuration_runs_without_extensions() {
        assert!(state(|_| {}).graphql.is_extension_free());
        assert!(!state(|config| config.server.field_spans = true).graphql.is_extension_free());
    }

    #[tokio::test]
    async fn the_pipeline_answers_as_the_extensions_did() {
        let documents: &[(&str, Option<&str>)] = &[
            ("{ __typename }", None),
            // No caller: every data field fails with UNAUTHENTICATED, so nulls are completed
            // and propagated, in the order of the selection set, through aliases and fragments.
            ("{ w: workspaces { id name } me { id fullName } __typename }", None),
            ("query Q { ...F b: __typename } fragment F on Query { me { id } a: __typename }", Some("Q")),
            ("{ template(id: \"VGVtcGxhdGU6MQ==\") { id name stats(days: 7) { sent } } }", None),
            ("mutation { __typename }", None),
            // Refusals, before and after validation, and validation errors.
            ("{ nope }", None),
            ("{ __typename ", None),
            ("{ ...A } fragment A on Query { ...A }", None),
            ("query A { __typename } query B { __typename }", None),
            ("query A { __typename } query B { __typename }", Some("C")),
            ("{ nope(x: 1) __typename(y: 2) }", Some("Z")),
            ("subscription { templateEvents(templateIds: [\"1\"]) { sequence } }", None),
            ("{ __schema { queryType { name } } }", None),
            ("{ ...I } fragment I on Query { __type(name: \"Query\") { name } }", None),
        ];
        for introspection in [false, true] {
            let state = state(|config| config.server.introspection = introspection);
            for (query, operation) in documents {
                let (piped, extended) = both(&state, query, *operation).await;
                assert_eq!(piped, extended, "{query} (introspection {introspection})");
            }
        }
        let small = state(|config| config.limits.max_complexity = 3);
        for query in ["{ __schema { queryType { name kind } } }", "{ __schema { queryType { name } } }"] {
            let (piped, extended) = both(&small, query, None).await;
            assert_eq!(piped, extended, "{query}");
        }
    }

    #[tokio::test]
    async fn a_failed_field_is_null_and_carries_the_request_id() {
        let state = state(|_| {});
        let response = state.graphql.execute(request("{ me { id } __typename }", None, Value::Null)).await;
        // Completed (async-graphql leaves a failed field out) and in the selection's order.
        let async_graphql::Value::Object(data) = &response.data else { panic!("data: {:?}", response.data) };
        let keys: Vec<&str> = data.keys().map(|key| key.as_str()).collect();
        assert_eq!(keys, ["me", "__typename"]);
        assert_eq!(data["me"], async_graphql::Value::Null);
        let response = serde_json::to_value(&response).expect("serializes");
        assert_eq!(response["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert_eq!(response["errors"][0]["extensions"]["requestId"], "req-1");
    }

    #[tokio::test]
    async fn a_repeated_document_is_parsed_once_and_a_refusal_never_kept() {
        let state = state(|_| {});
        let documents = &state.graphql.0.parts.documents;
        for _ in 0..3 {
            state.graphql.execute(request("{ __typename }", None, Value::Null)).await;
        }
        assert_eq!((documents.misses(), documents.hits()), (1, 2));
        // One character more is another document.
        state.graphql.execute(request("{ __typename  }", None, Value::Null)).await;
        assert_eq!((documents.misses(), documents.hits()), (2, 2));
        for _ in 0..2 {
            let response = state
                .graphql
                .execute(request("{ ...A } fragment A on Query { ...A }", None, Value::Null))
                .await;
            let codes: Vec<_> = response
                .errors
                .iter()
                .filter_map(|e| e.extensions.as_ref().and_then(|x| x.get("code")).cloned())
                .collect();
            assert_eq!(codes, [async_graphql::Value::from("FRAGMENT_CYCLE")]);
        }
        assert_eq!((documents.misses(), documents.hits()), (4, 2), "the refusal is worked out each time");
    }

    #[tokio::test]
    async fn a_document_validated_once_runs_on_the_fast_validating_schema_while_its_variables_pass() {
        let state = state(|_| {});
        let query =
            "query Q($id: ID!, $w: StatsWindow!) { template(id: $id) { id stats(window: $w) { sent } } }";
        let good = serde_json::json!({ "id": "VGVtcGxhdGU6MQ==", "w": "LAST_7_DAYS" });
        let text = |response: &async_graphql::Response| serde_json::to_string(response).expect("serializes");
        // No caller: the field fails (UNAUTHENTICATED), but the document passes validation.
        let first = state.graphql.execute(request(query, None, good.clone())).await;
        assert_eq!(state.graphql.validated_once_runs(), 0, "the first run validates in full");
        let second = state.graphql.execute(request(query, None, good.clone())).await;
        assert_eq!(state.graphql.validated_once_runs(), 1);
        assert_eq!(text(&second), text(&first));
        assert!(!super::is_request_error(&first), "{}", text(&first));
        // Variables it does not accept go to the strict schema, and get its errors.
        for bad in [
            serde_json::json!({ "id": null, "w": "LAST_7_DAYS" }),
            serde_json::json!({ "id": "VGVtcGxhdGU6MQ==", "w": "NEVER" }),
            serde_json::json!({ "id": true, "w": "LAST_7_DAYS" }),
        ] {
            let piped = state.graphql.execute(request(query, None, bad.clone())).await;
            let extended = state.graphql.full_schema().execute(request(query, None, bad.clone())).await;
            assert!(super::is_request_error(&piped), "{bad}: {}", text(&piped));
            assert_eq!(text(&piped), text(&extended), "{bad}");
        }
        assert_eq!(state.graphql.validated_once_runs(), 1);
        state.graphql.execute(request(query, None, good)).await;
        assert_eq!(state.graphql.validated_once_runs(), 2, "a refusal does not undo the validation");
    }
}
