//! The shim's background work, in one place: the tasks that run beside the
//! connections for as long as the shim serves.
//!
//! - [`events`]: the events subscription, feeding the [`Hub`];
//! - [`lobby`]: `top` pushes for the connections that watch the top rooms.
//!
//! [`Background::start`] spawns them all; each one stops when the shutdown
//! broadcast fires, and [`Background::join`] waits for them.

pub mod events;
pub mod lobby;

use crate::redis::Violet;
use crate::registry::Hub;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use violet_contract::keys::events_channel;

/// The running background tasks.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Spawns every background task of a shim serving `namespace`.
    pub fn start(
        client: redis::Client,
        namespace: &str,
        violet: Violet,
        hub: Arc<Hub>,
        max_reply_bytes: usize,
        shutdown: &broadcast::Sender<()>,
    ) -> Self {
        let tasks = vec![
            tokio::spawn(events::subscribe(
                client,
                events_channel(namespace),
                hub.clone(),
                shutdown.subscribe(),
            )),
            tokio::spawn(lobby::watch_top(
                hub,
                violet,
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
