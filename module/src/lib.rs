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
//!   [`check`] verifies the invariants they keep.
//! - [`ids`], [`details`], [`keys`], [`events`], [`error`]: the vocabulary: validated
//!   ids, room details, the key layout, the JSON events and the error replies.
//! - [`redis_store`]: the store inside Redis; [`ffi`] holds the only `unsafe`.
//! - `memory_store`: an in-memory store for the unit tests.

#![deny(unsafe_code)]

pub mod acl;
pub mod check;
pub mod commands;
pub mod details;
pub mod error;
pub mod events;
#[allow(unsafe_code)]
mod ffi;
pub mod ids;
pub mod keys;
pub mod redis_store;
pub mod registry;
pub mod rooms;
pub mod store;

#[cfg(test)]
mod memory_store;
#[cfg(test)]
mod rules_tests;

// Inside Redis every allocation goes through Redis's allocator, so memory
// shows in `INFO memory` and `maxmemory` applies. Unit tests run outside Redis,
// where that allocator does not exist.
#[cfg(not(test))]
type Allocator = redis_module::alloc::RedisAlloc;
#[cfg(test)]
type Allocator = std::alloc::System;
#[cfg(not(test))]
const ALLOCATOR: Allocator = redis_module::alloc::RedisAlloc;
#[cfg(test)]
const ALLOCATOR: Allocator = std::alloc::System;

// The commands are registered by `registry::register` (see its table), not
// through the macro's own list: the macro cannot pass key specs, ACL
// categories or `COMMAND DOCS`.
mod registration {
    use super::{registry, Allocator, ALLOCATOR};
    use redis_module::{redis_module, Context, RedisString, Status};

    fn init(ctx: &Context, _args: &[RedisString]) -> Status {
        registry::register(ctx)
    }

    redis_module! {
        name: "violet",
        version: 1,
        allocator: (Allocator, ALLOCATOR),
        data_types: [],
        init: init,
        commands: [],
    }
}
