//! The shim's connections to Redis: one server, or a Redis Cluster.
//!
//! There are two shared lanes: changes and small reads on one, the reads
//! whose replies can be large (`TOP`, `ROOM`, `MEMBERS`, a node's hash) on
//! the other, since one connection answers in order and a large reply must
//! never hold back the joins, leaves and messages queued behind it. With
//! `--wait-replicas` each namespace also has a connection of its own for
//! the changes that wait for replicas (see [`crate::durable`]): a `WAIT`
//! holds its connection in Redis until it answers, and must hold back
//! nothing else, neither the lease nor another namespace's changes.
//!
//! On one server each connection is a [`ConnectionManager`], which
//! reconnects by itself after Redis restarts. On a cluster each is the
//! `redis` crate's [`ClusterConnection`]: it discovers the topology from the
//! seed nodes, follows `MOVED` and `ASK`, refreshes the slot map when a
//! primary fails over, and routes each command by its first argument. The
//! shim makes each one itself, trying again with backoff until the cluster
//! answers (the client's own pending connection retries a topology it
//! cannot read in a tight loop). Every
//! `VIOLET.*` command's first argument is its namespace, which hashes to the
//! slot of the namespace's keys (`violet:{NS}:...`, and a namespace never
//! holds a brace), so each command reaches the node that owns its namespace.
//!
//! Neither notices a node that stops answering without closing its
//! connections: a hung primary, whose replica may have taken over by now,
//! or a network path cut without a reset. The cluster client retries a
//! timed-out command on the same node, and never looks the topology up
//! again. So a lane whose command got no answer in time is made anew
//! ([`Link::stalled`]): a new cluster connection reads the topology from
//! the seeds again, and a new server connection dials again. The new one
//! is made in the background and takes over once it is ready; commands go
//! on the old one meanwhile, so the namespaces a hung node does not hold
//! lose nothing while it is made.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisResult, Value};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{debug, info};

/// Which shared lane a command travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Changes and small reads.
    Changes,
    /// Reads whose replies can be large.
    Reads,
}

/// The connections to Redis. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct Link {
    inner: Arc<Inner>,
}

struct Inner {
    maker: Maker,
    changes: Mutex<Made>,
    reads: Mutex<Made>,
    /// Told when a lane that had no connection gets one.
    connected: Notify,
}

/// A lane's connection, and when it was made (or last tried anew).
struct Made {
    /// `None` until a cluster's first connection is made.
    connection: Option<Connection>,
    at: Instant,
    /// Whether a new one is being made.
    renewing: bool,
    /// Whether the last attempt to make one anew failed: a series of them,
    /// while Redis stays out of reach, is logged once.
    failing: bool,
}

impl Link {
    /// Connections to the server at `url`, made on first use; a `WAIT` of a
    /// durable batch lasts `wait` at most.
    ///
    /// # Errors
    /// When `url` is not a Redis URL this build can use.
    pub fn server(url: &str, timeout: Duration, wait: Duration) -> Result<Self, RedisError> {
        let clients = Clients::Server(redis::Client::open(url)?);
        Self::new(clients, timeout, wait)
    }

    /// Connections to the cluster that `seeds` (`redis://` URLs) belong to,
    /// made in the background, with backoff (so this must run within the
    /// Tokio runtime): until they are, commands wait, as long as their
    /// caller lets them. A `WAIT` of a durable batch lasts `wait` at most.
    ///
    /// # Errors
    /// When a seed is not a Redis URL this build can use.
    pub fn cluster(
        seeds: &[String],
        timeout: Duration,
        wait: Duration,
    ) -> Result<Self, RedisError> {
        // A batch's pipeline may take the Redis timeout plus its `WAIT`: the
        // cluster client bounds every request by its own response timeout,
        // so the durable connections get a client of their own.
        let durable = timeout.saturating_add(wait);
        let clients = Clients::Cluster {
            lanes: cluster_client(seeds, timeout).build()?,
            durable: cluster_client(seeds, timeout)
                .response_timeout(durable)
                .build()?,
        };
        Self::new(clients, timeout, wait)
    }

