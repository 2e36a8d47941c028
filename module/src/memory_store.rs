//! An in-memory [`Store`] with Redis's semantics, for unit tests and
//! benchmarks of the rules.

use crate::error::{err_redis, Result};
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Set(BTreeSet<String>),
    Hash(Vec<(String, String)>),
    SortedSet(BTreeMap<String, f64>),
}

/// Keys and values in memory, plus every message published.
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: BTreeMap<String, Value>,
    /// `(channel, message)` in publication order.
    pub published: Vec<(String, String)>,
    next_id: u64,
    /// The clock, in Unix milliseconds; tests move it.
    pub now_ms: u64,
}

fn wrong_type() -> crate::error::VioletError {
    err_redis("WRONGTYPE Operation against a key holding the wrong kind of value")
}

/// A `SSCAN`/`HSCAN` page of `items`, the cursor being a position: `count`
/// items from `cursor`, and the next cursor (0 after the last item).
fn page<T>(items: impl ExactSizeIterator<Item = T>, cursor: u64, count: u64) -> (u64, Vec<T>) {
    let len = items.len();
    let start = usize::try_from(cursor).unwrap_or(usize::MAX);
    let count = usize::try_from(count.max(1)).unwrap_or(usize::MAX);
    let page: Vec<T> = items.skip(start).take(count).collect();
    let end = start.saturating_add(page.len());
    let next = if end >= len { 0 } else { end as u64 };
    (next, page)
}

impl MemoryStore {
    /// Every key with its contents rendered as text, for whole-state comparisons.
    pub fn dump(&self) -> BTreeMap<String, String> {
        self.data
            .iter()
            .map(|(k, v)| (k.clone(), format!("{v:?}")))
            .collect()
    }

    fn set(&self, key: &str) -> Result<Option<&BTreeSet<String>>> {
        match self.data.get(key) {
            None => Ok(None),
            Some(Value::Set(s)) => Ok(Some(s)),
            Some(_) => Err(wrong_type()),
        }
    }

    fn hash(&self, key: &str) -> Result<Option<&Vec<(String, String)>>> {
        match self.data.get(key) {
            None => Ok(None),
            Some(Value::Hash(h)) => Ok(Some(h)),
            Some(_) => Err(wrong_type()),
        }
    }

    fn zset(&self, key: &str) -> Result<Option<&BTreeMap<String, f64>>> {
        match self.data.get(key) {
            None => Ok(None),
            Some(Value::SortedSet(z)) => Ok(Some(z)),
            Some(_) => Err(wrong_type()),
        }
    }

    fn entry(&mut self, key: &str, empty: Value) -> Result<&mut Value> {
        let value = self.data.entry(key.to_owned()).or_insert(empty.clone());
        if std::mem::discriminant(value) == std::mem::discriminant(&empty) {
            Ok(value)
        } else {
            Err(wrong_type())
        }
    }

    /// Redis deletes a set, hash or sorted set when its last element goes.
    fn drop_if_empty(&mut self, key: &str) {
        let empty = match self.data.get(key) {
            Some(Value::Set(s)) => s.is_empty(),
            Some(Value::Hash(h)) => h.is_empty(),
            Some(Value::SortedSet(z)) => z.is_empty(),
            None => false,
        };
        if empty {
            self.data.remove(key);
        }
    }
}

impl Store for MemoryStore {
    fn sadd(&mut self, key: &str, member: &str) -> Result<bool> {
        match self.entry(key, Value::Set(BTreeSet::new()))? {
            Value::Set(s) => Ok(s.insert(member.to_owned())),
            _ => unreachable!("entry checked the type"),
        }
    }

    fn srem(&mut self, key: &str, member: &str) -> Result<bool> {
        if self.set(key)?.is_none() {
            return Ok(false);
        }
        let removed = match self.data.get_mut(key) {
            Some(Value::Set(s)) => s.remove(member),
            _ => false,
        };
        self.drop_if_empty(key);
        Ok(removed)
    }

    fn smove(&mut self, source: &str, destination: &str, member: &str) -> Result<bool> {
        // Both types are checked before anything changes, as Redis does.
        let present = self.set(source)?.is_some_and(|s| s.contains(member));
        self.set(destination)?;
        if !present {
            return Ok(false);
        }
        self.srem(source, member)?;
        self.sadd(destination, member)?;
        Ok(true)
    }

    fn scard(&mut self, key: &str) -> Result<u64> {
        Ok(self.set(key)?.map_or(0, |s| s.len() as u64))
    }

    fn sismember(&mut self, key: &str, member: &str) -> Result<bool> {
        Ok(self.set(key)?.is_some_and(|s| s.contains(member)))
    }

    fn smembers(&mut self, key: &str) -> Result<Vec<String>> {
        Ok(self
            .set(key)?
            .map_or_else(Vec::new, |s| s.iter().cloned().collect()))
    }

    fn sscan(&mut self, key: &str, cursor: u64, count: u64) -> Result<(u64, Vec<String>)> {
        let Some(set) = self.set(key)? else {
            return Ok((0, Vec::new()));
        };
        Ok(page(set.iter().cloned(), cursor, count))
    }

