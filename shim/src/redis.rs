//! The Violet client: one method per `VIOLET.*` command the shim sends, for
//! one namespace, over the shim's [`Link`] to Redis (one server or a
//! cluster).
//!
//! Every call is bounded by the configured timeout; a Redis that cannot be
//! reached makes the call fail with `UNAVAILABLE` at once instead of
//! queueing requests. With [`Durability`], a change is acknowledged only
//! once enough replicas have it.

use crate::durable::Durable;
use crate::link::{Lane, Link};
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, RoomInfo, ShimError};
use redis::{Cmd, FromRedisValue, RedisError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use violet_contract::codes;
use violet_contract::keys::Keys;

/// Sockets read per `HSCAN` of a node's hash.
const NODE_PAGE: u64 = 500;

/// What `VIOLET.LEASE` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// The lease was live and now runs on.
    Renewed,
    /// There was no live lease; there is one now. Sockets the shim had may
    /// have been reaped.
    Created,
    /// The lease ran out and the module is reaping its sockets.
    Expired,
}

/// A room as `VIOLET.TOP` and `VIOLET.ROOM` return it.
type RawRoom = (String, u64, Vec<String>);

/// How many replicas must have a change before its client is told it is
/// done (`--wait-replicas`, `--wait-timeout-ms`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// Replicas that must have the change (Redis `WAIT`).
    pub replicas: u32,
    /// How long Redis waits for them.
    pub timeout: Duration,
}

/// A handle on the module's commands for one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Violet {
    link: Link,
    namespace: String,
    timeout: Duration,
    /// With `--wait-replicas`: the sender of the changes, and its setting.
    durable: Option<(Durable, Durability)>,
    metrics: Arc<Metrics>,
}

impl Violet {
    /// A client for `namespace` over `link`. With `durability`, changes
    /// wait for replicas (a task per namespace sends them, so this must run
    /// within the Tokio runtime).
    pub fn new(
        link: Link,
        namespace: &str,
        timeout: Duration,
        durability: Option<Durability>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let durable = durability.map(|durability| {
            let durable = Durable::start(
                link.clone(),
                namespace,
                durability,
                timeout,
                metrics.clone(),
            );
            (durable, durability)
        });
        Self {
            link,
            namespace: namespace.to_owned(),
            timeout,
            durable,
            metrics,
        }
    }

    /// The namespace this client speaks for.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `VIOLET.CREATE NS SOCKET ROOM|* field value ...`: the new room's id.
    ///
    /// # Errors
    /// `EXISTS` when `room` is taken, `BAD_REQUEST` for details the module
    /// refuses, `UNAVAILABLE` when Redis cannot be reached.
    pub async fn create(
        &self,
        socket: &str,
        room: Option<&str>,
        details: &[(String, String)],
    ) -> Result<String, ShimError> {
        let mut cmd = self.command("VIOLET.CREATE");
        cmd.arg(socket).arg(room.unwrap_or("*"));
        for (name, value) in details {
            cmd.arg(name).arg(value);
        }
        self.change(&cmd).await
    }

    /// `VIOLET.JOIN NS SOCKET ROOM`: the room the socket was in, and the
    /// joined room's viewers.
    ///
    /// # Errors
    /// `NOROOM`, `FULL`, `BAD_REQUEST` for a malformed id, `UNAVAILABLE`.
    pub async fn join(&self, socket: &str, room: &str) -> Result<(Option<String>, u64), ShimError> {
        let mut cmd = self.command("VIOLET.JOIN");
        cmd.arg(socket).arg(room);
        self.change(&cmd).await
    }

    /// `VIOLET.LEAVE NS SOCKET`: the room left, if any.
    ///
    /// # Errors
    /// `UNAVAILABLE` when Redis cannot be reached.
    pub async fn leave(&self, socket: &str) -> Result<Option<String>, ShimError> {
        let mut cmd = self.command("VIOLET.LEAVE");
        cmd.arg(socket);
        self.change(&cmd).await
    }

    /// `VIOLET.TOP NS [COUNT n] [OFFSET k] [MAXBYTES b]`: public rooms, most
    /// viewers first; with `MAXBYTES`, up to the first room that takes their
    /// ids and details past `b` bytes.
    ///
    /// # Errors
    /// `BAD_REQUEST` for a count over the module's maximum or a `max_bytes`
    /// of 0, `UNAVAILABLE`.
    pub async fn top(
        &self,
        count: Option<u64>,
        offset: Option<u64>,
        max_bytes: Option<u64>,
    ) -> Result<Vec<RoomInfo>, ShimError> {
        let mut cmd = self.command("VIOLET.TOP");
        if let Some(count) = count {
            cmd.arg("COUNT").arg(count);
        }
        if let Some(offset) = offset {
            cmd.arg("OFFSET").arg(offset);
        }
        if let Some(max_bytes) = max_bytes {
            cmd.arg("MAXBYTES").arg(max_bytes);
        }
        let rooms: Vec<RawRoom> = self.read(&cmd).await?;
        Ok(rooms.into_iter().map(room_info).collect())
    }

