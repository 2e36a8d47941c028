//! On a real three-node Redis Cluster, `redis-cli -c` routes every command to
//! the node that owns its namespace, each namespace's keys and events channel
//! live in one slot, and events go out with sharded pub/sub: an `SSUBSCRIBE`
//! on the node that owns the namespace receives them, and a classic
//! `SUBSCRIBE` (on that node or another) does not, since they are no longer
//! broadcast to every node.

use serde_json::json;
use std::time::Duration;
use support::cluster::Cluster;
use support::events::Events;

#[test]
fn namespaces_spread_over_a_cluster_and_commands_follow_them() {
    let cluster = Cluster::start(3, 0);
    let nodes = &cluster.nodes;
    let cli = |port: u16, args: &[&str]| cluster.cli(port, args);
    let owner = |ns: &str| &nodes[cluster.primary_of(ns)];
    let namespaces = [
        "watch-party",
        "eu-west",
        "us-east",
        "asia",
        "games",
        "music",
    ];
    let homes: Vec<u16> = namespaces.iter().map(|ns| owner(ns).port()).collect();
    let distinct: std::collections::BTreeSet<_> = homes.iter().collect();
    assert!(
        distinct.len() > 1,
        "these namespaces live on more than one node"
    );

    let entry = nodes[0].port();
    let far = namespaces
        .iter()
        .position(|ns| owner(ns).port() != entry)
        .unwrap();
    let far_ns = namespaces[far];
    let far_home = owner(far_ns);
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
