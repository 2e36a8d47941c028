//! Settings: the command line, the `VIOLET_*` environment, and the
//! [`Config`] that [`crate::run`] takes.

use crate::redis::Durability;
use clap::Parser;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use violet_contract::limits::MAX_ID_BYTES;

/// WebSocket connections open at once by default: what 1 GiB holds idle.
pub const DEFAULT_MAX_CONNECTIONS: usize = 100_000;

/// The command line of `violet-shim`. Every option can also be given as the
/// `VIOLET_*` environment variable named in `--help`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "violet-shim",
    version,
    about = "Violet's WebSocket shim: browser events in, one VIOLET.* command each, live updates out",
    long_about = "Violet's WebSocket shim: browser events in, one VIOLET.* command each, live updates out.\n\n\
        Serves the page in --static-dir at / and WebSocket upgrades at /ws/{namespace} for each \
        --namespace, and at / and /ws for the first. Without a Redis host, --redis-url or \
        --redis-cluster it starts its own redis-server (with the Violet module from --module) \
        on a free loopback port and stops it on exit.\n\n\
        As the original server did, it also takes the port and the Redis host as positional \
        arguments: `violet-shim 8080 127.0.0.1`. Positional arguments win over the options."
)]
pub struct Cli {
    /// The port to listen on (positional form of --port).
    #[arg(value_name = "PORT")]
    pub port_positional: Option<u16>,

    /// The Redis host, `host` or `host:port` (positional form of --redis-url;
    /// port 6379 unless given).
    #[arg(value_name = "REDIS_HOST")]
    pub redis_host_positional: Option<String>,

    /// The port to listen on.
    #[arg(long, env = "VIOLET_PORT", default_value_t = 8080)]
    pub port: u16,

    /// The address to listen on. Loopback by default: put a reverse proxy (TLS,
    /// compression) in front, or pass 0.0.0.0 to listen on every interface.
    #[arg(long, env = "VIOLET_BIND", default_value = "127.0.0.1")]
    pub bind: IpAddr,

    /// Redis to use, `redis://[:password@]host[:port][/db]` (`redis://user:password@...`
    /// with ACLs), or `rediss://...` for TLS, checked against the system's
    /// certificate authorities (`rediss://...#insecure` skips the check, for
    /// testing only). Without this option (and without REDIS_HOST) the shim
    /// runs its own redis-server.
    #[arg(long, env = "VIOLET_REDIS_URL")]
    pub redis_url: Option<String>,

