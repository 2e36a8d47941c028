//! # Violet's Redis module
//!
//! Rooms and presence as native Redis commands. A room is a Set of sockets, a
//! Hash of details and an entry in a Sorted Set of public rooms; every
//! `VIOLET.*` command changes them together, atomically, inside Redis. The data
//! stays plain Redis types: readable with `redis-cli`, persisted and replicated
//! like any other key.
//!
//! ## Layout of the crate
//!
//! - [`registry`]: the command table: flags, ACL categories, key specs and
//!   `COMMAND DOCS` of every command, in one entry per command.
//! - [`commands`]: the command layer. Parses arguments, calls the rules, shapes
//!   the reply; nothing else.
//! - [`acl`]: the caller's ACL, checked on the keys and channel each command
//!   really touches.
//! - [`rooms`]: the room rules, plain Rust over the [`store::Store`] trait.
//!   [`leases`] adds node leases and reaping to them; [`check`] verifies the
//!   invariants they keep.
//! - [`reaper`]: the timer that reaps expired leases, and the module configs.
//! - [`eviction`]: the warning about eviction policies that may break rooms.
//! - [`ids`], [`details`], [`error`]: the vocabulary: validated ids, room
//!   details and the error replies. The key layout, the JSON events, the error
//!   codes and the limits are the contract with the shim, in `violet_contract`.
//! - [`redis_store`]: the store inside Redis; [`ffi`] holds the only `unsafe`.
//!
//! ## Events
//!
//! Every change is published as JSON on `violet:{NS}:events`. Without
//! cluster mode that is classic pub/sub (`SUBSCRIBE`). In cluster mode it is
//! sharded pub/sub (`SSUBSCRIBE` on the node that owns `NS`'s slot, or a
//! replica of it): a classic publish on a cluster is broadcast to every node
//! over the cluster bus, so its cost would grow with the cluster, while the
//! channel's hash tag `{NS}` keeps a shard publish on the namespace's own
//! shard.
//! - `memory_store`: an in-memory store for the unit tests and the
//!   benchmarks (feature `bench`).

#![deny(unsafe_code)]

pub mod acl;
pub mod check;
pub mod commands;
pub mod details;
pub mod error;
pub mod eviction;
#[allow(unsafe_code)]
mod ffi;
pub mod ids;
pub mod leases;
pub mod reaper;
pub mod redis_store;
pub mod registry;
pub mod rooms;
pub mod store;

#[cfg(test)]
mod lease_tests;
#[cfg(any(test, feature = "bench"))]
pub mod memory_store;
#[cfg(test)]
mod rules_tests;

// Inside Redis every allocation goes through Redis's allocator, so memory
// shows in `INFO memory` and `maxmemory` applies; small freed blocks are
// kept for the next command rather than freed (`ffi::CachingAlloc`). Unit
// tests and benchmarks run outside Redis, where that allocator does not exist.
#[cfg(not(any(test, feature = "bench")))]
type Allocator = ffi::CachingAlloc<redis_module::alloc::RedisAlloc>;
#[cfg(any(test, feature = "bench"))]
type Allocator = std::alloc::System;
#[cfg(not(any(test, feature = "bench")))]
const ALLOCATOR: Allocator = ffi::CachingAlloc(redis_module::alloc::RedisAlloc);
#[cfg(any(test, feature = "bench"))]
const ALLOCATOR: Allocator = std::alloc::System;

/// `INFO violet`: what the reaper has done.
fn info(ctx: &redis_module::InfoContext, _for_crash_report: bool) {
    reaper::info(ctx);
}

// The commands are registered by `registry::register` (see its table), not
// through the macro's own list: the macro cannot pass key specs, ACL
// categories or `COMMAND DOCS`. The configs are the macro's.
mod registration {
    use super::{eviction, ffi, info, reaper, registry, Allocator, ALLOCATOR};
    use redis_module::configuration::ConfigurationFlags;
    use redis_module::{
        redis_module, Context, ContextFlags, InfoContext, RedisResult, RedisString, Status,
    };

    /// Registers the commands, then starts the reaper.
    fn init(ctx: &Context, _args: &[RedisString]) -> Status {
        if registry::register(ctx) == Status::Err {
            return Status::Err;
        }
        eviction::check(ctx, true);
        log_pubsub(ctx);
        reaper::start(ctx);
        Status::Ok
    }

    /// Says at load, in cluster mode, how events will be published: with
    /// sharded pub/sub, or classically where the server lacks it.
    fn log_pubsub(ctx: &Context) {
        if !ctx.get_flags().contains(ContextFlags::CLUSTER) {
            return;
        }
        match ffi::pubsub(ctx) {
            ffi::Pubsub::Sharded => ctx.log_notice(
                "Violet: cluster mode: events are published with sharded pub/sub; \
                 SSUBSCRIBE violet:{NS}:events on the node that owns NS",
            ),
            ffi::Pubsub::Classic => ctx.log_warning(
                "Violet: cluster mode, but this server lacks RedisModule_PublishMessageShard: \
                 events are published classically, to every node",
            ),
        }
    }

    redis_module! {
        name: "violet",
        version: 1,
        allocator: (Allocator, ALLOCATOR),
        data_types: [],
        init: init,
        info: info,
        commands: [],
        // `CONFIG SET violet.lease-ms 5000` at run time, or at load time
        // `--loadmodule libviolet.so lease-ms 5000`.
        configurations: [
            i64: [
                ["lease-ms", &reaper::LEASE_MS, reaper::LEASE_DEFAULT_MS, reaper::LEASE_MIN_MS as i64, reaper::LEASE_MAX_MS as i64, ConfigurationFlags::DEFAULT, None],
                ["reap-interval-ms", &reaper::REAP_INTERVAL_MS, reaper::REAP_INTERVAL_DEFAULT_MS, 1, 10_000, ConfigurationFlags::DEFAULT, None],
                ["reap-batch", &reaper::REAP_BATCH, reaper::REAP_BATCH_DEFAULT, 1, 100_000, ConfigurationFlags::DEFAULT, None],
            ],
            // The macro wants every kind listed once load-time arguments
            // are read as configs.
            string: [],
            bool: [],
            enum: [],
            module_args_as_configuration: true,
        ]
    }
}
