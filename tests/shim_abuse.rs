//! Bad input and abuse: malformed frames, binary frames, oversize frames,
//! floods, foreign origins, clients that do not read and replies too large.
//! The shim answers or closes as documented and the module's state stays
//! consistent.

mod shim_common;

use futures_util::SinkExt;
use serde_json::json;
use shim_common::*;
use support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
async fn a_ping_flood_is_closed_with_1008_like_any_flood() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.rate = RateLimit {
        per_sec: 5.0,
        burst: 10,
        strikes: 20,
    };
    let shim = Shim::start(settings).await;
    let mut flood = shim.client().await;
    for _ in 0..2_000 {
        if flood
            .ws
            .feed(Message::Ping(Default::default()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = flood.ws.flush().await;
    let frame = flood.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1008);
    assert!(
        frame.reason.as_str().contains("rate limit"),
        "{}",
        frame.reason
    );
    shim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_that_break_the_protocol_are_closed_with_their_codes() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;

    // A text frame that is not UTF-8: 1007.
    let mut client = shim.client().await;
    let room = client.create_room().await;
    let not_utf8 = Frame::message(vec![b'{', 0xFF, 0xFE, b'}'], OpCode::Data(Data::Text), true);
    client.ws.send(Message::Frame(not_utf8)).await.unwrap();
    let frame = client.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), 1007, "{}", frame.reason);
    // Its socket left, as for any end.
    eventually("the socket leaves its room", || async {
        !room_exists(&redis, &room).await
    })
    .await;

    // A fragmented ping, written by hand after a handshake by hand: 1002.
    let mut tcp = tokio::net::TcpStream::connect(shim.addr).await.unwrap();
    let handshake = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    // No FIN, opcode ping; masked, empty.
    tcp.write_all(&[0x09, 0x80, 1, 2, 3, 4]).await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut received)).await;
    // The close frame is the last frame: 0x88, its length, then the code.
    let at = received
        .windows(2)
        .rposition(|w| w[0] == 0x88)
        .expect("a close frame");
    let code = u16::from_be_bytes([received[at + 2], received[at + 3]]);
    assert_eq!(code, 1002);
    shim.stop().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_while_its_room_chats_is_closed_as_too_slow() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.max_queue_bytes = 256 * 1024;
    settings.rate = RateLimit {
        per_sec: 1e6,
        burst: 1_000_000,
        strikes: 1_000_000,
    };
    // Pings play no part: a client that does not read would also be dropped
    // for not answering them.
    settings.ping_interval = std::time::Duration::from_secs(600);
    settings.pong_timeout = std::time::Duration::from_secs(600);
    let shim = Shim::start(settings).await;

    let mut chatter = shim.client().await;
    let room = chatter.create_room().await;
    let mut lazy = Client::connect_with_small_receive_buffer(&shim.ws_url()).await;
    lazy.request(json!({"kind": "room-joined", "room_id": room}))
        .await;
    let lazy_id = lazy.socket_id.clone();
    let lazy_left =
        |f: &serde_json::Value| f["kind"] == "member-left" && f["socket_id"] == lazy_id.as_str();

    // 48 KB messages: 600 of them are far more than the queue's 256 KiB and
    // the socket buffers, and far fewer than the 1024 frames a queue holds.
    let data = "m".repeat(48_000);
    let mut sent = 0;
    while sent < 600 && !chatter.pending.iter().any(lazy_left) {
        let reply = chatter
            .request(json!({"kind": "room-message", "data": data}))
            .await;
        assert_eq!(reply["kind"], "room-message", "{reply}");
        // Its own copy, before the next: the chatter keeps up with its
        // pushes however late the events come, so only the lazy one falls
        // behind (a burst of copies could fill a busy machine's queue).
        chatter.next_matching(|f| f["kind"] == "message").await;
        sent += 1;
    }
    let left = chatter.next_matching(lazy_left).await;
    assert_eq!(left["viewers"], 1);
    assert_eq!(where_is(&redis, &lazy_id).await, None);
    assert_eq!(metric(shim.addr, "violet_slow_clients_total").await, 1.0);

    // Reading again, the lazy client finds the messages its socket held,
    // then the end of the connection (a close frame when it got through).
    if let Some(frame) = lazy.closed().await {
        assert_eq!(u16::from(frame.code), 1008);
        assert!(
            frame.reason.as_str().contains("too slow"),
            "{}",
            frame.reason
        );
    }
    let info = chatter
        .request(json!({"kind": "room", "room_id": room}))
        .await;
    assert_eq!(info["room"]["viewers"], 1);
    chatter.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_lists_too_large_for_a_reply_keep_the_first_rooms_and_say_so() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.max_reply_bytes = 16 * 1024;
    let shim = Shim::start(settings).await;

    // Ten rooms of about 3 KB each: 30 KB together.
    let mut owners = Vec::new();
    for i in 0..10 {
        let mut owner = shim.client().await;
        let reply = owner
            .request(
                json!({"kind": "room-created", "details": {"title": format!("{i}").repeat(3000)}}),
            )
            .await;
        assert!(reply["room_id"].is_string(), "{reply}");
        owners.push(owner);
    }
    let mut lobby = shim.client().await;
    let top = lobby.request(json!({"kind": "top", "count": 100})).await;
    let kept = top["rooms"].as_array().unwrap().len();
    assert_eq!(top["truncated"], true, "{kept} rooms, not truncated");
    assert!((1..10).contains(&kept), "{kept} rooms");
    assert!(top.to_string().len() <= 16 * 1024);
    // They are the first rooms of the list.
    let first = lobby.request(json!({"kind": "top", "count": 2})).await;
    assert!(first.get("truncated").is_none(), "{first}");
    assert!(first["rooms"].as_array().unwrap()[..] == top["rooms"].as_array().unwrap()[..2]);

    // watch-top: the reply and the pushes alike.
    let watched = lobby
        .request(json!({"kind": "watch-top", "count": 100}))
        .await;
    assert_eq!(watched["truncated"], true);
    owners[0].request(json!({"kind": "room-left"})).await;
    let push = lobby
        .next_matching(|f| f["kind"] == "top" && f.get("ref").is_none())
        .await;
    assert_eq!(push["truncated"], true);
    assert!(push.to_string().len() <= 16 * 1024);
    lobby.close().await;
    for owner in owners {
        owner.close().await;
    }
    shim.stop().await;
    assert_consistent(&redis).await;
}

