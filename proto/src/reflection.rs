//! A gRPC server-reflection client (`grpc.reflection.v1` and `v1alpha`, on tonic with
//! tonic-reflection's generated client types): lists a server's services and fetches the file
//! descriptors that define them, with every import, over one bidirectional stream.

use std::collections::BTreeMap;
use std::time::Duration;

use prost::Message as _;
use prost_types::FileDescriptorProto;
use tonic::transport::Endpoint;

/// Which reflection protocol to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReflectionVersion {
    /// `grpc.reflection.v1`, falling back to `v1alpha` when the server does not implement it.
    #[default]
    Auto,
    /// `grpc.reflection.v1` only.
    V1,
    /// `grpc.reflection.v1alpha` only (older servers).
    V1Alpha,
}

/// Why a pull over reflection failed.
#[derive(Debug, thiserror::Error)]
pub enum ReflectionError {
    /// The address is not a URL or `host:port`.
    #[error("invalid service address {address:?}: {detail}")]
    Address {
        /// As given.
        address: String,
        /// Why.
        detail: String,
    },
    /// The server could not be reached, or the stream failed.
    #[error("{address}: {status}")]
    Call {
        /// The server.
        address: String,
        /// What gRPC said.
        status: Box<tonic::Status>,
    },
    /// The server answered a reflection request with an error.
    #[error("{address}: reflection answered {request} with error {code}: {message}")]
    Answer {
        /// The server.
        address: String,
        /// What was asked.
        request: String,
        /// gRPC status code of the error.
        code: i32,
        /// Its message.
        message: String,
    },
    /// The server sent something that is not what was asked for.
    #[error("{address}: unexpected reflection answer: {detail}")]
    Protocol {
        /// The server.
        address: String,
        /// What was wrong.
        detail: String,
    },
    /// The server took too long.
    #[error("{address}: no answer within {timeout:?}")]
    Timeout {
        /// The server.
        address: String,
        /// The limit.
        timeout: Duration,
    },
}

/// What one server serves: its services (the reflection service itself left out) and every file
/// that defines them, imports included, by file name.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The services' fully-qualified names, sorted.
    pub services: Vec<String>,
    /// Every file, by name.
    pub files: BTreeMap<String, FileDescriptorProto>,
    /// The protocol that answered.
    pub version: &'static str,
}

/// Services under this prefix are the reflection protocol itself, not the server's API.
const REFLECTION_PREFIX: &str = "grpc.reflection.";

