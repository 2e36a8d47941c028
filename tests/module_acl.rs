//! Redis ACLs against the `VIOLET.*` commands, on a real redis-server: key
//! patterns apply to the keys a command really touches (`violet:{NS}:*`), not
//! to the bare namespace; read-only key permissions are enough for the
//! queries; publishing needs the events channel; scripts lend no rights; and
//! each command carries its flags, ACL categories (where the server allows
//! module commands to have them) and `COMMAND DOCS`.
//!
//! Every refused command is checked to have changed nothing (`DEBUG DIGEST`)
//! and published nothing.
//!
//! `VIOLET_REDIS_SERVER=/path/to/valkey-server` runs the same tests on another
//! server; the ACL-category checks then cover what Redis 7.0 cannot do.

use redis::{Connection, Value};
use support::events::Events;
use support::RedisServer;

const PASSWORD: &str = "pw";

/// Every command, with arguments that would succeed for an unrestricted user
/// on the namespace `ns` set up by [`Fixture::populate`].
fn every_command(ns: &str) -> Vec<Vec<String>> {
    [
        "VIOLET.CREATE {ns} s9 r9 title x",
        "VIOLET.JOIN {ns} s9 r1",
        "VIOLET.UPDATE {ns} r1 title y",
        "VIOLET.SAY {ns} s1 hello",
        "VIOLET.LEAVE {ns} s2",
        "VIOLET.LEASE {ns} n9 60000",
        "VIOLET.RELEASE {ns} s9",
        "VIOLET.TOP {ns}",
        "VIOLET.ROOM {ns} r1",
        "VIOLET.MEMBERS {ns} r1",
        "VIOLET.WHERE {ns} s1",
        "VIOLET.CHECK {ns}",
    ]
    .iter()
    .map(|line| {
        line.replace("{ns}", ns)
            .split(' ')
            .map(str::to_owned)
            .collect()
    })
    .collect()
}

/// The commands that change the namespace and publish (`VIOLET.LEASE`
/// changes it and publishes nothing).
const WRITES: [&str; 5] = [
    "VIOLET.CREATE",
    "VIOLET.JOIN",
    "VIOLET.LEAVE",
    "VIOLET.UPDATE",
    "VIOLET.RELEASE",
];
/// Every command that changes the namespace.
const CHANGES: [&str; 6] = [
    "VIOLET.CREATE",
    "VIOLET.JOIN",
    "VIOLET.LEAVE",
    "VIOLET.UPDATE",
    "VIOLET.RELEASE",
    "VIOLET.LEASE",
];
const QUERIES: [&str; 5] = [
    "VIOLET.TOP",
    "VIOLET.ROOM",
    "VIOLET.MEMBERS",
    "VIOLET.WHERE",
    "VIOLET.CHECK",
];

/// Every command by name, for users on servers without module ACL categories.
const ALL_COMMANDS: &str = "+violet.create +violet.join +violet.leave +violet.update +violet.say \
                            +violet.top +violet.room +violet.members +violet.where +violet.check \
                            +violet.lease +violet.release";

struct Fixture {
    server: RedisServer,
    /// The default user: no restrictions.
    admin: Connection,
    events_a: Events,
    events_b: Events,
    /// What the last allowed command published on `a`.
    published: Vec<serde_json::Value>,
}

fn fixture() -> Fixture {
    let server = RedisServer::start();
    let admin = server.connection();
    let events_a = Events::subscribe(&server, "a");
    let events_b = Events::subscribe(&server, "b");
    let mut fx = Fixture {
        server,
        admin,
        events_a,
        events_b,
        published: Vec::new(),
    };
    fx.populate("a");
    fx.populate("b");
    fx
}

fn call(con: &mut Connection, args: &[impl AsRef<str>]) -> redis::RedisResult<Value> {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    redis::cmd(args[0]).arg(&args[1..]).query(con)
}

fn digest(con: &mut Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(con).unwrap()
}