    /// A Redis Cluster to use instead: seed nodes, `host:port` or
    /// `redis://[user:password@]host:port` (`rediss://` for TLS), repeatable
    /// or comma-separated. The shim finds the rest of the cluster from them
    /// and follows its failovers and resharding.
    #[arg(
        long = "redis-cluster",
        env = "VIOLET_REDIS_CLUSTER",
        value_delimiter = ',',
        value_name = "HOST:PORT",
        conflicts_with_all = ["redis_url", "redis_host_positional"]
    )]
    pub redis_cluster: Vec<String>,

    /// A Violet namespace to serve (one app, one region), repeatable or
    /// comma-separated: a page connects to `/ws/{namespace}`, and `/` and
    /// `/ws` serve the first one.
    #[arg(
        long = "namespace",
        env = "VIOLET_NAMESPACE",
        value_delimiter = ',',
        default_value = "watch-party"
    )]
    pub namespaces: Vec<String>,

    /// Acknowledge a create, join or leave to its client only once this many
    /// replicas have it (Redis `WAIT`), so that a failover cannot lose it; a
    /// change they do not confirm within --wait-timeout-ms gets UNAVAILABLE.
    /// 0 (the default) does not wait.
    #[arg(long, env = "VIOLET_WAIT_REPLICAS", default_value_t = 0)]
    pub wait_replicas: u32,

    /// Milliseconds Redis waits for --wait-replicas replicas.
    #[arg(long, env = "VIOLET_WAIT_TIMEOUT_MS", default_value_t = 1_000)]
    pub wait_timeout_ms: u64,

    /// The folder served at `/` [default: `static/` in the current folder,
    /// else the workspace's `static/`].
    #[arg(long, env = "VIOLET_STATIC_DIR")]
    pub static_dir: Option<PathBuf>,

    /// An Origin allowed to open WebSockets, such as `https://watch.example`
    /// (repeatable; comma-separated in the environment). When none is given,
    /// every origin is allowed. Requests with no Origin header (non-browser
    /// clients) are always allowed.
    #[arg(
        long = "allowed-origin",
        env = "VIOLET_ALLOWED_ORIGIN",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// The largest frame a client may send, in bytes; larger ones close the
    /// connection with code 1009.
    #[arg(long, env = "VIOLET_MAX_FRAME_BYTES", default_value_t = 65536)]
    pub max_frame_bytes: usize,

    /// Frames per second a connection may send over time (token bucket refill).
    #[arg(long, env = "VIOLET_RATE_PER_SEC", default_value_t = 20.0)]
    pub rate_per_sec: f64,

    /// Frames a connection may send in a burst (token bucket size).
    #[arg(long, env = "VIOLET_RATE_BURST", default_value_t = 40)]
    pub rate_burst: u32,

    /// Rate-limited frames, net of accepted ones, after which the connection
    /// is closed with code 1008.
    #[arg(long, env = "VIOLET_RATE_STRIKES", default_value_t = 50)]
    pub rate_strikes: u32,

    /// The most WebSocket connections open at once; more get 503. By
    /// default 100,000 (an idle connection takes about 7 KiB, so they fit
    /// in 1 GiB), or as many as the open-file limit allows.
    #[arg(long, env = "VIOLET_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// The most TCP connections not yet upgraded to WebSockets (handshakes,
    /// page and metrics requests) at once; past it the shim accepts no more
    /// until one ends, and new ones wait in the listen backlog.
    #[arg(long, env = "VIOLET_MAX_PENDING_CONNECTIONS", default_value_t = 1024)]
    pub max_pending_connections: usize,

    /// Milliseconds a TCP connection has to send a complete HTTP request head
    /// (from being accepted, or after its previous response); slower or
    /// silent connections are closed.
    #[arg(long, env = "VIOLET_HANDSHAKE_TIMEOUT_MS", default_value_t = 5_000)]
    pub handshake_timeout_ms: u64,

    /// Bytes of pushes that may wait for one client; a client further behind
    /// is too slow and is closed with code 1008.
    #[arg(long, env = "VIOLET_MAX_QUEUE_BYTES", default_value_t = 1 << 20)]
    pub max_queue_bytes: usize,

    /// The largest reply or `top` push, in bytes: a `top` list that would be
    /// larger holds the first rooms that fit and says `"truncated":true`; any
    /// other reply that would be larger is a BAD_REQUEST error.
    #[arg(long, env = "VIOLET_MAX_REPLY_BYTES", default_value_t = 1 << 20)]
    pub max_reply_bytes: usize,

    /// Milliseconds between pings to each client.
    #[arg(long, env = "VIOLET_PING_INTERVAL_MS", default_value_t = 10_000)]
    pub ping_interval_ms: u64,

    /// Milliseconds of silence (no frame, not even a pong) after which a
    /// client is dropped and its socket leaves its room.
    #[arg(long, env = "VIOLET_PONG_TIMEOUT_MS", default_value_t = 30_000)]
    pub pong_timeout_ms: u64,

    /// Milliseconds of this shim's lease on its sockets. The shim renews it
    /// every third of that; if the shim dies or loses Redis for longer, the
    /// module takes its sockets out of their rooms by itself.
    #[arg(
        long = "lease",
        env = "VIOLET_LEASE",
        default_value_t = 10_000,
        value_name = "MS"
    )]
    pub lease_ms: u64,

    /// Milliseconds a Redis command may take before the request gets
    /// UNAVAILABLE.
    #[arg(long, env = "VIOLET_REDIS_TIMEOUT_MS", default_value_t = 2_000)]
    pub redis_timeout_ms: u64,

    /// The Violet module for the embedded redis-server [default:
    /// `libviolet.so` next to this executable, else `target/release/libviolet.so`].
    #[arg(long, env = "VIOLET_MODULE")]
    pub module: Option<PathBuf>,

    /// The redis-server executable for embedded mode.
    #[arg(long, env = "VIOLET_REDIS_SERVER", default_value = "redis-server")]
    pub redis_server: PathBuf,

    /// This shim's id, the node name of its sockets and its lease
    /// (`<id>:<n>`) [default: 12 random hex characters]. Two running shims
    /// must never share one.
    #[arg(long, env = "VIOLET_SHIM_ID")]
    pub shim_id: Option<String>,

    /// Log filter, such as `info` or `violet_shim=debug` [default: RUST_LOG,
    /// else `info,redis=off`].
    #[arg(long, env = "VIOLET_LOG")]
    pub log: Option<String>,
}

/// Where the shim's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// An existing server.
    External(String),
    /// A Redis Cluster, by its seed nodes' URLs.
    Cluster(Vec<String>),
    /// A redis-server the shim starts and stops itself.
    Embedded {
        redis_server: PathBuf,
        module: PathBuf,
    },
}

impl Cli {
    /// The port to listen on: the positional PORT, else `--port`.
    pub fn listen_port(&self) -> u16 {
        self.port_positional.unwrap_or(self.port)
    }

