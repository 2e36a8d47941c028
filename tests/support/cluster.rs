//! A real Redis Cluster on loopback: primaries and replicas, each a
//! [`RedisServer`] with the module, formed with `redis-cli --cluster create`
//! and a short node timeout so that failovers take a few seconds.

use crate::{cli_binary, free_port, RedisServer};
use std::collections::BTreeSet;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Milliseconds before a silent node counts as failed.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// How long the cluster gets to form, or to fail over.
const SETTLE: Duration = Duration::from_secs(60);

/// How long a manual failover gets before it is asked for again.
const MANUAL_FAILOVER: Duration = Duration::from_secs(10);

/// A running cluster; its nodes stop when it is dropped.
pub struct Cluster {
    pub nodes: Vec<RedisServer>,
    /// Nodes stopped with `SIGSTOP`: never asked anything (`redis-cli`
    /// would wait for them for ever).
    paused: BTreeSet<usize>,
}

impl Cluster {
    /// `primaries` primaries with `replicas` replicas each.
    pub fn start(primaries: usize, replicas: usize) -> Self {
        let timeout = NODE_TIMEOUT_MS.to_string();
        let nodes: Vec<RedisServer> = (0..primaries * (1 + replicas))
            .map(|_| {
                let bus = free_port().to_string();
                RedisServer::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus,
                    "--cluster-node-timeout",
                    &timeout,
                    // While a shard fails over, the others serve their
                    // namespaces (with `yes`, every node refuses every
                    // command, CLUSTERDOWN, until the failover is done).
                    "--cluster-require-full-coverage",
                    "no",
                    // A replica that (re)joins syncs at once.
                    "--repl-diskless-sync-delay",
                    "0",
                ])
            })
            .collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let output = Command::new(cli_binary())
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(output.status.success(), "{output:?}");
        let cluster = Self {
            nodes,
            paused: BTreeSet::new(),
        };
        cluster.wait_until("every node is ok and every replica in sync", |c| {
            c.nodes.iter().all(|n| {
                let info = c.cli(n.port(), &["CLUSTER", "INFO"]);
                let nodes = c.cli(n.port(), &["CLUSTER", "NODES"]);
                let replication = c.cli(n.port(), &["INFO", "replication"]);
                info.contains("cluster_state:ok")
                    && nodes.lines().filter(|l| l.contains("slave")).count() == primaries * replicas
                    && (replication.contains("role:master")
                        || replication.contains("master_link_status:up"))
            })
        });
        cluster.wait_replicas_in_sync(replicas);
        cluster
    }

    /// The primaries' addresses, `redis://127.0.0.1:PORT`, for a client's seeds.
    pub fn seeds(&self) -> Vec<String> {
        self.primaries()
            .iter()
            .map(|&i| format!("redis://127.0.0.1:{}", self.nodes[i].port()))
            .collect()
    }

    /// The indexes of the nodes that are primaries now.
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.alive(i) && self.myself(i).contains("master"))
            .collect()
    }

    /// The index of the primary that owns `key`'s slot now.
    pub fn primary_of(&self, key: &str) -> usize {
        let entry = self.any_alive();
        let slot: u16 = self
            .cli(self.nodes[entry].port(), &["CLUSTER", "KEYSLOT", key])
            .parse()
            .expect("a slot");
        self.primaries()
            .into_iter()
            .find(|&i| owns(&self.myself(i), slot))
            .unwrap_or_else(|| panic!("no live primary owns slot {slot}"))
    }

    /// The index of a live replica of primary `primary`.
    pub fn replica_of(&self, primary: usize) -> usize {
        let id = self
            .myself(primary)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        (0..self.nodes.len())
            .find(|&i| {
                i != primary && self.alive(i) && {
                    let line = self.myself(i);
                    line.contains("slave") && line.split_whitespace().nth(3) == Some(id.as_str())
                }
            })
            .expect("the primary has a live replica")
    }

    /// `redis-cli -c` against `port`: one reply per line.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let output = Command::new(cli_binary())
            .args(["-c", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned()
    }

    /// `redis-cli -c` against some live node.
    pub fn run(&self, args: &[&str]) -> String {
        self.cli(self.nodes[self.any_alive()].port(), args)
    }

    /// Kills node `i` at once (`SIGKILL`), as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts killed node `i` again, with its cluster configuration: it
    /// rejoins, as a replica when another node took over its slots.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart_after_kill();
    }

    /// Stops node `i` (`SIGSTOP`): it keeps its connections open and
    /// answers nothing, as a hung or swapping server would.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, "STOP");
        self.paused.insert(i);
    }

    /// Lets paused node `i` go on (`SIGCONT`).
    pub fn resume(&mut self, i: usize) {
        self.signal(i, "CONT");
        self.paused.remove(&i);
    }

    fn signal(&self, i: usize, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.nodes[i].pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} node {i}");
    }

    /// Waits until `key`'s slot is served by a live primary other than `old`.
    pub fn wait_failover(&self, key: &str, old: usize) {
        self.wait_until("a replica takes over", |c| c.failed_over(key, old));
    }

    /// Makes a replica of `key`'s primary `old` take over, as an operator
    /// would (`CLUSTER FAILOVER`), and waits until it has. The nodes give a
    /// manual failover up when it does not complete within a few seconds (a
    /// busy machine): it is then asked for again.
    pub fn manual_failover(&self, key: &str, old: usize) {
        let replica = self.nodes[self.replica_of(old)].port();
        let deadline = Instant::now() + SETTLE;
        loop {
            let asked = self.cli(replica, &["CLUSTER", "FAILOVER"]);
            let since = Instant::now();
            while since.elapsed() < MANUAL_FAILOVER {
                if self.failed_over(key, old) {
                    return;
                }
                sleep(Duration::from_millis(100));
            }
            assert!(
                Instant::now() < deadline,
                "timed out: a manual failover (last asked: {asked})"
            );
        }
    }

    /// Whether `key`'s slot is served by a live primary other than `old`,
    /// and the cluster is ok.
    fn failed_over(&self, key: &str, old: usize) -> bool {
        self.primaries().into_iter().any(|i| {
            i != old && {
                let slot: u16 = self
                    .run(&["CLUSTER", "KEYSLOT", key])
                    .parse()
                    .unwrap_or(u16::MAX);
                owns(&self.myself(i), slot)
            }
        }) && self.run(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
    }

    /// Waits until every live primary has `replicas` replicas online.
    pub fn wait_replicas_in_sync(&self, replicas: usize) {
        self.wait_until("every primary's replicas are online", |c| {
            c.primaries().into_iter().all(|i| {
                let info = c.cli(c.nodes[i].port(), &["INFO", "replication"]);
                info.lines()
                    .filter(|l| l.starts_with("slave") && l.contains("state=online"))
                    .count()
                    == replicas
            })
        });
    }

    /// Waits (up to a minute) until `done` holds.
    pub fn wait_until(&self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + SETTLE;
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out: {what}");
            sleep(Duration::from_millis(100));
        }
    }

    fn alive(&self, i: usize) -> bool {
        !self.paused.contains(&i) && self.cli(self.nodes[i].port(), &["PING"]) == "PONG"
    }

    fn any_alive(&self) -> usize {
        (0..self.nodes.len())
            .find(|&i| self.alive(i))
            .expect("some node is alive")
    }

    /// Node `i`'s own line of `CLUSTER NODES`.
    fn myself(&self, i: usize) -> String {
        self.cli(self.nodes[i].port(), &["CLUSTER", "NODES"])
            .lines()
            .find(|l| l.contains("myself"))
            .unwrap_or_default()
            .to_owned()
    }
}

/// Whether a `CLUSTER NODES` line lists `slot` among its slot ranges.
pub fn owns(nodes_line: &str, slot: u16) -> bool {
    nodes_line
        .split_whitespace()
        .skip(8)
        .any(|range| match range.split_once('-') {
            Some((a, b)) => match (a.parse::<u16>(), b.parse::<u16>()) {
                (Ok(a), Ok(b)) => (a..=b).contains(&slot),
                _ => false,
            },
            None => range.parse::<u16>().ok() == Some(slot),
        })
}
