//! The events subscription: one pub/sub connection per shim, subscribed to
//! the namespace's events channel, handing each event to its [`Feed`].
//!
//! When the connection drops it re-subscribes with backoff; once subscribed
//! again it reconciles (events may have been missed, or Redis may have lost
//! its data) and wakes the top watchers, since rooms may have changed while
//! it was away.

use crate::tasks::feed::{self, Feed};
use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::broadcast;
use tracing::{debug, warn};

/// Holds the subscription to the namespace's events until shutdown,
/// re-subscribing with backoff whenever the connection drops.
pub async fn subscribe(client: redis::Client, feed: Feed, mut shutdown: broadcast::Receiver<()>) {
    let mut backoff = Duration::from_millis(50);
    loop {
        tokio::select! {
            () = listen(&client, &feed, &mut backoff) => {}
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

/// One subscription, until its connection drops: its events are read as
/// they come, into the namespace's line, while the reconciliation that
/// follows the subscription runs, and applied behind it.
async fn listen(client: &redis::Client, feed: &Feed, backoff: &mut Duration) {
    let channel = feed.channel.as_str();
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
    *backoff = Duration::from_millis(50);
    let (line, arrivals) = feed::line();
    line.subscribed();
    let read = async move {
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            if let Ok(payload) = message.get_payload::<String>() {
                line.event(payload);
            }
        }
        warn!(channel, "lost the events subscription");
        // The line ends here: what it holds is applied, then `apply` ends.
    };
    tokio::join!(read, feed.apply(arrivals));
}
