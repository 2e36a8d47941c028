//! The [`Store`] that runs inside Redis, for the module's commands.
//!
//! Point reads (`HGET`, `SCARD`, `ZCARD`, `EXISTS`) read the key directly
//! through the module API, which costs far less than a command; the reads
//! that list things are one `RedisModule_Call` each. Sorted-set additions go
//! through the key API too (`RedisModule_ZsetAdd`), firing the keyspace
//! event Redis's own `ZADD` fires, and are replicated explicitly as plain
//! `ZADD`s (a move's two changes to the ranking as one), at once, or, in a
//! store told to hold them (the reaper's, `VIOLET.RELEASE`'s, which rerank
//! the same rooms over and over), held until the command ends so that
//! consecutive ones go as one (see `ffi::Replication`). Every other write
//! is a command call that Redis replicates itself (the `!` flag): `SADD`, `SREM`
//! and `SMOVE` (the module API has no set writes; a socket moving between
//! rooms is one `SMOVE`), `HSET`, `HDEL`, `ZREM` and `DEL`. On Redis 7.0 a
//! call costs less than a key-API write followed by `RedisModule_Replicate`,
//! which looks the command up by its name again and builds its own argv.
//! Either way replicas and the AOF receive plain effects, wrapped in
//! `MULTI`/`EXEC` by Redis, never `VIOLET.*` itself: a room created with `*`
//! replicates with its concrete id, and an AOF loads even where the module
//! is not. Events are published without being replicated.
//! The Redis strings a command names (keys, fields, members) are made once
//! per command (`ffi::Strings`).
//!
//! Every read first checks the key against the calling user's ACL
//! ([`Permissions`]), with the access the command needs; writes are not
//! checked again, because the rules read every key they write before their
//! first write.

use crate::acl::Permissions;
use crate::error::{err_redis, err_wrong_type, Result};
use crate::ffi::{self, Notify, Replication, Str, Strings};
use crate::store::Store;
use redis_module::{
    CallOptions, CallOptionsBuilder, CallReply, CallResult, Context, KeyType, RedisString,
};
use std::cell::RefCell;
use std::ffi::CStr;
use std::sync::LazyLock;

/// How many keys one `SCAN` step asks for in `keys_with_prefix`.
const SCAN_BATCH: u64 = 1000;

/// `RedisModule_Call` flags for reads: errors come back as replies.
static READ: LazyLock<CallOptions> =
    LazyLock::new(|| CallOptionsBuilder::new().errors_as_replies().build());

/// Redis, as seen from a command running inside it for the calling user.
pub struct RedisStore<'c> {
    ctx: &'c Context,
    permissions: Permissions,
    strings: Strings,
    /// A sorted set opened for writing by `zcard_to_write`, kept for the
    /// write that follows (`zset_add`), with the address of its kept name
    /// (a kept string does not move while the command runs). It is closed
    /// before a command call names the key, which could delete it.
    open_zset: RefCell<Option<(*const RedisString, ffi::WritableKey)>>,
    replication: RefCell<Replication>,
    /// Whether key-API writes are held for replication (`hold_effects`)
    /// rather than replicated at once.
    hold: bool,
    /// How events are published, read from the context flags when the
    /// command first publishes, then kept for the rest of it.
    pubsub: Option<ffi::Pubsub>,
}

impl<'c> RedisStore<'c> {
    pub fn new(ctx: &'c Context, permissions: Permissions) -> Self {
        Self {
            ctx,
            permissions,
            strings: Strings::new(),
            open_zset: RefCell::default(),
            replication: RefCell::default(),
            hold: false,
            pubsub: None,
        }
    }

