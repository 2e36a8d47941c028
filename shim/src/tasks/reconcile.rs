//! Reconciliation: what this shim believes of its sockets' rooms, brought in
//! line with what Redis holds.
//!
//! The shim learns where its sockets are from replies and events. When it
//! may have missed some (the events subscription dropped, Redis restarted
//! and lost its data, the shim's lease ran out and the module reaped its
//! sockets), it reads its node's hash (`violet:{NS}:node:NODE`, a page at a
//! time) and forgets every membership Redis does not have, telling each
//! client with a `member-left` about itself (reason `lost`). From then on no
//! connection gets a room's traffic unless Redis has it in that room.
//!
//! A socket that Redis has in a room the shim does not know of is left alone:
//! that is a join whose reply is on its way, and its event tells the shim.

use crate::protocol::ShimError;
use crate::redis::Violet;
use crate::registry::{Belief, Hub};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Mutex;
use tracing::{info, warn};

/// How many times a reconciliation after a (re)subscription is tried.
const SUBSCRIBED_ATTEMPTS: u32 = 3;

/// The pause between two of those attempts.
const SUBSCRIBED_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// Reconciles one shim's sockets; shared by the tasks that need it.
pub struct Reconciler {
    violet: Violet,
    hub: Arc<Hub>,
    node: String,
    /// One reconciliation at a time.
    running: Mutex<()>,
}

impl Reconciler {
    pub fn new(violet: Violet, hub: Arc<Hub>, node: String) -> Self {
        Self {
            violet,
            hub,
            node,
            running: Mutex::new(()),
        }
    }

    /// After the events subscription was (re)made, or events were dropped
    /// (see [`crate::tasks::feed`]): events may have been missed (or Redis
    /// may have lost its data), so what the connections believe is checked
    /// against Redis before any newer event is applied (they wait in their
    /// namespace's line meanwhile), and the top watchers are woken, since
    /// rooms may have changed.
    ///
    /// A failed attempt is made again, [`SUBSCRIBED_ATTEMPTS`] times in all:
    /// a first one often meets the lane that the failure behind the new
    /// subscription (a hung node) stalled, and that lane is made anew.
    pub async fn subscribed(&self) {
        for attempt in 1..=SUBSCRIBED_ATTEMPTS {
            match self.run().await {
                Ok(_) => break,
                Err(error) if attempt == SUBSCRIBED_ATTEMPTS => {
                    // Events flow on regardless: the lease task reconciles
                    // again when it learns of a loss, and a shim user
                    // without HSCAN is refused here for good (see README,
                    // ACL).
                    warn!(%error, "could not reconcile after subscribing");
                }
                Err(_) => tokio::time::sleep(SUBSCRIBED_RETRY).await,
            }
        }
        self.hub.top_changed.notify_one();
    }

    /// Reads Redis and forgets what it does not hold; returns how many
    /// memberships were forgotten.
    ///
    /// # Errors
    /// `UNAVAILABLE` when Redis cannot be read; nothing is forgotten then.
    pub async fn run(&self) -> Result<usize, ShimError> {
        let _one_at_a_time = self.running.lock().await;
        let beliefs = self.hub.beliefs();
        if beliefs.iter().all(|b| b.room.is_none()) {
            return Ok(0);
        }
        let truth = self.violet.node_sockets(&self.node).await?;
        let mut lost: BTreeMap<String, Vec<Belief>> = BTreeMap::new();
        for belief in beliefs {
            let Some(room) = belief.room.clone() else {
                continue;
            };
            if truth.get(&belief.socket) != Some(&room) {
                lost.entry(room).or_default().push(belief);
            }
        }
        let mut forgotten = 0;
        for (room, beliefs) in lost {
            let viewers = match self.violet.room(&room).await {
                Ok(found) => found.map_or(0, |r| r.viewers),
                Err(error) => {
                    warn!(%error, room, "could not count a lost room's viewers");
                    0
                }
            };
            forgotten += beliefs
                .iter()
                .filter(|belief| self.hub.forget(belief, viewers))
                .count();
        }
        if forgotten > 0 {
            info!(
                forgotten,
                "memberships Redis no longer holds were forgotten"
            );
        }
        Ok(forgotten)
    }
}
