//! The only `unsafe` in Violet: two Redis APIs that the safe bindings lack.

use redis_module::{raw, Context};
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
