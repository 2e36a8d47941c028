//! The WebSocket protocol between a page and the shim: JSON text frames.
//!
//! ## Connecting
//!
//! Open a WebSocket to `/` (as the original page did, `ws://host:8080`) or to
//! `/ws`. The first frame the shim sends is
//!
//! ```json
//! {"kind":"welcome","socket_id":"3f9a0c12be77:1"}
//! ```
//!
//! When the shim is started with `--allowed-origin`, an upgrade whose
//! `Origin` header is not in that list is refused with HTTP 403 (requests
//! without an `Origin`, which browsers always send, are not browsers and are
//! let in). Past `--max-connections` open connections, upgrades get 503. A
//! TCP connection that has not sent a complete request head within
//! `--handshake-timeout-ms` (5 s by default) is closed.
//!
//! A socket id is `<shim-id>:<n>`: the shim id is 12 random hex characters
//! chosen when the shim starts, so ids are unique across shims. Ids a client
//! sends (`socket_id`, `prev_room_id`) are ignored: a connection always acts
//! as itself.
//!
//! ## Requests and replies
//!
//! Every request is one JSON object with a `kind`, and gets exactly one reply
//! frame. A request may carry `"ref"` (any JSON value); the reply echoes it.
//! Unknown fields are ignored. Each request is exactly one `VIOLET.*` command.
//!
//! | request | command | reply |
//! | --- | --- | --- |
//! | `{"kind":"room-created","details":{...},"room_id"?:"..."}` | `VIOLET.CREATE` | `{"kind":"room-created","room_id":"..."}` |
//! | `{"kind":"room-joined","room_id":"..."}` | `VIOLET.JOIN` | `{"kind":"room-joined","room_id":"...","prev_room_id":"..."\|null,"viewers":n}` |
//! | `{"kind":"room-left"}` | `VIOLET.LEAVE` | `{"kind":"room-left","room_id":"..."\|null}` |
//! | `{"kind":"top","count"?:n,"offset"?:k}` | `VIOLET.TOP` | `{"kind":"top","rooms":[room, ...],"truncated"?:true}` |
//! | `{"kind":"room","room_id":"..."}` | `VIOLET.ROOM` | `{"kind":"room","room":room\|null}` |
//! | `{"kind":"members","room_id":"...","cursor"?:"...","count"?:n}` | `VIOLET.MEMBERS` | `{"kind":"members","room_id":"...","members":["...", ...],"cursor":"..."\|null}` |
//! | `{"kind":"room-message","data":any}` | `VIOLET.SAY` | `{"kind":"room-message","room_id":"..."}` |
//! | `{"kind":"watch-top","count"?:n}` | `VIOLET.TOP` | `{"kind":"top","rooms":[...]}`, then pushes |
//! | `{"kind":"unwatch-top"}` | none | `{"kind":"unwatch-top"}` |
//!
//! A `room` is `{"room_id":"...","viewers":n,"details":{"title":"...",...}}`;
//! `details` holds the room's fields as strings, as the module stores them,
//! including `owner` (the creating socket) and `visibility`.
//!
//! - `room-created` takes exactly what the original page sent:
//!   `{"kind":"room-created","socket_id":"Socket:1","details":{"thumbnail":"url://thumbnail","title":"Perfect Blue","topic":"Satoshi Kon clips","watchers":"2","visibility":"Public"}}`.
//!   `watchers` is dropped (the viewer count is live); string, number and
//!   boolean values become strings, any other value is `BAD_REQUEST`. The
//!   module checks the rest (`visibility` public or private in any case,
//!   `capacity` a positive integer, at most 32 fields, names up to 64 bytes,
//!   values up to 4 KiB). An optional `room_id` names the room (`EXISTS` if it
//!   is taken); without it the module picks a fresh id. Creating a room moves
//!   the socket out of the room it was in.
//! - `room-joined` moves the socket out of its room into another; a socket is
//!   in at most one room. `prev_room_id` is the room it was in, or `null`.
//!   Joining the room the socket is already in changes nothing, and then
//!   `prev_room_id` is that same room.
//! - `room-left`: `room_id` is the room left, or `null` if the socket was in
//!   none. The last socket out destroys the room.
//! - `top` lists public rooms by viewers, most first (`count` defaults to 10,
//!   at most 1000; `offset` defaults to 0). A reply holds at most
//!   `--max-reply-bytes` (1 MiB by default): when the rooms asked for would
//!   not fit, it holds the first ones that do and says `"truncated":true`;
//!   `offset` reaches the rest, up to the first room whose ids and details
//!   take the list past `--max-reply-bytes` (past it: the rooms before,
//!   none when `offset` is past them, and `"truncated":true`). (Any other
//!   reply that would not fit is a `BAD_REQUEST` error saying so.)
//! - `members` lists a room's sockets a page at a time (`count` about 100
//!   by default, at most 500), in no order: `cursor` in the reply is where
//!   the next page starts (send it back as `cursor`), `null` after the last
//!   page. A page costs Redis O(its size), however large the room.
//! - `room-message` sends `data` to every member of the sender's room, on every
//!   shim, the sender included, as a `message` push (below). `NOTINROOM` if the
//!   socket is in no room. `data` is at most 64 KiB once written as JSON.
//! - `watch-top` replies with a `top` frame at once, then pushes a fresh `top`
//!   frame at most once per second while rooms change. Sending it again
//!   changes the count; `unwatch-top` stops the pushes. A newer `top` push
//!   replaces one not yet sent, so a slow reader gets the newest list rather
//!   than a backlog.
//!
//! ## Pushes
//!
//! Live changes reach every connection currently in the room concerned,
//! whichever shim made the change:
//!
//! ```json
//! {"kind":"member-joined","room_id":"r","socket_id":"s","viewers":2}
//! {"kind":"member-left","room_id":"r","socket_id":"s","viewers":1,"reason":"left"}
//! {"kind":"room-updated","room_id":"r","details":{"title":"New title"}}
//! {"kind":"room-destroyed","room_id":"r"}
//! {"kind":"message","room_id":"r","socket_id":"sender","data":{"any":"JSON"}}
//! ```
//!
//! A connection also gets `member-joined` about itself when it creates or
//! joins a room (creating counts as joining, with 1 viewer), and
//! `member-left` about itself when it leaves one. `reason` says why a member
//! left: `left` (it left or moved), `expired` (its shim stopped renewing its
//! lease, and the module took its sockets out) or `released` (its shim
//! stopped and released them), so a page can tell leaving from timing out. A push may arrive before or
//! after the reply to the request that caused it.
//!
//! ## Errors
//!
//! ```json
//! {"kind":"error","code":"NOROOM","message":"no such room \"r\"","ref":7}
//! ```
//!
//! | code | meaning |
//! | --- | --- |
//! | `NOROOM` | the room does not exist |
//! | `FULL` | the room is at its capacity |
//! | `EXISTS` | `room-created` named a room that exists |
//! | `NOTINROOM` | `room-message` from a socket in no room |
//! | `BAD_REQUEST` | malformed JSON, not an object, unknown `kind`, a field of the wrong type, a binary frame, or input the module refused (`ERR`) |
//! | `RATE_LIMITED` | too many frames; slow down |
//! | `UNAVAILABLE` | Redis cannot be reached right now; try again |
//!
//! `RATE_LIMITED` errors carry no `ref`: a frame over the limit is not read.
//!
//! After an error the connection stays open, except that:
//!
//! - a frame larger than `--max-frame-bytes` closes it with code 1009;
//! - a client that keeps sending past its rate limit is closed with code 1008;
//! - a client that falls more than `--max-queue-bytes` (1 MiB by default)
//!   behind its pushes, or does not take a frame within the pong timeout, is
//!   closed with code 1008 ("too slow");
//! - when the shim stops, every client gets a close frame with code 1001.
//!
//! The shim pings every connection (every 10 s by default) and drops one that
//! has sent nothing, not even a pong, for 30 s. However a connection ends, its
//! socket leaves its room (`VIOLET.LEAVE`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use violet_contract::events::Reason;

