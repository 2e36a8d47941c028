//! One namespace's events on their way from its subscription to its
//! [`Hub`]: in order, and bounded in bytes.
//!
//! After each (re)subscription the namespace is reconciled before any event
//! behind it is applied, and the events wait meanwhile. A reconciliation
//! can take a few Redis timeouts (see [`Reconciler::subscribed`]), and under
//! load many events arrive in that time: past [`MAX_WAITING_BYTES`] of them
//! the newest are dropped, and the namespace is reconciled again once the
//! events before them are applied, as after a gap in the subscription. Their
//! clients miss those pushes, as they miss the events of a gap.

use crate::registry::Hub;
use crate::tasks::reconcile::Reconciler;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tracing::{info, warn};

/// The most bytes of events one namespace keeps waiting.
pub const MAX_WAITING_BYTES: usize = 8 << 20;

/// One namespace's events: where they go.
pub struct Feed {
    pub channel: String,
    pub hub: Arc<Hub>,
    pub reconciler: Arc<Reconciler>,
}

/// What reaches a namespace's [`Feed::apply`].
enum Arrival {
    /// Its subscription was (re)made: reconcile before the events behind.
    Subscribed,
    /// One of its events, as published.
    Event(String),
    /// Events were dropped here, the line being full: reconcile.
    Dropped,
}

/// What the line holds, shared by both ends.
#[derive(Default)]
struct Waiting {
    bytes: AtomicUsize,
    /// Whether events are being dropped, from the first one dropped until
    /// [`Arrival::Dropped`] is taken off the line.
    dropping: AtomicBool,
}

/// The sending end of a namespace's line of events.
pub struct Line {
    sender: mpsc::UnboundedSender<Arrival>,
    waiting: Arc<Waiting>,
}

/// The receiving end: [`Feed::apply`] takes it.
pub struct Arrivals {
    receiver: mpsc::UnboundedReceiver<Arrival>,
    waiting: Arc<Waiting>,
}

/// A new line of events for one namespace.
pub fn line() -> (Line, Arrivals) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let waiting = Arc::new(Waiting::default());
    (
        Line {
            sender,
            waiting: waiting.clone(),
        },
        Arrivals { receiver, waiting },
    )
}

impl Line {
    /// The subscription was (re)made.
    pub fn subscribed(&self) {
        let _ = self.sender.send(Arrival::Subscribed);
    }

    /// An event arrived: it waits its turn, unless the line is full.
    pub fn event(&self, payload: String) {
        let bytes = payload.len();
        let waiting = &self.waiting;
        if waiting.bytes.load(Ordering::Acquire) + bytes > MAX_WAITING_BYTES {
            if !waiting.dropping.swap(true, Ordering::AcqRel) {
                let _ = self.sender.send(Arrival::Dropped);
            }
            return;
        }
        waiting.bytes.fetch_add(bytes, Ordering::AcqRel);
        let _ = self.sender.send(Arrival::Event(payload));
    }
}

impl Arrivals {
    async fn next(&mut self) -> Option<Arrival> {
        let arrival = self.receiver.recv().await?;
        match &arrival {
            Arrival::Event(payload) => {
                self.waiting
                    .bytes
                    .fetch_sub(payload.len(), Ordering::AcqRel);
            }
            // Events dropped from here on are made good by another
            // reconciliation; those before, by the one about to run.
            Arrival::Dropped => self.waiting.dropping.store(false, Ordering::Release),
            Arrival::Subscribed => {}
        }
        Some(arrival)
    }
}

impl Feed {
    /// Applies what arrives on the line, in order, until its sending end
    /// is gone and what it held is applied.
    pub async fn apply(&self, mut arrivals: Arrivals) {
        while let Some(arrival) = arrivals.next().await {
            match arrival {
                Arrival::Subscribed => {
                    info!(channel = self.channel, "subscribed to events");
                    self.reconciler.subscribed().await;
                }
                Arrival::Event(payload) => self.hub.apply_published(&payload),
                Arrival::Dropped => {
                    warn!(
                        channel = self.channel,
                        max_bytes = MAX_WAITING_BYTES,
                        "events arrived faster than they could be applied and some were dropped; \
                         reconciling"
                    );
                    self.reconciler.subscribed().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    /// What the line holds, taken off it as `Feed::apply` takes it.
    fn drain(arrivals: &mut Arrivals) -> Vec<&'static str> {
        let mut seen = Vec::new();
        while let Some(Some(arrival)) = arrivals.next().now_or_never() {
            seen.push(match arrival {
                Arrival::Subscribed => "subscribed",
                Arrival::Event(_) => "event",
                Arrival::Dropped => "dropped",
            });
        }
        seen
    }

    #[test]
    fn events_past_the_byte_limit_are_dropped_and_a_reconciliation_asked_once() {
        let (line, mut arrivals) = line();
        let event = "x".repeat(1 << 20);
        line.subscribed();
        for _ in 0..20 {
            line.event(event.clone());
        }
        assert!(arrivals.waiting.bytes.load(Ordering::Acquire) <= MAX_WAITING_BYTES);
        let seen = drain(&mut arrivals);
        let events = MAX_WAITING_BYTES / event.len();
        let mut expected = vec!["subscribed"];
        expected.extend(std::iter::repeat_n("event", events));
        expected.push("dropped");
        assert_eq!(seen, expected);
        assert_eq!(arrivals.waiting.bytes.load(Ordering::Acquire), 0);

        // Once the line has room again, events wait their turn again, and
        // a new overflow asks for a new reconciliation.
        line.event(event.clone());
        assert_eq!(drain(&mut arrivals), ["event"]);
        for _ in 0..events + 2 {
            line.event(event.clone());
        }
        let seen = drain(&mut arrivals);
        assert_eq!(seen.iter().filter(|k| **k == "dropped").count(), 1);
        assert_eq!(seen.last(), Some(&"dropped"));
    }
}
