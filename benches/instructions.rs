//! Instructions per call, counted by callgrind: deterministic where the
//! timings of `join_vs_lua` move with the machine's load.
//!
//! Starts the server (`redis-server`, or `VIOLET_REDIS_SERVER`) with the
//! release module under `valgrind --tool=callgrind`, sets up the rooms of
//! `join_vs_lua` (`common`), and runs each variant in turn: first a warm-up
//! of [`WARMUP`] calls, then the counters are zeroed (`callgrind_control
//! --zero`), `VIOLET_CALLS` calls (10,000 unless set) are sent in pipelines
//! of 100, and the counters are dumped (`callgrind_control --dump`); the
//! dump's total over the calls is the whole server's instructions per call
//! (reading requests and writing replies included), except its timer
//! (`serverCron`, left out with `--toggle-collect`): that runs by the clock,
//! ten times a second, and so counted as much as the run was slow (about
//! 1.2k instructions per JOIN on a busy machine).
//!
//! Besides the variants of `join_vs_lua` (each module command, its Lua twin,
//! plain `SADD`), two ways to make the writes of one move between two public
//! rooms of 100 as ordinary commands, on rooms of their own:
//!
//! - floor: the plain effects a `VIOLET.JOIN` move makes, in one
//!   `MULTI`/`EXEC` per move: `SMOVE` between the member sets, `HSET` of the
//!   socket's entry in its node's hash, one `ZADD` of both rooms' new ranks,
//!   and two `PUBLISH`es of the events' JSON (`left`, `joined`). No reads
//!   and no checks: the least any implementation making those writes
//!   atomically, through commands, costs the server.
//! - original: the original's seven commands (`EXISTS`, `HGET`, `SREM`,
//!   `ZINCRBY`, `SADD`, `ZINCRBY`, `SCARD`, as `join_ways` sends them), on
//!   its own layout, pipelined: not atomic, no events, no node index.
//!
//! `cargo bench --bench instructions` prints instructions per call (per move
//! for the floor and the original) and the ratios: Lua/module for JOIN,
//! CREATE and LEAVE, and SADD/JOIN. Arguments choose variants by name:
//! `join`, `join-lua`, `create`, `create-lua`, `leave`, `leave-lua`, `sadd`,
//! `floor`, `original` (`cargo bench --bench instructions -- join sadd`).
//! Needs valgrind (`callgrind_control` comes with it). With
//! `VIOLET_CALLGRIND_DIR` set, the dumps stay in that folder, one per
//! variant in the order run, for `callgrind_annotate`.

mod common;
mod original;

use common::{Impl, Op, Scripts, Variant, NS, PIPELINE, VARIANTS, VIEWERS};
use redis::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::RedisServer;

/// Calls of each variant before its counters are zeroed: the first calls
/// differ (a socket that is in no room yet, a script not yet compiled).
/// Even, so that the movers end where they started.
const WARMUP: usize = 200;

/// The floor's rooms and moving socket.
const FLOOR_ROOMS: [&str; 2] = ["fa", "fb"];
const FLOOR_MOVER: &str = "mover-f";

/// The original's rooms and moving socket.
const ORIGINAL_ROOMS: [&str; 2] = ["oa", "ob"];
const ORIGINAL_MOVER: &str = "mover-o";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Measured {
    Common(Variant),
    Floor,
    Original,
}

impl Measured {
    fn all() -> Vec<Measured> {
        let mut all: Vec<Measured> = VARIANTS.iter().copied().map(Measured::Common).collect();
        all.extend([Measured::Floor, Measured::Original]);
        all
    }

    /// The name an argument chooses it by.
    fn key(self) -> String {
        match self {
            Measured::Common(v) => match v.imp {
                Impl::Lua => format!("{}-lua", v.op.word().to_lowercase()),
                _ => v.op.word().to_lowercase(),
            },
            Measured::Floor => "floor".to_owned(),
            Measured::Original => "original".to_owned(),
        }
    }

    fn name(self) -> String {
        match self {
            Measured::Common(v) => v.name(),
            Measured::Floor => "floor (MULTI/EXEC of a JOIN's effects)".to_owned(),
            Measured::Original => "the original's 7 commands".to_owned(),
        }
    }
}

