//! The top rooms, shared by all of a shim's connections: one snapshot of the
//! most popular rooms, read from Redis for requests at most once per
//! [`FRESH_FOR`] whatever depth they ask for, and by the lobby at most as
//! often for its pushes, whatever the number of clients asking. A `top`
//! request, a `watch-top` and the lobby's pushes cost Redis nothing of their
//! own, so no number of browsers asking for the largest list can stall Redis
//! for the others.
//!
//! A snapshot is read as deep as the requests ask (at least [`TOP_DEFAULT`]
//! ranks, at most [`TOP_MAX`]). A request deeper than a fresh snapshot
//! waits until the snapshot is [`FRESH_FOR`] old, and the next read goes as
//! deep as every request that waited. A read stops after the room that
//! takes the rooms' ids and details past the shim's `--max-reply-bytes`, so
//! it copies about a reply's worth of bytes however large the rooms are, and
//! still holds more rooms than one `top` frame can (a room's JSON is larger
//! than its ids and details). It asks Redis a page at a time
//! ([`PAGE_ROOMS`] rooms, [`PAGE_BYTES`] bytes through `MAXBYTES`), so no one
//! command of it costs Redis more than about a millisecond, however many
//! rooms and fields there are.
//!
//! A reply may be up to [`FRESH_FOR`] old (or wait up to that long, when it
//! asks deeper than anyone did just before). Through the shim, `top` reaches
//! the first [`TOP_MAX`] rooms of the ranking, and of those the ones up to
//! the first that passes `--max-reply-bytes`: a request past them gets the
//! ones before (none when `offset` is past them), with `"truncated":true`
//! when `MAXBYTES` cut them.

use crate::protocol::{RoomInfo, ShimError, TopList};
use crate::redis::Violet;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use violet_contract::limits::{TOP_DEFAULT, TOP_MAX};

/// How long a snapshot answers requests before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(1);

/// The most rooms one read of the snapshot asks Redis for: a page of rooms
/// with the most fields, the smallest, costs Redis under a millisecond.
const PAGE_ROOMS: u64 = 32;

/// The most bytes (as `MAXBYTES` counts them) one read of the snapshot asks
/// Redis for.
const PAGE_BYTES: u64 = 64 * 1024;

/// The shared snapshot of the top rooms.
pub struct TopRooms {
    violet: Violet,
    /// `MAXBYTES` for every read: the shim's `--max-reply-bytes`.
    max_bytes: u64,
    snapshot: Mutex<Option<Snapshot>>,
    /// The deepest rank asked for that the snapshot did not reach, for the
    /// next read.
    wanted: AtomicU64,
}

struct Snapshot {
    taken: Instant,
    /// How many ranks were asked for (the ranking may hold fewer rooms).
    depth: u64,
    rooms: Arc<Vec<RoomInfo>>,
    /// Whether `MAXBYTES` may have left rooms of the ranking out after these.
    cut: bool,
}

/// Some ranks of a snapshot: `rooms[range]`, without copying them.
pub struct TopSlice {
    rooms: Arc<Vec<RoomInfo>>,
    range: std::ops::Range<usize>,
    cut: bool,
}

impl TopSlice {
    /// The rooms, and whether some asked for were left out of the snapshot.
    pub fn rooms(&self) -> TopList<'_> {
        TopList {
            rooms: &self.rooms[self.range.clone()],
            cut: self.cut,
        }
    }
}

/// What a room counts for `MAXBYTES`: its id's bytes and its details'.
fn room_bytes(room: &RoomInfo) -> u64 {
    let details: usize = room
        .details
        .iter()
        .map(|(name, value)| name.len().saturating_add(value.len()))
        .fold(0, usize::saturating_add);
    u64::try_from(room.room_id.len().saturating_add(details)).unwrap_or(u64::MAX)
}

