//! Unit tests of leases and reaping on the in-memory store, with a clock the
//! tests move instead of sleeping.

use crate::details::Details;
use crate::ids::{Namespace, NodeId, RoomId, SocketId};
use crate::leases::{LeaseOutcome, ReapStep};
use crate::memory_store::MemoryStore;
use crate::rooms::{NewRoom, Rooms};
use crate::store::Store;
use violet_contract::events::{Event, Reason};

const NODES: &str = "violet:{wp}:nodes";

fn ns() -> Namespace {
    Namespace::parse("wp").unwrap()
}

fn node(id: &str) -> NodeId {
    NodeId::parse(id).unwrap()
}

fn rooms(store: &mut MemoryStore) -> Rooms<'_, MemoryStore> {
    Rooms::new(store, &ns())
}

fn open(store: &mut MemoryStore, socket: &str, room: &str) {
    rooms(store)
        .create(
            &SocketId::parse(socket).unwrap(),
            NewRoom::Named(RoomId::parse(room).unwrap()),
            Details::default(),
        )
        .unwrap();
}

fn join(store: &mut MemoryStore, socket: &str, room: &str) {
    rooms(store)
        .join(
            &SocketId::parse(socket).unwrap(),
            &RoomId::parse(room).unwrap(),
        )
        .unwrap();
}

fn events(store: &MemoryStore) -> Vec<Event> {
    store
        .published
        .iter()
        .map(|(_, m)| serde_json::from_str(m).unwrap())
        .collect()
}

fn assert_consistent(store: &mut MemoryStore) {
    let violations = rooms(store).check(true).unwrap();
    assert!(violations.is_empty(), "{violations:?}");
}

/// Reaps every expired node to the end, in steps of `batch`; returns the steps.
fn reap_all(store: &mut MemoryStore, batch: u64) -> Vec<ReapStep> {
    let mut steps = Vec::new();
    loop {
        let expired = rooms(store).expired_nodes(8).unwrap();
        if expired.is_empty() {
            return steps;
        }
        for (node, reason) in expired {
            let mut cursor = 0;
            loop {
                let step = rooms(store)
                    .reap_node(&node, reason, cursor, batch)
                    .unwrap();
                steps.push(step);
                cursor = step.cursor;
                if step.done {
                    break;
                }
            }
        }
    }
}

#[test]
fn a_lease_is_created_renewed_and_expires() {
    let mut store = MemoryStore::default();
    store.now_ms = 1_000;
    let n = node("n");
    assert_eq!(
        rooms(&mut store).lease(&n, 500).unwrap(),
        LeaseOutcome::Created
    );
    assert_eq!(store.zscore(NODES, "n").unwrap(), Some(1_500.0));
    store.now_ms = 1_499;
    assert_eq!(
        rooms(&mut store).lease(&n, 500).unwrap(),
        LeaseOutcome::Renewed
    );
    assert_eq!(store.zscore(NODES, "n").unwrap(), Some(1_999.0));
    store.now_ms = 1_999;
    assert_eq!(
        rooms(&mut store).expired_nodes(8).unwrap(),
        [("n".to_owned(), Reason::Expired)]
    );
    // Expired with no sockets left: a new lease, which tells the node that
    // it had lost the old one.
    assert_eq!(
        rooms(&mut store).lease(&n, 500).unwrap(),
        LeaseOutcome::Created
    );
}

#[test]
fn sockets_without_a_lease_never_expire() {
    let mut store = MemoryStore::default();
    open(&mut store, "s1", "r1");
    open(&mut store, "cli:2", "r2");
    assert_eq!(store.zscore(NODES, "s1").unwrap(), Some(f64::INFINITY));
    assert_eq!(store.zscore(NODES, "cli").unwrap(), Some(f64::INFINITY));
    store.now_ms = u64::MAX / 2;
    assert!(rooms(&mut store).expired_nodes(8).unwrap().is_empty());
    assert_consistent(&mut store);
    // The last socket of a node without a lease takes it out of the index.
    rooms(&mut store)
        .leave(&SocketId::parse("cli:2").unwrap())
        .unwrap();
    assert_eq!(store.zscore(NODES, "cli").unwrap(), None);
    assert_consistent(&mut store);
}

#[test]
fn a_leased_node_stays_indexed_without_sockets_and_moves_cost_no_index_write() {
    let mut store = MemoryStore::default();
    rooms(&mut store).lease(&node("n"), 1_000).unwrap();
    open(&mut store, "n:1", "r1");
    open(&mut store, "m:1", "r2");
    join(&mut store, "n:1", "r2");
    assert_eq!(
        store.hget("violet:{wp}:node:n", "n:1").unwrap().as_deref(),
        Some("r2")
    );
    assert_eq!(store.zscore(NODES, "n").unwrap(), Some(1_000.0));
    rooms(&mut store)
        .leave(&SocketId::parse("n:1").unwrap())
        .unwrap();
    assert_eq!(store.zscore(NODES, "n").unwrap(), Some(1_000.0));
    assert!(!store.exists("violet:{wp}:node:n").unwrap());
    assert_consistent(&mut store);
}

