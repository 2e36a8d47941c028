//! Accepting TCP connections and serving HTTP/1.1 on each, until it ends or
//! becomes a WebSocket.
//!
//! Connections not yet upgraded (WebSocket handshakes, page and metrics
//! requests) are bounded twice:
//!
//! - at most `--max-pending-connections` at once: past it the shim accepts no
//!   more until one ends, and new ones wait in the kernel's listen backlog,
//!   where they cost the shim no file descriptor;
//! - each must send a complete request head within `--handshake-timeout-ms`
//!   of being accepted, or of its previous response (hyper's header read
//!   timeout); a silent or trickling connection is closed;
//! - each may speak HTTP for [`HTTP_LIFETIME_FACTOR`] handshake timeouts in
//!   all; then it is asked to close after its response in flight, which
//!   gets one handshake timeout more, and is dropped. A client that
//!   pipelines requests and never reads the responses stalls the shim's
//!   writes, which no read timeout sees; without this it would hold its
//!   slot for ever.
//!
//! A connection's pending slot frees as soon as it upgrades (the WebSocket
//! then counts against `--max-connections`, see [`crate::routes`]) or ends.
//!
//! An accept that fails for want of file descriptors (EMFILE, ENFILE) or
//! memory is logged and retried a second later: the listener never stops,
//! and never spins.
//!
//! `axum::serve` cannot be given a timer or a header read timeout, so the
//! loop is hyper's own connection builder driving the axum router, as axum
//! suggests when configuration is needed.

use crate::metrics::Metrics;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch, Semaphore};
use tracing::{debug, error};

/// How long the listener waits after an accept failed for want of
/// resources.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// How long a connection may speak HTTP, in handshake timeouts (15 s by
/// default). A page load and a WebSocket handshake take a fraction of one.
const HTTP_LIFETIME_FACTOR: u32 = 3;

/// The bounds on connections not yet upgraded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingLimits {
    /// Connections not yet upgraded, at most.
    pub(crate) max_pending: usize,
    /// How long a connection has to send a complete request head.
    pub(crate) handshake_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` fires, then stops accepting,
/// asks every connection still speaking HTTP to finish, and returns once they
/// all have (upgraded WebSockets live on, on their own).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: PendingLimits,
    metrics: Arc<Metrics>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let pending = Arc::new(Semaphore::new(limits.max_pending.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout);
    // Every connection task holds a receiver; the sender says "finish".
    let (closing, closing_rx) = watch::channel(());

    loop {
        let permit = tokio::select! {
            permit = pending.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.recv() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.recv() => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                metrics.accept_error();
                error!(%error, "accept failed; retrying in a second");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_RETRY) => continue,
                    _ = shutdown.recv() => break,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection = builder
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app.clone()))
            .with_upgrades();
        let mut closing_rx = closing_rx.clone();
        let metrics = metrics.clone();
        metrics.pending_opened();
        let grace = limits.handshake_timeout;
        let lifetime = grace.saturating_mul(HTTP_LIFETIME_FACTOR);
        tokio::spawn(async move {
            let mut connection = pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = tokio::time::sleep(lifetime) => {
                    debug!("an HTTP connection outlived its time; closing it");
                    connection.as_mut().graceful_shutdown();
                    finish(connection, grace).await
                }
                _ = closing_rx.changed() => {
                    connection.as_mut().graceful_shutdown();
                    finish(connection, grace).await
                }
            };
            if let Err(error) = result {
                debug!(%error, "HTTP connection ended");
            }
            metrics.pending_closed();
            drop(permit);
            drop(closing_rx);
        });
    }
    drop(listener);
    drop(closing_rx);
    let _ = closing.send(());
    closing.closed().await;
}

/// Lets a connection asked to close finish its response in flight, for at
/// most `grace`: a client that does not read it must not hold the
/// connection (or the shim's shutdown) for ever.
async fn finish<F>(connection: F, grace: Duration) -> Result<(), hyper::Error>
where
    F: std::future::Future<Output = Result<(), hyper::Error>>,
{
    tokio::time::timeout(grace, connection)
        .await
        .unwrap_or(Ok(()))
}

/// Errors about one connection that went away before it was accepted.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