    /// `VIOLET.ROOM NS ROOM`: the room, or `None` when it does not exist.
    ///
    /// # Errors
    /// `BAD_REQUEST` for a malformed id, `UNAVAILABLE`.
    pub async fn room(&self, room: &str) -> Result<Option<RoomInfo>, ShimError> {
        let mut cmd = self.command("VIOLET.ROOM");
        cmd.arg(room);
        let found: Option<RawRoom> = self.read(&cmd).await?;
        Ok(found.map(room_info))
    }

    /// `VIOLET.MEMBERS NS ROOM [CURSOR c] [COUNT n]`: a page of the room's
    /// sockets, and the cursor of the next page (`None` after the last).
    ///
    /// # Errors
    /// `BAD_REQUEST` for a malformed id or cursor, or a count past the
    /// module's maximum; `UNAVAILABLE`.
    pub async fn members(
        &self,
        room: &str,
        cursor: Option<&str>,
        count: Option<u64>,
    ) -> Result<(Option<String>, Vec<String>), ShimError> {
        let mut cmd = self.command("VIOLET.MEMBERS");
        cmd.arg(room);
        if let Some(cursor) = cursor {
            cmd.arg("CURSOR").arg(cursor);
        }
        if let Some(count) = count {
            cmd.arg("COUNT").arg(count);
        }
        let (next, members): (String, Vec<String>) = self.read(&cmd).await?;
        Ok(((next != "0").then_some(next), members))
    }

    /// `VIOLET.SAY NS SOCKET DATA`: the room the message went to.
    ///
    /// # Errors
    /// `NOTINROOM`, `BAD_REQUEST` for data over the module's limit, `UNAVAILABLE`.
    pub async fn say(&self, socket: &str, data: &str) -> Result<String, ShimError> {
        let mut cmd = self.command("VIOLET.SAY");
        cmd.arg(socket).arg(data);
        self.call(&cmd).await
    }

    /// `VIOLET.LEASE NS NODE TTL-MS`: `renewed`, `created` or `expired`.
    ///
    /// # Errors
    /// `UNAVAILABLE` when Redis cannot be reached.
    pub async fn lease(&self, node: &str, ttl: Duration) -> Result<Lease, ShimError> {
        let mut cmd = self.command("VIOLET.LEASE");
        cmd.arg(node)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let reply: String = self.call(&cmd).await?;
        match reply.as_str() {
            "renewed" => Ok(Lease::Renewed),
            "created" => Ok(Lease::Created),
            "expired" => Ok(Lease::Expired),
            other => Err(ShimError::new(
                ErrorCode::Unavailable,
                format!("unexpected VIOLET.LEASE reply {other:?}"),
            )),
        }
    }

    /// `VIOLET.RELEASE NS NODE`: how many sockets left their rooms.
    ///
    /// # Errors
    /// `UNAVAILABLE` when Redis cannot be reached.
    pub async fn release(&self, node: &str) -> Result<u64, ShimError> {
        let mut cmd = self.command("VIOLET.RELEASE");
        cmd.arg(node);
        self.call(&cmd).await
    }

    /// Where Redis has `node`'s sockets: socket -> room, read from the
    /// node's hash (`violet:{NS}:node:NODE`) a page at a time, so that no
    /// single call holds Redis for long.
    ///
    /// # Errors
    /// `UNAVAILABLE` when Redis cannot be reached.
    pub async fn node_sockets(&self, node: &str) -> Result<HashMap<String, String>, ShimError> {
        let key = Keys::new(&self.namespace).node(node);
        let mut sockets = HashMap::new();
        let mut cursor = 0u64;
        loop {
            let mut cmd = redis::cmd("HSCAN");
            cmd.arg(&key).arg(cursor).arg("COUNT").arg(NODE_PAGE);
            let (next, page): (u64, Vec<(String, String)>) = self.read(&cmd).await?;
            sockets.extend(page);
            if next == 0 {
                return Ok(sockets);
            }
            cursor = next;
        }
    }

    /// Whether Redis answers with the module loaded: `VIOLET.WHERE` for a
    /// socket that never exists, which reads one hash field.
    ///
    /// # Errors
    /// `UNAVAILABLE` when Redis does not answer or lacks the module.
    pub async fn ready(&self) -> Result<(), ShimError> {
        let mut cmd = self.command("VIOLET.WHERE");
        cmd.arg("healthz");
        let _: Option<String> = self.call(&cmd).await?;
        Ok(())
    }

