//! The lobby watcher: fresh `top` frames for the connections that asked for
//! them with `watch-top`.

use crate::protocol::TopList;
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
                    let frames = TopFrames::new(top.rooms(), max_reply_bytes);
                    let mut last: Option<(Cut, Utf8Bytes)> = None;
                    // Ascending counts: watchers whose counts reach past what
                    // fits share one frame.
                    for (count, sockets) in watchers {
                        let cut = frames.cut(usize::try_from(count).unwrap_or(usize::MAX));
                        let text = match &last {
                            Some((made, text)) if *made == cut => text.clone(),
                            _ => Utf8Bytes::from(frames.text(cut)),
                        };
                        hub.push_top(count, &sockets, &text);
                        last = Some((cut, text));
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

/// Which rooms a `top` frame holds: the first `rooms`, and whether some of
/// those asked for were left out to keep within the reply limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    rooms: usize,
    truncated: bool,
}

/// `top` frames of every count the watchers asked for, from one snapshot:
/// each room is written as JSON once, and a count's frame is the rooms that
/// fit joined, so watchers with a thousand different counts cost one
/// serialization of the rooms and a copy per distinct frame, not a thousand
/// serializations. The frames are those of [`crate::protocol::top_text`].
struct TopFrames {
    /// The first rooms that fit in the reply limit, as JSON.
    rooms: Vec<String>,
    /// The rooms of the snapshot, whether they fit or not; unbounded when
    /// the snapshot itself was cut short.
    total: usize,
}

/// The frame around the rooms, with `"truncated":true` (the longer form).
const ENVELOPE: &str = r#"{"kind":"top","rooms":[],"truncated":true}"#;

impl TopFrames {
    fn new(list: TopList<'_>, max_bytes: usize) -> Self {
        let rooms = list.rooms;
        let mut size = ENVELOPE.len();
        let mut written = Vec::new();
        for room in rooms {
            // Through a `Value`, as every frame is written: keys in order.
            let text = serde_json::to_value(room)
                .map(|value| value.to_string())
                .expect("a room holds only strings and numbers");
            // The room and the comma before it (one byte too many for the first).
            size = size.saturating_add(text.len() + 1);
            if size > max_bytes {
                break;
            }
            written.push(text);
        }
        Self {
            rooms: written,
            total: if list.cut { usize::MAX } else { rooms.len() },
        }
    }

    /// What the frame for `count` rooms holds.
    fn cut(&self, count: usize) -> Cut {
        let wanted = count.min(self.total);
        Cut {
            rooms: wanted.min(self.rooms.len()),
            truncated: wanted > self.rooms.len(),
        }
    }

    fn text(&self, cut: Cut) -> String {
        let rooms = self.rooms[..cut.rooms].join(",");
        if cut.truncated {
            format!(r#"{{"kind":"top","rooms":[{rooms}],"truncated":true}}"#)
        } else {
            format!(r#"{{"kind":"top","rooms":[{rooms}]}}"#)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{top_text, RoomInfo};
    use std::collections::BTreeMap;

    fn rooms(n: usize, detail_bytes: usize) -> Vec<RoomInfo> {
        (0..n)
            .map(|i| RoomInfo {
                room_id: format!("room-{i}"),
                viewers: (n - i) as u64,
                details: BTreeMap::from([("title".to_owned(), "t".repeat(detail_bytes))]),
            })
            .collect()
    }

    #[test]
    fn each_count_gets_the_frame_a_top_reply_would_be() {
        for (n, detail, max_bytes) in [
            (0, 0, 1 << 20),
            (5, 10, 1 << 20),
            (40, 100, 1500),
            (40, 3000, 1000),
        ] {
            let rooms = rooms(n, detail);
            let frames = TopFrames::new(TopList::from(&rooms), max_bytes);
            for count in [0, 1, 2, 5, 12, 39, 40, 41, 1000] {
                let expected = top_text(&rooms[..count.min(n)], None, max_bytes);
                assert_eq!(
                    frames.text(frames.cut(count)),
                    expected,
                    "{n} rooms of {detail} B, count {count}, limit {max_bytes}"
                );
            }
        }
    }

    #[test]
    fn a_snapshot_cut_short_marks_deeper_counts_truncated() {
        let rooms = rooms(5, 10);
        let list = TopList {
            rooms: &rooms,
            cut: true,
        };
        let frames = TopFrames::new(list, 1 << 20);
        assert_eq!(frames.text(frames.cut(5)), top_text(&rooms, None, 1 << 20));
        let deeper = frames.cut(6);
        assert_eq!((deeper.rooms, deeper.truncated), (5, true));
        assert_eq!(
            frames.text(deeper),
            top_text(
                TopList {
                    rooms: &rooms,
                    cut: true
                },
                None,
                1 << 20
            )
        );
    }

    #[test]
    fn counts_past_what_fits_share_one_frame() {
        let rooms = rooms(40, 100);
        let frames = TopFrames::new(TopList::from(&rooms), 1500);
        let cut = frames.cut(20);
        assert!(cut.truncated && cut.rooms < 20, "{cut:?}");
        assert_eq!(frames.cut(21), cut);
        assert_eq!(frames.cut(1000), cut);
    }
}
