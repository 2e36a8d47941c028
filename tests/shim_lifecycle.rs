//! How connections and the shim end: close frames, dropped TCP, silent
//! clients, SIGTERM, and the embedded redis-server.

mod shim_common;

use serde_json::json;
use shim_common::*;
use std::time::Duration;
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_frame_or_a_dropped_connection_leaves_the_room() {
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut a = shim.client().await;
    let mut b = shim.client().await;
    let mut c = shim.client().await;
    let room = a.create_room().await;
    b.request(json!({"kind": "room-joined", "room_id": room}))
        .await;
    c.request(json!({"kind": "room-joined", "room_id": room}))
        .await;

    // B closes its tab: a close frame.
    let b_id = b.socket_id.clone();
    b.close().await;
    let left = a
        .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == b_id.as_str())
        .await;
    assert_eq!(left["viewers"], 2);
    assert_eq!(where_is(&redis, &b_id).await, None);

    // C's network goes away: the TCP connection ends with no close frame.
    let c_id = c.socket_id.clone();
    drop(c);
    let left = a
        .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == c_id.as_str())
        .await;
    assert_eq!(left["viewers"], 1);

    // The last one out destroys the room.
    let a_id = a.socket_id.clone();
    drop(a);
    eventually("the room is destroyed", || async {
        !room_exists(&redis, &room).await
    })
    .await;
    assert_eq!(where_is(&redis, &a_id).await, None);
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_is_dropped() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.ping_interval = Duration::from_millis(200);
    settings.pong_timeout = Duration::from_millis(1500);
    let shim = Shim::start(settings).await;

    // A client that answers pings (it keeps reading) stays.
    let mut live = shim.client().await;
    let room = live.create_room().await;

    // A client that never reads again never answers a ping.
    let mut silent = shim.client().await;
    silent
        .request(json!({"kind": "room-joined", "room_id": room}))
        .await;
    let silent_id = silent.socket_id.clone();
    let left = live
        .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == silent_id.as_str())
        .await;
    assert_eq!(left["viewers"], 1);
    assert_eq!(where_is(&redis, &silent_id).await, None);
    assert_eq!(
        where_is(&redis, &live.socket_id).await.as_deref(),
        Some(room.as_str())
    );

    // The live one still works after many ping rounds.
    let info = live.request(json!({"kind": "room", "room_id": room})).await;
    assert_eq!(info["room"]["viewers"], 1);
    drop(silent);
    live.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_client_removes_every_socket_and_exits_0() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let mut process = spawn_shim(
        // Positional, as the original server took them: PORT REDIS_HOST.
        &[&port.to_string(), &format!("127.0.0.1:{}", redis.port())],
        &dir.path().join("shim.log"),
    );
    wait_healthy(port).await;

    let url = format!("ws://127.0.0.1:{port}/");
    let mut a = Client::connect(&url).await;
    let mut b = Client::connect(&url).await;
    let room = a.create_room().await;
    b.request(json!({"kind": "room-joined", "room_id": room}))
        .await;
    assert_eq!(members(&redis, &room).await.len(), 2);

    sigterm(&process);
    for client in [&mut a, &mut b] {
        let frame = client.closed().await.expect("a close frame");
        assert_eq!(u16::from(frame.code), 1001);
        assert_eq!(frame.reason.as_str(), "server shutting down");
    }
    assert_eq!(exit_code(&mut process).await, Some(0));
    assert_eq!(where_is(&redis, &a.socket_id).await, None);
    assert_eq!(where_is(&redis, &b.socket_id).await, None);
    assert!(!room_exists(&redis, &room).await);
    assert_consistent(&redis).await;
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_mode_runs_its_own_redis_and_stops_it() {
    let module = support::module_path();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shim.log");
    let port = support::free_port();
    let mut process = spawn_shim(
        &[
            "--port",
            &port.to_string(),
            "--module",
            module.to_str().unwrap(),
        ],
        &log,
    );
    wait_healthy(port).await;

    let text = strip_ansi(&std::fs::read_to_string(&log).unwrap());
    let line = text
        .lines()
        .find(|l| l.contains("embedded redis-server started"))
        .unwrap_or_else(|| panic!("no start line in the log:\n{text}"));
    let redis_port: u16 = line
        .split("port=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok())
        .expect("the embedded port in the log");

    let mut a = Client::connect(&format!("ws://127.0.0.1:{port}/ws")).await;
    let room = a
        .request(json!({"kind": "room-created", "details": {"title": "embedded"}}))
        .await;
    assert_eq!(room["kind"], "room-created", "{room}");
    let room = room["room_id"].as_str().unwrap().to_owned();

    let redis_url = format!("redis://127.0.0.1:{redis_port}/");
    let mut con = redis::Client::open(redis_url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the embedded redis");
    let found: Option<String> = redis::cmd("VIOLET.WHERE")
        .arg(NS)
        .arg(&a.socket_id)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some(room.as_str()));

    sigterm(&process);
    let frame = a.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1001);
    assert_eq!(exit_code(&mut process).await, Some(0));
    eventually("the embedded redis-server is gone", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", redis_port))
            .await
            .is_err()
    })
    .await;
}
