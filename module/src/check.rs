//! `VIOLET.CHECK`: verifies every invariant of a namespace, for tests and operators.
//!
//! It starts from the namespace's own indexes, the node index and the
//! ranking, so it reads O(nodes + sockets + rooms) and nothing else of the
//! keyspace: run it on a replica or off-peak. `FULL` also walks the keyspace
//! (a `SCAN` for the namespace's prefix, O(keyspace)) to find keys that no
//! index reaches: a stray room hash, a node hash missing from the index, an
//! unknown key.

use crate::details::{parse_capacity, Visibility, CAPACITY, OWNER, VISIBILITY};
use crate::error::{quoted, Result};
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use violet_contract::keys::{node_of, KeyRole, Keys};

/// How long after its lease expired a node may still have sockets: the
/// reaper's promise is lease + 2 s.
pub const EXPIRED_GRACE_MS: u64 = 2_000;

/// Every broken invariant of the namespace, one sentence each.
///
/// # Errors
/// Only what the store reports (for example `WRONGTYPE` when a key of the
/// layout holds the wrong type).
pub fn violations<S: Store>(store: &mut S, keys: &Keys, full: bool) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let now = store.now_ms();
    let nodes: BTreeMap<String, f64> = store
        .zrange_up_to(keys.nodes(), f64::INFINITY, u64::MAX)?
        .into_iter()
        .collect();
    let mut rooms = BTreeSet::new();
    for (node, expiry) in &nodes {
        check_node(store, keys, node, *expiry, now, &mut rooms, &mut found)?;
    }
    let ranking = ranking(store, keys)?;
    rooms.extend(ranking.iter().cloned());
    for room in &rooms {
        let details = store.exists(&keys.room(room))?;
        let members = store.exists(&keys.members(room))?;
        match (details, members) {
            (true, true) => check_room(store, keys, room, &mut found)?,
            (true, false) => found.push(format!("room {} exists with no members", quoted(room))),
            (false, true) => found.push(format!(
                "room {} has members but no details hash",
                quoted(room)
            )),
            (false, false) => {}
        }
        if !details && ranking.contains(room) {
            found.push(format!(
                "ranking lists room {} which does not exist",
                quoted(room)
            ));
        }
        check_members(store, keys, room, &nodes, &mut found)?;
    }
    if full {
        check_keyspace(store, keys, &nodes, &rooms, &mut found)?;
    }
    Ok(found)
}

/// A node's lease and its hash: each socket is the node's, a member of the
/// room recorded, and not kept long past the lease.
fn check_node<S: Store>(
    store: &mut S,
    keys: &Keys,
    node: &str,
    expiry: f64,
    now: u64,
    rooms: &mut BTreeSet<String>,
    found: &mut Vec<String>,
) -> Result<()> {
    let sockets = store.hgetall(&keys.node(node))?;
    if sockets.is_empty() && expiry == f64::INFINITY {
        found.push(format!(
            "node {} is indexed with no lease and no sockets",
            quoted(node)
        ));
    }
    if !sockets.is_empty() && expiry.is_finite() && expiry + (EXPIRED_GRACE_MS as f64) < now as f64
    {
        found.push(format!(
            "node {} still has {} socket(s) {} ms after its lease expired",
            quoted(node),
            sockets.len(),
            now as f64 - expiry
        ));
    }
    for (socket, room) in sockets {
        if node_of(&socket) != node {
            found.push(format!(
                "socket {} is recorded by node {} but belongs to node {}",
                quoted(&socket),
                quoted(node),
                quoted(node_of(&socket))
            ));
        }
        if !store.sismember(&keys.members(&room), &socket)? {
            found.push(format!(
                "socket {} is recorded in room {} but is not a member",
                quoted(&socket),
                quoted(&room)
            ));
        }
        rooms.insert(room);
    }
    Ok(())
}

fn check_room<S: Store>(
    store: &mut S,
    keys: &Keys,
    room: &str,
    found: &mut Vec<String>,
) -> Result<()> {
    let fields = store.hgetall(&keys.room(room))?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if field(OWNER).is_none() {
        found.push(format!("room {} has no owner", quoted(room)));
    }
    if let Some(capacity) = field(CAPACITY) {
        if parse_capacity(capacity).is_err() {
            found.push(format!(
                "room {} has capacity {}",
                quoted(room),
                quoted(capacity)
            ));
        }
    }
    let viewers = store.scard(&keys.members(room))?;
    let rank = store.zscore(keys.rooms(), room)?;
    match field(VISIBILITY).map(Visibility::parse) {
        Some(Ok(Visibility::Public)) if rank != Some(viewers as f64) => found.push(format!(
            "public room {} has {viewers} viewer(s) but is ranked {}",
            quoted(room),
            rank.map_or("nowhere".to_owned(), |r| r.to_string())
        )),
        Some(Ok(Visibility::Private)) if rank.is_some() => {
            found.push(format!("private room {} is ranked", quoted(room)))
        }
        Some(Ok(_)) => {}
        _ => found.push(format!("room {} has no valid visibility", quoted(room))),
    }
    Ok(())
}

/// Each member is recorded in this room by its node, and its node is indexed.
fn check_members<S: Store>(
    store: &mut S,
    keys: &Keys,
    room: &str,
    nodes: &BTreeMap<String, f64>,
    found: &mut Vec<String>,
) -> Result<()> {
    for socket in store.smembers(&keys.members(room))? {
        let recorded = store.hget(&keys.node_of_socket(&socket), &socket)?;
        if recorded.as_deref() != Some(room) {
            found.push(format!(
                "socket {} is a member of room {} but recorded in {}",
                quoted(&socket),
                quoted(room),
                recorded.as_deref().map_or("no room".to_owned(), quoted)
            ));
        }
        if !nodes.contains_key(node_of(&socket)) {
            found.push(format!(
                "socket {} is in room {} but its node {} is not in the node index",
                quoted(&socket),
                quoted(room),
                quoted(node_of(&socket))
            ));
        }
    }
    Ok(())
}

fn ranking<S: Store>(store: &mut S, keys: &Keys) -> Result<BTreeSet<String>> {
    let ranked = store.zcard(keys.rooms())?;
    if ranked == 0 {
        return Ok(BTreeSet::new());
    }
    Ok(store
        .zrevrange(keys.rooms(), 0, ranked - 1)?
        .into_iter()
        .map(|(room, _)| room)
        .collect())
}

/// `FULL`: every key with the namespace's prefix is reached by an index.
fn check_keyspace<S: Store>(
    store: &mut S,
    keys: &Keys,
    nodes: &BTreeMap<String, f64>,
    rooms: &BTreeSet<String>,
    found: &mut Vec<String>,
) -> Result<()> {
    for key in store.keys_with_prefix(keys.prefix())? {
        match keys.role(&key) {
            KeyRole::Rooms | KeyRole::Nodes => {}
            KeyRole::Room(room) | KeyRole::Members(room) if !rooms.contains(room) => {
                found.push(format!(
                    "key {} belongs to room {} which no socket and no ranking reaches",
                    quoted(&key),
                    quoted(room)
                ));
            }
            KeyRole::Room(_) | KeyRole::Members(_) => {}
            KeyRole::Node(node) if !nodes.contains_key(node) => found.push(format!(
                "node {} has sockets but is not in the node index",
                quoted(node)
            )),
            KeyRole::Node(_) => {}
            KeyRole::Unknown => found.push(format!("unexpected key {}", quoted(&key))),
        }
    }
    Ok(())
}