/// Lists the services of the server at `address` and fetches their files over reflection.
pub async fn fetch(
    address: &str,
    version: ReflectionVersion,
    timeout: Duration,
) -> Result<Served, ReflectionError> {
    let url = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
    let endpoint = Endpoint::from_shared(url)
        .map_err(|e| ReflectionError::Address { address: address.to_owned(), detail: e.to_string() })?
        .connect_timeout(timeout);
    let channel = endpoint.connect_lazy();
    let run = async {
        match version {
            ReflectionVersion::V1 => v1::fetch(address, channel).await,
            ReflectionVersion::V1Alpha => v1alpha::fetch(address, channel).await,
            ReflectionVersion::Auto => match v1::fetch(address, channel.clone()).await {
                Err(ReflectionError::Call { status, .. }) if status.code() == tonic::Code::Unimplemented => {
                    tracing::debug!(address, "grpc.reflection.v1 is not implemented; trying v1alpha");
                    v1alpha::fetch(address, channel).await
                }
                other => other,
            },
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| ReflectionError::Timeout { address: address.to_owned(), timeout })?
}

fn decode_file(address: &str, bytes: &[u8]) -> Result<FileDescriptorProto, ReflectionError> {
    FileDescriptorProto::decode(bytes).map_err(|e| ReflectionError::Protocol {
        address: address.to_owned(),
        detail: format!("a file descriptor does not decode: {e}"),
    })
}

/// The same conversation in both protocol versions (their messages are identical in shape).
macro_rules! conversation {
    ($module:ident, $name:literal) => {
        mod $module {
            use std::collections::BTreeMap;

            use tokio::sync::mpsc;
            use tokio_stream::StreamExt as _;
            use tokio_stream::wrappers::ReceiverStream;
            use tonic::transport::Channel;
            use tonic_reflection::pb::$module::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$module::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$module::server_reflection_response::MessageResponse;
            use tonic_reflection::pb::$module::{ServerReflectionRequest, ServerReflectionResponse};

            use super::{REFLECTION_PREFIX, ReflectionError, Served, decode_file};

            struct Conversation<'a> {
                address: &'a str,
                requests: mpsc::Sender<ServerReflectionRequest>,
                responses: tonic::Streaming<ServerReflectionResponse>,
            }

            impl Conversation<'_> {
                async fn ask(&mut self, request: MessageRequest) -> Result<MessageResponse, ReflectionError> {
                    let described = format!("{request:?}");
                    let message =
                        ServerReflectionRequest { host: String::new(), message_request: Some(request) };
                    self.requests.send(message).await.map_err(|_| ReflectionError::Protocol {
                        address: self.address.to_owned(),
                        detail: "the server closed the stream".to_owned(),
                    })?;
                    let answer = match self.responses.next().await {
                        Some(Ok(answer)) => answer,
                        Some(Err(status)) => {
                            return Err(ReflectionError::Call {
                                address: self.address.to_owned(),
                                status: Box::new(status),
                            });
                        }
                        None => {
                            return Err(ReflectionError::Protocol {
                                address: self.address.to_owned(),
                                detail: format!("the stream ended before answering {described}"),
                            });
                        }
                    };
                    match answer.message_response {
                        Some(MessageResponse::ErrorResponse(e)) => Err(ReflectionError::Answer {
                            address: self.address.to_owned(),
                            request: described,
                            code: e.error_code,
                            message: e.error_message,
                        }),
                        Some(other) => Ok(other),
                        None => Err(ReflectionError::Protocol {
                            address: self.address.to_owned(),
                            detail: format!("an empty answer to {described}"),
                        }),
                    }
                }

                /// Files the answer carries, added to `files`.
                async fn files(
                    &mut self,
                    request: MessageRequest,
                    files: &mut BTreeMap<String, prost_types::FileDescriptorProto>,
                ) -> Result<(), ReflectionError> {
                    match self.ask(request).await? {
                        MessageResponse::FileDescriptorResponse(r) => {
                            for bytes in &r.file_descriptor_proto {
                                let file = decode_file(self.address, bytes)?;
                                files.entry(file.name().to_owned()).or_insert(file);
                            }
                            Ok(())
                        }
                        other => Err(ReflectionError::Protocol {
                            address: self.address.to_owned(),
                            detail: format!("expected file descriptors, got {other:?}"),
                        }),
                    }
                }
            }

            pub(super) async fn fetch(address: &str, channel: Channel) -> Result<Served, ReflectionError> {
                let (requests, receiver) = mpsc::channel(4);
                let mut client = ServerReflectionClient::new(channel);
                let call =
                    |status| ReflectionError::Call { address: address.to_owned(), status: Box::new(status) };
                let responses = client
                    .server_reflection_info(ReceiverStream::new(receiver))
                    .await
                    .map_err(call)?
                    .into_inner();
                let mut talk = Conversation { address, requests, responses };
                let services = match talk.ask(MessageRequest::ListServices(String::new())).await? {
                    MessageResponse::ListServicesResponse(list) => list.service,
                    other => {
                        return Err(ReflectionError::Protocol {
                            address: address.to_owned(),
                            detail: format!("expected a service list, got {other:?}"),
                        });
                    }
                };
                let mut services: Vec<String> = services
                    .into_iter()
                    .map(|s| s.name)
                    .filter(|name| !name.starts_with(REFLECTION_PREFIX))
                    .collect();
                services.sort();
                let mut files = BTreeMap::new();
                for service in &services {
                    talk.files(MessageRequest::FileContainingSymbol(service.clone()), &mut files).await?;
                }
                // Imports the answers did not carry, until every file's imports are here.
                loop {
                    let missing: Vec<String> = files
                        .values()
                        .flat_map(|f| f.dependency.iter())
                        .filter(|d| !files.contains_key(*d))
                        .cloned()
                        .collect();
                    let Some(name) = missing.into_iter().next() else { break };
                    talk.files(MessageRequest::FileByFilename(name.clone()), &mut files).await?;
                    if !files.contains_key(&name) {
                        return Err(ReflectionError::Protocol {
                            address: address.to_owned(),
                            detail: format!("asked for {name}, the answer does not hold it"),
                        });
                    }
                }
                Ok(Served { services, files, version: $name })
            }
        }
    };
}

conversation!(v1, "grpc.reflection.v1");
conversation!(v1alpha, "grpc.reflection.v1alpha");
