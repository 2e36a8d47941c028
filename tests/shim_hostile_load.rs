//! One browser must never hurt another: 2,000 connections to one shim, a
//! quarter of them hostile (clients that never read, flooders, clients that
//! ask the biggest reads, silent TCP connections), the rest ordinary users
//! chatting in rooms of 10. The ordinary users all get their replies and
//! their pushes, none of them is cut off, the shim's memory stays under its
//! bound, and the namespace is consistent at the end.
//!
//! The ordinary users' reply latency is printed (p50, p99); it is not
//! asserted, since the test machines are noisy.

mod shim_common;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use shim_common::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::RedisServer;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const NORMAL: usize = 1500;
const ROOM_SIZE: usize = 10;
/// Each kind of hostile client.
const HOSTILE_EACH: usize = 125;
/// Rooms with the largest details a room may have, for the big reads.
const BIG_ROOMS: usize = 100;
const RUN: Duration = Duration::from_secs(12);
/// The first seconds, while the connections are made; no message is timed.
const WARM_UP: Duration = Duration::from_secs(3);
/// What an ordinary user waits between two messages: a chatty room of 10
/// then carries 5 messages a second, each pushed to its 10 members.
const PACE: Duration = Duration::from_millis(2000);
/// The outgoing limits the shim runs with here: each connection's queued
/// pushes, and one reply.
const QUEUE_BYTES: u64 = 256 * 1024;
const REPLY_BYTES: u64 = 256 * 1024;
/// What one connection may hold on its way out, by README's Limits and
/// abuse: its queue, one reply, and the WebSocket write buffer (the largest
/// frame and 144 KiB).
const PER_CONNECTION_KIB: u64 = (QUEUE_BYTES + 2 * REPLY_BYTES) / 1024 + 144;
/// The shim's resident memory may not pass this, whatever the hostile
/// clients do: every hostile connection at its bound, plus 128 MiB for the
/// ordinary ones and the shim itself.
const RSS_BOUND_KIB: u64 = 4 * HOSTILE_EACH as u64 * PER_CONNECTION_KIB + 128 * 1024;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn connect(url: &str) -> (Ws, String) {
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect in time")
        .expect("connect");
    let Some(Ok(Message::Text(welcome))) = ws.next().await else {
        panic!("no welcome");
    };
    let welcome: Value = serde_json::from_str(&welcome).unwrap();
    (ws, welcome["socket_id"].as_str().unwrap().to_owned())
}

/// What the ordinary users saw.
#[derive(Default)]
struct Seen {
    replies: AtomicU64,
    errors: AtomicU64,
    pushes: AtomicU64,
    cut_off: AtomicU64,
}

