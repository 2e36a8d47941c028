//! Errors of Violet's commands.
//!
//! Every message starts with a Redis error code (`ERR`, `NOROOM`, ...) so that
//! clients can branch on the first word, and every error is built by one of the
//! `err_*` helpers below so the wording stays consistent. User input quoted in a
//! message is escaped and shortened, so a reply is always one safe line.

use std::fmt;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use violet_contract::codes;

/// A failed Violet command: an error code and a one-line explanation.
///
/// Deliberately not a `std::error::Error`: `redis-module` would then turn it
/// into a reply prefixed with a second `ERR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VioletError {
    code: &'static str,
    message: String,
}

pub type Result<T, E = VioletError> = std::result::Result<T, E>;

impl VioletError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The error code, the first word of the reply (`NOROOM`, `FULL`, ...).
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Display for VioletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.message)
    }
}

/// Quotes user input for an error message: in double quotes, cut after 64
/// characters, with quotes, backslashes, control characters and invisible
/// format characters escaped (`\n`, `\u{200b}`); every other character, in
/// any script, as it is.
pub fn quoted(input: &str) -> String {
    const SHOWN: usize = 64;
    let mut out = String::with_capacity(input.len() + 2);
    out.push('"');
    for (i, c) in input.chars().enumerate() {
        if i == SHOWN {
            out.push_str("\"...");
            return out;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ if c.is_control() || c.general_category() == GeneralCategory::Format => {
                out.extend(c.escape_default());
            }
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An argument that is not what the command takes.
pub fn err_invalid(message: impl Into<String>) -> VioletError {
    VioletError::new(codes::ERR, message)
}

/// A room would carry more than [`crate::details::MAX_FIELDS`] fields.
pub fn err_too_many_fields() -> VioletError {
    err_invalid(format!(
        "a room has at most {} fields",
        crate::details::MAX_FIELDS
    ))
}

/// The room does not exist (never created, or destroyed when its last viewer left).
pub fn err_no_room(room: &str) -> VioletError {
    VioletError::new(codes::NOROOM, format!("no such room {}", quoted(room)))
}

/// The room already has as many viewers as its capacity allows.
pub fn err_full(room: &str, capacity: u64) -> VioletError {
    VioletError::new(
        codes::FULL,
        format!("room {} is full (capacity {capacity})", quoted(room)),
    )
}

/// `VIOLET.CREATE` named a room that already exists.
pub fn err_exists(room: &str) -> VioletError {
    VioletError::new(
        codes::EXISTS,
        format!("room {} already exists", quoted(room)),
    )
}

/// The socket must be in a room for this command, and it is in none.
pub fn err_not_in_room(socket: &str) -> VioletError {
    VioletError::new(
        codes::NOTINROOM,
        format!("socket {} is not in a room", quoted(socket)),
    )
}

/// `VIOLET.CHECK` found broken invariants; the message names each one.
pub fn err_corrupt(violations: &[String]) -> VioletError {
    const LISTED: usize = 20;
    let mut message = format!("{} violation(s): ", violations.len());
    message.push_str(&violations[..violations.len().min(LISTED)].join("; "));
    if violations.len() > LISTED {
        message.push_str(&format!("; and {} more", violations.len() - LISTED));
    }
    VioletError::new(codes::CORRUPT, message)
}

/// The calling user's ACL does not allow what the command needs.
pub fn err_noperm(message: impl Into<String>) -> VioletError {
    VioletError::new("NOPERM", message)
}

/// The user may not read (or, with `write`, read and write) a key the
/// command works on.
pub fn err_noperm_key(key: &str, write: bool) -> VioletError {
    let access = if write { "read and write" } else { "read" };
    err_noperm(format!(
        "this user has no permissions to {access} the key {}",
        quoted(key)
    ))
}

/// The user may not publish on the namespace's events channel.
pub fn err_noperm_channel(channel: &str) -> VioletError {
    err_noperm(format!(
        "this user has no permissions to publish on the channel {}",
        quoted(channel)
    ))
}

/// Redis refused an operation (for example `WRONGTYPE` when a key of the
/// layout was overwritten by hand). The reply keeps Redis's own error code.
pub fn err_redis(reply: &str) -> VioletError {
    let reply = reply.trim();
    match reply.split_once(' ') {
        Some((code, rest)) if is_error_code(code) => {
            VioletError::new(known_code(code), rest.to_string())
        }
        _ => VioletError::new(codes::ERR, reply.to_string()),
    }
}

/// A key of the layout holds another type (it was overwritten by hand).
pub fn err_wrong_type() -> VioletError {
    VioletError::new(
        codes::WRONGTYPE,
        "Operation against a key holding the wrong kind of value",
    )
}

/// A bug in Violet: a panic was caught before it could reach Redis.
pub fn err_internal() -> VioletError {
    VioletError::new(
        codes::ERR,
        "internal error in the Violet module; nothing was changed, see the Redis log",
    )
}

fn is_error_code(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_uppercase())
}

/// Error codes are `&'static str`; Redis's own codes are mapped to the few the
/// layout can produce, and any other one is reported as `ERR`.
fn known_code(code: &str) -> &'static str {
    match code {
        "WRONGTYPE" => codes::WRONGTYPE,
        "OOM" => "OOM",
        "READONLY" => "READONLY",
        "MOVED" => "MOVED",
        "CROSSSLOT" => "CROSSSLOT",
        _ => codes::ERR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_with_their_code() {
        assert_eq!(err_no_room("r1").to_string(), "NOROOM no such room \"r1\"");
        assert_eq!(
            err_full("r1", 2).to_string(),
            "FULL room \"r1\" is full (capacity 2)"
        );
        assert_eq!(err_exists("r").code(), "EXISTS");
        assert_eq!(
            err_noperm_key("violet:{a}:sockets", true).to_string(),
            "NOPERM this user has no permissions to read and write the key \"violet:{a}:sockets\""
        );
        assert_eq!(err_noperm_channel("violet:{a}:events").code(), "NOPERM");
    }

    #[test]
    fn quoted_input_keeps_every_script_and_escapes_the_invisible() {
        assert_eq!(quoted("नमस्ते"), "\"नमस्ते\"");
        assert_eq!(quoted("salle-été"), "\"salle-été\"");
        assert_eq!(quoted("a\u{200B}b"), "\"a\\u{200b}b\"");
        assert_eq!(quoted("say \"hi\" \\o/"), "\"say \\\"hi\\\" \\\\o/\"");
    }

    #[test]
    fn quoted_input_is_one_escaped_line() {
        assert_eq!(quoted("a\r\nb"), "\"a\\r\\nb\"");
        let long = "x".repeat(100);
        assert_eq!(quoted(&long), format!("\"{}\"...", "x".repeat(64)));
    }

    #[test]
    fn redis_errors_keep_their_code() {
        let e = err_redis("WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(e.code(), "WRONGTYPE");
        assert_eq!(err_redis("weird failure").to_string(), "ERR weird failure");
        assert_eq!(err_redis("NOPERM no").code(), "ERR");
    }

    #[test]
    fn corrupt_lists_at_most_twenty() {
        let many: Vec<String> = (0..25).map(|i| format!("v{i}")).collect();
        let text = err_corrupt(&many).to_string();
        assert!(text.starts_with("CORRUPT 25 violation(s): v0; v1"));
        assert!(text.ends_with("v19; and 5 more"));
    }
}
