//! `VIOLET.JOIN`, `VIOLET.CREATE` and `VIOLET.LEAVE` as native module
//! commands against the same rules written as Lua scripts (`benches/lua/`),
//! and plain `SADD` as a floor, side by side in one run on one server.
//!
//! The variants and the rooms they use are described in `common` (which
//! the `instructions` benchmark shares).
//!
//! Each round runs every variant, in an order that rotates from round to
//! round, and reads two measures:
//!
//! - server time per call, from `INFO commandstats` (what the command costs
//!   Redis's single thread, without the network);
//! - calls per second seen by one client sending pipelines of 100 calls.
//!
//! `cargo bench --bench join_vs_lua` prints the medians and the ratios.

mod common;

use common::{Impl, Op, Scripts, Variant, PIPELINE, VARIANTS, VIEWERS};
use support::RedisServer;

const ROUNDS: usize = 7;
const CALLS_PER_ROUND: usize = 20_000;

/// The `INFO commandstats` entry that times a variant.
fn stat(variant: Variant) -> String {
    match variant.imp {
        Impl::Module => format!("cmdstat_VIOLET.{}:", variant.op.word()),
        Impl::Lua => "cmdstat_evalsha:".to_owned(),
        Impl::Plain => "cmdstat_sadd:".to_owned(),
    }
}

struct Sample {
    server_usec_per_call: f64,
    calls_per_sec: f64,
}

fn run(con: &mut redis::Connection, variant: Variant, scripts: &Scripts, round: usize) -> Sample {
    common::prepare(con, variant, round, CALLS_PER_ROUND);
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(con).unwrap();
    let elapsed = common::send(con, variant, scripts, round, CALLS_PER_ROUND);
    let stats: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let stat = stat(variant);
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
    let scripts = common::setup(&mut con);
    let mut samples: Vec<Vec<Sample>> = VARIANTS.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for i in 0..VARIANTS.len() {
            let i = (i + round) % VARIANTS.len();
            samples[i].push(run(&mut con, VARIANTS[i], &scripts, round));
        }
    }
    common::check(&mut con);

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
