//! Unit tests of the room rules on the in-memory store.

use crate::details::Details;
use crate::ids::{Namespace, RoomId, SocketId};
use crate::memory_store::MemoryStore;
use crate::rooms::{Joined, NewRoom, Rooms, MAX_MESSAGE_BYTES};
use crate::store::Store;

fn ns() -> Namespace {
    Namespace::parse("wp").unwrap()
}

fn sock(id: &str) -> SocketId {
    SocketId::parse(id).unwrap()
}

fn room(id: &str) -> RoomId {
    RoomId::parse(id).unwrap()
}

fn named(id: &str) -> NewRoom {
    NewRoom::Named(room(id))
}

fn details(pairs: &[(&str, &str)]) -> Details {
    Details::parse(pairs.iter().copied()).unwrap()
}

fn events(store: &MemoryStore) -> Vec<String> {
    store.published.iter().map(|(_, m)| m.clone()).collect()
}

/// Creates a room with default details; `socket` becomes its owner.
fn open(rooms: &mut Rooms<'_, MemoryStore>, socket: &str, id: &str) {
    rooms
        .create(&sock(socket), named(id), Details::default())
        .unwrap();
}

/// Runs one operation and asserts that it changed no key and published
/// nothing; returns what it returned.
fn unchanged<T>(store: &mut MemoryStore, op: impl FnOnce(&mut Rooms<'_, MemoryStore>) -> T) -> T {
    let before = store.dump();
    let published = store.published.len();
    let result = op(&mut Rooms::new(store, &ns()));
    assert_eq!(store.dump(), before, "the operation changed keys");
    assert_eq!(store.published.len(), published, "the operation published");
    result
}

/// The error code of an operation that must fail and change nothing.
fn refused<T: std::fmt::Debug>(
    store: &mut MemoryStore,
    op: impl FnOnce(&mut Rooms<'_, MemoryStore>) -> crate::error::Result<T>,
) -> &'static str {
    unchanged(store, op).unwrap_err().code()
}

/// Runs `VIOLET.CHECK` and fails the test on any violation.
fn assert_consistent(store: &mut MemoryStore) {
    let violations = Rooms::new(store, &ns()).check(true).unwrap();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn create_makes_a_public_room_owned_by_its_creator() {
    let mut store = MemoryStore::default();
    let id = Rooms::new(&mut store, &ns())
        .create(
            &sock("s1"),
            named("r1"),
            details(&[("title", "Perfect Blue")]),
        )
        .unwrap();
    assert_eq!(id, "r1");
    assert_eq!(store.zscore("violet:{wp}:rooms", "r1").unwrap(), Some(1.0));
    assert_eq!(
        store.smembers("violet:{wp}:room:r1:members").unwrap(),
        ["s1"]
    );
    assert_eq!(
        store.hgetall("violet:{wp}:room:r1").unwrap(),
        [
            ("owner".to_owned(), "s1".to_owned()),
            ("title".to_owned(), "Perfect Blue".to_owned()),
            ("visibility".to_owned(), "public".to_owned()),
        ]
    );
    assert_eq!(
        events(&store),
        [r#"{"event":"created","room":"r1","socket":"s1","viewers":1,"visibility":"public"}"#]
    );
    assert_consistent(&mut store);
}

#[test]
fn create_with_star_picks_a_free_id() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    let a = rooms
        .create(&sock("s1"), NewRoom::Fresh, Details::default())
        .unwrap();
    let b = rooms
        .create(&sock("s2"), NewRoom::Fresh, Details::default())
        .unwrap();
    assert_ne!(a, b);
    assert_consistent(&mut store);
}

#[test]
fn create_refuses_an_existing_room_and_changes_nothing() {
    let mut store = MemoryStore::default();
    open(&mut Rooms::new(&mut store, &ns()), "s1", "r1");
    open(&mut Rooms::new(&mut store, &ns()), "s2", "r2");
    let code = refused(&mut store, |rooms| {
        rooms.create(&sock("s2"), named("r1"), Details::default())
    });
    assert_eq!(code, "EXISTS");
}

#[test]
fn create_moves_the_creator_out_of_its_room() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    open(&mut rooms, "s1", "old");
    open(&mut rooms, "s1", "new");
    assert!(!store.exists("violet:{wp}:room:old").unwrap());
    assert_eq!(store.zscore("violet:{wp}:rooms", "old").unwrap(), None);
    assert_eq!(
        store.hget("violet:{wp}:node:s1", "s1").unwrap().as_deref(),
        Some("new")
    );
    assert_consistent(&mut store);
}

#[test]
fn private_rooms_are_unranked_but_joinable() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    rooms
        .create(
            &sock("s1"),
            named("p"),
            details(&[("visibility", "Private")]),
        )
        .unwrap();
    let joined = rooms.join(&sock("s2"), &room("p")).unwrap();
    assert_eq!(
        joined,
        Joined {
            previous: None,
            viewers: 2
        }
    );
    assert!(rooms.top(0, 10).unwrap().is_empty());
    assert_eq!(store.zcard("violet:{wp}:rooms").unwrap(), 0);
    assert_consistent(&mut store);
}

