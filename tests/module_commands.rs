//! Every `VIOLET.*` command against a real redis-server with the module: its
//! reply, the keys it leaves for `redis-cli` users, its events, and its errors.
//! Every refused command is checked to have changed nothing and published
//! nothing.

use redis::{Connection, Value};
use serde_json::json;
use support::events::Events;
use support::keyspace::snapshot;
use support::RedisServer;

const NS: &str = "wp";

struct Fixture {
    server: RedisServer,
    con: Connection,
    events: Events,
}

fn fixture() -> Fixture {
    let server = RedisServer::start();
    let con = server.connection();
    let events = Events::subscribe(&server, NS);
    Fixture {
        server,
        con,
        events,
    }
}

fn call(con: &mut Connection, args: &[&str]) -> redis::RedisResult<Value> {
    redis::cmd(args[0]).arg(&args[1..]).query(con)
}

fn ok<T: redis::FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    redis::cmd(args[0])
        .arg(&args[1..])
        .query(con)
        .unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
}

impl Fixture {
    /// Asserts the command fails with `code`, and that it changed no key and
    /// published no event. Returns the error message.
    fn refused(&mut self, args: &[&str], code: &str) -> String {
        let before = snapshot(&mut self.con, "*");
        self.events.drain(&mut self.con);
        let err = call(&mut self.con, args).expect_err("the command must fail");
        assert_eq!(err.code(), Some(code), "{args:?}: {err}");
        assert_eq!(
            snapshot(&mut self.con, "*"),
            before,
            "{args:?} changed keys"
        );
        assert_eq!(
            self.events.drain(&mut self.con),
            Vec::<serde_json::Value>::new()
        );
        err.to_string()
    }

    fn check(&mut self) {
        let reply: String = ok(&mut self.con, &["VIOLET.CHECK", NS]);
        assert_eq!(reply, "OK");
    }
}

/// Cluster clients route by the `COMMAND` reply's first key, last key and
/// step: argument 1, the namespace. (It is declared `NOT_KEY`, so ACL key
/// patterns and `COMMAND GETKEYS` skip it: see `module_acl.rs`.)
#[test]
fn commands_declare_the_namespace_as_their_key() {
    let mut fx = fixture();
    for name in [
        "VIOLET.CREATE",
        "VIOLET.JOIN",
        "VIOLET.LEAVE",
        "VIOLET.TOP",
        "VIOLET.ROOM",
        "VIOLET.MEMBERS",
        "VIOLET.WHERE",
        "VIOLET.UPDATE",
        "VIOLET.SAY",
        "VIOLET.CHECK",
    ] {
        let info: Vec<Vec<Value>> = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(name)
            .query(&mut fx.con)
            .unwrap();
        let range: Vec<i64> = info[0][3..6]
            .iter()
            .map(|v| redis::from_redis_value(v.clone()).unwrap())
            .collect();
        assert_eq!(range, [1, 1, 1], "{name}: first key, last key, step");
    }
}

#[test]
fn create_writes_the_documented_layout() {
    let mut fx = fixture();
    let room: String = ok(
        &mut fx.con,
        &[
            "VIOLET.CREATE",
            NS,
            "s1",
            "ROOM:1",
            "title",
            "Perfect Blue",
            "Visibility",
            "Public",
        ],
    );
    assert_eq!(room, "ROOM:1");
    let details: Vec<(String, String)> = ok(&mut fx.con, &["HGETALL", "violet:{wp}:room:ROOM:1"]);
    assert_eq!(
        details,
        [
            ("owner".into(), "s1".into()),
            ("title".into(), "Perfect Blue".into()),
            ("visibility".into(), "public".into())
        ]
    );
    let members: Vec<String> = ok(
        &mut fx.con,
        &["SMEMBERS", "violet:{wp}:room:ROOM:1:members"],
    );
    assert_eq!(members, ["s1"]);
    let ranking: Vec<(String, u64)> = ok(
        &mut fx.con,
        &["ZRANGE", "violet:{wp}:rooms", "0", "-1", "WITHSCORES"],
    );
    assert_eq!(ranking, [("ROOM:1".into(), 1)]);
    let sockets: Vec<(String, String)> = ok(&mut fx.con, &["HGETALL", "violet:{wp}:node:s1"]);
    assert_eq!(sockets, [("s1".into(), "ROOM:1".into())]);
    let nodes: Vec<(String, String)> = ok(
        &mut fx.con,
        &["ZRANGE", "violet:{wp}:nodes", "0", "-1", "WITHSCORES"],
    );
    assert_eq!(
        nodes,
        [("s1".into(), "inf".into())],
        "no lease: never expires"
    );
    assert_eq!(
        fx.events.next_event(),
        json!({"event": "created", "room": "ROOM:1", "socket": "s1", "viewers": 1, "visibility": "public"})
    );
    fx.check();
}

