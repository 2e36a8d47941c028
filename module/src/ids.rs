//! Validated identifiers: namespaces, sockets and rooms.
//!
//! Ids are 1-128 bytes of UTF-8 with no whitespace, control or format
//! characters, so they print cleanly in `redis-cli` and in JSON events, and
//! no id can look like another one through invisible characters (zero-width
//! spaces, bidirectional overrides, byte-order marks: Unicode category Cf). A namespace also has no
//! `{` or `}`: it becomes the hash tag of every key it owns. A room id may not
//! end in `:members`, which would name the member set of another room. A
//! socket belongs to the node named by its id up to the first `:`, so a node
//! id has no `:` and a socket id does not start with one.

use crate::error::{err_invalid, quoted, Result};
use std::fmt;
use std::ops::Deref;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use violet_contract::keys::MEMBERS_SUFFIX;
pub use violet_contract::limits::MAX_ID_BYTES;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A namespace: one app, one region. All of its keys share one cluster slot.
    Namespace
);
id_type!(
    /// A connection, as the shim names it. A socket is in at most one room.
    SocketId
);
id_type!(
    /// A room.
    RoomId
);
id_type!(
    /// A node: a shim, or any program that holds a lease on its sockets.
    NodeId
);

impl Namespace {
    /// # Errors
    /// `ERR` when the id is malformed or contains `{` or `}`.
    pub fn parse(input: &str) -> Result<Self> {
        check_id("namespace", input)?;
        if input.contains(['{', '}']) {
            return Err(err_invalid(format!(
                "invalid namespace {}: it must not contain '{{' or '}}'",
                quoted(input)
            )));
        }
        Ok(Self(input.to_owned()))
    }
}

impl SocketId {
    /// # Errors
    /// `ERR` when the id is malformed or starts with `:` (its node would have
    /// no name).
    pub fn parse(input: &str) -> Result<Self> {
        check_id("socket id", input)?;
        if input.starts_with(':') {
            return Err(err_invalid(format!(
                "invalid socket id {}: it must not start with ':'",
                quoted(input)
            )));
        }
        Ok(Self(input.to_owned()))
    }
}

impl NodeId {
    /// # Errors
    /// `ERR` when the id is malformed or contains `:`.
    pub fn parse(input: &str) -> Result<Self> {
        check_id("node id", input)?;
        if input.contains(':') {
            return Err(err_invalid(format!(
                "invalid node id {}: it must not contain ':'",
                quoted(input)
            )));
        }
        Ok(Self(input.to_owned()))
    }
}

impl RoomId {
    /// # Errors
    /// `ERR` when the id is malformed or ends in `:members`.
    pub fn parse(input: &str) -> Result<Self> {
        check_id("room id", input)?;
        if input.ends_with(MEMBERS_SUFFIX) {
            return Err(err_invalid(format!(
                "invalid room id {}: it must not end in '{MEMBERS_SUFFIX}'",
                quoted(input)
            )));
        }
        Ok(Self(input.to_owned()))
    }
}

fn check_id(kind: &str, input: &str) -> Result<()> {
    if input.is_empty() || input.len() > MAX_ID_BYTES {
        return Err(err_invalid(format!(
            "invalid {kind} {}: it must be 1-{MAX_ID_BYTES} bytes",
            quoted(input)
        )));
    }
    if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err_invalid(format!(
            "invalid {kind} {}: it must not contain whitespace or control characters",
            quoted(input)
        )));
    }
    // No ASCII character is a format character (Cf): only the others are
    // looked up in the Unicode tables.
    if input
        .chars()
        .any(|c| !c.is_ascii() && c.general_category() == GeneralCategory::Format)
    {
        return Err(err_invalid(format!(
            "invalid {kind} {}: it must not contain invisible format characters",
            quoted(input)
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_ids_the_original_page_sent() {
        assert!(SocketId::parse("SOCKET:1").is_ok());
        assert!(RoomId::parse("ROOM:2").is_ok());
        assert!(Namespace::parse("watch-party").is_ok());
        assert!(RoomId::parse(&"r".repeat(MAX_ID_BYTES)).is_ok());
        assert!(RoomId::parse("Salle-été").is_ok());
    }

    #[test]
    fn rejects_malformed_ids() {
        for bad in ["", "a b", "a\tb", "a\nb", "\u{7f}", "a\u{a0}b"] {
            assert!(RoomId::parse(bad).is_err(), "{bad:?}");
            assert!(SocketId::parse(bad).is_err(), "{bad:?}");
        }
        assert!(RoomId::parse(&"r".repeat(MAX_ID_BYTES + 1)).is_err());
    }

    #[test]
    fn ids_cannot_hide_characters() {
        for hidden in [
            "a\u{200B}b",
            "\u{FEFF}room",
            "abc\u{202E}fed",
            "x\u{2060}",
            "\u{00AD}y",
        ] {
            assert!(RoomId::parse(hidden).is_err(), "{hidden:?}");
            assert!(SocketId::parse(hidden).is_err(), "{hidden:?}");
            assert!(Namespace::parse(hidden).is_err(), "{hidden:?}");
            assert!(NodeId::parse(hidden).is_err(), "{hidden:?}");
        }
        for visible in ["salle-été", "房间", "🎬", "مرحبا", "Ж"] {
            assert!(RoomId::parse(visible).is_ok(), "{visible:?}");
        }
    }

    #[test]
    fn namespaces_cannot_break_the_hash_tag() {
        assert!(Namespace::parse("a{b").is_err());
        assert!(Namespace::parse("a}b").is_err());
        assert!(Namespace::parse("a:b").is_ok());
    }

    #[test]
    fn node_ids_name_the_start_of_socket_ids() {
        assert!(NodeId::parse("3f9a0c12be77").is_ok());
        assert!(NodeId::parse("a:b").is_err());
        assert!(SocketId::parse(":1").is_err());
        assert!(SocketId::parse("a:").is_ok());
    }

    #[test]
    fn room_ids_cannot_alias_a_member_set() {
        let err = RoomId::parse("lobby:members").unwrap_err();
        assert!(err.to_string().starts_with("ERR invalid room id"));
        assert!(RoomId::parse("members").is_ok());
        assert!(RoomId::parse("lobby:members:x").is_ok());
    }
}