#[test]
fn join_moves_between_rooms_and_keeps_scores_exact() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    open(&mut rooms, "a", "r1");
    open(&mut rooms, "b", "r2");
    rooms.join(&sock("c"), &room("r1")).unwrap();
    let joined = rooms.join(&sock("c"), &room("r2")).unwrap();
    assert_eq!(
        joined,
        Joined {
            previous: Some("r1".into()),
            viewers: 2
        }
    );
    let top = rooms.top(0, 10).unwrap();
    let ranked: Vec<(&str, u64)> = top.iter().map(|v| (v.room.as_str(), v.viewers)).collect();
    assert_eq!(ranked, [("r2", 2), ("r1", 1)]);
    assert_eq!(store.zscore("violet:{wp}:rooms", "r1").unwrap(), Some(1.0));
    assert_eq!(store.zscore("violet:{wp}:rooms", "r2").unwrap(), Some(2.0));
    assert_consistent(&mut store);
}

#[test]
fn joining_the_same_room_changes_nothing() {
    let mut store = MemoryStore::default();
    open(&mut Rooms::new(&mut store, &ns()), "a", "r1");
    let joined = unchanged(&mut store, |rooms| rooms.join(&sock("a"), &room("r1"))).unwrap();
    assert_eq!(
        joined,
        Joined {
            previous: Some("r1".into()),
            viewers: 1
        }
    );
}

#[test]
fn join_refuses_missing_and_full_rooms_without_leaving() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    rooms
        .create(&sock("a"), named("small"), details(&[("capacity", "1")]))
        .unwrap();
    open(&mut rooms, "b", "home");
    let nowhere = refused(&mut store, |rooms| rooms.join(&sock("b"), &room("nowhere")));
    assert_eq!(nowhere, "NOROOM");
    let full = refused(&mut store, |rooms| rooms.join(&sock("b"), &room("small")));
    assert_eq!(
        full, "FULL",
        "and the refused join did not leave the old room"
    );
}

#[test]
fn last_one_out_destroys_the_room() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    open(&mut rooms, "a", "r1");
    rooms.join(&sock("b"), &room("r1")).unwrap();
    assert_eq!(rooms.leave(&sock("a")).unwrap().as_deref(), Some("r1"));
    assert_eq!(rooms.leave(&sock("b")).unwrap().as_deref(), Some("r1"));
    assert_eq!(rooms.leave(&sock("b")).unwrap(), None);
    assert!(
        store.dump().is_empty(),
        "no key may remain: {:?}",
        store.dump()
    );
    let tail: Vec<String> = events(&store).into_iter().rev().take(2).collect();
    assert_eq!(
        tail,
        [
            r#"{"event":"destroyed","room":"r1"}"#,
            r#"{"event":"left","room":"r1","socket":"b","viewers":0,"reason":"left"}"#,
        ]
    );
}

