//! Counters for `GET /metrics`, in the Prometheus text format.
//!
//! Plain atomics: a handful of counters and one latency histogram do not
//! need a metrics framework.

use crate::protocol::ErrorCode;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the Redis latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The shim's counters. Shared by every task; every method is lock-free.
#[derive(Debug, Default)]
pub struct Metrics {
    connections_open: AtomicI64,
    connections_total: AtomicU64,
    connections_refused: AtomicU64,
    connections_pending: AtomicI64,
    accept_errors: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    errors: [AtomicU64; ErrorCode::ALL.len()],
    slow_clients: AtomicU64,
    events_in: AtomicU64,
    redis_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    redis_count: AtomicU64,
    redis_sum_micros: AtomicU64,
    redis_reads_retried: AtomicU64,
    writes_unconfirmed: AtomicU64,
}

impl Metrics {
    /// A WebSocket connection opened.
    pub fn connection_opened(&self) {
        self.connections_open.fetch_add(1, Relaxed);
        self.connections_total.fetch_add(1, Relaxed);
    }

    /// A WebSocket connection closed.
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Relaxed);
    }

    /// An upgrade was refused (origin, connection limit).
    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Relaxed);
    }

    /// A TCP connection was accepted; it is pending until it upgrades or ends.
    pub fn pending_opened(&self) {
        self.connections_pending.fetch_add(1, Relaxed);
    }

    /// A pending TCP connection upgraded or ended.
    pub fn pending_closed(&self) {
        self.connections_pending.fetch_sub(1, Relaxed);
    }

    /// Accepting a TCP connection failed (out of file descriptors, say).
    pub fn accept_error(&self) {
        self.accept_errors.fetch_add(1, Relaxed);
    }

    /// A frame came in from a client.
    pub fn message_in(&self) {
        self.messages_in.fetch_add(1, Relaxed);
    }

    /// A frame went out to a client.
    pub fn message_out(&self) {
        self.messages_out.fetch_add(1, Relaxed);
    }

    /// `count` frames went out.
    pub fn messages_out(&self, count: usize) {
        self.messages_out
            .fetch_add(u64::try_from(count).unwrap_or(u64::MAX), Relaxed);
    }

    /// An error frame went out.
    pub fn error(&self, code: ErrorCode) {
        self.errors[code.index()].fetch_add(1, Relaxed);
    }

    /// A client was dropped for not keeping up with its pushes.
    pub fn slow_client(&self) {
        self.slow_clients.fetch_add(1, Relaxed);
    }

    /// An event arrived on the namespace's channel.
    pub fn event_in(&self) {
        self.events_in.fetch_add(1, Relaxed);
    }

    /// A Redis command took `elapsed`, answered or not.
    pub fn redis_call(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in self.redis_buckets.iter().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.redis_count.fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.redis_sum_micros.fetch_add(micros, Relaxed);
    }

    /// A read was sent again after its Redis connection broke.
    pub fn redis_read_retried(&self) {
        self.redis_reads_retried.fetch_add(1, Relaxed);
    }

    /// A change was made but fewer replicas than `--wait-replicas`
    /// confirmed it in time.
    pub fn write_unconfirmed(&self) {
        self.writes_unconfirmed.fetch_add(1, Relaxed);
    }

    /// The open connections.
    pub fn open_connections(&self) -> i64 {
        self.connections_open.load(Relaxed)
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "violet_connections_open",
            "gauge",
            "WebSocket connections open now.",
            self.connections_open.load(Relaxed).to_string(),
        );
        metric(
            "violet_connections_total",
            "counter",
            "WebSocket connections accepted.",
            self.connections_total.load(Relaxed).to_string(),
        );
        metric(
            "violet_connections_refused_total",
            "counter",
            "WebSocket upgrades refused (origin, connection limit).",
            self.connections_refused.load(Relaxed).to_string(),
        );
        metric(
            "violet_connections_pending",
            "gauge",
            "TCP connections accepted and not yet upgraded to WebSockets.",
            self.connections_pending.load(Relaxed).to_string(),
        );
        metric(
            "violet_accept_errors_total",
            "counter",
            "Failed accepts (such as running out of file descriptors).",
            self.accept_errors.load(Relaxed).to_string(),
        );
        metric(
            "violet_messages_in_total",
            "counter",
            "Frames received from clients.",
            self.messages_in.load(Relaxed).to_string(),
        );
        metric(
            "violet_messages_out_total",
            "counter",
            "Frames sent to clients.",
            self.messages_out.load(Relaxed).to_string(),
        );
        metric(
            "violet_slow_clients_total",
            "counter",
            "Clients dropped for not keeping up with their pushes.",
            self.slow_clients.load(Relaxed).to_string(),
        );
        metric(
            "violet_events_total",
            "counter",
            "Events received on the namespaces' channels.",
            self.events_in.load(Relaxed).to_string(),
        );
        metric(
            "violet_redis_reads_retried_total",
            "counter",
            "Reads sent to Redis again because their connection broke under them.",
            self.redis_reads_retried.load(Relaxed).to_string(),
        );
        metric(
            "violet_writes_unconfirmed_total",
            "counter",
            "Changes made that fewer replicas than --wait-replicas confirmed in time.",
            self.writes_unconfirmed.load(Relaxed).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP violet_errors_total Error frames sent, by code.\n# TYPE violet_errors_total counter"
        );
        for code in ErrorCode::ALL {
            let _ = writeln!(
                out,
                "violet_errors_total{{code=\"{}\"}} {}",
                code.as_str(),
                self.errors[code.index()].load(Relaxed)
            );
        }
        let name = "violet_redis_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Round-trip time of Redis commands.\n# TYPE {name} histogram"
        );
        for (bucket, bound) in self.redis_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.redis_count.load(Relaxed);
        let sum = self.redis_sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.connection_opened();
        m.error(ErrorCode::Full);
        m.redis_call(Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("violet_connections_open 1\n"));
        assert!(text.contains("violet_errors_total{code=\"FULL\"} 1\n"));
        assert!(text.contains("violet_redis_latency_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("violet_redis_latency_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("violet_redis_latency_seconds_count 1\n"));
    }
}