impl Fixture {
    /// Room `r1` with `s1` and `s2` in namespace `ns`, as the default user.
    fn populate(&mut self, ns: &str) {
        for args in [
            ["VIOLET.CREATE", ns, "s1", "r1"],
            ["VIOLET.JOIN", ns, "s2", "r1"],
        ] {
            call(&mut self.admin, &args).unwrap();
        }
        self.events_a.drain(&mut self.admin);
        self.events_b.drain(&mut self.admin);
    }

    /// Creates a user from ACL rules (as `ACL SETUSER name on >pw RULES...`)
    /// and connects as that user.
    fn user(&mut self, name: &str, rules: &str) -> Connection {
        let mut setuser = redis::cmd("ACL");
        setuser.arg("SETUSER").arg(name).arg("reset").arg("on");
        setuser.arg(format!(">{PASSWORD}"));
        for rule in rules.split_whitespace() {
            setuser.arg(rule);
        }
        let ok: String = setuser.query(&mut self.admin).unwrap();
        assert_eq!(ok, "OK");
        let url = format!(
            "redis://{name}:{PASSWORD}@127.0.0.1:{}/",
            self.server.port()
        );
        redis::Client::open(url)
            .and_then(|c| c.get_connection())
            .expect("connect as the user")
    }

    /// Asserts that `con` is refused `args` with `NOPERM`, and that nothing
    /// changed and nothing was published. Returns the error message.
    fn refused(&mut self, con: &mut Connection, args: &[impl AsRef<str>]) -> String {
        let shown: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let before = digest(&mut self.admin);
        let err = call(con, args).expect_err("the command must be refused");
        assert_eq!(err.code(), Some("NOPERM"), "{shown:?}: {err}");
        assert_eq!(digest(&mut self.admin), before, "{shown:?} changed data");
        assert_eq!(
            self.events_a.drain(&mut self.admin),
            Vec::<serde_json::Value>::new(),
            "{shown:?} published on a"
        );
        assert_eq!(
            self.events_b.drain(&mut self.admin),
            Vec::<serde_json::Value>::new(),
            "{shown:?} published on b"
        );
        err.to_string()
    }

    /// Asserts that `con` may run `args`; returns the reply and the events
    /// it published on `a`.
    fn allowed(&mut self, con: &mut Connection, args: &[impl AsRef<str>]) -> Value {
        let shown: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
        let reply = call(con, args).unwrap_or_else(|e| panic!("{shown:?} refused: {e}"));
        self.published = self.events_a.drain(&mut self.admin);
        self.events_b.drain(&mut self.admin);
        reply
    }
}

/// The server's `INFO server` field, if present.
fn info_field(con: &mut Connection, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg("server").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_owned())
}

/// Whether module commands can be put in ACL categories: Redis 7.2 added
/// `RedisModule_SetCommandACLCategories` (Valkey reports 7.2.4 here).
fn server_has_module_acl_categories(con: &mut Connection) -> bool {
    let version = info_field(con, "redis_version").unwrap();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (7, 2)
}

/// Every string anywhere in a reply, flattened.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::BulkString(b) => vec![String::from_utf8_lossy(b).into_owned()],
        Value::SimpleString(s) => vec![s.clone()],
        Value::Int(n) => vec![n.to_string()],
        Value::Array(items) | Value::Set(items) => items.iter().flat_map(strings).collect(),
        Value::Map(pairs) => pairs
            .iter()
            .flat_map(|(k, v)| strings(k).into_iter().chain(strings(v)))
            .collect(),
        _ => Vec::new(),
    }
}

/// `COMMAND INFO name`, as its fields.
fn command_info(con: &mut Connection, name: &str) -> Vec<Value> {
    let reply: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg(name)
        .query(con)
        .unwrap();
    match reply.into_iter().next() {
        Some(Value::Array(fields)) => fields,
        other => panic!("COMMAND INFO {name}: {other:?}"),
    }
}

