//! The only `unsafe` in Violet: the few Redis APIs that the safe bindings lack.

use redis_module::{raw, Context, KeyType, RedisString};
use std::os::raw::c_char;

/// Publishes `message` on `channel` (`RedisModule_PublishMessage`). Unlike a
/// `PUBLISH` through `RedisModule_Call`, this is never replicated, and on a
/// cluster Redis forwards it to the other nodes itself.
pub fn publish(ctx: &Context, channel: &str, message: &str) {
    let channel = ctx.create_string(channel);
    let message = ctx.create_string(message);
    // SAFETY: the function pointer is set by `RedisModule_Init` at load, before
    // any command runs, and is only read afterwards.
    let Some(publish) = (unsafe { raw::RedisModule_PublishMessage }) else {
        ctx.log_warning("RedisModule_PublishMessage is missing: event not published");
        return;
    };
    // SAFETY: `ctx.ctx` is the context of the command now running; `channel` and
    // `message` are live Redis strings owned here until after the call, and Redis
    // copies what it keeps.
    unsafe { publish(ctx.ctx, channel.inner, message.inner) };
}

/// `N` random hexadecimal characters from Redis's own generator
/// (`RedisModule_GetRandomHexChars`).
pub fn random_hex<const N: usize>() -> String {
    let mut buffer = [0u8; N];
    // SAFETY: as above, the pointer is set once at load and only read afterwards.
    if let Some(fill) = unsafe { raw::RedisModule_GetRandomHexChars } {
        // SAFETY: `buffer` is valid for writes of `N` bytes, and Redis writes
        // exactly `N` bytes.
        unsafe { fill(buffer.as_mut_ptr().cast::<c_char>(), N) };
    }
    buffer
        .iter()
        .map(|&b| {
            if b.is_ascii_hexdigit() {
                b as char
            } else {
                '0'
            }
        })
        .collect()
}

/// The type and element count of `key`, read from the key itself
/// (`RedisModule_OpenKey`, `KeyType`, `ValueLength`) without running a
/// command. A missing key is `Empty` with no elements.
pub fn key_shape(ctx: &Context, key: &RedisString) -> (KeyType, u64) {
    let handle = raw::open_key(ctx.ctx, key.inner, raw::KeyMode::READ);
    if handle.is_null() {
        return (KeyType::Empty, 0);
    }
    // SAFETY: `handle` is a key opened just above and closed just below; the
    // function pointers are set at load and only read afterwards.
    let (kind, length) = unsafe {
        (
            raw::RedisModule_KeyType.map_or(0, |f| f(handle)),
            raw::RedisModule_ValueLength.map_or(0, |f| f(handle)),
        )
    };
    raw::close_key(handle);
    (KeyType::from(kind), length as u64)
}

/// The server's clock in Unix milliseconds (`RedisModule_Milliseconds`): the
/// time Redis itself uses, cached per command.
pub fn milliseconds() -> u64 {
    // SAFETY: the pointer is set once at load and only read afterwards; the
    // function takes no arguments and only reads the clock.
    let now = unsafe { raw::RedisModule_Milliseconds.map_or(0, |f| f()) };
    u64::try_from(now).unwrap_or(0)
}

/// The database the command runs in (`RedisModule_GetSelectedDb`).
pub fn selected_db(ctx: &Context) -> i32 {
    // SAFETY: `ctx.ctx` is the live context of the running command or timer;
    // the pointer is set at load and only read afterwards.
    unsafe { raw::RedisModule_GetSelectedDb.map_or(0, |f| f(ctx.ctx)) }
}

/// Makes `db` the database of `ctx` (`RedisModule_SelectDb`); whether it could.
pub fn select_db(ctx: &Context, db: i32) -> bool {
    // SAFETY: as above; Redis checks the index and answers an error status
    // for one out of range.
    unsafe { raw::RedisModule_SelectDb.map_or(1, |f| f(ctx.ctx, db)) == 0 }
}
