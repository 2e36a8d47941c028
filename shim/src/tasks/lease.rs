//! The lease: this shim's claim on its sockets, renewed every third of its
//! length with one `VIOLET.LEASE` for all of them.
//!
//! If the shim dies, or cannot reach Redis for longer than the lease, the
//! module takes its sockets out of their rooms by itself. The shim then knows
//! it: `VIOLET.LEASE` answers `expired` while the module reaps them and
//! `created` once it has; either way the shim reconciles, so that its clients
//! and Redis agree (the reaped sockets' clients also get a `member-left`
//! about themselves with reason `expired`, from the module's events).

use crate::redis::{Lease, Violet};
use crate::tasks::reconcile::Reconciler;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// How soon to ask again while the module reaps an expired lease.
const WHILE_REAPING: Duration = Duration::from_millis(100);

/// Renews `node`'s lease until shutdown.
pub async fn renew(
    violet: Violet,
    node: String,
    lease: Duration,
    reconciler: Arc<Reconciler>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let every = lease / 3;
    let mut held = false;
    let mut renewed_at = Instant::now();
    // Whether the last attempt failed: logged once as it starts and ends.
    let mut failing = false;
    // Whether the lease running out during this failure was logged.
    let mut said_late = false;
    loop {
        let answer = violet.lease(&node, lease).await;
        match (&answer, failing) {
            (Err(error), false) => {
                warn!(%error, node, "cannot reach Redis for the lease; trying again")
            }
            (Ok(_), true) => info!(node, "Redis answers the lease again"),
            _ => {}
        }
        failing = answer.is_err();
        said_late &= failing;
        let wait = match answer {
            Ok(Lease::Renewed) => {
                renewed_at = Instant::now();
                held = true;
                every
            }
            Ok(Lease::Created) => {
                if held {
                    warn!(
                        node,
                        "the lease had run out: sockets were reaped; reconciling"
                    );
                } else {
                    info!(node, lease = ?lease, "lease taken");
                }
                held = true;
                renewed_at = Instant::now();
                if let Err(error) = reconciler.run().await {
                    warn!(%error, "could not reconcile after taking the lease");
                }
                every
            }
            Ok(Lease::Expired) => {
                if held {
                    warn!(
                        node,
                        "the lease ran out: the module is reaping this shim's sockets"
                    );
                }
                held = false;
                WHILE_REAPING
            }
            Err(error) => {
                if held && renewed_at.elapsed() >= lease && !said_late {
                    warn!(%error, node, "could not renew the lease in time: sockets may be reaped");
                    said_late = true;
                } else {
                    debug!(%error, "could not renew the lease");
                }
                every.min(WHILE_REAPING * 5)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.recv() => return,
        }
    }
}
