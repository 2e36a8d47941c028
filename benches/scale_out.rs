//! The shim's joins on one Redis and on a Redis Cluster, each without and
//! with a replica that every change waits for, side by side in one run.
//!
//! `cargo bench --bench scale_out` starts, measures and stops each setup in
//! turn: `single`, one `redis-server` with the module (`--redis-url`);
//! `cluster`, a Redis Cluster of 3 primaries, no replicas (`--redis-cluster`);
//! `single+replica`, a primary and a replica, the shim with `--wait-replicas
//! 1`; `cluster+replica`, 3 primaries with a replica each, `--wait-replicas 1`.
//!
//! One shim serves `ns1`..`ns8` (`/ws/NS`), which the cluster's slots spread
//! 3/3/2 over its primaries (printed). `SCALE_CONNECTIONS` (200) connections,
//! spread evenly over them, sit in rooms of up to 10 (25 per namespace: 3
//! rooms). The first member of each room creates it and stays; the others
//! each join a random other room of their namespace, wait for the reply, and
//! join again. After 1 s of warm-up, for `SCALE_SECONDS` (5), it counts the
//! joins answered, their reply latency, the error replies (warm-up included)
//! and the CPU (`/proc`) of the shim, of all the setup's `redis-server`s and
//! of this tool, then prints a table with the ratios to the first setup.
//! Nothing is asserted. `SCALE_ONLY=single,cluster` runs only those setups.
//! The shim's rate limit is lifted; the clients are those of
//! `benches/load.rs` (no JSON parsing, an 8 KiB read buffer).

use futures_util::{SinkExt, StreamExt};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::cluster::Cluster;
use support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const NAMESPACES: [&str; 8] = ["ns1", "ns2", "ns3", "ns4", "ns5", "ns6", "ns7", "ns8"];
const ROOM_SIZE: usize = 10;
const WARMUP: Duration = Duration::from_secs(1);
/// Bytes a client reads from its socket at a time.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// How long the clients wait for the replies still in flight at the end.
const DRAIN: Duration = Duration::from_millis(500);
/// Each setup: its name, whether a cluster, replicas per primary (waited for).
const SETUPS: [(&str, bool, usize); 4] = [
    ("single", false, 0),
    ("cluster", true, 0),
    ("single+replica", false, 1),
    ("cluster+replica", true, 1),
];

/// The digits right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}

/// CPU time used by a process so far (user and system), from `/proc`.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let times = fields.get(11..13).unwrap_or_default();
    let ticks: u64 = times.iter().map(|v| v.parse::<u64>().unwrap_or(0)).sum();
    // The kernel's USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// A setup's Redis servers and the shim in front of them; all stop on drop.
struct Deployment {
    shim: Child,
    port: u16,
    /// The shim's, this tool's (`self`), then every `redis-server`'s.
    pids: Vec<String>,
    _servers: Vec<RedisServer>,
    _cluster: Option<Cluster>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.shim.kill();
        let _ = self.shim.wait();
    }
}

async fn healthy(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut head = [0u8; 12];
    stream.write_all(request).await.is_ok()
        && stream.read_exact(&mut head).await.is_ok()
        && head.starts_with(b"HTTP/1.1 200")
}

