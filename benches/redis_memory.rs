//! What a socket costs Redis: 1,000,000 sockets of 10 shims (nodes) in
//! public rooms of 10, made with `VIOLET.CREATE` and `VIOLET.JOIN`; the growth
//! of `used_memory` divided by the sockets, and `MEMORY USAGE` of one key of
//! each kind, to say where the bytes are.
//!
//! `cargo bench --bench redis_memory` prints them; nothing is asserted.
//! `VIOLET_SOCKETS` sets another number of sockets.

use support::RedisServer;

const NS: &str = "bench";
const ROOM_SIZE: usize = 10;
const NODES: usize = 10;
const PIPELINE: usize = 1_000;

fn used_memory(con: &mut redis::Connection) -> u64 {
    support::info_field(con, "memory", "used_memory:")
        .parse()
        .expect("used_memory")
}

fn memory_usage(con: &mut redis::Connection, key: &str) -> u64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query(con)
        .unwrap()
}

fn encoding(con: &mut redis::Connection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(con)
        .unwrap()
}

fn main() {
    let sockets: usize = std::env::var("VIOLET_SOCKETS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let server = RedisServer::start();
    let mut con = server.connection();
    let version: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    // Valkey names itself and reports a Redis version it is compatible with.
    let field = |name: &str| {
        version
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let version = field("valkey_version:").map_or_else(
        || format!("redis {}", field("redis_version:").unwrap_or_default()),
        |v| format!("valkey {v}"),
    );
    let before = used_memory(&mut con);
    for start in (0..sockets).step_by(PIPELINE) {
        let mut pipe = redis::pipe();
        for i in start..(start + PIPELINE).min(sockets) {
            let socket = format!("shim{}:{i}", i % NODES);
            let room = format!("room{}", i / ROOM_SIZE);
            let command = if i % ROOM_SIZE == 0 {
                "VIOLET.CREATE"
            } else {
                "VIOLET.JOIN"
            };
            pipe.cmd(command).arg(&[NS, &socket, &room][..]).ignore();
        }
        let () = pipe.query(&mut con).unwrap();
    }
    let after = used_memory(&mut con);
    let per_socket = (after - before) as f64 / sockets as f64;
    println!(
        "{sockets} sockets of {NODES} nodes in public rooms of {ROOM_SIZE} ({version}): \
         used_memory grew {:.1} MiB, {per_socket:.0} bytes per socket",
        (after - before) as f64 / (1 << 20) as f64
    );
    let keys = [
        (
            "the room's members (SET)",
            format!("violet:{{{NS}}}:room:room0:members"),
        ),
        (
            "the room's details (HASH)",
            format!("violet:{{{NS}}}:room:room0"),
        ),
        (
            "a node's sockets (HASH)",
            format!("violet:{{{NS}}}:node:shim0"),
        ),
        ("the public rooms (ZSET)", format!("violet:{{{NS}}}:rooms")),
    ];
    for (what, key) in keys {
        let bytes = memory_usage(&mut con, &key);
        let per = match what {
            w if w.starts_with("the room's") => bytes as f64 / ROOM_SIZE as f64,
            w if w.starts_with("a node's") => bytes as f64 * NODES as f64 / sockets as f64,
            _ => bytes as f64 / sockets as f64,
        };
        println!(
            "  {what}: {} ({bytes} bytes), {per:.0} bytes per socket",
            encoding(&mut con, &key)
        );
    }
}
