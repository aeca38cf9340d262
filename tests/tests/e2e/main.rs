//! The end-to-end tests, one module per concern, built as one test binary: the real gateway in
//! front of the devstack over real sockets on 127.0.0.1. One binary links the gateway once
//! instead of once per file, which keeps a cold build's time and disk in bounds.
//!
//! The files beside this folder stay binaries of their own because they read or change what a
//! process holds for all its tests: the panic hook (`fault_matrix`), the process's RSS
//! (`websocket_memory`) and the process's log subscriber (`outage_logs`, `persisted`,
//! `tracing_export`).

mod admin;
mod auth;
mod batching;
mod batching_property;
mod contract_operations;
mod declared_dependencies;
mod document_cache;
mod draft_conflicts;
mod edge_security;
mod failures;
mod graphiql;
mod graphql_over_http;
mod grpc_streams;
mod identity;
mod lean_objects;
mod limit_bombs;
mod limits;
mod metrics;
mod migration;
mod no_missing_fields;
mod node_identity;
mod operations;
mod proto_contract;
mod rate_limit;
mod replicas;
mod resilience;
mod response_order;
mod service_identity;
mod shutdown;
mod subscription;
mod subscription_fanout;
mod subscription_shared;
mod websocket_auth;
mod websocket_limits;
mod websocket_protocol;
