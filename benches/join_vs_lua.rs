//! `VIOLET.JOIN`, `VIOLET.CREATE` and `VIOLET.LEAVE` as native module
//! commands against the same rules written as Lua scripts (`benches/lua/`),
//! and plain `SADD` as a floor, side by side in one run on one server.
//!
//! - JOIN: one socket moves back and forth between two public rooms of 100
//!   viewers, so every call is a full move: leave one room, rerank it, join
//!   the other, rerank it, publish two events.
//! - CREATE: one socket creates a new public room on every call, leaving (and
//!   so destroying) the room it created before: three events.
//! - LEAVE: sockets joined beforehand (untimed) leave a public room of 100
//!   viewers and more, one by one: rerank, one event.
//! - SADD: a new member into one set.
//!
//! Each round runs every variant, in an order that rotates from round to
//! round, and reads two measures:
//!
//! - server time per call, from `INFO commandstats` (what the command costs
//!   Redis's single thread, without the network);
//! - calls per second seen by one client sending pipelines of 100 calls.
//!
//! `cargo bench --bench join_vs_lua` prints the medians and the ratios.

use redis::Value;
use std::time::Instant;
use support::RedisServer;

const NS: &str = "bench";
const ROUNDS: usize = 7;
const CALLS_PER_ROUND: usize = 20_000;
const PIPELINE: usize = 100;
const VIEWERS: usize = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Join,
    Create,
    Leave,
    Sadd,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Impl {
    Module,
    Lua,
    Plain,
}

#[derive(Clone, Copy)]
struct Variant {
    op: Op,
    imp: Impl,
}

const VARIANTS: [Variant; 7] = [
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
    fn word(self) -> &'static str {
        match self {
            Op::Join => "JOIN",
            Op::Create => "CREATE",
            Op::Leave => "LEAVE",
            Op::Sadd => "SADD",
        }
    }
}

impl Variant {
    fn name(self) -> String {
        match self.imp {
            Impl::Module => format!("module VIOLET.{}", self.op.word()),
            Impl::Lua => format!("Lua {}.lua", self.op.word().to_lowercase()),
            Impl::Plain => "plain SADD".to_owned(),
        }
    }

    /// The `INFO commandstats` entry that times this variant.
    fn stat(self) -> String {
        match self.imp {
            Impl::Module => format!("cmdstat_VIOLET.{}:", self.op.word()),
            Impl::Lua => "cmdstat_evalsha:".to_owned(),
            Impl::Plain => "cmdstat_sadd:".to_owned(),
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

struct Scripts {
    join: String,
    create: String,
    leave: String,
}

struct Sample {
    server_usec_per_call: f64,
    calls_per_sec: f64,
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

fn setup(con: &mut redis::Connection) -> Scripts {
    for room in ["a", "b", "l"] {
        let _: String = redis::cmd("VIOLET.CREATE")
            .arg(NS)
            .arg(format!("{room}-0"))
            .arg(room)
            .query(con)
            .unwrap();
        for viewer in 1..VIEWERS {
            let _: Value = redis::cmd("VIOLET.JOIN")
                .arg(NS)
                .arg(format!("{room}-{viewer}"))
                .arg(room)
                .query(con)
                .unwrap();
        }
    }
    Scripts {
        join: load(con, "join.lua"),
        create: load(con, "create.lua"),
        leave: load(con, "leave.lua"),
    }
}

/// One call of the variant: the `i`th of round `round`.
fn push_call(
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

/// What a variant needs before its timed calls: LEAVE needs its sockets in
/// the room.
fn prepare(con: &mut redis::Connection, variant: Variant, round: usize) {
    if variant.op != Op::Leave {
        return;
    }
    let tag = variant.tag();
    for batch in 0..CALLS_PER_ROUND / PIPELINE {
        let mut pipe = redis::pipe();
        for call in 0..PIPELINE {
            let i = batch * PIPELINE + call;
            pipe.cmd("VIOLET.JOIN")
                .arg(NS)
                .arg(format!("leaver-{tag}:{round}-{i}"))
                .arg("l");
        }
        let _: Vec<Value> = pipe.query(con).unwrap();
    }
}

fn run(con: &mut redis::Connection, variant: Variant, scripts: &Scripts, round: usize) -> Sample {
    prepare(con, variant, round);
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(con).unwrap();
    let mut elapsed = 0.0;
    for batch in 0..CALLS_PER_ROUND / PIPELINE {
        let mut pipe = redis::pipe();
        for call in 0..PIPELINE {
            push_call(&mut pipe, variant, scripts, round, batch * PIPELINE + call);
        }
        let start = Instant::now();
        let replies: Vec<Value> = pipe.query(con).unwrap();
        elapsed += start.elapsed().as_secs_f64();
        assert_eq!(replies.len(), PIPELINE);
        if let Some(error) = replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
            panic!("{}: {error:?}", variant.name());
        }
    }
    let stats: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let stat = variant.stat();
    let line = stats
        .lines()
        .find(|l| l.starts_with(&stat))
        .expect("command stats");
    let usec = line
        .split(',')
        .find_map(|f| f.strip_prefix("usec_per_call="))
        .and_then(|v| v.parse().ok())
        .expect("usec_per_call");
    Sample {
        server_usec_per_call: usec,
        calls_per_sec: CALLS_PER_ROUND as f64 / elapsed,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let scripts = setup(&mut con);
    let mut samples: Vec<Vec<Sample>> = VARIANTS.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for i in 0..VARIANTS.len() {
            let i = (i + round) % VARIANTS.len();
            samples[i].push(run(&mut con, VARIANTS[i], &scripts, round));
        }
    }
    let checked: String = redis::cmd("VIOLET.CHECK")
        .arg(NS)
        .arg("FULL")
        .query(&mut con)
        .unwrap();
    assert_eq!(checked, "OK", "every variant kept every invariant");

    let summary: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| {
            (
                median(s.iter().map(|x| x.server_usec_per_call).collect()),
                median(s.iter().map(|x| x.calls_per_sec).collect()),
            )
        })
        .collect();
    println!(
        "join_vs_lua: {ROUNDS} rounds x {CALLS_PER_ROUND} calls per variant, pipelines of {PIPELINE}, rooms of {VIEWERS}"
    );
    println!(
        "{:<24} {:>16} {:>16}",
        "variant", "server us/call", "client calls/s"
    );
    for (variant, (usec, rate)) in VARIANTS.iter().zip(&summary) {
        println!("{:<24} {:>16.2} {:>16.0}", variant.name(), usec, rate);
    }
    let of = |op: Op, imp: Impl| {
        let i = VARIANTS
            .iter()
            .position(|v| v.op == op && v.imp == imp)
            .unwrap();
        summary[i]
    };
    for op in [Op::Join, Op::Create, Op::Leave] {
        let (module, lua) = (of(op, Impl::Module), of(op, Impl::Lua));
        println!(
            "{:<7} Lua/module server time per call {:.2}x, module/Lua client calls/s {:.2}x",
            op.word(),
            lua.0 / module.0,
            module.1 / lua.1
        );
    }
    let (join, sadd) = (of(Op::Join, Impl::Module), of(Op::Sadd, Impl::Plain));
    println!(
        "JOIN/SADD client calls/s {:.2} (server time per call SADD/JOIN {:.2})",
        join.1 / sadd.1,
        sadd.0 / join.0
    );
}
