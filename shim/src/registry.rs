//! The registry of this shim's connections: where each one's pushes go, which
//! room it is in and whether it watches the top rooms.
//!
//! That is the only room state the shim keeps. It learns it from command
//! replies and from the namespace's events (see [`crate::tasks::events`]), and
//! the module stays the one source of truth. [`Hub::apply`] turns an event
//! into pushes to the local members of the room concerned.

use crate::metrics::Metrics;
use crate::outbox::{Outbox, Refused};
use crate::protocol::Frame;
use axum::extract::ws::Utf8Bytes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;
use tracing::warn;
use violet_contract::events::{Event, Reason};

struct Local {
    pushes: Outbox,
    room: Option<String>,
    /// Bumped at every change of `room`, so that a reconciliation that read
    /// Redis before a change does not undo it.
    version: u64,
    watch_top: Option<u64>,
}

/// What this shim believes of one of its sockets, for [`Hub::correct`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Belief {
    pub socket: String,
    pub room: Option<String>,
    version: u64,
}

#[derive(Default)]
struct State {
    sockets: HashMap<String, Local>,
    rooms: HashMap<String, BTreeSet<String>>,
}

impl State {
    fn set_room(&mut self, socket: &str, room: Option<&str>) {
        let Some(local) = self.sockets.get_mut(socket) else {
            return;
        };
        if local.room.as_deref() == room {
            return;
        }
        local.version += 1;
        if let Some(old) = local.room.take() {
            if let Some(members) = self.rooms.get_mut(&old) {
                members.remove(socket);
                if members.is_empty() {
                    self.rooms.remove(&old);
                }
            }
        }
        if let Some(room) = room {
            local.room = Some(room.to_owned());
            self.rooms
                .entry(room.to_owned())
                .or_default()
                .insert(socket.to_owned());
        }
    }

    fn remove(&mut self, socket: &str) {
        self.set_room(socket, None);
        self.sockets.remove(socket);
    }

