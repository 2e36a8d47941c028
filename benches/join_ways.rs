//! Five ways to move a socket from one room to another, side by side in one
//! run on one server:
//!
//! 1. `VIOLET.JOIN`, the module's command;
//! 2. the same rules as a Lua script (`benches/lua/join.lua`, `EVALSHA`);
//! 3. the same rules in the client, made atomic with `WATCH`/`MULTI`/`EXEC`
//!    (reads, then the writes and events in one transaction, again when a
//!    watched key changed);
//! 4. the original's commands (`EXISTS`, `HGET`, `SREM`, `ZINCRBY -1`,
//!    `SADD`, `ZINCRBY +1`, `SCARD`) one at a time, on its own layout: not
//!    atomic, no events, no node index, so less work than the others;
//! 5. the same commands pipelined, as a client that does not wait for each
//!    reply would send them.
//!
//! One socket moves back and forth between two public rooms of 100 viewers.
//! Each way is timed as a client waiting for each move's reply, and (the ways
//! that can be pipelined) as a client sending pipelines of 100 moves; Redis's
//! CPU per move (`INFO cpu`, user and system, network included) is read
//! around each. Prints a table and writes the plot
//! `docs/benchmarks/join_ways.svg`, which the README shows.
//!
//! `cargo bench --bench join_ways`; nothing is asserted.

mod original;

use plotters::prelude::*;
use std::time::Instant;
use support::RedisServer;

const NS: &str = "bench";
const VIEWERS: usize = 100;
const MOVES: usize = 10_000;
const PIPELINE: usize = 100;
const ROUNDS: usize = 3;

const PREFIX: &str = "violet:{bench}:";

#[derive(Clone, Copy, PartialEq)]
enum Way {
    Module,
    Lua,
    Transaction,
    Original,
}

impl Way {
    const ALL: [Way; 4] = [Way::Module, Way::Lua, Way::Transaction, Way::Original];

    fn name(self) -> &'static str {
        match self {
            Way::Module => "VIOLET.JOIN",
            Way::Lua => "Lua script",
            Way::Transaction => "WATCH/MULTI/EXEC",
            Way::Original => "original's commands",
        }
    }

    fn pipelines(self) -> bool {
        self != Way::Transaction
    }
}

/// What one way measured, the median of the rounds.
#[derive(Default, Clone, Copy)]
struct Measure {
    moves_per_sec: f64,
    cpu_us_per_move: f64,
}

fn cpu_seconds(con: &mut redis::Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("cpu").query(con).unwrap();
    ["used_cpu_user:", "used_cpu_sys:"]
        .iter()
        .map(|field| {
            info.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .expect("INFO cpu")
        })
        .sum()
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
        // The original's layout, the mover in `a` there too.
        let mut members: Vec<String> = (0..VIEWERS).map(|v| format!("{room}-{v}")).collect();
        if room == "a" {
            members.push("mover:0".to_owned());
        }
        original::create_room(con, room, &members);
    }
    // The mover starts in `a`, and every run ends there: each is an even
    // number of moves.
    let _: redis::Value = redis::cmd("VIOLET.JOIN")
        .arg(&[NS, "mover:0", "a"][..])
        .query(con)
        .unwrap();
    let script =
        std::fs::read_to_string(support::workspace_root().join("benches/lua/join.lua")).unwrap();
    redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(script)
        .query(con)
        .unwrap()
}

/// The room the moving socket goes to on move `i`: it starts in `a`.
fn target(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "b"
    } else {
        "a"
    }
}

/// The commands of one move, for the ways that are one command or a fixed
/// list of them.
fn add_move(pipe: &mut redis::Pipeline, way: Way, sha: &str, i: usize) {
    let (to, from) = (target(i), target(i + 1));
    let socket = "mover:0";
    match way {
        Way::Module => {
            pipe.cmd("VIOLET.JOIN").arg(&[NS, socket, to][..]);
        }
        Way::Lua => {
            pipe.cmd("EVALSHA")
                .arg(sha)
                .arg(0)
                .arg(&[NS, socket, to][..]);
        }
        Way::Original => original::push_move(pipe, from, to, socket),
        Way::Transaction => unreachable!("a transaction reads before it writes"),
    }
}

