//! The reaper: a timer inside Redis that takes the sockets of expired leases
//! out of their rooms, so that a crashed shim leaves no ghost viewers even
//! when no other program is alive.
//!
//! Every `reap-interval-ms` the timer visits the namespaces it knows, finds
//! nodes whose lease ran out ([`Rooms::expired_nodes`], O(log nodes) each) and
//! reaps their sockets in steps ([`Rooms::reap_node`]). One run stops after
//! `reap-batch` sockets or [`RUN_BUDGET`] of work, whichever comes first, and
//! carries on at the next run, 2 ms later while work is left: no run holds
//! Redis for long, however many sockets a dead node had, and clients are
//! served between runs.
//!
//! It only reaps on a primary: the effects replicate as plain commands like
//! every other write, and a replica promoted to primary starts reaping.
//!
//! Where the namespaces come from: every `VIOLET.LEASE` and `VIOLET.RELEASE`
//! adds its namespace (and database) to an in-memory list. After the module
//! loads, and whenever this server becomes a primary, the timer also walks
//! the keyspace of database 0 for node indexes (`violet:{*}:nodes`), a
//! bounded `SCAN` step per run, so that a namespace whose every shim died
//! with the old primary is still reaped. A namespace with no node index left
//! drops off the list.

use crate::acl::{Access, Permissions};
use crate::commands::guarded_timer;
use crate::ffi;
use crate::ids::Namespace;
use crate::redis_store::RedisStore;
use crate::rooms::Rooms;
use redis_module::{Context, ContextFlags, InfoContext};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// `violet.lease-ms`: the lease `VIOLET.LEASE` gives when it is given none.
pub static LEASE_MS: AtomicI64 = AtomicI64::new(LEASE_DEFAULT_MS);
/// `violet.reap-interval-ms`: how often the reaper runs.
pub static REAP_INTERVAL_MS: AtomicI64 = AtomicI64::new(REAP_INTERVAL_DEFAULT_MS);
/// `violet.reap-batch`: the most sockets one run of the reaper takes out.
pub static REAP_BATCH: AtomicI64 = AtomicI64::new(REAP_BATCH_DEFAULT);

pub const LEASE_DEFAULT_MS: i64 = 10_000;
pub const LEASE_MIN_MS: u64 = 100;
pub const LEASE_MAX_MS: u64 = 86_400_000;
pub const REAP_INTERVAL_DEFAULT_MS: i64 = 20;
pub const REAP_BATCH_DEFAULT: i64 = 500;

/// The most work one run does, whatever the batch size: Redis serves
/// nobody else meanwhile.
pub const RUN_BUDGET: Duration = Duration::from_micros(1000);
/// How soon the next run comes while a backlog lasts: Redis serves its
/// clients between two runs, and a dead node's sockets go within seconds.
const BACKLOG_INTERVAL: Duration = Duration::from_millis(2);
/// Sockets reaped between two looks at the clock.
const STEP: u64 = 16;
/// Expired nodes looked up per namespace and run.
const NODES_PER_LOOKUP: u64 = 8;
/// Keys one discovery `SCAN` step examines.
const DISCOVERY_COUNT: u64 = 200;
/// The node indexes discovery looks for.
const DISCOVERY_PATTERN: &str = "violet:{*}:nodes";

/// The default lease, in milliseconds.
pub fn default_lease_ms() -> u64 {
    u64::try_from(LEASE_MS.load(Ordering::Relaxed)).unwrap_or(LEASE_DEFAULT_MS as u64)
}

/// The most sockets one run takes out (and `VIOLET.RELEASE` at once).
pub fn batch() -> u64 {
    u64::try_from(REAP_BATCH.load(Ordering::Relaxed)).unwrap_or(1)
}

fn interval() -> Duration {
    Duration::from_millis(u64::try_from(REAP_INTERVAL_MS.load(Ordering::Relaxed)).unwrap_or(100))
}

