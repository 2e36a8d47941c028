//! On a real three-node Redis Cluster, `redis-cli -c` routes every command to
//! the node that owns its namespace, each namespace's keys and events channel
//! live in one slot, and events go out with sharded pub/sub: an `SSUBSCRIBE`
//! on the node that owns the namespace receives them, and a classic
//! `SUBSCRIBE` (on that node or another) does not, since they are no longer
//! broadcast to every node.

use serde_json::json;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};
use support::events::Events;
use support::{cli_binary, free_port, RedisServer};

fn node() -> RedisServer {
    let bus = free_port().to_string();
    RedisServer::start_with(&["--cluster-enabled", "yes", "--cluster-port", &bus])
}

/// Runs `redis-cli -c` (or `VIOLET_REDIS_CLI`) against `port`; returns its
/// output, one reply per line.
fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new(cli_binary())
        .args(["-c", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    assert!(output.status.success(), "redis-cli {args:?}: {output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

fn form_cluster(nodes: &[RedisServer]) {
    let addresses: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    let status = Command::new(cli_binary())
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-yes"])
        .output()
        .expect("redis-cli --cluster create");
    assert!(status.status.success(), "{status:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in nodes {
        while !cli(node.port(), &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            sleep(Duration::from_millis(50));
        }
    }
}

/// The node that owns `key`'s slot.
fn owner<'a>(nodes: &'a [RedisServer], key: &str) -> &'a RedisServer {
    let slot: u16 = cli(nodes[0].port(), &["CLUSTER", "KEYSLOT", key])
        .parse()
        .unwrap();
    nodes
        .iter()
        .find(|n| {
            let nodes = cli(n.port(), &["CLUSTER", "NODES"]);
            nodes.lines().any(|l| l.contains("myself") && owns(l, slot))
        })
        .expect("some node owns the slot")
}

fn owns(nodes_line: &str, slot: u16) -> bool {
    nodes_line
        .split_whitespace()
        .skip(8)
        .any(|range| match range.split_once('-') {
            Some((a, b)) => (a.parse().unwrap()..=b.parse().unwrap()).contains(&slot),
            None => range.parse::<u16>().ok() == Some(slot),
        })
}

#[test]
fn namespaces_spread_over_a_cluster_and_commands_follow_them() {
    let nodes: Vec<RedisServer> = (0..3).map(|_| node()).collect();
    form_cluster(&nodes);
    let namespaces = [
        "watch-party",
        "eu-west",
        "us-east",
        "asia",
        "games",
        "music",
    ];
    let homes: Vec<u16> = namespaces
        .iter()
        .map(|ns| owner(&nodes, ns).port())
        .collect();
    let distinct: std::collections::BTreeSet<_> = homes.iter().collect();
    assert!(
        distinct.len() > 1,
        "these namespaces live on more than one node"
    );

    let entry = nodes[0].port();
    let far = namespaces
        .iter()
        .position(|ns| owner(&nodes, ns).port() != entry)
        .unwrap();
    let far_ns = namespaces[far];
    let far_home = owner(&nodes, far_ns);
    let channel = format!("violet:{{{far_ns}}}:events");
    assert_eq!(
        cli(entry, &["CLUSTER", "KEYSLOT", &channel]),
        cli(entry, &["CLUSTER", "KEYSLOT", far_ns]),
        "the events channel hashes to its namespace's slot"
    );
    let mut sharded = Events::ssubscribe(far_home, far_ns);
    let mut classic_elsewhere = Events::subscribe(&nodes[0], far_ns);
    let mut classic_home = Events::subscribe(far_home, far_ns);

    for (ns, home) in namespaces.iter().zip(&homes) {
        assert_eq!(
            cli(entry, &["VIOLET.CREATE", ns, "s1", "lobby", "title", "Hi"]),
            "lobby"
        );
        assert_eq!(cli(entry, &["VIOLET.JOIN", ns, "s2", "lobby"]), "\n2");
        assert_eq!(cli(entry, &["VIOLET.WHERE", ns, "s2"]), "lobby");
        assert_eq!(cli(entry, &["VIOLET.CHECK", ns]), "OK");
        let keys = cli(*home, &["KEYS", &format!("violet:{{{ns}}}:*")]);
        // rooms, room:lobby, room:lobby:members, nodes, node:s1, node:s2
        assert_eq!(
            keys.lines().count(),
            6,
            "{ns}: every key on its home node: {keys}"
        );
        let slots: std::collections::BTreeSet<String> = keys
            .lines()
            .chain([format!("violet:{{{ns}}}:events").as_str()])
            .map(|k| cli(entry, &["CLUSTER", "KEYSLOT", k]))
            .collect();
        assert_eq!(
            slots.len(),
            1,
            "{ns}: one slot for the whole namespace and its events channel"
        );
    }
    for socket in ["s2", "s1"] {
        assert_eq!(cli(entry, &["VIOLET.LEAVE", far_ns, socket]), "lobby");
    }

    let published = [
        json!({"event": "created", "room": "lobby", "socket": "s1", "viewers": 1, "visibility": "public"}),
        json!({"event": "joined", "room": "lobby", "socket": "s2", "viewers": 2}),
        json!({"event": "left", "room": "lobby", "socket": "s2", "viewers": 1, "reason": "left"}),
        json!({"event": "left", "room": "lobby", "socket": "s1", "viewers": 0, "reason": "left"}),
        json!({"event": "destroyed", "room": "lobby"}),
    ];
    for expected in &published {
        assert_eq!(
            &sharded.next_event(),
            expected,
            "SSUBSCRIBE on the namespace's node receives its events"
        );
    }
    // Every event has reached the sharded subscriber; a classic publish
    // would have reached the classic ones by now too, give or take the
    // cluster bus, so a short wait is enough to see that none comes.
    let wait = Duration::from_millis(500);
    assert_eq!(
        classic_elsewhere.next_event_within(wait),
        None,
        "events are not broadcast to classic subscribers on other nodes"
    );
    assert_eq!(
        classic_home.next_event_within(wait),
        None,
        "nor published classically on the namespace's own node"
    );
    assert_eq!(
        sharded.drain(&mut far_home.connection()),
        Vec::<serde_json::Value>::new(),
        "nothing else was published in {far_ns}"
    );
}