/// One move with `WATCH`/`MULTI`/`EXEC`: the rules of `VIOLET.JOIN` for a
/// move between two public rooms that both stay.
fn transaction_move(con: &mut redis::Connection, i: usize) {
    let (to, socket) = (target(i), "mover:0");
    let node = format!("{PREFIX}node:mover");
    let room = format!("{PREFIX}room:{to}");
    let members = format!("{room}:members");
    loop {
        let () = redis::cmd("WATCH")
            .arg(&[&room, &members, &node][..])
            .query(con)
            .unwrap();
        let visibility: Option<String> = redis::cmd("HGET")
            .arg(&room)
            .arg("visibility")
            .query(con)
            .unwrap();
        assert_eq!(visibility.as_deref(), Some("public"));
        let viewers: u64 = redis::cmd("SCARD").arg(&members).query(con).unwrap();
        let previous: Option<String> = redis::cmd("HGET")
            .arg(&node)
            .arg(socket)
            .query(con)
            .unwrap();
        let previous = previous.expect("the mover is in a room");
        let previous_room = format!("{PREFIX}room:{previous}");
        let previous_members = format!("{previous_room}:members");
        let () = redis::cmd("WATCH")
            .arg(&[&previous_room, &previous_members][..])
            .query(con)
            .unwrap();
        let previous_viewers: u64 = redis::cmd("SCARD")
            .arg(&previous_members)
            .query(con)
            .unwrap();
        let capacity: Option<u64> = redis::cmd("HGET")
            .arg(&room)
            .arg("capacity")
            .query(con)
            .unwrap();
        assert!(capacity.is_none_or(|c| viewers < c));
        let events = format!("{PREFIX}events");
        let ranking = format!("{PREFIX}rooms");
        let left = previous_viewers - 1;
        let joined = viewers + 1;
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SREM")
            .arg(&previous_members)
            .arg(socket)
            .cmd("PUBLISH")
            .arg(&events)
            .arg(format!(
                r#"{{"event":"left","room":"{previous}","socket":"{socket}","viewers":{left},"reason":"left"}}"#
            ))
            .cmd("ZADD")
            .arg(&ranking)
            .arg(left)
            .arg(&previous)
            .cmd("HSET")
            .arg(&node)
            .arg(socket)
            .arg(to)
            .cmd("SADD")
            .arg(&members)
            .arg(socket)
            .cmd("ZADD")
            .arg(&ranking)
            .arg(joined)
            .arg(to)
            .cmd("PUBLISH")
            .arg(&events)
            .arg(format!(
                r#"{{"event":"joined","room":"{to}","socket":"{socket}","viewers":{joined}}}"#
            ));
        let done: Option<redis::Value> = pipe.query(con).unwrap();
        if done.is_some() {
            return;
        }
    }
}