/// An ordinary user: joins its room, then from `first` sends a message every
/// [`PACE`] and reads everything; returns its reply latencies.
async fn ordinary(
    url: String,
    room: String,
    seen: Arc<Seen>,
    (first, until): (Instant, Instant),
) -> Vec<Duration> {
    let (ws, _) = connect(&url).await;
    let (mut sink, mut stream) = ws.split();
    let join = json!({"kind": "room-joined", "room_id": room, "ref": "join"});
    sink.send(Message::text(join.to_string())).await.unwrap();
    let mut latencies = Vec::new();
    let mut sent_at: Option<Instant> = None;
    let mut next = 0u64;
    let mut ticker = tokio::time::interval_at(first.into(), PACE);
    loop {
        tokio::select! {
            frame = stream.next() => {
                let Some(Ok(Message::Text(text))) = frame else {
                    if !matches!(frame, Some(Ok(_))) {
                        seen.cut_off.fetch_add(1, Ordering::Relaxed);
                        return latencies;
                    }
                    continue;
                };
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame.get("ref").is_some() {
                    if frame["kind"] == "error" {
                        seen.errors.fetch_add(1, Ordering::Relaxed);
                        eprintln!("ordinary user got {frame}");
                    }
                    seen.replies.fetch_add(1, Ordering::Relaxed);
                    if let Some(at) = sent_at.take() {
                        latencies.push(at.elapsed());
                    }
                } else {
                    seen.pushes.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = ticker.tick() => {
                if Instant::now() >= until {
                    let _ = sink.close().await;
                    return latencies;
                }
                if sent_at.is_none() {
                    next += 1;
                    let say = json!({"kind": "room-message", "data": {"n": next}, "ref": next});
                    sent_at = Some(Instant::now());
                    if sink.send(Message::text(say.to_string())).await.is_err() {
                        seen.cut_off.fetch_add(1, Ordering::Relaxed);
                        return latencies;
                    }
                }
            }
        }
    }
}

/// Asks for the most rooms and watches them, joins a chatty room, and never
/// reads again.
async fn never_reads(url: String, room: String) -> Ws {
    let (mut ws, _) = connect(&url).await;
    for frame in [
        json!({"kind": "watch-top", "count": 1000}),
        json!({"kind": "room-joined", "room_id": room}),
    ] {
        let _ = ws.send(Message::text(frame.to_string())).await;
    }
    ws
}

/// Sends as fast as it can until the shim closes it.
async fn floods(url: String) {
    let (mut ws, _) = connect(&url).await;
    let frame = Message::text(json!({"kind": "top", "count": 1000}).to_string());
    for _ in 0..5_000 {
        if ws.send(frame.clone()).await.is_err() {
            return;
        }
    }
}

/// Asks the biggest reads there are, again and again, reading the replies.
async fn greedy_reader(url: String, room: String, until: Instant) {
    let (mut ws, _) = connect(&url).await;
    let requests = [
        json!({"kind": "top", "count": 1000}),
        json!({"kind": "members", "room_id": room}),
        json!({"kind": "room", "room_id": room}),
    ];
    let mut i = 0;
    while Instant::now() < until {
        let request = &requests[i % requests.len()];
        i += 1;
        if ws.send(Message::text(request.to_string())).await.is_err() {
            return;
        }
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(_))) => {}
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_do_not_hurt_ordinary_ones() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (queue, reply) = (QUEUE_BYTES.to_string(), REPLY_BYTES.to_string());
    let (shim, port) = start_shim_process(
        &redis,
        &[
            "--log",
            "warn",
            "--max-queue-bytes",
            &queue,
            "--max-reply-bytes",
            &reply,
        ],
        &dir.path().join("shim.log"),
    )
    .await;
    let pid = shim.0.id();
    let url = format!("ws://127.0.0.1:{port}/");
    let idle_rss = support::rss_kib(pid);

    // Big public rooms, made by hand (their sockets hold no lease).
    let mut con = redis_connection(&redis).await;
    let value = "v".repeat(4000);
    for i in 0..BIG_ROOMS {
        let mut create = redis::cmd("VIOLET.CREATE");
        create
            .arg(NS)
            .arg(format!("seed:{i}"))
            .arg(format!("big{i}"));
        for f in 0..30 {
            create.arg(format!("field{f}")).arg(&value);
        }
        let _: String = create.query_async(&mut con).await.expect("a big room");
    }
    // The ordinary users' rooms.
    let rooms: Vec<String> = (0..NORMAL / ROOM_SIZE)
        .map(|i| format!("chat{i}"))
        .collect();
    for (i, room) in rooms.iter().enumerate() {
        let _: String = redis::cmd("VIOLET.CREATE")
            .arg(NS)
            .arg(format!("host:{i}"))
            .arg(room)
            .query_async(&mut con)
            .await
            .expect("a chat room");
    }

    let until = Instant::now() + RUN;
    // Silent TCP connections: never a byte.
    let mut silent = Vec::new();
    for _ in 0..HOSTILE_EACH {
        if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)).await {
            silent.push(tcp);
        }
    }
    let mut stalled = Vec::new();
    for i in 0..HOSTILE_EACH {
        stalled.push(never_reads(url.clone(), rooms[i % rooms.len()].clone()).await);
    }
    let seen = Arc::new(Seen::default());
    let mut users = Vec::new();
    // Users do not all speak at once: each starts at its own point of the
    // first PACE, once every connection is made (the first seconds).
    let start = Instant::now() + WARM_UP;
    for i in 0..NORMAL {
        let room = rooms[i % rooms.len()].clone();
        let first = start + PACE * u32::try_from(i).unwrap() / u32::try_from(NORMAL).unwrap();
        users.push(tokio::spawn(ordinary(
            url.clone(),
            room,
            seen.clone(),
            (first, until),
        )));
    }
    let mut hostile = Vec::new();
    for i in 0..HOSTILE_EACH {
        hostile.push(tokio::spawn(floods(url.clone())));
        hostile.push(tokio::spawn(greedy_reader(
            url.clone(),
            format!("big{}", i % BIG_ROOMS),
            until,
        )));
    }

    let mut peak_rss = 0;
    while Instant::now() < until {
        peak_rss = peak_rss.max(support::rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut latencies = Vec::new();
    for user in users {
        latencies.extend(user.await.expect("an ordinary user"));
    }
    peak_rss = peak_rss.max(support::rss_kib(pid));
    for task in hostile {
        task.abort();
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    eprintln!(
        "hostile load: {} replies to ordinary users, p50 {:?}, p99 {:?}, max {:?}; {} pushes; shim RSS {} MiB idle, {} MiB peak (bound {} MiB)",
        latencies.len(),
        at(0.5),
        at(0.99),
        latencies.last().unwrap(),
        seen.pushes.load(Ordering::Relaxed),
        idle_rss / 1024,
        peak_rss / 1024,
        RSS_BOUND_KIB / 1024
    );

    assert_eq!(
        seen.cut_off.load(Ordering::Relaxed),
        0,
        "ordinary users were cut off"
    );
    assert_eq!(
        seen.errors.load(Ordering::Relaxed),
        0,
        "ordinary users got errors"
    );
    // Each user sent about RUN / PACE messages and got a reply to each one.
    let expected = (NORMAL as u64) * ((RUN - WARM_UP).as_millis() / PACE.as_millis()) as u64 / 2;
    assert!(
        seen.replies.load(Ordering::Relaxed) >= expected,
        "ordinary users got {} replies, fewer than {expected}",
        seen.replies.load(Ordering::Relaxed)
    );
    assert!(
        seen.pushes.load(Ordering::Relaxed) > expected,
        "the rooms' messages reached their members"
    );
    assert!(
        peak_rss < RSS_BOUND_KIB,
        "the shim grew to {} MiB",
        peak_rss / 1024
    );

    // Everyone goes; the namespace is whole.
    drop(stalled);
    for mut tcp in silent {
        let _ = tcp.shutdown().await;
    }
    eventually("every socket of the shim has left its room", || async {
        let mut con = redis_connection(&redis).await;
        let nodes: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("violet:{{{NS}}}:nodes"))
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .unwrap();
        // Only the hand-made sockets' nodes and the shim's (leased) node.
        let mut shim_sockets = 0;
        for node in nodes.iter().filter(|n| *n != "seed" && *n != "host") {
            let n: u64 = redis::cmd("HLEN")
                .arg(format!("violet:{{{NS}}}:node:{node}"))
                .query_async(&mut con)
                .await
                .unwrap();
            shim_sockets += n;
        }
        shim_sockets == 0
    })
    .await;
    assert_consistent(&redis).await;
    drop(shim);
}
