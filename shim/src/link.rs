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
//! primary fails over, and routes each command by its first argument. Every
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
//! the seeds again, and a new server connection dials again.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisResult, Value};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tracing::info;

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
    /// The Redis timeout: a command's reply takes at most this long.
    timeout: Duration,
    /// The longest `WAIT` of a durable batch (`--wait-timeout-ms`).
    wait: Duration,
    changes: Mutex<Made>,
    reads: Mutex<Made>,
}

/// A lane's connection, and when it was made.
struct Made {
    connection: Connection,
    at: Instant,
}

impl Link {
    /// Connections to the server at `url`, made on first use; a `WAIT` of a
    /// durable batch lasts `wait` at most.
    ///
    /// # Errors
    /// When `url` is not a Redis URL this build can use.
    pub fn server(url: &str, timeout: Duration, wait: Duration) -> Result<Self, RedisError> {
        let maker = Maker::Server(redis::Client::open(url)?);
        Self::new(maker, timeout, wait)
    }

    /// Connections to the cluster that `seeds` (`redis://` URLs) belong to,
    /// made in the background: until they are, commands fail. A `WAIT` of a
    /// durable batch lasts `wait` at most.
    ///
    /// # Errors
    /// When a seed is not a Redis URL this build can use.
    pub fn cluster(
        seeds: &[String],
        timeout: Duration,
        wait: Duration,
    ) -> Result<Self, RedisError> {
        let maker = Maker::Cluster(cluster_client(seeds, timeout).build()?);
        Self::new(maker, timeout, wait)
    }

    fn new(maker: Maker, timeout: Duration, wait: Duration) -> Result<Self, RedisError> {
        let made = || -> Result<Mutex<Made>, RedisError> {
            Ok(Mutex::new(Made {
                connection: maker.connection(timeout, timeout)?,
                at: Instant::now(),
            }))
        };
        let (changes, reads) = (made()?, made()?);
        Ok(Self {
            inner: Arc::new(Inner {
                maker,
                timeout,
                wait,
                changes,
                reads,
            }),
        })
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.maker, Maker::Cluster(_))
    }

    /// Sends `cmd` on `lane`.
    pub async fn query<T: FromRedisValue>(&self, lane: Lane, cmd: &Cmd) -> RedisResult<T> {
        let connection = lock(self.lane(lane)).connection.clone();
        connection.query(cmd).await
    }

    /// Says that a command on `lane` got no answer in time: the lane is made
    /// anew, unless it was made less than a Redis timeout ago (a burst of
    /// late replies makes one new connection, not one each). Commands on
    /// their way on the old one finish there.
    pub fn stalled(&self, lane: Lane) {
        let mut made = lock(self.lane(lane));
        if made.at.elapsed() < self.inner.timeout {
            return;
        }
        match self
            .inner
            .maker
            .connection(self.inner.timeout, self.inner.timeout)
        {
            Ok(connection) => {
                info!(
                    ?lane,
                    "Redis did not answer in time; connecting again (reading the cluster's \
                     topology again, on a cluster)"
                );
                *made = Made {
                    connection,
                    at: Instant::now(),
                };
            }
            Err(error) => info!(%error, ?lane, "cannot connect to Redis again yet"),
        }
    }

    /// A connection of its own for one namespace's durable batches.
    pub fn durable(&self) -> DurableConnection {
        let mut durable = DurableConnection {
            connection: None,
            link: self.clone(),
        };
        durable.renew();
        durable
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
    /// `None` only if it could not be made (see [`Self::renew`]).
    connection: Option<Connection>,
    link: Link,
}

impl DurableConnection {
    /// Sends the changes `cmds` (whose first argument is `namespace`), then
    /// `WAIT replicas timeout` right behind them, as one pipeline to the
    /// namespace's primary: the `WAIT` answers once `replicas` replicas have
    /// every write that connection made, or the timeout passed. Returns each
    /// change's reply (errors included, as values) and the number of
    /// replicas that have them. On a cluster the pipeline goes to the node
    /// the cluster client holds for the namespace's slot: if that node is no
    /// longer its primary, the changes are refused (`MOVED`) rather than
    /// acknowledged by a node that will not keep them.
    ///
    /// # Errors
    /// When the pipeline as a whole fails (the connection, the `WAIT`).
    pub async fn query_and_wait(
        &self,
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
        let Some(connection) = &self.connection else {
            return Err(RedisError::from((
                redis::ErrorKind::Io,
                "no connection to Redis yet",
            )));
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

    /// Makes the connection anew, after a batch failed or got no answer in
    /// time. Closing the old one makes Redis drop whatever it had not read
    /// of it, so that no change answered "not made" is made later; and a
    /// new cluster connection reads the topology again, which a pipeline
    /// sent to a chosen node does not make the old one do after a failover.
    pub fn renew(&mut self) {
        let inner = &self.link.inner;
        let response = inner.timeout.saturating_add(inner.wait);
        // Dropped first, so that the old connection is closed even when a
        // new one cannot be made.
        self.connection = None;
        match inner.maker.connection(inner.timeout, response) {
            Ok(connection) => self.connection = Some(connection),
            Err(error) => info!(%error, "cannot connect to Redis again yet"),
        }
    }
}

/// Makes connections: a lane's, a namespace's durable one, and either anew.
// One per link, inside its `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Maker {
    Server(redis::Client),
    Cluster(ClusterClient),
}

impl Maker {
    /// A connection made in the background, `connect` long at most per
    /// attempt, whose replies take `response` at most.
    fn connection(&self, connect: Duration, response: Duration) -> RedisResult<Connection> {
        match self {
            Self::Server(client) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect))
                    .set_response_timeout(Some(response))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map(Connection::Server)
            }
            Self::Cluster(client) => {
                let config = ClusterConfig::new()
                    .set_connection_timeout(connect)
                    .set_response_timeout(response);
                Ok(Connection::Cluster(
                    client.get_pending_async_connection_with_config(config),
                ))
            }
        }
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