    fn hget(&mut self, key: &str, field: &str) -> Result<Option<String>> {
        Ok(self
            .hash(key)?
            .and_then(|h| h.iter().find(|(f, _)| f == field).map(|(_, v)| v.clone())))
    }

    fn hmget(&mut self, key: &str, fields: &[&str]) -> Result<Vec<Option<String>>> {
        let hash = self.hash(key)?;
        Ok(fields
            .iter()
            .map(|field| {
                hash.and_then(|h| h.iter().find(|(f, _)| f == field).map(|(_, v)| v.clone()))
            })
            .collect())
    }

    fn hgetall(&mut self, key: &str) -> Result<Vec<(String, String)>> {
        Ok(self.hash(key)?.cloned().unwrap_or_default())
    }

    fn hset(&mut self, key: &str, fields: &[(&str, &str)]) -> Result<()> {
        let Value::Hash(h) = self.entry(key, Value::Hash(Vec::new()))? else {
            unreachable!("entry checked the type");
        };
        for (field, value) in fields {
            match h.iter_mut().find(|(f, _)| f == field) {
                Some((_, v)) => *v = (*value).to_owned(),
                None => h.push(((*field).to_owned(), (*value).to_owned())),
            }
        }
        Ok(())
    }

    fn hdel(&mut self, key: &str, field: &str) -> Result<()> {
        if self.hash(key)?.is_none() {
            return Ok(());
        }
        if let Some(Value::Hash(h)) = self.data.get_mut(key) {
            h.retain(|(f, _)| f != field);
        }
        self.drop_if_empty(key);
        Ok(())
    }

    fn hlen(&mut self, key: &str) -> Result<u64> {
        Ok(self.hash(key)?.map_or(0, |h| h.len() as u64))
    }

    fn hscan(
        &mut self,
        key: &str,
        cursor: u64,
        count: u64,
    ) -> Result<(u64, Vec<(String, String)>)> {
        let Some(h) = self.hash(key)? else {
            return Ok((0, Vec::new()));
        };
        // Like Redis, COUNT is only a hint: a hash of up to 8 fields comes
        // back whole, as a small (listpack) hash does.
        let count = if h.len() <= 8 { h.len() as u64 } else { count };
        Ok(page(h.iter().cloned(), cursor, count))
    }

    fn zadd_new(&mut self, key: &str, score: f64, member: &str) -> Result<()> {
        let Value::SortedSet(z) = self.entry(key, Value::SortedSet(BTreeMap::new()))? else {
            unreachable!("entry checked the type");
        };
        z.entry(member.to_owned()).or_insert(score);
        Ok(())
    }

    fn zrange_up_to(&mut self, key: &str, max: f64, count: u64) -> Result<Vec<(String, f64)>> {
        let Some(z) = self.zset(key)? else {
            return Ok(Vec::new());
        };
        let mut ranked: Vec<(String, f64)> = z
            .iter()
            .filter(|(_, s)| **s <= max)
            .map(|(m, s)| (m.clone(), *s))
            .collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(usize::try_from(count).unwrap_or(usize::MAX));
        Ok(ranked)
    }

    fn zadd(&mut self, key: &str, score: u64, member: &str) -> Result<()> {
        let Value::SortedSet(z) = self.entry(key, Value::SortedSet(BTreeMap::new()))? else {
            unreachable!("entry checked the type");
        };
        z.insert(member.to_owned(), score as f64);
        Ok(())
    }

    fn zrem(&mut self, key: &str, member: &str) -> Result<()> {
        if self.zset(key)?.is_none() {
            return Ok(());
        }
        if let Some(Value::SortedSet(z)) = self.data.get_mut(key) {
            z.remove(member);
        }
        self.drop_if_empty(key);
        Ok(())
    }

    fn zscore(&mut self, key: &str, member: &str) -> Result<Option<f64>> {
        Ok(self.zset(key)?.and_then(|z| z.get(member).copied()))
    }

    fn zrevrange(&mut self, key: &str, start: u64, stop: u64) -> Result<Vec<(String, f64)>> {
        let Some(z) = self.zset(key)? else {
            return Ok(Vec::new());
        };
        let mut ranked: Vec<(String, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        let take = stop.saturating_sub(start).saturating_add(1);
        Ok(ranked
            .into_iter()
            .skip(usize::try_from(start).unwrap_or(usize::MAX))
            .take(usize::try_from(take).unwrap_or(usize::MAX))
            .collect())
    }

    fn zcard(&mut self, key: &str) -> Result<u64> {
        Ok(self.zset(key)?.map_or(0, |z| z.len() as u64))
    }

    fn exists(&mut self, key: &str) -> Result<bool> {
        Ok(self.data.contains_key(key))
    }

    fn del(&mut self, keys: &[&str]) -> Result<()> {
        for key in keys {
            self.data.remove(*key);
        }
        Ok(())
    }

    fn keys_with_prefix(&mut self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .data
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn publish(&mut self, channel: &str, message: &str) {
        self.published
            .push((channel.to_owned(), message.to_owned()));
    }

    fn random_id(&mut self) -> String {
        self.next_id += 1;
        format!("r{:04}", self.next_id)
    }

    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
}
