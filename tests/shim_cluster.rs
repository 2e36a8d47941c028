//! The shim on a real Redis Cluster: several namespaces spread over the
//! shards, shims that share them, events on each namespace's own shard, and
//! acknowledged changes that survive the failover of their primary.

mod shim_common;

use serde_json::{json, Value};
use shim_common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use support::cluster::Cluster;
use violet_shim::redis::Durability;

const NAMESPACES: [&str; 8] = [
    "watch-party",
    "eu-west",
    "us-east",
    "asia",
    "games",
    "music",
    "films",
    "sports",
];

/// Settings for a shim on `cluster` serving `namespaces`.
fn cluster_config(cluster: &Cluster, namespaces: &[&str]) -> violet_shim::Config {
    violet_shim::Config {
        cluster_seeds: cluster.seeds(),
        namespaces: namespaces.iter().map(|ns| (*ns).to_owned()).collect(),
        redis_timeout: Duration::from_millis(1500),
        ..violet_shim::Config::default()
    }
}

/// Runs blocking cluster work without stalling the runtime's other tasks.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shims_serve_eight_namespaces_spread_over_the_shards() {
    let cluster = blocking(|| Cluster::start(3, 0));
    let homes: BTreeSet<usize> = NAMESPACES.iter().map(|ns| cluster.primary_of(ns)).collect();
    assert!(homes.len() >= 2, "the namespaces live on {homes:?}");

    let one = Shim::start(cluster_config(&cluster, &NAMESPACES)).await;
    let two = Shim::start(cluster_config(&cluster, &NAMESPACES)).await;
    for ns in NAMESPACES {
        // An owner on one shim, a guest on the other: every push crosses
        // from one shim to the other through the namespace's shard.
        let mut owner = one.client_in(ns).await;
        let room = owner.create_room().await;
        let mut guest = two.client_in(ns).await;
        let joined = guest
            .request(json!({"kind": "room-joined", "room_id": room}))
            .await;
        assert_eq!(joined["kind"], "room-joined", "{ns}: {joined}");
        assert_eq!(joined["viewers"], 2, "{ns}: {joined}");
        owner
            .next_matching(|f| {
                f["kind"] == "member-joined" && f["socket_id"] == guest.socket_id.as_str()
            })
            .await;
        let said = guest
            .request(json!({"kind": "room-message", "data": format!("hello {ns}")}))
            .await;
        assert_ne!(said["kind"], "error", "{ns}: {said}");
        let message = owner.next_matching(|f| f["kind"] == "message").await;
        assert_eq!(message["data"], format!("hello {ns}"), "{ns}: {message}");
        // The room is in this namespace only.
        let where_guest = cluster.run(&["VIOLET.WHERE", ns, &guest.socket_id]);
        assert_eq!(where_guest, room, "{ns}");
        let left = guest.request(json!({"kind": "room-left"})).await;
        assert_eq!(left["kind"], "room-left", "{ns}: {left}");
        owner
            .next_matching(|f| {
                f["kind"] == "member-left" && f["socket_id"] == guest.socket_id.as_str()
            })
            .await;
        guest.close().await;
        owner.close().await;
    }
    // A namespace the shims do not serve is refused at the upgrade.
    let refused = tokio_tungstenite::connect_async(one.ws_url_for("elsewhere")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404);
        }
        other => panic!("an unknown namespace was not refused: {other:?}"),
    }
    one.stop().await;
    two.stop().await;
    for ns in NAMESPACES {
        assert_eq!(
            blocking(|| cluster.run(&["VIOLET.CHECK", ns])),
            "OK",
            "{ns}"
        );
    }
}

/// Sockets that joined a room, each once: the acknowledged ones stay
/// connected, so each must stay in its room.
struct Joiner {
    /// Each acknowledged socket, its room, and when it was acknowledged.
    members: Vec<(Client, String, Instant)>,
    /// `UNAVAILABLE` replies, and when they came.
    unavailable: Vec<Instant>,
}

