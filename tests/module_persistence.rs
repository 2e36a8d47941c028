//! Rooms survive restarts like any Redis data: through an RDB snapshot, through
//! the AOF after a crash with nothing acknowledged lost, and even into a Redis
//! that does not load the module.

use std::collections::BTreeMap;
use support::keyspace::{snapshot, Contents};
use support::workload::Workload;
use support::RedisServer;

const NS: &str = "durable";

fn traffic(con: &mut redis::Connection, seed: u64) {
    let mut workload = Workload::new(seed, NS, 30, 15);
    for _ in 0..2000 {
        let args = workload.next_command();
        let _: redis::RedisResult<redis::Value> = redis::cmd(&args[0]).arg(&args[1..]).query(con);
    }
}

fn keys(con: &mut redis::Connection) -> BTreeMap<String, Contents> {
    let keys = snapshot(con, "*");
    assert!(keys.len() > 5, "the traffic left rooms behind");
    keys
}

fn assert_consistent(con: &mut redis::Connection) {
    let checked: String = redis::cmd("VIOLET.CHECK").arg(NS).query(con).unwrap();
    assert_eq!(checked, "OK");
}

#[test]
fn rooms_survive_save_and_restart() {
    let mut server = RedisServer::start();
    let mut con = server.connection();
    traffic(&mut con, 1);
    let before = keys(&mut con);
    let _: () = redis::cmd("SAVE").query(&mut con).unwrap();

    server.restart();
    let mut con = server.connection();
    assert_eq!(snapshot(&mut con, "*"), before);
    assert_consistent(&mut con);
    traffic(&mut con, 2);
    assert_consistent(&mut con);
}

#[test]
fn an_fsynced_aof_loses_nothing_acknowledged_in_a_crash() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let mut con = server.connection();
    traffic(&mut con, 3);
    let before = keys(&mut con);

    server.kill();
    server.restart_after_kill();
    let mut con = server.connection();
    assert_eq!(snapshot(&mut con, "*"), before);
    assert_consistent(&mut con);
}

#[test]
fn the_aof_holds_plain_commands_that_load_without_the_module() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes"]);
    let mut con = server.connection();
    traffic(&mut con, 4);
    let before = keys(&mut con);
    let dir = server.dir().to_path_buf();
    server.kill();

    let dir = dir.to_str().unwrap();
    let plain = RedisServer::start_without_module(&["--dir", dir, "--appendonly", "yes"]);
    let mut con = plain.connection();
    assert_eq!(snapshot(&mut con, "*"), before);
    // Valkey always lists a built-in `lua` module: what matters is Violet's.
    let modules: String = redis::cmd("INFO").arg("modules").query(&mut con).unwrap();
    assert!(
        !modules.contains("name=violet,"),
        "this server has no Violet module loaded: {modules}"
    );
}