/// The floor's move number `i`: from which room to which. The mover starts
/// in the first room.
fn floor_rooms(i: usize) -> (&'static str, &'static str) {
    let [a, b] = FLOOR_ROOMS;
    if i.is_multiple_of(2) {
        (a, b)
    } else {
        (b, a)
    }
}

fn push_floor_move(pipe: &mut redis::Pipeline, i: usize) {
    let (from, to) = floor_rooms(i);
    let prefix = format!("violet:{{{NS}}}:");
    let events = format!("{prefix}events");
    // The mover leaves a room of VIEWERS + 1 (itself included) for one of
    // VIEWERS: the ranks become VIEWERS and VIEWERS + 1.
    pipe.cmd("MULTI");
    pipe.cmd("SMOVE")
        .arg(format!("{prefix}room:{from}:members"))
        .arg(format!("{prefix}room:{to}:members"))
        .arg(FLOOR_MOVER);
    pipe.cmd("HSET")
        .arg(format!("{prefix}node:{FLOOR_MOVER}"))
        .arg(FLOOR_MOVER)
        .arg(to);
    pipe.cmd("ZADD")
        .arg(format!("{prefix}rooms"))
        .arg(VIEWERS)
        .arg(from)
        .arg(VIEWERS + 1)
        .arg(to);
    pipe.cmd("PUBLISH").arg(&events).arg(format!(
        r#"{{"event":"left","room":"{from}","socket":"{FLOOR_MOVER}","viewers":{VIEWERS},"reason":"left"}}"#
    ));
    pipe.cmd("PUBLISH").arg(&events).arg(format!(
        r#"{{"event":"joined","room":"{to}","socket":"{FLOOR_MOVER}","viewers":{}}}"#,
        VIEWERS + 1
    ));
    pipe.cmd("EXEC");
}

fn push_original_move(pipe: &mut redis::Pipeline, i: usize) {
    let [a, b] = ORIGINAL_ROOMS;
    let (from, to) = if i.is_multiple_of(2) { (a, b) } else { (b, a) };
    original::push_move(pipe, from, to, ORIGINAL_MOVER);
}

/// The floor's rooms (made by the module, so `VIOLET.CHECK` holds them to
/// the same invariants) with its mover in the first, and the original's.
fn setup_moves(con: &mut redis::Connection) {
    common::create_rooms(con, &FLOOR_ROOMS);
    let _: Value = redis::cmd("VIOLET.JOIN")
        .arg(NS)
        .arg(FLOOR_MOVER)
        .arg(FLOOR_ROOMS[0])
        .query(con)
        .unwrap();
    for (n, room) in ORIGINAL_ROOMS.iter().enumerate() {
        let mut members: Vec<String> = (0..VIEWERS).map(|v| format!("{room}-{v}")).collect();
        if n == 0 {
            members.push(ORIGINAL_MOVER.to_owned());
        }
        original::create_room(con, room, &members);
    }
}

/// Sends `moves` moves of the floor or the original, from move `first`.
fn send_moves(con: &mut redis::Connection, measured: Measured, first: usize, moves: usize) {
    for batch in 0..moves.div_ceil(PIPELINE) {
        let mut pipe = redis::pipe();
        for i in first + batch * PIPELINE..first + moves.min((batch + 1) * PIPELINE) {
            match measured {
                Measured::Floor => push_floor_move(&mut pipe, i),
                _ => push_original_move(&mut pipe, i),
            }
        }
        let replies: Vec<Value> = pipe.query(con).unwrap();
        if let Some(error) = replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
            panic!("{}: {error:?}", measured.name());
        }
    }
}

fn callgrind_control(option: &str, pid: u32) {
    let output = Command::new("callgrind_control")
        .arg(option)
        .arg(pid.to_string())
        .output()
        .expect("run callgrind_control (is valgrind installed?)");
    assert!(
        output.status.success(),
        "callgrind_control {option} {pid}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The dumps callgrind has written into `dir`.
fn dumps(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .expect("read the dump folder")
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("callgrind.out."))
        })
        .collect()
}

