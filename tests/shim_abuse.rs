//! Bad input and abuse: malformed frames, binary frames, oversize frames,
//! floods and foreign origins. The shim answers or closes as documented and
//! the module's state stays consistent.

mod shim_common;

use futures_util::SinkExt;
use serde_json::json;
use shim_common::*;
use support::RedisServer;
use tokio_tungstenite::tungstenite::Message;
use violet_shim::config::RateLimit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unknown_and_binary_frames_get_errors_and_the_connection_stays() {
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut client = shim.client().await;
    let room = client.create_room().await;

    for bad in [
        "{not json",
        "",
        "[1,2,3]",
        "\"room-created\"",
        r#"{"details":{}}"#,
        r#"{"kind":42}"#,
        r#"{"kind":"dance"}"#,
        r#"{"kind":"room-joined","room_id":{"$ne":null}}"#,
    ] {
        let reply = client.raw_request(bad).await;
        assert_eq!(reply["kind"], "error", "{bad:?} -> {reply}");
        assert_eq!(reply["code"], "BAD_REQUEST", "{bad:?} -> {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // An unknown kind with a ref: the ref comes back.
    let reply = client.request(json!({"kind": "teleport"})).await;
    assert_eq!(reply["code"], "BAD_REQUEST");

    client
        .ws
        .send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    let reply = client.next_matching(|f| !is_push(f)).await;
    assert_eq!(reply["code"], "BAD_REQUEST");
    assert!(reply["message"].as_str().unwrap().contains("binary"));

    // Still connected, still in its room.
    let info = client
        .request(json!({"kind": "room", "room_id": room}))
        .await;
    assert_eq!(info["room"]["viewers"], 1);
    assert_eq!(
        where_is(&redis, &client.socket_id).await.as_deref(),
        Some(room.as_str())
    );
    client.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_closes_with_1009_and_the_socket_leaves() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.max_frame_bytes = 1024;
    let shim = Shim::start(settings).await;

    // At the limit is fine.
    let mut client = shim.client().await;
    let padding = "x".repeat(900);
    let ok = client
        .request(json!({"kind": "room-created", "details": {"title": padding}}))
        .await;
    let room = ok["room_id"].as_str().expect("created").to_owned();

    let big = json!({"kind": "room-message", "data": "y".repeat(2000)}).to_string();
    client.send_text(&big).await;
    let frame = client.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1009);
    assert!(
        frame.reason.as_str().contains("too big"),
        "{}",
        frame.reason
    );
    eventually("the socket left its room", || async {
        !room_exists(&redis, &room).await
    })
    .await;

    // Far over the limit: cut off while reading. The close frame may lose
    // the race with the TCP reset for the unread rest of the frame, so only
    // its code is checked when it arrives; the socket leaves its room either way.
    let mut client = shim.client().await;
    let room = client.create_room().await;
    client.send_text(&"z".repeat(64 * 1024)).await;
    if let Some(frame) = client.closed().await {
        assert_eq!(u16::from(frame.code), 1009);
    }
    eventually("the socket left its room", || async {
        !room_exists(&redis, &room).await
    })
    .await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_gets_rate_limited_then_closed_with_1008() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.rate = RateLimit {
        per_sec: 5.0,
        burst: 10,
        strikes: 20,
    };
    let shim = Shim::start(settings).await;

    // A polite client next to the flood is not affected.
    let mut polite = shim.client().await;
    let mut flood = shim.client().await;
    let room = flood.create_room().await;
    polite
        .request(json!({"kind": "room-joined", "room_id": room}))
        .await;

    let frames: Vec<Message> = (0..200)
        .map(|i| Message::text(json!({"kind": "top", "ref": i}).to_string()))
        .collect();
    for frame in frames {
        if flood.ws.feed(frame).await.is_err() {
            break;
        }
    }
    let _ = flood.ws.flush().await;
    let limited = flood
        .next_matching(|f| f["kind"] == "error" && f["code"] == "RATE_LIMITED")
        .await;
    assert!(limited["message"].as_str().unwrap().contains("too many"));
    let frame = flood.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(
        frame.reason.as_str().contains("rate limit"),
        "{}",
        frame.reason
    );

    let left = polite
        .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == flood.socket_id.as_str())
        .await;
    assert_eq!(left["viewers"], 1);
    let info = polite
        .request(json!({"kind": "room", "room_id": room}))
        .await;
    assert_eq!(info["room"]["viewers"], 1);
    polite.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_outside_the_allowed_list_are_refused_with_403() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.allowed_origins = vec!["http://violet.test".to_owned()];
    let shim = Shim::start(settings).await;

    let refused = Client::connect_with_origin(&shim.ws_url(), "http://evil.test").await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
        }
        Err(other) => panic!("expected a 403, got {other}"),
        Ok(_) => panic!("a foreign origin was let in"),
    }
    let root = format!("ws://{}/", shim.addr);
    assert!(Client::connect_with_origin(&root, "null").await.is_err());

    let mut allowed = Client::connect_with_origin(&shim.ws_url(), "http://violet.test")
        .await
        .expect("the allowed origin connects");
    let top = allowed.request(json!({"kind": "top"})).await;
    assert_eq!(top["kind"], "top");
    allowed.close().await;
    shim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_past_the_connection_limit_get_503() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.max_connections = 1;
    let shim = Shim::start(settings).await;

    // The start-up probe's slot frees once its socket has left its room.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut first = loop {
        match Client::connect_with_origin(&shim.ws_url(), "http://violet.test").await {
            Ok(client) => break client,
            Err(_) => {
                assert!(tokio::time::Instant::now() < deadline, "no slot freed");
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        }
    };
    match Client::connect_with_origin(&shim.ws_url(), "http://violet.test").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
        }
        Err(other) => panic!("expected a 503, got {other}"),
        Ok(_) => panic!("a second connection was let in"),
    }
    let top = first.request(json!({"kind": "top"})).await;
    assert_eq!(top["kind"], "top");
    first.close().await;
    shim.stop().await;
}
