//! Eviction: Violet's keys carry no TTL, so `noeviction` and the
//! `volatile-*` policies never evict them, while an `allkeys-*` policy may
//! take one key of a room and leave the others (the commands cope, but the
//! namespace is no longer whole). The module says so in the Redis log when it
//! loads and whenever it sees the policy change to an unsafe one.

use redis_module::{CallOptionsBuilder, CallReply, CallResult, Context};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the reaper's timer looks at the policy again.
pub const RECHECK: Duration = Duration::from_secs(10);

/// The policy last seen, and when.
static SEEN: Mutex<Option<(String, Instant)>> = Mutex::new(None);

/// Whether `policy` may evict a key that has no TTL.
pub fn is_unsafe(policy: &str) -> bool {
    policy.starts_with("allkeys-")
}

/// Reads `maxmemory-policy` and logs a warning when it is unsafe and was not
/// already warned about; at most once per [`RECHECK`] unless `now` is forced.
pub fn check(ctx: &Context, force: bool) {
    let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
    if !force && seen.as_ref().is_some_and(|(_, at)| at.elapsed() < RECHECK) {
        return;
    }
    let Some(policy) = policy(ctx) else {
        return;
    };
    let changed = seen.as_ref().is_none_or(|(last, _)| *last != policy);
    if changed && is_unsafe(&policy) {
        ctx.log_warning(&format!(
            "Violet: maxmemory-policy {policy} may evict one key of a room and keep the \
             others; use noeviction or a volatile-* policy (Violet's keys carry no TTL)"
        ));
    }
    *seen = Some((policy, Instant::now()));
}

fn policy(ctx: &Context) -> Option<String> {
    let options = CallOptionsBuilder::new().errors_as_replies().build();
    let reply: CallResult<'static> = ctx.call_ext("CONFIG", &options, &["GET", "maxmemory-policy"]);
    let Ok(CallReply::Array(items)) = reply else {
        return None;
    };
    let value = match items.get(1)? {
        Ok(CallReply::String(value)) => value.to_string(),
        _ => None,
    };
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allkeys_policies_are_unsafe() {
        for policy in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            assert!(is_unsafe(policy));
        }
        for policy in [
            "noeviction",
            "volatile-lru",
            "volatile-ttl",
            "volatile-random",
        ] {
            assert!(!is_unsafe(policy));
        }
    }
}
