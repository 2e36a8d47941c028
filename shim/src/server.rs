//! The server: everything that starts, wires and stops the shim.
//!
//! [`run`] serves a listener that is already bound, until its `shutdown`
//! future completes: it starts the background tasks ([`crate::tasks`]) and the
//! HTTP routes ([`crate::routes`]), then on shutdown closes every connection
//! (each socket leaves its room) and returns once they all have. [`launch`]
//! adds what the binary needs around it: the embedded Redis and the listener.
//! Shutdown is a broadcast channel that every task and connection listens to.

use crate::accept::{self, PendingLimits};
use crate::config::{Cli, Config, RedisTarget};
use crate::embedded;
use crate::link::Link;
use crate::metrics::Metrics;
use crate::redis::Violet;
use crate::registry::Hub;
use crate::routes;
use crate::space::Space;
use crate::tasks::{Background, EventSource};
use crate::top::TopRooms;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, Semaphore};
use tower_http::services::ServeDir;
use tracing::{info, warn};

/// What the routes and connections share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    /// The namespaces served, in `--namespace` order: the first is the one
    /// at `/` and `/ws`.
    pub(crate) spaces: Vec<Arc<Space>>,
    pub(crate) metrics: Arc<Metrics>,
    shim_id: String,
    next_socket: AtomicU64,
    pub(crate) limit: Arc<Semaphore>,
    pub(crate) notify_shutdown: broadcast::Sender<()>,
    shutting_down: AtomicBool,
    pub(crate) static_files: ServeDir,
    /// Dropped with the last `Arc<Shared>`: `run` waits for that.
    _done: mpsc::Sender<()>,
}

impl Shared {
    /// `<shim-id>:<n>`, unique across shims.
    pub(crate) fn next_socket_id(&self) -> String {
        let n = self.next_socket.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}:{n}", self.shim_id)
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
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
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
    if let Some(problem) = config.namespaces_problem() {
        return Err(invalid(problem));
    }
    let metrics = Arc::new(Metrics::default());
    let wait = config.durability.map_or(Duration::ZERO, |d| d.timeout);
    let (link, events) = if config.cluster_seeds.is_empty() {
        let bad = |e: ::redis::RedisError| invalid(format!("bad Redis URL: {e}"));
        let client = ::redis::Client::open(config.redis_url.as_str()).map_err(bad)?;
        let link = Link::server(&config.redis_url, config.redis_timeout, wait).map_err(bad)?;
        (link, EventSource::Server(Box::new(client)))
    } else {
        let seeds = config.cluster_seeds.clone();
        let link = Link::cluster(&seeds, config.redis_timeout, wait)
            .map_err(|e| invalid(format!("bad Redis Cluster seed: {e}")))?;
        (link, EventSource::Cluster(seeds))
    };
    let spaces: Vec<Arc<Space>> = config
        .namespaces
        .iter()
        .map(|namespace| {
            let violet = Violet::new(
                link.clone(),
                namespace,
                config.redis_timeout,
                config.durability,
                metrics.clone(),
            );
            Arc::new(Space {
                top: Arc::new(TopRooms::new(violet.clone(), config.max_reply_bytes)),
                hub: Arc::new(Hub::new(metrics.clone())),
                violet,
            })
        })
        .collect();
    let (notify_shutdown, _) = broadcast::channel(1);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let shim_id = config.shim_id.clone().unwrap_or_else(new_shim_id);
    info!(
        shim_id,
        address = %listener.local_addr()?,
        namespaces = config.namespaces.join(","),
        redis = if config.cluster_seeds.is_empty() { "server" } else { "cluster" },
        static_dir = %config.static_dir.display(),
        "violet-shim listening"
    );

    let background = Background::start(&config, &shim_id, events, &spaces, &notify_shutdown);

    let grace = config.shutdown_grace;
    let shared = Arc::new(Shared {
        static_files: ServeDir::new(&config.static_dir),
        limit: Arc::new(Semaphore::new(config.max_connections)),
        config,
        spaces: spaces.clone(),
        metrics,
        shim_id: shim_id.clone(),
        next_socket: AtomicU64::new(0),
        notify_shutdown: notify_shutdown.clone(),
        shutting_down: AtomicBool::new(false),
        _done: done_tx,
    });
    let app = routes::router(shared.clone());
    let limits = PendingLimits {
        max_pending: shared.config.max_pending_connections,
        handshake_timeout: shared.config.handshake_timeout,
    };
    let server = accept::serve(
        listener,
        app,
        limits,
        shared.metrics.clone(),
        notify_shutdown.subscribe(),
    );
    let mut server = tokio::spawn(async move {
        server.await;
        io::Result::Ok(())
    });

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
    background.join().await;
    // Every socket has left its room; the lease ends now rather than at its
    // expiry, taking out whatever a failed leave left behind.
    for space in &spaces {
        match space.violet.release(&shim_id).await {
            Ok(0) => {}
            Ok(left) => warn!(
                left,
                namespace = space.name(),
                "sockets still in rooms were released"
            ),
            Err(error) => warn!(
                %error,
                namespace = space.name(),
                "could not release the lease; it will expire"
            ),
        }
    }
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
    let (redis_url, seeds, embedded) = match cli.redis_target() {
        RedisTarget::External(url) => (url, Vec::new(), None),
        RedisTarget::Cluster(seeds) => (String::new(), seeds, None),
        RedisTarget::Embedded {
            redis_server,
            module,
        } => {
            let server = embedded::EmbeddedRedis::start(&redis_server, &module).await?;
            (server.url(), Vec::new(), Some(server))
        }
    };
    let mut config = cli.config(redis_url);
    config.cluster_seeds = seeds;
    fit_file_limit(&mut config, cli.max_connections.is_some());
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

/// Raises the soft limit on open files as far as the hard limit allows (as
/// Go programs do). When the connection limits still do not fit, the shim
/// serves as many WebSockets as the files allow: past them upgrades get 503,
/// instead of accepts failing. It warns when `--max-connections` was given,
/// and says so when the default was lowered.
fn fit_file_limit(config: &mut Config, explicit: bool) {
    let reserve = config.max_pending_connections + 64;
    let wanted = u64::try_from(config.max_connections + reserve).unwrap_or(u64::MAX);
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) if limit < wanted => {
            let fits = usize::try_from(limit)
                .unwrap_or(usize::MAX)
                .saturating_sub(reserve)
                .max(1);
            config.max_connections = fits;
            if explicit {
                warn!(
                    limit,
                    max_connections = fits,
                    "the open-file limit is below --max-connections plus \
                     --max-pending-connections; serving fewer WebSockets \
                     (raise `ulimit -n` for more)"
                );
            } else {
                info!(
                    limit,
                    max_connections = fits,
                    "WebSockets limited by the open-file limit"
                );
            }
        }
        Ok(_) => {}
        Err(error) => warn!(%error, "could not read or raise the open-file limit"),
    }
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
