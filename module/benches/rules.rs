//! The room rules on the in-memory store, with criterion: what the rules
//! themselves cost, apart from Redis (`benches/join_vs_lua.rs` measures them
//! inside Redis).
//!
//! `cargo bench -p violet --features bench --profile bench-rules --bench rules`
//! (or `scripts/bench rules`); HTML reports and plots land in
//! `target/criterion/`.

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use violet::details::Details;
use violet::ids::{Namespace, RoomId, SocketId};
use violet::memory_store::MemoryStore;
use violet::rooms::{NewRoom, Rooms};

const VIEWERS: usize = 100;

/// Two public rooms, `a` and `b`, of [`VIEWERS`] each.
fn two_rooms(namespace: &Namespace) -> MemoryStore {
    let mut store = MemoryStore::default();
    let mut rooms = Rooms::new(&mut store, namespace);
    for room in ["a", "b"] {
        let owner = SocketId::parse(&format!("n:{room}-0")).unwrap();
        let id = RoomId::parse(room).unwrap();
        rooms
            .create(&owner, NewRoom::Named(id.clone()), Details::default())
            .unwrap();
        for viewer in 1..VIEWERS {
            let socket = SocketId::parse(&format!("n:{room}-{viewer}")).unwrap();
            rooms.join(&socket, &id).unwrap();
        }
    }
    store.published.clear();
    store
}

fn rules(c: &mut Criterion) {
    let namespace = Namespace::parse("bench").unwrap();
    let mover = SocketId::parse("n:mover").unwrap();
    let (a, b) = (RoomId::parse("a").unwrap(), RoomId::parse("b").unwrap());

    let mut store = two_rooms(&namespace);
    Rooms::new(&mut store, &namespace).join(&mover, &a).unwrap();
    let mut to_b = true;
    c.bench_function("join: a move between rooms of 100", |bench| {
        bench.iter(|| {
            let room = if to_b { &b } else { &a };
            to_b = !to_b;
            let joined = Rooms::new(&mut store, &namespace)
                .join(&mover, room)
                .unwrap();
            store.published.clear();
            black_box(joined)
        });
    });

    let mut store = two_rooms(&namespace);
    let creator = SocketId::parse("n:creator").unwrap();
    let mut n = 0u64;
    c.bench_function("create and leave a room of one", |bench| {
        bench.iter(|| {
            n += 1;
            let room = RoomId::parse(&format!("r{n}")).unwrap();
            let mut rooms = Rooms::new(&mut store, &namespace);
            rooms
                .create(&creator, NewRoom::Named(room), Details::default())
                .unwrap();
            let left = rooms.leave(&creator).unwrap();
            store.published.clear();
            black_box(left)
        });
    });

    let mut store = two_rooms(&namespace);
    let speaker = SocketId::parse("n:a-1").unwrap();
    c.bench_function("say: a message to a room of 100", |bench| {
        bench.iter(|| {
            let room = Rooms::new(&mut store, &namespace)
                .say(&speaker, r#"{"text":"hello, room"}"#)
                .unwrap();
            store.published.clear();
            black_box(room)
        });
    });

    let mut store = two_rooms(&namespace);
    c.bench_function("top: the first 10 rooms", |bench| {
        bench.iter(|| black_box(Rooms::new(&mut store, &namespace).top(0, 10).unwrap()));
    });
}

criterion_group!(benches, rules);
criterion_main!(benches);