#[test]
fn the_namespace_routes_like_a_key_but_acl_does_not_take_it_for_one() {
    let mut fx = fixture();
    for args in every_command("a") {
        let info = command_info(&mut fx.admin, &args[0]);
        let range: Vec<String> = info[3..6].iter().flat_map(strings).collect();
        assert_eq!(range, ["1", "1", "1"], "{}: first, last, step", args[0]);
        let spec = strings(&info[8]);
        assert!(spec.iter().any(|f| f == "not_key"), "{}: {spec:?}", args[0]);
        let access = if CHANGES.contains(&args[0].as_str()) {
            "RW"
        } else {
            "RO"
        };
        assert!(spec.iter().any(|f| f == access), "{}: {spec:?}", args[0]);
        // Redis's key-based checks (ACL patterns, COMMAND GETKEYS) skip it.
        let err = redis::cmd("COMMAND")
            .arg("GETKEYS")
            .arg(&args)
            .query::<Value>(&mut fx.admin)
            .expect_err("NS is not a key");
        assert!(err.to_string().contains("no key arguments"), "{err}");
    }
}

#[test]
fn commands_carry_their_flags_and_acl_categories() {
    let mut fx = fixture();
    let categorised = server_has_module_acl_categories(&mut fx.admin);
    for args in every_command("a") {
        let name = args[0].as_str();
        let info = command_info(&mut fx.admin, name);
        let flags = strings(&info[2]);
        let writes = CHANGES.contains(&name);
        let publishes = WRITES.contains(&name) || name == "VIOLET.SAY";
        let fast = ![
            "VIOLET.TOP",
            "VIOLET.MEMBERS",
            "VIOLET.CHECK",
            "VIOLET.RELEASE",
        ]
        .contains(&name);
        let has = |f: &str| flags.iter().any(|x| x == f);
        assert_eq!(has("write"), writes, "{name}: {flags:?}");
        assert_eq!(has("readonly"), !writes, "{name}: {flags:?}");
        assert_eq!(has("fast"), fast, "{name}: {flags:?}");
        assert_eq!(has("pubsub"), publishes, "{name}: {flags:?}");

        let categories = strings(&info[6]);
        if !categorised {
            // Redis 7.0 has no API to put a module command in a category.
            assert_eq!(categories, Vec::<String>::new(), "{name}");
            continue;
        }
        let mut expected = vec![
            if writes { "@write" } else { "@read" },
            if fast { "@fast" } else { "@slow" },
        ];
        if publishes {
            expected.push("@pubsub");
        }
        for category in expected {
            assert!(
                categories.iter().any(|c| c == category),
                "{name}: {categories:?}"
            );
        }
    }
    if !categorised {
        eprintln!(
            "this server cannot put module commands in ACL categories (needs Redis 7.2+): \
             category checks skipped"
        );
        return;
    }

    // `-@write` now keeps a user from every changing command.
    let mut reader = fx.user("reader", "+@all -@write ~* &*");
    for args in every_command("a") {
        if CHANGES.contains(&args[0].as_str()) {
            fx.refused(&mut reader, &args);
        } else {
            fx.allowed(&mut reader, &args);
        }
    }
    // `-@slow` keeps a user from the commands that read many entries.
    let mut quick = fx.user("quick", "+@all -@slow ~* &*");
    for name in ["VIOLET.TOP", "VIOLET.MEMBERS", "VIOLET.CHECK"] {
        let args = every_command("a")
            .into_iter()
            .find(|a| a[0] == name)
            .unwrap();
        fx.refused(&mut quick, &args);
    }

    // `@violet` (Redis 7.4+, Valkey) holds every command.
    let categories: Vec<String> = redis::cmd("ACL").arg("CAT").query(&mut fx.admin).unwrap();
    if categories.iter().any(|c| c == "violet") {
        let mut alice = fx.user("alice", "-@all +@violet ~violet:{a}:* &violet:{a}:events");
        for args in every_command("a") {
            fx.allowed(&mut alice, &args);
        }
    } else {
        eprintln!("this server cannot add ACL categories (needs Redis 7.4+): @violet skipped");
    }
}