/// The error codes of `error` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ErrorCode {
    #[serde(rename = "NOROOM")]
    NoRoom,
    #[serde(rename = "FULL")]
    Full,
    #[serde(rename = "EXISTS")]
    Exists,
    #[serde(rename = "NOTINROOM")]
    NotInRoom,
    #[serde(rename = "BAD_REQUEST")]
    BadRequest,
    #[serde(rename = "RATE_LIMITED")]
    RateLimited,
    #[serde(rename = "UNAVAILABLE")]
    Unavailable,
}

impl ErrorCode {
    /// Every code, in a fixed order (for metrics).
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::NoRoom,
        ErrorCode::Full,
        ErrorCode::Exists,
        ErrorCode::NotInRoom,
        ErrorCode::BadRequest,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
    ];

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NoRoom => "NOROOM",
            ErrorCode::Full => "FULL",
            ErrorCode::Exists => "EXISTS",
            ErrorCode::NotInRoom => "NOTINROOM",
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Unavailable => "UNAVAILABLE",
        }
    }

    /// The position of the code in [`ErrorCode::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A failed request: a code and a one-line explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimError {
    pub code: ErrorCode,
    pub message: String,
}

impl ShimError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A `BAD_REQUEST` error.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
}

impl std::fmt::Display for ShimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for ShimError {}

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Request {
    RoomCreated {
        #[serde(default)]
        details: Map<String, Value>,
        #[serde(default)]
        room_id: Option<String>,
    },
    RoomJoined {
        room_id: String,
    },
    RoomLeft {},
    Top {
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        offset: Option<u64>,
    },
    Room {
        room_id: String,
    },
    Members {
        room_id: String,
        #[serde(default)]
        cursor: Option<String>,
        #[serde(default)]
        count: Option<u64>,
    },
    RoomMessage {
        data: Value,
    },
    WatchTop {
        #[serde(default)]
        count: Option<u64>,
    },
    UnwatchTop {},
}

