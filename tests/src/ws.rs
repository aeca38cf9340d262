//! A WebSocket client for the end-to-end tests: connects to the gateway under test with a
//! subprotocol, sends protocol messages as JSON, and reads answers and close frames with bounded
//! waits, so a test that goes wrong fails instead of hanging.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::TestStack;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The modern subprotocol, `graphql-transport-ws`.
pub const TRANSPORT_WS: &str = "graphql-transport-ws";
/// The older subprotocol, `graphql-ws` (subscriptions-transport-ws).
pub const LEGACY_WS: &str = "graphql-ws";

/// How long one read may wait: a bound against a gateway that never answers, not a measurement.
const READ_BOUND: Duration = Duration::from_secs(10);

/// What the server sent before and when it closed the connection.
#[derive(Debug)]
pub struct Ending {
    /// Text messages before the close frame (pings included).
    pub messages: Vec<Value>,
    /// The close frame's code and reason; `None` when the connection ended without one.
    pub close: Option<(u16, String)>,
}

/// One WebSocket connection to the gateway.
pub struct WsClient {
    socket: Socket,
}

impl WsClient {
    /// Upgrades `/graphql` with `protocol` and the extra request `headers`.
    pub async fn connect(stack: &TestStack, protocol: &str, headers: &[(&'static str, &str)]) -> Self {
        match Self::try_connect(stack, Some(protocol), headers).await {
            Ok(client) => client,
            Err(status) => panic!("the gateway refused the upgrade with {status}"),
        }
    }

    /// Upgrades `/graphql` with `protocol` (none when `None`) and the extra request `headers`;
    /// `Err` is the HTTP status of a refused upgrade.
    pub async fn try_connect(
        stack: &TestStack,
        protocol: Option<&str>,
        headers: &[(&'static str, &str)],
    ) -> Result<Self, u16> {
        let mut request = stack.websocket_url().into_client_request().expect("a ws URL");
        if let Some(protocol) = protocol {
            request.headers_mut().insert("sec-websocket-protocol", protocol.parse().expect("a header value"));
        }
        for (name, value) in headers {
            request.headers_mut().insert(*name, value.parse().expect("a header value"));
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((socket, _)) => Ok(Self { socket }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
            Err(other) => panic!("the upgrade failed below HTTP: {other}"),
        }
    }

    /// A `graphql-transport-ws` connection initialised as `user` and acknowledged.
    pub async fn signed_in(stack: &TestStack, user: u64) -> Self {
        let mut client = Self::connect(stack, TRANSPORT_WS, &[]).await;
        client.init(json!({ "Authorization": format!("Token {}", stack.token(user)) })).await;
        let ack = client.next().await.expect("an answer to connection_init");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    /// A `graphql-transport-ws` connection initialised as `user`, whose socket's receive buffer
    /// is asked to be `receive_buffer` bytes: a client that stops reading then holds up the
    /// server after kilobytes, not the megabytes loopback's autotuning allows.
    pub async fn signed_in_with_receive_buffer(stack: &TestStack, user: u64, receive_buffer: u32) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket.set_recv_buffer_size(receive_buffer).expect("a receive buffer size");
        let stream = socket.connect(stack.gateway.addr()).await.expect("connected");
        let mut request = stack.websocket_url().into_client_request().expect("a ws URL");
        request.headers_mut().insert("sec-websocket-protocol", TRANSPORT_WS.parse().expect("a header value"));
        let (socket, _) =
            tokio_tungstenite::client_async(request, tokio_tungstenite::MaybeTlsStream::Plain(stream))
                .await
                .expect("upgraded");
        let mut client = Self { socket };
        client.init(json!({ "Authorization": format!("Token {}", stack.token(user)) })).await;
        let ack = client.next().await.expect("an answer to connection_init");
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        client
    }

    /// Sends `connection_init` with `payload`.
    pub async fn init(&mut self, payload: Value) {
        self.send(json!({ "type": "connection_init", "payload": payload })).await;
    }

    /// Sends a `subscribe` message (graphql-transport-ws) for `query` with `variables`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let payload = json!({ "query": query, "variables": variables });
        self.send(json!({ "id": id, "type": "subscribe", "payload": payload })).await;
    }

    /// Sends one JSON message.
    pub async fn send(&mut self, message: Value) {
        self.socket.send(Message::text(message.to_string())).await.expect("sent");
    }

    /// Sends a binary frame; false when the gateway closed the connection before it was written.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> bool {
        self.socket.send(Message::binary(bytes)).await.is_ok()
    }

    /// Sends raw text; false when the gateway closed the connection before it was written.
    pub async fn send_text(&mut self, text: String) -> bool {
        self.socket.send(Message::text(text)).await.is_ok()
    }

    /// The next JSON message, pings skipped; `None` once the connection ends.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = self.next_including_pings().await?;
            if message["type"] != "ping" {
                return Some(message);
            }
        }
    }

    /// The next message as the gateway wrote it, pings skipped, for what a parsed `Value` hides
    /// (it sorts object keys); `None` once the connection ends.
    pub async fn next_text(&mut self) -> Option<String> {
        loop {
            let frame = timeout(READ_BOUND, self.socket.next()).await.expect("a frame within the bound")?;
            match frame.ok()? {
                Message::Text(text) => {
                    let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    if message["type"] != "ping" {
                        return Some(text.as_str().to_owned());
                    }
                }
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next JSON message, pings and pongs included; `None` once the connection ends.
    pub async fn next_including_pings(&mut self) -> Option<Value> {
        loop {
            let frame = timeout(READ_BOUND, self.socket.next()).await.expect("a frame within the bound")?;
            match frame.ok()? {
                Message::Text(text) => return Some(serde_json::from_str(text.as_str()).expect("JSON")),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Reads until the server closes the connection; `bound` caps the wait for each frame (a
    /// deadline the server enforces may need longer than the usual bound).
    pub async fn read_until_close(&mut self, bound: Duration) -> Ending {
        let mut messages = Vec::new();
        for _ in 0..100 {
            let frame = timeout(bound, self.socket.next()).await.expect("a frame within the bound");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    messages.push(serde_json::from_str(text.as_str()).expect("JSON"));
                }
                Some(Ok(Message::Close(frame))) => {
                    let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                    return Ending { messages, close };
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Ending { messages, close: None },
            }
        }
        panic!("the server kept talking: {messages:?}");
    }

    /// Closes the connection from the client's side.
    pub async fn close(mut self) {
        self.socket.close(None).await.expect("closed");
    }
}

/// A `subscribe` message for `{ me { id } }` padded with a comment to exactly `size` bytes, for
/// testing message-size bounds just at and just over them.
pub fn subscribe_message_of_size(size: usize) -> String {
    let message = |query: String| {
        serde_json::json!({ "id": "big", "type": "subscribe", "payload": { "query": query } }).to_string()
    };
    let bare = message("{ me { id } }\n#".to_owned()).len();
    message(format!("{{ me {{ id }} }}\n#{}", "x".repeat(size.saturating_sub(bare))))
}