#[test]
fn a_user_limited_to_one_namespace_has_all_of_it_and_nothing_else() {
    let mut fx = fixture();
    let mut alice = fx.user(
        "alice",
        &format!("-@all {ALL_COMMANDS} +multi +exec ~violet:{{a}}:* &violet:{{a}}:events"),
    );
    for args in every_command("b") {
        let message = fx.refused(&mut alice, &args);
        assert!(message.contains("violet:{b}:"), "{message}");
    }
    for args in every_command("a") {
        fx.allowed(&mut alice, &args);
        let publishes = WRITES.contains(&args[0].as_str()) || args[0] == "VIOLET.SAY";
        assert_eq!(!fx.published.is_empty(), publishes, "{args:?}");
    }

    // Inside MULTI/EXEC the refusal is the command's own reply.
    let before = digest(&mut fx.admin);
    let queued: String = redis::cmd("MULTI").query(&mut alice).unwrap();
    assert_eq!(queued, "OK");
    let queued: String = redis::cmd("VIOLET.JOIN")
        .arg(&["b", "s1", "r1"][..])
        .query(&mut alice)
        .unwrap();
    assert_eq!(queued, "QUEUED");
    let exec = redis::cmd("EXEC").query::<Value>(&mut alice);
    let shown = match &exec {
        Err(e) => format!("{:?}", e.code()),
        Ok(reply) => format!("{reply:?}"),
    };
    assert!(shown.contains("NOPERM"), "{exec:?}");
    assert_eq!(digest(&mut fx.admin), before);
}

#[test]
fn a_key_pattern_on_the_bare_namespace_grants_nothing() {
    let mut fx = fixture();
    let mut sly = fx.user("sly", &format!("-@all {ALL_COMMANDS} ~a &*"));
    for args in every_command("a") {
        let message = fx.refused(&mut sly, &args);
        assert!(message.contains("violet:{a}:"), "{message}");
    }
}

#[test]
fn read_only_key_permissions_are_enough_for_the_queries() {
    let mut fx = fixture();
    let mut reader = fx.user(
        "reader",
        &format!("-@all {ALL_COMMANDS} %R~violet:{{a}}:* &violet:{{a}}:events"),
    );
    for args in every_command("a") {
        let name = args[0].as_str();
        if QUERIES.contains(&name) {
            fx.allowed(&mut reader, &args);
        } else if name == "VIOLET.SAY" {
            // Reads one key and publishes: allowed with the channel.
            let room = fx.allowed(&mut reader, &args);
            assert_eq!(strings(&room), ["r1"]);
            assert_eq!(fx.published.len(), 1);
        } else {
            let message = fx.refused(&mut reader, &args);
            assert!(message.contains("read and write"), "{message}");
        }
    }
    // The same on the whole keyspace: `%R~*` reads every namespace.
    let mut everything = fx.user("everything", &format!("-@all {ALL_COMMANDS} %R~*"));
    for name in QUERIES {
        for ns in ["a", "b"] {
            let args = every_command(ns)
                .into_iter()
                .find(|a| a[0] == name)
                .unwrap();
            fx.allowed(&mut everything, &args);
        }
    }
}

#[test]
fn publishing_needs_the_events_channel() {
    let mut fx = fixture();
    let mut quiet = fx.user(
        "quiet",
        &format!("-@all {ALL_COMMANDS} ~violet:{{a}}:* resetchannels"),
    );
    let message = fx.refused(&mut quiet, &["VIOLET.SAY", "a", "s1", "hello"]);
    assert!(message.contains("violet:{a}:events"), "{message}");
    for name in WRITES {
        let args = every_command("a")
            .into_iter()
            .find(|a| a[0] == name)
            .unwrap();
        fx.refused(&mut quiet, &args);
    }
    for name in QUERIES {
        let args = every_command("a")
            .into_iter()
            .find(|a| a[0] == name)
            .unwrap();
        fx.allowed(&mut quiet, &args);
    }
    // A pattern on another namespace's channel does not help.
    let mut other = fx.user(
        "other",
        &format!("-@all {ALL_COMMANDS} ~violet:{{a}}:* &violet:{{b}}:events"),
    );
    fx.refused(&mut other, &["VIOLET.SAY", "a", "s1", "hello"]);
}