#[test]
fn create_with_star_returns_a_fresh_id() {
    let mut fx = fixture();
    let a: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "s1", "*"]);
    let b: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "s2", "*"]);
    assert_ne!(a, b);
    assert_eq!(a.len(), 16);
    assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
    let owner: String = ok(
        &mut fx.con,
        &["HGET", &format!("violet:{{wp}}:room:{b}"), "owner"],
    );
    assert_eq!(owner, "s2");
    fx.check();
}

#[test]
fn create_moves_the_creator_and_destroys_its_empty_room() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "s1", "old"]);
    let _: String = ok(
        &mut fx.con,
        &["VIOLET.CREATE", NS, "s1", "new", "visibility", "private"],
    );
    let keys: Vec<String> = ok(&mut fx.con, &["KEYS", "*"]);
    let mut keys = keys;
    keys.sort();
    assert_eq!(
        keys,
        [
            "violet:{wp}:node:s1",
            "violet:{wp}:nodes",
            "violet:{wp}:room:new",
            "violet:{wp}:room:new:members",
        ],
        "the old room is gone and the private room is not ranked"
    );
    fx.events.next_event();
    assert_eq!(
        fx.events.next_event(),
        json!({"event": "left", "room": "old", "socket": "s1", "viewers": 0, "reason": "left"})
    );
    assert_eq!(
        fx.events.next_event(),
        json!({"event": "destroyed", "room": "old"})
    );
    assert_eq!(fx.events.next_event()["event"], "created");
    fx.check();
}

#[test]
fn create_refuses_bad_input() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "s1", "taken"]);
    fx.refused(&["VIOLET.CREATE", NS, "s2", "taken"], "EXISTS");
    fx.refused(&["VIOLET.CREATE", NS, "s1", "taken"], "EXISTS");
    fx.refused(&["VIOLET.CREATE", "a{b", "s2", "r"], "ERR");
    fx.refused(&["VIOLET.CREATE", NS, "bad socket", "r"], "ERR");
    fx.refused(&["VIOLET.CREATE", NS, "s2", "x:members"], "ERR");
    fx.refused(&["VIOLET.CREATE", NS, "s2", &"r".repeat(129)], "ERR");
    fx.refused(&["VIOLET.CREATE", NS, "s2", "r", "owner", "me"], "ERR");
    fx.refused(&["VIOLET.CREATE", NS, "s2", "r", "viewers", "9"], "ERR");
    fx.refused(&["VIOLET.CREATE", NS, "s2", "r", "watchers", "2"], "ERR");
    fx.refused(
        &["VIOLET.CREATE", NS, "s2", "r", "visibility", "hidden"],
        "ERR",
    );
    fx.refused(&["VIOLET.CREATE", NS, "s2", "r", "capacity", "0"], "ERR");
    fx.refused(
        &["VIOLET.CREATE", NS, "s2", "r", "title", &"x".repeat(4097)],
        "ERR",
    );
    fx.refused(
        &["VIOLET.CREATE", NS, "s2", "r", &"n".repeat(65), "x"],
        "ERR",
    );
    fx.refused(&["VIOLET.CREATE", NS, "s2", "r", "t", "1", "t", "2"], "ERR");
    let many: Vec<String> = (0..33)
        .flat_map(|i| [format!("f{i}"), "v".into()])
        .collect();
    let mut args = vec!["VIOLET.CREATE", NS, "s2", "r"];
    args.extend(many.iter().map(String::as_str));
    let message = fx.refused(&args, "ERR");
    assert!(message.contains("at most 32 fields"), "{message}");
    fx.refused(&["VIOLET.CREATE", NS, "s2", "r", "title"], "ERR");
    let arity = fx.refused(&["VIOLET.CREATE", NS, "s2"], "ERR");
    assert!(arity.contains("wrong number of arguments"), "{arity}");
    fx.check();
}