#[test]
fn update_moves_rooms_in_and_out_of_the_ranking() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    open(&mut rooms, "a", "r1");
    rooms.join(&sock("b"), &room("r1")).unwrap();
    rooms
        .update(&room("r1"), &details(&[("visibility", "private")]))
        .unwrap();
    assert!(rooms.top(0, 10).unwrap().is_empty());
    rooms
        .update(
            &room("r1"),
            &details(&[("VISIBILITY", "PUBLIC"), ("title", "t")]),
        )
        .unwrap();
    let top = rooms.top(0, 10).unwrap();
    assert_eq!((top[0].room.as_str(), top[0].viewers), ("r1", 2));
    assert!(top[0].fields.contains(&("title".into(), "t".into())));
    assert_consistent(&mut store);
}

#[test]
fn update_refuses_missing_rooms_and_too_many_fields() {
    let mut store = MemoryStore::default();
    let names: Vec<String> = (0..31).map(|i| format!("f{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    Rooms::new(&mut store, &ns())
        .create(&sock("a"), named("r1"), details(&pairs))
        .unwrap();
    let too_many = refused(&mut store, |rooms| {
        rooms.update(&room("r1"), &details(&[("extra", "x")]))
    });
    assert_eq!(too_many, "ERR", "31 fields + visibility + extra is 33");
    let missing = refused(&mut store, |rooms| {
        rooms.update(&room("no"), &details(&[("t", "x")]))
    });
    assert_eq!(missing, "NOROOM");
    Rooms::new(&mut store, &ns())
        .update(&room("r1"), &details(&[("f0", "changed")]))
        .unwrap();
    assert_eq!(
        store.hget("violet:{wp}:room:r1", "f0").unwrap().as_deref(),
        Some("changed"),
        "an existing field can still change"
    );
}

#[test]
fn say_reaches_the_senders_room_only() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    assert_eq!(rooms.say(&sock("a"), "hi").unwrap_err().code(), "NOTINROOM");
    open(&mut rooms, "a", "r1");
    assert_eq!(rooms.say(&sock("a"), "{\"x\":1}").unwrap(), "r1");
    let too_big = "x".repeat(MAX_MESSAGE_BYTES + 1);
    assert_eq!(rooms.say(&sock("a"), &too_big).unwrap_err().code(), "ERR");
    let last = store.published.last().unwrap();
    assert_eq!(last.0, "violet:{wp}:events");
    assert_eq!(
        last.1,
        r#"{"event":"message","room":"r1","socket":"a","data":"{\"x\":1}"}"#
    );
}

#[test]
fn top_pages_through_the_ranking() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    for (i, r) in ["a", "b", "c"].iter().enumerate() {
        rooms
            .create(&sock(&format!("o{r}")), named(r), Details::default())
            .unwrap();
        for j in 0..i {
            rooms.join(&sock(&format!("{r}{j}")), &room(r)).unwrap();
        }
    }
    let ids = |views: Vec<crate::rooms::RoomView>| -> Vec<String> {
        views.into_iter().map(|v| v.room).collect()
    };
    assert_eq!(ids(rooms.top(0, 10).unwrap()), ["c", "b", "a"]);
    assert_eq!(ids(rooms.top(1, 1).unwrap()), ["b"]);
    assert!(rooms.top(5, 10).unwrap().is_empty());
    assert!(rooms.top(0, 0).unwrap().is_empty());
    assert!(rooms.top(u64::MAX, 10).unwrap().is_empty());
}

