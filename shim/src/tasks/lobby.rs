//! The lobby watcher: fresh `top` frames for the connections that asked for
//! them with `watch-top`.

use crate::protocol::top_text;
use crate::registry::Hub;
use crate::top::TopRooms;
use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tracing::debug;

/// How often at most watchers get a fresh `top` frame.
pub const TOP_PUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Pushes `top` frames to watchers when rooms change, at most once per
/// [`TOP_PUSH_INTERVAL`], from the shared snapshot ([`TopRooms`]) at the
/// largest count asked for; each count gets the first rooms of it, within
/// `max_reply_bytes`.
pub async fn watch_top(
    hub: Arc<Hub>,
    top: Arc<TopRooms>,
    max_reply_bytes: usize,
    mut shutdown: broadcast::Receiver<()>,
) {
    loop {
        tokio::select! {
            () = hub.top_changed.notified() => {}
            _ = shutdown.recv() => return,
        }
        let watchers = hub.top_watchers();
        if let Some(&largest) = watchers.keys().next_back() {
            match top.fresh(Some(largest)).await {
                Ok(top) => {
                    let rooms = top.rooms();
                    for (count, sockets) in watchers {
                        let first =
                            usize::try_from(count).map_or(rooms.len(), |c| c.min(rooms.len()));
                        let text = top_text(&rooms[..first], None, max_reply_bytes);
                        hub.push_top(count, &sockets, &Utf8Bytes::from(text));
                    }
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