    fn command(&self, name: &str) -> Cmd {
        let mut cmd = redis::cmd(name);
        cmd.arg(&self.namespace);
        cmd
    }

    /// Sends `cmd`, a change or a small read.
    async fn call<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, ShimError> {
        outcome(self.query(Lane::Changes, cmd).await)
    }

    /// Sends the change a client asked for, `cmd`. With [`Durability`], it
    /// goes with others in a batch that waits until enough replicas have
    /// it (see [`crate::durable`]); one they do not all confirm in time gets
    /// `UNAVAILABLE`: it is made on the primary, but a failover might lose
    /// it.
    async fn change<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, ShimError> {
        let Some((durable, durability)) = &self.durable else {
            return self.call(cmd).await;
        };
        let (reply, acked) = durable.change(cmd.clone()).await?;
        // A refused change made nothing: its error, however many replicas.
        let reply = reply.extract_error().map_err(|e| shim_error(&e))?;
        if acked < u64::from(durability.replicas) {
            self.metrics.write_unconfirmed();
            return Err(ShimError::new(
                ErrorCode::Unavailable,
                format!(
                    "the change was made but only {acked} of {} replicas confirmed it in \
                     time, so a failover could lose it; check and try again",
                    durability.replicas
                ),
            ));
        }
        T::from_redis_value(reply).map_err(|e| shim_error(&e.into()))
    }

    /// [`Self::call`] on the lane for large reads.
    ///
    /// A read changes nothing, so when its connection broke under it (a
    /// reply on it could not be parsed, or Redis dropped it) it is sent once
    /// more, on the connection made anew: whatever broke one reply costs
    /// the other reads queued on that connection nothing. Changes are never
    /// sent twice; whether the first one was applied is unknown, and the
    /// client is told `UNAVAILABLE`.
    async fn read<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, ShimError> {
        match self.query(Lane::Reads, cmd).await {
            Some(Err(error)) if error.is_unrecoverable_error() => {
                tracing::warn!(%error, "a Redis connection broke under a read; sending it again");
                self.metrics.redis_read_retried();
                outcome(self.query(Lane::Reads, cmd).await)
            }
            first => outcome(first),
        }
    }

    /// Sends `cmd` on `lane`; `None` when Redis did not answer in time, and
    /// the lane is then made anew (see [`Link::stalled`]).
    async fn query<T: FromRedisValue>(
        &self,
        lane: Lane,
        cmd: &Cmd,
    ) -> Option<Result<T, RedisError>> {
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, self.link.query::<T>(lane, cmd)).await;
        self.metrics.redis_call(started.elapsed());
        if crate::link::late(&result) {
            self.link.stalled(lane);
        }
        result.ok()
    }
}

fn outcome<T>(result: Option<Result<T, RedisError>>) -> Result<T, ShimError> {
    match result {
        Some(Ok(value)) => Ok(value),
        Some(Err(error)) => Err(shim_error(&error)),
        None => Err(ShimError::new(
            ErrorCode::Unavailable,
            "Redis did not answer in time; try again",
        )),
    }
}

fn room_info((room_id, viewers, fields): RawRoom) -> RoomInfo {
    let mut details = std::collections::BTreeMap::new();
    let mut fields = fields.into_iter();
    while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
        details.insert(name, value);
    }
    RoomInfo {
        room_id,
        viewers,
        details,
    }
}

/// The module's error codes pass through; its `ERR` is a bad request;
/// anything that says Redis is not there (or not ready) is `UNAVAILABLE`.
pub(crate) fn shim_error(error: &RedisError) -> ShimError {
    let detail = error.detail().unwrap_or_default().to_owned();
    let code = match error.code() {
        Some(codes::NOROOM) => ErrorCode::NoRoom,
        Some(codes::FULL) => ErrorCode::Full,
        Some(codes::EXISTS) => ErrorCode::Exists,
        Some(codes::NOTINROOM) => ErrorCode::NotInRoom,
        Some(codes::ERR) if detail.starts_with("unknown command") => {
            return ShimError::new(
                ErrorCode::Unavailable,
                "the Violet module is not loaded in Redis; try again later",
            );
        }
        Some(codes::ERR) => ErrorCode::BadRequest,
        Some(_) | None => {
            tracing::debug!(%error, "Redis error");
            return ShimError::new(
                ErrorCode::Unavailable,
                format!("Redis is unavailable ({}); try again", error.category()),
            );
        }
    };
    ShimError::new(code, detail)
}