/// A parsed frame: the request's `ref` (if it had one) and the request, or
/// why it is not one.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    pub reference: Option<Value>,
    pub request: Result<Request, ShimError>,
}

/// Parses one text frame. Never fails: a bad frame becomes a `BAD_REQUEST`
/// error, keeping its `ref` when it had one.
pub fn parse(text: &str) -> Incoming {
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            return Incoming {
                reference: None,
                request: Err(ShimError::bad_request(format!("malformed JSON: {e}"))),
            }
        }
    };
    let Value::Object(mut object) = value else {
        return Incoming {
            reference: None,
            request: Err(ShimError::bad_request("a request must be a JSON object")),
        };
    };
    let reference = object.remove("ref");
    let request = match object.get("kind") {
        Some(Value::String(_)) => serde_json::from_value(Value::Object(object))
            .map_err(|e| ShimError::bad_request(format!("bad request: {e}"))),
        Some(_) => Err(ShimError::bad_request("\"kind\" must be a string")),
        None => Err(ShimError::bad_request("a request needs a \"kind\"")),
    };
    Incoming { reference, request }
}

/// Room details as the module takes them: `watchers` dropped (the viewer
/// count is live), strings, numbers and booleans written as strings.
///
/// # Errors
/// `BAD_REQUEST` when a value is null, an array or an object.
pub fn detail_fields(details: &Map<String, Value>) -> Result<Vec<(String, String)>, ShimError> {
    let mut fields = Vec::with_capacity(details.len());
    for (name, value) in details {
        if name == "watchers" {
            continue;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(ShimError::bad_request(format!(
                    "details.{name} must be a string, a number or a boolean"
                )))
            }
        };
        fields.push((name.clone(), text));
    }
    Ok(fields)
}

