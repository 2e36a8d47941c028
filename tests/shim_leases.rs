//! A shim that dies or loses Redis leaves no ghost viewers: the module reaps
//! the sockets of a lease that is not renewed, the other shims' clients are
//! told, and a shim that lost its lease brings its clients in line with
//! Redis. Real shims (one a separate process, killed with SIGKILL), a real
//! redis-server (paused with SIGSTOP), real WebSocket clients.

mod shim_common;

use serde_json::{json, Value};
use shim_common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::RedisServer;

/// Sockets on the shim that is killed.
const DOOMED: usize = 1000;
/// Rooms the killed shim's sockets share with the surviving shim's clients.
const SHARED: usize = 10;
/// Rooms only the killed shim's sockets are in.
const ALONE: usize = 40;
const LEASE_MS: u64 = 2000;

async fn node_size(redis: &RedisServer, node: &str) -> u64 {
    let mut con = redis_connection(redis).await;
    redis::cmd("HLEN")
        .arg(format!("violet:{{{NS}}}:node:{node}"))
        .query_async(&mut con)
        .await
        .expect("HLEN")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shim_leaves_no_ghosts_and_the_others_are_told() {
    let redis = RedisServer::start();
    let survivor = Shim::start(config(&redis)).await;
    let dir = tempfile::tempdir().unwrap();
    let lease = LEASE_MS.to_string();
    let (mut doomed, port) = start_shim_process(
        &redis,
        &["--lease", &lease, "--shim-id", "d00d00d00d00"],
        &dir.path().join("doomed.log"),
    )
    .await;

    // One survivor client per shared room, as its first member.
    let mut watchers = Vec::new();
    let mut shared = Vec::new();
    for _ in 0..SHARED {
        let mut client = survivor.client().await;
        shared.push(client.create_room().await);
        watchers.push(client);
    }
    // The doomed shim's sockets: some in the shared rooms, the rest in rooms
    // of their own.
    let url = format!("ws://127.0.0.1:{port}/");
    let mut doomed_clients = Vec::new();
    let mut alone = Vec::new();
    let mut in_shared: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..DOOMED {
        let mut client = Client::connect(&url).await;
        assert!(client.socket_id.starts_with("d00d00d00d00:"));
        if i < SHARED * 5 {
            let room = &shared[i % SHARED];
            let reply = client
                .request(json!({"kind": "room-joined", "room_id": room}))
                .await;
            assert_eq!(reply["kind"], "room-joined", "{reply}");
            *in_shared.entry(room.clone()).or_default() += 1;
        } else if alone.len() < ALONE {
            alone.push(client.create_room().await);
        } else {
            let room = &alone[i % ALONE];
            let reply = client
                .request(json!({"kind": "room-joined", "room_id": room}))
                .await;
            assert_eq!(reply["kind"], "room-joined", "{reply}");
        }
        doomed_clients.push(client);
    }
    assert_eq!(node_size(&redis, "d00d00d00d00").await, DOOMED as u64);

    doomed.0.kill().expect("kill -9 the shim");
    let killed = Instant::now();
    doomed.0.wait().expect("reap the shim process");
    drop(doomed_clients);

    eventually(
        "the module reaped every socket of the killed shim",
        || async { node_size(&redis, "d00d00d00d00").await == 0 },
    )
    .await;
    let took = killed.elapsed();
    eprintln!("{DOOMED} sockets of a killed shim with a {LEASE_MS} ms lease were gone {took:?} after the kill");

    for room in &alone {
        assert!(!room_exists(&redis, room).await, "room {room} is destroyed");
    }
    for (room, watcher) in shared.iter().zip(&mut watchers) {
        assert_eq!(
            members(&redis, room).await,
            std::slice::from_ref(&watcher.socket_id)
        );
        // The survivor's client heard every doomed member leave, as expired.
        let mut heard = 0;
        while heard < in_shared[room] {
            let left = watcher
                .next_matching(|f| f["kind"] == "member-left" && f["room_id"] == room.as_str())
                .await;
            assert_eq!(left["reason"], "expired", "{left}");
            heard += 1;
        }
        let info = watcher
            .request(json!({"kind": "room", "room_id": room}))
            .await;
        assert_eq!(info["room"]["viewers"], 1, "{info}");
    }
    assert_consistent(&redis).await;
    for watcher in watchers {
        watcher.close().await;
    }
    survivor.stop().await;
}

/// What a client believes from the frames it got: the room it is in.
fn believed_room(frames: &[Value], me: &str, start: Option<&str>) -> Option<String> {
    let mut room = start.map(String::from);
    for frame in frames {
        let about_me = frame["socket_id"] == me;
        match frame["kind"].as_str() {
            Some("member-left")
                if about_me && frame["room_id"] == room.as_deref().unwrap_or("") =>
            {
                room = None;
            }
            Some("room-destroyed") if frame["room_id"] == room.as_deref().unwrap_or("") => {
                room = None;
            }
            Some("member-joined") if about_me => room = frame["room_id"].as_str().map(String::from),
            _ => {}
        }
    }
    room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_paused_past_the_lease_leaves_clients_and_redis_agreeing() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.lease = Duration::from_millis(1000);
    settings.redis_timeout = Duration::from_millis(500);
    let shim = Shim::start(settings).await;
    let mut clients = Vec::new();
    let mut rooms = Vec::new();
    for i in 0..6 {
        let mut client = shim.client().await;
        if i < 3 {
            rooms.push(client.create_room().await);
        } else {
            let reply = client
                .request(json!({"kind": "room-joined", "room_id": rooms[i % 3]}))
                .await;
            assert_eq!(reply["kind"], "room-joined", "{reply}");
        }
        clients.push(client);
    }
    let joined: Vec<String> = (0..6).map(|i| rooms[i % 3].clone()).collect();
    // Drop what the joins pushed so far.
    for client in &mut clients {
        while client
            .try_push(Duration::from_millis(50), |_| true)
            .await
            .is_some()
        {}
    }

    signal("STOP", redis.pid());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    signal("CONT", redis.pid());

    // The module reaps the sockets of the lapsed lease; the shim learns it
    // and its clients are told, each about itself.
    for (client, room) in clients.iter_mut().zip(&joined) {
        let me = client.socket_id.clone();
        let left = client
            .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == me.as_str())
            .await;
        assert_eq!(left["room_id"], room.as_str(), "{left}");
        assert!(
            ["expired", "lost"].contains(&left["reason"].as_str().unwrap_or("")),
            "{left}"
        );
    }
    // Once things settle, what each client believes (out of its room, and
    // whatever came after) is what Redis holds, and the connections still
    // work.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for client in &mut clients {
        let mut frames: Vec<Value> = client.pending.drain(..).collect();
        while let Some(frame) = client.try_push(Duration::from_millis(50), |_| true).await {
            frames.push(frame);
        }
        let believed = believed_room(&frames, &client.socket_id, None);
        assert_eq!(believed, where_is(&redis, &client.socket_id).await);
        assert_eq!(believed, None);
    }
    let fresh = clients[0].create_room().await;
    assert_eq!(where_is(&redis, &clients[0].socket_id).await, Some(fresh));
    assert_consistent(&redis).await;
    for client in clients {
        client.close().await;
    }
    shim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_loses_its_data_no_client_hears_a_room_it_is_not_in() {
    let mut redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.redis_timeout = Duration::from_millis(500);
    let shim = Shim::start(settings).await;
    let mut stale = shim.client().await;
    let room = stale.create_room().await;
    let me = stale.socket_id.clone();
    stale
        .next_matching(|f| f["kind"] == "member-joined" && f["socket_id"] == me.as_str())
        .await;

    // Redis restarts empty: the room and the membership are gone.
    redis.kill();
    redis.restart_after_kill();
    let lost = stale
        .next_matching(|f| f["kind"] == "member-left" && f["socket_id"] == me.as_str())
        .await;
    assert_eq!(lost["reason"], "lost", "{lost}");
    assert_eq!(lost["room_id"], room.as_str(), "{lost}");

    // Someone else makes a room with the same id and talks in it: the stale
    // client, who is no member in Redis, hears none of it.
    let mut other = shim.client().await;
    // The shim's first command after the restart may find its connection
    // gone (UNAVAILABLE) and reconnect; the client tries again, as a page does.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reply = other
            .request(json!({"kind": "room-created", "details": {}, "room_id": room}))
            .await;
        if reply["kind"] == "room-created" {
            break;
        }
        assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
        assert!(tokio::time::Instant::now() < deadline, "{reply}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let said = other
        .request(json!({"kind": "room-message", "data": "hello"}))
        .await;
    assert_eq!(said["kind"], "room-message", "{said}");
    other
        .next_matching(|f| f["kind"] == "message" && f["data"] == "hello")
        .await;
    let heard = stale
        .try_push(Duration::from_millis(500), |f| {
            f["room_id"] == room.as_str() && f["kind"] != "member-left"
        })
        .await;
    assert_eq!(heard, None, "a non-member heard the room");
    assert_eq!(where_is(&redis, &stale.socket_id).await, None);
    let members: BTreeSet<String> = members(&redis, &room).await.into_iter().collect();
    assert_eq!(members, BTreeSet::from([other.socket_id.clone()]));
    stale.close().await;
    other.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_releases_the_lease_at_once() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.shim_id = Some("5709e05709e0".into());
    settings.lease = Duration::from_secs(600);
    let shim = Shim::start(settings).await;
    let mut client = shim.client().await;
    client.create_room().await;
    let mut con = redis_connection(&redis).await;
    let expiry: Option<f64> = redis::cmd("ZSCORE")
        .arg(format!("violet:{{{NS}}}:nodes"))
        .arg("5709e05709e0")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(expiry.is_some(), "the shim holds a lease");
    shim.stop().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        keys.is_empty(),
        "nothing is left, not even the lease: {keys:?}"
    );
}
