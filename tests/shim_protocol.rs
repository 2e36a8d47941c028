//! The shim's protocol, end to end: a real redis-server with the module, the
//! shim in-process, real WebSocket clients.

mod shim_common;

use serde_json::{json, Value};
use shim_common::*;
use support::RedisServer;

/// Exactly what the original page sent (`public/index.html`).
const ORIGINAL_CREATE: &str = r#"{"kind":"room-created","socket_id":"Socket:1","details":{"thumbnail":"url://thumbnail","title":"Perfect Blue","topic":"Satoshi Kon clips","watchers":"2","visibility":"Public"}}"#;
const ORIGINAL_JOIN: &str =
    r#"{"kind":"room-joined","room_id":"ROOM:2","prev_room_id":"ROOM:1","socket_id":"SOCKET:1"}"#;

fn error_code(frame: &Value) -> &str {
    assert_eq!(frame["kind"], "error", "{frame}");
    frame["code"].as_str().expect("code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_page_events_work_as_they_were_sent() {
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut page = shim.client().await;

    let reply = page.raw_request(ORIGINAL_CREATE).await;
    assert_eq!(reply["kind"], "room-created", "{reply}");
    let room = reply["room_id"].as_str().expect("room id").to_owned();
    assert!(reply.get("ref").is_none());

    let info = page.request(json!({"kind": "room", "room_id": room})).await;
    let details = &info["room"]["details"];
    assert_eq!(info["room"]["viewers"], 1);
    assert_eq!(details["title"], "Perfect Blue");
    assert_eq!(details["topic"], "Satoshi Kon clips");
    assert_eq!(details["thumbnail"], "url://thumbnail");
    assert!(
        details.get("watchers").is_none(),
        "watchers is live, not stored: {details}"
    );
    assert_eq!(details["owner"], page.socket_id.as_str());
    assert_eq!(
        where_is(&redis, &page.socket_id).await.as_deref(),
        Some(room.as_str())
    );
    assert_ne!(page.socket_id, "Socket:1");

    // The room is public: it is listed.
    let top = page.request(json!({"kind": "top"})).await;
    assert_eq!(top["rooms"][0]["room_id"], room.as_str());
    assert_eq!(top["rooms"][0]["viewers"], 1);

    // The original join names a room that does not exist: an error, and the
    // connection and the socket's room are unchanged.
    let reply = page.raw_request(ORIGINAL_JOIN).await;
    assert_eq!(error_code(&reply), "NOROOM");
    assert_eq!(
        where_is(&redis, &page.socket_id).await.as_deref(),
        Some(room.as_str())
    );

    // A second page joins the real room, as the original join meant to.
    let mut other = shim.client().await;
    let joined = other
        .raw_request(&format!(
            r#"{{"kind":"room-joined","room_id":"{room}","prev_room_id":"ROOM:1","socket_id":"SOCKET:1"}}"#
        ))
        .await;
    assert_eq!(joined["kind"], "room-joined", "{joined}");
    assert_eq!(joined["viewers"], 2);
    assert_eq!(joined["prev_room_id"], Value::Null);
    let push = page
        .next_matching(|f| {
            f["kind"] == "member-joined" && f["socket_id"] == other.socket_id.as_str()
        })
        .await;
    assert_eq!(push["viewers"], 2);
    assert_eq!(push["room_id"], room.as_str());

    other.close().await;
    page.close().await;
    shim.stop().await;
    assert!(
        !room_exists(&redis, &room).await,
        "the last one out destroys the room"
    );
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_is_in_one_room_and_forged_ids_are_ignored() {
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut a = shim.client().await;
    let mut b = shim.client().await;
    assert_ne!(a.socket_id, b.socket_id);

    let r1 = a
        .request(json!({"kind": "room-created", "details": {"title": "one"}}))
        .await;
    let r1 = r1["room_id"].as_str().unwrap().to_owned();
    let r2 = a
        .request(json!({"kind": "room-created", "details": {"title": "two"}}))
        .await;
    let r2 = r2["room_id"].as_str().unwrap().to_owned();
    assert!(
        !room_exists(&redis, &r1).await,
        "creating moved the socket out of r1"
    );
    assert_eq!(members(&redis, &r2).await, vec![a.socket_id.clone()]);

    // B claims to be A and to come from r1: both are ignored.
    let joined = b
        .request(json!({"kind": "room-joined", "room_id": r2, "socket_id": a.socket_id, "prev_room_id": r1}))
        .await;
    assert_eq!(joined["prev_room_id"], Value::Null);
    assert_eq!(joined["viewers"], 2);
    let mut expected = vec![a.socket_id.clone(), b.socket_id.clone()];
    expected.sort();
    assert_eq!(members(&redis, &r2).await, expected);

    // B leaves (still claiming to be A): only B leaves.
    let left = b
        .request(json!({"kind": "room-left", "socket_id": a.socket_id}))
        .await;
    assert_eq!(left["room_id"], r2.as_str());
    assert_eq!(members(&redis, &r2).await, vec![a.socket_id.clone()]);
    let left = b.request(json!({"kind": "room-left"})).await;
    assert_eq!(left["room_id"], Value::Null);

    // Joining the room you are in changes nothing; prev_room_id is that room.
    let again = a
        .request(json!({"kind": "room-joined", "room_id": r2}))
        .await;
    assert_eq!(again["prev_room_id"], r2.as_str());
    assert_eq!(again["viewers"], 1);

    // Moving from room to room.
    let r3 = b.create_room().await;
    let moved = a
        .request(json!({"kind": "room-joined", "room_id": r3}))
        .await;
    assert_eq!(moved["prev_room_id"], r2.as_str());
    assert!(!room_exists(&redis, &r2).await);

    a.close().await;
    b.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_its_reply_or_error() {
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut a = shim.client().await;
    let mut b = shim.client().await;
    let mut c = shim.client().await;

    // Named room, capacity, numbers and booleans as details.
    let created = a
        .request(json!({"kind": "room-created", "room_id": "lobby", "details": {"capacity": 2, "mature": false, "visibility": "private"}}))
        .await;
    assert_eq!(created["room_id"], "lobby");
    assert!(created["ref"].is_string(), "ref echoed: {created}");
    let taken = b
        .request(json!({"kind": "room-created", "room_id": "lobby", "details": {}}))
        .await;
    assert_eq!(error_code(&taken), "EXISTS");
    assert!(taken["ref"].is_string());

    let info = b.request(json!({"kind": "room", "room_id": "lobby"})).await;
    assert_eq!(info["room"]["details"]["capacity"], "2");
    assert_eq!(info["room"]["details"]["mature"], "false");
    let none = b
        .request(json!({"kind": "room", "room_id": "nowhere"}))
        .await;
    assert_eq!(none["room"], Value::Null);

    // Private rooms can be joined, and are not listed.
    let joined = b
        .request(json!({"kind": "room-joined", "room_id": "lobby"}))
        .await;
    assert_eq!(joined["viewers"], 2);
    let top = c
        .request(json!({"kind": "top", "count": 5, "offset": 0}))
        .await;
    assert_eq!(top["rooms"], json!([]));
    let full = c
        .request(json!({"kind": "room-joined", "room_id": "lobby"}))
        .await;
    assert_eq!(error_code(&full), "FULL");

    let listed = c
        .request(json!({"kind": "members", "room_id": "lobby"}))
        .await;
    let mut expected = vec![a.socket_id.clone(), b.socket_id.clone()];
    expected.sort();
    let mut members: Vec<String> = serde_json::from_value(listed["members"].clone()).unwrap();
    members.sort();
    assert_eq!(members, expected);
    assert_eq!(listed["room_id"], "lobby");
    assert_eq!(listed["cursor"], Value::Null, "one page holds them all");

    // Messages: any JSON, to every member, the sender included.
    let data = json!({"text": "hello", "at": [1, 2.5, null]});
    let ack = a
        .request(json!({"kind": "room-message", "data": data}))
        .await;
    assert_eq!(ack["kind"], "room-message");
    assert_eq!(ack["room_id"], "lobby");
    for client in [&mut a, &mut b] {
        let message = client.next_matching(|f| f["kind"] == "message").await;
        assert_eq!(message["data"], data);
        assert_eq!(message["room_id"], "lobby");
    }
    let stray = c
        .request(json!({"kind": "room-message", "data": "hi"}))
        .await;
    assert_eq!(error_code(&stray), "NOTINROOM");

    // Bad input: wrong types, refused fields, unknown rooms.
    for bad in [
        json!({"kind": "room-created", "details": {"title": ["a"]}}),
        json!({"kind": "room-created", "details": {"owner": "me"}}),
        json!({"kind": "room-created", "details": {"visibility": "secret"}}),
        json!({"kind": "room-created", "details": {"capacity": 0}}),
        json!({"kind": "room-joined", "room_id": 5}),
        json!({"kind": "room-joined"}),
        json!({"kind": "room-joined", "room_id": "has space"}),
        json!({"kind": "top", "count": "ten"}),
        json!({"kind": "top", "count": 1_000_000}),
        json!({"kind": "room-message"}),
    ] {
        let reply = c.request(bad.clone()).await;
        assert_eq!(error_code(&reply), "BAD_REQUEST", "{bad} -> {reply}");
    }
    let missing = c
        .request(json!({"kind": "room-joined", "room_id": "gone"}))
        .await;
    assert_eq!(error_code(&missing), "NOROOM");
    assert_eq!(where_is(&redis, &c.socket_id).await, None);

    // Live updates reach the room's members.
    let mut con = redis_connection(&redis).await;
    let _: () = redis::cmd("VIOLET.UPDATE")
        .arg(NS)
        .arg("lobby")
        .arg("title")
        .arg("Renamed")
        .query_async(&mut con)
        .await
        .unwrap();
    let updated = b.next_matching(|f| f["kind"] == "room-updated").await;
    assert_eq!(updated["details"], json!({"title": "Renamed"}));
    let left = a.request(json!({"kind": "room-left"})).await;
    assert_eq!(left["room_id"], "lobby");
    let a_id = a.socket_id.clone();
    let own = a
        .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == a_id.as_str())
        .await;
    assert_eq!(own["room_id"], "lobby", "a socket hears of its own leaving");
    let gone = b
        .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == a.socket_id.as_str())
        .await;
    assert_eq!(gone["viewers"], 1);

    for client in [a, b, c] {
        client.close().await;
    }
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_top_pushes_changes_until_unwatched() {
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut watcher = shim.client().await;
    let mut host = shim.client().await;

    let first = watcher
        .request(json!({"kind": "watch-top", "count": 3}))
        .await;
    assert_eq!(first["kind"], "top");
    assert_eq!(first["rooms"], json!([]));

    let room = host
        .request(json!({"kind": "room-created", "details": {"title": "Live"}}))
        .await;
    let room = room["room_id"].as_str().unwrap().to_owned();
    let pushed = watcher
        .next_matching(|f| {
            f["kind"] == "top"
                && f.get("ref").is_none()
                && f["rooms"][0]["room_id"] == room.as_str()
        })
        .await;
    assert_eq!(pushed["rooms"][0]["viewers"], 1);
    assert_eq!(pushed["rooms"][0]["details"]["title"], "Live");

    let stop = watcher.request(json!({"kind": "unwatch-top"})).await;
    assert_eq!(stop["kind"], "unwatch-top");
    watcher.pending.clear();
    host.request(json!({"kind": "room-left"})).await;
    // A request after the change: had a push been sent, it would come first.
    let mut probe = shim.client().await;
    probe
        .request(json!({"kind": "room-created", "details": {}}))
        .await;
    probe.request(json!({"kind": "room-left"})).await;
    let late = watcher
        .try_push(std::time::Duration::from_millis(1500), |f| {
            f["kind"] == "top"
        })
        .await;
    assert!(late.is_none(), "no pushes after unwatch-top: {late:?}");

    for client in [watcher, host, probe] {
        client.close().await;
    }
    shim.stop().await;
    assert_consistent(&redis).await;
}