    /// The key as a Redis string, once the user may access it.
    fn readable(&self, key: &str) -> Result<Str<'_>> {
        let string = self.string(key);
        if self.permissions.restricted() {
            self.permissions.key(self.ctx, &string, key)?;
        }
        Ok(string)
    }

    /// Checks that the user may publish on `channel`, whose Redis string is
    /// then kept for the events published on it.
    ///
    /// # Errors
    /// `NOPERM` when the user may not.
    pub fn permit_publish(&self, channel: &str) -> Result<()> {
        if !self.permissions.restricted() {
            return Ok(());
        }
        self.permissions
            .publish(self.ctx, &self.string(channel), channel)
    }

    /// Checks a key read through a command call.
    fn permit(&self, key: &str) -> Result<()> {
        self.permissions.key_named(self.ctx, key)
    }

    fn call<T>(
        &self,
        options: &CallOptions,
        command: &str,
        args: &[&str],
        read: impl FnOnce(&CallReply) -> Result<T>,
    ) -> Result<T> {
        let reply: CallResult<'static> = self.ctx.call_ext(command, options, args);
        match reply {
            Ok(reply) => read(&reply),
            Err(error) => Err(err_redis(&error.to_string())),
        }
    }

    fn read<T>(
        &self,
        command: &str,
        args: &[&str],
        read: impl FnOnce(&CallReply) -> Result<T>,
    ) -> Result<T> {
        self.call(&READ, command, args, read)
    }

    fn string(&self, text: &str) -> Str<'_> {
        self.strings.get(self.ctx, text.as_bytes())
    }

    /// `key` opened for writing, once it is known to hold `kind` or nothing.
    fn writable(&self, key: &RedisString, kind: KeyType) -> Result<ffi::WritableKey> {
        let open = self.writable_any(key)?;
        match open.kind() {
            KeyType::Empty => Ok(open),
            found if found == kind => Ok(open),
            _ => Err(err_wrong_type()),
        }
    }

    fn writable_any(&self, key: &RedisString) -> Result<ffi::WritableKey> {
        ffi::WritableKey::open(self.ctx, key)
            .ok_or_else(|| err_redis("Redis could not open a key for writing"))
    }

    /// Holds the effects of key-API writes until the command ends (see
    /// `ffi::Replication`), for a command that makes many writes of the same
    /// kind to the same keys: reaping a node's sockets reranks their rooms
    /// once per socket, which then replicate as one `ZADD` per run of them.
    pub fn hold_effects(&mut self) {
        self.hold = true;
    }

    /// Replicates a key-API write: `command key args...`, at once, or held
    /// until the command ends so that the next write of the same kind to the
    /// same key joins it (see [`Self::hold_effects`]). Redis sends every
    /// effect of a command in order, in one `MULTI`/`EXEC`.
    fn replicate(&self, command: &'static CStr, args: &[&RedisString]) {
        if self.hold {
            self.replication.borrow_mut().add(self.ctx, command, args);
        } else {
            ffi::replicate(self.ctx, command, args);
        }
    }

    /// `SADD` or `SREM key member`: whether it changed the set. The module
    /// API has no set writes, so this is a command call, which Redis
    /// replicates itself when it changed the set.
    fn set_write(&self, command: &CStr, key: &str, member: &str) -> Result<bool> {
        let (key, member) = (self.string(key), self.string(member));
        Ok(self.call_write(command, 1, &[&key, &member])? == 1)
    }

    /// A write as a command call (`SADD`, `SREM`, `SMOVE`, and `HSET` or
    /// `HDEL` of one field), which Redis replicates itself, now: its integer
    /// reply. Effects held for the first key go out first, so that the
    /// replicas see the key's writes in order. A command call costs less
    /// than a write through the key API followed by `RedisModule_Replicate`,
    /// which looks the command up by name again and builds its own argv;
    /// not so for a sorted set, whose two writes in a move replicate as one
    /// `ZADD`.
    fn call_write(&self, command: &CStr, keys: usize, args: &[&RedisString]) -> Result<i64> {
        // A kept name is found again, not made anew: the same string.
        let names_open = self
            .open_zset
            .borrow()
            .as_ref()
            .is_some_and(|(name, _)| args[..keys].iter().any(|key| std::ptr::eq(*key, *name)));
        if names_open {
            self.open_zset.borrow_mut().take();
        }
        let held = self.replication.borrow();
        if args[..keys].iter().any(|key| held.holds(key)) {
            drop(held);
            self.replication.borrow_mut().flush(self.ctx);
        } else {
            drop(held);
        }
        ffi::call_set_write(self.ctx, command, args).map_err(|e| err_redis(&e))
    }

    /// `ZADD key [NX] score member [score member ...]`: the key opened
    /// once and one keyspace event, as Redis's own `ZADD` would; the entries
    /// that changed the set replicate two to a `ZADD` (see
    /// [`Self::replicate`]).
    fn zset_add<'m>(
        &self,
        key: &str,
        entries: impl IntoIterator<Item = (f64, &'m str)>,
        only_new: bool,
    ) -> Result<()> {
        let key = self.string(key);
        let kept = self
            .open_zset
            .borrow_mut()
            .take()
            .filter(|(name, _)| std::ptr::eq(*name, &*key));
        let open = match kept {
            Some((_, open)) => open,
            None => self.writable(&key, KeyType::ZSet)?,
        };
        let mut changed = false;
        // The entries that changed the set replicate two to a `ZADD` (a
        // move's two ranks as one effect), in order; an odd one last.
        let mut unpaired: Option<(RedisString, Str<'_>)> = None;
        for (score, member) in entries {
            let member = self.string(member);
            if open
                .zset_add(score, &member, only_new)
                .map_err(|()| err_wrong_type())?
            {
                changed = true;
                let score = self.score(score);
                match unpaired.take() {
                    Some((first, before)) => {
                        self.replicate(c"ZADD", &[&key, &first, &before, &score, &member]);
                    }
                    None => unpaired = Some((score, member)),
                }
            }
        }
        drop(open);
        if let Some((score, member)) = unpaired {
            self.replicate(c"ZADD", &[&key, &score, &member]);
        }
        if changed {
            ffi::notify(self.ctx, Notify::ZSet, c"zadd", &key);
        }
        Ok(())
    }

    /// A score as `ZADD` takes it: `+inf`, an integer, or a decimal.
    fn score(&self, score: f64) -> RedisString {
        if score == f64::INFINITY {
            ffi::redis_string(self.ctx, b"+inf")
        } else if score == score.trunc() && score.abs() < 9.0e15 {
            ffi::integer_string(self.ctx, score as i64)
        } else {
            ffi::redis_string(self.ctx, score.to_string().as_bytes())
        }
    }

    /// One `SCAN cursor MATCH pattern COUNT count` step: the next cursor (0
    /// when the scan is over) and the keys found.
    ///
    /// # Errors
    /// Only what Redis reports.
    pub fn scan(&self, cursor: u64, pattern: &str, count: u64) -> Result<(u64, Vec<String>)> {
        let (cursor, count) = (cursor.to_string(), count.to_string());
        let (next, keys) = self.read(
            "SCAN",
            &[&cursor, "MATCH", pattern, "COUNT", &count],
            scan_step,
        )?;
        Ok((parse_cursor(&next)?, keys))
    }

    /// One `SSCAN`/`HSCAN key cursor COUNT count` step, for a user allowed to
    /// read `key`: the next cursor and the flat reply.
    fn scan_key(
        &self,
        command: &str,
        key: &str,
        cursor: u64,
        count: u64,
    ) -> Result<(u64, Vec<String>)> {
        self.permit(key)?;
        let (cursor, count) = (cursor.to_string(), count.to_string());
        let (next, items) = self.read(command, &[key, &cursor, "COUNT", &count], scan_step)?;
        Ok((parse_cursor(&next)?, items))
    }

    /// The number of elements of `key`, which must be of type `kind` or missing.
    fn length(&self, key: &str, kind: KeyType) -> Result<u64> {
        match ffi::key_shape(self.ctx, &*self.readable(key)?) {
            (KeyType::Empty, _) => Ok(0),
            (found, length) if found == kind => Ok(length),
            _ => Err(err_wrong_type()),
        }
    }
}

