//! `VIOLET.CHECK`: verifies every invariant of a namespace, for tests and operators.
//!
//! It reads the whole namespace (a `SCAN` plus a few reads per room and
//! socket), so it is O(rooms + sockets): run it on a replica or off-peak.

use crate::details::{parse_capacity, Visibility, CAPACITY, OWNER, VISIBILITY};
use crate::error::{quoted, Result};
use crate::store::Store;
use std::collections::BTreeSet;
use violet_contract::keys::{KeyRole, Keys};

/// Every broken invariant of the namespace, one sentence each.
///
/// # Errors
/// Only what the store reports (for example `WRONGTYPE` when a key of the
/// layout holds the wrong type).
pub fn violations<S: Store>(store: &mut S, keys: &Keys) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut rooms = BTreeSet::new();
    let mut member_sets = BTreeSet::new();
    for key in store.keys_with_prefix(keys.prefix())? {
        match keys.role(&key) {
            KeyRole::Rooms | KeyRole::Sockets => {}
            KeyRole::Room(room) => {
                rooms.insert(room.to_owned());
            }
            KeyRole::Members(room) => {
                member_sets.insert(room.to_owned());
            }
            KeyRole::Unknown => found.push(format!("unexpected key {}", quoted(&key))),
        }
    }
    for room in &rooms {
        if !member_sets.contains(room) {
            found.push(format!("room {} exists with no members", quoted(room)));
        }
        check_room(store, keys, room, &mut found)?;
    }
    for room in member_sets.difference(&rooms) {
        found.push(format!(
            "room {} has members but no details hash",
            quoted(room)
        ));
    }
    for room in rooms.union(&member_sets) {
        check_members(store, keys, room, &mut found)?;
    }
    check_sockets(store, keys, &mut found)?;
    check_ranking(store, keys, &rooms, &mut found)?;
    Ok(found)
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

fn check_members<S: Store>(
    store: &mut S,
    keys: &Keys,
    room: &str,
    found: &mut Vec<String>,
) -> Result<()> {
    for socket in store.smembers(&keys.members(room))? {
        let recorded = store.hget(keys.sockets(), &socket)?;
        if recorded.as_deref() != Some(room) {
            found.push(format!(
                "socket {} is a member of room {} but recorded in {}",
                quoted(&socket),
                quoted(room),
                recorded.as_deref().map_or("no room".to_owned(), quoted)
            ));
        }
    }
    Ok(())
}

fn check_sockets<S: Store>(store: &mut S, keys: &Keys, found: &mut Vec<String>) -> Result<()> {
    for (socket, room) in store.hgetall(keys.sockets())? {
        if !store.sismember(&keys.members(&room), &socket)? {
            found.push(format!(
                "socket {} is recorded in room {} but is not a member",
                quoted(&socket),
                quoted(&room)
            ));
        }
    }
    Ok(())
}

fn check_ranking<S: Store>(
    store: &mut S,
    keys: &Keys,
    rooms: &BTreeSet<String>,
    found: &mut Vec<String>,
) -> Result<()> {
    let ranked = store.zcard(keys.rooms())?;
    if ranked == 0 {
        return Ok(());
    }
    for (room, _) in store.zrevrange(keys.rooms(), 0, ranked - 1)? {
        if !rooms.contains(&room) {
            found.push(format!(
                "ranking lists room {} which does not exist",
                quoted(&room)
            ));
        }
    }
    Ok(())
}
