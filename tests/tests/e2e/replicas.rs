//! Two replicas in front of one devstack, as a load balancer sees them.
//!
//! With a shared Redis (`[redis]`), what one replica learns the other knows: an operation
//! registered through replica A runs by hash on replica B, and a caller's rate limit counts its
//! requests to both. With Redis stopped, both keep serving (APQ answers "not found", rate limits
//! fail open). These tests need a real `redis-server`: they are ignored by `cargo test` and run by
//! `scripts/redis-check/run.sh` (which installs Debian's `redis-server` when absent and names it
//! in `REDIS_SERVER`). Without Redis: one routing table read by two replicas sends each user to
//! the same backend on both (sticky canary decisions hash the user id).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use banyan_devstack::DevStackConfig;
use banyan_gateway::RunningGateway;
use banyan_gateway::config::Config;
use banyan_tests::{GraphqlResponse, RoutingTableFile, TestStack, read, template_id};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// A `redis-server` of this test's own, on a free loopback port, without persistence.
struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Self {
        let binary = std::env::var("REDIS_SERVER")
            .expect("REDIS_SERVER names redis-server (scripts/redis-check/run.sh sets it)");
        // A port the OS just handed out and took back: free unless something takes it in
        // between, which the readiness wait below would show.
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Command::new(binary)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = Self { child, port };
        for _ in 0..100 {
            if redis.command("PING").starts_with("+PONG") {
                return redis;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not answer PING on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One inline command over a plain socket (RESP accepts them); the first reply line, or
    /// "" when Redis is not there.
    fn command(&self, command: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
        if socket.write_all(format!("{command}\r\n").as_bytes()).is_err() {
            return String::new();
        }
        let mut line = String::new();
        let _ = BufReader::new(socket).read_line(&mut line);
        line
    }

    /// Stops Redis the way a crash or a failover looks to its clients: the process goes away.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn sharing(redis: &Redis) -> impl Fn(&mut Config) + '_ {
    move |config: &mut Config| {
        config.redis.url = redis.url();
        config.rate_limit.enabled = true;
        // Four requests per caller, refilled so slowly that nothing refills during the test.
        config.rate_limit.burst = 4;
        config.rate_limit.requests_per_second = 0.0001;
    }
}

async fn post(stack: &TestStack, gateway: &RunningGateway, user: u64, body: Value) -> GraphqlResponse {
    let request = stack
        .http()
        .post(format!("http://{}/graphql", gateway.addr()))
        .header("authorization", format!("Token {}", stack.token(user)))
        .json(&body);
    read(request.send().await.expect("the replica answers")).await
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

#[tokio::test]
#[ignore = "needs redis-server: scripts/redis-check/run.sh"]
async fn an_operation_registered_through_one_replica_runs_by_hash_on_the_other() {
    let redis = Redis::start();
    let stack =
        TestStack::start_with(DevStackConfig::default(), |config| config.redis.url = redis.url()).await;
    let replica = stack.replica(|config| config.redis.url = redis.url()).await;
    let query = "query Shared { me { username } }";
    let hash = hex::encode(Sha256::digest(query.as_bytes()));

    // Unknown to both at first.
    let unknown = post(&stack, &replica, 1, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(unknown.error_codes(), ["PERSISTED_QUERY_NOT_FOUND"]);
    // Registered through A ...
    let registered =
        post(&stack, &stack.gateway, 1, json!({ "query": query, "extensions": persisted(&hash) })).await;
    assert_eq!(registered.status, 200, "{:?}", registered.body);
    let username = registered.data()["me"]["username"].clone();
    assert!(username.is_string(), "{:?}", registered.body);
    // ... it runs by hash on B, which never saw the text.
    let by_hash = post(&stack, &replica, 1, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(by_hash.status, 200, "{:?}", by_hash.body);
    assert_eq!(by_hash.data()["me"]["username"], username);
    // Redis holds it under the documented key.
    assert!(redis.command(&format!("EXISTS banyan:apq:{hash}")).starts_with(":1"));

    replica.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
#[ignore = "needs redis-server: scripts/redis-check/run.sh"]
async fn a_callers_rate_limit_counts_across_both_replicas() {
    let redis = Redis::start();
    let stack = TestStack::start_with(DevStackConfig::default(), sharing(&redis)).await;
    let replica = stack.replica(sharing(&redis)).await;
    let query = json!({ "query": "{ me { username } }" });

    // Alternating replicas, one user: the burst of 4 is spent once, not once per replica.
    let mut statuses = Vec::new();
    for round in 0..8 {
        let gateway = if round % 2 == 0 { &stack.gateway } else { &replica };
        let answer = post(&stack, gateway, 2, query.clone()).await;
        if answer.status == 429 {
            assert_eq!(answer.error_codes(), ["RATE_LIMITED"]);
        }
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429, 429, 429]);
    // Another user has a bucket of its own.
    assert_eq!(post(&stack, &replica, 3, query.clone()).await.status, 200);

    replica.shutdown().await;
    stack.stop().await;
}

#[tokio::test]
#[ignore = "needs redis-server: scripts/redis-check/run.sh"]
async fn with_redis_gone_both_replicas_keep_serving() {
    let mut redis = Redis::start();
    let stack = TestStack::start_with(DevStackConfig::default(), sharing(&redis)).await;
    let replica = stack.replica(sharing(&redis)).await;
    let deny = stack
        .replica(|config| {
            sharing(&redis)(config);
            config.rate_limit.on_store_error = banyan_gateway::config::OnStoreError::Deny;
        })
        .await;
    let query = "query Degraded { me { username } }";
    let hash = hex::encode(Sha256::digest(query.as_bytes()));
    let registered =
        post(&stack, &stack.gateway, 4, json!({ "query": query, "extensions": persisted(&hash) })).await;
    assert_eq!(registered.status, 200, "{:?}", registered.body);

    redis.stop();

    for gateway in [&stack.gateway, &replica] {
        // Plain queries: served, the rate limit failing open (more than the burst of 4).
        for _ in 0..6 {
            let answer = post(&stack, gateway, 5, json!({ "query": "{ me { username } }" })).await;
            assert_eq!(answer.status, 200, "{:?}", answer.body);
            assert!(answer.data()["me"]["username"].is_string(), "{:?}", answer.body);
        }
    }
    // A registered document B never held in memory: "not found", so the client resends it.
    let by_hash = post(&stack, &replica, 4, json!({ "extensions": persisted(&hash) })).await;
    assert_eq!(by_hash.error_codes(), ["PERSISTED_QUERY_NOT_FOUND"]);
    let resent = post(&stack, &replica, 4, json!({ "query": query, "extensions": persisted(&hash) })).await;
    assert_eq!(resent.status, 200, "{:?}", resent.body);
    // Failing closed where configured so.
    let refused = post(&stack, &deny, 5, json!({ "query": "{ me { username } }" })).await;
    assert_eq!((refused.status.as_u16(), refused.error_codes()), (429, vec!["RATE_LIMITED".to_owned()]));

    // Counted in metrics, per store.
    let metrics = stack
        .http()
        .get(format!("http://{}/metrics", replica.addr()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let count = |store: &str| {
        metrics
            .lines()
            .find(|line| line.starts_with(&format!("banyan_redis_errors_total{{store=\"{store}\"}}")))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(count("rate_limit") >= 6.0, "{metrics}");
    assert!(count("apq") >= 1.0, "{metrics}");

    deny.shutdown().await;
    replica.shutdown().await;
    stack.stop().await;
}

/// One routing table file (a ConfigMap in Kubernetes) read by two replicas: a sticky canary
/// sends each user to the same backend whichever replica answers.
#[tokio::test]
async fn sticky_canary_decisions_agree_across_replicas() {
    let table = RoutingTableFile::new(
        "replicas",
        "[fields.\"Template.recentEvents\"]\nmode = \"canary\"\npercent = 50\nsticky = \"user\"\n",
    );
    let with_table = |config: &mut Config| {
        config.migration.routing_table = Some(table.path.clone());
        config.migration.expose_routing = true;
    };
    let stack = TestStack::start_with(DevStackConfig::default(), with_table).await;
    let replica = stack.replica(with_table).await;
    let backend = |answer: &GraphqlResponse| {
        answer.body["extensions"]["routing"]
            .as_array()
            .and_then(|routes| routes.iter().find(|route| route["field"] == "Template.recentEvents"))
            .and_then(|route| route["backend"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no routing for Template.recentEvents: {:?}", answer.body))
    };
    let mut backends = std::collections::BTreeSet::new();
    for user in 1..=12 {
        let template = stack
            .devstack
            .dataset()
            .templates
            .iter()
            .find(|t| {
                stack
                    .devstack
                    .dataset()
                    .memberships
                    .iter()
                    .any(|m| m.user == user && m.workspace == t.workspace)
            })
            .map(|t| t.id)
            .expect("a visible template");
        let body = json!({
            "query": "query($id: ID!) { template(id: $id) { recentEvents(first: 1) { nodes { sequence } } } }",
            "variables": { "id": template_id(template) },
        });
        let request = |gateway: &RunningGateway| {
            stack
                .http()
                .post(format!("http://{}/graphql", gateway.addr()))
                .header("authorization", format!("Token {}", stack.token(user)))
                .header("x-banyan-show-routing", "true")
                .json(&body)
                .send()
        };
        let on_a = read(request(&stack.gateway).await.expect("A answers")).await;
        let on_b = read(request(&replica).await.expect("B answers")).await;
        assert_eq!(backend(&on_a), backend(&on_b), "user {user}");
        backends.insert(backend(&on_a));
    }
    // At 50%, twelve users land on both sides: the agreement is not everyone on one backend.
    assert_eq!(backends.len(), 2, "{backends:?}");
    replica.shutdown().await;
    stack.stop().await;
}
