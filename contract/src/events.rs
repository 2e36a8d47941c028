//! Events: one JSON object per change, published on `violet:{NS}:events`.
//!
//! ```json
//! {"event":"created","room":"r1","socket":"s1","viewers":1,"visibility":"public"}
//! {"event":"joined","room":"r1","socket":"s2","viewers":2}
//! {"event":"left","room":"r1","socket":"s2","viewers":1,"reason":"left"}
//! {"event":"destroyed","room":"r1"}
//! {"event":"updated","room":"r1","fields":{"title":"New title"}}
//! {"event":"message","room":"r1","socket":"s1","data":"..."}
//! ```
//!
//! A move from one room to another is a `left` (and, if that emptied the room, a
//! `destroyed`) followed by a `joined`, in that order. A `left` says why the
//! socket left: `left` (it asked, or moved), `expired` (its node's lease ran
//! out and the module reaped it) or `released` (its node released its lease).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A change in a namespace, as subscribers of its events channel see it.
///
/// The module serializes it; the shim deserializes it, reading an event of a
/// kind it does not know (from a newer module) as [`Event::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    Created {
        room: String,
        socket: String,
        viewers: u64,
        visibility: String,
    },
    Joined {
        room: String,
        socket: String,
        viewers: u64,
    },
    Left {
        room: String,
        socket: String,
        viewers: u64,
        /// Why; events of older modules carry none, read as [`Reason::Left`].
        #[serde(default)]
        reason: Reason,
    },
    Destroyed {
        room: String,
    },
    Updated {
        room: String,
        fields: BTreeMap<String, String>,
    },
    Message {
        room: String,
        socket: String,
        data: String,
    },
    /// An event this version does not know; never published.
    #[serde(other)]
    Other,
}

/// Why a socket left its room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// It left or moved to another room (`VIOLET.LEAVE`, `JOIN`, `CREATE`).
    #[default]
    Left,
    /// Its node's lease expired and the module reaped it.
    Expired,
    /// Its node released its lease (`VIOLET.RELEASE`).
    Released,
    /// Never published by the module: the shim's word for a membership it
    /// believed in and Redis no longer holds (Redis lost its data, or events
    /// were missed while the shim was cut off).
    Lost,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Left => "left",
            Reason::Expired => "expired",
            Reason::Released => "released",
            Reason::Lost => "lost",
        }
    }
}

impl Event {
    /// The event as one line of JSON: exactly what `serde_json` makes of it
    /// (the tests compare the two), written directly, since the module
    /// writes one to three events per command and the generic serializer
    /// cost it about 4% of a JOIN.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(128);
        let event = |out: &mut String, name: &str, room: &str| {
            out.push_str(r#"{"event":""#);
            out.push_str(name);
            out.push_str(r#"","room":"#);
            push_json_str(out, room);
        };
        let field = |out: &mut String, name: &str, value: &str| {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            push_json_str(out, value);
        };
        let number = |out: &mut String, name: &str, value: u64| {
            out.push_str(",\"");
            out.push_str(name);
            out.push_str("\":");
            out.push_str(&value.to_string());
        };
        match self {
            Event::Created {
                room,
                socket,
                viewers,
                visibility,
            } => {
                event(&mut out, "created", room);
                field(&mut out, "socket", socket);
                number(&mut out, "viewers", *viewers);
                field(&mut out, "visibility", visibility);
            }
            Event::Joined {
                room,
                socket,
                viewers,
            } => {
                event(&mut out, "joined", room);
                field(&mut out, "socket", socket);
                number(&mut out, "viewers", *viewers);
            }
            Event::Left {
                room,
                socket,
                viewers,
                reason,
            } => {
                event(&mut out, "left", room);
                field(&mut out, "socket", socket);
                number(&mut out, "viewers", *viewers);
                field(&mut out, "reason", reason.as_str());
            }
            Event::Destroyed { room } => event(&mut out, "destroyed", room),
            Event::Message { room, socket, data } => {
                event(&mut out, "message", room);
                field(&mut out, "socket", socket);
                field(&mut out, "data", data);
            }
            Event::Updated { .. } | Event::Other => {
                return serde_json::to_string(self).expect("events hold only strings and integers")
            }
        }
        out.push('}');
        out
    }
}

/// `text` as a JSON string, escaped as `serde_json` escapes it: only `"`,
/// `\\` and the control characters below U+0020 are; a string without them
/// (nearly every id) is copied as it is.
fn push_json_str(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(text).expect("a string always serializes"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_json() {
        let e = Event::Joined {
            room: "r\"1".into(),
            socket: "s".into(),
            viewers: 2,
        };
        assert_eq!(
            e.to_json(),
            r#"{"event":"joined","room":"r\"1","socket":"s","viewers":2}"#
        );
        let d = Event::Destroyed { room: "r".into() };
        assert_eq!(d.to_json(), r#"{"event":"destroyed","room":"r"}"#);
    }

    #[test]
    fn events_are_written_as_serde_json_writes_them() {
        let texts = [
            "r1",
            "3f9a0c12be77:17",
            "",
            "quote \" and \\ backslash",
            "tab\tline\nfeed\r\u{1}\u{1f}\u{7f}",
            "é 一 😀 \u{2028}",
            "<script>&amp;</script>",
        ];
        let mut events = Vec::new();
        for text in texts {
            let (room, socket) = (text.to_owned(), format!("s{text}"));
            events.push(Event::Created {
                room: room.clone(),
                socket: socket.clone(),
                viewers: 1,
                visibility: text.to_owned(),
            });
            events.push(Event::Joined {
                room: room.clone(),
                socket: socket.clone(),
                viewers: u64::MAX,
            });
            for reason in [
                Reason::Left,
                Reason::Expired,
                Reason::Released,
                Reason::Lost,
            ] {
                events.push(Event::Left {
                    room: room.clone(),
                    socket: socket.clone(),
                    viewers: 0,
                    reason,
                });
            }
            events.push(Event::Destroyed { room: room.clone() });
            events.push(Event::Message {
                room: room.clone(),
                socket: socket.clone(),
                data: format!("{text}{text}"),
            });
            events.push(Event::Updated {
                room,
                fields: [(text.to_owned(), socket)].into_iter().collect(),
            });
        }
        events.push(Event::Other);
        for event in events {
            assert_eq!(event.to_json(), serde_json::to_string(&event).unwrap());
        }
    }

    #[test]
    fn events_read_back_and_unknown_kinds_are_other() {
        let e = Event::Created {
            room: "r".into(),
            socket: "s".into(),
            viewers: 1,
            visibility: "public".into(),
        };
        assert_eq!(serde_json::from_str::<Event>(&e.to_json()).unwrap(), e);
        let unknown: Event = serde_json::from_str(r#"{"event":"renamed","room":"r"}"#).unwrap();
        assert_eq!(unknown, Event::Other);
    }
}
