//! What one connection has yet to send: its pushes, bounded in frames and in
//! bytes, and the newest `top` frame.
//!
//! The [`crate::registry::Hub`] holds the [`Outbox`] and never waits: a push
//! that does not fit (the client is more than `--max-queue-bytes` or
//! `push_buffer` frames behind) marks the client too slow, and its connection
//! ends with close code 1008. `top` pushes are not queued: a newer one
//! replaces the one not yet sent, so a watcher has at most one waiting
//! whatever the lobby does. The connection's side is the [`Inbox`].
//!
//! A queued push holds its bytes of the budget until it has been written to
//! the socket, so the budget also covers the frame being sent.

use axum::extract::ws::Utf8Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// A connection's outgoing queue and `top` slot, as the hub holds them.
pub struct Outbox {
    queue: mpsc::Sender<Push>,
    bytes: Arc<Semaphore>,
    top: watch::Sender<Option<Utf8Bytes>>,
    dropped: CancellationToken,
}

/// The connection's side of its [`Outbox`].
pub struct Inbox {
    queue: mpsc::Receiver<Push>,
    top: watch::Receiver<Option<Utf8Bytes>>,
    top_open: bool,
    dropped: CancellationToken,
}

/// A queued push, holding its share of the byte budget until dropped.
pub struct Push {
    pub text: Utf8Bytes,
    _bytes: OwnedSemaphorePermit,
}

/// What the connection sends next.
pub enum Next {
    /// A push from the queue.
    Push(Push),
    /// The newest `top` frame.
    Top(Utf8Bytes),
}

/// Why a push was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The client is too far behind; it has been marked too slow.
    TooSlow,
    /// The connection is ending.
    Closed,
}

/// A new outbox holding at most `frames` pushes and `bytes` bytes of them.
pub fn outbox(frames: usize, bytes: usize) -> (Outbox, Inbox) {
    let (queue_tx, queue_rx) = mpsc::channel(frames.max(1));
    let (top_tx, top_rx) = watch::channel(None);
    let dropped = CancellationToken::new();
    let outbox = Outbox {
        queue: queue_tx,
        bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        top: top_tx,
        dropped: dropped.clone(),
    };
    let inbox = Inbox {
        queue: queue_rx,
        top: top_rx,
        top_open: true,
        dropped,
    };
    (outbox, inbox)
}

impl Outbox {
    /// Queues a push. When it does not fit, the client is marked too slow:
    /// its connection ends, and what was queued for it is freed.
    ///
    /// # Errors
    /// [`Refused::TooSlow`] when the push did not fit, [`Refused::Closed`]
    /// when the connection is ending anyway.
    pub fn push(&self, text: &Utf8Bytes) -> Result<(), Refused> {
        if self.dropped.is_cancelled() {
            return Err(Refused::Closed);
        }
        let size = u32::try_from(text.len()).unwrap_or(u32::MAX);
        let Ok(permit) = self.bytes.clone().try_acquire_many_owned(size) else {
            self.dropped.cancel();
            return Err(Refused::TooSlow);
        };
        let push = Push {
            text: text.clone(),
            _bytes: permit,
        };
        match self.queue.try_send(push) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped.cancel();
                Err(Refused::TooSlow)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Refused::Closed),
        }
    }

    /// Makes `text` the `top` frame to send next, replacing one not yet
    /// sent; `None` forgets it.
    pub fn set_top(&self, text: Option<Utf8Bytes>) {
        self.top.send_replace(text);
    }
}

impl Inbox {
    /// The next frame to send, or `None` once the client has been marked
    /// too slow (or its outbox is gone). Cancel-safe.
    pub async fn next(&mut self) -> Option<Next> {
        loop {
            tokio::select! {
                biased;
                () = self.dropped.cancelled() => return None,
                changed = self.top.changed(), if self.top_open => {
                    if changed.is_err() {
                        self.top_open = false;
                        continue;
                    }
                    let top = self.top.borrow_and_update().clone();
                    if let Some(text) = top {
                        return Some(Next::Top(text));
                    }
                }
                push = self.queue.recv() => return push.map(Next::Push),
            }
        }
    }