#[test]
fn top_within_stops_after_the_room_that_passes_max_bytes() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    // Ranked c, b, a; c's details are the largest.
    let titles = [
        ("a", "x".to_owned()),
        ("b", "y".repeat(100)),
        ("c", "z".repeat(4000)),
    ];
    for (i, (r, title)) in titles.iter().enumerate() {
        rooms
            .create(
                &sock(&format!("o{r}")),
                named(r),
                details(&[("title", title.as_str())]),
            )
            .unwrap();
        for j in 0..i {
            rooms.join(&sock(&format!("{r}{j}")), &room(r)).unwrap();
        }
    }
    let all = rooms.top(0, 10).unwrap();
    let ids = |views: Vec<crate::rooms::RoomView>| -> Vec<String> {
        views.into_iter().map(|v| v.room).collect()
    };
    assert_eq!(ids(all.clone()), ["c", "b", "a"]);
    // A room's bytes are its id's and its details' names and values.
    let c = &all[0];
    let expected: usize = c.room.len()
        + c.fields
            .iter()
            .map(|(n, v)| n.len() + v.len())
            .sum::<usize>();
    assert_eq!(c.bytes(), expected as u64);
    assert!(c.bytes() > 4000);
    let (sc, sb) = (all[0].bytes(), all[1].bytes());

    // Large enough: the reply is unchanged.
    assert_eq!(rooms.top_within(0, 10, u64::MAX).unwrap(), all);
    assert_eq!(
        rooms.top_within(0, 10, sc + sb + all[2].bytes()).unwrap(),
        all
    );
    // The room that passes the bound is the last one listed...
    assert_eq!(ids(rooms.top_within(0, 10, sc - 1).unwrap()), ["c"]);
    assert_eq!(ids(rooms.top_within(0, 10, sc).unwrap()), ["c", "b"]);
    assert_eq!(
        ids(rooms.top_within(0, 10, sc + sb - 1).unwrap()),
        ["c", "b"]
    );
    assert_eq!(
        ids(rooms.top_within(0, 10, sc + sb).unwrap()),
        ["c", "b", "a"]
    );
    // ...so a reply holds at least one room, and OFFSET pages on past it.
    assert_eq!(ids(rooms.top_within(0, 10, 1).unwrap()), ["c"]);
    assert_eq!(ids(rooms.top_within(1, 10, 1).unwrap()), ["b"]);
    assert_eq!(ids(rooms.top_within(2, 10, 1).unwrap()), ["a"]);
    assert!(rooms.top_within(3, 10, 1).unwrap().is_empty());
    assert!(rooms.top_within(0, 0, 1).unwrap().is_empty());
    // COUNT still bounds the list, and the order and rooms are the same.
    assert_eq!(ids(rooms.top_within(0, 2, u64::MAX).unwrap()), ["c", "b"]);
    assert_eq!(rooms.top_within(1, 1, sb).unwrap(), all[1..2]);
}

#[test]
fn top_within_reads_only_the_rooms_it_lists() {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, &ns());
    for r in 0..50 {
        let title = "t".repeat(1000);
        rooms
            .create(
                &sock(&format!("o{r}")),
                named(&format!("r{r}")),
                details(&[("title", title.as_str())]),
            )
            .unwrap();
    }
    drop(rooms);
    let mut audit = ReadsBeforeWrites {
        inner: &mut store,
        read: Default::default(),
    };
    let listed = Rooms::new(&mut audit, &ns())
        .top_within(0, 50, 2500)
        .unwrap();
    assert_eq!(listed.len(), 3);
    // The ranking, then each listed room's hash and members, and no other.
    let hashes: Vec<&String> = audit
        .read
        .iter()
        .filter(|key| key.contains(":room:") && !key.ends_with(":members"))
        .collect();
    assert_eq!(hashes.len(), 3, "read {:?}", audit.read);
    assert_eq!(audit.read.len(), 1 + 2 * 3, "read {:?}", audit.read);
}

#[test]
fn check_names_each_broken_invariant() {
    let mut store = MemoryStore::default();
    open(&mut Rooms::new(&mut store, &ns()), "a", "r1");
    store.zadd("violet:{wp}:rooms", 7, "r1").unwrap();
    store
        .hset("violet:{wp}:node:ghost", &[("ghost", "r1")])
        .unwrap();
    store
        .zadd_new("violet:{wp}:nodes", f64::INFINITY, "ghost")
        .unwrap();
    store
        .hset("violet:{wp}:node:unindexed", &[("unindexed:1", "r1")])
        .unwrap();
    store.sadd("violet:{wp}:room:lost:members", "x").unwrap();
    store.sadd("violet:{wp}:stray", "x").unwrap();
    let quick = Rooms::new(&mut store, &ns()).check(false).unwrap();
    let violations = Rooms::new(&mut store, &ns()).check(true).unwrap();
    assert!(quick.len() < violations.len(), "FULL finds more: {quick:?}");
    let text = violations.join("\n");
    assert!(
        text.contains("public room \"r1\" has 1 viewer(s) but is ranked 7"),
        "{text}"
    );
    assert!(
        text.contains("socket \"ghost\" is recorded in room \"r1\" but is not a member"),
        "{text}"
    );
    assert!(
        text.contains(
            "key \"violet:{wp}:room:lost:members\" belongs to room \"lost\" which no socket and no ranking reaches"
        ),
        "{text}"
    );
    assert!(
        text.contains("node \"unindexed\" has sockets but is not in the node index"),
        "{text}"
    );
    assert!(
        text.contains("unexpected key \"violet:{wp}:stray\""),
        "{text}"
    );
}

