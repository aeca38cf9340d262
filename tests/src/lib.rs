//! The end-to-end test kit: a [`TestStack`] is the real gateway in front of the real devstack
//! (a REST monolith and two tonic services), every one on its own ephemeral port on 127.0.0.1,
//! with helpers to send GraphQL over HTTP ([`TestStack::graphql`]) and over WebSocket
//! ([`ws::WsClient`]), and to read what each backend received.

pub mod subscriptions;
pub mod ws;

use std::net::SocketAddr;
use std::time::Duration;

use banyan_devstack::{DevStack, DevStackConfig};
use banyan_gateway::config::BackendsConfig;
use banyan_gateway::{Config, RunningGateway};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The user the tests act as by default: owner of workspaces 1 and 2, not a member of 3.
pub const OWNER: u64 = 1;

/// A gateway and its devstack, stopped on [`TestStack::stop`] (or when dropped).
pub struct TestStack {
    /// The stand-in backends, with their fault knobs and call counters.
    pub devstack: DevStack,
    /// The gateway under test.
    pub gateway: RunningGateway,
    http: reqwest::Client,
}

/// A GraphQL response over HTTP.
#[derive(Debug)]
pub struct GraphqlResponse {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body, as JSON (`Value::Null` when it is not JSON).
    pub body: Value,
}