#[test]
fn errors_are_one_line_with_the_input_escaped() {
    let mut fx = fixture();
    let message = fx.refused(&["VIOLET.JOIN", NS, "s1", "no\u{1}where"], "ERR");
    assert!(message.contains(r#""no\u{1}where""#), "{message}");
    let err = redis::cmd("VIOLET.JOIN")
        .arg(NS)
        .arg(&b"s\xff"[..])
        .arg("r")
        .query::<Value>(&mut fx.con)
        .unwrap_err();
    assert!(err.to_string().contains("valid UTF-8"), "{err}");
}

#[test]
fn join_replies_with_the_previous_room_and_viewers() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "a", "r1"]);
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "b", "r2"]);
    let first: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "c", "r1"]);
    assert_eq!(first, (None, 2));
    let moved: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "c", "r2"]);
    assert_eq!(moved, (Some("r1".into()), 2));
    let again: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "c", "r2"]);
    assert_eq!(again, (Some("r2".into()), 2));
    let scores: Vec<(String, u64)> = ok(
        &mut fx.con,
        &["ZREVRANGE", "violet:{wp}:rooms", "0", "-1", "WITHSCORES"],
    );
    assert_eq!(scores, [("r2".into(), 2), ("r1".into(), 1)]);
    fx.check();
}

#[test]
fn join_refuses_missing_full_and_malformed() {
    let mut fx = fixture();
    let _: String = ok(
        &mut fx.con,
        &["VIOLET.CREATE", NS, "a", "small", "capacity", "2"],
    );
    let _: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "b", "small"]);
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "c", "home"]);
    let message = fx.refused(&["VIOLET.JOIN", NS, "c", "small"], "FULL");
    assert!(
        message.contains("room \"small\" is full (capacity 2)"),
        "{message}"
    );
    fx.refused(&["VIOLET.JOIN", NS, "c", "nowhere"], "NOROOM");
    fx.refused(&["VIOLET.JOIN", NS, "c", ""], "ERR");
    fx.refused(&["VIOLET.JOIN", NS, "c"], "ERR");
    fx.refused(&["VIOLET.JOIN", NS, "c", "home", "extra"], "ERR");
    fx.refused(&["VIOLET.JOIN"], "ERR");
    fx.check();
}

#[test]
fn private_rooms_can_be_joined_by_id() {
    let mut fx = fixture();
    let _: String = ok(
        &mut fx.con,
        &["VIOLET.CREATE", NS, "a", "secret", "visibility", "PRIVATE"],
    );
    let joined: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "b", "secret"]);
    assert_eq!(joined, (None, 2));
    let top: Vec<Value> = ok(&mut fx.con, &["VIOLET.TOP", NS]);
    assert!(top.is_empty());
    let ranked: i64 = ok(&mut fx.con, &["EXISTS", "violet:{wp}:rooms"]);
    assert_eq!(ranked, 0, "private rooms never touch the ranking");
    fx.check();
}

