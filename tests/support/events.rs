//! A subscriber to a namespace's events channel.

use crate::RedisServer;
use serde_json::Value;
use std::time::Duration;

/// How long [`Events`] waits for a message before failing the test.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The JSON events of one namespace, in the order Redis published them.
pub struct Events {
    con: redis::Connection,
    channel: String,
}

impl Events {
    /// Subscribes to `violet:{NAMESPACE}:events`; returns once subscribed.
    pub fn subscribe(server: &RedisServer, namespace: &str) -> Self {
        let mut con = server.connection();
        let channel = format!("violet:{{{namespace}}}:events");
        con.send_packed_command(&redis::cmd("SUBSCRIBE").arg(&channel).get_packed_command())
            .expect("send SUBSCRIBE");
        con.recv_response().expect("SUBSCRIBE confirmed");
        con.set_read_timeout(Some(EVENT_TIMEOUT))
            .expect("read timeout");
        Self { con, channel }
    }

    /// The next event.
    pub fn next_event(&mut self) -> Value {
        let reply = self
            .con
            .recv_response()
            .expect("an event within the timeout");
        let message = redis::Msg::from_owned_value(reply).expect("a pub/sub message");
        let payload: String = message.get_payload().expect("a text payload");
        serde_json::from_str(&payload).expect("events are JSON")
    }

    /// Every event published so far: publishes a marker through `con` and
    /// returns what came before it. Empty when nothing was published.
    pub fn drain(&mut self, con: &mut redis::Connection) -> Vec<Value> {
        let marker = serde_json::json!({ "event": "test-marker" });
        let _: i64 = redis::cmd("PUBLISH")
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
