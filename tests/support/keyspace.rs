//! Whole-keyspace snapshots, to compare two servers or a server with a model.

use std::collections::{BTreeMap, BTreeSet};

/// The contents of one key, in a form that compares equal whatever order
/// Redis returns elements in.
#[derive(Debug, Clone, PartialEq)]
pub enum Contents {
    Set(BTreeSet<String>),
    Hash(BTreeMap<String, String>),
    SortedSet(BTreeMap<String, f64>),
    Other(String),
}

/// Every key matching `pattern` with its contents, read in three round trips.
pub fn snapshot(con: &mut redis::Connection, pattern: &str) -> BTreeMap<String, Contents> {
    let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query(con).expect("KEYS");
    if keys.is_empty() {
        return BTreeMap::new();
    }
    let mut types = redis::pipe();
    for key in &keys {
        types.cmd("TYPE").arg(key);
    }
    let types: Vec<String> = types.query(con).expect("TYPE");
    let mut reads = redis::pipe();
    for (key, kind) in keys.iter().zip(&types) {
        match kind.as_str() {
            "set" => reads.cmd("SMEMBERS").arg(key),
            "hash" => reads.cmd("HGETALL").arg(key),
            "zset" => reads
                .cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES"),
            _ => reads.cmd("TYPE").arg(key),
        };
    }
    let values: Vec<redis::Value> = reads.query(con).expect("read keys");
    keys.into_iter()
        .zip(types)
        .zip(values)
        .map(|((key, kind), value)| {
            let contents = match kind.as_str() {
                "set" => Contents::Set(redis::from_redis_value(value).expect("set")),
                "hash" => Contents::Hash(redis::from_redis_value(value).expect("hash")),
                "zset" => {
                    let pairs: Vec<(String, f64)> = redis::from_redis_value(value).expect("zset");
                    Contents::SortedSet(pairs.into_iter().collect())
                }
                other => Contents::Other(other.to_owned()),
            };
            (key, contents)
        })
        .collect()
}
