//! The key layout of a namespace: a public contract, read by users with `redis-cli`.
//!
//! ```text
//! violet:{NS}:rooms               ZSET  public room id -> viewers
//! violet:{NS}:room:ROOM           HASH  the room's details, owner, visibility, capacity
//! violet:{NS}:room:ROOM:members   SET   socket ids in the room
//! violet:{NS}:node:NODE           HASH  socket id -> the room it is in, for the sockets of NODE
//! violet:{NS}:nodes               ZSET  node -> lease expiry (Unix ms), +inf for a node with no lease
//! violet:{NS}:events              pub/sub channel, one JSON message per change
//! ```
//!
//! Every key carries the hash tag `{NS}`, so a namespace lives in one cluster
//! slot and each command touches one slot only.
//!
//! A socket belongs to the node named by its id up to the first `:` (the
//! whole id when it has none): the shim's sockets `3f9a0c12be77:17` belong to
//! node `3f9a0c12be77`, the shim itself. A node's hash lists exactly its
//! sockets that are in a room, so a node's sockets are found in O(its
//! sockets) and the namespace's in O(nodes + sockets).

/// The events channel of `namespace`, `violet:{NS}:events`.
pub fn events_channel(namespace: &str) -> String {
    format!("violet:{{{namespace}}}:events")
}

/// The node a socket belongs to: its id up to the first `:`, or the whole id.
pub fn node_of(socket: &str) -> &str {
    socket.split_once(':').map_or(socket, |(node, _)| node)
}

/// Names the keys of one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    rooms: String,
    nodes: String,
}

/// What a key of the namespace is, as told by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRole<'a> {
    Rooms,
    Nodes,
    Node(&'a str),
    Room(&'a str),
    Members(&'a str),
    Unknown,
}

const ROOM_PREFIX: &str = "room:";
const NODE_PREFIX: &str = "node:";
pub const MEMBERS_SUFFIX: &str = ":members";

impl Keys {
    /// The keys of `namespace`, which the module has validated (1-128 bytes,
    /// no `{` or `}`).
    pub fn new(namespace: &str) -> Self {
        let mut prefix = String::with_capacity(10 + namespace.len());
        prefix.push_str("violet:{");
        prefix.push_str(namespace);
        prefix.push_str("}:");
        let mut keys = Self {
            prefix,
            rooms: String::new(),
            nodes: String::new(),
        };
        keys.rooms = keys.key(&["rooms"]);
        keys.nodes = keys.key(&["nodes"]);
        keys
    }

    /// The prefix every key of the namespace starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The ranking of public rooms by viewers.
    pub fn rooms(&self) -> &str {
        &self.rooms
    }

    /// The index of nodes, with their lease expiry.
    pub fn nodes(&self) -> &str {
        &self.nodes
    }

    /// The hash of a node's sockets: socket id -> room.
    pub fn node(&self, node: &str) -> String {
        self.key(&[NODE_PREFIX, node])
    }

    /// The hash that records `socket`'s room: the hash of its node.
    pub fn node_of_socket(&self, socket: &str) -> String {
        self.node(node_of(socket))
    }

    /// The pub/sub channel of the namespace's events.
    pub fn events(&self) -> String {
        self.key(&["events"])
    }

    /// The details hash of a room.
    pub fn room(&self, room: &str) -> String {
        self.key(&[ROOM_PREFIX, room])
    }

    /// The member set of a room.
    pub fn members(&self, room: &str) -> String {
        self.key(&[ROOM_PREFIX, room, MEMBERS_SUFFIX])
    }

    /// The prefix and `parts`, in one allocation (the modules' commands
    /// name keys on every call; `format!` costs several times more).
    fn key(&self, parts: &[&str]) -> String {
        let length = self.prefix.len() + parts.iter().map(|p| p.len()).sum::<usize>();
        let mut key = String::with_capacity(length);
        key.push_str(&self.prefix);
        for part in parts {
            key.push_str(part);
        }
        key
    }

    /// Tells what a key of this namespace is for.
    pub fn role<'k>(&self, key: &'k str) -> KeyRole<'k> {
        let Some(rest) = key.strip_prefix(self.prefix.as_str()) else {
            return KeyRole::Unknown;
        };
        if let Some(node) = rest.strip_prefix(NODE_PREFIX) {
            return if node.is_empty() || node.contains(':') {
                KeyRole::Unknown
            } else {
                KeyRole::Node(node)
            };
        }
        match rest {
            "rooms" => KeyRole::Rooms,
            "nodes" => KeyRole::Nodes,
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

    #[test]
    fn a_socket_belongs_to_the_node_before_its_first_colon() {
        assert_eq!(node_of("3f9a0c12be77:17"), "3f9a0c12be77");
        assert_eq!(node_of("sock:1:x"), "sock");
        assert_eq!(node_of("alone"), "alone");
    }

    fn keys() -> Keys {
        Keys::new("watch-party")
    }

    #[test]
    fn layout_matches_the_contract() {
        let k = keys();
        assert_eq!(k.rooms(), "violet:{watch-party}:rooms");
        assert_eq!(k.nodes(), "violet:{watch-party}:nodes");
        assert_eq!(k.node("3f9a"), "violet:{watch-party}:node:3f9a");
        assert_eq!(k.node_of_socket("3f9a:7"), "violet:{watch-party}:node:3f9a");
        assert_eq!(k.events(), "violet:{watch-party}:events");
        assert_eq!(events_channel("watch-party"), k.events());
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
        assert_eq!(k.role(k.nodes()), KeyRole::Nodes);
        assert_eq!(k.role(&k.node("n1")), KeyRole::Node("n1"));
        assert_eq!(k.role("violet:{watch-party}:node:a:b"), KeyRole::Unknown);
        assert_eq!(k.role(&k.room("a:b")), KeyRole::Room("a:b"));
        assert_eq!(k.role(&k.members("a:b")), KeyRole::Members("a:b"));
        assert_eq!(k.role("violet:{watch-party}:other"), KeyRole::Unknown);
        assert_eq!(k.role("violet:{other}:rooms"), KeyRole::Unknown);
    }
}