impl GraphqlResponse {
    /// `body.data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// The body with each error's request id left out (every request has its own), to compare
    /// two answers.
    pub fn without_request_ids(mut self) -> Value {
        for error in self.body.get_mut("errors").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(extensions) = error.get_mut("extensions").and_then(Value::as_object_mut) {
                extensions.remove("requestId");
            }
        }
        self.body
    }

    /// The `extensions.code` of every error, in order.
    pub fn error_codes(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| e["extensions"]["code"].as_str().unwrap_or("<no code>").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestStack {
    /// A devstack with its defaults (no event generator, no faults) and a default gateway.
    pub async fn start() -> Self {
        Self::start_with(DevStackConfig::default(), |_| {}).await
    }

    /// A stack with this devstack configuration and the gateway configuration as `configure`
    /// leaves it (backends and listen address are filled in first, and introspection is turned
    /// on, as in `banyan dev`, since many tests introspect; a test of `banyan serve`'s defaults
    /// turns it off again).
    pub async fn start_with(devstack: DevStackConfig, configure: impl FnOnce(&mut Config)) -> Self {
        let devstack = DevStack::start(devstack).await.expect("the devstack starts");
        let mut config = gateway_config(&devstack);
        configure(&mut config);
        let gateway = RunningGateway::start(&config).await.expect("the gateway starts");
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("an HTTP client");
        Self { devstack, gateway, http }
    }

    /// Another gateway in front of the same devstack, configured as [`TestStack::start_with`]
    /// configures the first: a second replica.
    pub async fn replica(&self, configure: impl FnOnce(&mut Config)) -> RunningGateway {
        let mut config = gateway_config(&self.devstack);
        configure(&mut config);
        RunningGateway::start(&config).await.expect("the replica starts")
    }

    /// `http://127.0.0.1:PORT/graphql`.
    pub fn graphql_url(&self) -> String {
        format!("http://{}/graphql", self.gateway.addr())
    }

    /// The gateway's `/metrics` text (Prometheus exposition); asserts a 200.
    pub async fn metrics_text(&self) -> String {
        let url = format!("http://{}/metrics", self.gateway.addr());
        let response = self.http().get(url).send().await.expect("the gateway answers");
        assert_eq!(response.status(), 200);
        response.text().await.expect("a text body")
    }

    /// `ws://127.0.0.1:PORT/graphql`.
    pub fn websocket_url(&self) -> String {
        format!("ws://{}/graphql", self.gateway.addr())
    }

    /// The token of a seeded user.
    pub fn token(&self, user_id: u64) -> String {
        self.devstack
            .dataset()
            .users
            .iter()
            .find(|u| u.id == user_id)
            .map(|u| u.token.clone())
            .expect("a seeded user")
    }

    /// A plain HTTP client with a 20 s timeout, for requests the helpers don't cover.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// POSTs a GraphQL request as `user` (anonymous when `None`).
    pub async fn graphql_as(&self, user: Option<u64>, query: &str, variables: Value) -> GraphqlResponse {
        self.graphql_to(self.gateway.addr(), user, query, variables).await
    }

    /// [`graphql_as`](Self::graphql_as), to the gateway listening on `addr` (a replica's).
    pub async fn graphql_to(
        &self,
        addr: SocketAddr,
        user: Option<u64>,
        query: &str,
        variables: Value,
    ) -> GraphqlResponse {
        let mut request = self
            .http
            .post(format!("http://{addr}/graphql"))
            .header("accept", "application/graphql-response+json")
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(user) = user {
            request = request.header("authorization", format!("Token {}", self.token(user)));
        }
        read(request.send().await.expect("the gateway answers")).await
    }

    /// POSTs a GraphQL request as [`OWNER`].
    pub async fn graphql(&self, query: &str, variables: Value) -> GraphqlResponse {
        self.graphql_as(Some(OWNER), query, variables).await
    }

    /// GETs a path of the monolith's REST API directly (not through the gateway) as `user`, e.g.
    /// a legacy view, to check it against a recount of the seeded data.
    pub async fn monolith_get(&self, user: u64, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.devstack.monolith_url()))
            .header("authorization", format!("Token {}", self.token(user)))
            .send()
            .await
            .expect("the monolith answers")
            .json()
            .await
            .expect("the monolith answers JSON")
    }

    /// Executes a GraphQL request as `user` through Banyan's own resolvers and sources, routed by
    /// `routing_table` (the text of a routing table file; fields it does not list stay on their
    /// declared default) instead of the gateway's table: how a test reads a migrated field through
    /// its legacy implementation without a gateway of its own. The backends are this stack's
    /// devstack.
    pub async fn execute_with_routing(
        &self,
        routing_table: &str,
        user: u64,
        query: &str,
        variables: Value,
    ) -> Value {
        let timeout = Duration::from_secs(5);
        let grpc = |url: String| banyan_sources::GrpcOptions {
            url,
            timeout,
            connect_timeout: timeout,
            max_streams_per_connection: banyan_sources::stream_pool::DEFAULT_MAX_STREAMS_PER_CONNECTION,
            resilience: banyan_sources::ResilienceOptions::default(),
        };
        let sources = banyan_sources::Sources::new(&banyan_sources::SourcesOptions {
            monolith: banyan_sources::MonolithOptions {
                base_url: self.devstack.monolith_url(),
                timeout,
                connect_timeout: timeout,
                resilience: banyan_sources::ResilienceOptions::default(),
            },
            events: grpc(self.devstack.events_url()),
            drafts: grpc(self.devstack.drafts_url()),
            service_identity: Some(self.devstack.service_identity_keys().clone()),
        })
        .expect("the backend clients build");
        let catalog =
            std::sync::Arc::new(banyan_migration::Catalog::banyan().expect("the declarations agree"));
        let table = banyan_migration::RoutingTable::parse(routing_table, "test table", &catalog)
            .expect("the test's routing table is valid");
        let recorder = std::sync::Arc::new(banyan_migration::ShadowRecorder::new(
            catalog,
            banyan_migration::RecorderConfig::default(),
        ));
        let engine = banyan_migration::Engine::new(banyan_migration::LiveTable::new(
            table,
            recorder,
            std::sync::Arc::default(),
        ));
        let schema = banyan_resolvers::build_schema(
            sources.clone(),
            engine.clone(),
            banyan_resolvers::QueryLimits::default(),
        );
        let caller = banyan_sources::Caller {
            credential: banyan_sources::Credential::Token(self.token(user)),
            user_id: banyan_sources::domain::UserId(user),
            request_id: None,
            budget: banyan_sources::CallBudget::unlimited(),
            forwarded_headers: Vec::new(),
            trace: banyan_sources::TraceContext::off(),
        };
        let subject = banyan_migration::RequestSubject {
            user_id: Some(user.to_string()),
            request_id: "execute_with_routing".to_owned(),
            headers: Vec::new(),
        };
        let routing = banyan_resolvers::RequestRouting::new(
            engine.live.snapshot(),
            subject,
            banyan_migration::Overrides::none(),
        );
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables))
            .data(banyan_resolvers::RequestScope::new(&sources, caller, routing));
        serde_json::to_value(schema.execute(request).await).expect("a response serializes")
    }

    /// Asserts the gateway still answers a query that reads the monolith: what every refusal
    /// test checks after its hostile request.
    pub async fn assert_serving(&self) {
        let response = self.graphql("{ me { username } }", json!({})).await;
        assert_eq!(response.status, 200, "{:?}", response.body);
        assert_eq!(
            response.data()["me"]["username"].as_str().map(str::is_empty),
            Some(false),
            "{:?}",
            response.body
        );
    }

    /// Stops the gateway, then the devstack.
    pub async fn stop(self) {
        self.gateway.shutdown().await;
        self.devstack.shutdown().await;
    }
}

