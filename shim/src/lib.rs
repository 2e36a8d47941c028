//! # Violet's WebSocket shim
//!
//! Browsers speak JSON over WebSockets ([`protocol`]); the shim turns each
//! request into exactly one `VIOLET.*` command of the Redis module, and turns
//! the module's events into live pushes. It keeps no room state beyond which
//! room each of its own connections is in, so any number of shims can share
//! one Redis.
//!
//! ## Layout of the crate
//!
//! - `main.rs`: the binary; parses the command line and calls [`launch`].
//! - [`config`]: the command line, the `VIOLET_*` environment and [`Config`].
//! - [`protocol`]: the JSON frames, requests and replies, and the error codes.
//!   Its documentation is the protocol's reference.
//! - [`server`] (private): the HTTP routes, the origin check and the connection limit.
//! - [`connection`] (private): one WebSocket's loop, from welcome to goodbye.
//! - [`fanout`]: the events subscription and the [`fanout::Hub`] that
//!   delivers pushes to local connections.
//! - [`redis`]: the Violet client, one method per command.
//! - [`ratelimit`]: the per-connection token bucket.
//! - [`embedded`]: the `redis-server` the shim runs when given no Redis.
//! - [`metrics`]: the counters behind `GET /metrics`.
//!
//! [`run`] is the entry point for a listener that is already bound: the binary
//! and the tests both use it. Shutdown is a broadcast channel: when the
//! `shutdown` future completes, every connection sends a close frame and takes
//! its socket out of its room, and `run` returns once they all have.

pub mod config;
mod connection;
pub mod embedded;
pub mod fanout;
pub mod metrics;
pub mod protocol;
pub mod ratelimit;
pub mod redis;
mod server;

pub use config::{Cli, Config, RedisTarget};

use crate::fanout::Hub;
use crate::metrics::Metrics;
use crate::redis::Violet;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tower_http::services::ServeDir;
use tracing::{info, warn};

/// What the routes and connections share.
pub(crate) struct Shared {
    config: Config,
    violet: Violet,
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    shim_id: String,
    next_socket: AtomicU64,
    limit: Arc<Semaphore>,
    notify_shutdown: broadcast::Sender<()>,
    shutting_down: AtomicBool,
    static_files: ServeDir,
    /// Dropped with the last `Arc<Shared>`: `run` waits for that.
    _done: mpsc::Sender<()>,
}

impl Shared {
    /// `<shim-id>:<n>`, unique across shims.
    fn next_socket_id(&self) -> String {
        let n = self.next_socket.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}:{n}", self.shim_id)
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

/// 12 random hex characters.
pub fn new_shim_id() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Serves `listener` until `shutdown` completes, then closes every connection
/// (each socket leaves its room) and returns.
///
/// # Errors
/// When `config.redis_url` is not a usable Redis URL, or the listener fails.
/// Redis being unreachable is not an error: requests get `UNAVAILABLE` until
/// it is back.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future) -> io::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let client = ::redis::Client::open(config.redis_url.as_str())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad Redis URL: {e}")))?;
    let violet = Violet::new(
        &config.redis_url,
        &config.namespace,
        config.redis_timeout,
        metrics.clone(),
    )
    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("bad Redis URL: {e}")))?;
    let hub = Arc::new(Hub::new(metrics.clone()));
    let (notify_shutdown, _) = broadcast::channel(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let shim_id = config.shim_id.clone().unwrap_or_else(new_shim_id);
    info!(
        shim_id,
        address = %listener.local_addr()?,
        namespace = config.namespace,
        static_dir = %config.static_dir.display(),
        "violet-shim listening"
    );

    let subscriber = tokio::spawn(fanout::subscribe(
        client,
        Violet::events_channel(&config.namespace),
        hub.clone(),
        notify_shutdown.subscribe(),
    ));
    let watcher = tokio::spawn(fanout::watch_top(
        hub.clone(),
        violet.clone(),
        notify_shutdown.subscribe(),
    ));

    let grace = config.shutdown_grace;
    let shared = Arc::new(Shared {
        static_files: ServeDir::new(&config.static_dir),
        limit: Arc::new(Semaphore::new(config.max_connections)),
        config,
        violet,
        hub,
        metrics,
        shim_id,
        next_socket: AtomicU64::new(0),
        notify_shutdown: notify_shutdown.clone(),
        shutting_down: AtomicBool::new(false),
        _done: done_tx,
    });
    let app = server::router(shared.clone());
    let mut stop_accepting = notify_shutdown.subscribe();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_accepting.recv().await;
    });
    let mut server = tokio::spawn(async move { server.await });

    let served = tokio::select! {
        _ = shutdown => None,
        result = &mut server => Some(result),
    };
    info!("shutting down: closing connections");
    shared.shutting_down.store(true, Ordering::SeqCst);
    let _ = notify_shutdown.send(());
    drop(shared);
    let served = match served {
        Some(result) => result,
        None => match tokio::time::timeout(grace, server).await {
            Ok(result) => result,
            Err(_) => {
                warn!("HTTP connections still open after the grace period");
                Ok(Ok(()))
            }
        },
    };
    if tokio::time::timeout(grace, done_rx.recv()).await.is_err() {
        warn!("connections still open after the grace period");
    }
    let _ = subscriber.await;
    let _ = watcher.await;
    info!("stopped");
    served.map_err(io::Error::other)?
}

/// Everything the binary does after parsing its command line: logging, the
/// embedded Redis if needed, the listener, [`run`].
///
/// # Errors
/// When the embedded Redis cannot start, the address cannot be bound, or
/// [`run`] fails.
pub async fn launch(cli: Cli, shutdown: impl Future) -> io::Result<()> {
    let (redis_url, embedded) = match cli.redis_target() {
        RedisTarget::External(url) => (url, None),
        RedisTarget::Embedded {
            redis_server,
            module,
        } => {
            let server = embedded::EmbeddedRedis::start(&redis_server, &module).await?;
            (server.url(), Some(server))
        }
    };
    let config = cli.config(redis_url);
    let address = std::net::SocketAddr::new(cli.bind, cli.listen_port());
    let result = match TcpListener::bind(address).await {
        Ok(listener) => run(listener, config, shutdown).await,
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot listen on {address}: {e}"),
        )),
    };
    if let Some(server) = embedded {
        if let Err(error) = server.stop().await {
            warn!(%error, "could not stop the embedded redis-server");
        } else {
            info!("embedded redis-server stopped");
        }
    }
    result
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("SIGINT received"),
        () = terminate => info!("SIGTERM received"),
    }
}

/// Logs to stderr with `tracing`, filtered by `filter`, else `RUST_LOG`, else `info`.
pub fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
