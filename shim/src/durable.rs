//! Changes acknowledged only once replicas have them (`--wait-replicas`).
//!
//! One task per namespace sends them. The changes that arrive while a batch
//! is on its way go together in the next one: a pipeline of the changes
//! followed by one `WAIT replicas timeout`, which covers them all, to the
//! namespace's primary on the namespace's own connection. So a batch costs
//! one replica round trip however many changes it holds.
//!
//! A `WAIT` holds its connection in Redis until it answers, so at most one
//! batch per namespace is in flight, on a connection no other namespace
//! uses, and no change ever waits in Redis behind another's `WAIT`: changes
//! wait here instead, at most [`MAX_WAITING`] of them (more are refused at
//! once), and one not sent within the Redis timeout is answered
//! `UNAVAILABLE` ("it was not made") without being sent. A change a client
//! was told was not made thus never happens later, even while a replica is
//! down and every `WAIT` lasts its timeout. A batch that got no answer in
//! time leaves its connection behind (its `WAIT` may still hold it in
//! Redis): the next goes on a new one. Its own changes may have been made;
//! their clients are told Redis did not answer in time, not that they were
//! not made.

use crate::link::{DurableConnection, Link};
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, ShimError};
use crate::redis::Durability;
use redis::{Cmd, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Changes that may wait for a batch, per namespace.
pub const MAX_WAITING: usize = 1024;

/// Changes in one batch at most.
const MAX_BATCH: usize = 256;

/// What a change got: its reply (an error reply included) and how many
/// replicas confirmed it.
pub type Confirmed = Result<(Value, u64), ShimError>;

/// One change waiting to be sent.
struct Pending {
    cmd: Cmd,
    /// Not sent after this, it is answered `UNAVAILABLE`.
    deadline: Instant,
    reply: oneshot::Sender<Confirmed>,
}

/// The sender of one namespace's confirmed changes. Cheap to clone.
#[derive(Clone)]
pub struct Durable {
    queue: mpsc::Sender<Pending>,
    timeout: Duration,
}

impl Durable {
    /// Starts the task that sends `namespace`'s changes over `link`, each
    /// given `timeout` (the Redis timeout) to be sent. It ends with the last
    /// clone of the returned sender.
    pub fn start(
        link: Link,
        namespace: &str,
        durability: Durability,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (queue, waiting) = mpsc::channel(MAX_WAITING);
        let sender = Sender {
            connection: link.durable(),
            namespace: namespace.to_owned(),
            durability,
            timeout,
            metrics,
        };
        tokio::spawn(sender.run(waiting));
        Self { queue, timeout }
    }

    /// Sends `cmd` in the next batch and waits for its reply and the
    /// replicas' count.
    ///
    /// # Errors
    /// `UNAVAILABLE` when too many changes wait already, when it could not
    /// be sent in time (it was not sent), or when Redis failed the batch.
    pub async fn change(&self, cmd: Cmd) -> Confirmed {
        let (reply, replied) = oneshot::channel();
        let pending = Pending {
            cmd,
            deadline: Instant::now() + self.timeout,
            reply,
        };
        if self.queue.try_send(pending).is_err() {
            return Err(ShimError::new(
                ErrorCode::Unavailable,
                "too many changes are waiting for replicas; try again",
            ));
        }
        replied.await.unwrap_or_else(|_| {
            Err(ShimError::new(
                ErrorCode::Unavailable,
                "the shim is stopping; try again",
            ))
        })
    }
}

/// The task's side.
struct Sender {
    connection: DurableConnection,
    namespace: String,
    durability: Durability,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Sender {
    async fn run(mut self, mut waiting: mpsc::Receiver<Pending>) {
        while let Some(first) = waiting.recv().await {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(_) => break,
                }
            }
            let now = Instant::now();
            let (batch, late): (Vec<Pending>, Vec<Pending>) =
                batch.into_iter().partition(|p| p.deadline > now);
            for pending in late {
                let _ = pending.reply.send(Err(ShimError::new(
                    ErrorCode::Unavailable,
                    "the change could not be sent in time (it was not made); try again",
                )));
            }
            if !batch.is_empty() {
                self.send(batch).await;
            }
        }
    }

    /// Sends one batch and answers each of its changes.
    async fn send(&mut self, batch: Vec<Pending>) {
        let cmds: Vec<Cmd> = batch.iter().map(|p| p.cmd.clone()).collect();
        let started = std::time::Instant::now();
        let sent = tokio::time::timeout(
            self.timeout.saturating_add(self.durability.timeout),
            self.connection.query_and_wait(
                &cmds,
                &self.namespace,
                self.durability.replicas,
                self.durability.timeout,
            ),
        )
        .await;
        self.metrics.redis_call(started.elapsed());
        let failure = match sent {
            Ok(Ok((values, acked))) => {
                for (pending, value) in batch.into_iter().zip(values) {
                    let _ = pending.reply.send(Ok((value, acked)));
                }
                return;
            }
            Ok(Err(error)) if !error.is_timeout() => {
                self.connection.failed();
                crate::redis::shim_error(&error)
            }
            Ok(Err(_)) | Err(_) => {
                self.connection.timed_out();
                ShimError::new(
                    ErrorCode::Unavailable,
                    "Redis did not answer in time; try again",
                )
            }
        };
        for pending in batch {
            let _ = pending.reply.send(Err(failure.clone()));
        }
    }
}