async fn deploy(cluster: bool, replicas: usize) -> Deployment {
    let mut args = vec!["--port".to_owned(), support::free_port().to_string()];
    let (servers, cluster) = if cluster {
        let cluster = Cluster::start(3, replicas);
        let ports = NAMESPACES.map(|ns| cluster.nodes[cluster.primary_of(ns)].port());
        println!("  the primary (port) of each of {NAMESPACES:?}: {ports:?}");
        args.extend(["--redis-cluster".to_owned(), cluster.seeds().join(",")]);
        (vec![], Some(cluster))
    } else {
        let mut servers = vec![RedisServer::start()];
        args.extend(["--redis-url".to_owned(), servers[0].url()]);
        if replicas > 0 {
            let primary = servers[0].port().to_string();
            let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary]);
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut con = replica.connection();
            while support::info_field(&mut con, "replication", "master_link_status:") != "up" {
                assert!(Instant::now() < deadline, "the replica never synced");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            servers.push(replica);
        }
        (servers, None)
    };
    if replicas > 0 {
        args.extend(["--wait-replicas".to_owned(), replicas.to_string()]);
    }
    for ns in NAMESPACES {
        args.extend(["--namespace".to_owned(), ns.to_owned()]);
    }
    let shim = Command::new(support::shim_binary())
        .args(&args)
        .args(["--log", "warn", "--max-connections", "100000"])
        .args(["--rate-per-sec", "1000000", "--rate-burst", "1000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start violet-shim");
    let mut pids = vec![shim.id().to_string(), "self".to_owned()];
    let nodes = cluster.iter().flat_map(|c| &c.nodes);
    pids.extend(nodes.chain(&servers).map(|s| s.pid().to_string()));
    let mut deployment = Deployment {
        shim,
        port: args[1].parse().expect("a port"),
        pids,
        _servers: servers,
        _cluster: cluster,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !healthy(deployment.port).await {
        if let Ok(Some(status)) = deployment.shim.try_wait() {
            panic!("violet-shim {args:?} exited: {status}");
        }
        assert!(Instant::now() < deadline, "/healthz never said 200");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    deployment
}

/// Opens a connection to namespace `ns` and waits for its welcome.
async fn open(port: u16, ns: &str) -> Ws {
    let url = format!("ws://127.0.0.1:{port}/ws/{ns}");
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    let welcome = ws.next().await.expect("a welcome").expect("a welcome");
    assert!(welcome.to_text().is_ok_and(|t| t.contains("welcome")));
    ws
}

/// Sends `text` (whose ref is `id`) and returns the reply, skipping pushes.
async fn request(ws: &mut Ws, text: String, id: u64) -> String {
    ws.send(Message::text(text)).await.expect("send");
    loop {
        let frame = ws.next().await.expect("a reply").expect("a reply");
        let text = frame.to_text().unwrap_or("").to_owned();
        if number_after(&text, r#""ref":"#) == Some(id) {
            assert!(!text.contains(r#""kind":"error""#), "{text}");
            return text;
        }
    }
}

fn join(room_id: &str, id: u64) -> String {
    format!(r#"{{"kind":"room-joined","room_id":"{room_id}","ref":{id}}}"#)
}

/// Moves a client from room `room` (`None`: it stays) of its namespace's
/// `rooms` until `until`. Returns its error replies and the latencies (us)
/// of its joins sent from `from` and answered, without error, by `until`.
async fn run(
    mut ws: Ws,
    rooms: Arc<Vec<String>>,
    mut room: Option<usize>,
    (from, until): (Instant, Instant),
) -> (u64, Vec<u32>) {
    let (mut errors, mut latency) = (0, Vec::new());
    let deadline = tokio::time::sleep_until((until + DRAIN).into());
    tokio::pin!(deadline);
    let mut pending: Option<(u64, Instant, usize)> = None;
    let mut next_id = 1;
    loop {
        if let (Some(at), None) = (room, pending) {
            if Instant::now() >= until {
                break;
            }
            let target = (at + rand::random_range(1..rooms.len())) % rooms.len();
            next_id += 1;
            let text = join(&rooms[target], next_id);
            ws.send(Message::text(text)).await.expect("send");
            pending = Some((next_id, Instant::now(), target));
        }
        let frame = tokio::select! {
            frame = ws.next() => frame,
            () = &mut deadline => break,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            other => panic!("the shim closed a connection: {other:?}"),
        };
        // Only replies carry a `ref`; pushes are read and skipped.
        let Some(id) = number_after(&text, r#""ref":"#) else {
            continue;
        };
        let now = Instant::now();
        let (expected, sent, target) = pending.take().expect("a reply to a join");
        assert_eq!(id, expected, "a reply out of order: {text}");
        let error = text.contains(r#""kind":"error""#);
        if error {
            errors += 1;
            if errors <= 2 {
                eprintln!("  error reply: {text}");
            }
        } else {
            room = Some(target);
        }
        if sent >= from && now <= until && !error {
            latency.push(u32::try_from((now - sent).as_micros()).unwrap_or(u32::MAX));
        }
    }
    (errors, latency)
}

/// Latency p50, p99, p999 in ms; CPU (shares of a core): shim, redis, tool.
struct Report {
    label: String,
    joins_per_sec: f64,
    latency: [f64; 3],
    errors: u64,
    cpu: [f64; 3],
}

async fn measure(label: String, cluster: bool, replicas: usize) -> Report {
    let connections = std::env::var("SCALE_CONNECTIONS").map_or(200, |v| v.parse().unwrap());
    let seconds: f64 = std::env::var("SCALE_SECONDS").map_or(5.0, |v| v.parse().unwrap());
    assert!(connections >= 24, "SCALE_CONNECTIONS < 24");
    let deployment = deploy(cluster, replicas).await;
    let rooms_per_ns = (connections / NAMESPACES.len()).div_ceil(ROOM_SIZE).max(2);
    let mut clients = Vec::with_capacity(connections);
    let mut rooms = vec![Vec::new(); NAMESPACES.len()];
    for index in 0..connections {
        let (ns, place) = (index % NAMESPACES.len(), index / NAMESPACES.len());
        let mut ws = open(deployment.port, NAMESPACES[ns]).await;
        let room = place % rooms_per_ns;
        if place < rooms_per_ns {
            let create = r#"{"kind":"room-created","details":{},"ref":1}"#.to_owned();
            let reply = request(&mut ws, create, 1).await;
            let start = reply.find(r#""room_id":""#).expect("a room id") + 11;
            let len = reply[start..].find('"').expect("a room id");
            rooms[ns].push(reply[start..start + len].to_owned());
        } else {
            request(&mut ws, join(&rooms[ns][room], 1), 1).await;
        }
        clients.push((ws, ns, (place >= rooms_per_ns).then_some(room)));
    }
    let rooms: Vec<_> = rooms.into_iter().map(Arc::new).collect();
    let from = Instant::now() + WARMUP;
    let until = from + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(ws, ns, room)| tokio::spawn(run(ws, rooms[ns].clone(), room, (from, until))))
        .collect();
    let pids = &deployment.pids;
    tokio::time::sleep_until(from.into()).await;
    let before: Vec<Duration> = pids.iter().map(|p| cpu_time(p)).collect();
    tokio::time::sleep_until(until.into()).await;
    let used: Vec<f64> = pids
        .iter()
        .zip(before)
        .map(|(p, b)| (cpu_time(p) - b).as_secs_f64() / seconds)
        .collect();
    let (mut errors, mut all) = (0, Vec::new());
    for task in tasks {
        let (e, latency) = task.await.expect("a client failed");
        errors += e;
        all.extend(latency);
    }
    drop(deployment);
    all.sort_unstable();
    let ms = |p: f64| match all.get(((p * all.len() as f64).ceil() as usize).max(1) - 1) {
        Some(&us) => f64::from(us) / 1e3,
        None => f64::NAN,
    };
    Report {
        label,
        joins_per_sec: all.len() as f64 / seconds,
        latency: [ms(0.5), ms(0.99), ms(0.999)],
        errors,
        cpu: [used[0], used[2..].iter().sum(), used[1]],
    }
}

#[tokio::main]
async fn main() {
    let only = std::env::var("SCALE_ONLY").unwrap_or_default();
    let chosen: Vec<_> = SETUPS
        .iter()
        .filter(|s| only.is_empty() || only.split(',').any(|n| n.trim() == s.0))
        .collect();
    assert!(!chosen.is_empty(), "SCALE_ONLY names none of {SETUPS:?}");
    // Build before timing anything.
    let _ = (support::shim_binary(), support::module_path());
    let started = Instant::now();
    let mut reports = Vec::new();
    for &&(name, cluster, replicas) in &chosen {
        let wait = format!(", --wait-replicas {replicas}");
        let label = format!("{name}{}", if replicas > 0 { &wait } else { "" });
        println!("scale_out: {label}");
        reports.push(measure(label, cluster, replicas).await);
    }
    let first = &reports[0];
    let vs = &first.label;
    println!("\n| setup | joins/s | reply ms p50 / p99 / p999 | errors | CPU shim / redis / tool | joins/s vs {vs} | p50 vs {vs} | p99 vs {vs} |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &reports {
        let [p50, p99, p999] = r.latency;
        let [shim, redis, tool] = r.cpu.map(|c| c * 100.0);
        println!(
            "| {} | {:.0} | {p50:.2} / {p99:.2} / {p999:.2} | {} | {shim:.0}% / {redis:.0}% / {tool:.0}% | {:.2}x | {:.2}x | {:.2}x |",
            r.label,
            r.joins_per_sec,
            r.errors,
            r.joins_per_sec / first.joins_per_sec,
            p50 / first.latency[0],
            p99 / first.latency[1],
        );
    }
    println!("scale_out: done in {} s", started.elapsed().as_secs());
}