impl TopRooms {
    /// Top rooms read with `MAXBYTES max_bytes` (at least 1).
    pub fn new(violet: Violet, max_bytes: usize) -> Self {
        Self {
            violet,
            max_bytes: u64::try_from(max_bytes).unwrap_or(u64::MAX).max(1),
            snapshot: Mutex::new(None),
            wanted: AtomicU64::new(0),
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
        // read wait for it instead of reading it again. A request deeper
        // than a fresh snapshot waits until the snapshot may be read again
        // (it is read then as deep as all such requests asked), so no
        // depth asked reads Redis more than once per `max_age`.
        let mut snapshot = self.snapshot.lock().await;
        let (rooms, cut) = loop {
            let age = snapshot.as_ref().map(|s| s.taken.elapsed());
            match snapshot.as_ref() {
                Some(s) if s.taken.elapsed() < max_age => {
                    // A snapshot cut by bytes holds all a deeper read would.
                    if s.depth >= depth || s.cut {
                        break (s.rooms.clone(), s.cut);
                    }
                    self.wanted.fetch_max(depth, Ordering::Relaxed);
                    let wait = max_age.saturating_sub(age.unwrap_or_default());
                    drop(snapshot);
                    tokio::time::sleep(wait).await;
                    snapshot = self.snapshot.lock().await;
                }
                _ => {
                    let depth = depth
                        .max(self.wanted.swap(0, Ordering::Relaxed))
                        .max(TOP_DEFAULT);
                    let (rooms, cut) = self.read(depth).await?;
                    let rooms = Arc::new(rooms);
                    *snapshot = Some(Snapshot {
                        taken: Instant::now(),
                        depth,
                        rooms: rooms.clone(),
                        cut,
                    });
                    break (rooms, cut);
                }
            }
        };
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(rooms.len());
        let wanted = usize::try_from(depth).unwrap_or(usize::MAX);
        let end = wanted.min(rooms.len());
        Ok(TopSlice {
            cut: cut && wanted > rooms.len(),
            rooms,
            range: start..end,
        })
    }

    /// The first `depth` ranks, read in pages of at most [`PAGE_ROOMS`]
    /// rooms and [`PAGE_BYTES`] bytes, until the ranking ends or the rooms
    /// pass `max_bytes`; and whether they did (rooms may be missing after
    /// them). Each page is one command, so Redis serves other clients
    /// between them. The ranking may change between pages: a room that
    /// drops past a page boundary is kept once; one that climbs past one is
    /// missed until the next snapshot.
    async fn read(&self, depth: u64) -> Result<(Vec<RoomInfo>, bool), ShimError> {
        let mut rooms = Vec::new();
        let mut listed: HashSet<String> = HashSet::new();
        let (mut offset, mut bytes) = (0_u64, 0_u64);
        while offset < depth {
            if bytes > self.max_bytes {
                return Ok((rooms, true));
            }
            let count = (depth - offset).min(PAGE_ROOMS);
            let page_bytes = (self.max_bytes - bytes).clamp(1, PAGE_BYTES);
            let page = self
                .violet
                .top(Some(count), Some(offset), Some(page_bytes))
                .await?;
            let got = u64::try_from(page.len()).unwrap_or(u64::MAX);
            let page_listed = page.iter().map(room_bytes).fold(0, u64::saturating_add);
            bytes = bytes.saturating_add(page_listed);
            offset = offset.saturating_add(got);
            for room in page {
                if listed.insert(room.room_id.clone()) {
                    rooms.push(room);
                }
            }
            // A short page not cut by its bytes is the end of the ranking.
            if got < count && page_listed <= page_bytes {
                break;
            }
        }
        Ok((rooms, offset < depth && bytes > self.max_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_counts_its_id_and_details() {
        let room = RoomInfo {
            room_id: "r1".into(),
            viewers: 7,
            details: [("title".to_owned(), "abc".to_owned())].into(),
        };
        assert_eq!(room_bytes(&room), 2 + 5 + 3);
    }
}
