//! The store: the few Redis operations the room rules are built from.
//!
//! The rules in [`crate::rooms`] see Redis only through this trait, so they are
//! plain Rust: [`crate::redis_store::RedisStore`] runs each operation inside
//! Redis, and an in-memory store runs the unit tests. Each method is one Redis
//! command with that command's semantics (an emptied set or hash disappears,
//! a missing key reads as empty). Time is behind the store too, so that lease
//! expiry is tested on the in-memory store with a clock the test moves.

use crate::error::Result;

pub trait Store {
    /// `SADD key member`: whether the member was added.
    fn sadd(&mut self, key: &str, member: &str) -> Result<bool>;
    /// `SREM key member`: whether the member was there.
    fn srem(&mut self, key: &str, member: &str) -> Result<bool>;
    /// `SMOVE source destination member`: whether the member was in
    /// `source`; it is then in `destination` only (the source goes with its
    /// last member). When it was not, nothing changed.
    fn smove(&mut self, source: &str, destination: &str, member: &str) -> Result<bool>;
    /// `SCARD key`.
    fn scard(&mut self, key: &str) -> Result<u64>;
    /// `SISMEMBER key member`.
    fn sismember(&mut self, key: &str, member: &str) -> Result<bool>;
    /// `SMEMBERS key`.
    fn smembers(&mut self, key: &str) -> Result<Vec<String>>;
    /// `SSCAN key cursor COUNT count`: the next cursor (0 when the scan is
    /// over) and some members.
    fn sscan(&mut self, key: &str, cursor: u64, count: u64) -> Result<(u64, Vec<String>)>;

    /// `HGET key field`.
    fn hget(&mut self, key: &str, field: &str) -> Result<Option<String>>;
    /// `HMGET key field [field ...]`: each field's value, in order.
    fn hmget(&mut self, key: &str, fields: &[&str]) -> Result<Vec<Option<String>>>;
    /// `HGETALL key`, as pairs.
    fn hgetall(&mut self, key: &str) -> Result<Vec<(String, String)>>;
    /// `HSET key field value [field value ...]`.
    fn hset(&mut self, key: &str, fields: &[(&str, &str)]) -> Result<()>;
    /// `HDEL key field`.
    fn hdel(&mut self, key: &str, field: &str) -> Result<()>;
    /// `HLEN key`.
    fn hlen(&mut self, key: &str) -> Result<u64>;
    /// `HSCAN key cursor COUNT count`: the next cursor (0 when the scan is
    /// over) and some pairs.
    fn hscan(&mut self, key: &str, cursor: u64, count: u64)
        -> Result<(u64, Vec<(String, String)>)>;

    /// `ZADD key score member`.
    fn zadd(&mut self, key: &str, score: u64, member: &str) -> Result<()>;
    /// `ZADD key score member [score member ...]`: each entry in order, in
    /// one command (a move reranks both its rooms in one).
    fn zadd_all(&mut self, key: &str, entries: &[(u64, &str)]) -> Result<()> {
        for &(score, member) in entries {
            self.zadd(key, score, member)?;
        }
        Ok(())
    }
    /// `ZADD key NX score member`: adds the member only if it is not there.
    fn zadd_new(&mut self, key: &str, score: f64, member: &str) -> Result<()>;
    /// `ZREM key member`.
    fn zrem(&mut self, key: &str, member: &str) -> Result<()>;
    /// `ZSCORE key member`.
    fn zscore(&mut self, key: &str, member: &str) -> Result<Option<f64>>;
    /// `ZREVRANGE key start stop WITHSCORES`: highest score first, ties by
    /// member in reverse byte order.
    fn zrevrange(&mut self, key: &str, start: u64, stop: u64) -> Result<Vec<(String, f64)>>;
    /// `ZRANGEBYSCORE key -inf max WITHSCORES LIMIT 0 count`: lowest score first.
    fn zrange_up_to(&mut self, key: &str, max: f64, count: u64) -> Result<Vec<(String, f64)>>;
    /// `ZCARD key`.
    fn zcard(&mut self, key: &str) -> Result<u64>;
    /// `ZCARD key`, read by an operation that is going to change the
    /// sorted set: a store may keep the key open for that write.
    fn zcard_to_write(&mut self, key: &str) -> Result<u64> {
        self.zcard(key)
    }

    /// `EXISTS key`.
    fn exists(&mut self, key: &str) -> Result<bool>;
    /// `DEL key [key ...]`.
    fn del(&mut self, keys: &[&str]) -> Result<()>;
    /// Every key that starts with `prefix` (a `SCAN`; for `VIOLET.CHECK` only).
    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>>;

    /// `PUBLISH channel message`, or `SPUBLISH` on a server in cluster mode
    /// (see `ffi::pubsub`); never replicated.
    fn publish(&mut self, channel: &str, message: &str);
    /// A fresh random id for a room created with `*`.
    fn random_id(&mut self) -> String;
    /// The server's clock: Unix time in milliseconds.
    fn now_ms(&mut self) -> u64;
}
