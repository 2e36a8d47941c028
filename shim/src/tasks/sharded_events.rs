//! The events subscription on a Redis Cluster: one sharded subscription
//! (`SSUBSCRIBE`) per namespace, on the node that owns the namespace's slot,
//! handing each event to that namespace's [`Hub`].
//!
//! On a cluster the module publishes each namespace's events with sharded
//! pub/sub, which stays within the shard that owns the namespace (classic
//! `PUBLISH` would be broadcast to every node). The `redis` crate's cluster
//! client holds the subscriptions: when a node fails over or a slot moves, it
//! subscribes again on the new owner, and this task subscribes again where
//! it does not (see [`Follower`]). Every (re)subscription is followed by a
//! reconciliation of that namespace, since events may have been missed, and
//! a wake-up of its top watchers.

use crate::link::cluster_client;
use crate::registry::Hub;
use crate::tasks::reconcile::Reconciler;
use futures_util::future::join_all;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

/// One namespace's events: where they go.
pub struct Feed {
    pub channel: String,
    pub hub: Arc<Hub>,
    pub reconciler: Arc<Reconciler>,
}

/// Holds the sharded subscriptions of `feeds` on the cluster that `seeds`
/// belong to, until shutdown.
pub async fn subscribe(
    seeds: Vec<String>,
    timeout: Duration,
    feeds: Vec<Feed>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let feeds: HashMap<String, Feed> = feeds
        .into_iter()
        .map(|feed| (feed.channel.clone(), feed))
        .collect();
    let connector = Connector {
        seeds,
        timeout,
        channels: feeds.keys().cloned().collect(),
    };
    loop {
        let Some((connection, pushes)) = connector.connect(&mut shutdown).await else {
            return;
        };
        let mut follower = Follower {
            connection,
            pushes,
            feeds: &feeds,
            subscribed: feeds.keys().map(|c| (c.clone(), false)).collect(),
            timeout,
        };
        match follower.follow(&mut shutdown).await {
            Ended::Stopped => return,
            Ended::Stalled(channel) => {
                info!(
                    channel,
                    "the node holding an events subscription did not answer in time; \
                     subscribing to events anew from the seeds"
                );
            }
        }
    }
}

/// Makes the events connection and its subscriptions.
struct Connector {
    seeds: Vec<String>,
    timeout: Duration,
    channels: Vec<String>,
}

