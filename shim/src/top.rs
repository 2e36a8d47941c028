//! The top rooms, shared by all of a shim's connections: one snapshot of the
//! most popular rooms, read from Redis for requests at most once per
//! [`FRESH_FOR`] (and again at once only when a request reaches deeper than
//! the snapshot), and by the lobby at most as often for its pushes,
//! whatever the number of clients asking. A `top` request, a `watch-top`
//! and the lobby's pushes cost Redis nothing of their own, so no number of
//! browsers asking for the largest list can stall Redis for the others.
//!
//! A reply may be up to [`FRESH_FOR`] old. Through the shim, `top` reaches
//! the first [`TOP_MAX`] rooms of the ranking: a request past them gets the
//! ones before that bound (none when `offset` is past it).

use crate::protocol::{RoomInfo, ShimError};
use crate::redis::Violet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use violet_contract::limits::{TOP_DEFAULT, TOP_MAX};

/// How long a snapshot answers requests before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// The shared snapshot of the top rooms.
pub struct TopRooms {
    violet: Violet,
    snapshot: Mutex<Option<Snapshot>>,
}

struct Snapshot {
    taken: Instant,
    /// How many ranks were asked for (the ranking may hold fewer rooms).
    depth: u64,
    rooms: Arc<Vec<RoomInfo>>,
}

/// Some ranks of a snapshot: `rooms[range]`, without copying them.
pub struct TopSlice {
    rooms: Arc<Vec<RoomInfo>>,
    range: std::ops::Range<usize>,
}

impl TopSlice {
    pub fn rooms(&self) -> &[RoomInfo] {
        &self.rooms[self.range.clone()]
    }
}

impl TopRooms {
    pub fn new(violet: Violet) -> Self {
        Self {
            violet,
            snapshot: Mutex::new(None),
        }
    }

    /// `count` rooms (default 10) after `offset`, most viewers first.
    ///
    /// # Errors
    /// `BAD_REQUEST` for a `count` over [`TOP_MAX`]; `UNAVAILABLE` when the
    /// snapshot must be read and Redis cannot be.
    pub async fn get(
        &self,
        count: Option<u64>,
        offset: Option<u64>,
    ) -> Result<TopSlice, ShimError> {
        self.within(FRESH_FOR, count, offset).await
    }

    /// Like [`Self::get`], but read from Redis now: for the lobby, which
    /// pushes changes (and runs at most once per [`FRESH_FOR`] itself).
    ///
    /// # Errors
    /// As [`Self::get`].
    pub async fn fresh(&self, count: Option<u64>) -> Result<TopSlice, ShimError> {
        self.within(Duration::ZERO, count, None).await
    }

    /// From a snapshot younger than `max_age`, or a new one.
    async fn within(
        &self,
        max_age: Duration,
        count: Option<u64>,
        offset: Option<u64>,
    ) -> Result<TopSlice, ShimError> {
        let count = count.unwrap_or(TOP_DEFAULT);
        if count > TOP_MAX {
            return Err(ShimError::bad_request(format!(
                "count must be an integer from 0 to {TOP_MAX}"
            )));
        }
        let offset = offset.unwrap_or(0).min(TOP_MAX);
        let count = count.min(TOP_MAX - offset);
        let depth = offset + count;
        // One reader at a time: requests that arrive while the snapshot is
        // read wait for it instead of reading it again.
        let mut snapshot = self.snapshot.lock().await;
        let fresh = snapshot.as_ref().filter(|s| s.taken.elapsed() < max_age);
        let rooms = match fresh {
            Some(s) if s.depth >= depth => s.rooms.clone(),
            _ => {
                let depth = depth.max(fresh.map_or(0, |s| s.depth)).max(TOP_DEFAULT);
                let rooms = Arc::new(self.violet.top(Some(depth), None).await?);
                *snapshot = Some(Snapshot {
                    taken: Instant::now(),
                    depth,
                    rooms: rooms.clone(),
                });
                rooms
            }
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(rooms.len());
        let end = usize::try_from(depth)
            .unwrap_or(usize::MAX)
            .min(rooms.len());
        Ok(TopSlice {
            rooms,
            range: start..end,
        })
    }
}