/// The instructions the server ran while `work` ran: counters zeroed
/// before, dumped after.
fn instructions(pid: u32, dir: &Path, work: impl FnOnce()) -> u64 {
    callgrind_control("--zero", pid);
    work();
    let before = dumps(dir);
    callgrind_control("--dump", pid);
    let dump = dumps(dir)
        .into_iter()
        .find(|path| !before.contains(path))
        .expect("callgrind wrote a dump");
    let text = std::fs::read_to_string(&dump).expect("read the dump");
    // `summary:` in the header, or `totals:` at the end; events: Ir only.
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total in {}", dump.display()))
}

fn main() {
    let calls: usize = std::env::var("VIOLET_CALLS")
        .ok()
        .map(|n| n.parse().expect("VIOLET_CALLS is a number of calls"))
        .unwrap_or(10_000);
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.to_lowercase())
        .collect();
    let measured: Vec<Measured> = Measured::all()
        .into_iter()
        .filter(|m| chosen.is_empty() || chosen.contains(&m.key()))
        .collect();

    // The dumps go to a temporary folder, or stay in VIOLET_CALLGRIND_DIR
    // (for `callgrind_annotate`).
    let out = tempfile::tempdir().expect("a folder for the dumps");
    let kept = std::env::var_os("VIOLET_CALLGRIND_DIR").map(std::path::PathBuf::from);
    let out_dir = kept.as_deref().unwrap_or(out.path()).to_owned();
    std::fs::create_dir_all(&out_dir).expect("make the dump folder");
    let out_file = format!(
        "--callgrind-out-file={}/callgrind.out.%p",
        out_dir.display()
    );
    let server = RedisServer::start_under(
        // Not the server's timer: it runs by the clock, not per call, and
        // as often as the run is slow.
        &[
            "valgrind",
            "--tool=callgrind",
            "--toggle-collect=serverCron",
            "--collect-atstart=yes",
            &out_file,
        ],
        &[],
        Duration::from_secs(300),
    );
    let pid = server.pid();
    let mut con = server.connection();
    let scripts: Scripts = common::setup(&mut con);
    setup_moves(&mut con);

    let mut results: Vec<(Measured, f64)> = Vec::new();
    for (n, &m) in measured.iter().enumerate() {
        let total = match m {
            Measured::Common(variant) => {
                let (warm, round) = (2 * n, 2 * n + 1);
                common::prepare(&mut con, variant, warm, WARMUP);
                common::send(&mut con, variant, &scripts, warm, WARMUP);
                common::prepare(&mut con, variant, round, calls);
                instructions(pid, &out_dir, || {
                    common::send(&mut con, variant, &scripts, round, calls);
                })
            }
            Measured::Floor | Measured::Original => {
                send_moves(&mut con, m, 0, WARMUP);
                instructions(pid, &out_dir, || send_moves(&mut con, m, WARMUP, calls))
            }
        };
        let per_call = total as f64 / calls as f64;
        println!("{:<40} {:>10.0}", m.name(), per_call);
        results.push((m, per_call));
    }
    common::check(&mut con);

    let of = |m: Measured| results.iter().find(|(r, _)| *r == m).map(|(_, n)| *n);
    let variant = |op, imp| Measured::Common(Variant { op, imp });
    println!(
        "instructions: {} ({calls} calls each, pipelines of {PIPELINE}, rooms of {VIEWERS})",
        support::server_binary().to_string_lossy()
    );
    println!("{:<40} {:>10}", "variant", "instr/call");
    for (m, n) in &results {
        println!("{:<40} {:>10.0}", m.name(), n);
    }
    for op in [Op::Join, Op::Create, Op::Leave] {
        if let (Some(module), Some(lua)) =
            (of(variant(op, Impl::Module)), of(variant(op, Impl::Lua)))
        {
            println!("{:<7} Lua/module {:.2}x", op.word(), lua / module);
        }
    }
    let sadd = of(variant(Op::Sadd, Impl::Plain));
    for (what, m) in [
        ("JOIN", variant(Op::Join, Impl::Module)),
        ("floor", Measured::Floor),
        ("original", Measured::Original),
    ] {
        if let (Some(sadd), Some(n)) = (sadd, of(m)) {
            println!("SADD/{what} {:.3} (1/{:.1})", sadd / n, n / sadd);
        }
    }
}