#[test]
fn wrong_types_are_reported_not_panicked_on() {
    let mut store = MemoryStore::default();
    store.sadd("violet:{wp}:node:a", "oops").unwrap();
    let err = Rooms::new(&mut store, &ns())
        .join(&sock("a"), &room("r"))
        .unwrap_err();
    assert_eq!(err.code(), "NOROOM");
    let err = Rooms::new(&mut store, &ns())
        .create(&sock("a"), named("r"), Details::default())
        .unwrap_err();
    assert_eq!(err.code(), "WRONGTYPE");
}

#[test]
fn create_and_update_count_fields_by_one_rule() {
    let mut store = MemoryStore::default();
    let names: Vec<String> = (0..32).map(|i| format!("f{i}")).collect();
    let pairs = |n: usize| {
        details(
            &names[..n]
                .iter()
                .map(|f| (f.as_str(), "v"))
                .collect::<Vec<_>>(),
        )
    };
    // 32 free fields and the default visibility make 33: refused.
    let code = refused(&mut store, |r| r.create(&sock("a"), named("r1"), pairs(32)));
    assert_eq!(code, "ERR");
    // 31 and the visibility make 32 besides the owner: the most a room holds.
    Rooms::new(&mut store, &ns())
        .create(&sock("a"), named("r1"), pairs(31))
        .unwrap();
    assert_eq!(store.hgetall("violet:{wp}:room:r1").unwrap().len(), 33);
    // Changing fields it has is always allowed; one more is not.
    Rooms::new(&mut store, &ns())
        .update(
            &room("r1"),
            &details(&[("f0", "w"), ("visibility", "private")]),
        )
        .unwrap();
    let code = refused(&mut store, |r| {
        r.update(&room("r1"), &details(&[("extra", "x")]))
    });
    assert_eq!(code, "ERR");
    assert_consistent(&mut store);
}

#[test]
fn namespaces_do_not_share_rooms() {
    let mut store = MemoryStore::default();
    let other = Namespace::parse("other").unwrap();
    open(&mut Rooms::new(&mut store, &ns()), "a", "r1");
    let err = Rooms::new(&mut store, &other)
        .join(&sock("b"), &room("r1"))
        .unwrap_err();
    assert_eq!(err.code(), "NOROOM");
    assert!(Rooms::new(&mut store, &other)
        .top(0, 10)
        .unwrap()
        .is_empty());
}

/// Wraps a store for one operation: records every key read, and fails the
/// test when a key is written before it was read. Violet's ACL checks run on
/// reads (see `crate::acl`), so this is what makes them cover every write.
struct ReadsBeforeWrites<'s> {
    inner: &'s mut MemoryStore,
    read: std::collections::BTreeSet<String>,
}

impl ReadsBeforeWrites<'_> {
    fn saw(&mut self, key: &str) {
        self.read.insert(key.to_owned());
    }

    fn writes(&self, key: &str) {
        assert!(
            self.read.contains(key),
            "{key} written before it was read; read so far: {:?}",
            self.read
        );
    }
}