#[test]
fn leave_replies_with_the_room_and_the_last_one_out_destroys_it() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "a", "r1", "title", "t"]);
    let _: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "b", "r1"]);
    let left: Option<String> = ok(&mut fx.con, &["VIOLET.LEAVE", NS, "a"]);
    assert_eq!(left.as_deref(), Some("r1"));
    let score: f64 = ok(&mut fx.con, &["ZSCORE", "violet:{wp}:rooms", "r1"]);
    assert_eq!(score, 1.0);
    let left: Option<String> = ok(&mut fx.con, &["VIOLET.LEAVE", NS, "b"]);
    assert_eq!(left.as_deref(), Some("r1"));
    let none: Option<String> = ok(&mut fx.con, &["VIOLET.LEAVE", NS, "b"]);
    assert_eq!(none, None);
    let keys: Vec<String> = ok(&mut fx.con, &["KEYS", "*"]);
    assert!(
        keys.is_empty(),
        "no key of a destroyed room remains: {keys:?}"
    );
    let events = fx.events.drain(&mut fx.con);
    assert_eq!(
        &events[2..],
        [
            json!({"event": "left", "room": "r1", "socket": "a", "viewers": 1, "reason": "left"}),
            json!({"event": "left", "room": "r1", "socket": "b", "viewers": 0, "reason": "left"}),
            json!({"event": "destroyed", "room": "r1"}),
        ]
    );
    fx.refused(&["VIOLET.LEAVE", NS], "ERR");
}

#[test]
fn top_lists_public_rooms_by_viewers_with_details() {
    let mut fx = fixture();
    let _: String = ok(
        &mut fx.con,
        &["VIOLET.CREATE", NS, "a", "one", "title", "One"],
    );
    let _: String = ok(
        &mut fx.con,
        &["VIOLET.CREATE", NS, "b", "two", "capacity", "5"],
    );
    let _: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "c", "two"]);
    let _: String = ok(
        &mut fx.con,
        &["VIOLET.CREATE", NS, "d", "hidden", "visibility", "private"],
    );
    type Row = (String, i64, Vec<(String, String)>);
    let top: Vec<Row> = ok(&mut fx.con, &["VIOLET.TOP", NS]);
    assert_eq!(
        top,
        [
            (
                "two".into(),
                2,
                vec![
                    ("owner".into(), "b".into()),
                    ("capacity".into(), "5".into()),
                    ("visibility".into(), "public".into())
                ]
            ),
            (
                "one".into(),
                1,
                vec![
                    ("owner".into(), "a".into()),
                    ("title".into(), "One".into()),
                    ("visibility".into(), "public".into())
                ]
            ),
        ]
    );
    let page: Vec<Row> = ok(
        &mut fx.con,
        &["VIOLET.TOP", NS, "offset", "1", "COUNT", "1"],
    );
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].0, "one");
    let none: Vec<Row> = ok(&mut fx.con, &["VIOLET.TOP", NS, "COUNT", "0"]);
    assert!(none.is_empty());
    fx.refused(&["VIOLET.TOP", NS, "COUNT", "1001"], "ERR");
    fx.refused(&["VIOLET.TOP", NS, "COUNT", "-1"], "ERR");
    fx.refused(&["VIOLET.TOP", NS, "LIMIT", "1"], "ERR");
    fx.refused(&["VIOLET.TOP", NS, "COUNT"], "ERR");
}

