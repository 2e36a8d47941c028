//! A half-evicted room: with an eviction policy that may take any key
//! (`allkeys-*`, which README advises against), Redis can drop one key of a
//! room and keep the others. The commands must never crash on that, never
//! make it worse, and leaving the room still cleans up every key it had.

use redis::{Connection, Value};
use support::RedisServer;

const NS: &str = "wp";

fn call(con: &mut Connection, args: &[&str]) -> redis::RedisResult<Value> {
    redis::cmd(args[0]).arg(&args[1..]).query(con)
}

fn keys(con: &mut Connection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("violet:*").query(con).unwrap();
    keys.sort();
    keys
}

/// Room `r` with sockets `a:1` and `a:2` (node `a`), then `damage` applied.
fn damaged(con: &mut Connection, damage: &[&str]) {
    let _: Value = redis::cmd("FLUSHALL").query(con).unwrap();
    call(con, &["VIOLET.CREATE", NS, "a:1", "r", "title", "t"]).unwrap();
    call(con, &["VIOLET.JOIN", NS, "a:2", "r"]).unwrap();
    call(con, damage).unwrap();
}

#[test]
fn commands_cope_with_each_key_of_a_room_evicted() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let damages: [&[&str]; 5] = [
        &["DEL", "violet:{wp}:room:r"],
        &["DEL", "violet:{wp}:room:r:members"],
        &["ZREM", "violet:{wp}:rooms", "r"],
        &["DEL", "violet:{wp}:node:a"],
        &["DEL", "violet:{wp}:nodes"],
    ];
    for damage in damages {
        // Every command runs, and answers (an error is an answer).
        damaged(&mut con, damage);
        for args in [
            &["VIOLET.ROOM", NS, "r"][..],
            &["VIOLET.TOP", NS],
            &["VIOLET.MEMBERS", NS, "r"],
            &["VIOLET.WHERE", NS, "a:1"],
            &["VIOLET.SAY", NS, "a:1", "hi"],
            &["VIOLET.UPDATE", NS, "r", "title", "u"],
            &["VIOLET.JOIN", NS, "b:1", "r"],
            &["VIOLET.CHECK", NS],
            &["VIOLET.CHECK", NS, "FULL"],
        ] {
            let reply = call(&mut con, args);
            if let Err(error) = &reply {
                assert!(
                    ["NOROOM", "NOTINROOM", "CORRUPT"].contains(&error.code().unwrap_or("")),
                    "{damage:?} then {args:?}: {error}"
                );
            }
        }
        // Everyone leaves: nothing of the room is left behind, except where
        // the damage lost which room the sockets were in (their node's hash):
        // then they stay members, and CHECK names them.
        for socket in ["a:1", "a:2", "b:1"] {
            call(&mut con, &["VIOLET.LEAVE", NS, socket]).unwrap();
        }
        let left = keys(&mut con);
        if damage[1] == "violet:{wp}:node:a" {
            let err = call(&mut con, &["VIOLET.CHECK", NS]).unwrap_err();
            assert!(
                err.to_string()
                    .contains("\"a:1\" is a member of room \"r\""),
                "{err}"
            );
        } else {
            assert!(
                left.iter().all(|k| !k.contains(":room:r")),
                "{damage:?}: {left:?}"
            );
        }
        // The server is alive and the module still works.
        call(&mut con, &["VIOLET.CREATE", NS, "c:1", "fresh"]).unwrap();
        let check = call(&mut con, &["VIOLET.CHECK", NS]);
        assert!(check.is_ok() || check.unwrap_err().code() == Some("CORRUPT"));
    }
}

#[test]
fn the_log_warns_of_an_unsafe_eviction_policy() {
    let server = RedisServer::start_with(&[
        "--maxmemory-policy",
        "allkeys-lru",
        "--logfile",
        "redis.log",
    ]);
    let log = std::fs::read_to_string(server.dir().join("redis.log")).unwrap();
    assert!(
        log.contains("maxmemory-policy allkeys-lru"),
        "no warning in the log:\n{log}"
    );
    let safe =
        RedisServer::start_with(&["--maxmemory-policy", "noeviction", "--logfile", "redis.log"]);
    let log = std::fs::read_to_string(safe.dir().join("redis.log")).unwrap();
    assert!(!log.contains("maxmemory-policy"), "{log}");
}

/// Out of memory under `noeviction`, the commands that add refuse with `OOM`
/// and change nothing, and leaving still works: a full Redis still lets
/// rooms empty and free their memory.
#[test]
fn out_of_memory_refuses_what_adds_and_still_lets_sockets_leave() {
    let server = RedisServer::start();
    let mut con = server.connection();
    call(&mut con, &["VIOLET.CREATE", NS, "a:1", "r", "title", "t"]).unwrap();
    call(&mut con, &["VIOLET.JOIN", NS, "a:2", "r"]).unwrap();
    let used: String = redis::cmd("INFO").arg("memory").query(&mut con).unwrap();
    let used: u64 = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    // A limit below what is in use: every write that may add is refused.
    call(
        &mut con,
        &["CONFIG", "SET", "maxmemory-policy", "noeviction"],
    )
    .unwrap();
    call(
        &mut con,
        &["CONFIG", "SET", "maxmemory", &(used / 2).to_string()],
    )
    .unwrap();
    let before = keys(&mut con);
    let digest: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut con).unwrap();
    for refused in [
        &["VIOLET.CREATE", NS, "a:3", "s"][..],
        &["VIOLET.JOIN", NS, "a:3", "r"],
        &["VIOLET.UPDATE", NS, "a:1", "title", "u"],
    ] {
        let error = call(&mut con, refused).expect_err("refused when out of memory");
        assert_eq!(error.code(), Some("OOM"), "{refused:?}: {error}");
    }
    assert_eq!(keys(&mut con), before);
    let after: String = redis::cmd("DEBUG").arg("DIGEST").query(&mut con).unwrap();
    assert_eq!(after, digest, "a refused command changed nothing");

    // Leaving works, down to the room's end.
    call(&mut con, &["VIOLET.LEAVE", NS, "a:2"]).unwrap();
    call(&mut con, &["VIOLET.LEAVE", NS, "a:1"]).unwrap();
    let left: Vec<String> = keys(&mut con)
        .into_iter()
        .filter(|k| k.contains(":room:"))
        .collect();
    assert!(left.is_empty(), "the room is gone: {left:?}");
    call(&mut con, &["CONFIG", "SET", "maxmemory", "0"]).unwrap();
    let check = call(&mut con, &["VIOLET.CHECK", NS]).unwrap();
    assert_eq!(check, Value::Okay, "{check:?}");
}
