//! The shim under load, side by side with a Socket.IO server doing the same
//! job (`benches/peers/socketio`: `socket.io` with `@socket.io/redis-adapter`).
//!
//! `cargo bench --bench load` starts, for each server in turn, its own
//! `redis-server` (with the module) and the server, then measures with the
//! same clients:
//!
//! 1. **Idle connections**: `IDLE` WebSocket connections opened and welcomed
//!    (Socket.IO: connected to its namespace), in no room; the growth of the
//!    server's resident memory divided by them, as
//!    `benches/idle_connections.rs` measures it. Then they are closed.
//! 2. **Joins as fast as replies come**: `CONNECTIONS` connections in rooms
//!    of 10 (`CONNECTIONS / 10` rooms, each with one member that stays, so
//!    that no room empties; the others move). Each mover joins a random other
//!    room, waits for the reply, and joins again. Every join pushes
//!    `member-left` to the old room and `member-joined` to the new one.
//! 3. **Joins at a fixed rate** (`FIXED_RATE` per second in all): the reply
//!    latency, timed from when each join was due (so a slow server is not
//!    excused by the client waiting for it).
//! 4. **Leaves and joins** as fast as replies come: each mover leaves its
//!    room, then joins another, and so on.
//! 5. **Room messages at a fixed rate** (`MESSAGE_RATE` per second): the
//!    push fan-out latency, from the sender's send to each other member's
//!    receipt.
//!
//! It prints a table with the Violet/peer ratios, and the CPU the server,
//! its Redis and this tool each used in every phase (so that the tool is
//! seen not to be the limit), with Redis's CPU per reply and the part of it
//! spent running commands (`INFO commandstats`). Nothing is asserted. `LOAD_ONLY=violet` or
//! `LOAD_ONLY=socketio` runs one side; `LOAD_IDLE`, `LOAD_SECONDS` and
//! `LOAD_CONNECTIONS` change the sizes; `LOAD_SHIM` names another
//! `violet-shim` binary to measure (to compare two builds in one session).
//!
//! The shim runs with its per-connection rate limit lifted (it allows 20
//! frames a second per client by default, a limit for abuse, not for load).
//!
//! The Socket.IO client here is a minimal one over the same WebSocket
//! library: Engine.IO v4 over a WebSocket (`/socket.io/?EIO=4&transport=websocket`):
//! the server's `0{...}` open packet, `40` to connect to the main namespace
//! and its `40{...}` answer, `42<id>[event, args]` events with an
//! acknowledgement id and their `43<id>[reply]` acknowledgements, `42[...]`
//! pushes, and the server's ping `2` answered by pong `3`.

use futures_util::{SinkExt, StreamExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::RedisServer;
use tokio::net::TcpStream;
use tokio::time::sleep_until;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const ROOM_SIZE: usize = 10;
const FIXED_RATE: f64 = 1_000.0;
const MESSAGE_RATE: f64 = 200.0;
const WARMUP: Duration = Duration::from_secs(1);
/// Bytes a client reads from its socket at a time.
const READ_BUFFER_BYTES: usize = 8 * 1024;
/// How long a phase waits for the replies and pushes still in flight.
const DRAIN: Duration = Duration::from_millis(500);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Microseconds since the tool started: the clock message pushes carry.
fn now_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Violet,
    SocketIo,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Violet => "Violet",
            Kind::SocketIo => "Socket.IO",
        }
    }

    fn path(self) -> &'static str {
        match self {
            Kind::Violet => "/ws",
            Kind::SocketIo => "/socket.io/?EIO=4&transport=websocket",
        }
    }
}

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create(usize),
    Join(usize),
    Leave,
    Message { t: u64, sender: usize },
}

fn room_id(room: usize) -> String {
    format!("load-{room}")
}

