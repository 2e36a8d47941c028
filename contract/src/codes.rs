//! The error codes of the module: the first word of every error reply.
//!
//! Clients branch on the code; the rest of the line is for people.

/// Malformed input: an id, a field, an option, non-UTF-8 bytes.
pub const ERR: &str = "ERR";
/// The room does not exist.
pub const NOROOM: &str = "NOROOM";
/// The room is at its capacity.
pub const FULL: &str = "FULL";
/// `VIOLET.CREATE` named a room that exists.
pub const EXISTS: &str = "EXISTS";
/// `VIOLET.SAY` from a socket in no room.
pub const NOTINROOM: &str = "NOTINROOM";
/// A key of the layout was overwritten with another type.
pub const WRONGTYPE: &str = "WRONGTYPE";
/// `VIOLET.CHECK` found broken invariants.
pub const CORRUPT: &str = "CORRUPT";