/// A room as replies and pushes show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub room_id: String,
    pub viewers: u64,
    pub details: BTreeMap<String, String>,
}

/// A frame from the shim: a reply or a push.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Frame {
    Welcome {
        socket_id: String,
    },
    RoomCreated {
        room_id: String,
    },
    RoomJoined {
        room_id: String,
        prev_room_id: Option<String>,
        viewers: u64,
    },
    RoomLeft {
        room_id: Option<String>,
    },
    Top {
        rooms: Vec<RoomInfo>,
        /// Rooms were left out to keep the frame within the reply limit.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
    },
    Room {
        room: Option<RoomInfo>,
    },
    Members {
        room_id: String,
        members: Vec<String>,
        /// Where the next page starts; `null` after the last.
        cursor: Option<String>,
    },
    RoomMessage {
        room_id: String,
    },
    UnwatchTop {},
    Message {
        room_id: String,
        socket_id: String,
        data: Value,
    },
    MemberJoined {
        room_id: String,
        socket_id: String,
        viewers: u64,
    },
    MemberLeft {
        room_id: String,
        socket_id: String,
        viewers: u64,
        /// `left`, `expired` (its shim's lease ran out) or `released`.
        reason: Reason,
    },
    RoomUpdated {
        room_id: String,
        details: BTreeMap<String, String>,
    },
    RoomDestroyed {
        room_id: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

impl Frame {
    /// The frame as JSON text, with `ref` added when there is one.
    pub fn to_text(&self, reference: Option<&Value>) -> String {
        let mut value = match serde_json::to_value(self) {
            Ok(value) => value,
            // Frames hold only strings, integers, maps and JSON values.
            Err(e) => return error_text(&e.to_string()),
        };
        if let (Some(reference), Value::Object(object)) = (reference, &mut value) {
            object.insert("ref".to_owned(), reference.clone());
        }
        value.to_string()
    }
}

impl Frame {
    /// A `top` frame of `rooms`, not truncated.
    pub fn top(rooms: Vec<RoomInfo>) -> Self {
        Frame::Top {
            rooms,
            truncated: false,
        }
    }

    /// The frame as JSON text of at most `max_bytes` bytes, with `ref` added
    /// when there is one, and the code of the error it is, if it is one. A
    /// `top` frame that would be larger keeps the first rooms that fit and
    /// says `"truncated":true`; any other frame that would be larger becomes
    /// a `BAD_REQUEST` error saying so.
    pub fn to_text_within(
        self,
        reference: Option<&Value>,
        max_bytes: usize,
    ) -> (String, Option<ErrorCode>) {
        let code = match &self {
            Frame::Top { rooms, truncated } => {
                // A list cut before (to what fit without the `ref`) stays
                // marked as cut.
                let mut cut = top_within(rooms.as_slice(), reference, max_bytes);
                if let Frame::Top { truncated: now, .. } = &mut cut {
                    *now |= *truncated;
                }
                return (cut.to_text(reference), None);
            }
            Frame::Error { code, .. } => Some(*code),
            _ => None,
        };
        let text = self.to_text(reference);
        if text.len() <= max_bytes {
            return (text, code);
        }
        let error = ShimError::bad_request(format!(
            "the reply would be {} bytes, over the shim's limit of {max_bytes}",
            text.len()
        ));
        (
            Frame::from(error).to_text(reference),
            Some(ErrorCode::BadRequest),
        )
    }
}

/// Rooms for a `top` frame, and whether rooms asked for after them were
/// left out already (then the frame says `"truncated":true` even when all
/// of these fit). Derefs to the rooms.
#[derive(Debug, Clone, Copy)]
pub struct TopList<'a> {
    pub rooms: &'a [RoomInfo],
    pub cut: bool,
}

impl std::ops::Deref for TopList<'_> {
    type Target = [RoomInfo];

    fn deref(&self) -> &[RoomInfo] {
        self.rooms
    }
}

