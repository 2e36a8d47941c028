//! ACL checks on the keys and the channel a command really touches.
//!
//! Every command names its namespace `NS` as argument 1 and declares it as a
//! key that is not a key (`NOT_KEY`): cluster clients route by it, and Redis
//! checks no key pattern against the bare string `NS`. The keys the command
//! works on are `violet:{NS}:...`, which Redis never sees as arguments, so
//! Violet checks them itself against the calling user's ACL:
//!
//! - a query needs read permission on each key it reads;
//! - a command that changes the namespace needs read and write permission on
//!   each key it reads, and it reads every key it writes before its first
//!   write (see [`crate::rooms`]), so a refusal always comes before any write;
//! - a command that publishes needs permission on `violet:{NS}:events`,
//!   checked before it reads anything. The same check holds in cluster mode,
//!   where events go out with sharded pub/sub: ACL channel rules cover shard
//!   channels (`SPUBLISH`) as they do classic ones.
//!
//! A refusal is a `NOPERM` error, and is recorded in `ACL LOG` like Redis's own.

use crate::error::{err_noperm_channel, err_noperm_key, Result};
use crate::ffi::{self, AclUser, Caller};
use redis_module::{Context, RedisString};

/// What a command does with the keys of its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads them only.
    Read,
    /// Reads and changes them.
    Write,
}

/// What a command needs from the calling user's ACL, besides the command itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Needs {
    pub access: Access,
    /// Whether it publishes on the namespace's events channel.
    pub publishes: bool,
}

/// The calling user's permissions, looked up once per command.
pub struct Permissions {
    caller: Caller,
    access: Access,
}

impl Permissions {
    /// The permissions of whoever runs the current command.
    pub fn of_caller(ctx: &Context, access: Access) -> Self {
        Self {
            caller: ffi::caller(ctx),
            access,
        }
    }

    /// No user at all: the module's own work, such as the reaper's timer.
    pub fn unrestricted(access: Access) -> Self {
        Self {
            caller: Caller::Unrestricted,
            access,
        }
    }

    /// Whether any check can fail: false for clients without an ACL user.
    pub fn restricted(&self) -> bool {
        !matches!(self.caller, Caller::Unrestricted)
    }

    /// Checks the command's access to `key` (a string already made for it).
    ///
    /// # Errors
    /// `NOPERM` when the user may not read (or, for a changing command, also
    /// write) the key.
    pub fn key(&self, ctx: &Context, key: &RedisString, name: &str) -> Result<()> {
        let flags = match self.access {
            Access::Read => ffi::KEY_READ,
            Access::Write => ffi::KEY_READ_WRITE,
        };
        self.check(ctx, key, |user| user.may_access_key(key, flags), false)
            .map_err(|()| err_noperm_key(name, self.access == Access::Write))
    }

    /// [`Self::key`] for a key that has no Redis string yet; makes one only
    /// when the check can fail.
    pub fn key_named(&self, ctx: &Context, name: &str) -> Result<()> {
        if !self.restricted() {
            return Ok(());
        }
        self.key(ctx, &ffi::redis_string(ctx, name.as_bytes()), name)
    }

    /// Checks that the user may publish on `channel` (named `name`).
    ///
    /// # Errors
    /// `NOPERM` when the user may not.
    pub fn publish(&self, ctx: &Context, channel: &RedisString, name: &str) -> Result<()> {
        self.check(ctx, channel, |user| user.may_publish(channel), true)
            .map_err(|()| err_noperm_channel(name))
    }

    fn check(
        &self,
        ctx: &Context,
        object: &RedisString,
        allowed: impl FnOnce(&AclUser) -> bool,
        channel: bool,
    ) -> std::result::Result<(), ()> {
        match &self.caller {
            Caller::Unrestricted => Ok(()),
            Caller::User(user) if allowed(user) => Ok(()),
            Caller::User(user) => {
                user.log_denied(ctx, object, channel);
                Err(())
            }
            Caller::Unknown => Err(()),
        }
    }
}