impl Connector {
    /// A new connection, with its own pushes (none of an older connection's
    /// can be applied after this one's reconciliations), and a subscription
    /// asked for each namespace; retried with backoff until the cluster
    /// answers. `None` at shutdown.
    async fn connect(
        &self,
        shutdown: &mut broadcast::Receiver<()>,
    ) -> Option<(ClusterConnection, Pushes)> {
        let mut backoff = Duration::from_millis(50);
        let mut failures = 0u32;
        loop {
            let (pushes_tx, pushes) = mpsc::unbounded_channel::<PushInfo>();
            let attempt = async {
                let client = cluster_client(&self.seeds, self.timeout)
                    .use_protocol(redis::ProtocolVersion::RESP3)
                    .push_sender(pushes_tx)
                    .build()?;
                client.get_async_connection().await
            };
            let error = tokio::select! {
                result = attempt => match result {
                    Ok(connection) => {
                        if failures > 0 {
                            info!(failures, "connected to the cluster for events");
                        }
                        subscribe_all(&connection, self.channels.iter(), self.timeout).await;
                        return Some((connection, pushes));
                    }
                    Err(error) => error,
                },
                _ = shutdown.recv() => return None,
            };
            // The cause (a refused address, a password, a server without
            // cluster support) is said once, in full: the redis crate's
            // own logs are off by default.
            if failures == 0 {
                warn!(%error, "cannot connect to the cluster for events; trying again");
            } else {
                debug!(%error, delay = ?backoff, "cannot connect to the cluster for events yet");
            }
            failures += 1;
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = shutdown.recv() => return None,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// One connection's pushes.
type Pushes = mpsc::UnboundedReceiver<PushInfo>;

/// Asks for a subscription to each of `channels`, all at once, waiting
/// `timeout` at most: one at a time, a hung node would hold back the
/// namespaces of the healthy ones. A subscription is confirmed by its push;
/// one that failed is asked again at the next resubscription.
async fn subscribe_all<'a>(
    connection: &ClusterConnection,
    channels: impl Iterator<Item = &'a String>,
    timeout: Duration,
) {
    // One channel per SSUBSCRIBE: channels of different slots cannot share
    // one.
    let asked = channels.map(|channel| {
        let mut connection = connection.clone();
        async move {
            if let Err(error) = connection.ssubscribe(channel).await {
                debug!(%error, channel, "cannot subscribe to events yet");
            }
        }
    });
    let _ = tokio::time::timeout(timeout, join_all(asked)).await;
}

/// How a connection's subscriptions ended.
enum Ended {
    /// Shutdown, or the cluster client stopped.
    Stopped,
    /// The node of this channel's subscription did not answer in time.
    Stalled(String),
}

/// One connection's subscriptions, followed.
struct Follower<'a> {
    connection: ClusterConnection,
    pushes: Pushes,
    feeds: &'a HashMap<String, Feed>,
    /// Which namespaces have a subscription now. The client moves
    /// subscriptions when it learns of a new topology, but a node that
    /// loses a slot (a manual failover, a slot moved) unsubscribes it, and
    /// the client then forgets it; and a node that died is only retried,
    /// never looked up again, while nothing is sent. So every namespace
    /// without a subscription is subscribed again, every
    /// [`RESUBSCRIBE_EVERY`], which also makes the client look the slot's
    /// owner up again.
    subscribed: HashMap<String, bool>,
    timeout: Duration,
}

impl Follower<'_> {
    /// Hands events on until shutdown or until a subscription's node hangs:
    /// a node that stops answering (paused, overloaded, cut off) without
    /// closing its connections pushes nothing, while its replica may have
    /// taken the slot over, and the cluster client would wait for it for
    /// ever. So the subscriptions' nodes are pinged every
    /// [`HEARTBEAT_EVERY`]; one that does not answer in time ends this
    /// connection, and the caller subscribes anew from the seeds.
    async fn follow(&mut self, shutdown: &mut broadcast::Receiver<()>) -> Ended {
        let mut resubscribe = tokio::time::interval(RESUBSCRIBE_EVERY);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        resubscribe.set_missed_tick_behavior(MissedTickBehavior::Skip);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                push = self.pushes.recv() => {
                    let Some(push) = push else {
                        warn!("the cluster client stopped; no more events");
                        return Ended::Stopped;
                    };
                    handle(push, self.feeds, &mut self.subscribed).await;
                }
                _ = resubscribe.tick() => {
                    let down = self.subscribed.iter().filter(|(_, up)| !**up).map(|(c, _)| c);
                    subscribe_all(&self.connection, down, self.timeout).await;
                }
                _ = heartbeat.tick() => {
                    if let Some(channel) = self.hung().await {
                        return Ended::Stalled(channel);
                    }
                }
                _ = shutdown.recv() => return Ended::Stopped,
            }
        }
    }

    /// A subscribed channel whose node did not answer a `PING` in time; all
    /// are pinged at once, within one timeout. (A node that refuses the
    /// connection or drops it is down, not hung: the client and the
    /// resubscriptions handle that.)
    async fn hung(&self) -> Option<String> {
        let timeout = self.timeout;
        let pings = self
            .subscribed
            .iter()
            .filter(|(_, up)| **up)
            .map(|(channel, _)| {
                let mut connection = self.connection.clone();
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(channel, SlotAddr::Master),
                ));
                async move {
                    let ping = connection.route_command(redis::cmd("PING"), route);
                    // The client's own response timeout and this one are
                    // the same: either may fire first.
                    match tokio::time::timeout(timeout, ping).await {
                        Err(_) => Some(channel.clone()),
                        Ok(Err(error)) if error.is_timeout() => Some(channel.clone()),
                        Ok(_) => None,
                    }
                }
            });
        join_all(pings).await.into_iter().flatten().next()
    }
}

/// How often namespaces without an events subscription are subscribed again.
const RESUBSCRIBE_EVERY: Duration = Duration::from_millis(250);

/// How often the nodes holding the subscriptions are pinged.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// One push from the cluster: an event, a (re)subscription, a subscription
/// ended, or a lost node; `subscribed` follows the subscriptions.
async fn handle(
    push: PushInfo,
    feeds: &HashMap<String, Feed>,
    subscribed: &mut HashMap<String, bool>,
) {
    let channel = push.data.first().and_then(text);
    let feed = channel.as_deref().and_then(|c| feeds.get(c));
    match (push.kind, feed) {
        (PushKind::SMessage, Some(feed)) => {
            if let Some(payload) = push.data.get(1).and_then(text) {
                feed.hub.apply_published(&payload);
            }
        }
        (PushKind::SSubscribe, Some(feed)) => {
            // A subscription confirmed again while it was up (the client
            // moving it, or a resubscription racing one) misses nothing.
            if subscribed.insert(feed.channel.clone(), true) == Some(true) {
                return;
            }
            info!(channel = feed.channel, "subscribed to events");
            feed.reconciler.subscribed().await;
        }
        (PushKind::SUnsubscribe, Some(feed)) => {
            // The slot moved or its node failed over: subscribed again
            // (on the new owner) at the next resubscription.
            info!(channel = feed.channel, "events subscription lost");
            subscribed.insert(feed.channel.clone(), false);
        }
        (PushKind::Disconnection, _) => {
            // Which namespaces that node held is not said: every one is
            // subscribed again, and reconciled once it is.
            info!("lost a connection to a cluster node; subscribing to events again");
            for up in subscribed.values_mut() {
                *up = false;
            }
        }
        (kind, _) => debug!(?kind, "push ignored"),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}
