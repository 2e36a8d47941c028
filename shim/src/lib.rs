//! # Violet's WebSocket shim
//!
//! Browsers speak JSON over WebSockets ([`protocol`]); the shim turns each
//! request into exactly one `VIOLET.*` command of the Redis module, and turns
//! the module's events into live pushes. It keeps no room state beyond which
//! room each of its own connections is in, so any number of shims can share
//! one Redis.
//!
//! ## Layout of the crate
//!
//! - `main.rs`: the binary; parses the command line and calls [`launch`].
//! - [`config`]: the command line, the `VIOLET_*` environment and [`Config`].
//! - [`server`]: [`run`] and [`launch`], which start, wire and stop everything.
//! - [`accept`] (private): the listener; HTTP/1.1 on each TCP connection until
//!   it upgrades, with the pending-connection bound and the handshake timeout.
//! - [`routes`] (private): the HTTP routes, the origin check and the connection limit.
//! - [`connection`] (private): one WebSocket's loop, from welcome to goodbye.
//! - [`protocol`]: the JSON frames, requests and replies, and the error codes.
//!   Its documentation is the protocol's reference.
//! - [`registry`]: the [`registry::Hub`] of this shim's connections, which
//!   turns the module's events into pushes.
//! - [`outbox`]: each connection's pushes waiting to be sent, bounded in
//!   frames and bytes.
//! - [`tasks`]: the background tasks (the events subscription, the lobby
//!   watcher).
//! - [`top`]: the top rooms, one snapshot shared by every connection.
//! - [`space`]: one namespace served: its client, hub and top rooms.
//! - [`redis`]: the Violet client, one method per command.
//! - [`link`]: the connections to Redis, one server or a cluster.
//! - [`durable`]: the changes that wait for replicas (`--wait-replicas`).
//! - [`ratelimit`]: the per-connection token bucket.
//! - [`embedded`]: the `redis-server` the shim runs when given no Redis.
//! - [`metrics`]: the counters behind `GET /metrics`.
//! - [`logging`]: `tracing` to stderr.
//!
//! What the shim and the module agree on (key layout, events, error codes,
//! limits) is in the `violet_contract` crate.

mod accept;
pub mod config;
mod connection;
pub mod durable;
pub mod embedded;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod outbox;
pub mod protocol;
pub mod ratelimit;
pub mod redis;
pub mod registry;
mod routes;
pub mod server;
pub mod space;
pub mod tasks;
pub mod top;

pub use config::{Cli, Config, RedisTarget};
pub use logging::init_logging;
pub use server::{launch, new_shim_id, run, shutdown_signal};
