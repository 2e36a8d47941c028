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
    reconciler.subscribed().await;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        if let Ok(payload) = message.get_payload::<String>() {
            hub.apply_published(&payload);
        }
    }
    warn!(channel, "lost the events subscription");
}
