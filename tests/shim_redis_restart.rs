//! Redis restarting under a running shim: requests get UNAVAILABLE meanwhile,
//! `/healthz` says 503, and everything works again once it is back, live
//! pushes included.

mod shim_common;

use serde_json::json;
use shim_common::*;
use std::time::Duration;
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_unavailable_while_redis_is_down_then_work_again() {
    let mut redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.redis_timeout = Duration::from_millis(500);
    let shim = Shim::start(settings).await;
    let mut a = shim.client().await;
    let mut b = shim.client().await;
    a.request(json!({"kind": "room-created", "details": {}}))
        .await;
    assert_eq!(http_get(shim.addr, "/healthz").await.0, 200);

    redis.kill();
    let down = a.request(json!({"kind": "top"})).await;
    assert_eq!(down["kind"], "error", "{down}");
    assert_eq!(down["code"], "UNAVAILABLE");
    let down = b
        .request(json!({"kind": "room-created", "details": {}}))
        .await;
    assert_eq!(down["code"], "UNAVAILABLE");
    assert_eq!(http_get(shim.addr, "/healthz").await.0, 503);

    redis.restart_after_kill();
    // Commands come back...
    let deadline = tokio::time::Instant::now() + WAIT;
    let room = loop {
        let reply = a
            .request(json!({"kind": "room-created", "details": {}}))
            .await;
        if reply["kind"] == "room-created" {
            break reply["room_id"].as_str().unwrap().to_owned();
        }
        assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "Redis never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(http_get(shim.addr, "/healthz").await.0, 200);

    // ...and so do pushes, once the shim has re-subscribed.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let joined = b
            .request(json!({"kind": "room-joined", "room_id": room}))
            .await;
        assert_eq!(joined["kind"], "room-joined", "{joined}");
        let b_id = b.socket_id.clone();
        let pushed = a
            .try_push(Duration::from_millis(300), |f| {
                f["kind"] == "member-joined" && f["socket_id"] == b_id.as_str()
            })
            .await;
        if pushed.is_some() {
            break;
        }
        b.request(json!({"kind": "room-left"})).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "pushes never came back"
        );
    }

    a.close().await;
    b.close().await;
    shim.stop().await;
    assert!(!room_exists(&redis, &room).await);
    assert_consistent(&redis).await;
}