fn encode(kind: Kind, op: Op, id: u64) -> String {
    match (kind, op) {
        (Kind::Violet, Op::Create(room)) => format!(
            r#"{{"kind":"room-created","room_id":"{}","details":{{"title":"load"}},"ref":{id}}}"#,
            room_id(room)
        ),
        (Kind::Violet, Op::Join(room)) => format!(
            r#"{{"kind":"room-joined","room_id":"{}","ref":{id}}}"#,
            room_id(room)
        ),
        (Kind::Violet, Op::Leave) => format!(r#"{{"kind":"room-left","ref":{id}}}"#),
        (Kind::Violet, Op::Message { t, sender }) => {
            format!(r#"{{"kind":"room-message","data":{{"t":{t},"s":{sender}}},"ref":{id}}}"#)
        }
        (Kind::SocketIo, Op::Create(room) | Op::Join(room)) => {
            format!(r#"42{id}["join","{}"]"#, room_id(room))
        }
        (Kind::SocketIo, Op::Leave) => format!(r#"42{id}["leave"]"#),
        (Kind::SocketIo, Op::Message { t, sender }) => {
            format!(r#"42{id}["room-message",{{"t":{t},"s":{sender}}}]"#)
        }
    }
}

/// A frame from the server, as far as the tool needs to know it.
#[derive(Debug, PartialEq, Eq)]
enum Incoming {
    Reply {
        id: u64,
        error: bool,
    },
    /// A room message push: when it was sent and by whom.
    Message {
        t: u64,
        sender: usize,
    },
    Push,
    Ping,
}

/// The digits right after `key` in `text`.
fn number_after(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits = text[start..].bytes().take_while(u8::is_ascii_digit).count();
    text[start..start + digits].parse().ok()
}

/// Classifies a frame without parsing it as JSON: the tool reads several
/// hundred thousand frames a second and must not be what is measured.
fn classify(kind: Kind, text: &str) -> Incoming {
    let message = |text: &str| match (number_after(text, r#""t":"#), number_after(text, r#""s":"#))
    {
        (Some(t), Some(sender)) => Incoming::Message {
            t,
            sender: usize::try_from(sender).unwrap_or(usize::MAX),
        },
        _ => Incoming::Push,
    };
    match kind {
        Kind::Violet => {
            // Only replies carry a `ref`.
            if let Some(id) = number_after(text, r#""ref":"#) {
                Incoming::Reply {
                    id,
                    error: text.contains(r#""kind":"error""#),
                }
            } else if text.contains(r#""kind":"message""#) {
                message(text)
            } else {
                Incoming::Push
            }
        }
        Kind::SocketIo => {
            if text == "2" {
                Incoming::Ping
            } else if let Some(rest) = text.strip_prefix("43") {
                Incoming::Reply {
                    id: number_after(rest, "").unwrap_or(u64::MAX),
                    error: rest.contains(r#""error""#),
                }
            } else if text.starts_with(r#"42["message""#) {
                message(text)
            } else {
                Incoming::Push
            }
        }
    }
}

async fn first_text(ws: &mut Ws, url: &str) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(_)) => continue,
            other => panic!("no welcome from {url}: {other:?}"),
        }
    }
}

/// Opens one connection and waits until the server has welcomed it.
async fn open(kind: Kind, port: u16) -> Ws {
    let url = format!("ws://127.0.0.1:{port}{}", kind.path());
    // tungstenite zero-fills its read buffer (128 KiB by default) before
    // every read: that memset alone took over a quarter of the tool's CPU.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    match kind {
        Kind::Violet => {
            let welcome = first_text(&mut ws, &url).await;
            assert!(welcome.contains("welcome"), "{welcome}");
        }
        Kind::SocketIo => {
            let open = first_text(&mut ws, &url).await;
            assert!(
                open.starts_with('0'),
                "not an Engine.IO open packet: {open}"
            );
            ws.send(Message::text("40")).await.expect("send 40");
            loop {
                let connected = ws.next().await;
                match connected {
                    Some(Ok(Message::Text(text))) if text.starts_with("40") => break,
                    Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                        ws.send(Message::text("3")).await.expect("pong");
                    }
                    other => panic!("no namespace connect: {other:?}"),
                }
            }
        }
    }
    ws
}

/// One client of the load: a connection, where it is, its next request id.
struct Client {
    ws: Ws,
    index: usize,
    room: Option<usize>,
    next_id: u64,
}

/// What one phase asks of each mover.
#[derive(Debug, Clone, Copy)]
enum Drive {
    /// Read pushes, send nothing.
    Passive,
    /// Joins, one after the other as replies come.
    JoinsClosed,
    /// Joins, one every `period`, starting at `offset`.
    JoinsFixed { period: Duration, offset: Duration },
    /// A leave, then a join, and so on, as replies come.
    LeavesClosed,
    /// Room messages, one every `period`, starting at `offset`.
    MessagesFixed { period: Duration, offset: Duration },
}

#[derive(Default)]
struct Stats {
    replies: u64,
    errors: u64,
    pushes: u64,
    /// Reply latencies (us) of requests due after the warm-up.
    latency: Vec<u32>,
    /// Room message fan-out latencies (us), from the send to each other
    /// member's receipt.
    fanout: Vec<u32>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.replies += other.replies;
        self.errors += other.errors;
        self.pushes += other.pushes;
        self.latency.extend(other.latency);
        self.fanout.extend(other.fanout);
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// A random room other than `current`.
fn other_room(rooms: usize, current: Option<usize>) -> usize {
    loop {
        let room = rand::random_range(0..rooms);
        if Some(room) != current {
            return room;
        }
    }
}

/// Runs one phase for one client: from `start` to `until` it drives as
/// `drive` says, then reads for `DRAIN` more; only requests due from
/// `measure_from` count.
async fn run_client(
    kind: Kind,
    mut client: Client,
    drive: Drive,
    rooms: usize,
    (start, measure_from, until): (Instant, Instant, Instant),
) -> (Client, Stats) {
    let mut stats = Stats::default();
    let end = until + DRAIN;
    // The request waiting for its reply: its id, when it was due, what it was.
    let mut pending: Option<(u64, Instant, Op)> = None;
    let mut due = match drive {
        Drive::Passive => None,
        Drive::JoinsClosed | Drive::LeavesClosed => Some(start),
        Drive::JoinsFixed { offset, .. } | Drive::MessagesFixed { offset, .. } => {
            Some(start + offset)
        }
    };
    // One timer, moved only when the next wake-up changes: a timer armed
    // anew for every frame read would cost the tool more than the frame.
    let timer = tokio::time::sleep_until(end.into());
    tokio::pin!(timer);
    let mut armed = end;
    loop {
        let send_at = match (pending, due) {
            (None, Some(at)) if at < until => Some(at),
            _ => None,
        };
        let wake = send_at.unwrap_or(end);
        if wake != armed {
            timer.as_mut().reset(wake.into());
            armed = wake;
        }
        tokio::select! {
            frame = client.ws.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    other => panic!("{} closed a load connection: {other:?}", kind.name()),
                };
                let now = Instant::now();
                match classify(kind, &text) {
                    Incoming::Reply { id, error } => {
                        let Some((expected, due_at, op)) = pending.take() else {
                            panic!("a reply to nothing: {text}");
                        };
                        assert_eq!(id, expected, "a reply out of order: {text}");
                        if due_at >= measure_from && now <= until {
                            stats.replies += 1;
                            stats.latency.push(micros(now - due_at));
                        }
                        if error {
                            stats.errors += 1;
                            if stats.errors <= 3 {
                                eprintln!("{}: error reply to {op:?}: {text}", kind.name());
                            }
                        }
                        match op {
                            Op::Create(room) | Op::Join(room) if !error => client.room = Some(room),
                            Op::Leave => client.room = None,
                            _ => {}
                        }
                        due = match drive {
                            Drive::Passive => None,
                            Drive::JoinsClosed | Drive::LeavesClosed => Some(now),
                            Drive::JoinsFixed { period, .. } | Drive::MessagesFixed { period, .. } => {
                                Some(due_at + period)
                            }
                        };
                    }
                    Incoming::Message { t, sender } => {
                        stats.pushes += 1;
                        if sender != client.index {
                            let sent = Duration::from_micros(t);
                            let received = Duration::from_micros(now_us());
                            if now >= measure_from {
                                stats.fanout.push(micros(received.saturating_sub(sent)));
                            }
                        }
                    }
                    Incoming::Push => stats.pushes += 1,
                    Incoming::Ping => {
                        client.ws.send(Message::text("3")).await.expect("pong");
                    }
                }
            }
            () = &mut timer => {
                let Some(at) = send_at else { break };
                let op = match drive {
                    Drive::Passive => unreachable!("a passive client sends nothing"),
                    Drive::JoinsClosed | Drive::JoinsFixed { .. } => {
                        Op::Join(other_room(rooms, client.room))
                    }
                    Drive::LeavesClosed => match client.room {
                        Some(_) => Op::Leave,
                        None => Op::Join(other_room(rooms, None)),
                    },
                    Drive::MessagesFixed { .. } => Op::Message { t: now_us(), sender: client.index },
                };
                client.next_id += 1;
                let id = client.next_id;
                client.ws.send(Message::text(encode(kind, op, id))).await.expect("send");
                pending = Some((id, at, op));
            }
        }
    }
    (client, stats)
}

/// CPU time used by a process so far (user and system), from `/proc`.
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // The kernel's USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Redis's time in the server's commands so far (`INFO commandstats`): what
/// Redis spends running them, without reading requests, writing replies or
/// delivering pushes to subscribers. A module command's time includes the
/// commands it calls, which `commandstats` also lists on their own: for
/// Violet only the `VIOLET.*` entries count. This tool's `INFO` never does.
async fn command_time(kind: Kind, redis: &mut redis::aio::MultiplexedConnection) -> Duration {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .unwrap();
    let usec: u64 = stats
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let counts = match kind {
                Kind::Violet => name.starts_with("VIOLET."),
                Kind::SocketIo => name != "info",
            };
            counts.then_some(())?;
            rest.split_once("usec=")?
                .1
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    Duration::from_micros(usec)
}

/// A server under test: its process, its Redis, its port.
struct Target {
    kind: Kind,
    process: Child,
    redis: RedisServer,
    port: u16,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn peer_dir() -> PathBuf {
    support::workspace_root().join("benches/peers/socketio")
}

/// Installs the peer's pinned packages (`npm ci`) unless they are there.
fn install_peer(dir: &Path) {
    if dir.join("node_modules").is_dir() {
        return;
    }
    eprintln!("load: npm ci in {}", dir.display());
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .expect("run npm (apt-get install nodejs npm)");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

async fn start(kind: Kind) -> Target {
    let redis = RedisServer::start();
    let port = support::free_port();
    let process = match kind {
        Kind::Violet => Command::new(
            std::env::var_os("LOAD_SHIM").map_or_else(support::shim_binary, PathBuf::from),
        )
        .args(["--port", &port.to_string(), "--redis-url", &redis.url()])
        .args(["--namespace", "load", "--log", "warn"])
        .args(["--max-connections", "100000"])
        .args(["--rate-per-sec", "1000000", "--rate-burst", "1000000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start violet-shim"),
        Kind::SocketIo => {
            let dir = peer_dir();
            install_peer(&dir);
            Command::new("node")
                .arg("server.js")
                .current_dir(&dir)
                .env("PORT", port.to_string())
                .env("REDIS_URL", redis.url())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start node (apt-get install nodejs npm)")
        }
    };
    let started = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} never listened",
            kind.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Target {
        kind,
        process,
        redis,
        port,
    }
}

/// KiB of resident memory per idle connection.
async fn idle_memory(target: &Target, count: usize) -> f64 {
    let pid = target.process.id();
    let first = open(target.kind, target.port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = support::rss_kib(pid);
    let open_all = futures_util::stream::iter(0..count)
        .map(|_| open(target.kind, target.port))
        .buffer_unordered(32)
        .collect::<Vec<_>>();
    let mut all = open_all.await;
    // Socket.IO pings every 25 s; the connections are read until then.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = support::rss_kib(pid);
    for ws in &mut all {
        let _ = ws.close(None).await;
    }
    drop(all);
    drop(first);
    tokio::time::sleep(Duration::from_secs(1)).await;
    after.saturating_sub(before) as f64 / count as f64
}

struct PhaseResult {
    stats: Stats,
    seconds: f64,
    /// CPU used, as a share of one core: server, Redis, this tool.
    cpu: [f64; 3],
    /// Redis's time in commands (`INFO commandstats`).
    commands: Duration,
}

/// Runs one phase on every client at once.
async fn phase(
    target: &Target,
    clients: Vec<Client>,
    rooms: usize,
    seconds: f64,
    drive: impl Fn(usize) -> Drive,
) -> (Vec<Client>, PhaseResult) {
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + WARMUP;
    let until = measure_from + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for client in clients {
        // The first member of each room stays, so that no room empties.
        let drive = if client.index < rooms {
            Drive::Passive
        } else {
            drive(client.index - rooms)
        };
        tasks.push(tokio::spawn(run_client(
            target.kind,
            client,
            drive,
            rooms,
            (start, measure_from, until),
        )));
    }
    let pids = [
        target.process.id().to_string(),
        target.redis.pid().to_string(),
        "self".to_owned(),
    ];
    let mut redis = redis::Client::open(target.redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    sleep_until(measure_from.into()).await;
    let cpu_before = pids.clone().map(|p| cpu_time(&p));
    let commands_before = command_time(target.kind, &mut redis).await;
    sleep_until(until.into()).await;
    let cpu_after = pids.map(|p| cpu_time(&p));
    let commands = command_time(target.kind, &mut redis).await - commands_before;
    let mut clients = Vec::new();
    let mut stats = Stats::default();
    for task in tasks {
        let (client, s) = task.await.expect("a load client failed");
        clients.push(client);
        stats.merge(s);
    }
    clients.sort_by_key(|c| c.index);
    let cpu = [0, 1, 2].map(|i| (cpu_after[i] - cpu_before[i]).as_secs_f64() / seconds);
    (
        clients,
        PhaseResult {
            stats,
            seconds,
            cpu,
            commands,
        },
    )
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

/// p50, p99, p999 in ms.
fn percentiles(values: &mut [u32]) -> [f64; 3] {
    values.sort_unstable();
    [0.5, 0.99, 0.999].map(|p| percentile(values, p))
}

#[derive(Default)]
struct Report {
    idle_kib: f64,
    joins_per_sec: f64,
    fixed_joins_per_sec: f64,
    join_latency: [f64; 3],
    leaves_per_sec: f64,
    fanout: [f64; 3],
    fanout_count: usize,
}

fn print_phase(kind: Kind, name: &str, result: &PhaseResult) {
    let [server, redis, tool] = result.cpu.map(|c| c * 100.0);
    // Redis's CPU for everything it did in the phase (the requests' network
    // round trips, their events, the lease, the lobby's reads), per reply,
    // and the part of it spent in commands.
    let replies = result.stats.replies.max(1) as f64;
    let redis_us = result.cpu[1] * result.seconds * 1e6 / replies;
    let commands_us = result.commands.as_secs_f64() * 1e6 / replies;
    println!(
        "  {:<9} {name:<24} {:>9.0} replies/s {:>9.0} pushes/s  errors {:>3}  CPU: server {server:>3.0}%, redis {redis:>3.0}% ({redis_us:.1} us per reply, {commands_us:.1} in commands), tool {tool:>3.0}%",
        kind.name(),
        result.stats.replies as f64 / result.seconds,
        result.stats.pushes as f64 / (result.seconds + WARMUP.as_secs_f64()),
        result.stats.errors,
    );
}

async fn measure(kind: Kind, connections: usize, idle: usize, seconds: f64) -> Report {
    let target = start(kind).await;
    let mut report = Report::default();
    if idle > 0 {
        report.idle_kib = idle_memory(&target, idle).await;
        println!(
            "  {:<9} {idle} idle connections: {:.1} KiB each",
            kind.name(),
            report.idle_kib
        );
    }

    // Rooms of ROOM_SIZE: the first member of each creates it and stays.
    let rooms = connections / ROOM_SIZE;
    let movers = connections - rooms;
    let mut clients = Vec::with_capacity(connections);
    for index in 0..connections {
        let ws = open(kind, target.port).await;
        clients.push(Client {
            ws,
            index,
            room: None,
            next_id: 0,
        });
    }
    for client in &mut clients {
        let room = client.index % rooms;
        let op = if client.index < rooms {
            Op::Create(room)
        } else {
            Op::Join(room)
        };
        client.next_id += 1;
        let id = client.next_id;
        client
            .ws
            .send(Message::text(encode(kind, op, id)))
            .await
            .unwrap();
        loop {
            let frame = client.ws.next().await.expect("a reply").expect("a reply");
            if let Incoming::Reply { error, .. } = classify(kind, frame.to_text().unwrap()) {
                assert!(!error, "{op:?} failed: {frame}");
                break;
            }
        }
        client.room = Some(room);
    }

    let (clients, closed) = phase(&target, clients, rooms, seconds, |_| Drive::JoinsClosed).await;
    print_phase(kind, "joins, as fast", &closed);
    report.joins_per_sec = closed.stats.replies as f64 / closed.seconds;

    let period = Duration::from_secs_f64(movers as f64 / FIXED_RATE);
    let (clients, mut fixed) = phase(&target, clients, rooms, seconds * 2.0, |i| {
        Drive::JoinsFixed {
            period,
            offset: period.mul_f64(i as f64 / movers as f64),
        }
    })
    .await;
    print_phase(kind, "joins at 1,000/s", &fixed);
    report.fixed_joins_per_sec = fixed.stats.replies as f64 / fixed.seconds;
    report.join_latency = percentiles(&mut fixed.stats.latency);

    let (clients, leaves) = phase(&target, clients, rooms, seconds, |_| Drive::LeavesClosed).await;
    print_phase(kind, "leaves+joins, as fast", &leaves);
    report.leaves_per_sec = leaves.stats.replies as f64 / leaves.seconds;

    // Back in a room each, then messages.
    let (clients, _) = phase(&target, clients, rooms, 0.5, |i| Drive::JoinsFixed {
        period: Duration::from_secs(10),
        offset: Duration::from_micros(i as u64 * 500),
    })
    .await;
    let period = Duration::from_secs_f64(movers as f64 / MESSAGE_RATE);
    let (clients, mut messages) = phase(&target, clients, rooms, seconds * 2.0, |i| {
        Drive::MessagesFixed {
            period,
            offset: period.mul_f64(i as f64 / movers as f64),
        }
    })
    .await;
    print_phase(kind, "messages at 200/s", &messages);
    report.fanout_count = messages.stats.fanout.len();
    report.fanout = percentiles(&mut messages.stats.fanout);
    drop(clients);
    drop(target);
    report
}

fn ms3(v: [f64; 3]) -> String {
    format!("{:.2} / {:.2} / {:.2}", v[0], v[1], v[2])
}

#[tokio::main]
async fn main() {
    let connections = env_usize("LOAD_CONNECTIONS", 200);
    let idle = env_usize("LOAD_IDLE", 10_000);
    let seconds = env_usize("LOAD_SECONDS", 5) as f64;
    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    let kinds: Vec<Kind> = [Kind::Violet, Kind::SocketIo]
        .into_iter()
        .filter(|k| match only.as_str() {
            "violet" => *k == Kind::Violet,
            "socketio" => *k == Kind::SocketIo,
            _ => true,
        })
        .collect();
    // Build before timing anything.
    let _ = support::shim_binary();
    now_us();
    println!(
        "load: {connections} connections in rooms of {ROOM_SIZE} (one member of each stays), {idle} idle connections, {seconds} s phases after {} s of warm-up",
        WARMUP.as_secs()
    );
    let mut reports = Vec::new();
    for kind in kinds.iter().copied() {
        reports.push((kind, measure(kind, connections, idle, seconds).await));
    }

    println!();
    let header: Vec<&str> = reports.iter().map(|(k, _)| k.name()).collect();
    let mut lines: Vec<(&str, Vec<String>, Option<f64>)> = Vec::new();
    let ratio = |f: &dyn Fn(&Report) -> f64, higher_better: bool| -> Option<f64> {
        if reports.len() != 2 {
            return None;
        }
        let (v, p) = (f(&reports[0].1), f(&reports[1].1));
        Some(if higher_better { v / p } else { p / v })
    };
    let per_gib = |r: &Report| 1024.0 * 1024.0 / r.idle_kib;
    lines.push((
        "idle connections per GiB",
        reports
            .iter()
            .map(|(_, r)| format!("{:.0} ({:.1} KiB each)", per_gib(r), r.idle_kib))
            .collect(),
        ratio(&per_gib, true),
    ));
    lines.push((
        "joins/s, as fast as replies come",
        reports
            .iter()
            .map(|(_, r)| format!("{:.0}", r.joins_per_sec))
            .collect(),
        ratio(&|r| r.joins_per_sec, true),
    ));
    lines.push((
        "join reply ms at 1,000/s p50/p99/p999",
        reports
            .iter()
            .map(|(_, r)| format!("{} ({:.0}/s)", ms3(r.join_latency), r.fixed_joins_per_sec))
            .collect(),
        ratio(&|r| r.join_latency[1], false),
    ));
    lines.push((
        "leaves+joins/s, as fast as replies come",
        reports
            .iter()
            .map(|(_, r)| format!("{:.0}", r.leaves_per_sec))
            .collect(),
        ratio(&|r| r.leaves_per_sec, true),
    ));
    lines.push((
        "message fan-out ms p50/p99/p999",
        reports
            .iter()
            .map(|(_, r)| format!("{} ({} receipts)", ms3(r.fanout), r.fanout_count))
            .collect(),
        ratio(&|r| r.fanout[1], false),
    ));
    print!("{:<40}", "");
    for name in &header {
        print!(" | {name:<32}");
    }
    println!(
        "{}",
        if reports.len() == 2 {
            " | Violet/peer (p99: peer/Violet)"
        } else {
            ""
        }
    );
    for (name, values, ratio) in lines {
        print!("{name:<40}");
        for value in values {
            print!(" | {value:<32}");
        }
        match ratio {
            Some(r) => println!(" | {r:.2}x"),
            None => println!(),
        }
    }
}