fn run(con: &mut redis::Connection, way: Way, sha: &str, pipelined: bool) -> Measure {
    let cpu = cpu_seconds(con);
    let start = Instant::now();
    if way == Way::Transaction {
        for i in 0..MOVES {
            transaction_move(con, i);
        }
    } else {
        let batch = if pipelined { PIPELINE } else { 1 };
        for first in (0..MOVES).step_by(batch) {
            if pipelined || way != Way::Original {
                let mut pipe = redis::pipe();
                for i in first..first + batch {
                    add_move(&mut pipe, way, sha, i);
                }
                let _: redis::Value = pipe.query(con).unwrap();
            } else {
                // One command at a time, each awaited.
                let mut pipe = redis::pipe();
                add_move(&mut pipe, way, sha, first);
                for command in pipe.cmd_iter() {
                    let _: redis::Value = command.query(con).unwrap();
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    Measure {
        moves_per_sec: MOVES as f64 / elapsed,
        cpu_us_per_move: (cpu_seconds(con) - cpu) * 1e6 / MOVES as f64,
    }
}

fn median(mut values: Vec<Measure>) -> Measure {
    let mid = values.len() / 2;
    values.sort_by(|a, b| a.moves_per_sec.total_cmp(&b.moves_per_sec));
    let moves_per_sec = values[mid].moves_per_sec;
    values.sort_by(|a, b| a.cpu_us_per_move.total_cmp(&b.cpu_us_per_move));
    Measure {
        moves_per_sec,
        cpu_us_per_move: values[mid].cpu_us_per_move,
    }
}

fn main() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let sha = setup(&mut con);
    let mut results: Vec<(Way, bool, Vec<Measure>)> = Vec::new();
    for way in Way::ALL {
        for pipelined in [false, true] {
            if pipelined && !way.pipelines() {
                continue;
            }
            results.push((way, pipelined, Vec::new()));
        }
    }
    for _ in 0..ROUNDS {
        for (way, pipelined, measures) in &mut results {
            measures.push(run(&mut con, *way, &sha, *pipelined));
        }
    }
    let results: Vec<(Way, bool, Measure)> = results
        .into_iter()
        .map(|(way, pipelined, measures)| (way, pipelined, median(measures)))
        .collect();
    let module = |pipelined: bool| {
        results
            .iter()
            .find(|(w, p, _)| *w == Way::Module && *p == pipelined)
            .map(|r| r.2)
            .unwrap()
    };

    println!(
        "{MOVES} moves between two public rooms of {VIEWERS}, median of {ROUNDS} rounds (one server, one client):"
    );
    println!("| way | client | moves/s | VIOLET.JOIN's moves/s over it | Redis CPU per move | over VIOLET.JOIN's |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (way, pipelined, m) in &results {
        let base = module(*pipelined);
        println!(
            "| {} | {} | {:.0} | {:.2}x | {:.1} us | {:.2}x |",
            way.name(),
            if *pipelined {
                "pipelines of 100"
            } else {
                "waits for each reply"
            },
            m.moves_per_sec,
            base.moves_per_sec / m.moves_per_sec,
            m.cpu_us_per_move,
            m.cpu_us_per_move / base.cpu_us_per_move,
        );
    }
    let path = support::workspace_root().join("docs/benchmarks/join_ways.svg");
    plot(&path, &results).expect("write the plot");
    println!("plot: {}", path.display());
}

/// Moves per second of each way, as horizontal bars, waiting for each
/// reply and pipelined.
fn plot(
    path: &std::path::Path,
    results: &[(Way, bool, Measure)],
) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    let root = SVGBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = results
        .iter()
        .map(|r| r.2.moves_per_sec)
        .fold(0.0, f64::max)
        * 1.15;
    let rows = results.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Moving a socket between two rooms of 100: moves per second",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..max, (0..rows).into_segmented())?;
    let label = |value: &SegmentValue<usize>| {
        let SegmentValue::CenterOf(row) = value else {
            return String::new();
        };
        results
            .get(rows - 1 - *row)
            .map_or_else(String::new, |(way, pipelined, _)| {
                format!(
                    "{} ({})",
                    way.name(),
                    if *pipelined {
                        "pipelined"
                    } else {
                        "one at a time"
                    }
                )
            })
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows)
        .y_label_formatter(&label)
        .x_desc("moves per second")
        .draw()?;
    chart.draw_series(results.iter().enumerate().map(|(i, (way, pipelined, m))| {
        let row = rows - 1 - i;
        let color = match (way, pipelined) {
            (Way::Module, _) => RGBColor(110, 60, 170),
            (_, true) => RGBColor(150, 150, 150),
            _ => RGBColor(190, 190, 190),
        };
        Rectangle::new(
            [
                (0.0, SegmentValue::Exact(row)),
                (m.moves_per_sec, SegmentValue::Exact(row + 1)),
            ],
            color.filled(),
        )
    }))?;
    root.present()?;
    Ok(())
}