/// What the reaper remembers between runs. Only the main thread touches it
/// (commands and timers run there); the mutex makes that safe to say.
#[derive(Default)]
struct Reaper {
    /// `(database, namespace)`, in order, so runs take turns fairly.
    namespaces: BTreeSet<(i32, String)>,
    /// Where the next run starts in `namespaces`.
    next: Option<(i32, String)>,
    /// Where reaping each node goes on: `(database, namespace, node)` ->
    /// cursor in the node's hash.
    cursors: HashMap<(i32, String, String), u64>,
    /// The discovery scan's cursor while one is under way.
    discovery: Option<u64>,
    /// Whether this server was a primary at the last run.
    was_primary: bool,
    /// For `INFO violet`.
    stats: Stats,
}

/// What the reaper has done since the module loaded, for `INFO violet`.
#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    /// Runs that reaped at least one socket.
    busy_runs: u64,
    /// Sockets reaped.
    reaped: u64,
    /// The longest run, in microseconds.
    longest_run_us: u64,
    /// Runs that took more than twice [`RUN_BUDGET`] (the clock includes
    /// time the operating system gave to other processes).
    slow_runs: u64,
}

static REAPER: LazyLock<Mutex<Reaper>> = LazyLock::new(|| Mutex::new(Reaper::default()));

fn reaper() -> MutexGuard<'static, Reaper> {
    REAPER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds the namespace of the running command (in its database) to the ones
/// the reaper visits.
pub fn watch(ctx: &Context, namespace: &Namespace) {
    let entry = (ffi::selected_db(ctx), namespace.to_string());
    let mut reaper = reaper();
    if !reaper.namespaces.contains(&entry) {
        reaper.namespaces.insert(entry);
    }
}

/// Starts the timer; called once, when the module loads.
pub fn start(ctx: &Context) {
    schedule(ctx, false);
}

/// Runs again after `reap-interval-ms`, or after [`BACKLOG_INTERVAL`] when
/// the last run stopped at its limits with work left.
fn schedule(ctx: &Context, behind: bool) {
    let next = if behind { BACKLOG_INTERVAL } else { interval() };
    ctx.create_timer(next, tick, ());
}

fn tick(ctx: &Context, (): ()) {
    let behind = guarded_timer(ctx, run).unwrap_or(false);
    schedule(ctx, behind);
}