    /// The Redis to use: the positional REDIS_HOST, else `--redis-url`, else
    /// `--redis-cluster`, else an embedded server.
    pub fn redis_target(&self) -> RedisTarget {
        if let Some(host) = &self.redis_host_positional {
            let has_port = match host.strip_prefix('[') {
                Some(v6) => v6.contains("]:"),
                None => host.contains(':'),
            };
            let host = if has_port {
                host.clone()
            } else {
                format!("{host}:6379")
            };
            return RedisTarget::External(format!("redis://{host}/"));
        }
        if let Some(url) = &self.redis_url {
            return RedisTarget::External(url.clone());
        }
        if !self.redis_cluster.is_empty() {
            return RedisTarget::Cluster(self.redis_cluster.iter().map(|s| seed_url(s)).collect());
        }
        RedisTarget::Embedded {
            redis_server: self.redis_server.clone(),
            module: self.module.clone().unwrap_or_else(default_module),
        }
    }

    /// The settings [`crate::run`] takes, given the Redis URL to use.
    pub fn config(&self, redis_url: String) -> Config {
        Config {
            redis_url,
            namespaces: self.namespaces.clone(),
            durability: (self.wait_replicas > 0).then(|| Durability {
                replicas: self.wait_replicas,
                timeout: Duration::from_millis(self.wait_timeout_ms.max(1)),
            }),
            static_dir: self.static_dir.clone().unwrap_or_else(default_static_dir),
            allowed_origins: self.allowed_origins.clone(),
            max_frame_bytes: self.max_frame_bytes.max(1),
            rate: RateLimit {
                per_sec: self.rate_per_sec,
                burst: self.rate_burst,
                strikes: self.rate_strikes,
            },
            max_connections: self
                .max_connections
                .unwrap_or(DEFAULT_MAX_CONNECTIONS)
                .max(1),
            max_pending_connections: self.max_pending_connections.max(1),
            handshake_timeout: Duration::from_millis(self.handshake_timeout_ms.max(1)),
            max_queue_bytes: self.max_queue_bytes.max(1),
            max_reply_bytes: self.max_reply_bytes.max(1),
            ping_interval: Duration::from_millis(self.ping_interval_ms.max(1)),
            pong_timeout: Duration::from_millis(self.pong_timeout_ms.max(1)),
            redis_timeout: Duration::from_millis(self.redis_timeout_ms.max(1)),
            lease: Duration::from_millis(self.lease_ms),
            shim_id: self.shim_id.clone(),
            ..Config::default()
        }
    }
}

/// The per-connection rate limit: a token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub per_sec: f64,
    /// The bucket's size.
    pub burst: u32,
    /// Rejected frames, net of accepted ones, before the connection is closed.
    pub strikes: u32,
}

/// Everything [`crate::run`] needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Redis server, when `cluster_seeds` is empty.
    pub redis_url: String,
    /// The seed nodes' URLs of the Redis Cluster to use, if any.
    pub cluster_seeds: Vec<String>,
    /// The namespaces served; the first is the one at `/` and `/ws`.
    pub namespaces: Vec<String>,
    /// Replicas that must have a change before its client is told.
    pub durability: Option<Durability>,
    pub static_dir: PathBuf,
    pub allowed_origins: Vec<String>,
    pub max_frame_bytes: usize,
    pub rate: RateLimit,
    pub max_connections: usize,
    /// TCP connections not yet upgraded, at most.
    pub max_pending_connections: usize,
    /// How long a connection has to send a complete HTTP request head.
    pub handshake_timeout: Duration,
    /// Bytes of pushes waiting for one client before it counts as too slow.
    pub max_queue_bytes: usize,
    /// The largest reply or `top` push.
    pub max_reply_bytes: usize,
    pub ping_interval: Duration,
    pub pong_timeout: Duration,
    pub redis_timeout: Duration,
    /// This shim's lease on its sockets (the module's bounds: 100 ms to 24 h).
    pub lease: Duration,
    /// Pushes waiting for one client before it counts as too slow.
    pub push_buffer: usize,
    /// How long shutdown waits for connections to say goodbye.
    pub shutdown_grace: Duration,
    /// Fixes the shim id (12 hex characters are chosen at random when `None`).
    pub shim_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379/".to_owned(),
            cluster_seeds: Vec::new(),
            namespaces: vec!["watch-party".to_owned()],
            durability: None,
            static_dir: default_static_dir(),
            allowed_origins: Vec::new(),
            max_frame_bytes: 65536,
            rate: RateLimit {
                per_sec: 20.0,
                burst: 40,
                strikes: 50,
            },
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_pending_connections: 1024,
            handshake_timeout: Duration::from_secs(5),
            max_queue_bytes: 1 << 20,
            max_reply_bytes: 1 << 20,
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(30),
            redis_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(10),
            push_buffer: 1024,
            shutdown_grace: Duration::from_secs(10),
            shim_id: None,
        }
    }
}

