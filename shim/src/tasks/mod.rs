//! The shim's background work, in one place: the tasks that run beside the
//! connections for as long as the shim serves.
//!
//! - [`events`]: the events subscription, feeding the [`Hub`];
//! - [`lease`]: this shim's lease on its sockets, renewed;
//! - [`lobby`]: `top` pushes for the connections that watch the top rooms;
//! - [`reconcile`] (not a task of its own): brings the [`Hub`] in line with
//!   Redis after the subscription or the lease was lost.
//!
//! [`Background::start`] spawns them all; each one stops when the shutdown
//! broadcast fires, and [`Background::join`] waits for them.

pub mod events;
pub mod lease;
pub mod lobby;
pub mod reconcile;

use crate::config::Config;
use crate::redis::Violet;
use crate::registry::Hub;
use crate::top::TopRooms;
use reconcile::Reconciler;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use violet_contract::keys::events_channel;

/// The running background tasks.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Spawns every background task of the shim `node` serving `config`
    /// (its namespace, lease and reply limit).
    pub fn start(
        config: &Config,
        node: &str,
        client: redis::Client,
        violet: Violet,
        (hub, top): (Arc<Hub>, Arc<TopRooms>),
        shutdown: &broadcast::Sender<()>,
    ) -> Self {
        let (namespace, lease, max_reply_bytes) =
            (&config.namespace, config.lease, config.max_reply_bytes);
        let reconciler = Arc::new(Reconciler::new(
            violet.clone(),
            hub.clone(),
            node.to_owned(),
        ));
        let tasks = vec![
            tokio::spawn(events::subscribe(
                client,
                events_channel(namespace),
                hub.clone(),
                reconciler.clone(),
                shutdown.subscribe(),
            )),
            tokio::spawn(lease::renew(
                violet.clone(),
                node.to_owned(),
                lease,
                reconciler,
                shutdown.subscribe(),
            )),
            tokio::spawn(lobby::watch_top(
                hub,
                top,
                max_reply_bytes,
                shutdown.subscribe(),
            )),
        ];
        Self { tasks }
    }

    /// Waits until every task has stopped (after the shutdown broadcast).
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
