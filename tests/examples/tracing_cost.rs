//! What tracing costs: the CPU time of the whole process (gateway, devstack and client in one)
//! per `TemplateList` request, with tracing off, on with the collector down (the gateway's own
//! work: spans built, batched, and the export failing fast), and on with an in-process collector
//! (which adds the collector's decoding). Run: `cargo run -p banyan-tests --example tracing_cost
//! -- [requests]`. A measurement, not a test: nothing here asserts a time.
#![allow(clippy::print_stdout)]

use std::time::Instant;

use banyan_devstack::DevStackConfig;
use banyan_tests::{TestStack, contract_operations, workspace_id};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::json;

/// A collector that counts spans and keeps nothing.
#[derive(Clone, Default)]
struct Counting(std::sync::Arc<std::sync::atomic::AtomicU64>);

#[tonic::async_trait]
impl TraceService for Counting {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(spans as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// User plus system CPU time of this process, in milliseconds (from /proc/self/stat).
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name and state.
    let ticks: f64 = fields.get(11..13).map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks * 10.0 // USER_HZ is 100 on Linux
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let requests: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let query = contract_operations()
        .into_iter()
        .find(|(name, _)| name == "TemplateList")
        .expect("in the contract")
        .1;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let collector_addr = listener.local_addr().expect("an address");
    let counting = Counting::default();
    let service = TraceServiceServer::new(counting.clone());
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let _ = tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
    });
    let down = std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("an address");
    for (mode, endpoint) in [
        ("off", None),
        ("on, collector down", Some(down)),
        ("on, in-process collector", Some(collector_addr)),
    ] {
        let stack = TestStack::start_with(DevStackConfig::default(), |config| {
            if let Some(endpoint) = endpoint {
                config.tracing.enabled = true;
                config.tracing.endpoint = format!("http://{endpoint}");
            }
        })
        .await;
        let variables = json!({ "workspaceId": workspace_id(1), "first": 50 });
        for _ in 0..50 {
            stack.graphql(&query, variables.clone()).await;
        }
        let (cpu, wall) = (cpu_ms(), Instant::now());
        let mut failed = 0;
        for _ in 0..requests {
            let response = stack.graphql(&query, variables.clone()).await;
            if response.status != 200 || response.body.get("errors").is_some() {
                failed += 1;
            }
        }
        let (cpu, wall) = (cpu_ms() - cpu, wall.elapsed());
        stack.stop().await;
        println!(
            "{mode:>26}: {requests} requests, {failed} failed, CPU {:.3} ms/request, wall {:.3} ms/request",
            cpu / requests as f64,
            wall.as_secs_f64() * 1000.0 / requests as f64
        );
    }
    println!(
        "spans received by the in-process collector: {}",
        counting.0.load(std::sync::atomic::Ordering::Relaxed)
    );
}