    fn new(clients: Clients, timeout: Duration, wait: Duration) -> Result<Self, RedisError> {
        let maker = Maker {
            clients,
            timeout,
            wait,
        };
        let made = || -> Result<Mutex<Made>, RedisError> {
            Ok(Mutex::new(Made {
                connection: maker.lazy(Purpose::Lane)?,
                at: Instant::now(),
                renewing: false,
                failing: false,
            }))
        };
        let (changes, reads) = (made()?, made()?);
        let link = Self {
            inner: Arc::new(Inner {
                maker,
                changes,
                reads,
                connected: Notify::new(),
            }),
        };
        for lane in [Lane::Changes, Lane::Reads] {
            if lock(link.lane(lane)).connection.is_none() {
                link.renew(lane);
            }
        }
        Ok(link)
    }

    /// Sends `cmd` on `lane`, once the lane has a connection (a cluster's
    /// first is made in the background; the caller bounds the wait).
    pub async fn query<T: FromRedisValue>(&self, lane: Lane, cmd: &Cmd) -> RedisResult<T> {
        loop {
            // Listened for before looking, so that a connection made between
            // the look and the wait is not missed.
            let connected = self.inner.connected.notified();
            tokio::pin!(connected);
            connected.as_mut().enable();
            let connection = lock(self.lane(lane)).connection.clone();
            if let Some(connection) = connection {
                return connection.query(cmd).await;
            }
            connected.await;
        }
    }

    /// Says that a command on `lane` got no answer in time: a new connection
    /// is made in the background, and takes the lane over once it is ready.
    /// Not while one is being made, nor within a Redis timeout of the last
    /// (a burst of late replies makes one new connection, not one each).
    /// Commands on their way on the old one finish there.
    pub fn stalled(&self, lane: Lane) {
        {
            let mut made = lock(self.lane(lane));
            if made.renewing || made.at.elapsed() < self.inner.maker.timeout {
                return;
            }
            made.renewing = true;
            if !made.failing {
                info!(
                    ?lane,
                    "Redis did not answer in time; connecting again (on a cluster, reading \
                     its topology again from the seeds)"
                );
            }
        }
        self.renew(lane);
    }

