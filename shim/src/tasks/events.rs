//! The events subscription: one pub/sub connection per shim, subscribed to
//! the namespace's events channel, handing each event to [`Hub::apply`].
//!
//! When the connection drops it re-subscribes with backoff; once subscribed
//! again it reconciles (events may have been missed, or Redis may have lost
//! its data) and wakes the top watchers, since rooms may have changed while
//! it was away.

use crate::registry::Hub;
use crate::tasks::reconcile::Reconciler;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tracing::{debug, info, warn};
use violet_contract::events::Event;

/// Holds the subscription to the namespace's events until shutdown,
/// re-subscribing with backoff whenever the connection drops.
pub async fn subscribe(
    client: redis::Client,
    channel: String,
    hub: Arc<Hub>,
    reconciler: Arc<Reconciler>,
    mut shutdown: broadcast::Receiver<()>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        tokio::select! {
            () = listen(&client, &channel, &hub, &reconciler, &mut backoff) => {}
            _ = shutdown.recv() => return,
        }
        debug!(delay = ?backoff, "re-subscribing to events");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.recv() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn listen(
    client: &redis::Client,
    channel: &str,
    hub: &Hub,
    reconciler: &Reconciler,
    backoff: &mut Duration,
) {
    let mut pubsub = match client.get_async_pubsub().await {
        Ok(pubsub) => pubsub,
        Err(error) => {
            debug!(%error, "cannot subscribe to events yet");
            return;
        }
    };
    if let Err(error) = pubsub.subscribe(channel).await {
        warn!(%error, "SUBSCRIBE failed");
        return;
    }
    info!(channel, "subscribed to events");
    *backoff = Duration::from_millis(50);
    // Events may have been missed while we were away (or Redis may have lost
    // its data): what the connections believe is checked against Redis
    // before any new event is applied; they wait in the subscription.
    if let Err(error) = reconciler.run().await {
        // Events flow on regardless: the lease task reconciles again when
        // it learns of a loss, and a shim user without HSCAN is refused here
        // for good (see README, ACL).
        warn!(%error, "could not reconcile after subscribing");
    }
    hub.top_changed.notify_one();
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Ok(payload) = message.get_payload::<String>() else {
            continue;
        };
        match serde_json::from_str::<Event>(&payload) {
            Ok(event) => hub.apply(event),
            Err(error) => warn!(%error, payload, "unreadable event"),
        }
    }
    warn!(channel, "lost the events subscription");
}
