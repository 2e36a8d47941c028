//! Leases: a node that stops renewing its lease loses its sockets, taken out
//! of their rooms by the module's own timer, with no other program alive.
//! Against a real redis-server; the reaper's figures (time to reap, longest
//! run) are measured by `scripts/bench-reaper`, not asserted here.

use redis::Connection;
use serde_json::{json, Value};
use std::thread::sleep;
use std::time::{Duration, Instant};
use support::events::Events;
use support::RedisServer;

const NS: &str = "wp";
/// How long the tests wait for the reaper before failing: far past any
/// lease they use, so that a slow machine does not fail them.
const PATIENCE: Duration = Duration::from_secs(20);

fn ok<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

fn check(con: &mut Connection) {
    let checked: String = ok(con, &["VIOLET.CHECK", NS, "FULL"]);
    assert_eq!(checked, "OK");
}

/// Waits until `node` has no socket left; returns how long that took.
fn wait_reaped(con: &mut Connection, node: &str) -> Duration {
    let started = Instant::now();
    let key = format!("violet:{{{NS}}}:node:{node}");
    loop {
        let left: u64 = ok(con, &["HLEN", &key]);
        if left == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "node {node} still has {left} socket(s)"
        );
        sleep(Duration::from_millis(10));
    }
}

fn info_field(con: &mut Connection, field: &str) -> u64 {
    let info: String = ok(con, &["INFO", "violet"]);
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("violet_reaper_{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn lease_creates_renews_and_validates() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let created: String = ok(&mut con, &["VIOLET.LEASE", NS, "n1", "60000"]);
    assert_eq!(created, "created");
    let expiry: f64 = ok(&mut con, &["ZSCORE", "violet:{wp}:nodes", "n1"]);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    assert!(
        (now_ms + 50_000.0..now_ms + 70_000.0).contains(&expiry),
        "the index holds the expiry in Unix ms: {expiry} vs now {now_ms}"
    );
    let renewed: String = ok(&mut con, &["VIOLET.LEASE", NS, "n1"]);
    assert_eq!(renewed, "renewed", "without TTL-MS, the default lease");
    for bad in [
        vec!["VIOLET.LEASE", NS, "a:b"],
        vec!["VIOLET.LEASE", NS, "n1", "99"],
        vec!["VIOLET.LEASE", NS, "n1", "86400001"],
        vec!["VIOLET.LEASE", NS, "n1", "soon"],
    ] {
        let err = redis::cmd(bad[0])
            .arg(&bad[1..])
            .query::<redis::Value>(&mut con)
            .unwrap_err();
        assert_eq!(err.code(), Some("ERR"), "{bad:?}: {err}");
    }
    let released: i64 = ok(&mut con, &["VIOLET.RELEASE", NS, "n1"]);
    assert_eq!(released, 0);
    let exists: i64 = ok(&mut con, &["EXISTS", "violet:{wp}:nodes"]);
    assert_eq!(exists, 0, "a released node with no sockets leaves nothing");
}

#[test]
fn configs_are_set_at_load_and_at_run_time() {
    let server = RedisServer::start_with_module_args(
        &[
            "lease-ms",
            "5000",
            "reap-interval-ms",
            "10",
            "reap-batch",
            "64",
        ],
        &[],
    );
    let mut con = server.connection();
    let lease: Vec<String> = ok(&mut con, &["CONFIG", "GET", "violet.lease-ms"]);
    assert_eq!(lease, ["violet.lease-ms", "5000"]);
    let batch: Vec<String> = ok(&mut con, &["CONFIG", "GET", "violet.reap-batch"]);
    assert_eq!(batch, ["violet.reap-batch", "64"]);
    let _: () = ok(&mut con, &["CONFIG", "SET", "violet.lease-ms", "700"]);
    let lease: Vec<String> = ok(&mut con, &["CONFIG", "GET", "violet.lease-ms"]);
    assert_eq!(lease, ["violet.lease-ms", "700"]);
    let refused = redis::cmd("CONFIG")
        .arg(&["SET", "violet.lease-ms", "10"][..])
        .query::<()>(&mut con);
    assert!(refused.is_err(), "below the shortest lease");

    // The default lease now runs 700 ms: a node that never renews is reaped.
    let _: String = ok(&mut con, &["VIOLET.LEASE", NS, "n"]);
    let _: String = ok(&mut con, &["VIOLET.CREATE", NS, "n:1", "r1"]);
    wait_reaped(&mut con, "n");
    let exists: i64 = ok(&mut con, &["EXISTS", "violet:{wp}:room:r1"]);
    assert_eq!(exists, 0);
}

#[test]
fn an_expired_node_is_reaped_by_the_timer_alone() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let mut events = Events::subscribe(&server, NS);
    let _: String = ok(&mut con, &["VIOLET.LEASE", NS, "dead", "400"]);
    let _: String = ok(&mut con, &["VIOLET.LEASE", NS, "live", "600000"]);
    // A room only the dead node's sockets are in, and one it shares with a
    // live node's socket and a socket made by hand (no lease: never expires).
    let _: String = ok(&mut con, &["VIOLET.CREATE", NS, "dead:0", "alone"]);
    let _: String = ok(&mut con, &["VIOLET.CREATE", NS, "live:0", "shared"]);
    let _: redis::Value = ok(&mut con, &["VIOLET.JOIN", NS, "by-hand", "shared"]);
    for i in 1..20 {
        let room = if i % 2 == 0 { "alone" } else { "shared" };
        let _: redis::Value = ok(&mut con, &["VIOLET.JOIN", NS, &format!("dead:{i}"), room]);
    }
    events.drain(&mut con);

    let took = wait_reaped(&mut con, "dead");
    eprintln!("20 sockets of a 400 ms lease reaped {took:?} after they were all joined");
    let exists: i64 = ok(&mut con, &["EXISTS", "violet:{wp}:room:alone"]);
    assert_eq!(exists, 0, "the room only the dead node held is destroyed");
    let viewers: u64 = ok(&mut con, &["SCARD", "violet:{wp}:room:shared:members"]);
    assert_eq!(viewers, 2);
    let rank: u64 = ok(&mut con, &["ZSCORE", "violet:{wp}:rooms", "shared"]);
    assert_eq!(rank, 2);
    let node: Option<f64> = ok(&mut con, &["ZSCORE", "violet:{wp}:nodes", "dead"]);
    assert_eq!(node, None, "the dead node leaves the index");
    check(&mut con);

    let seen = events.drain(&mut con);
    let left: Vec<&Value> = seen.iter().filter(|e| e["event"] == "left").collect();
    assert_eq!(left.len(), 20, "{seen:?}");
    assert!(left.iter().all(|e| e["reason"] == "expired"), "{left:?}");
    assert!(seen.contains(&json!({"event": "destroyed", "room": "alone"})));
    assert!(info_field(&mut con, "reaped") >= 20);
}