    /// Makes `lane`'s connection anew in the background, trying again (with
    /// backoff) until one is made, which then takes the lane over. A
    /// cluster's connections are made this way from the start: the cluster
    /// client's own pending connection, when it cannot read the topology
    /// (a user without `cluster|slots`), asks for it again at once, in a
    /// loop, thousands of times a second.
    fn renew(&self, lane: Lane) {
        lock(self.lane(lane)).renewing = true;
        // The task holds the link weakly: a shim that stops meanwhile drops
        // the link, and the task ends.
        let (maker, link) = (self.inner.maker.clone(), Arc::downgrade(&self.inner));
        tokio::spawn(async move {
            let timeout = maker.timeout;
            let mut backoff = Duration::from_millis(50);
            loop {
                // Connecting tries every seed and node, each bounded by the
                // timeout; this bounds them all.
                let made =
                    tokio::time::timeout(timeout.saturating_mul(4), maker.ready(Purpose::Lane))
                        .await;
                let Some(inner) = link.upgrade() else {
                    return;
                };
                if (Link { inner }).took(lane, made) {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }

    /// What an attempt to make `lane`'s connection anew gave (`made`): the
    /// new connection takes the lane over; a failure is logged (once in a
    /// series). Whether it is done.
    fn took(
        &self,
        lane: Lane,
        made: Result<RedisResult<Connection>, tokio::time::error::Elapsed>,
    ) -> bool {
        let mut lane_made = lock(self.lane(lane));
        lane_made.at = Instant::now();
        let was_failing = lane_made.failing;
        lane_made.failing = !matches!(made, Ok(Ok(_)));
        match made {
            Ok(Ok(connection)) => {
                lane_made.connection = Some(connection);
                lane_made.renewing = false;
                self.inner.connected.notify_waiters();
                if was_failing {
                    info!(?lane, "connected to Redis again");
                }
                return true;
            }
            Ok(Err(error)) if !was_failing => {
                info!(%error, ?lane, "cannot connect to Redis yet; trying again");
            }
            Err(_) if !was_failing => {
                info!(
                    ?lane,
                    "cannot connect to Redis yet (timed out); trying again"
                );
            }
            Ok(Err(error)) => debug!(%error, ?lane, "cannot connect to Redis yet"),
            Err(_) => debug!(?lane, "cannot connect to Redis yet (timed out)"),
        }
        false
    }

    /// A connection of its own for one namespace's durable batches, made
    /// when its first batch is sent.
    pub fn durable(&self) -> DurableConnection {
        DurableConnection {
            connection: None,
            made_at: None,
            refused_at: None,
            link: self.clone(),
        }
    }

    fn lane(&self, lane: Lane) -> &Mutex<Made> {
        match lane {
            Lane::Changes => &self.inner.changes,
            Lane::Reads => &self.inner.reads,
        }
    }
}

/// One namespace's connection for its changes that wait for replicas; at
/// most one batch is on it at a time.
pub struct DurableConnection {
    /// `None` until the first batch, and after [`Self::renew`].
    connection: Option<Connection>,
    /// When the last one was made.
    made_at: Option<Instant>,
    /// When making one last failed: none is tried again within a Redis
    /// timeout of that, so that changes failing fast (a cluster that
    /// refuses this user its topology) do not each make an attempt.
    refused_at: Option<Instant>,
    link: Link,
}

impl DurableConnection {
    /// Sends the changes `cmds` (whose first argument is `namespace`), then
    /// `WAIT replicas timeout` right behind them, as one pipeline to the
    /// namespace's primary: the `WAIT` answers once `replicas` replicas have
    /// every write that connection made, or the timeout passed. Returns each
    /// change's reply (errors included, as values) and the number of
    /// replicas that have them. On a cluster the pipeline goes to the node
    /// the cluster client holds for the namespace's slot; if that node is no
    /// longer its primary, it refuses the changes (`MOVED`: a replica makes
    /// none) and the client sends the whole pipeline again to the new one.
    ///
    /// # Errors
    /// When the pipeline as a whole fails (the connection, the `WAIT`).
    pub async fn query_and_wait(
        &mut self,
        cmds: &[Cmd],
        namespace: &str,
        replicas: u32,
        timeout: Duration,
    ) -> RedisResult<(Vec<Value>, u64)> {
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for cmd in cmds {
            pipe.add_command(cmd.clone());
        }
        pipe.cmd("WAIT").arg(replicas).arg(timeout_ms);
        let connection = match &self.connection {
            Some(connection) => connection.clone(),
            None => {
                let maker = &self.link.inner.maker;
                if self
                    .refused_at
                    .is_some_and(|at| at.elapsed() < maker.timeout)
                {
                    return Err(RedisError::from((
                        redis::ErrorKind::Io,
                        "no connection to the namespace's primary; trying again shortly",
                    )));
                }
                let made = match maker.lazy(Purpose::Durable) {
                    Ok(Some(connection)) => Ok(connection),
                    Ok(None) => maker.ready(Purpose::Durable).await,
                    Err(error) => Err(error),
                };
                let connection = made.inspect_err(|_| self.refused_at = Some(Instant::now()))?;
                self.refused_at = None;
                self.connection = Some(connection.clone());
                self.made_at = Some(Instant::now());
                connection
            }
        };
        let mut values = connection
            .pipeline_to(pipe, namespace, cmds.len() + 1)
            .await?;
        let acked = match values.pop() {
            Some(acked) if values.len() == cmds.len() => {
                u64::from_redis_value(acked.extract_error()?)?
            }
            _ => {
                return Err(RedisError::from((
                    redis::ErrorKind::Client,
                    "changes and their WAIT got another number of replies",
                )))
            }
        };
        Ok((values, acked))
    }

    /// After a batch failed: the next batch goes on a new connection, unless
    /// this one was made less than a Redis timeout ago (changes failing
    /// fast, while a failover settles, make one new connection per timeout,
    /// not one per batch). A new cluster connection reads the topology
    /// again, which a pipeline sent to a chosen node may not make the old
    /// one do.
    pub fn failed(&mut self) {
        let recent = self
            .made_at
            .is_some_and(|at| at.elapsed() < self.link.inner.maker.timeout);
        if !recent {
            self.connection = None;
        }
    }

    /// After a batch got no answer in time: the next batch goes on a new
    /// connection whatever happens, since this one's `WAIT` may still hold
    /// it in Redis, and a batch sent behind it would wait there.
    pub fn timed_out(&mut self) {
        self.connection = None;
    }
}

/// What a connection is for: its replies' time limit differs.
#[derive(Clone, Copy)]
enum Purpose {
    /// A shared lane: a reply takes the Redis timeout at most.
    Lane,
    /// A namespace's durable batches: the Redis timeout plus the `WAIT`.
    Durable,
}

/// Makes connections: a lane's, a namespace's durable one, and either anew.
#[derive(Clone)]
struct Maker {
    clients: Clients,
    /// The Redis timeout: to connect, and for a reply.
    timeout: Duration,
    /// The longest `WAIT` of a durable batch.
    wait: Duration,
}

// One per link, inside its `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum Clients {
    Server(redis::Client),
    Cluster {
        lanes: ClusterClient,
        durable: ClusterClient,
    },
}

impl Maker {
    /// How long a reply for `purpose` may take.
    fn response(&self, purpose: Purpose) -> Duration {
        match purpose {
            Purpose::Lane => self.timeout,
            Purpose::Durable => self.timeout.saturating_add(self.wait),
        }
    }

    /// On one server, a connection for `purpose` made on first use, which
    /// reconnects by itself; on a cluster `None`: its connections are made
    /// with [`Self::ready`], since the cluster client's pending connection
    /// retries a topology it cannot read in a tight loop.
    fn lazy(&self, purpose: Purpose) -> RedisResult<Option<Connection>> {
        match &self.clients {
            Clients::Server(client) => {
                ConnectionManager::new_lazy_with_config(client.clone(), self.server(purpose))
                    .map(|connection| Some(Connection::Server(connection)))
            }
            Clients::Cluster { .. } => Ok(None),
        }
    }

    /// A connection for `purpose`, once it is made.
    async fn ready(&self, purpose: Purpose) -> RedisResult<Connection> {
        match &self.clients {
            Clients::Server(client) => {
                ConnectionManager::new_with_config(client.clone(), self.server(purpose))
                    .await
                    .map(Connection::Server)
            }
            Clients::Cluster { lanes, durable } => {
                let client = if let Purpose::Lane = purpose {
                    lanes
                } else {
                    durable
                };
                client
                    .get_async_connection_with_config(self.cluster(purpose))
                    .await
                    .map(Connection::Cluster)
            }
        }
    }

    fn server(&self, purpose: Purpose) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.response(purpose)))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500))
    }

    fn cluster(&self, purpose: Purpose) -> ClusterConfig {
        ClusterConfig::new()
            .set_connection_timeout(self.timeout)
            .set_response_timeout(self.response(purpose))
    }
}