impl Store for ReadsBeforeWrites<'_> {
    fn sadd(&mut self, key: &str, member: &str) -> crate::error::Result<bool> {
        self.writes(key);
        self.inner.sadd(key, member)
    }
    fn srem(&mut self, key: &str, member: &str) -> crate::error::Result<bool> {
        self.writes(key);
        self.inner.srem(key, member)
    }
    fn smove(
        &mut self,
        source: &str,
        destination: &str,
        member: &str,
    ) -> crate::error::Result<bool> {
        self.writes(source);
        self.writes(destination);
        self.inner.smove(source, destination, member)
    }
    fn scard(&mut self, key: &str) -> crate::error::Result<u64> {
        self.saw(key);
        self.inner.scard(key)
    }
    fn sismember(&mut self, key: &str, member: &str) -> crate::error::Result<bool> {
        self.saw(key);
        self.inner.sismember(key, member)
    }
    fn smembers(&mut self, key: &str) -> crate::error::Result<Vec<String>> {
        self.saw(key);
        self.inner.smembers(key)
    }
    fn sscan(
        &mut self,
        key: &str,
        cursor: u64,
        count: u64,
    ) -> crate::error::Result<(u64, Vec<String>)> {
        self.saw(key);
        self.inner.sscan(key, cursor, count)
    }
    fn hget(&mut self, key: &str, field: &str) -> crate::error::Result<Option<String>> {
        self.saw(key);
        self.inner.hget(key, field)
    }
    fn hmget(&mut self, key: &str, fields: &[&str]) -> crate::error::Result<Vec<Option<String>>> {
        self.saw(key);
        self.inner.hmget(key, fields)
    }
    fn hgetall(&mut self, key: &str) -> crate::error::Result<Vec<(String, String)>> {
        self.saw(key);
        self.inner.hgetall(key)
    }
    fn hset(&mut self, key: &str, fields: &[(&str, &str)]) -> crate::error::Result<()> {
        self.writes(key);
        self.inner.hset(key, fields)
    }
    fn hdel(&mut self, key: &str, field: &str) -> crate::error::Result<()> {
        self.writes(key);
        self.inner.hdel(key, field)
    }
    fn hlen(&mut self, key: &str) -> crate::error::Result<u64> {
        self.saw(key);
        self.inner.hlen(key)
    }
    fn hscan(
        &mut self,
        key: &str,
        cursor: u64,
        count: u64,
    ) -> crate::error::Result<(u64, Vec<(String, String)>)> {
        self.saw(key);
        self.inner.hscan(key, cursor, count)
    }
    fn zadd(&mut self, key: &str, score: u64, member: &str) -> crate::error::Result<()> {
        self.writes(key);
        self.inner.zadd(key, score, member)
    }
    fn zadd_new(&mut self, key: &str, score: f64, member: &str) -> crate::error::Result<()> {
        self.writes(key);
        self.inner.zadd_new(key, score, member)
    }
    fn zrange_up_to(
        &mut self,
        key: &str,
        max: f64,
        count: u64,
    ) -> crate::error::Result<Vec<(String, f64)>> {
        self.saw(key);
        self.inner.zrange_up_to(key, max, count)
    }
    fn zrem(&mut self, key: &str, member: &str) -> crate::error::Result<()> {
        self.writes(key);
        self.inner.zrem(key, member)
    }
    fn zscore(&mut self, key: &str, member: &str) -> crate::error::Result<Option<f64>> {
        self.saw(key);
        self.inner.zscore(key, member)
    }
    fn zrevrange(
        &mut self,
        key: &str,
        start: u64,
        stop: u64,
    ) -> crate::error::Result<Vec<(String, f64)>> {
        self.saw(key);
        self.inner.zrevrange(key, start, stop)
    }
    fn zcard(&mut self, key: &str) -> crate::error::Result<u64> {
        self.saw(key);
        self.inner.zcard(key)
    }
    fn exists(&mut self, key: &str) -> crate::error::Result<bool> {
        self.saw(key);
        self.inner.exists(key)
    }
    fn del(&mut self, keys: &[&str]) -> crate::error::Result<()> {
        keys.iter().for_each(|key| self.writes(key));
        self.inner.del(keys)
    }
    fn keys_with_prefix(&mut self, prefix: &str) -> crate::error::Result<Vec<String>> {
        self.inner.keys_with_prefix(prefix)
    }
    fn publish(&mut self, channel: &str, message: &str) {
        self.inner.publish(channel, message);
    }
    fn random_id(&mut self) -> String {
        self.inner.random_id()
    }
    fn now_ms(&mut self) -> u64 {
        self.inner.now_ms()
    }
}