    fn members(&self, room: &str) -> Vec<String> {
        self.rooms
            .get(room)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// This shim's connections: where their pushes go and which room each is in.
pub struct Hub {
    state: Mutex<State>,
    /// Woken when an event may have changed the top rooms.
    pub(crate) top_changed: Notify,
    metrics: Arc<Metrics>,
}

impl Hub {
    /// An empty hub.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            top_changed: Notify::new(),
            metrics,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; if one did, the state is
        // still a valid map.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a connection; its pushes go to `pushes`.
    pub fn register(&self, socket: &str, pushes: Outbox) {
        self.state().sockets.insert(
            socket.to_owned(),
            Local {
                pushes,
                room: None,
                version: 0,
                watch_top: None,
            },
        );
    }

    /// Removes a connection.
    pub fn unregister(&self, socket: &str) {
        self.state().remove(socket);
    }

    /// Records the room a reply says `socket` is in now.
    pub fn set_room(&self, socket: &str, room: Option<&str>) {
        self.state().set_room(socket, room);
    }

    /// The room `socket` is in, as far as this shim knows.
    pub fn room_of(&self, socket: &str) -> Option<String> {
        self.state()
            .sockets
            .get(socket)
            .and_then(|l| l.room.clone())
    }

    /// What this shim believes of each of its sockets now.
    pub fn beliefs(&self) -> Vec<Belief> {
        self.state()
            .sockets
            .iter()
            .map(|(socket, local)| Belief {
                socket: socket.clone(),
                room: local.room.clone(),
                version: local.version,
            })
            .collect()
    }

    /// Forgets a membership that Redis no longer holds, unless the socket's
    /// room changed since `belief` was taken; tells the client with a
    /// `member-left` about itself (reason `lost`, `viewers` as Redis counts
    /// the room now). Whether it did.
    pub fn forget(&self, belief: &Belief, viewers: u64) -> bool {
        let mut state = self.state();
        let current = state.sockets.get(&belief.socket).map(|l| l.version);
        let Some(room) = belief.room.as_deref() else {
            return false;
        };
        if current != Some(belief.version) {
            return false;
        }
        state.set_room(&belief.socket, None);
        let frame = Frame::MemberLeft {
            room_id: room.to_owned(),
            socket_id: belief.socket.clone(),
            viewers,
            reason: Reason::Lost,
        };
        let text = Utf8Bytes::from(frame.to_text(None));
        self.push(&mut state, std::slice::from_ref(&belief.socket), &text);
        self.top_changed.notify_one();
        true
    }

    /// Starts (`Some(count)`) or stops (`None`) `top` pushes to `socket`.
    /// A `top` push not yet sent for another count is forgotten.
    pub fn watch_top(&self, socket: &str, count: Option<u64>) {
        if let Some(local) = self.state().sockets.get_mut(socket) {
            if local.watch_top != count {
                local.pushes.set_top(None);
            }
            local.watch_top = count;
        }
    }

    /// The watchers of the top rooms, grouped by the count they asked for.
    pub(crate) fn top_watchers(&self) -> BTreeMap<u64, Vec<String>> {
        let mut groups: BTreeMap<u64, Vec<String>> = BTreeMap::new();
        for (socket, local) in &self.state().sockets {
            if let Some(count) = local.watch_top {
                groups.entry(count).or_default().push(socket.clone());
            }
        }
        groups
    }

    /// Pushes a `top` frame of `count` rooms to those of `sockets` that still
    /// watch `count` rooms. It replaces a `top` push they have not been sent
    /// yet, so a watcher never has more than one waiting.
    pub(crate) fn push_top(&self, count: u64, sockets: &[String], text: &Utf8Bytes) {
        let state = self.state();
        for socket in sockets {
            if let Some(local) = state.sockets.get(socket) {
                if local.watch_top == Some(count) {
                    local.pushes.set_top(Some(text.clone()));
                }
            }
        }
    }

    /// Applies one event as the module published it (JSON); an unreadable
    /// one is logged and skipped.
    pub fn apply_published(&self, payload: &str) {
        match serde_json::from_str::<Event>(payload) {
            Ok(event) => self.apply(event),
            Err(error) => warn!(%error, payload, "unreadable event"),
        }
    }

    /// Applies one event: updates where this shim's sockets are and pushes
    /// the change to the local members of the room.
    pub fn apply(&self, event: Event) {
        self.metrics.event_in();
        let mut state = self.state();
        match event {
            Event::Created {
                room,
                socket,
                viewers,
                ..
            }
            | Event::Joined {
                room,
                socket,
                viewers,
            } => {
                state.set_room(&socket, Some(&room));
                let frame = Frame::MemberJoined {
                    room_id: room.clone(),
                    socket_id: socket,
                    viewers,
                };
                self.push_room(&mut state, &room, &frame);
                self.top_changed.notify_one();
            }
            Event::Left {
                room,
                socket,
                viewers,
                reason,
            } => {
                let frame = Frame::MemberLeft {
                    room_id: room.clone(),
                    socket_id: socket.clone(),
                    viewers,
                    reason,
                };
                // The socket that left hears of it too, whether or not the
                // reply that moved it has already been recorded.
                let mut recipients = state.members(&room);
                if state.sockets.contains_key(&socket) && !recipients.contains(&socket) {
                    recipients.push(socket.clone());
                }
                let text = Utf8Bytes::from(frame.to_text(None));
                self.push(&mut state, &recipients, &text);
                let here = state.sockets.get(&socket).and_then(|l| l.room.as_deref())
                    == Some(room.as_str());
                if here {
                    state.set_room(&socket, None);
                }
                self.top_changed.notify_one();
            }
            Event::Destroyed { room } => {
                let frame = Frame::RoomDestroyed {
                    room_id: room.clone(),
                };
                self.push_room(&mut state, &room, &frame);
                for socket in state.members(&room) {
                    state.set_room(&socket, None);
                }
                self.top_changed.notify_one();
            }
            Event::Updated { room, fields } => {
                let frame = Frame::RoomUpdated {
                    room_id: room.clone(),
                    details: fields,
                };
                self.push_room(&mut state, &room, &frame);
                self.top_changed.notify_one();
            }
            Event::Message { room, socket, data } => {
                let data = serde_json::from_str(&data).unwrap_or(serde_json::Value::String(data));
                let frame = Frame::Message {
                    room_id: room.clone(),
                    socket_id: socket,
                    data,
                };
                self.push_room(&mut state, &room, &frame);
            }
            Event::Other => {}
        }
    }

    fn push_room(&self, state: &mut State, room: &str, frame: &Frame) {
        let members = state.members(room);
        if members.is_empty() {
            return;
        }
        let text = Utf8Bytes::from(frame.to_text(None));
        self.push(state, &members, &text);
    }

    /// Queues `text` for each of `sockets`. A client whose queue is full
    /// (in frames or in bytes) is too slow: it is dropped from the hub, and
    /// its connection closes.
    fn push(&self, state: &mut State, sockets: &[String], text: &Utf8Bytes) {
        for socket in sockets {
            let Some(local) = state.sockets.get(socket) else {
                continue;
            };
            if let Err(Refused::TooSlow) = local.pushes.push(text) {
                warn!(socket = %socket, "client too slow for its pushes; closing it");
                state.remove(socket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::{outbox, Next};

    fn hub() -> Hub {
        Hub::new(Arc::new(Metrics::default()))
    }

    #[tokio::test]
    async fn events_move_local_sockets() {
        let hub = hub();
        let (tx, mut rx) = outbox(8, 1 << 20);
        hub.register("a:1", tx);
        let joined: Event =
            serde_json::from_str(r#"{"event":"joined","room":"r","socket":"a:1","viewers":2}"#)
                .unwrap();
        hub.apply(joined);
        assert_eq!(hub.room_of("a:1").as_deref(), Some("r"));
        let Some(Next::Push(push)) = rx.next().await else {
            panic!("a push");
        };
        assert!(push.text.contains(r#""kind":"member-joined""#));
        hub.apply(Event::Left {
            room: "other".into(),
            socket: "a:1".into(),
            viewers: 0,
            reason: Reason::Left,
        });
        assert_eq!(
            hub.room_of("a:1").as_deref(),
            Some("r"),
            "a stale left is ignored"
        );
        hub.apply(Event::Left {
            room: "r".into(),
            socket: "a:1".into(),
            viewers: 1,
            reason: Reason::Expired,
        });
        assert_eq!(hub.room_of("a:1"), None);
        // The stale left and the real one both reach the socket itself.
        let mut last = String::new();
        for _ in 0..2 {
            let Some(Next::Push(push)) = rx.next().await else {
                panic!("a member-left push");
            };
            last = push.text.to_string();
        }
        assert!(last.contains(r#""reason":"expired""#), "{last}");
        let unknown: Event = serde_json::from_str(r#"{"event":"reaped","room":"r"}"#).unwrap();
        assert_eq!(unknown, Event::Other);
    }

    #[tokio::test]
    async fn forgetting_a_lost_room_tells_the_client_unless_it_moved_since() {
        let hub = hub();
        let (tx, mut rx) = outbox(8, 1 << 20);
        hub.register("a:1", tx);
        hub.set_room("a:1", Some("r"));
        let stale = hub.beliefs().pop().unwrap();
        hub.set_room("a:1", Some("s"));
        assert!(!hub.forget(&stale, 0), "a newer reply wins");
        assert_eq!(hub.room_of("a:1").as_deref(), Some("s"));
        let fresh = hub.beliefs().pop().unwrap();
        assert!(hub.forget(&fresh, 3));
        assert_eq!(hub.room_of("a:1"), None);
        let Some(Next::Push(push)) = rx.next().await else {
            panic!("a member-left push");
        };
        assert!(push.text.contains(r#""reason":"lost""#), "{}", push.text);
        assert!(push.text.contains(r#""room_id":"s""#), "{}", push.text);
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_client() {
        let hub = hub();
        // Room for one message push in bytes, plenty in frames.
        let (tx, mut rx) = outbox(1024, 80);
        hub.register("a:1", tx);
        hub.set_room("a:1", Some("r"));
        for _ in 0..2 {
            hub.apply(Event::Message {
                room: "r".into(),
                socket: "b:1".into(),
                data: "1".into(),
            });
        }
        assert!(rx.next().await.is_none(), "dropped as too slow");
        assert_eq!(hub.room_of("a:1"), None, "and out of the hub");
    }
}
