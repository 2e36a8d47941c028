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
//!
//! One task per namespace applies its events, in order: the reconciliation
//! after a (re)subscription, then the events behind it. So neither one
//! namespace's reconciliation nor its node hanging holds back another's
//! events; and the probes of the nodes (resubscriptions, heartbeats) run
//! beside the pushes, never in their way.

use crate::link::{cluster_client, late};
use crate::tasks::feed::{self, Feed, Line};
use futures_util::future::join_all;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{PushInfo, PushKind, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

/// How often namespaces without an events subscription are subscribed again.
const RESUBSCRIBE_EVERY: Duration = Duration::from_millis(250);

/// How often the nodes holding the subscriptions are pinged.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// The longest a connection waits, at most, before a subscription that
/// cannot be made on a hung node makes it start anew.
const MAX_PATIENCE: Duration = Duration::from_secs(60);

/// Holds the sharded subscriptions of `feeds` on the cluster that `seeds`
/// belong to, until shutdown.
pub async fn subscribe(
    seeds: Vec<String>,
    timeout: Duration,
    feeds: Vec<Feed>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let lines: HashMap<String, Line> = feeds
        .into_iter()
        .map(|feed| {
            let (line, arrivals) = feed::line();
            let channel = feed.channel.clone();
            tokio::spawn(async move { feed.apply(arrivals).await });
            (channel, line)
        })
        .collect();
    let connector = Connector {
        seeds,
        timeout,
        channels: lines.keys().cloned().collect(),
    };
    let mut patience = timeout;
    loop {
        let Some((connection, pushes)) = connector.connect(&mut shutdown).await else {
            return;
        };
        let mut follower = Follower {
            connection,
            pushes,
            lines: &lines,
            subscribed: lines.keys().map(|c| (c.clone(), false)).collect(),
            timeout,
            patience,
            made: Instant::now(),
            all_up: false,
        };
        let ended = follower.follow(&mut shutdown).await;
        // A hung node whose slot nobody took over (no replica, or before
        // the failover) would otherwise make the connection start anew, and
        // cost the other namespaces a gap in their events, every timeout.
        patience = if follower.all_up {
            timeout
        } else {
            (patience * 2).min(MAX_PATIENCE)
        };
        match ended {
            Ended::Stopped => return,
            Ended::Stalled(channel) => info!(
                channel,
                "the node of an events subscription did not answer in time; \
                 subscribing to events anew from the seeds"
            ),
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
                let connection = client.get_async_connection().await?;
                subscribe_all(connection.clone(), self.channels.clone(), self.timeout).await;
                redis::RedisResult::Ok(connection)
            };
            let error = tokio::select! {
                result = attempt => match result {
                    Ok(connection) => {
                        if failures > 0 {
                            info!(failures, "connected to the cluster for events");
                        }
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

/// Asks for a subscription to each of `channels`, all at once, each
/// waiting `timeout` at most: one at a time, a hung node would hold back
/// the namespaces of the healthy ones. A subscription is confirmed by its
/// push; one that failed is asked again at the next resubscription.
/// Returns the channels whose node did not answer in time.
async fn subscribe_all(
    connection: ClusterConnection,
    channels: Vec<String>,
    timeout: Duration,
) -> Vec<String> {
    // One channel per SSUBSCRIBE: channels of different slots cannot share
    // one.
    let asked = channels.into_iter().map(|channel| {
        let mut connection = connection.clone();
        async move {
            let answer = tokio::time::timeout(timeout, connection.ssubscribe(&channel)).await;
            if late(&answer) {
                return Some(channel);
            }
            if let Ok(Err(error)) = answer {
                debug!(%error, channel, "cannot subscribe to events yet");
            }
            None
        }
    });
    join_all(asked).await.into_iter().flatten().collect()
}

/// The channels, among `channels`, whose node did not answer a `PING` in
/// time; all are pinged at once. (A node that refuses the connection or
/// drops it is down, not hung: the client and the resubscriptions handle
/// that.)
async fn unanswered(
    connection: ClusterConnection,
    channels: Vec<String>,
    timeout: Duration,
) -> Vec<String> {
    let pings = channels.into_iter().map(|channel| {
        let mut connection = connection.clone();
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::with_key(
            &channel,
            SlotAddr::Master,
        )));
        async move {
            let ping = connection.route_command(redis::cmd("PING"), route);
            late(&tokio::time::timeout(timeout, ping).await).then_some(channel)
        }
    });
    join_all(pings).await.into_iter().flatten().collect()
}

/// How a connection's subscriptions ended.
enum Ended {
    /// Shutdown, or the cluster client stopped.
    Stopped,
    /// The node of this channel's subscription did not answer in time.
    Stalled(String),
}

/// A probe of the nodes, run beside the pushes.
enum Probe {
    /// Subscriptions asked for again; the channels whose node did not
    /// answer in time.
    Resubscribed(Vec<String>),
    /// The subscriptions' nodes pinged; the channels whose node did not
    /// answer in time.
    Pinged(Vec<String>),
}

/// One connection's subscriptions, followed.
struct Follower<'a> {
    connection: ClusterConnection,
    pushes: Pushes,
    lines: &'a HashMap<String, Line>,
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
    /// How old this connection must be before a subscription its node does
    /// not answer makes it start anew.
    patience: Duration,
    /// When this connection was made.
    made: Instant,
    /// Whether every namespace was subscribed at some point.
    all_up: bool,
}

impl Follower<'_> {
    /// Hands events on until shutdown or until a subscription's node hangs:
    /// a node that stops answering (paused, overloaded, cut off) without
    /// closing its connections pushes nothing, while its replica may have
    /// taken the slot over, and the cluster client would wait for it for
    /// ever, retrying on it. So the subscriptions' nodes are pinged every
    /// [`HEARTBEAT_EVERY`]; one that does not answer in time, or (after
    /// [`Self::patience`]) one that does not answer a resubscription, ends
    /// this connection, and the caller subscribes anew from the seeds.
    async fn follow(&mut self, shutdown: &mut broadcast::Receiver<()>) -> Ended {
        let mut resubscribe = tokio::time::interval(RESUBSCRIBE_EVERY);
        let mut heartbeat = tokio::time::interval(HEARTBEAT_EVERY);
        resubscribe.set_missed_tick_behavior(MissedTickBehavior::Skip);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Skip);
        // At most one probe of each kind at a time; dropped with this.
        let mut probes: JoinSet<Probe> = JoinSet::new();
        let (mut resubscribing, mut pinging) = (false, false);
        loop {
            tokio::select! {
                push = self.pushes.recv() => {
                    let Some(push) = push else {
                        warn!("the cluster client stopped; no more events");
                        return Ended::Stopped;
                    };
                    self.handle(push);
                }
                _ = resubscribe.tick(), if !resubscribing => {
                    let down = self.channels(false);
                    if !down.is_empty() {
                        resubscribing = true;
                        let (connection, timeout) = (self.connection.clone(), self.timeout);
                        probes.spawn(async move {
                            Probe::Resubscribed(subscribe_all(connection, down, timeout).await)
                        });
                    }
                }
                _ = heartbeat.tick(), if !pinging => {
                    let up = self.channels(true);
                    if !up.is_empty() {
                        pinging = true;
                        let (connection, timeout) = (self.connection.clone(), self.timeout);
                        probes.spawn(async move {
                            Probe::Pinged(unanswered(connection, up, timeout).await)
                        });
                    }
                }
                Some(done) = probes.join_next(), if !probes.is_empty() => {
                    match done {
                        Ok(Probe::Resubscribed(hung)) => {
                            resubscribing = false;
                            let patient = self.made.elapsed() < self.patience;
                            if let (Some(channel), false) = (hung.into_iter().next(), patient) {
                                return Ended::Stalled(channel);
                            }
                        }
                        Ok(Probe::Pinged(hung)) => {
                            pinging = false;
                            if let Some(channel) = hung.into_iter().next() {
                                return Ended::Stalled(channel);
                            }
                        }
                        // A probe cannot panic; were it to, another is sent.
                        Err(_) => (resubscribing, pinging) = (false, false),
                    }
                }
                _ = shutdown.recv() => return Ended::Stopped,
            }
        }
    }

    /// The channels that are subscribed (`up`) or not.
    fn channels(&self, up: bool) -> Vec<String> {
        self.subscribed
            .iter()
            .filter(|(_, &is_up)| is_up == up)
            .map(|(channel, _)| channel.clone())
            .collect()
    }

    /// One push from the cluster: an event, a (re)subscription, a
    /// subscription ended, or a lost node.
    fn handle(&mut self, push: PushInfo) {
        let channel = push.data.first().and_then(text);
        let line = channel.as_deref().and_then(|c| self.lines.get_key_value(c));
        match (push.kind, line) {
            (PushKind::SMessage, Some((_, line))) => {
                if let Some(payload) = push.data.get(1).and_then(text) {
                    line.event(payload);
                }
            }
            (PushKind::SSubscribe, Some((channel, line))) => {
                // A subscription confirmed again while it was up (the client
                // moving it, or a resubscription racing one) misses nothing.
                if self.subscribed.insert(channel.clone(), true) == Some(true) {
                    return;
                }
                self.all_up |= self.subscribed.values().all(|up| *up);
                line.subscribed();
            }
            (PushKind::SUnsubscribe, Some((channel, _))) => {
                // The slot moved or its node failed over: subscribed again
                // (on the new owner) at the next resubscription.
                info!(channel, "events subscription lost");
                self.subscribed.insert(channel.clone(), false);
            }
            (PushKind::Disconnection, _) => {
                // Which namespaces that node held is not said: every one is
                // subscribed again, and reconciled once it is.
                info!("lost a connection to a cluster node; subscribing to events again");
                for up in self.subscribed.values_mut() {
                    *up = false;
                }
            }
            (kind, _) => debug!(?kind, "push ignored"),
        }
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}