#[test]
fn an_expired_node_is_reaped_in_batches_through_the_leave_rules() {
    let mut store = MemoryStore::default();
    rooms(&mut store).lease(&node("dead"), 1_000).unwrap();
    rooms(&mut store).lease(&node("live"), 60_000).unwrap();
    open(&mut store, "dead:0", "alone");
    join(&mut store, "dead:1", "alone");
    open(&mut store, "live:0", "shared");
    for i in 2..7 {
        join(&mut store, &format!("dead:{i}"), "shared");
    }
    store.published.clear();

    store.now_ms = 999;
    assert!(rooms(&mut store).expired_nodes(8).unwrap().is_empty());
    store.now_ms = 1_000;
    let steps = reap_all(&mut store, 2);
    assert!(steps.len() >= 4, "7 sockets in batches of 2: {steps:?}");
    assert!(steps.iter().all(|s| s.reaped <= 2));
    assert_eq!(steps.iter().map(|s| s.reaped).sum::<u64>(), 7);

    assert!(!store.exists("violet:{wp}:room:alone").unwrap());
    assert_eq!(store.scard("violet:{wp}:room:shared:members").unwrap(), 1);
    assert_eq!(
        store.zscore("violet:{wp}:rooms", "shared").unwrap(),
        Some(1.0)
    );
    assert_eq!(store.zscore(NODES, "dead").unwrap(), None);
    assert_eq!(store.zscore(NODES, "live").unwrap(), Some(60_000.0));
    let events = events(&store);
    let left: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Left { socket, reason, .. } => Some((socket.clone(), *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(left.len(), 7);
    assert!(left.iter().all(|(_, r)| *r == Reason::Expired));
    assert!(events.contains(&Event::Destroyed {
        room: "alone".into()
    }));
    assert_consistent(&mut store);
}

#[test]
fn a_lease_asked_for_while_reaping_changes_nothing() {
    let mut store = MemoryStore::default();
    rooms(&mut store).lease(&node("n"), 100).unwrap();
    for i in 0..4 {
        open(&mut store, &format!("n:{i}"), &format!("r{i}"));
    }
    store.now_ms = 200;
    let step = rooms(&mut store)
        .reap_node("n", Reason::Expired, 0, 1)
        .unwrap();
    assert!(!step.done);
    let before = store.dump();
    assert_eq!(
        rooms(&mut store).lease(&node("n"), 100).unwrap(),
        LeaseOutcome::Expired
    );
    assert_eq!(store.dump(), before);
    reap_all(&mut store, 10);
    assert_eq!(
        rooms(&mut store).lease(&node("n"), 100).unwrap(),
        LeaseOutcome::Created
    );
    assert_consistent(&mut store);
}

#[test]
fn release_takes_a_batch_now_and_leaves_the_rest_to_the_reaper() {
    let mut store = MemoryStore::default();
    rooms(&mut store).lease(&node("n"), 60_000).unwrap();
    for i in 0..5 {
        open(&mut store, &format!("n:{i}"), &format!("r{i}"));
    }
    store.published.clear();
    assert_eq!(rooms(&mut store).release(&node("n"), 3).unwrap(), 3);
    assert_eq!(store.hlen("violet:{wp}:node:n").unwrap(), 2);
    assert_eq!(
        rooms(&mut store).expired_nodes(8).unwrap(),
        [("n".to_owned(), Reason::Released)]
    );
    reap_all(&mut store, 10);
    assert_eq!(store.zscore(NODES, "n").unwrap(), None);
    assert!(events(&store).iter().all(|e| !matches!(
        e,
        Event::Left { reason, .. } if *reason != Reason::Released
    )));
    assert_consistent(&mut store);
    assert_eq!(rooms(&mut store).release(&node("n"), 3).unwrap(), 0);
    assert_eq!(rooms(&mut store).release(&node("never"), 3).unwrap(), 0);
    assert!(!store.exists(NODES).unwrap());
}

#[test]
fn check_reports_sockets_kept_long_after_their_lease() {
    let mut store = MemoryStore::default();
    rooms(&mut store).lease(&node("n"), 1_000).unwrap();
    open(&mut store, "n:1", "r1");
    store.now_ms = 2_500;
    assert_consistent(&mut store);
    store.now_ms = 3_001;
    let violations = rooms(&mut store).check(false).unwrap();
    assert_eq!(
        violations,
        ["node \"n\" still has 1 socket(s) 2001 ms after its lease expired"]
    );
}
