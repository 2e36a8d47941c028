//! The lobby watcher: fresh `top` frames for the connections that asked for
//! them with `watch-top`.

use crate::protocol::Frame;
use crate::redis::Violet;
use crate::registry::Hub;
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tracing::debug;

/// How often at most watchers get a fresh `top` frame.
pub const TOP_PUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Pushes `top` frames to watchers when rooms change, at most once per
/// [`TOP_PUSH_INTERVAL`], with one `VIOLET.TOP` per distinct count.
pub async fn watch_top(hub: Arc<Hub>, violet: Violet, mut shutdown: broadcast::Receiver<()>) {
    loop {
        tokio::select! {
            () = hub.top_changed.notified() => {}
            _ = shutdown.recv() => return,
        }
        for (count, sockets) in hub.top_watchers() {
            match violet.top(Some(count), None).await {
                Ok(rooms) => {
                    let text = Utf8Bytes::from(Frame::Top { rooms }.to_text(None));
                    hub.push_top(count, &sockets, &text);
                }
                Err(error) => debug!(%error, "VIOLET.TOP for watchers failed"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(TOP_PUSH_INTERVAL) => {}
            _ = shutdown.recv() => return,
        }
    }
}
