//! A reply from Redis that the shim cannot parse breaks the connection it
//! came on, and every request waiting on that connection with it. For reads,
//! that costs the other clients nothing: the shim sends their reads again on
//! a new connection.
//!
//! The fault is made by a TCP proxy between the shim and a real Redis, which
//! spoils one error reply (a byte that is not UTF-8 in its text) and holds it
//! back until another client's read is on the same connection.

mod shim_common;

use serde_json::json;
use shim_common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// The reply the proxy spoils: the module's refusal of a bad cursor.
const TRIGGER: &[u8] = b"-ERR CURSOR";

/// Forwards every connection to Redis; once armed, spoils the first reply
/// starting with [`TRIGGER`] and sends it only together with the next reply
/// on that connection.
struct Proxy {
    port: u16,
    armed: Arc<AtomicBool>,
    holding: Arc<Notify>,
}

impl Proxy {
    async fn start(redis: &RedisServer) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let holding = Arc::new(Notify::new());
        let redis_port = redis.port();
        let (armed2, holding2) = (armed.clone(), holding.clone());
        tokio::spawn(async move {
            while let Ok((shim, _)) = listener.accept().await {
                let Ok(redis) = TcpStream::connect(("127.0.0.1", redis_port)).await else {
                    continue;
                };
                tokio::spawn(forward(shim, redis, armed2.clone(), holding2.clone()));
            }
        });
        Self {
            port,
            armed,
            holding,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

async fn forward(shim: TcpStream, redis: TcpStream, armed: Arc<AtomicBool>, holding: Arc<Notify>) {
    let (mut shim_in, mut shim_out) = shim.into_split();
    let (mut redis_in, mut redis_out) = redis.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut shim_in, &mut redis_out).await;
    });
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = redis_in.read(&mut buf).await {
        let mut out = buf[..n].to_vec();
        let spoil = out
            .windows(TRIGGER.len())
            .position(|w| w == TRIGGER)
            .filter(|_| armed.swap(false, Ordering::SeqCst));
        if let Some(at) = spoil {
            // "-ERR" becomes "-\xFFRR": an error line that is not UTF-8.
            out[at + 1] = 0xFF;
            holding.notify_one();
            // The next reply on this connection, the other client's read.
            if let Ok(Ok(m)) = tokio::time::timeout(WAIT, redis_in.read(&mut buf)).await {
                out.extend_from_slice(&buf[..m]);
            }
        }
        if shim_out.write_all(&out).await.is_err() {
            break;
        }
    }
    requests.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_the_shim_cannot_parse_costs_other_readers_nothing() {
    let redis = RedisServer::start();
    let proxy = Proxy::start(&redis).await;
    let mut settings = config(&redis);
    settings.redis_url = proxy.url();
    let shim = Shim::start(settings).await;
    let mut owner = shim.client().await;
    let room = owner.create_room().await;

    let mut a = shim.client().await;
    let mut b = shim.client().await;
    proxy.armed.store(true, Ordering::SeqCst);
    a.send_text(
        &json!({"kind": "members", "room_id": room, "cursor": "x", "ref": "a"}).to_string(),
    )
    .await;
    tokio::time::timeout(WAIT, proxy.holding.notified())
        .await
        .expect("the proxy spoils the bad cursor's reply");
    // B's read is now queued behind the spoiled reply, on the same connection.
    let read = b.request(json!({"kind": "members", "room_id": room})).await;
    assert_eq!(read["kind"], "members", "{read}");
    assert_eq!(read["members"], json!([owner.socket_id]), "{read}");

    // A's own read is sent again too, and gets Redis's real answer.
    let refused = a.next_matching(|f| f["ref"] == "a").await;
    assert_eq!(refused["code"], "BAD_REQUEST", "{refused}");
    assert_eq!(
        metric(shim.addr, "violet_redis_reads_retried_total").await,
        2.0,
        "both reads on the broken connection were sent again"
    );

    // And the shim carries on as before.
    let read = a.request(json!({"kind": "room", "room_id": room})).await;
    assert_eq!(read["room"]["viewers"], 1, "{read}");
    assert_consistent(&redis).await;
}