/// A gateway's configuration for `devstack`: an ephemeral loopback port, the devstack's
/// backends (2 s per call), introspection on (as in `banyan dev`), and the secret the services
/// verify the caller's signed identity with.
fn gateway_config(devstack: &DevStack) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().expect("a socket address");
    config.backends =
        BackendsConfig::at(&devstack.monolith_url(), &devstack.events_url(), &devstack.drafts_url());
    for backend in [
        &mut config.backends.monolith.timeout,
        &mut config.backends.events.timeout,
        &mut config.backends.drafts.timeout,
    ] {
        *backend = Duration::from_secs(2);
    }
    config.server.introspection = true;
    config.auth.service_identity_secrets =
        banyan_gateway::config::ServiceIdentitySecrets(devstack.service_identity_secrets().to_vec());
    config
}

/// Polls `condition` every 50 ms, at most 200 times (10 s: a bound against a hang, not a
/// measurement); whether it became true.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if condition() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    condition()
}

/// Reads an HTTP response as a [`GraphqlResponse`].
pub async fn read(response: reqwest::Response) -> GraphqlResponse {
    let status = response.status();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let bytes = response.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    GraphqlResponse { status, content_type, body }
}

/// The global id of a template, as the schema encodes it.
pub fn template_id(id: u64) -> String {
    global_id("Template", id)
}

/// The global id of a user.
pub fn user_id(id: u64) -> String {
    global_id("User", id)
}

/// The global id of a workspace.
pub fn workspace_id(id: u64) -> String {
    global_id("Workspace", id)
}

/// The global id of the block with `key` (`b1`, …) in `template`'s draft.
pub fn block_id(template: u64, key: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("Block:{template}:{key}"))
}

/// The global id of `template`'s draft.
pub fn draft_id(template: u64) -> String {
    global_id("Draft", template)
}

/// The global id of `user`'s membership of `workspace`.
pub fn member_id(workspace: u64, user: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("WorkspaceMember:{workspace}:{user}"))
}

fn global_id(type_name: &str, id: u64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{type_name}:{id}"))
}

/// The operations of `frontend-contract/`, each with the fragments it uses, as the persisted
/// manifest has them: `(name, body)`.
pub fn contract_operations() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../frontend-contract");
    let contract = banyan_schema::Contract::load(&dir).expect("the contract loads");
    banyan_schema::build_manifest(&contract)
        .expect("the manifest builds")
        .operations
        .into_iter()
        .map(|op| (op.name, op.body))
        .collect()
}

/// The body of the contract operation `name` (with its fragments); panics when the contract has
/// no such operation.
pub fn contract_operation(name: &str) -> String {
    contract_operations()
        .into_iter()
        .find(|(op, _)| op == name)
        .map(|(_, body)| body)
        .unwrap_or_else(|| panic!("{name} is not in the contract"))
}

/// A routing-table file in a scratch directory of its own, removed when dropped: what a test
/// points `migration.routing_table` at and rewrites to flip fields.
pub struct RoutingTableFile {
    dir: tempfile::TempDir,
    /// The file.
    pub path: std::path::PathBuf,
}

impl RoutingTableFile {
    /// A file holding `text`, in a new directory whose name starts with `test`'s (the tests of
    /// one binary share a process, so the name alone would not keep two apart).
    pub fn new(test: &str, text: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("banyan-routing-{test}-"))
            .tempdir()
            .expect("a scratch directory");
        let file = Self { path: dir.path().join("routing.toml"), dir };
        file.write(text);
        file
    }

    /// Replaces the file whole (write, then rename), as a ConfigMap update does, so the watcher
    /// never reads half of it.
    pub fn write(&self, text: &str) {
        let next = self.dir.path().join("routing.toml.next");
        std::fs::write(&next, text).expect("written");
        std::fs::rename(&next, &self.path).expect("renamed");
    }
}

/// The log lines of every test in this test binary (the gateway runs in the test's process), as
/// `banyan serve` writes them with `server.log_format = "json"` and the default filter: one object
/// per line, the event's fields flattened, its spans listed. The first call installs the
/// process's subscriber, so a test binary that reads logs reads them all through this.
pub fn captured_json_logs() -> std::sync::Arc<std::sync::Mutex<Vec<u8>>> {
    use std::sync::{Arc, Mutex, OnceLock};
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,tower_http=warn,async_graphql=warn"))
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}

/// Where [`captured_json_logs`] writes.
struct LogSink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The value of the sample written exactly as `series` (its name and labels, then the value) in
/// a `/metrics` text.
pub fn metric_sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