/// `VIOLET.TOP` calls the shim has made to `redis` since the stats were reset.
async fn top_calls(redis: &RedisServer) -> u64 {
    let mut con = redis_connection(redis).await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .unwrap();
    stats
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("cmdstat_violet.top:"))
        .and_then(|l| l.split(['=', ',']).nth(1))
        .map_or(0, |calls| calls.parse().unwrap())
}

/// However deep clients ask, the shared snapshot is read at most once per
/// second, and each read lists rooms only up to the reply bound: rising
/// counts and offsets from many connections cost Redis about one bounded
/// `VIOLET.TOP` a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_requests_of_any_depth_read_redis_about_once_a_second() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.max_reply_bytes = 16 * 1024;
    let shim = Shim::start(settings).await;

    // Thirty rooms of about 3 KB each: 90 KB together, the first six of
    // which take the snapshot past its 16 KiB.
    let mut owners = Vec::new();
    for i in 0..30 {
        let mut owner = shim.client().await;
        let title = format!("{}", i % 10).repeat(3000);
        let reply = owner
            .request(json!({"kind": "room-created", "details": {"title": title}}))
            .await;
        assert!(reply["room_id"].is_string(), "{reply}");
        owners.push(owner);
    }
    let mut con = redis_connection(&redis).await;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();

    // 25 connections, 20 requests each, every one deeper than the last.
    let started = std::time::Instant::now();
    let mut askers = Vec::new();
    for c in 0..25u64 {
        let mut client = shim.client().await;
        askers.push(tokio::spawn(async move {
            let mut replies = Vec::new();
            for j in 0..20u64 {
                let depth = 1 + j * 25 + c;
                let request = if j % 2 == 0 {
                    json!({"kind": "top", "count": depth * 2})
                } else {
                    json!({"kind": "top", "count": 1, "offset": depth})
                };
                let reply = client.request(request.clone()).await;
                assert_eq!(reply["kind"], "top", "{request} -> {reply}");
                replies.push((request, reply));
            }
            client.close().await;
            replies
        }));
    }
    let mut replies = Vec::new();
    for asker in askers {
        replies.extend(asker.await.unwrap());
    }
    let seconds = started.elapsed().as_secs();
    let calls = top_calls(&redis).await;
    // One read when the first request comes, then one per second at most.
    assert!(
        calls <= seconds + 2,
        "{calls} VIOLET.TOP calls for 500 requests in {seconds} s"
    );

    // The snapshot holds the rooms up to the one that takes it past 16 KiB:
    // offsets reach them one by one, and none after.
    let mut lobby = shim.client().await;
    let mut held = Vec::new();
    loop {
        let offset = held.len();
        let one = lobby
            .request(json!({"kind": "top", "count": 1, "offset": offset}))
            .await;
        match one["rooms"].as_array().unwrap().first() {
            Some(room) => {
                assert!(one.get("truncated").is_none(), "{one}");
                held.push(room.clone());
            }
            None => {
                // Past them: none, and cut.
                assert_eq!(one["truncated"], true, "{one}");
                break;
            }
        }
    }
    assert!((5..10).contains(&held.len()), "{} rooms held", held.len());
    let past = lobby
        .request(json!({"kind": "top", "count": 5, "offset": 20}))
        .await;
    assert_eq!(past["rooms"], json!([]));
    assert_eq!(past["truncated"], true);
    // Replies hold the snapshot's rooms, at most a reply's worth, and say
    // they were cut whenever they reach past the snapshot.
    for (request, reply) in &replies {
        assert!(reply.to_string().len() <= 16 * 1024, "{request}");
        let offset = request["offset"].as_u64().unwrap_or(0) as usize;
        let count = request["count"].as_u64().unwrap() as usize;
        let rooms = reply["rooms"].as_array().unwrap();
        let end = (offset + count).min(held.len());
        let start = offset.min(end);
        assert!(rooms[..] == held[start..start + rooms.len()], "{request}");
        if offset + count > held.len() {
            assert_eq!(reply["truncated"], true, "{request} -> {reply}");
        }
    }
    lobby.close().await;
    for owner in owners {
        owner.close().await;
    }
    shim.stop().await;
    assert_consistent(&redis).await;
}

