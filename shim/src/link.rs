//! The shim's connections to Redis: one server, or a Redis Cluster.
//!
//! Either way there are two lanes: changes and small reads on one, the reads
//! whose replies can be large (`TOP`, `ROOM`, `MEMBERS`, a node's hash) on
//! the other, since one connection answers in order and a large reply must
//! never hold back the joins, leaves and messages queued behind it. With
//! `--wait-replicas` a third lane carries the changes that wait for
//! replicas (see [`crate::durable`]): a `WAIT` holds its connection in Redis
//! until it answers, and must hold back nothing else, the lease least of all.
//!
//! On one server each lane is a [`ConnectionManager`], which reconnects by
//! itself after Redis restarts. On a cluster each lane is the `redis` crate's
//! [`ClusterConnection`]: it discovers the topology from the seed nodes,
//! follows `MOVED` and `ASK`, refreshes the slot map when a primary fails
//! over, and routes each command by its first argument. Every `VIOLET.*`
//! command's first argument is its namespace, which hashes to the slot of
//! the namespace's keys (`violet:{NS}:...`, and a namespace never holds a
//! brace), so each command reaches the node that owns its namespace.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, RedisError, RedisResult, Value};
use std::time::Duration;

/// Which lane a command travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Changes and small reads.
    Changes,
    /// Reads whose replies can be large.
    Reads,
}

/// How long a batch of changes and its `WAIT` may take: the Redis timeout
/// plus the longest `WAIT` (`--wait-timeout-ms`).
fn durable_timeout(timeout: Duration, wait: Duration) -> Duration {
    timeout.saturating_add(wait)
}

/// The connections to Redis. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub enum Link {
    /// One Redis server.
    Server {
        changes: ConnectionManager,
        reads: ConnectionManager,
        durable: ConnectionManager,
    },
    /// A Redis Cluster.
    Cluster {
        changes: ClusterConnection,
        reads: ClusterConnection,
        durable: ClusterConnection,
    },
}

impl Link {
    /// Connections to the server at `url`, made on first use; a `WAIT` of
    /// the durable lane lasts `wait` at most.
    ///
    /// # Errors
    /// When `url` is not a Redis URL this build can use.
    pub fn server(url: &str, timeout: Duration, wait: Duration) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = |response: Duration| {
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(response))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(500))
        };
        let lazy =
            |response| ConnectionManager::new_lazy_with_config(client.clone(), config(response));
        Ok(Self::Server {
            changes: lazy(timeout)?,
            reads: lazy(timeout)?,
            durable: lazy(durable_timeout(timeout, wait))?,
        })
    }

    /// Connections to the cluster that `seeds` (`redis://` URLs) belong to,
    /// made in the background: until they are, commands fail. A `WAIT` of
    /// the durable lane lasts `wait` at most.
    ///
    /// # Errors
    /// When a seed is not a Redis URL this build can use.
    pub fn cluster(
        seeds: &[String],
        timeout: Duration,
        wait: Duration,
    ) -> Result<Self, RedisError> {
        let client = cluster_client(seeds, timeout).build()?;
        let connection = |response| {
            let config = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(timeout)
                .set_response_timeout(response);
            client.get_pending_async_connection_with_config(config)
        };
        Ok(Self::Cluster {
            changes: connection(timeout),
            reads: connection(timeout),
            durable: connection(durable_timeout(timeout, wait)),
        })
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// Sends `cmd` on `lane`.
    pub async fn query<T: FromRedisValue>(&self, lane: Lane, cmd: &Cmd) -> RedisResult<T> {
        match (self, lane) {
            (Self::Server { changes, .. }, Lane::Changes) => {
                cmd.query_async(&mut changes.clone()).await
            }
            (Self::Server { reads, .. }, Lane::Reads) => cmd.query_async(&mut reads.clone()).await,
            (Self::Cluster { changes, .. }, Lane::Changes) => {
                cmd.query_async(&mut changes.clone()).await
            }
            (Self::Cluster { reads, .. }, Lane::Reads) => cmd.query_async(&mut reads.clone()).await,
        }
    }

    /// Sends the changes `cmds` (whose first argument is `namespace`), then
    /// `WAIT replicas timeout` right behind them, as one pipeline on the
    /// durable lane to the namespace's primary: the `WAIT` answers once
    /// `replicas` replicas have every write that connection made, or the
    /// timeout passed. Returns each change's reply (errors included, as
    /// values) and the number of replicas that have them. On a cluster the
    /// pipeline goes to the node the cluster client holds for the namespace's
    /// slot: if that node is no longer its primary, the changes are refused
    /// (`MOVED`) rather than acknowledged by a node that will not keep them.
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
        let mut values: Vec<Value> = match self {
            Self::Server { durable, .. } => pipe.query_async(&mut durable.clone()).await?,
            Self::Cluster { durable, .. } => {
                let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(
                    namespace,
                    SlotAddr::Master,
                ));
                durable
                    .clone()
                    .route_pipeline(pipe, 0, cmds.len() + 1, route)
                    .await?
            }
        };
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