/// One connection, to a server or a cluster. Cheap to clone.
#[derive(Clone)]
enum Connection {
    Server(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Self::Server(connection) => cmd.query_async(&mut connection.clone()).await,
            Self::Cluster(connection) => cmd.query_async(&mut connection.clone()).await,
        }
    }

    /// Sends `pipe`, of `count` commands, to the primary of `key`'s slot.
    async fn pipeline_to(
        &self,
        pipe: Pipeline,
        key: &str,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Self::Server(connection) => pipe.query_async(&mut connection.clone()).await,
            Self::Cluster(connection) => {
                let route =
                    SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
                connection
                    .clone()
                    .route_pipeline(pipe, 0, count, route)
                    .await
            }
        }
    }
}

/// Whether `answer`, to a command the shim bounded by the client's own
/// response timeout, says Redis did not answer in time: either timeout may
/// fire first, the client's as an error, the shim's as `Elapsed`.
pub fn late<T>(answer: &Result<RedisResult<T>, tokio::time::error::Elapsed>) -> bool {
    match answer {
        Err(_) => true,
        Ok(Err(error)) => error.is_timeout(),
        Ok(Ok(_)) => false,
    }
}

fn lock(made: &Mutex<Made>) -> std::sync::MutexGuard<'_, Made> {
    made.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A cluster client for `seeds`, with the shim's timeouts and a few quick
/// retries while a failover settles.
pub fn cluster_client(seeds: &[String], timeout: Duration) -> ClusterClientBuilder {
    ClusterClientBuilder::new(seeds.iter().map(String::as_str).collect::<Vec<_>>())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(500)
}
