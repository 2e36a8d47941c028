//! Leases: a node (a shim, or any program that manages sockets) holds a lease
//! on its sockets and renews it; when it stops renewing, its sockets leave
//! their rooms by themselves.
//!
//! A socket belongs to the node named by its id up to the first `:`
//! ([`violet_contract::keys::node_of`]). The node index `violet:{NS}:nodes`
//! holds every node with sockets in a room, scored by its lease's expiry in
//! Unix milliseconds: `+inf` for a node that never took a lease (sockets made
//! by hand never expire), `0` for a node that released its lease. A node's
//! hash `violet:{NS}:node:NODE` lists its sockets, so reaping a node costs
//! O(its sockets), never O(namespace), and goes in batches of the caller's
//! size: [`crate::reaper`] calls [`Rooms::reap_node`] from a timer.
//!
//! A reaped socket leaves its room through the same rules as `VIOLET.LEAVE`
//! (the room is destroyed if it empties, the ranking follows), and its `left`
//! event says why: `expired` or `released`.

use crate::error::Result;
use crate::ids::NodeId;
use crate::rooms::Rooms;
use crate::store::Store;
use violet_contract::events::Reason;
use violet_contract::keys::node_of;

/// The index score of a node that released its lease: expired since 1970.
const RELEASED: f64 = 0.0;

/// What `VIOLET.LEASE` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// The node held a live lease; it now runs until `now + ttl`.
    Renewed,
    /// The node held no live lease (never, or it expired and its sockets are
    /// all gone); it holds one now. A node that thought it held a lease has
    /// lost its sockets.
    Created,
    /// The node's lease expired and its sockets are being reaped; nothing
    /// changed. Ask again once they are gone.
    Expired,
}

impl LeaseOutcome {
    /// The reply of `VIOLET.LEASE`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaseOutcome::Renewed => "renewed",
            LeaseOutcome::Created => "created",
            LeaseOutcome::Expired => "expired",
        }
    }
}

/// What one step of reaping a node did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapStep {
    /// Sockets that left their rooms in this step.
    pub reaped: u64,
    /// Where the next step of this node starts.
    pub cursor: u64,
    /// Whether the node is gone from the index: all its sockets reaped.
    pub done: bool,
}

impl<S: Store> Rooms<'_, S> {
    /// Renews `node`'s lease to run `ttl_ms` from now, or creates it.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn lease(&mut self, node: &NodeId, ttl_ms: u64) -> Result<LeaseOutcome> {
        let now = self.store.now_ms();
        let outcome = match self.store.zscore(self.keys.nodes(), node)? {
            Some(expiry) if expiry.is_finite() && expiry > now as f64 => LeaseOutcome::Renewed,
            Some(expiry) if expiry.is_finite() && self.store.hlen(&self.keys.node(node))? > 0 => {
                return Ok(LeaseOutcome::Expired);
            }
            _ => LeaseOutcome::Created,
        };
        self.store
            .zadd(self.keys.nodes(), now.saturating_add(ttl_ms), node)?;
        Ok(outcome)
    }

    /// Ends `node`'s lease now. Up to `batch` of its sockets leave their
    /// rooms at once (reason `released`); the reaper takes the rest. Returns
    /// how many left now.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn release(&mut self, node: &NodeId, batch: u64) -> Result<u64> {
        let indexed = self.store.zscore(self.keys.nodes(), node)?.is_some();
        if !indexed && self.store.hlen(&self.keys.node(node))? == 0 {
            return Ok(0);
        }
        self.check_ranking()?;
        self.store.zadd(self.keys.nodes(), RELEASED as u64, node)?;
        Ok(self.reap_node(node, Reason::Released, 0, batch)?.reaped)
    }

    /// Whether the namespace has a node index at all.
    ///
    /// # Errors
    /// `WRONGTYPE` when the index is not a sorted set.
    pub fn has_nodes(&mut self) -> Result<bool> {
        Ok(self.store.zcard(self.keys.nodes())? > 0)
    }

    /// The nodes whose lease has run out by now, at most `count`, released
    /// and longest-expired first, with the reason their sockets leave.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn expired_nodes(&mut self, count: u64) -> Result<Vec<(String, Reason)>> {
        let now = self.store.now_ms() as f64;
        Ok(self
            .store
            .zrange_up_to(self.keys.nodes(), now, count)?
            .into_iter()
            .map(|(node, expiry)| {
                let reason = if expiry == RELEASED {
                    Reason::Released
                } else {
                    Reason::Expired
                };
                (node, reason)
            })
            .collect())
    }

    /// Takes up to `batch` sockets of `node` out of their rooms for
    /// `reason`, scanning its hash from `cursor`. When none is left, the
    /// node leaves the index.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn reap_node(
        &mut self,
        node: &str,
        reason: Reason,
        cursor: u64,
        batch: u64,
    ) -> Result<ReapStep> {
        let node_key = self.keys.node(node);
        let (next, mut page) = self.store.hscan(&node_key, cursor, batch)?;
        // COUNT is a hint: a small hash comes back whole. Take `batch` and
        // scan the same place again next time; what was taken is gone by then.
        let next = if page.len() as u64 > batch {
            page.truncate(usize::try_from(batch).unwrap_or(usize::MAX));
            cursor
        } else {
            next
        };
        let mut reaped = 0;
        for (socket, _) in page {
            if node_of(&socket) == node {
                reaped += u64::from(self.leave_for(&socket, reason)?.is_some());
            } else {
                // Not this node's socket: a hand-made entry that no rule
                // would ever remove. Drop it so that reaping ends.
                self.store.hdel(&node_key, &socket)?;
            }
        }
        let done = self.store.hlen(&node_key)? == 0;
        if done {
            self.store.zrem(self.keys.nodes(), node)?;
        }
        Ok(ReapStep {
            reaped,
            cursor: if done { 0 } else { next },
            done,
        })
    }
}