/// Rooms with the most fields, the smallest: `MAXBYTES` hardly cuts them,
/// so a deep read asks Redis for them a page at a time (32 rooms, 64 KiB
/// at most; about 0.7 ms of Redis each, measured), never for all at once,
/// and the reply still lists them all, each once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_top_reads_redis_a_bounded_page_at_a_time() {
    const ROOMS: usize = 80;
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut con = redis_connection(&redis).await;
    for i in 0..ROOMS {
        let mut create = redis::cmd("VIOLET.CREATE");
        create
            .arg(NS)
            .arg(format!("seed:{i}"))
            .arg(format!("r{i:03}"));
        for f in 0..30 {
            create.arg(format!("f{f}")).arg("x");
        }
        let _: String = create.query_async(&mut con).await.expect("a room");
    }
    // Every command from now on goes to the slow log, with its arguments.
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(0)
        .query_async(&mut con)
        .await
        .unwrap();
    let () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(&mut con)
        .await
        .unwrap();

    let mut lobby = shim.client().await;
    let top = lobby.request(json!({"kind": "top", "count": 1000})).await;
    let ids: Vec<&str> = top["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|room| room["room_id"].as_str().unwrap())
        .collect();
    // Ties in viewers come in reverse id order.
    let expected: Vec<String> = (0..ROOMS).rev().map(|i| format!("r{i:03}")).collect();
    assert_eq!(ids, expected, "{top}");
    assert!(top.get("truncated").is_none(), "{top}");

    let log: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(1000)
        .query_async(&mut con)
        .await
        .unwrap();
    let mut reads = Vec::new();
    for entry in log {
        let redis::Value::Array(fields) = entry else {
            panic!("a slow log entry: {entry:?}")
        };
        let args: Vec<String> = redis::from_redis_value(fields[3].clone()).unwrap();
        if args[0].eq_ignore_ascii_case("VIOLET.TOP") {
            reads.push(args);
        }
    }
    assert!(reads.len() >= ROOMS.div_ceil(32), "{reads:?}");
    for args in &reads {
        let option = |name: &str| -> u64 {
            let at = args.iter().position(|a| a == name).expect(name);
            args[at + 1].parse().unwrap()
        };
        assert!(option("COUNT") <= 32, "{args:?}");
        assert!(option("MAXBYTES") <= 64 * 1024, "{args:?}");
    }
    lobby.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

/// Small rooms, which `MAXBYTES` does not cut: a request deeper than a
/// fresh snapshot waits for the next read instead of reading again, and
/// gets every room it asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeper_top_requests_wait_for_the_next_read_instead_of_reading_again() {
    let redis = RedisServer::start();
    let shim = Shim::start(config(&redis)).await;
    let mut owners = Vec::new();
    for _ in 0..30 {
        let mut owner = shim.client().await;
        owner.create_room().await;
        owners.push(owner);
    }
    let mut con = redis_connection(&redis).await;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();

    // 10 connections, 3 requests each, every one deeper than the last.
    let started = std::time::Instant::now();
    let mut askers = Vec::new();
    for c in 0..10u64 {
        let mut client = shim.client().await;
        askers.push(tokio::spawn(async move {
            let mut replies = Vec::new();
            for j in 0..3u64 {
                let depth = 11 + j * 10 + c;
                let request = if c % 2 == 0 {
                    json!({"kind": "top", "count": depth})
                } else {
                    json!({"kind": "top", "count": 1, "offset": depth - 1})
                };
                replies.push((request.clone(), client.request(request).await));
            }
            client.close().await;
            replies
        }));
    }
    let mut replies = Vec::new();
    for asker in askers {
        replies.extend(asker.await.unwrap());
    }
    let seconds = started.elapsed().as_secs();
    let calls = top_calls(&redis).await;
    // A read of the 41 ranks asked at most is two pages of 32.
    assert!(
        calls <= 2 * (seconds + 2),
        "{calls} VIOLET.TOP calls for 30 requests in {seconds} s"
    );
    for (request, reply) in &replies {
        assert!(reply.get("truncated").is_none(), "{request} -> {reply}");
        let offset = request["offset"].as_u64().unwrap_or(0);
        let count = request["count"].as_u64().unwrap();
        let expected = (offset + count).min(30).saturating_sub(offset);
        let rooms = reply["rooms"].as_array().unwrap();
        assert_eq!(rooms.len() as u64, expected, "{request} -> {reply}");
    }
    for owner in owners {
        owner.close().await;
    }
    shim.stop().await;
    assert_consistent(&redis).await;
}