fn unexpected(reply: &CallReply) -> crate::error::VioletError {
    err_redis(&format!("unexpected reply from Redis: {reply:?}"))
}

fn integer(reply: &CallReply) -> Result<i64> {
    match reply {
        CallReply::I64(n) => Ok(n.to_i64()),
        other => Err(unexpected(other)),
    }
}

fn text(reply: &CallReply) -> Result<String> {
    match reply {
        CallReply::String(s) => Ok(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        other => Err(unexpected(other)),
    }
}

fn optional_text(reply: &CallReply) -> Result<Option<String>> {
    match reply {
        CallReply::Null(_) => Ok(None),
        other => text(other).map(Some),
    }
}

fn texts(reply: &CallReply) -> Result<Vec<String>> {
    match reply {
        CallReply::Array(items) => items
            .iter()
            .map(|item| {
                item.map_err(|e| err_redis(&e.to_string()))
                    .and_then(|i| text(&i))
            })
            .collect(),
        other => Err(unexpected(other)),
    }
}

fn pairs(reply: &CallReply) -> Result<Vec<(String, String)>> {
    texts(reply).map(into_pairs)
}

fn into_pairs(flat: Vec<String>) -> Vec<(String, String)> {
    let mut it = flat.into_iter();
    let mut out = Vec::new();
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    out
}

fn score(value: &str) -> Result<f64> {
    value
        .parse()
        .map_err(|_| err_redis(&format!("unexpected score from Redis: {value:?}")))
}

impl Drop for RedisStore<'_> {
    /// Replicates the effects still held, before the command replies.
    fn drop(&mut self) {
        self.replication.get_mut().flush(self.ctx);
    }
}

