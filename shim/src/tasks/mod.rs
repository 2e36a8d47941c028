//! The shim's background work, in one place: the tasks that run beside the
//! connections for as long as the shim serves.
//!
//! - [`events`]: the events subscription on one server, feeding the [`Hub`](crate::registry::Hub);
//! - [`sharded_events`]: the same on a Redis Cluster, with sharded pub/sub;
//! - [`feed`] (not a task of its own): each namespace's events on their way
//!   to its [`Hub`](crate::registry::Hub), bounded in bytes;
//! - [`lease`]: this shim's lease on its sockets, renewed;
//! - [`lobby`]: `top` pushes for the connections that watch the top rooms;
//! - [`reconcile`] (not a task of its own): brings the [`Hub`](crate::registry::Hub) in line with
//!   Redis after the subscription or the lease was lost.
//!
//! [`Background::start`] spawns them all; each one stops when the shutdown
//! broadcast fires, and [`Background::join`] waits for them.

pub mod events;
pub mod feed;
pub mod lease;
pub mod lobby;
pub mod reconcile;
pub mod sharded_events;

use crate::config::Config;
use crate::space::Space;
use feed::Feed;
use reconcile::Reconciler;
use std::sync::Arc;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use violet_contract::keys::events_channel;

/// Where the events come from.
pub enum EventSource {
    /// One Redis server: a classic subscription per namespace.
    Server(Box<redis::Client>),
    /// A Redis Cluster, by its seeds: a sharded subscription per namespace.
    Cluster(Vec<String>),
}

/// The running background tasks.
pub struct Background {
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Spawns every background task of the shim `node` serving `spaces`
    /// with `config` (its lease, reply limit and Redis timeout): per
    /// namespace the events, the lease and the lobby.
    pub fn start(
        config: &Config,
        node: &str,
        events: EventSource,
        spaces: &[Arc<Space>],
        shutdown: &broadcast::Sender<()>,
    ) -> Self {
        let mut tasks = Vec::new();
        let mut feeds = Vec::new();
        for space in spaces {
            let reconciler = Arc::new(Reconciler::new(
                space.violet.clone(),
                space.hub.clone(),
                node.to_owned(),
            ));
            tasks.push(tokio::spawn(lease::renew(
                space.violet.clone(),
                node.to_owned(),
                config.lease,
                reconciler.clone(),
                shutdown.subscribe(),
            )));
            tasks.push(tokio::spawn(lobby::watch_top(
                space.hub.clone(),
                space.top.clone(),
                config.max_reply_bytes,
                shutdown.subscribe(),
            )));
            feeds.push(Feed {
                channel: events_channel(space.name()),
                hub: space.hub.clone(),
                reconciler,
            });
        }
        match events {
            EventSource::Server(client) => {
                for feed in feeds {
                    tasks.push(tokio::spawn(events::subscribe(
                        (*client).clone(),
                        feed,
                        shutdown.subscribe(),
                    )));
                }
            }
            EventSource::Cluster(seeds) => tasks.push(tokio::spawn(sharded_events::subscribe(
                seeds,
                config.redis_timeout,
                feeds,
                shutdown.subscribe(),
            ))),
        }
        Self { tasks }
    }

    /// Waits until every task has stopped (after the shutdown broadcast).
    pub async fn join(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
