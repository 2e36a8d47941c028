//! The reaper at scale: a dead node with 100,000 sockets in rooms of 10, and
//! what taking them out costs Redis.
//!
//! Measures, on one real redis-server with the module:
//!
//! - how long after the lease's expiry the last socket is gone;
//! - the longest single run of the reaper's timer (`INFO violet`), the time
//!   Redis serves nobody else;
//! - the worst `PING` round trip a client sees meanwhile;
//! - what one `VIOLET.LEASE` renewal costs Redis (`INFO commandstats`).
//!
//! `cargo bench --bench reaper` prints them; nothing is asserted.

use std::time::{Duration, Instant};
use support::RedisServer;

const NS: &str = "bench";
const SOCKETS: usize = 100_000;
const ROOM_SIZE: usize = 10;
const LEASE_MS: u64 = 3_000;
const PIPELINE: usize = 1_000;
const RENEWALS: usize = 20_000;

fn main() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let _: String = redis::cmd("VIOLET.LEASE")
        .arg(&[NS, "dead", &LEASE_MS.to_string()][..])
        .query(&mut con)
        .unwrap();
    let filled = Instant::now();
    for start in (0..SOCKETS).step_by(PIPELINE) {
        let mut pipe = redis::pipe();
        for i in start..(start + PIPELINE).min(SOCKETS) {
            let socket = format!("dead:{i}");
            let room = format!("r{}", i / ROOM_SIZE);
            if i % ROOM_SIZE == 0 {
                pipe.cmd("VIOLET.CREATE")
                    .arg(&[NS, &socket, &room][..])
                    .ignore();
            } else {
                pipe.cmd("VIOLET.JOIN")
                    .arg(&[NS, &socket, &room][..])
                    .ignore();
            }
        }
        let () = pipe.query(&mut con).unwrap();
    }
    let fill_time = filled.elapsed();
    let expires_at = filled + Duration::from_millis(LEASE_MS);
    assert!(
        Instant::now() < expires_at,
        "filling took {fill_time:?}, longer than the lease"
    );
    println!(
        "reaper: {SOCKETS} sockets in rooms of {ROOM_SIZE} of one node, filled in {fill_time:?}"
    );

    // The worst PING round trip while the reaper works: what other clients feel.
    let mut pinger = server.connection();
    let mut worst_ping = Duration::ZERO;
    let mut gone_after = None;
    let key = format!("violet:{{{NS}}}:node:dead");
    while gone_after.is_none() {
        let sent = Instant::now();
        let _: String = redis::cmd("PING").query(&mut pinger).unwrap();
        if sent > expires_at {
            worst_ping = worst_ping.max(sent.elapsed());
        }
        let left: u64 = redis::cmd("HLEN").arg(&key).query(&mut con).unwrap();
        if left == 0 {
            gone_after = Some(Instant::now().saturating_duration_since(expires_at));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let longest_run = support::info_field(&mut con, "violet", "violet_reaper_longest_run_us:");
    let runs = support::info_field(&mut con, "violet", "violet_reaper_busy_runs:");
    let slow_runs = support::info_field(&mut con, "violet", "violet_reaper_slow_runs:");
    let reaped = support::info_field(&mut con, "violet", "violet_reaper_reaped:");
    let check: String = redis::cmd("VIOLET.CHECK").arg(NS).query(&mut con).unwrap();
    assert_eq!(check, "OK");

    let _: () = redis::cmd("CONFIG")
        .arg(&["RESETSTAT"][..])
        .query(&mut con)
        .unwrap();
    let mut pipe = redis::pipe();
    for _ in 0..RENEWALS {
        pipe.cmd("VIOLET.LEASE")
            .arg(&[NS, "live", "10000"][..])
            .ignore();
    }
    let () = pipe.query(&mut con).unwrap();
    let renewal = support::info_field(&mut con, "commandstats", "cmdstat_VIOLET.LEASE:");
    let per_call = renewal
        .split(',')
        .find_map(|part| part.strip_prefix("usec_per_call="))
        .unwrap_or("?");

    println!(
        "reaper: all {reaped} sockets gone {:?} after the lease expired, in {runs} runs",
        gone_after.unwrap()
    );
    println!("reaper: longest run of the timer {longest_run} us, {slow_runs} run(s) over 2 ms; worst PING meanwhile {worst_ping:?}");
    println!("reaper: one VIOLET.LEASE renewal costs Redis {per_call} us");
}