/// One run of the reaper; whether it stopped at its limits (work may be left).
fn run(ctx: &Context) -> bool {
    let flags = ctx.get_flags();
    let primary = flags.contains(ContextFlags::MASTER) && !flags.contains(ContextFlags::LOADING);
    let mut reaper = reaper();
    if !primary {
        reaper.was_primary = false;
        return false;
    }
    if !reaper.was_primary {
        reaper.was_primary = true;
        reaper.discovery = Some(0);
    }
    crate::eviction::check(ctx, false);
    let started = Instant::now();
    if let Some(cursor) = reaper.discovery {
        reaper.discover(ctx, cursor);
    }
    let reaped = reaper.reap(ctx, started);
    let took = started.elapsed();
    let stats = &mut reaper.stats;
    stats.longest_run_us = stats
        .longest_run_us
        .max(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
    if reaped > 0 {
        stats.busy_runs += 1;
        stats.reaped += reaped;
    }
    if took > RUN_BUDGET * 2 {
        stats.slow_runs += 1;
    }
    reaped >= batch() || took >= RUN_BUDGET
}

/// The `reaper` section of `INFO violet`.
pub fn info(ctx: &InfoContext) {
    let (stats, namespaces) = {
        let reaper = reaper();
        (reaper.stats, reaper.namespaces.len())
    };
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let built = ctx
        .builder()
        .add_section("reaper")
        .field("reaper_namespaces", count(namespaces as u64))
        .and_then(|s| s.field("reaper_busy_runs", count(stats.busy_runs)))
        .and_then(|s| s.field("reaper_reaped", count(stats.reaped)))
        .and_then(|s| s.field("reaper_longest_run_us", count(stats.longest_run_us)))
        .and_then(|s| s.field("reaper_slow_runs", count(stats.slow_runs)))
        .and_then(|s| s.build_section())
        .and_then(|b| b.build_info());
    // Nothing to report to: a failed INFO section only leaves it out.
    let _ = built;
}

impl Reaper {
    /// One bounded step of the walk for node indexes in database 0.
    fn discover(&mut self, ctx: &Context, cursor: u64) {
        if !ffi::select_db(ctx, 0) {
            return;
        }
        let store = RedisStore::new(ctx, Permissions::unrestricted(Access::Write));
        match store.scan(cursor, DISCOVERY_PATTERN, DISCOVERY_COUNT) {
            Ok((next, keys)) => {
                for key in keys {
                    let namespace = key
                        .strip_prefix("violet:{")
                        .and_then(|rest| rest.strip_suffix("}:nodes"))
                        .and_then(|ns| Namespace::parse(ns).ok());
                    if let Some(namespace) = namespace {
                        self.namespaces.insert((0, namespace.to_string()));
                    }
                }
                self.discovery = (next != 0).then_some(next);
            }
            Err(error) => {
                ctx.log_warning(&format!("Violet reaper: discovery failed: {error}"));
                self.discovery = None;
            }
        }
    }

    /// Visits the namespaces in turn, from where the last run stopped,
    /// reaping until the batch or the time budget is spent; returns how many
    /// sockets it reaped.
    fn reap(&mut self, ctx: &Context, started: Instant) -> u64 {
        let start = self.next.take().unwrap_or_default();
        let mut reaped = 0;
        let mut dropped = Vec::new();
        let in_turn = self
            .namespaces
            .range(start.clone()..)
            .chain(self.namespaces.range(..start));
        for entry in in_turn {
            if reaped >= batch() || started.elapsed() >= RUN_BUDGET {
                self.next = Some(entry.clone());
                break;
            }
            let (db, name) = entry;
            let keep = match Namespace::parse(name) {
                Ok(namespace) if ffi::select_db(ctx, *db) => {
                    let work = (*db, &namespace, started);
                    match reap_namespace(ctx, work, &mut self.cursors, &mut reaped) {
                        Ok(keep) => keep,
                        Err(error) => {
                            // A key of the layout overwritten by hand: say so
                            // once and leave the namespace until a lease
                            // command brings it back.
                            ctx.log_warning(&format!(
                                "Violet reaper: namespace {name:?} in db {db} left aside: {error}"
                            ));
                            false
                        }
                    }
                }
                _ => false,
            };
            if !keep {
                dropped.push(entry.clone());
            }
        }
        for entry in dropped {
            self.namespaces.remove(&entry);
        }
        reaped
    }
}

/// Reaps the expired nodes of one namespace (`work`: its database, name and
/// when the run started), counting into `reaped` and keeping each node's
/// place in `cursors`; whether the namespace still has a node index (and so
/// stays on the list).
fn reap_namespace(
    ctx: &Context,
    (db, namespace, started): (i32, &Namespace, Instant),
    cursors: &mut HashMap<(i32, String, String), u64>,
    reaped: &mut u64,
) -> crate::error::Result<bool> {
    let mut store = RedisStore::new(ctx, Permissions::unrestricted(Access::Write));
    store.hold_effects();
    let mut rooms = Rooms::new(&mut store, namespace);
    if !rooms.has_nodes()? {
        return Ok(false);
    }
    for (node, reason) in rooms.expired_nodes(NODES_PER_LOOKUP)? {
        let key = (db, namespace.to_string(), node);
        let mut cursor = cursors.remove(&key).unwrap_or(0);
        loop {
            let left = batch().saturating_sub(*reaped);
            if left == 0 || started.elapsed() >= RUN_BUDGET {
                cursors.insert(key, cursor);
                return Ok(true);
            }
            let step = rooms.reap_node(&key.2, reason, cursor, STEP.min(left))?;
            *reaped += step.reaped;
            if step.done {
                break;
            }
            cursor = step.cursor;
        }
    }
    Ok(true)
}