    /// The next queued push if one is waiting now, without waiting; `None`
    /// also once the client has been marked too slow (which
    /// [`Self::next`] reports).
    pub fn try_push(&mut self) -> Option<Push> {
        if self.dropped.is_cancelled() {
            return None;
        }
        self.queue.try_recv().ok()
    }

    /// Completes once the client has been marked too slow.
    pub fn dropped(&self) -> CancellationToken {
        self.dropped.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(n))
    }

    async fn next_now(inbox: &mut Inbox) -> Option<Next> {
        tokio::time::timeout(std::time::Duration::from_secs(5), inbox.next())
            .await
            .expect("a frame is ready")
    }

    #[tokio::test]
    async fn the_byte_budget_bounds_the_queue_and_frees_as_frames_are_sent() {
        let (outbox, mut inbox) = outbox(100, 10);
        outbox.push(&text(6)).unwrap();
        outbox.push(&text(4)).unwrap();
        let Some(Next::Push(first)) = next_now(&mut inbox).await else {
            panic!("a push");
        };
        // Taken from the queue but not yet sent: still counted.
        assert_eq!(first.text.len(), 6);
        drop(first);
        outbox.push(&text(6)).unwrap();
        assert_eq!(outbox.push(&text(1)), Err(Refused::TooSlow));
        assert!(next_now(&mut inbox).await.is_none(), "marked too slow");
        assert_eq!(outbox.push(&text(1)), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn waiting_pushes_are_taken_without_waiting_and_keep_their_bytes() {
        let (outbox, mut inbox) = outbox(100, 10);
        assert!(inbox.try_push().is_none(), "nothing queued");
        outbox.push(&text(3)).unwrap();
        outbox.push(&text(4)).unwrap();
        let first = inbox.try_push().expect("the first push");
        let second = inbox.try_push().expect("the second push");
        assert_eq!((first.text.len(), second.text.len()), (3, 4));
        assert!(inbox.try_push().is_none(), "no third");
        // Taken but not yet sent: their bytes still count.
        assert_eq!(outbox.push(&text(4)), Err(Refused::TooSlow));
        assert!(inbox.try_push().is_none(), "marked too slow");
        drop((first, second));
        assert!(next_now(&mut inbox).await.is_none());
    }

    #[tokio::test]
    async fn the_frame_count_bounds_the_queue_too() {
        let (outbox, mut inbox) = outbox(2, 1 << 20);
        outbox.push(&text(1)).unwrap();
        outbox.push(&text(1)).unwrap();
        assert_eq!(outbox.push(&text(1)), Err(Refused::TooSlow));
        assert!(next_now(&mut inbox).await.is_none());
    }

    #[tokio::test]
    async fn only_the_newest_top_waits() {
        let (outbox, mut inbox) = outbox(4, 1 << 20);
        for n in 1..=50 {
            outbox.set_top(Some(text(n)));
        }
        outbox.push(&text(3)).unwrap();
        let mut sent = Vec::new();
        for _ in 0..2 {
            match next_now(&mut inbox).await {
                Some(Next::Push(push)) => sent.push(("push", push.text.len())),
                Some(Next::Top(top)) => sent.push(("top", top.len())),
                None => panic!("not dropped"),
            }
        }
        sent.sort_unstable();
        assert_eq!(sent, [("push", 3), ("top", 50)]);
        // A forgotten top is not sent, even though tops go first.
        outbox.set_top(Some(text(7)));
        outbox.set_top(None);
        outbox.push(&text(2)).unwrap();
        let Some(Next::Push(push)) = next_now(&mut inbox).await else {
            panic!("the push, not the forgotten top");
        };
        assert_eq!(push.text.len(), 2);
    }
}
