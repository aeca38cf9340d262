//! How long the gateway takes to refuse half a megabyte of fields, with the token limit
//! enforced (refused by the pre-parse scan) and with it warn-only (the document is parsed and
//! measured whole, as before `limits.max_tokens` existed). Prints the timings; asserts nothing
//! about them.
//!
//! `cargo run -p banyan-gateway --example token_flood [requests]`

#![allow(clippy::print_stdout, reason = "a benchmark prints its measurements")]

use std::time::{Duration, Instant};

use banyan_gateway::config::WarnableLimit;
use banyan_gateway::{Config, RunningGateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(10);
    // `{ a a a … }`: 0.5 MB, 250,000 fields. Anonymous, so no backend is ever asked.
    let flood = format!("{{ {} }}", "a ".repeat(250_000));
    let body = serde_json::to_vec(&serde_json::json!({ "query": flood }))?;
    for (label, warn_only) in
        [("max_tokens enforced", vec![]), ("max_tokens warn-only (parse whole)", vec![WarnableLimit::Tokens])]
    {
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".parse()?;
        config.limits.warn_only = warn_only.into();
        let gateway = RunningGateway::start(&config).await?;
        let mut timings = Vec::with_capacity(requests);
        let mut answer = String::new();
        for _ in 0..requests {
            let started = Instant::now();
            answer = post(gateway.addr(), &body).await?;
            timings.push(started.elapsed());
        }
        timings.sort();
        let code = answer.split("\"code\":\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("?");
        println!(
            "{label:<36} {} bytes, {requests} requests: median {:?}, min {:?}, max {:?} -> {code}",
            body.len(),
            timings[timings.len() / 2],
            timings.first().copied().unwrap_or(Duration::ZERO),
            timings.last().copied().unwrap_or(Duration::ZERO),
        );
        gateway.shutdown().await;
    }
    Ok(())
}

/// One `POST /graphql` over a fresh connection; the whole response as text.
async fn post(addr: std::net::SocketAddr, body: &[u8]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "POST /graphql HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         accept: application/graphql-response+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}