/// Until `stop`: a new client joins one of `rooms`, trying again while it
/// gets `UNAVAILABLE`, and stays.
async fn keep_joining(
    url: String,
    rooms: Vec<String>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Joiner {
    let mut joiner = Joiner {
        members: Vec::new(),
        unavailable: Vec::new(),
    };
    let mut i = 0;
    'clients: while !*stop.borrow() {
        let mut client = Client::connect(&url).await;
        let room = rooms[i % rooms.len()].clone();
        i += 1;
        loop {
            let reply = client
                .request(json!({"kind": "room-joined", "room_id": room}))
                .await;
            if reply["kind"] == "room-joined" {
                joiner.members.push((client, room, Instant::now()));
                break;
            }
            assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
            joiner.unavailable.push(Instant::now());
            if *stop.borrow() {
                client.close().await;
                break 'clients;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    joiner
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_joins_survive_the_failover_of_their_primary() {
    let mut cluster = blocking(|| Cluster::start(3, 1));
    let config = violet_shim::Config {
        durability: Some(Durability {
            replicas: 1,
            timeout: Duration::from_millis(1000),
        }),
        // Long enough that the shim's lease outlives the failover.
        lease: Duration::from_secs(30),
        ..cluster_config(&cluster, &[NS])
    };
    // Joiners on one shim; the rooms' owners, and a watcher, on another.
    let shim = Shim::start(config.clone()).await;
    let other = Shim::start(config).await;
    let mut owners = Vec::new();
    let mut rooms = Vec::new();
    for _ in 0..4 {
        let mut owner = other.client_in(NS).await;
        rooms.push(owner.create_room().await);
        owners.push(owner);
    }
    let mut watcher = shim.client_in(NS).await;
    let joined = watcher
        .request(json!({"kind": "room-joined", "room_id": rooms[0]}))
        .await;
    assert_eq!(joined["kind"], "room-joined", "{joined}");

    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let joiners: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(keep_joining(
                shim.ws_url_for(NS),
                rooms.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let primary = blocking(|| cluster.primary_of(NS));
    let killed = Instant::now();
    blocking(|| cluster.kill(primary));
    blocking(|| cluster.wait_failover(NS, primary));
    // The old primary comes back, as a replica of the one that took over,
    // so that one replica can confirm changes again.
    blocking(|| cluster.restart(primary));
    blocking(|| cluster.wait_replicas_in_sync(1));
    let restored = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_tx.send(true).unwrap();
    let mut seen = Vec::new();
    for joiner in joiners {
        seen.push(joiner.await.unwrap());
    }
    let members: Vec<&(Client, String, Instant)> =
        seen.iter().flat_map(|j| j.members.iter()).collect();
    let unavailable: Vec<Instant> = seen.iter().flat_map(|j| j.unavailable.clone()).collect();
    let window = unavailable
        .iter()
        .max()
        .map(|last| last.saturating_duration_since(killed));
    println!(
        "{} joins acknowledged, {} UNAVAILABLE, the last {window:?} after the kill; \
         the cluster was whole again {:?} after it",
        members.len(),
        unavailable.len(),
        restored - killed
    );
    // The same shim carried on once a replica could confirm again.
    assert!(
        members.iter().any(|(_, _, at)| *at > restored),
        "no join was acknowledged after the failover"
    );

    // Every acknowledged join is in Redis, those made just before the
    // primary died included.
    let mut lost = BTreeMap::new();
    for (client, room, _) in &members {
        let held = blocking(|| cluster.run(&["VIOLET.WHERE", NS, &client.socket_id]));
        if &held != room {
            lost.insert(client.socket_id.clone(), (room.clone(), held));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged joins lost: {lost:?}",
        lost.len(),
        members.len()
    );

    // Events flow again after the failover, to both shims: a new member's
    // join and message reach the owner on one and the watcher on the other.
    let mut late = shim.client_in(NS).await;
    let joined = late
        .request(json!({"kind": "room-joined", "room_id": rooms[0]}))
        .await;
    assert_eq!(joined["kind"], "room-joined", "{joined}");
    let said = late
        .request(json!({"kind": "room-message", "data": "after the failover"}))
        .await;
    assert_ne!(said["kind"], "error", "{said}");
    for client in [&mut owners[0], &mut watcher] {
        client
            .next_matching(|f: &Value| {
                f["kind"] == "member-joined" && f["socket_id"] == late.socket_id.as_str()
            })
            .await;
        let message = client
            .next_matching(|f: &Value| f["kind"] == "message" && f["data"] == "after the failover")
            .await;
        assert_eq!(message["socket_id"], late.socket_id.as_str(), "{message}");
    }
    drop(seen);
    shim.stop().await;
    other.stop().await;
    assert_eq!(blocking(|| cluster.run(&["VIOLET.CHECK", NS])), "OK");
}

/// `guest` joins `room` until `owner` hears it (at most about 30 s),
/// leaving and joining again when the owner does not: events published
/// while the shim's subscription moves to a new primary are missed (a
/// reconciliation after it only takes memberships Redis lost out of the
/// shim). Whether the owner heard it.
async fn join_until_the_owner_hears(owner: &mut Client, guest: &mut Client, room: &str) -> bool {
    for _ in 0..60 {
        let joined = guest
            .request(json!({"kind": "room-joined", "room_id": room}))
            .await;
        if joined["kind"] != "room-joined" {
            assert_eq!(joined["code"], "UNAVAILABLE", "{joined}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let me = guest.socket_id.clone();
        let push = owner
            .try_push(Duration::from_millis(500), |f: &Value| {
                f["kind"] == "member-joined" && f["socket_id"] == me.as_str()
            })
            .await;
        if push.is_some() {
            return true;
        }
        guest.request(json!({"kind": "room-left"})).await;
    }
    false
}

/// A manual failover (`CLUSTER FAILOVER`): the old primary gives up the
/// namespace's slot and unsubscribes its sharded subscribers; the shim
/// subscribes again, and its clients hear the room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_a_manual_failover() {
    events_follow_a_failover(|cluster, primary| cluster.manual_failover(NS, primary)).await;
}

/// After `fail_over` made a replica of [`NS`]'s primary `primary` take
/// over, the shim's clients hear the room again.
async fn events_follow_a_failover(fail_over: impl FnOnce(&mut Cluster, usize) + Send) {
    let mut cluster = blocking(|| Cluster::start(3, 1));
    let shim = Shim::start(cluster_config(&cluster, &[NS])).await;
    let mut owner = shim.client_in(NS).await;
    let room = owner.create_room().await;

    let primary = blocking(|| cluster.primary_of(NS));
    blocking(|| fail_over(&mut cluster, primary));

    let mut guest = shim.client_in(NS).await;
    assert!(
        join_until_the_owner_hears(&mut owner, &mut guest, &room).await,
        "the owner never heard a join after the failover"
    );
    guest.close().await;
    owner.close().await;
    shim.stop().await;
    assert_eq!(blocking(|| cluster.run(&["VIOLET.CHECK", NS])), "OK");
}

/// A primary that hangs (`SIGSTOP`) keeps its connections open and answers
/// nothing; its replica takes over. The shim finds the new primary by
/// itself, with the old one still hung: the namespace is served again, its
/// events flow, and the lease is renewed there, so no socket is reaped.
/// Meanwhile a namespace on another primary goes on as if nothing happened:
/// every one of its joins is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_primary_is_left_for_the_replica_that_took_over() {
    // Longer than the failover (2 s of node timeout, then the election) and
    // the shim's finding the new primary, shorter than the test.
    const LEASE: Duration = Duration::from_secs(15);
    let mut cluster = blocking(|| Cluster::start(3, 1));
    let primary = blocking(|| cluster.primary_of(NS));
    let other = *NAMESPACES
        .iter()
        .find(|ns| blocking(|| cluster.primary_of(ns)) != primary)
        .expect("a namespace on another primary");
    let config = violet_shim::Config {
        lease: LEASE,
        ..cluster_config(&cluster, &[NS, other])
    };
    let shim = Shim::start(config).await;
    let mut owner = shim.client_in(NS).await;
    let room = owner.create_room().await;
    let mut other_owner = shim.client_in(other).await;
    let other_room = other_owner.create_room().await;

    // Joins in the other namespace all along, each with a new client.
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let bystander = tokio::spawn(keep_joining(
        shim.ws_url_for(other),
        vec![other_room.clone()],
        stop,
    ));

    let paused = Instant::now();
    blocking(|| cluster.pause(primary));
    blocking(|| cluster.wait_failover(NS, primary));

    // With the old primary still hung, a guest joins and the owner hears
    // it, both through the new primary.
    let mut guest = shim.client_in(NS).await;
    assert!(
        join_until_the_owner_hears(&mut owner, &mut guest, &room).await,
        "the namespace is not served again with its old primary hung"
    );
    println!("served again {:?} after the pause", paused.elapsed());

    // The lease lives on past its length from the pause: the owner is
    // still in its room, and was never told it left.
    tokio::time::sleep(
        (paused + LEASE + Duration::from_secs(2)).saturating_duration_since(Instant::now()),
    )
    .await;
    let held = blocking(|| cluster.run(&["VIOLET.WHERE", NS, &owner.socket_id]));
    assert_eq!(held, room, "the owner's socket was reaped");
    let mine = owner.socket_id.clone();
    let reaped = owner
        .try_push(Duration::from_millis(100), |f: &Value| {
            f["kind"] == "member-left" && f["socket_id"] == mine.as_str()
        })
        .await;
    assert!(reaped.is_none(), "{reaped:?}");

    // The other namespace was served all along, and its events flow.
    stop_tx.send(true).unwrap();
    let bystander = bystander.await.unwrap();
    println!(
        "{} joins in {other} meanwhile, {} UNAVAILABLE",
        bystander.members.len(),
        bystander.unavailable.len()
    );
    assert!(
        bystander.unavailable.is_empty(),
        "{} of the other namespace's joins got UNAVAILABLE",
        bystander.unavailable.len()
    );
    let mut other_guest = shim.client_in(other).await;
    assert!(join_until_the_owner_hears(&mut other_owner, &mut other_guest, &other_room).await);

    // The old primary goes on, as a replica of the new one.
    blocking(|| cluster.resume(primary));
    blocking(|| cluster.wait_replicas_in_sync(1));
    drop(bystander);
    for client in [guest, owner, other_guest, other_owner] {
        client.close().await;
    }
    shim.stop().await;
    for ns in [NS, other] {
        assert_eq!(blocking(|| cluster.run(&["VIOLET.CHECK", ns])), "OK");
    }
}

/// A primary killed for good: its replica takes over, and the shim's events
/// subscription, which lost its node, moves to the new primary by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_a_primary_that_died_for_good() {
    events_follow_a_failover(|cluster, primary| {
        cluster.kill(primary);
        cluster.wait_failover(NS, primary);
    })
    .await;
}

/// A shim whose user may not read the cluster's topology (an ACL without
/// `cluster|slots`) cannot serve, and says why; and it asks for the
/// topology again a few times a second, not in a tight loop (the cluster
/// client's own pending connections asked each node thousands of times a
/// second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_that_may_not_read_the_topology_does_not_hammer_the_cluster() {
    let cluster = blocking(|| Cluster::start(3, 0));
    let shim = Shim::launch(violet_shim::Config {
        cluster_seeds: blocking(|| seeds_of_a_user_without_topology(&cluster)),
        ..cluster_config(&cluster, &[NS])
    })
    .await;
    let mut client = shim.client_in(NS).await;
    let reply = client
        .request(json!({"kind": "room-created", "details": {}}))
        .await;
    assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");

    let before = blocking(|| refused_topology_reads(&cluster));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked = blocking(|| refused_topology_reads(&cluster)) - before;
    println!("CLUSTER SLOTS refused {asked} times in 2 s");
    // Each of the shim's connections asks each seed a few times per
    // attempt, attempts backing off to one every 2 s: dozens, not the
    // tens of thousands of a tight loop.
    assert!(asked < 1000, "CLUSTER SLOTS refused {asked} times in 2 s");
    client.close().await;
    shim.stop().await;
}

/// The same user with `--wait-replicas`: changes refused one after the
/// other (`UNAVAILABLE`, since their namespace's connection for changes
/// that wait cannot be made) do not each try to make that connection, so
/// a client sending changes as fast as they are refused does not make the
/// shim read the topology once per change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_that_cannot_wait_for_replicas_do_not_hammer_the_cluster() {
    let cluster = blocking(|| Cluster::start(3, 0));
    let shim = Shim::launch(violet_shim::Config {
        cluster_seeds: blocking(|| seeds_of_a_user_without_topology(&cluster)),
        durability: Some(Durability {
            replicas: 1,
            timeout: Duration::from_millis(100),
        }),
        rate: violet_shim::config::RateLimit {
            per_sec: 100_000.0,
            burst: 100_000,
            strikes: 100_000,
        },
        ..cluster_config(&cluster, &[NS])
    })
    .await;
    let mut client = shim.client_in(NS).await;
    let before = blocking(|| refused_topology_reads(&cluster));
    let until = Instant::now() + Duration::from_secs(2);
    let mut refused_changes = 0u64;
    while Instant::now() < until {
        let reply = client
            .request(json!({"kind": "room-created", "details": {}}))
            .await;
        assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
        refused_changes += 1;
    }
    let asked = blocking(|| refused_topology_reads(&cluster)) - before;
    println!("{refused_changes} changes refused; CLUSTER SLOTS refused {asked} times in 2 s");
    // The lanes' attempts, as above, and one attempt at the namespace's
    // connection per Redis timeout (1.5 s): dozens. One attempt per change
    // asked at least once per change.
    assert!(
        refused_changes >= 200,
        "only {refused_changes} changes were answered in 2 s"
    );
    assert!(
        asked * 4 < refused_changes,
        "CLUSTER SLOTS refused {asked} times for {refused_changes} changes"
    );
    client.close().await;
    shim.stop().await;
}

/// Makes a user `shim` on every node of `cluster` that may do anything but
/// read the topology (`CLUSTER SLOTS`); returns seeds that log in as it.
fn seeds_of_a_user_without_topology(cluster: &Cluster) -> Vec<String> {
    let mut seeds = Vec::new();
    for node in &cluster.nodes {
        let port = node.port();
        let args = [
            "ACL",
            "SETUSER",
            "shim",
            "on",
            ">pw",
            "~*",
            "&*",
            "+@all",
            "-cluster|slots",
        ];
        assert_eq!(cluster.cli(port, &args), "OK");
        seeds.push(format!("redis://shim:pw@127.0.0.1:{port}"));
    }
    seeds
}

/// How many `CLUSTER SLOTS` the nodes of `cluster` have refused so far.
fn refused_topology_reads(cluster: &Cluster) -> u64 {
    cluster
        .nodes
        .iter()
        .map(|n| {
            let stats = cluster.cli(n.port(), &["INFO", "commandstats"]);
            stats
                .lines()
                .find(|l| l.starts_with("cmdstat_cluster|slots:"))
                .and_then(|l| l.split("rejected_calls=").nth(1))
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}