impl<'a> From<&'a [RoomInfo]> for TopList<'a> {
    fn from(rooms: &'a [RoomInfo]) -> Self {
        Self { rooms, cut: false }
    }
}

impl<'a> From<&'a Vec<RoomInfo>> for TopList<'a> {
    fn from(rooms: &'a Vec<RoomInfo>) -> Self {
        Self::from(rooms.as_slice())
    }
}

/// A `top` frame of the first of `rooms` that fit in `max_bytes`, as text,
/// with `ref` added when there is one; `"truncated":true` when some did not
/// (or some were left out before).
pub fn top_text<'a>(
    rooms: impl Into<TopList<'a>>,
    reference: Option<&Value>,
    max_bytes: usize,
) -> String {
    top_within(rooms, reference, max_bytes).to_text(reference)
}

/// A `top` frame of the first of `rooms` that fit in `max_bytes` with
/// `reference`; only those are copied, however many `rooms` holds.
pub fn top_within<'a>(
    rooms: impl Into<TopList<'a>>,
    reference: Option<&Value>,
    max_bytes: usize,
) -> Frame {
    let TopList { rooms, cut } = rooms.into();
    let envelope = Frame::Top {
        rooms: Vec::new(),
        truncated: true,
    }
    .to_text(reference)
    .len();
    let mut size = envelope;
    let mut fit = 0;
    for room in rooms {
        // The room and the comma before it (one byte too many for the first).
        let room_size = serde_json::to_string(room).map_or(usize::MAX, |t| t.len());
        size = size.saturating_add(room_size).saturating_add(1);
        if size > max_bytes {
            break;
        }
        fit += 1;
    }
    Frame::Top {
        rooms: rooms[..fit].to_vec(),
        truncated: cut || fit < rooms.len(),
    }
}

impl From<ShimError> for Frame {
    fn from(error: ShimError) -> Self {
        Frame::Error {
            code: error.code,
            message: error.message,
        }
    }
}