/// Runs one operation on a store that fails on any write before a read.
fn audited<T>(
    store: &mut MemoryStore,
    op: impl FnOnce(&mut Rooms<'_, ReadsBeforeWrites<'_>>) -> T,
) -> T {
    let mut audit = ReadsBeforeWrites {
        inner: store,
        read: Default::default(),
    };
    op(&mut Rooms::new(&mut audit, &ns()))
}

#[test]
fn every_operation_reads_each_key_before_writing_it() {
    let mut store = MemoryStore::default();
    let s = |id: &str| sock(id);
    let private = || details(&[("visibility", "private")]);
    let capped = || details(&[("capacity", "2")]);
    audited(&mut store, |r| r.create(&s("s1"), named("pub"), capped())).unwrap();
    audited(&mut store, |r| r.create(&s("s2"), named("priv"), private())).unwrap();
    audited(&mut store, |r| {
        r.create(&s("s3"), NewRoom::Fresh, Details::default())
    })
    .unwrap();
    // Moves between public and private rooms, a full room, a no-op join.
    audited(&mut store, |r| r.join(&s("s4"), &room("pub"))).unwrap();
    audited(&mut store, |r| r.join(&s("s5"), &room("pub"))).unwrap_err();
    audited(&mut store, |r| r.join(&s("s4"), &room("pub"))).unwrap();
    audited(&mut store, |r| r.join(&s("s4"), &room("priv"))).unwrap();
    audited(&mut store, |r| r.join(&s("s1"), &room("priv"))).unwrap();
    // `s3` leaves its fresh room, destroying it; `s2` creates from a shared room.
    audited(&mut store, |r| r.leave(&s("s3"))).unwrap();
    audited(&mut store, |r| r.leave(&s("nobody"))).unwrap();
    audited(&mut store, |r| {
        r.create(&s("s2"), named("solo"), Details::default())
    })
    .unwrap();
    // Visibility both ways, and a change that keeps it.
    audited(&mut store, |r| {
        r.update(&room("priv"), &details(&[("visibility", "public")]))
    })
    .unwrap();
    audited(&mut store, |r| {
        r.update(&room("priv"), &details(&[("title", "x")]))
    })
    .unwrap();
    audited(&mut store, |r| r.update(&room("priv"), &private())).unwrap();
    audited(&mut store, |r| r.say(&s("s1"), "hi")).unwrap();
    // Destroying rooms: the last members leave.
    for socket in ["s1", "s2", "s4"] {
        audited(&mut store, |r| r.leave(&s(socket))).unwrap();
    }
    assert!(store.dump().is_empty(), "{:?}", store.dump());
    // Leases: taken, renewed, a node's sockets, expiry and reaping, release.
    let n = |id: &str| crate::ids::NodeId::parse(id).unwrap();
    audited(&mut store, |r| r.lease(&n("n"), 100)).unwrap();
    audited(&mut store, |r| r.lease(&n("n"), 100)).unwrap();
    audited(&mut store, |r| {
        r.create(&s("n:1"), named("a"), Details::default())
    })
    .unwrap();
    audited(&mut store, |r| r.join(&s("n:2"), &room("a"))).unwrap();
    audited(&mut store, |r| {
        r.create(&s("m:1"), named("b"), Details::default())
    })
    .unwrap();
    store.now_ms = 1_000;
    audited(&mut store, |r| r.lease(&n("n"), 100)).unwrap();
    let expired = audited(&mut store, |r| r.expired_nodes(8)).unwrap();
    assert_eq!(expired.len(), 1);
    audited(&mut store, |r| r.reap_node("n", expired[0].1, 0, 1)).unwrap();
    audited(&mut store, |r| r.reap_node("n", expired[0].1, 0, 10)).unwrap();
    audited(&mut store, |r| r.release(&n("m"), 10)).unwrap();
    assert!(store.dump().is_empty(), "{:?}", store.dump());
}
