//! `VIOLET.JOIN` as a native module command against the same rules as a Lua
//! script (`benches/lua/join.lua`), side by side in one run on one server.
//!
//! One socket moves back and forth between two public rooms of 100 viewers,
//! so every call is a full move: leave one room, rerank it, join the other,
//! rerank it, publish two events. Each round runs both variants, in
//! alternating order, and reads two measures:
//!
//! - server time per call, from `INFO commandstats` (what the command costs
//!   Redis's single thread, without the network);
//! - calls per second seen by a client sending pipelines of 100 calls.
//!
//! `cargo bench --bench join_vs_lua` prints the medians and the ratios.

use std::time::Instant;
use support::RedisServer;

const NS: &str = "bench";
const ROUNDS: usize = 9;
const CALLS_PER_ROUND: usize = 20_000;
const PIPELINE: usize = 100;
const VIEWERS: usize = 100;

#[derive(Clone, Copy)]
enum Variant {
    Module,
    Lua,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Module => "module VIOLET.JOIN",
            Variant::Lua => "Lua EVALSHA join.lua",
        }
    }

    /// The `INFO commandstats` entry that times this variant.
    fn stat(self) -> &'static str {
        match self {
            Variant::Module => "cmdstat_VIOLET.JOIN:",
            Variant::Lua => "cmdstat_evalsha:",
        }
    }
}

struct Sample {
    server_usec_per_call: f64,
    calls_per_sec: f64,
}

fn setup(con: &mut redis::Connection) -> String {
    for room in ["a", "b"] {
        let _: String = redis::cmd("VIOLET.CREATE")
            .arg(NS)
            .arg(format!("{room}-0"))
            .arg(room)
            .query(con)
            .unwrap();
        for viewer in 1..VIEWERS {
            let _: redis::Value = redis::cmd("VIOLET.JOIN")
                .arg(NS)
                .arg(format!("{room}-{viewer}"))
                .arg(room)
                .query(con)
                .unwrap();
        }
    }
    let script =
        std::fs::read_to_string(support::workspace_root().join("benches/lua/join.lua")).unwrap();
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(script)
        .query(con)
        .unwrap()
}

fn run(con: &mut redis::Connection, variant: Variant, sha: &str) -> Sample {
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(con).unwrap();
    let start = Instant::now();
    for batch in 0..CALLS_PER_ROUND / PIPELINE {
        let mut pipe = redis::pipe();
        for call in 0..PIPELINE {
            let room = ["a", "b"][(batch * PIPELINE + call) & 1];
            match variant {
                Variant::Module => pipe.cmd("VIOLET.JOIN").arg(NS).arg("mover").arg(room),
                Variant::Lua => pipe
                    .cmd("EVALSHA")
                    .arg(sha)
                    .arg(0)
                    .arg(NS)
                    .arg("mover")
                    .arg(room),
            };
        }
        let replies: Vec<(Option<String>, i64)> = pipe.query(con).unwrap();
        assert_eq!(replies.len(), PIPELINE);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let line = stats
        .lines()
        .find(|l| l.starts_with(variant.stat()))
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
    let sha = setup(&mut con);
    let variants = [Variant::Module, Variant::Lua];
    let mut samples: Vec<Vec<Sample>> = variants.iter().map(|_| Vec::new()).collect();
    for round in 0..ROUNDS {
        for i in 0..variants.len() {
            let i = (i + round) % variants.len();
            samples[i].push(run(&mut con, variants[i], &sha));
        }
    }
    let checked: String = redis::cmd("VIOLET.CHECK").arg(NS).query(&mut con).unwrap();
    assert_eq!(checked, "OK", "both variants kept every invariant");

    let summary: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| {
            (
                median(s.iter().map(|x| x.server_usec_per_call).collect()),
                median(s.iter().map(|x| x.calls_per_sec).collect()),
            )
        })
        .collect();
    println!("join_vs_lua: {ROUNDS} rounds x {CALLS_PER_ROUND} moves between two rooms of {VIEWERS}, pipelines of {PIPELINE}");
    println!(
        "{:<24} {:>18} {:>16}",
        "variant", "server us/call", "client calls/s"
    );
    for (variant, (usec, rate)) in variants.iter().zip(&summary) {
        println!("{:<24} {:>18.2} {:>16.0}", variant.name(), usec, rate);
    }
    let (module, lua) = (summary[0], summary[1]);
    println!(
        "ratio Lua/module, server time per call: {:.2}x",
        lua.0 / module.0
    );
    println!(
        "ratio module/Lua, client calls per second: {:.2}x",
        module.1 / lua.1
    );
}