fn error_text(message: &str) -> String {
    serde_json::json!({"kind": "error", "code": "BAD_REQUEST", "message": message}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_original_page_event() {
        let text = r#"{"kind":"room-created","socket_id":"Socket:1","details":{"thumbnail":"url://thumbnail","title":"Perfect Blue","topic":"Satoshi Kon clips","watchers":"2","visibility":"Public"}}"#;
        let Incoming { reference, request } = parse(text);
        assert_eq!(reference, None);
        let Ok(Request::RoomCreated { details, room_id }) = request else {
            panic!("not a room-created request: {request:?}");
        };
        assert_eq!(room_id, None);
        let fields = detail_fields(&details).unwrap();
        assert!(fields.iter().all(|(n, _)| n != "watchers"));
        assert!(fields.contains(&("visibility".into(), "Public".into())));
    }

    #[test]
    fn keeps_the_ref_of_bad_requests() {
        let parsed = parse(r#"{"kind":"dance","ref":[1,2]}"#);
        assert_eq!(parsed.reference, Some(json!([1, 2])));
        assert_eq!(parsed.request.unwrap_err().code, ErrorCode::BadRequest);
        assert!(parse("{nope").request.is_err());
        assert!(parse("[]").request.is_err());
        assert!(parse(r#"{"kind":7}"#).request.is_err());
        assert!(parse(r#"{"kind":"room-joined","room_id":5}"#)
            .request
            .is_err());
        assert!(parse(r#"{"kind":"room-message"}"#).request.is_err());
    }

    #[test]
    fn details_become_strings() {
        let details = json!({"a": 1, "b": true, "c": "x"});
        let fields = detail_fields(details.as_object().unwrap()).unwrap();
        assert_eq!(fields.len(), 3);
        let bad = json!({"a": [1]});
        assert!(detail_fields(bad.as_object().unwrap()).is_err());
    }

    #[test]
    fn a_top_frame_too_large_keeps_the_first_rooms_that_fit() {
        let room = |i: usize| RoomInfo {
            room_id: format!("r{i}"),
            viewers: 1,
            details: BTreeMap::from([("title".to_owned(), "x".repeat(100))]),
        };
        let rooms: Vec<RoomInfo> = (0..50).map(room).collect();
        let reference = json!({"n": 1});
        let (all, error) = Frame::top(rooms.clone()).to_text_within(Some(&reference), 1 << 20);
        assert_eq!(error, None);
        assert!(!all.contains("truncated"));
        let limit = all.len() / 2;
        let (cut, error) = Frame::top(rooms.clone()).to_text_within(Some(&reference), limit);
        assert_eq!(error, None);
        assert!(cut.len() <= limit, "{} > {limit}", cut.len());
        let value: Value = serde_json::from_str(&cut).unwrap();
        assert_eq!(value["truncated"], true);
        assert_eq!(value["ref"], reference);
        let kept = value["rooms"].as_array().unwrap();
        let expected: Vec<Value> = rooms[..kept.len()]
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        assert_eq!(kept, &expected, "the first rooms, in order");
        let next = serde_json::to_string(&rooms[kept.len()]).unwrap();
        assert!(
            cut.len() + next.len() + 1 > limit,
            "one more room would fit"
        );

        let (none, _) = Frame::top(rooms).to_text_within(None, 10);
        assert_eq!(none, r#"{"kind":"top","rooms":[],"truncated":true}"#);
    }

    #[test]
    fn a_top_list_cut_before_stays_marked_as_cut() {
        let rooms = vec![RoomInfo {
            room_id: "r".into(),
            viewers: 1,
            details: BTreeMap::new(),
        }];
        let cut = Frame::Top {
            rooms,
            truncated: true,
        };
        let (text, _) = cut.to_text_within(Some(&json!(1)), 1 << 20);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["truncated"], true, "{text}");
    }

    #[test]
    fn rooms_left_out_of_the_snapshot_mark_the_list_as_cut() {
        let rooms = vec![RoomInfo {
            room_id: "r".into(),
            viewers: 1,
            details: BTreeMap::new(),
        }];
        let whole = top_text(&rooms, None, 1 << 20);
        assert!(!whole.contains("truncated"), "{whole}");
        let cut = TopList {
            rooms: &rooms,
            cut: true,
        };
        assert_eq!(cut.len(), 1);
        let text = top_text(cut, None, 1 << 20);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["truncated"], true, "{text}");
        assert_eq!(value["rooms"][0]["room_id"], "r");
        let none = top_text(
            TopList {
                rooms: &[],
                cut: true,
            },
            None,
            1 << 20,
        );
        assert_eq!(none, r#"{"kind":"top","rooms":[],"truncated":true}"#);
    }

    #[test]
    fn other_replies_too_large_become_errors() {
        let members = Frame::Members {
            room_id: "r".to_owned(),
            members: vec!["s".repeat(100); 100],
            cursor: None,
        };
        let (text, error) = members.clone().to_text_within(None, 1 << 20);
        assert_eq!(error, None);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["kind"], "members");
        let (text, error) = members.to_text_within(Some(&json!(7)), 1000);
        assert_eq!(error, Some(ErrorCode::BadRequest));
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["ref"], 7);
        assert!(value["message"].as_str().unwrap().contains("limit of 1000"));
    }

    #[test]
    fn frames_carry_their_ref() {
        let frame = Frame::RoomLeft { room_id: None };
        assert_eq!(
            frame.to_text(None),
            r#"{"kind":"room-left","room_id":null}"#
        );
        let text = Frame::UnwatchTop {}.to_text(Some(&json!("x")));
        assert_eq!(text, r#"{"kind":"unwatch-top","ref":"x"}"#);
        let error = Frame::from(ShimError::new(ErrorCode::NoRoom, "no"));
        assert_eq!(
            error.to_text(None),
            r#"{"code":"NOROOM","kind":"error","message":"no"}"#
        );
    }
}
