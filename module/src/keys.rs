//! The key layout of a namespace: a public contract, read by users with `redis-cli`.
//!
//! ```text
//! violet:{NS}:rooms               ZSET  public room id -> viewers
//! violet:{NS}:room:ROOM           HASH  the room's details, owner, visibility, capacity
//! violet:{NS}:room:ROOM:members   SET   socket ids in the room
//! violet:{NS}:sockets             HASH  socket id -> the room it is in
//! violet:{NS}:events              pub/sub channel, one JSON message per change
//! ```
//!
//! Every key carries the hash tag `{NS}`, so a namespace lives in one cluster
//! slot and each command touches one slot only.

use crate::ids::Namespace;

/// Names the keys of one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    rooms: String,
    sockets: String,
}

/// What a key of the namespace is, as told by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRole<'a> {
    Rooms,
    Sockets,
    Room(&'a str),
    Members(&'a str),
    Unknown,
}

const ROOM_PREFIX: &str = "room:";
pub const MEMBERS_SUFFIX: &str = ":members";

impl Keys {
    pub fn new(namespace: &Namespace) -> Self {
        let prefix = format!("violet:{{{namespace}}}:");
        Self {
            rooms: format!("{prefix}rooms"),
            sockets: format!("{prefix}sockets"),
            prefix,
        }
    }

    /// The prefix every key of the namespace starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The ranking of public rooms by viewers.
    pub fn rooms(&self) -> &str {
        &self.rooms
    }

    /// Which room each socket is in.
    pub fn sockets(&self) -> &str {
        &self.sockets
    }

    /// The pub/sub channel of the namespace's events.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// [`Self::events`] of `namespace`, without naming its other keys.
    pub fn events_channel(namespace: &Namespace) -> String {
        format!("violet:{{{namespace}}}:events")
    }

    /// The details hash of a room.
    pub fn room(&self, room: &str) -> String {
        format!("{}{ROOM_PREFIX}{room}", self.prefix)
    }

    /// The member set of a room.
    pub fn members(&self, room: &str) -> String {
        format!("{}{ROOM_PREFIX}{room}{MEMBERS_SUFFIX}", self.prefix)
    }

    /// Tells what a key of this namespace is for.
    pub fn role<'k>(&self, key: &'k str) -> KeyRole<'k> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return KeyRole::Unknown;
        };
        match rest {
            "rooms" => KeyRole::Rooms,
            "sockets" => KeyRole::Sockets,
            _ => match rest.strip_prefix(ROOM_PREFIX) {
                Some(room) => match room.strip_suffix(MEMBERS_SUFFIX) {
                    Some(room) if !room.is_empty() => KeyRole::Members(room),
                    _ if !room.is_empty() => KeyRole::Room(room),
                    _ => KeyRole::Unknown,
                },
                None => KeyRole::Unknown,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&Namespace::parse("watch-party").unwrap())
    }

    #[test]
    fn layout_matches_the_contract() {
        let k = keys();
        assert_eq!(k.rooms(), "violet:{watch-party}:rooms");
        assert_eq!(k.sockets(), "violet:{watch-party}:sockets");
        assert_eq!(k.events(), "violet:{watch-party}:events");
        let ns = Namespace::parse("watch-party").unwrap();
        assert_eq!(Keys::events_channel(&ns), k.events());
        assert_eq!(k.room("ROOM:2"), "violet:{watch-party}:room:ROOM:2");
        assert_eq!(
            k.members("ROOM:2"),
            "violet:{watch-party}:room:ROOM:2:members"
        );
    }

    #[test]
    fn roles_round_trip() {
        let k = keys();
        assert_eq!(k.role(k.rooms()), KeyRole::Rooms);
        assert_eq!(k.role(k.sockets()), KeyRole::Sockets);
        assert_eq!(k.role(&k.room("a:b")), KeyRole::Room("a:b"));
        assert_eq!(k.role(&k.members("a:b")), KeyRole::Members("a:b"));
        assert_eq!(k.role("violet:{watch-party}:other"), KeyRole::Unknown);
        assert_eq!(k.role("violet:{other}:rooms"), KeyRole::Unknown);
    }
}