/// `MAXBYTES b` stops the list after the room that takes the reply's room
/// ids and details past `b` bytes: the first rooms of the same list, at
/// least one, however large each room is.
#[test]
fn top_maxbytes_bounds_the_reply() {
    let mut fx = fixture();
    let value = "v".repeat(4000);
    for r in 0..40 {
        let (socket, room) = (format!("s{r}"), format!("room-{r}"));
        let names: Vec<String> = (0..14).map(|f| format!("f{f}")).collect();
        let mut args = vec!["VIOLET.CREATE", NS, &socket, &room];
        for name in &names {
            args.extend([name.as_str(), value.as_str()]);
        }
        let _: String = ok(&mut fx.con, &args);
    }
    type Row = (String, i64, Vec<(String, String)>);
    let bytes = |row: &Row| -> u64 {
        let fields: usize = row.2.iter().map(|(n, v)| n.len() + v.len()).sum();
        (row.0.len() + fields) as u64
    };
    let all: Vec<Row> = ok(&mut fx.con, &["VIOLET.TOP", NS, "COUNT", "1000"]);
    assert_eq!(all.len(), 40);
    assert!(all.iter().all(|row| bytes(row) > 56_000));
    // Unchanged when the rooms fit.
    let big: Vec<Row> = ok(
        &mut fx.con,
        &["VIOLET.TOP", NS, "COUNT", "1000", "MAXBYTES", "100000000"],
    );
    assert_eq!(big, all);
    for max in [1u64, 56_000, 100_000, 1 << 20] {
        let max_text = max.to_string();
        let cut: Vec<Row> = ok(
            &mut fx.con,
            &["VIOLET.TOP", NS, "COUNT", "1000", "MAXBYTES", &max_text],
        );
        // The rooms up to the first that passes `max`, and no more.
        let mut total = 0;
        let expected = all
            .iter()
            .position(|row| {
                total += bytes(row);
                total > max
            })
            .map_or(all.len(), |last| last + 1);
        assert_eq!(cut, all[..expected], "MAXBYTES {max}");
        assert!(total > max);
        let reply_bytes: u64 = cut.iter().map(bytes).sum();
        assert!(reply_bytes <= max + bytes(&all[0]), "MAXBYTES {max}");
    }
    // 1 MiB holds 18 of these rooms and part of a 19th: 19 are listed.
    let mib: Vec<Row> = ok(
        &mut fx.con,
        &["VIOLET.TOP", NS, "COUNT", "1000", "MAXBYTES", "1048576"],
    );
    assert_eq!(mib.len(), 19);
    // With OFFSET, the bytes count from the first room listed.
    let page: Vec<Row> = ok(
        &mut fx.con,
        &[
            "VIOLET.TOP",
            NS,
            "COUNT",
            "5",
            "OFFSET",
            "39",
            "maxbytes",
            "1",
        ],
    );
    assert_eq!(page, all[39..]);
    let none: Vec<Row> = ok(
        &mut fx.con,
        &["VIOLET.TOP", NS, "OFFSET", "40", "MAXBYTES", "1"],
    );
    assert!(none.is_empty());
    let zero: Vec<Row> = ok(
        &mut fx.con,
        &["VIOLET.TOP", NS, "COUNT", "0", "MAXBYTES", "1"],
    );
    assert!(zero.is_empty());
    for bad in ["0", "-1", "x", "18446744073709551616"] {
        let message = fx.refused(&["VIOLET.TOP", NS, "MAXBYTES", bad], "ERR");
        assert!(message.contains("MAXBYTES"), "{message}");
    }
    fx.refused(&["VIOLET.TOP", NS, "MAXBYTES"], "ERR");
    // `COMMAND DOCS` names the option.
    let docs: Value = ok(&mut fx.con, &["COMMAND", "DOCS", "VIOLET.TOP"]);
    let docs = format!("{docs:?}");
    assert!(
        docs.contains("maxbytes") && docs.contains("MAXBYTES"),
        "{docs}"
    );
}

