//! Model-based test: thousands of random `VIOLET.*` calls, each reply and the
//! whole keyspace compared after every call with a plain model of the rules,
//! the event stream compared at the end, and `VIOLET.CHECK` after.
//!
//! `VIOLET_SEED=n cargo test --test module_model` replays a seed.

use redis::Value;
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, BTreeSet};
use support::events::Events;
use support::keyspace::{snapshot, Contents};
use support::workload::Workload;
use support::RedisServer;

const NS: &str = "model";
const CALLS: usize = 10_000;

#[derive(Debug, Clone)]
struct Room {
    members: BTreeSet<String>,
    fields: BTreeMap<String, String>,
}

impl Room {
    fn public(&self) -> bool {
        self.fields["visibility"] == "public"
    }
}

/// What a call should answer: a reply, or an error code.
#[derive(Debug, PartialEq)]
enum Expected {
    Reply(Value),
    Error(&'static str),
}

/// The rules, written again as plainly as possible.
#[derive(Default)]
struct Model {
    rooms: BTreeMap<String, Room>,
    sockets: BTreeMap<String, String>,
    events: Vec<Json>,
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn optional(s: Option<&str>) -> Value {
    s.map_or(Value::Nil, bulk)
}

impl Model {
    fn apply(&mut self, args: &[String], fresh_id: Option<&str>) -> Expected {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        match a[0] {
            "VIOLET.CREATE" => self.create(a[2], a[3], &a[4..], fresh_id),
            "VIOLET.JOIN" => self.join(a[2], a[3]),
            "VIOLET.LEAVE" => Expected::Reply(optional(self.leave(a[2]).as_deref())),
            "VIOLET.UPDATE" => self.update(a[2], &a[3..]),
            other => panic!("the workload does not send {other}"),
        }
    }

    /// Field validation as documented: reserved names, visibility, capacity.
    fn fields(pairs: &[&str]) -> Result<BTreeMap<String, String>, &'static str> {
        let mut out = BTreeMap::new();
        for pair in pairs.chunks(2) {
            let (name, value) = (pair[0].to_ascii_lowercase(), pair[1]);
            let value = match name.as_str() {
                "owner" | "viewers" | "watchers" => return Err("ERR"),
                "visibility" => match value.to_ascii_lowercase().as_str() {
                    v @ ("public" | "private") => v.to_owned(),
                    _ => return Err("ERR"),
                },
                "capacity" => match value.parse::<u64>() {
                    Ok(n) if n > 0 => n.to_string(),
                    _ => return Err("ERR"),
                },
                _ => value.to_owned(),
            };
            if out.insert(name, value).is_some() {
                return Err("ERR");
            }
        }
        Ok(out)
    }

    fn create(
        &mut self,
        socket: &str,
        room: &str,
        pairs: &[&str],
        fresh: Option<&str>,
    ) -> Expected {
        let mut fields = match Self::fields(pairs) {
            Ok(fields) => fields,
            Err(code) => return Expected::Error(code),
        };
        let room = if room == "*" {
            fresh.expect("a fresh id")
        } else {
            room
        };
        if self.rooms.contains_key(room) {
            return Expected::Error("EXISTS");
        }
        self.leave(socket);
        fields.insert("owner".into(), socket.into());
        fields
            .entry("visibility".into())
            .or_insert_with(|| "public".into());
        let visibility = fields["visibility"].clone();
        self.rooms.insert(
            room.into(),
            Room {
                members: BTreeSet::from([socket.to_owned()]),
                fields,
            },
        );
        self.sockets.insert(socket.into(), room.into());
        self.events.push(json!({"event": "created", "room": room, "socket": socket, "viewers": 1, "visibility": visibility}));
        Expected::Reply(bulk(room))
    }

    fn join(&mut self, socket: &str, room: &str) -> Expected {
        let Some(target) = self.rooms.get(room) else {
            return Expected::Error("NOROOM");
        };
        let viewers = target.members.len() as i64;
        let previous = self.sockets.get(socket).cloned();
        if previous.as_deref() == Some(room) {
            return Expected::Reply(Value::Array(vec![bulk(room), Value::Int(viewers)]));
        }
        if let Some(capacity) = target.fields.get("capacity") {
            if viewers >= capacity.parse::<i64>().unwrap() {
                return Expected::Error("FULL");
            }
        }
        self.leave(socket);
        let target = self.rooms.get_mut(room).unwrap();
        target.members.insert(socket.into());
        self.sockets.insert(socket.into(), room.into());
        let viewers = target.members.len();
        self.events
            .push(json!({"event": "joined", "room": room, "socket": socket, "viewers": viewers}));
        Expected::Reply(Value::Array(vec![
            optional(previous.as_deref()),
            Value::Int(viewers as i64),
        ]))
    }