impl Config {
    /// Why the namespaces cannot be served, if they cannot: none, one
    /// given twice, or one that is no path segment (the module checks the
    /// rest of its rules at each command).
    pub fn namespaces_problem(&self) -> Option<String> {
        if self.namespaces.is_empty() {
            return Some("no namespace to serve".to_owned());
        }
        for (i, namespace) in self.namespaces.iter().enumerate() {
            if self.namespaces[..i].contains(namespace) {
                return Some(format!("namespace {namespace:?} given twice"));
            }
            if namespace.is_empty()
                || namespace.len() > MAX_ID_BYTES
                || namespace
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || "/?#%{}".contains(c))
            {
                return Some(format!(
                    "namespace {namespace:?} must be 1 to {MAX_ID_BYTES} bytes with no \
                     space, control character or any of / ? # % {{ }}"
                ));
            }
        }
        None
    }
}

/// A seed as the cluster client takes it: `host:port` becomes
/// `redis://host:port`; a URL stays as it is.
fn seed_url(seed: &str) -> String {
    if seed.contains("://") {
        seed.to_owned()
    } else {
        format!("redis://{seed}")
    }
}

/// `static/` in the current folder if there is one, else the workspace's.
pub fn default_static_dir() -> PathBuf {
    let here = PathBuf::from("static");
    if here.is_dir() {
        return here;
    }
    workspace_root().join("static")
}

/// `libviolet.so` next to the executable if there is one, else
/// `target/release/libviolet.so` in the current folder, else in the workspace.
pub fn default_module() -> PathBuf {
    const NAME: &str = "libviolet.so";
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(NAME)));
    let candidates = [
        beside,
        Some(PathBuf::from("target/release").join(NAME)),
        Some(workspace_root().join("target/release").join(NAME)),
    ];
    candidates
        .iter()
        .flatten()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| PathBuf::from("target/release").join(NAME))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_arguments_as_the_original_took_them() {
        let cli = Cli::try_parse_from(["violet-shim", "9000", "10.1.2.3"]).unwrap();
        assert_eq!(cli.listen_port(), 9000);
        assert_eq!(
            cli.redis_target(),
            RedisTarget::External("redis://10.1.2.3:6379/".into())
        );
        let cli = Cli::try_parse_from([
            "violet-shim",
            "--port",
            "81",
            "--redis-url",
            "redis://:pw@h:1/",
        ])
        .unwrap();
        assert_eq!(cli.listen_port(), 81);
        assert_eq!(
            cli.redis_target(),
            RedisTarget::External("redis://:pw@h:1/".into())
        );
    }

    #[test]
    fn a_cluster_and_several_namespaces() {
        let cli = Cli::try_parse_from([
            "violet-shim",
            "--redis-cluster",
            "127.0.0.1:7100,rediss://:pw@h:7101",
            "--namespace",
            "a",
            "--namespace",
            "b,c",
            "--wait-replicas",
            "1",
        ])
        .unwrap();
        assert_eq!(
            cli.redis_target(),
            RedisTarget::Cluster(vec![
                "redis://127.0.0.1:7100".into(),
                "rediss://:pw@h:7101".into()
            ])
        );
        let config = cli.config(String::new());
        assert_eq!(config.namespaces, ["a", "b", "c"]);
        assert_eq!(config.namespaces_problem(), None);
        assert_eq!(
            config.durability,
            Some(Durability {
                replicas: 1,
                timeout: Duration::from_secs(1)
            })
        );
        assert!(Cli::try_parse_from([
            "violet-shim",
            "--redis-cluster",
            "h:1",
            "--redis-url",
            "redis://h/"
        ])
        .is_err());
        for bad in [&["a", "a"][..], &["a/b"], &["x{y}"], &[""]] {
            let config = Config {
                namespaces: bad.iter().map(|s| (*s).to_owned()).collect(),
                ..Config::default()
            };
            assert!(config.namespaces_problem().is_some(), "{bad:?}");
        }
    }

    #[test]
    fn embedded_by_default() {
        let cli = Cli::try_parse_from(["violet-shim"]).unwrap();
        assert!(matches!(cli.redis_target(), RedisTarget::Embedded { .. }));
        let config = cli.config("redis://x/".into());
        assert_eq!(config.namespaces, ["watch-party"]);
        assert_eq!(config.durability, None);
        assert_eq!(config.max_frame_bytes, 65536);
        let defaults = Config::default();
        assert_eq!(config.max_queue_bytes, defaults.max_queue_bytes);
        assert_eq!(config.max_reply_bytes, defaults.max_reply_bytes);
        assert_eq!(config.handshake_timeout, defaults.handshake_timeout);
        assert_eq!(
            config.max_pending_connections,
            defaults.max_pending_connections
        );
    }
}