#[test]
fn room_members_and_where_read_one_room_or_socket() {
    let mut fx = fixture();
    let _: String = ok(
        &mut fx.con,
        &["VIOLET.CREATE", NS, "b", "r1", "topic", "anime"],
    );
    let _: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "a", "r1"]);
    let room: (String, i64, Vec<(String, String)>) = ok(&mut fx.con, &["VIOLET.ROOM", NS, "r1"]);
    assert_eq!(room.0, "r1");
    assert_eq!(room.1, 2);
    assert!(room.2.contains(&("topic".into(), "anime".into())));
    let missing: Value = ok(&mut fx.con, &["VIOLET.ROOM", NS, "nope"]);
    assert_eq!(missing, Value::Nil);
    let (next, mut members): (String, Vec<String>) = ok(&mut fx.con, &["VIOLET.MEMBERS", NS, "r1"]);
    members.sort();
    assert_eq!(
        (next.as_str(), members),
        ("0", vec!["a".to_owned(), "b".to_owned()])
    );
    let nobody: (String, Vec<String>) = ok(&mut fx.con, &["VIOLET.MEMBERS", NS, "nope"]);
    assert_eq!(nobody, ("0".to_owned(), vec![]));
    let at: Option<String> = ok(&mut fx.con, &["VIOLET.WHERE", NS, "a"]);
    assert_eq!(at.as_deref(), Some("r1"));
    let nowhere: Option<String> = ok(&mut fx.con, &["VIOLET.WHERE", NS, "zz"]);
    assert_eq!(nowhere, None);
    fx.refused(&["VIOLET.ROOM", NS, "bad id"], "ERR");
    fx.refused(&["VIOLET.MEMBERS", NS], "ERR");
    fx.refused(&["VIOLET.MEMBERS", NS, "r1", "COUNT", "0"], "ERR");
    fx.refused(&["VIOLET.MEMBERS", NS, "r1", "COUNT", "501"], "ERR");
    fx.refused(&["VIOLET.MEMBERS", NS, "r1", "CURSOR", "x"], "ERR");
    fx.refused(&["VIOLET.WHERE", NS, "a", "b"], "ERR");
}

#[test]
fn update_changes_details_and_visibility_moves_the_ranking() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "a", "r1"]);
    let _: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", NS, "b", "r1"]);
    fx.events.drain(&mut fx.con);
    let reply: String = ok(
        &mut fx.con,
        &[
            "VIOLET.UPDATE",
            NS,
            "r1",
            "title",
            "New",
            "visibility",
            "private",
        ],
    );
    assert_eq!(reply, "OK");
    let ranked: Option<f64> = ok(&mut fx.con, &["ZSCORE", "violet:{wp}:rooms", "r1"]);
    assert_eq!(ranked, None);
    assert_eq!(
        fx.events.next_event(),
        json!({"event": "updated", "room": "r1", "fields": {"title": "New", "visibility": "private"}})
    );
    let _: String = ok(
        &mut fx.con,
        &["VIOLET.UPDATE", NS, "r1", "Visibility", "Public"],
    );
    let ranked: Option<f64> = ok(&mut fx.con, &["ZSCORE", "violet:{wp}:rooms", "r1"]);
    assert_eq!(ranked, Some(2.0), "back in the ranking with its live count");
    fx.refused(&["VIOLET.UPDATE", NS, "nope", "title", "x"], "NOROOM");
    fx.refused(&["VIOLET.UPDATE", NS, "r1", "owner", "b"], "ERR");
    fx.refused(&["VIOLET.UPDATE", NS, "r1", "capacity", "none"], "ERR");
    fx.refused(&["VIOLET.UPDATE", NS, "r1"], "ERR");
    fx.refused(&["VIOLET.UPDATE", NS, "r1", "title"], "ERR");
    fx.check();
}

