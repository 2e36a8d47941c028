//! # What Violet's module and shim agree on
//!
//! The Redis module writes keys and publishes events; the shim reads both and
//! maps the module's errors onto its protocol. Everything the two must agree
//! on is defined here once, with no FFI, so both depend on it:
//!
//! - [`keys`]: the key layout of a namespace and its events channel;
//! - [`events`]: the JSON events published on that channel;
//! - [`codes`]: the error codes that start the module's error replies;
//! - [`limits`]: the sizes and counts the module enforces.

pub mod codes;
pub mod events;
pub mod keys;
pub mod limits;
