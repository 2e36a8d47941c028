//! What `join_vs_lua` and `instructions` share: the rooms both set up, the
//! variants both run (each module command, its Lua twin, plain `SADD`), and
//! how one call of each is sent.
//!
//! - JOIN: one socket moves back and forth between two public rooms of 100
//!   viewers, so every call is a full move: leave one room, rerank it, join
//!   the other, rerank it, publish two events.
//! - CREATE: one socket creates a new public room on every call, leaving (and
//!   so destroying) the room it created before: three events.
//! - LEAVE: sockets joined beforehand (untimed, [`prepare`]) leave a public
//!   room of 100 viewers and more, one by one: rerank, one event.
//! - SADD: a new member into one set.

use redis::Value;
use std::time::Instant;

pub const NS: &str = "bench";
pub const PIPELINE: usize = 100;
pub const VIEWERS: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Join,
    Create,
    Leave,
    Sadd,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Module,
    Lua,
    Plain,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub op: Op,
    pub imp: Impl,
}

pub const VARIANTS: [Variant; 7] = [
    Variant {
        op: Op::Join,
        imp: Impl::Module,
    },
    Variant {
        op: Op::Join,
        imp: Impl::Lua,
    },
    Variant {
        op: Op::Create,
        imp: Impl::Module,
    },
    Variant {
        op: Op::Create,
        imp: Impl::Lua,
    },
    Variant {
        op: Op::Leave,
        imp: Impl::Module,
    },
    Variant {
        op: Op::Leave,
        imp: Impl::Lua,
    },
    Variant {
        op: Op::Sadd,
        imp: Impl::Plain,
    },
];

impl Op {
    pub fn word(self) -> &'static str {
        match self {
            Op::Join => "JOIN",
            Op::Create => "CREATE",
            Op::Leave => "LEAVE",
            Op::Sadd => "SADD",
        }
    }
}

impl Variant {
    pub fn name(self) -> String {
        match self.imp {
            Impl::Module => format!("module VIOLET.{}", self.op.word()),
            Impl::Lua => format!("Lua {}.lua", self.op.word().to_lowercase()),
            Impl::Plain => "plain SADD".to_owned(),
        }
    }

    /// A short tag that keeps this variant's sockets and rooms apart.
    fn tag(self) -> &'static str {
        match self.imp {
            Impl::Module => "m",
            Impl::Lua => "l",
            Impl::Plain => "p",
        }
    }
}

/// The SHA1s of the Lua twins, loaded.
pub struct Scripts {
    join: String,
    create: String,
    leave: String,
}

fn load(con: &mut redis::Connection, name: &str) -> String {
    let path = support::workspace_root().join("benches/lua").join(name);
    let script = std::fs::read_to_string(path).unwrap();
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(script)
        .query(con)
        .unwrap()
}

/// Creates `rooms`, each a public room of [`VIEWERS`] sockets
/// (`ROOM-0` ... `ROOM-99`).
pub fn create_rooms(con: &mut redis::Connection, rooms: &[&str]) {
    for room in rooms {
        let _: String = redis::cmd("VIOLET.CREATE")
            .arg(NS)
            .arg(format!("{room}-0"))
            .arg(room)
            .query(con)
            .unwrap();
        let mut pipe = redis::pipe();
        for viewer in 1..VIEWERS {
            pipe.cmd("VIOLET.JOIN")
                .arg(NS)
                .arg(format!("{room}-{viewer}"))
                .arg(room);
        }
        let _: Vec<Value> = pipe.query(con).unwrap();
    }
}

/// The rooms every variant uses (`a` and `b` for JOIN, `l` for LEAVE), and
/// the Lua twins loaded.
pub fn setup(con: &mut redis::Connection) -> Scripts {
    create_rooms(con, &["a", "b", "l"]);
    Scripts {
        join: load(con, "join.lua"),
        create: load(con, "create.lua"),
        leave: load(con, "leave.lua"),
    }
}

/// One call of the variant: the `i`th of round `round`.
pub fn push_call(
    pipe: &mut redis::Pipeline,
    variant: Variant,
    scripts: &Scripts,
    round: usize,
    i: usize,
) {
    let tag = variant.tag();
    let (sha, args): (&str, Vec<String>) = match variant.op {
        Op::Join => (
            &scripts.join,
            vec![format!("mover-{tag}"), ["a", "b"][i & 1].to_owned()],
        ),
        Op::Create => (
            &scripts.create,
            vec![format!("creator-{tag}"), format!("c-{tag}-{round}-{i}")],
        ),
        Op::Leave => (&scripts.leave, vec![format!("leaver-{tag}:{round}-{i}")]),
        Op::Sadd => {
            pipe.cmd("SADD")
                .arg("bench-set")
                .arg(format!("{round}-{i}"));
            return;
        }
    };
    match variant.imp {
        Impl::Module => pipe
            .cmd(&format!("VIOLET.{}", variant.op.word()))
            .arg(NS)
            .arg(&args),
        _ => pipe.cmd("EVALSHA").arg(sha).arg(0).arg(NS).arg(&args),
    };
}

/// What `calls` calls of a variant in round `round` need beforehand, untimed:
/// LEAVE needs its sockets in the room.
pub fn prepare(con: &mut redis::Connection, variant: Variant, round: usize, calls: usize) {
    if variant.op != Op::Leave {
        return;
    }
    let tag = variant.tag();
    for batch in 0..calls.div_ceil(PIPELINE) {
        let mut pipe = redis::pipe();
        for i in batch * PIPELINE..calls.min((batch + 1) * PIPELINE) {
            pipe.cmd("VIOLET.JOIN")
                .arg(NS)
                .arg(format!("leaver-{tag}:{round}-{i}"))
                .arg("l");
        }
        let _: Vec<Value> = pipe.query(con).unwrap();
    }
}

/// Sends `calls` calls of the variant (round `round`) in pipelines of
/// [`PIPELINE`], and checks that none failed. Returns the seconds spent
/// waiting for the pipelines' replies.
pub fn send(
    con: &mut redis::Connection,
    variant: Variant,
    scripts: &Scripts,
    round: usize,
    calls: usize,
) -> f64 {
    let mut elapsed = 0.0;
    for batch in 0..calls.div_ceil(PIPELINE) {
        let mut pipe = redis::pipe();
        let range = batch * PIPELINE..calls.min((batch + 1) * PIPELINE);
        let expected = range.len();
        for i in range {
            push_call(&mut pipe, variant, scripts, round, i);
        }
        let start = Instant::now();
        let replies: Vec<Value> = pipe.query(con).unwrap();
        elapsed += start.elapsed().as_secs_f64();
        assert_eq!(replies.len(), expected);
        if let Some(error) = replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
            panic!("{}: {error:?}", variant.name());
        }
    }
    elapsed
}

/// Checks every invariant of the namespace after the runs.
pub fn check(con: &mut redis::Connection) {
    let checked: String = redis::cmd("VIOLET.CHECK")
        .arg(NS)
        .arg("FULL")
        .query(con)
        .unwrap();
    assert_eq!(checked, "OK", "every variant kept every invariant");
}
