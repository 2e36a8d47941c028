//! The shim's pure-Rust hot paths, with criterion: parsing a client's frame,
//! writing a reply or a push, reading and writing an event, and fanning one
//! event out to the local members of a room.
//!
//! `cargo bench -p violet-shim --bench protocol`; HTML reports and plots land
//! in `target/criterion/`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use violet_contract::events::Event;
use violet_shim::metrics::Metrics;
use violet_shim::outbox::outbox;
use violet_shim::protocol::{self, Frame, RoomInfo};
use violet_shim::registry::Hub;

const ROOM_SIZE: usize = 10;

fn parsing(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    let join = r#"{"kind":"room-joined","room_id":"room-42","ref":7}"#;
    let message = serde_json::json!({
        "kind": "room-message",
        "data": {"text": "x".repeat(1024)},
        "ref": 8,
    })
    .to_string();
    let malformed = r#"{"kind":"room-joined","room_id":"#;
    group.bench_function("join", |b| b.iter(|| protocol::parse(black_box(join))));
    group.bench_function("message 1 KiB", |b| {
        b.iter(|| protocol::parse(black_box(&message)));
    });
    group.bench_function("malformed", |b| {
        b.iter(|| protocol::parse(black_box(malformed)));
    });
    group.finish();
}

fn writing(c: &mut Criterion) {
    let mut group = c.benchmark_group("write");
    let joined = Frame::MemberJoined {
        room_id: "room-42".into(),
        socket_id: "a1b2c3:17".into(),
        viewers: 10,
    };
    let rooms: Vec<RoomInfo> = (0..10)
        .map(|i| RoomInfo {
            room_id: format!("room-{i}"),
            viewers: 100 - i,
            details: BTreeMap::from([
                ("owner".to_owned(), format!("a1b2c3:{i}")),
                ("title".to_owned(), format!("Movie night {i}")),
                ("visibility".to_owned(), "public".to_owned()),
            ]),
        })
        .collect();
    group.bench_function("member-joined push", |b| {
        b.iter(|| black_box(&joined).to_text(None));
    });
    group.bench_function("top of 10 rooms", |b| {
        b.iter(|| protocol::top_text(black_box(&rooms), None, 1 << 20));
    });
    group.finish();
}

fn events(c: &mut Criterion) {
    let mut group = c.benchmark_group("event");
    let joined = Event::Joined {
        room: "room-42".into(),
        socket: "a1b2c3:17".into(),
        viewers: 10,
    };
    let message = Event::Message {
        room: "room-42".into(),
        socket: "a1b2c3:17".into(),
        data: r#"{"text":"hello, room"}"#.into(),
    }
    .to_json();
    group.bench_function("write joined", |b| b.iter(|| black_box(&joined).to_json()));
    group.bench_function("read message", |b| {
        b.iter(|| serde_json::from_str::<Event>(black_box(&message)).unwrap());
    });
    group.finish();
}

/// One message event, read and pushed to the 10 local members of its room.
fn fan_out(c: &mut Criterion) {
    let message = Event::Message {
        room: "room-42".into(),
        socket: "s:0".into(),
        data: r#"{"text":"hello, room"}"#.into(),
    }
    .to_json();
    c.bench_function("fan-out: a message to a room of 10", |b| {
        b.iter_batched(
            || {
                let hub = Hub::new(Arc::new(Metrics::default()));
                let mut inboxes = Vec::new();
                for i in 0..ROOM_SIZE {
                    let socket = format!("s:{i}");
                    let (tx, rx) = outbox(16, 1 << 20);
                    hub.register(&socket, tx);
                    hub.apply(Event::Joined {
                        room: "room-42".into(),
                        socket,
                        viewers: i as u64 + 1,
                    });
                    inboxes.push(rx);
                }
                (hub, inboxes)
            },
            |(hub, inboxes)| {
                hub.apply(serde_json::from_str::<Event>(&message).unwrap());
                (hub, inboxes)
            },
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, parsing, writing, events, fan_out);
criterion_main!(benches);