    fn leave(&mut self, socket: &str) -> Option<String> {
        let room = self.sockets.remove(socket)?;
        let entry = self.rooms.get_mut(&room).unwrap();
        entry.members.remove(socket);
        let viewers = entry.members.len();
        self.events
            .push(json!({"event": "left", "room": room, "socket": socket, "viewers": viewers, "reason": "left"}));
        if viewers == 0 {
            self.rooms.remove(&room);
            self.events
                .push(json!({"event": "destroyed", "room": room}));
        }
        Some(room)
    }

    fn update(&mut self, room: &str, pairs: &[&str]) -> Expected {
        let fields = match Self::fields(pairs) {
            Ok(fields) => fields,
            Err(code) => return Expected::Error(code),
        };
        let Some(entry) = self.rooms.get_mut(room) else {
            return Expected::Error("NOROOM");
        };
        entry.fields.extend(fields.clone());
        self.events
            .push(json!({"event": "updated", "room": room, "fields": fields}));
        Expected::Reply(Value::Okay)
    }

    /// The keyspace the model says Redis should hold.
    fn keyspace(&self) -> BTreeMap<String, Contents> {
        let mut keys = BTreeMap::new();
        let mut ranking = BTreeMap::new();
        for (id, room) in &self.rooms {
            keys.insert(
                format!("violet:{{{NS}}}:room:{id}"),
                Contents::Hash(room.fields.clone()),
            );
            keys.insert(
                format!("violet:{{{NS}}}:room:{id}:members"),
                Contents::Set(room.members.clone()),
            );
            if room.public() {
                ranking.insert(id.clone(), room.members.len() as f64);
            }
        }
        if !ranking.is_empty() {
            keys.insert(
                format!("violet:{{{NS}}}:rooms"),
                Contents::SortedSet(ranking),
            );
        }
        // Each socket is recorded by its node (its id up to the first ':');
        // these sockets hold no lease, so their nodes are indexed at +inf.
        let mut nodes: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (socket, room) in &self.sockets {
            let node = socket.split(':').next().unwrap_or(socket);
            nodes
                .entry(node.to_owned())
                .or_default()
                .push((socket.clone(), room.clone()));
        }
        if !nodes.is_empty() {
            keys.insert(
                format!("violet:{{{NS}}}:nodes"),
                Contents::SortedSet(nodes.keys().map(|n| (n.clone(), f64::INFINITY)).collect()),
            );
        }
        for (node, entries) in nodes {
            keys.insert(
                format!("violet:{{{NS}}}:node:{node}"),
                Contents::Hash(entries.into_iter().collect()),
            );
        }
        keys
    }
}

fn reply_or_code(result: redis::RedisResult<Value>) -> Result<Value, String> {
    result.map_err(|e| e.code().unwrap_or("?").to_owned())
}

#[test]
fn random_calls_match_the_model() {
    let seed = std::env::var("VIOLET_SEED").map_or(20261128, |s| s.parse().expect("a number"));
    let server = RedisServer::start();
    let mut con = server.connection();
    let mut events = Events::subscribe(&server, NS);
    let mut workload = Workload::new(seed, NS, 40, 25);
    let mut model = Model::default();

    for call in 0..CALLS {
        let args = workload.next_command();
        let actual = reply_or_code(redis::cmd(&args[0]).arg(&args[1..]).query(&mut con));
        let fresh = match (&actual, args.get(3)) {
            (Ok(Value::BulkString(id)), Some(star)) if star == "*" => {
                Some(String::from_utf8(id.clone()).unwrap())
            }
            _ => None,
        };
        let expected = model.apply(&args, fresh.as_deref());
        let context = || format!("seed {seed}, call {call}: {args:?}");
        match expected {
            Expected::Reply(value) => assert_eq!(actual, Ok(value), "{}", context()),
            Expected::Error(code) => assert_eq!(actual, Err(code.to_owned()), "{}", context()),
        }
        assert_eq!(
            snapshot(&mut con, "violet:*"),
            model.keyspace(),
            "{}",
            context()
        );
    }

    assert_eq!(events.drain(&mut con), model.events, "seed {seed}: events");
    let checked: String = redis::cmd("VIOLET.CHECK").arg(NS).query(&mut con).unwrap();
    assert_eq!(checked, "OK");
    assert!(
        model.rooms.len() > 3 && model.sockets.len() > 10,
        "the workload kept rooms alive"
    );
}
