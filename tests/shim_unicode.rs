//! Text in any script passes through the shim and the module intact: an
//! error quoting a non-ASCII id reaches its client as the right error, and
//! never costs other clients their requests (a reply the Redis client could
//! not read used to drop the shim's one Redis connection for everyone).

mod shim_common;

use serde_json::json;
use shim_common::*;
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_ascii_ids_get_their_error_and_others_are_unaffected() {
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut hostile = shim.client().await;
    let mut bystander = shim.client().await;
    let room = bystander.create_room().await;
    for id in ["salle-été", "Ж", "房间", "🎬", "مرحبا", "नमस्ते"] {
        for _ in 0..5 {
            let reply = hostile
                .request(json!({"kind": "room-joined", "room_id": id}))
                .await;
            assert_eq!(reply["code"], "NOROOM", "{reply}");
            assert!(reply["message"].as_str().unwrap().contains(id), "{reply}");
            let info = bystander
                .request(json!({"kind": "room", "room_id": room}))
                .await;
            assert_eq!(info["kind"], "room", "{info}");
        }
    }
    // A room named in any script works end to end.
    let made = hostile
        .request(json!({"kind": "room-created", "details": {"title": "Ciné-club 映画"}, "room_id": "salle-été"}))
        .await;
    assert_eq!(made["room_id"], "salle-été", "{made}");
    let joined = bystander
        .request(json!({"kind": "room-joined", "room_id": "salle-été"}))
        .await;
    assert_eq!(joined["viewers"], 2, "{joined}");
    hostile.close().await;
    bystander.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}