#[test]
fn scripts_lend_no_rights() {
    let mut fx = fixture();
    let mut alice = fx.user(
        "alice",
        &format!("-@all {ALL_COMMANDS} +eval ~violet:{{a}}:* &violet:{{a}}:events"),
    );
    let script = "return redis.call(ARGV[1], ARGV[2], ARGV[3], ARGV[4])";
    let eval = |ns: &'static str| ["EVAL", script, "0", "VIOLET.JOIN", ns, "s9", "r1"];
    let message = fx.refused(&mut alice, &eval("b"));
    assert!(message.contains("violet:{b}:"), "{message}");
    let joined = fx.allowed(&mut alice, &eval("a"));
    assert_eq!(strings(&joined), ["3"], "[nil, viewers]");
    let members = support::all_members(&mut fx.admin, "a", "r1");
    assert_eq!(members, ["s1", "s2", "s9"]);
}

#[test]
fn refusals_are_recorded_in_the_acl_log() {
    let mut fx = fixture();
    let _: String = redis::cmd("ACL")
        .arg("LOG")
        .arg("RESET")
        .query(&mut fx.admin)
        .unwrap();
    let mut alice = fx.user(
        "alice",
        &format!("-@all {ALL_COMMANDS} ~violet:{{a}}:* &violet:{{a}}:events"),
    );
    fx.refused(&mut alice, &["VIOLET.WHERE", "b", "s1"]);
    fx.refused(&mut alice, &["VIOLET.SAY", "b", "s1", "hi"]);
    let log: Value = redis::cmd("ACL").arg("LOG").query(&mut fx.admin).unwrap();
    let entries = strings(&log);
    let has = |s: &str| entries.iter().any(|e| e == s);
    assert!(has("violet:{b}:node:s1"), "{entries:?}");
    assert!(has("violet:{b}:events"), "{entries:?}");
    assert!(
        has("alice") && has("module") && has("key") && has("channel"),
        "{entries:?}"
    );
}

#[test]
fn command_docs_describe_every_command() {
    let mut fx = fixture();
    let docs: Value = redis::cmd("COMMAND")
        .arg("DOCS")
        .arg("VIOLET.JOIN")
        .query(&mut fx.admin)
        .unwrap();
    let text = strings(&docs);
    let after = |field: &str| {
        let i = text
            .iter()
            .position(|t| t == field)
            .unwrap_or_else(|| panic!("{field} in {text:?}"));
        text[i + 1].clone()
    };
    assert_eq!(
        after("summary"),
        "Moves the socket into an existing room, out of the room it was in"
    );
    assert_eq!(after("since"), "0.1.0");
    assert_eq!(after("complexity"), "O(1)");
    assert!(
        text.windows(2)
            .any(|w| w[0] == "module" && w[1] == "violet"),
        "{text:?}"
    );
    let names: Vec<&String> = text
        .windows(2)
        .filter(|w| w[0] == "name")
        .map(|w| &w[1])
        .collect();
    assert_eq!(names, ["namespace", "socket", "room"]);

    for args in every_command("a") {
        let docs: Value = redis::cmd("COMMAND")
            .arg("DOCS")
            .arg(&args[0])
            .query(&mut fx.admin)
            .unwrap();
        let text = strings(&docs);
        for field in ["summary", "since", "complexity", "arguments"] {
            assert!(
                text.iter().any(|t| t == field),
                "{}: {field} in {text:?}",
                args[0]
            );
        }
    }
    // Arity comes from the table too: Redis checks it before the module runs.
    let err = call(&mut fx.admin, &["VIOLET.JOIN", "a", "s1"]).unwrap_err();
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
}
