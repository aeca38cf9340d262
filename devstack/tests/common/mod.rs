//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::time::Duration;

use banyan_devstack::proto::drafts::draft_service_client::DraftServiceClient;
use banyan_devstack::proto::events::event_service_client::EventServiceClient;
use banyan_devstack::{DevStack, DevStackConfig};
use serde_json::Value;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A devstack with the default configuration.
pub(crate) async fn start() -> DevStack {
    DevStack::start(DevStackConfig::default()).await.unwrap()
}

/// A client of the monolith stand-in, authenticated as one user.
pub(crate) struct Api {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

impl Api {
    pub(crate) fn new(stack: &DevStack, user: u64) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: stack.monolith_url(),
            token: stack.dataset().user(user).unwrap().token.clone(),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.base) }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .header("authorization", format!("Token {}", self.token))
            .send()
            .await
            .unwrap();
        read(response).await
    }

    pub(crate) async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .patch(self.url(path))
            .header("authorization", format!("Token {}", self.token))
            .json(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }
}

impl Api {
    /// Any method, with an optional JSON body, authenticated by token.
    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("authorization", format!("Token {}", self.token));
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await.unwrap()).await
    }
}

/// Status and JSON body (`Null` when the body is not JSON).
pub(crate) async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The ids of a page's results.
pub(crate) fn ids(page: &Value) -> Vec<u64> {
    page["results"].as_array().unwrap().iter().map(|r| r["id"].as_u64().unwrap()).collect()
}

/// A gRPC client signing every call's identity as the gateway does: for the user [`as_user`]
/// named, or user 1 when none.
pub(crate) type Signed = InterceptedService<Channel, SignAsGateway>;

/// Signs a call's identity with the stack's own secret, as the gateway would.
#[derive(Clone)]
pub(crate) struct SignAsGateway {
    keys: banyan_sources::ServiceIdentityKeys,
}

impl tonic::service::Interceptor for SignAsGateway {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let user = request
            .metadata()
            .get("x-banyan-user-id")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1);
        self.keys.sign_metadata(request.metadata_mut(), user, None);
        Ok(request)
    }
}

async fn channel(url: String) -> Channel {
    tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap()
}

pub(crate) async fn events_client(stack: &DevStack) -> EventServiceClient<Signed> {
    let signer = SignAsGateway { keys: stack.service_identity_keys().clone() };
    EventServiceClient::with_interceptor(channel(stack.events_url()).await, signer)
}

pub(crate) async fn drafts_client(stack: &DevStack) -> DraftServiceClient<Signed> {
    let signer = SignAsGateway { keys: stack.service_identity_keys().clone() };
    DraftServiceClient::with_interceptor(channel(stack.drafts_url()).await, signer)
}

/// Waits until `condition` holds, failing the test after 5 seconds.
pub(crate) async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A gRPC request for `user`: the signing client ([`events_client`], [`drafts_client`]) signs it.
pub(crate) fn as_user<T>(user: u64, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-banyan-user-id", user.to_string().parse().unwrap());
    request
}