impl Store for RedisStore<'_> {
    fn sadd(&mut self, key: &str, member: &str) -> Result<bool> {
        self.set_write(c"SADD", key, member)
    }

    fn srem(&mut self, key: &str, member: &str) -> Result<bool> {
        self.set_write(c"SREM", key, member)
    }

    fn smove(&mut self, source: &str, destination: &str, member: &str) -> Result<bool> {
        let (source, destination) = (self.string(source), self.string(destination));
        let member = self.string(member);
        Ok(self.call_write(c"SMOVE", 2, &[&source, &destination, &member])? == 1)
    }

    fn scard(&mut self, key: &str) -> Result<u64> {
        self.length(key, KeyType::Set)
    }

    fn sismember(&mut self, key: &str, member: &str) -> Result<bool> {
        self.permit(key)?;
        self.read("SISMEMBER", &[key, member], integer)
            .map(|n| n == 1)
    }

    fn smembers(&mut self, key: &str) -> Result<Vec<String>> {
        self.permit(key)?;
        self.read("SMEMBERS", &[key], texts)
    }

    fn sscan(&mut self, key: &str, cursor: u64, count: u64) -> Result<(u64, Vec<String>)> {
        self.scan_key("SSCAN", key, cursor, count)
    }

    fn hget(&mut self, key: &str, field: &str) -> Result<Option<String>> {
        let key = self.readable(key)?;
        let value =
            ffi::hash_get(self.ctx, &key, &self.string(field)).map_err(|()| err_wrong_type())?;
        Ok(value.map(|v| String::from_utf8_lossy(v.as_slice()).into_owned()))
    }

    fn hmget(&mut self, key: &str, fields: &[&str]) -> Result<Vec<Option<String>>> {
        let key = self.readable(key)?;
        let fields: Vec<Str<'_>> = fields.iter().map(|field| self.string(field)).collect();
        let values = ffi::hash_get_many(self.ctx, &key, &fields).map_err(|()| err_wrong_type())?;
        Ok(values
            .into_iter()
            .map(|value| value.map(|v| String::from_utf8_lossy(v.as_slice()).into_owned()))
            .collect())
    }

    fn hgetall(&mut self, key: &str) -> Result<Vec<(String, String)>> {
        let key = self.readable(key)?;
        ffi::hash_pairs(self.ctx, &key).map_err(|()| err_wrong_type())
    }

    fn hset(&mut self, key: &str, fields: &[(&str, &str)]) -> Result<()> {
        let mut args = Vec::with_capacity(1 + 2 * fields.len());
        args.push(self.string(key));
        for (field, value) in fields {
            args.push(self.string(field));
            args.push(self.string(value));
        }
        let args: Vec<&RedisString> = args.iter().map(|arg| &**arg).collect();
        self.call_write(c"HSET", 1, &args)?;
        Ok(())
    }

    fn hdel(&mut self, key: &str, field: &str) -> Result<()> {
        let (key, field) = (self.string(key), self.string(field));
        self.call_write(c"HDEL", 1, &[&key, &field])?;
        Ok(())
    }

    fn hlen(&mut self, key: &str) -> Result<u64> {
        self.length(key, KeyType::Hash)
    }

    fn hscan(
        &mut self,
        key: &str,
        cursor: u64,
        count: u64,
    ) -> Result<(u64, Vec<(String, String)>)> {
        let (next, flat) = self.scan_key("HSCAN", key, cursor, count)?;
        Ok((next, into_pairs(flat)))
    }

    fn zadd_new(&mut self, key: &str, score: f64, member: &str) -> Result<()> {
        self.zset_add(key, [(score, member)], true)
    }

    fn zrange_up_to(&mut self, key: &str, max: f64, count: u64) -> Result<Vec<(String, f64)>> {
        self.permit(key)?;
        // A negative count is Redis's "no limit".
        let count = i64::try_from(count).map_or_else(|_| "-1".to_owned(), |n| n.to_string());
        let max = max.to_string();
        self.read(
            "ZRANGEBYSCORE",
            &[key, "-inf", &max, "WITHSCORES", "LIMIT", "0", &count],
            pairs,
        )?
        .into_iter()
        .map(|(member, s)| Ok((member, score(&s)?)))
        .collect()
    }

    fn zadd(&mut self, key: &str, score: u64, member: &str) -> Result<()> {
        // Viewers are far below 2^53: the score is exact.
        self.zset_add(key, [(score as f64, member)], false)
    }

    fn zadd_all(&mut self, key: &str, entries: &[(u64, &str)]) -> Result<()> {
        let entries = entries
            .iter()
            .map(|&(score, member)| (score as f64, member));
        self.zset_add(key, entries, false)
    }

    fn zrem(&mut self, key: &str, member: &str) -> Result<()> {
        let (key, member) = (self.string(key), self.string(member));
        self.call_write(c"ZREM", 1, &[&key, &member])?;
        Ok(())
    }

    fn zscore(&mut self, key: &str, member: &str) -> Result<Option<f64>> {
        self.permit(key)?;
        self.read("ZSCORE", &[key, member], optional_text)?
            .map(|s| score(&s))
            .transpose()
    }

    fn zrevrange(&mut self, key: &str, start: u64, stop: u64) -> Result<Vec<(String, f64)>> {
        // Redis takes signed indexes; anything past i64::MAX is past the end anyway.
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX).to_string();
        let (start, stop) = (clamp(start), clamp(stop));
        self.permit(key)?;
        self.read("ZREVRANGE", &[key, &start, &stop, "WITHSCORES"], pairs)?
            .into_iter()
            .map(|(member, s)| Ok((member, score(&s)?)))
            .collect()
    }

    fn zcard(&mut self, key: &str) -> Result<u64> {
        self.length(key, KeyType::ZSet)
    }

    fn zcard_to_write(&mut self, key: &str) -> Result<u64> {
        let name = self.readable(key)?;
        let Str::Kept(kept) = name else {
            return self.zcard(key);
        };
        let open = self.writable(kept, KeyType::ZSet)?;
        let length = open.length();
        *self.open_zset.get_mut() = Some((std::ptr::from_ref(kept), open));
        Ok(length)
    }

    fn exists(&mut self, key: &str) -> Result<bool> {
        let (kind, _) = ffi::key_shape(self.ctx, &*self.readable(key)?);
        Ok(kind != KeyType::Empty)
    }

    fn del(&mut self, keys: &[&str]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let keys: Vec<Str<'_>> = keys.iter().map(|key| self.string(key)).collect();
        let keys: Vec<&RedisString> = keys.iter().map(|key| &**key).collect();
        self.call_write(c"DEL", keys.len(), &keys)?;
        Ok(())
    }

    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>> {
        let pattern = format!("{}*", escape_glob(prefix));
        let mut cursor = 0;
        let mut keys = Vec::new();
        loop {
            let (next, batch) = self.scan(cursor, &pattern, SCAN_BATCH)?;
            keys.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    fn publish(&mut self, channel: &str, message: &str) {
        let pubsub = *self.pubsub.get_or_insert_with(|| ffi::pubsub(self.ctx));
        ffi::publish(self.ctx, pubsub, &self.string(channel), message);
    }

    fn random_id(&mut self) -> String {
        ffi::random_hex::<16>()
    }

    fn now_ms(&mut self) -> u64 {
        ffi::milliseconds()
    }
}

fn parse_cursor(cursor: &str) -> Result<u64> {
    cursor
        .parse()
        .map_err(|_| err_redis(&format!("unexpected cursor from Redis: {cursor:?}")))
}

fn scan_step(reply: &CallReply) -> Result<(String, Vec<String>)> {
    let CallReply::Array(parts) = reply else {
        return Err(unexpected(reply));
    };
    let part = |i: usize| {
        parts
            .get(i)
            .ok_or_else(|| unexpected(reply))?
            .map_err(|e| err_redis(&e.to_string()))
    };
    Ok((text(&part(0)?)?, texts(&part(1)?)?))
}

/// Escapes the characters `SCAN MATCH` treats as a pattern.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
