//! The per-connection rate limit: a token bucket, plus strikes for clients
//! that keep pushing past it. A frame costs one token, and a large reply
//! costs more ([`REPLY_BYTES_PER_TOKEN`]): a client that asks the largest
//! reads gets fewer of them, so that what it costs the shim stays bounded in
//! bytes per second, not only in frames.

use crate::config::RateLimit;
use std::time::Instant;

/// Each this many bytes of a reply cost the client one more token.
pub const REPLY_BYTES_PER_TOKEN: usize = 16 * 1024;

/// What the limiter says about one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Handle the frame.
    Allow,
    /// Answer `RATE_LIMITED`.
    Limit,
    /// The client keeps flooding: close the connection.
    Close,
}

/// A token bucket for one connection.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    strikes: u32,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: f64::from(limit.burst),
            strikes: 0,
            last: now,
        }
    }

    /// Takes a token for a frame that arrived at `now`. Each refused frame is a
    /// strike and each accepted one takes a strike away; a client with more
    /// strikes than allowed is to be closed.
    pub fn take(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let burst = f64::from(self.limit.burst.max(1));
        self.tokens = (self.tokens + elapsed * self.limit.per_sec.max(0.0)).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = self.strikes.saturating_sub(1);
            Verdict::Allow
        } else {
            self.strikes = self.strikes.saturating_add(1);
            if self.strikes > self.limit.strikes {
                Verdict::Close
            } else {
                Verdict::Limit
            }
        }
    }

    /// Charges a reply of `bytes` bytes: one token per
    /// [`REPLY_BYTES_PER_TOKEN`]. The bucket may go below zero: the client
    /// then waits that much longer before its next frame is taken.
    pub fn charge_reply(&mut self, bytes: usize) {
        let cost = (bytes / REPLY_BYTES_PER_TOKEN) as f64;
        let burst = f64::from(self.limit.burst.max(1));
        self.tokens = (self.tokens - cost).max(-burst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_limits_then_closes() {
        let limit = RateLimit {
            per_sec: 10.0,
            burst: 3,
            strikes: 2,
        };
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit, start);
        let verdicts: Vec<Verdict> = (0..6).map(|_| bucket.take(start)).collect();
        use Verdict::*;
        assert_eq!(verdicts, [Allow, Allow, Allow, Limit, Limit, Close]);
        let mut bucket = TokenBucket::new(limit, start);
        for _ in 0..3 {
            bucket.take(start);
        }
        assert_eq!(bucket.take(start + Duration::from_millis(100)), Allow);
    }

    #[test]
    fn large_replies_cost_more_tokens() {
        let limit = RateLimit {
            per_sec: 10.0,
            burst: 4,
            strikes: 100,
        };
        let start = Instant::now();
        let mut bucket = TokenBucket::new(limit, start);
        assert_eq!(bucket.take(start), Verdict::Allow);
        bucket.charge_reply(100);
        assert_eq!(bucket.take(start), Verdict::Allow, "a small reply is free");
        bucket.charge_reply(REPLY_BYTES_PER_TOKEN * 16);
        assert_eq!(
            bucket.take(start),
            Verdict::Limit,
            "a 1 MiB reply took the rest"
        );
        // Paid back at 10 tokens a second: the debt (4 tokens) plus one.
        assert_eq!(
            bucket.take(start + Duration::from_millis(300)),
            Verdict::Limit
        );
        assert_eq!(
            bucket.take(start + Duration::from_millis(600)),
            Verdict::Allow
        );
    }
}
