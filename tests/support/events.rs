//! A subscriber to a namespace's events channel: classic (`SUBSCRIBE`), as
//! on a server without cluster mode, or sharded (`SSUBSCRIBE`), as on a
//! cluster, where the module publishes events with sharded pub/sub.

use crate::RedisServer;
use serde_json::Value;
use std::time::Duration;

/// How long [`Events`] waits for a message before failing the test.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON events of one namespace, in the order Redis published them.
pub struct Events {
    con: redis::Connection,
    channel: String,
    /// Subscribed with `SSUBSCRIBE` ([`Events::ssubscribe`]).
    sharded: bool,
}

impl Events {
    /// Subscribes to `violet:{NAMESPACE}:events`; returns once subscribed.
    pub fn subscribe(server: &RedisServer, namespace: &str) -> Self {
        Self::open(server, namespace, false)
    }

    /// Subscribes to `violet:{NAMESPACE}:events` with sharded pub/sub
    /// (`SSUBSCRIBE`), which `server` must own the slot of (or replicate its
    /// owner): elsewhere it answers `MOVED` and this panics. Returns once
    /// subscribed.
    pub fn ssubscribe(server: &RedisServer, namespace: &str) -> Self {
        Self::open(server, namespace, true)
    }

    fn open(server: &RedisServer, namespace: &str, sharded: bool) -> Self {
        let command = if sharded { "SSUBSCRIBE" } else { "SUBSCRIBE" };
        let mut con = server.connection();
        let channel = format!("violet:{{{namespace}}}:events");
        con.send_packed_command(&redis::cmd(command).arg(&channel).get_packed_command())
            .unwrap_or_else(|e| panic!("send {command}: {e}"));
        con.recv_response()
            .unwrap_or_else(|e| panic!("{command} not confirmed: {e}"));
        con.set_read_timeout(Some(EVENT_TIMEOUT))
            .expect("read timeout");
        Self {
            con,
            channel,
            sharded,
        }
    }

    /// The next event.
    pub fn next_event(&mut self) -> Value {
        let reply = self
            .con
            .recv_response()
            .expect("an event within the timeout");
        self.event(reply)
    }

    /// The next event if one comes within `wait`, else `None`: for showing
    /// that nothing arrives.
    pub fn next_event_within(&mut self, wait: Duration) -> Option<Value> {
        self.con.set_read_timeout(Some(wait)).expect("read timeout");
        let reply = self.con.recv_response();
        self.con
            .set_read_timeout(Some(EVENT_TIMEOUT))
            .expect("read timeout");
        match reply {
            Err(e) if e.is_timeout() => None,
            Err(e) => panic!("reading the subscription: {e}"),
            Ok(reply) => Some(self.event(reply)),
        }
    }

    /// The event in a message of this subscription.
    fn event(&self, reply: redis::Value) -> Value {
        let payload: String = if self.sharded {
            // `redis::Msg` does not read an `["smessage", channel, payload]`
            // reply on a RESP2 connection (these all are).
            let (kind, _channel, payload): (String, String, String) =
                redis::from_redis_value(reply).expect("a sharded pub/sub message");
            assert_eq!(kind, "smessage", "a sharded pub/sub message");
            payload
        } else {
            let message = redis::Msg::from_owned_value(reply).expect("a pub/sub message");
            message.get_payload().expect("a text payload")
        };
        serde_json::from_str(&payload).expect("events are JSON")
    }

    /// Every event published so far: publishes a marker through `con` and
    /// returns what came before it. Empty when nothing was published. A
    /// sharded subscriber's marker goes with `SPUBLISH`, so `con` must reach
    /// the node that owns the channel's slot.
    pub fn drain(&mut self, con: &mut redis::Connection) -> Vec<Value> {
        let marker = serde_json::json!({ "event": "test-marker" });
        let publish = if self.sharded { "SPUBLISH" } else { "PUBLISH" };
        let _: i64 = redis::cmd(publish)
            .arg(&self.channel)
            .arg(marker.to_string())
            .query(con)
            .expect("PUBLISH");
        let mut events = Vec::new();
        loop {
            let event = self.next_event();
            if event == marker {
                return events;
            }
            events.push(event);
        }
    }
}
