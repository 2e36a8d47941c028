//! What an idle WebSocket connection costs the shim: 10,000 connections open
//! to one `violet-shim` process, each welcomed and in no room; the growth of
//! the process's resident memory, divided by the connections.
//!
//! `cargo bench --bench idle_connections` prints it; nothing is asserted.

use futures_util::StreamExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::RedisServer;

const CONNECTIONS: usize = 10_000;

/// Stops the shim however the benchmark ends.
struct Shim(std::process::Child);

impl Drop for Shim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let redis = RedisServer::start();
    let port = support::free_port();
    let shim = Shim(
        Command::new(support::shim_binary())
            .args(["--port", &port.to_string(), "--redis-url", &redis.url()])
            .args(["--namespace", "bench", "--log", "warn"])
            .args(["--max-connections", &(CONNECTIONS + 100).to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start violet-shim"),
    );
    let pid = shim.0.id();
    let url = format!("ws://127.0.0.1:{port}/ws");
    let started = Instant::now();
    let mut first = loop {
        match tokio_tungstenite::connect_async(&url).await {
            Ok((ws, _)) => break ws,
            Err(_) if started.elapsed() < Duration::from_secs(15) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the shim never answered: {error}"),
        }
    };
    first.next().await.expect("a welcome").expect("a welcome");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = support::rss_kib(pid);

    let mut open = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connect");
        ws.next().await.expect("a welcome").expect("a welcome");
        open.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = support::rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / CONNECTIONS as f64;
    println!(
        "violet-shim: {CONNECTIONS} idle connections, RSS {} MiB -> {} MiB: {:.1} KiB per connection",
        before / 1024,
        after / 1024,
        per / 1024.0
    );
    drop(open);
    drop(first);
}
