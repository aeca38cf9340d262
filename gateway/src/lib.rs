//! Banyan's server: the axum application that speaks GraphQL over HTTP and WebSocket and serves
//! GraphiQL (`graphql_http`, `ws`), its configuration ([`config`]), identity ([`auth`]) and
//! limits, persisted operations ([`persisted`]) and rate limiting ([`rate_limit`]), metrics at
//! `/metrics` (`metrics`), the
//! migration engine's start-up and request routing ([`migration`]), OpenTelemetry traces over
//! OTLP (`telemetry`), and starting
//! and stopping it ([`server`]); the migration admin page (`admin`); plus the schema-contract
//! commands ([`contract_cli`]) and the migration commands ([`migration_cli`], reading the
//! contract through [`migration_contract`]), and the proto-contract commands ([`proto_cli`]). The `banyan` binary (src/main.rs) is the CLI on top.

mod admin;
mod app;
pub mod auth;
pub mod config;
pub mod contract_cli;
mod csrf;
mod document_cache;
mod edge;
mod error_masking;
pub mod graphiql;
mod graphql_http;
mod introspection;
pub mod lifecycle;
mod limits;
mod metrics;
pub mod migration;
pub mod migration_cli;
pub mod migration_contract;
pub mod persisted;
mod pipeline;
pub mod proto_cli;
pub mod rate_limit;
mod response_order;
pub mod server;
pub mod shared_store;
mod telemetry;
mod trace_context;
mod validated;
mod ws;

pub use config::Config;
pub use graphiql::GraphiqlDefaults;
pub use lifecycle::{Lifecycle, ShutdownReport};
pub use limits::LimitWarnings;
pub use server::{RunningGateway, StartError};

/// Stack of each async worker thread. A GraphQL field resolves inside its parent's future, and
/// every schema extension wraps each field's resolution, so a document as deep as the limits
/// allow (`limits.max_depth`, 12) needs more than tokio's default 2 MiB in a debug build: a
/// 12-deep query overflowed it and aborted the process. 16 MiB leaves room for a raised
/// `max_depth`; it is address space, and only the pages a thread touches are resident.
pub const WORKER_STACK_BYTES: usize = 16 * 1024 * 1024;