#[test]
fn say_publishes_to_the_senders_room() {
    let mut fx = fixture();
    fx.refused(&["VIOLET.SAY", NS, "a", "hello"], "NOTINROOM");
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "a", "r1"]);
    fx.events.drain(&mut fx.con);
    let room: String = ok(&mut fx.con, &["VIOLET.SAY", NS, "a", r#"{"text":"hi"}"#]);
    assert_eq!(room, "r1");
    assert_eq!(
        fx.events.next_event(),
        json!({"event": "message", "room": "r1", "socket": "a", "data": "{\"text\":\"hi\"}"})
    );
    fx.refused(&["VIOLET.SAY", NS, "a", &"x".repeat(64 * 1024 + 1)], "ERR");
}

#[test]
fn check_reports_tampering() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "a", "r1"]);
    fx.check();
    let _: i64 = ok(&mut fx.con, &["ZINCRBY", "violet:{wp}:rooms", "-1", "r1"]);
    let _: i64 = ok(
        &mut fx.con,
        &["HSET", "violet:{wp}:node:a", "a:ghost", "r1"],
    );
    let err = call(&mut fx.con, &["VIOLET.CHECK", NS]).unwrap_err();
    assert_eq!(err.code(), Some("CORRUPT"));
    let text = err.to_string();
    assert!(text.contains("2 violation(s)"), "{text}");
    assert!(text.contains("ranked 0"), "{text}");
    assert!(text.contains("\"a:ghost\""), "{text}");
}

#[test]
fn keys_of_the_wrong_type_give_wrongtype_and_change_nothing() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "a", "r1"]);
    let _: () = ok(&mut fx.con, &["SET", "violet:{wp}:rooms", "oops"]);
    fx.refused(&["VIOLET.JOIN", NS, "b", "r1"], "WRONGTYPE");
    fx.refused(&["VIOLET.TOP", NS], "WRONGTYPE");
}

#[test]
fn namespaces_are_independent() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "a", "r1"]);
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", "other", "a", "r1"]);
    let joined: (Option<String>, i64) = ok(&mut fx.con, &["VIOLET.JOIN", "other", "b", "r1"]);
    assert_eq!(joined, (None, 2));
    let here: (String, i64, Vec<(String, String)>) = ok(&mut fx.con, &["VIOLET.ROOM", NS, "r1"]);
    assert_eq!(here.1, 1);
    fx.check();
    let other: String = ok(&mut fx.con, &["VIOLET.CHECK", "other"]);
    assert_eq!(other, "OK");
}

#[test]
fn commands_work_inside_multi_exec() {
    let fx = fixture();
    let mut con = fx.server.connection();
    let (created, joined): (String, (Option<String>, i64)) = redis::pipe()
        .atomic()
        .cmd("VIOLET.CREATE")
        .arg(NS)
        .arg("a")
        .arg("r1")
        .cmd("VIOLET.JOIN")
        .arg(NS)
        .arg("b")
        .arg("r1")
        .query(&mut con)
        .unwrap();
    assert_eq!(created, "r1");
    assert_eq!(joined, (None, 2));
}

#[test]
fn check_reads_the_namespace_not_the_keyspace() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "a", "r1"]);
    // Unrelated keys: CHECK must not walk them (it used to SCAN them all).
    let mut pipe = redis::pipe();
    for i in 0..5_000 {
        pipe.cmd("SET").arg(format!("other:{i}")).arg("x").ignore();
    }
    let () = pipe.query(&mut fx.con).unwrap();
    // The reaper walks the keyspace once after load, a step every 20 ms,
    // looking for namespaces: let that walk end first (no SCAN for 300 ms).
    let scans = |con: &mut redis::Connection| -> String {
        let stats: String = ok(con, &["INFO", "commandstats"]);
        stats
            .lines()
            .find(|l| l.starts_with("cmdstat_scan:"))
            .unwrap_or_default()
            .to_owned()
    };
    let mut walked = false;
    for _ in 0..100 {
        let before = scans(&mut fx.con);
        std::thread::sleep(std::time::Duration::from_millis(300));
        if scans(&mut fx.con) == before {
            walked = true;
            break;
        }
    }
    assert!(walked, "the reaper's walk of the keyspace never ended");
    let _: () = ok(&mut fx.con, &["CONFIG", "RESETSTAT"]);
    fx.check();
    let stats: String = ok(&mut fx.con, &["INFO", "commandstats"]);
    assert!(!stats.contains("cmdstat_scan"), "CHECK scanned: {stats}");
    let full: String = ok(&mut fx.con, &["VIOLET.CHECK", NS, "FULL"]);
    assert_eq!(full, "OK");
    let stats: String = ok(&mut fx.con, &["INFO", "commandstats"]);
    assert!(
        stats.contains("cmdstat_scan"),
        "FULL walks the keyspace: {stats}"
    );
}