#[test]
fn release_takes_the_sockets_out_at_once() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let mut events = Events::subscribe(&server, NS);
    let _: String = ok(&mut con, &["VIOLET.LEASE", NS, "n", "600000"]);
    for i in 0..5 {
        let _: String = ok(
            &mut con,
            &["VIOLET.CREATE", NS, &format!("n:{i}"), &format!("r{i}")],
        );
    }
    events.drain(&mut con);
    let released: i64 = ok(&mut con, &["VIOLET.RELEASE", NS, "n"]);
    assert_eq!(released, 5);
    let keys: Vec<String> = ok(&mut con, &["KEYS", "*"]);
    assert!(keys.is_empty(), "{keys:?}");
    let seen = events.drain(&mut con);
    assert_eq!(seen.iter().filter(|e| e["reason"] == "released").count(), 5);
    let again: String = ok(&mut con, &["VIOLET.LEASE", NS, "n", "600000"]);
    assert_eq!(again, "created");
}

#[test]
fn a_lease_asked_for_while_its_sockets_are_reaped_changes_nothing() {
    // One socket per run, a run every second: reaping takes a while.
    let server =
        RedisServer::start_with_module_args(&["reap-interval-ms", "1000", "reap-batch", "1"], &[]);
    let mut con = server.connection();
    let _: String = ok(&mut con, &["VIOLET.LEASE", NS, "n", "100"]);
    for i in 0..5 {
        let _: String = ok(
            &mut con,
            &["VIOLET.CREATE", NS, &format!("n:{i}"), &format!("r{i}")],
        );
    }
    let started = Instant::now();
    let expired = loop {
        let reply: String = ok(&mut con, &["VIOLET.LEASE", NS, "n", "100"]);
        if reply == "expired" {
            break reply;
        }
        assert_eq!(reply, "renewed");
        assert!(started.elapsed() < PATIENCE);
        // Stop renewing: the lease runs out.
        sleep(Duration::from_millis(300));
    };
    assert_eq!(expired, "expired");
    wait_reaped(&mut con, "n");
    let created: String = ok(&mut con, &["VIOLET.LEASE", NS, "n", "100"]);
    assert_eq!(created, "created", "the node learns its sockets are gone");
    let busy_runs = info_field(&mut con, "busy_runs");
    assert!(busy_runs >= 5, "one socket per run: {busy_runs} runs");
}

