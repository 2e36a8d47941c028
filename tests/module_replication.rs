//! Writes replicate as plain effects: a replica fed random traffic (rooms
//! created with `*` included) ends up byte-identical to its master.

use support::keyspace::snapshot;
use support::workload::Workload;
use support::RedisServer;

const NS: &str = "replicated";

fn digest(con: &mut redis::Connection) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query(con)
        .expect("DEBUG DIGEST")
}

#[test]
fn a_replica_ends_up_identical_to_its_master() {
    let master = RedisServer::start();
    let port = master.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let mut m = master.connection();
    let mut r = replica.connection();
    let replicas: i64 = wait_for_link(&mut m);
    assert_eq!(replicas, 1);

    let mut workload = Workload::new(99, NS, 30, 20);
    let mut fresh_rooms = 0;
    for _ in 0..3000 {
        let args = workload.next_command();
        let reply: redis::RedisResult<redis::Value> =
            redis::cmd(&args[0]).arg(&args[1..]).query(&mut m);
        fresh_rooms += usize::from(args[0] == "VIOLET.CREATE" && args[3] == "*" && reply.is_ok());
    }
    assert!(
        fresh_rooms > 10,
        "the traffic created rooms with random ids"
    );

    let acked: i64 = redis::cmd("WAIT").arg(1).arg(10_000).query(&mut m).unwrap();
    assert_eq!(acked, 1, "the replica acknowledged every write");
    assert_eq!(snapshot(&mut r, "*"), snapshot(&mut m, "*"));
    assert_eq!(digest(&mut r), digest(&mut m));
    let checked: String = redis::cmd("VIOLET.CHECK").arg(NS).query(&mut r).unwrap();
    assert_eq!(
        checked, "OK",
        "the module's read commands work on a replica"
    );

    let refused = redis::cmd("VIOLET.JOIN")
        .arg(NS)
        .arg("s1")
        .arg("room:1")
        .query::<redis::Value>(&mut r);
    assert_eq!(refused.unwrap_err().code(), Some("READONLY"));
}

/// Waits until the replica has connected; returns the master's replica count.
fn wait_for_link(master: &mut redis::Connection) -> i64 {
    for _ in 0..500 {
        let info: String = redis::cmd("INFO").arg("replication").query(master).unwrap();
        if info.contains("slave0:") && info.contains("state=online") {
            return 1;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the replica never came online");
}