#[test]
fn errors_quote_input_of_any_script_as_utf8() {
    let mut fx = fixture();
    // 一 (U+4E00) and 😀 (U+1F600) end in a zero byte: written one byte per
    // character, as redis-module did, they became NUL and aborted Redis.
    for room in [
        "salle-été",
        "Ж",
        "房间",
        "🎬",
        "مرحبا",
        "नमस्ते",
        "一",
        "😀",
        "Ā",
    ] {
        let message = fx.refused(&["VIOLET.JOIN", NS, "s1", room], "NOROOM");
        assert!(
            message.contains(&format!("\"{room}\"")),
            "the id comes back whole: {message}"
        );
    }
    // The raw reply, byte for byte, is valid UTF-8.
    let mut con = fx.server.connection();
    let err = redis::cmd("VIOLET.JOIN")
        .arg(NS)
        .arg("s1")
        .arg("房间")
        .query::<redis::Value>(&mut con)
        .unwrap_err();
    assert_eq!(err.detail(), Some("no such room \"房间\""));
}

#[test]
fn ids_with_invisible_characters_are_refused() {
    let mut fx = fixture();
    for id in ["a\u{200B}b", "\u{FEFF}r", "abc\u{202E}fed"] {
        fx.refused(&["VIOLET.CREATE", NS, "s1", id], "ERR");
        fx.refused(&["VIOLET.CREATE", NS, id, "r1"], "ERR");
        fx.refused(&["VIOLET.JOIN", id, "s1", "r1"], "ERR");
    }
}

#[test]
fn a_room_holds_at_most_32_fields_besides_its_owner() {
    let mut fx = fixture();
    let fields: Vec<String> = (0..32)
        .flat_map(|i| [format!("f{i}"), "v".into()])
        .collect();
    let mut create: Vec<&str> = vec!["VIOLET.CREATE", NS, "s1", "r1"];
    create.extend(fields.iter().map(String::as_str));
    // 32 free fields and the default visibility would be 33.
    fx.refused(&create, "ERR");
    create.truncate(create.len() - 2);
    let _: String = ok(&mut fx.con, &create);
    let stored: Vec<(String, String)> = ok(&mut fx.con, &["HGETALL", "violet:{wp}:room:r1"]);
    assert_eq!(stored.len(), 33, "owner, visibility and 31 fields");
    let _: String = ok(&mut fx.con, &["VIOLET.UPDATE", NS, "r1", "f0", "changed"]);
    fx.refused(&["VIOLET.UPDATE", NS, "r1", "one", "more"], "ERR");
    fx.check();
}

#[test]
fn members_of_a_big_room_come_in_bounded_pages() {
    let mut fx = fixture();
    let _: String = ok(&mut fx.con, &["VIOLET.CREATE", NS, "s0", "big"]);
    let mut pipe = redis::pipe();
    for i in 1..5_000 {
        pipe.cmd("VIOLET.JOIN")
            .arg(NS)
            .arg(format!("s{i}"))
            .arg("big")
            .ignore();
    }
    let () = pipe.query(&mut fx.con).unwrap();
    let (_, first): (String, Vec<String>) = ok(&mut fx.con, &["VIOLET.MEMBERS", NS, "big"]);
    assert!(
        first.len() <= 200,
        "a default page is about 100: {}",
        first.len()
    );
    let (_, larger): (String, Vec<String>) =
        ok(&mut fx.con, &["VIOLET.MEMBERS", NS, "big", "COUNT", "500"]);
    assert!(larger.len() <= 600, "at most about COUNT: {}", larger.len());
    let all = support::all_members(&mut fx.con, NS, "big");
    assert_eq!(all.len(), 5_000, "the pages cover the room");
}