#[test]
fn reaping_replicates_and_a_promoted_replica_reaps() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let mut p = primary.connection();
    let mut r = replica.connection();
    wait_for_link(&mut p);

    // Reaped on the primary: the replica follows and ends up identical.
    let _: String = ok(&mut p, &["VIOLET.LEASE", NS, "a", "300"]);
    for i in 0..30 {
        enter(&mut p, &format!("a:{i}"), &format!("r{}", i % 7));
    }
    wait_reaped(&mut p, "a");
    let acked: i64 = ok(&mut p, &["WAIT", "1", "10000"]);
    assert_eq!(acked, 1);
    assert_eq!(digest(&mut r), digest(&mut p));
    check(&mut r);

    // A lease the replica only knows from replication: when the primary
    // dies and the replica takes over, the replica finds and reaps it.
    let _: String = ok(&mut p, &["VIOLET.LEASE", NS, "b", "1500"]);
    for i in 0..10 {
        enter(&mut p, &format!("b:{i}"), "lobby");
    }
    let acked: i64 = ok(&mut p, &["WAIT", "1", "10000"]);
    assert_eq!(acked, 1);
    drop(p);
    drop(primary);
    let _: () = ok(&mut r, &["REPLICAOF", "NO", "ONE"]);
    wait_reaped(&mut r, "b");
    let keys: Vec<String> = ok(&mut r, &["KEYS", "*"]);
    assert!(keys.is_empty(), "{keys:?}");
}

/// Joins `room`, creating it if it does not exist.
fn enter(con: &mut Connection, socket: &str, room: &str) {
    let joined = redis::cmd("VIOLET.JOIN")
        .arg(&[NS, socket, room][..])
        .query::<redis::Value>(con);
    if let Err(error) = joined {
        assert_eq!(error.code(), Some("NOROOM"), "{error}");
        let _: String = ok(con, &["VIOLET.CREATE", NS, socket, room]);
    }
}

fn digest(con: &mut Connection) -> String {
    ok(con, &["DEBUG", "DIGEST"])
}

fn wait_for_link(primary: &mut Connection) {
    let started = Instant::now();
    loop {
        let info: String = ok(primary, &["INFO", "replication"]);
        if info.contains("slave0:") && info.contains("state=online") {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the replica never came online"
        );
        sleep(Duration::from_millis(20));
    }
}
