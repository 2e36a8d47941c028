//! The limits the module enforces. The shim refuses the same input early
//! where it can, with the same numbers.

/// The longest id (namespace, socket, room, node), in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// The most fields a room carries besides `owner`.
pub const MAX_FIELDS: usize = 32;
/// The longest field name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// The longest field value, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;
/// The largest `data` of a room message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// How many rooms `VIOLET.TOP` lists unless told otherwise.
pub const TOP_DEFAULT: u64 = 10;
/// The most rooms one `VIOLET.TOP` lists.
pub const TOP_MAX: u64 = 1000;
/// How many members one `VIOLET.MEMBERS` page asks for unless told otherwise.
pub const MEMBERS_PAGE_DEFAULT: u64 = 100;
/// The most members one `VIOLET.MEMBERS` page asks for: a page costs Redis
/// O(its size), never O(the room).
pub const MEMBERS_PAGE_MAX: u64 = 500;
