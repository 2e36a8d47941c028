//! Two shims on one Redis: rooms, live counts and messages are shared, and
//! socket ids never collide.

mod shim_common;

use serde_json::json;
use shim_common::*;
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shims_share_rooms_counts_and_messages() {
    let redis = RedisServer::start();
    let east = Shim::start(config(&redis)).await;
    let west = Shim::start(config(&redis)).await;

    let mut a = east.client().await;
    let mut b = west.client().await;
    let mut c = west.client().await;
    let prefix = |id: &str| id.split(':').next().unwrap().to_owned();
    assert_ne!(
        prefix(&a.socket_id),
        prefix(&b.socket_id),
        "each shim has its own id"
    );
    assert_eq!(prefix(&b.socket_id), prefix(&c.socket_id));
    assert_eq!(prefix(&a.socket_id).len(), 12);
    assert!(prefix(&a.socket_id)
        .chars()
        .all(|ch| ch.is_ascii_hexdigit()));

    let room = a
        .request(json!({"kind": "room-created", "details": {"title": "Across"}}))
        .await["room_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let joined = b
        .request(json!({"kind": "room-joined", "room_id": room}))
        .await;
    assert_eq!(joined["viewers"], 2);
    let seen = a
        .next_matching(|f| f["kind"] == "member-joined" && f["socket_id"] == b.socket_id.as_str())
        .await;
    assert_eq!(seen["viewers"], 2);

    // Top, as seen from the other shim.
    let top = c.request(json!({"kind": "top"})).await;
    assert_eq!(top["rooms"][0]["room_id"], room.as_str());
    assert_eq!(top["rooms"][0]["viewers"], 2);

    // A message from the west reaches both shims' members, and only them.
    b.request(json!({"kind": "room-message", "data": {"emoji": "🍿"}}))
        .await;
    let sender = b.socket_id.clone();
    for client in [&mut a, &mut b] {
        let message = client.next_matching(|f| f["kind"] == "message").await;
        assert_eq!(message["socket_id"], sender.as_str());
        assert_eq!(message["data"], json!({"emoji": "🍿"}));
    }
    // C is in no room: a round trip shows it got no message.
    c.request(json!({"kind": "top"})).await;
    assert!(
        c.pending.iter().all(|f| f["kind"] != "message"),
        "{:?}",
        c.pending
    );

    // A leaves by closing its tab on the east; the west sees the count drop.
    let a_id = a.socket_id.clone();
    a.close().await;
    let left = b
        .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == a_id.as_str())
        .await;
    assert_eq!(left["viewers"], 1);

    // The east shim stops; the west keeps serving the room.
    east.stop().await;
    let info = c.request(json!({"kind": "room", "room_id": room})).await;
    assert_eq!(info["room"]["viewers"], 1);
    assert_eq!(members(&redis, &room).await, vec![b.socket_id.clone()]);

    b.close().await;
    c.close().await;
    west.stop().await;
    assert!(!room_exists(&redis, &room).await);
    assert_consistent(&redis).await;
}