/// Opens `n` TCP connections that never send a byte.
async fn silent_connections(addr: std::net::SocketAddr, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut silent = Vec::new();
    for _ in 0..n {
        silent.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("TCP connect"),
        );
    }
    silent
}

/// Waits until the shim closes `stream` (end of stream or a reset).
async fn closed_by_the_shim(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    match tokio::time::timeout(WAIT, stream.read(&mut byte)).await {
        Err(_) => panic!("the shim kept a silent connection open"),
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(_)) => panic!("the shim wrote to a connection that sent nothing"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_connections_are_closed_after_the_handshake_timeout() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.handshake_timeout = std::time::Duration::from_millis(300);
    settings.max_pending_connections = 4;
    let shim = Shim::start(settings).await;

    // More silent connections than may be pending: the ones past the bound
    // wait in the listen backlog, and a real client waits behind them.
    let mut silent = silent_connections(shim.addr, 12).await;
    let mut client = shim.client().await;
    let top = client.request(json!({"kind": "top"})).await;
    assert_eq!(top["kind"], "top");
    for stream in &mut silent {
        closed_by_the_shim(stream).await;
    }

    // A connection that sends part of a request head and stops is closed too.
    let mut trickle = tokio::net::TcpStream::connect(shim.addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut trickle, b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    closed_by_the_shim(&mut trickle).await;

    // The WebSocket, upgraded, is not subject to the handshake timeout.
    let info = client.request(json!({"kind": "top"})).await;
    assert_eq!(info["kind"], "top");
    assert_eq!(metric(shim.addr, "violet_connections_open").await, 1.0);
    client.close().await;
    shim.stop().await;
}

/// Opens a connection with a small receive buffer that pipelines `requests`
/// requests for the page and never reads a response.
async fn never_reads_its_responses(
    addr: std::net::SocketAddr,
    requests: usize,
) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.expect("TCP connect");
    let request = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n".repeat(requests);
    tokio::io::AsyncWriteExt::write_all(&mut stream, &request)
        .await
        .unwrap();
    stream
}

/// Reads what the shim sent until it closes `stream`.
async fn drained_until_closed(stream: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    let drained = tokio::time::timeout(WAIT, async {
        while let Ok(1..) = stream.read(&mut buf).await {}
    })
    .await;
    assert!(drained.is_ok(), "the shim kept the connection open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_their_responses_do_not_hold_pending_slots() {
    let redis = RedisServer::start();
    let mut settings = config(&redis);
    settings.handshake_timeout = std::time::Duration::from_millis(300);
    settings.max_pending_connections = 2;
    let shim = Shim::start(settings).await;

    // Each fills both socket buffers with pages it never reads: the shim's
    // writes stall, and both pending slots are taken.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(never_reads_its_responses(shim.addr, 4000).await);
    }
    // A real client still gets in, once the stalled ones have had their time.
    let mut client = shim.client().await;
    let top = client.request(json!({"kind": "top"})).await;
    assert_eq!(top["kind"], "top");
    for stream in &mut stalled {
        drained_until_closed(stream).await;
    }
    client.close().await;
    shim.stop().await;
}

/// A `violet-shim` process with at most `files` open files, killed on drop.
struct LimitedShim {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl LimitedShim {
    async fn start(redis: &RedisServer, files: u32, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("shim.log");
        let port = support::free_port();
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {files} && exec \"$0\" \"$@\""))
            .arg(support::shim_binary())
            .args(["--port", &port.to_string(), "--redis-url", &redis.url()])
            .args(args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start violet-shim");
        let shim = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        let addr = shim.addr();
        eventually("the shim answers /healthz", || async move {
            tokio::net::TcpStream::connect(addr).await.is_ok()
                && http_get(addr, "/healthz").await.0 == 200
        })
        .await;
        shim
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// A real client connects, however long the silent ones ahead of it in
    /// the backlog take to be dealt with (a minute at most).
    async fn client(&self) -> Client {
        let url = format!("ws://{}/ws", self.addr());
        let connect = Client::connect_with_origin(&url, "http://violet.test");
        tokio::time::timeout(std::time::Duration::from_secs(60), connect)
            .await
            .expect("a real client connects in time")
            .expect("a real client connects")
    }
}

impl Drop for LimitedShim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_connection_limit_fits_the_open_file_limit() {
    let redis = RedisServer::start();
    // 2,000 files: 1,024 pending connections and 64 spare leave 912.
    let shim = LimitedShim::start(&redis, 2000, &[]).await;
    let log = shim.log();
    assert!(
        log.contains("WebSockets limited by the open-file limit")
            && log.contains("max_connections=912"),
        "{log}"
    );
    assert!(
        !log.contains("WARN"),
        "a default is no cause for a warning:\n{log}"
    );
    // Asked for explicitly, the same limit is a warning.
    let shim = LimitedShim::start(&redis, 2000, &["--max-connections", "5000"]).await;
    let log = shim.log();
    assert!(
        log.contains("WARN") && log.contains("max_connections=912"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_listener_waits_and_serves_again() {
    let redis = RedisServer::start();
    // 64 files, and a pending bound too high to keep the shim within them.
    let shim = LimitedShim::start(
        &redis,
        64,
        &[
            "--handshake-timeout-ms",
            "500",
            "--max-pending-connections",
            "1000",
        ],
    )
    .await;
    let mut silent = silent_connections(shim.addr(), 150).await;
    let mut client = shim.client().await;
    let top = client.request(json!({"kind": "top"})).await;
    assert_eq!(top["kind"], "top");
    for stream in &mut silent {
        closed_by_the_shim(stream).await;
    }
    let log = shim.log();
    assert!(
        log.contains("Too many open files"),
        "no EMFILE in the log:\n{log}"
    );
    assert!(metric(shim.addr(), "violet_accept_errors_total").await >= 1.0);
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_connections_past_their_bound_wait_in_the_backlog() {
    let redis = RedisServer::start();
    // The same 64 files, and a pending bound well within them.
    let shim = LimitedShim::start(
        &redis,
        64,
        &[
            "--handshake-timeout-ms",
            "500",
            "--max-pending-connections",
            "8",
        ],
    )
    .await;
    // More than the shim has files for: bounded, it never runs out of them.
    let mut silent = silent_connections(shim.addr(), 100).await;
    let mut client = shim.client().await;
    let top = client.request(json!({"kind": "top"})).await;
    assert_eq!(top["kind"], "top");
    for stream in &mut silent {
        closed_by_the_shim(stream).await;
    }
    let log = shim.log();
    assert!(!log.contains("accept failed"), "accepts failed:\n{log}");
    assert_eq!(metric(shim.addr(), "violet_accept_errors_total").await, 0.0);
    client.close().await;
}
