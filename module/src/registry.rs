//! The command table: one entry per command, with everything Redis is told
//! about it (flags, ACL categories, arity, key spec, `COMMAND DOCS`) and what
//! it needs from the caller's ACL. Adding a command is adding one entry to
//! the `commands!` table below.
//!
//! What the server can take differs by version:
//!
//! - Redis 7.0+: command flags, and through `RedisModule_SetCommandInfo` the
//!   summary, complexity, since, arity, arguments and key specs. Module
//!   commands are in no ACL category.
//! - Redis 7.2+: `RedisModule_SetCommandACLCategories` puts each command in
//!   `@read` or `@write`, `@fast` or `@slow`, and `@pubsub`.
//! - Redis 7.4+ and Valkey: `RedisModule_AddACLCategory` adds `@violet`,
//!   holding every Violet command.

use crate::acl::{Access, Needs};
use crate::commands::{self, Args};
use crate::ffi::{self, CommandHandler, CommandRegistration, DocArg};
use redis_module::{raw, Context, RedisResult, Status};
use std::ffi::{CStr, CString};

/// The ACL category holding every Violet command, where the server allows it.
pub const CATEGORY: &CStr = c"violet";

/// The version of the module in which the commands first appeared.
const FIRST_VERSION: &CStr = c"0.1.0";

/// One command.
pub struct Command {
    pub name: &'static CStr,
    pub run: fn(&Context, Needs, Args) -> RedisResult,
    pub needs: Needs,
    /// O(1) (`@fast`), or may touch many entries (`@slow`).
    pub fast: bool,
    /// Refused when Redis is over `maxmemory` (only for commands that add data).
    pub deny_oom: bool,
    /// Redis's arity: the exact argument count with the name, or its negated minimum.
    pub arity: i32,
    pub summary: &'static CStr,
    pub complexity: &'static CStr,
    pub since: &'static CStr,
    /// The arguments after the name, for `COMMAND DOCS`.
    pub args: &'static [DocArg],
}

impl Command {
    /// `RedisModule_CreateCommand` flags.
    pub fn flags(&self) -> String {
        let mut flags = vec![match self.needs.access {
            Access::Read => "readonly",
            Access::Write => "write",
        }];
        if self.deny_oom {
            flags.push("deny-oom");
        }
        if self.fast {
            flags.push("fast");
        }
        if self.needs.publishes {
            flags.push("pubsub");
        }
        flags.join(" ")
    }

    /// ACL categories, with `@violet` when the server has it.
    pub fn acl_categories(&self, violet: bool) -> String {
        let mut categories = vec![
            match self.needs.access {
                Access::Read => "read",
                Access::Write => "write",
            },
            if self.fast { "fast" } else { "slow" },
        ];
        if self.needs.publishes {
            categories.push("pubsub");
        }
        if violet {
            categories.push(CATEGORY.to_str().unwrap_or("violet"));
        }
        categories.join(" ")
    }

    /// Key-spec flags of the namespace argument: routed like a key, but not a
    /// key to ACL (`NOT_KEY`), with what the command does to the namespace.
    fn namespace_flags(&self) -> u64 {
        let access = match self.needs.access {
            Access::Read => raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
            Access::Write => {
                raw::REDISMODULE_CMD_KEY_RW
                    | raw::REDISMODULE_CMD_KEY_ACCESS
                    | raw::REDISMODULE_CMD_KEY_UPDATE
            }
        };
        u64::from(access | raw::REDISMODULE_CMD_KEY_NOT_KEY)
    }
}

const NAMESPACE_NOTES: &CStr = c"The namespace NS is not a key: it routes the command like one. The command works on the keys violet:{NS}:*, in the same slot, and checks the caller's ACL on those keys itself.";

const fn arg(name: &'static CStr, kind: raw::RedisModuleCommandArgType) -> DocArg {
    DocArg {
        name,
        kind,
        token: None,
        flags: raw::REDISMODULE_CMD_ARG_NONE,
        subargs: &[],
    }
}

const fn string(name: &'static CStr) -> DocArg {
    arg(
        name,
        raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
    )
}

/// `[token n]`.
const fn option(name: &'static CStr, token: &'static CStr) -> DocArg {
    DocArg {
        token: Some(token),
        flags: raw::REDISMODULE_CMD_ARG_OPTIONAL,
        ..arg(
            name,
            raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
        )
    }
}

/// `field value [field value ...]`, optional or not.
const fn fields(flags: u32) -> DocArg {
    DocArg {
        flags,
        subargs: FIELD_VALUE,
        ..arg(
            c"data",
            raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK,
        )
    }
}

const NAMESPACE: DocArg = string(c"namespace");
const SOCKET: DocArg = string(c"socket");
const NODE: DocArg = string(c"node");
const CURSOR: DocArg = option(c"cursor", c"CURSOR");
const COUNT: DocArg = option(c"count", c"COUNT");
const TTL_MS: DocArg = DocArg {
    flags: raw::REDISMODULE_CMD_ARG_OPTIONAL,
    ..arg(
        c"ttl-ms",
        raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
    )
};
const FULL: DocArg = DocArg {
    token: Some(c"FULL"),
    flags: raw::REDISMODULE_CMD_ARG_OPTIONAL,
    ..arg(
        c"full",
        raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
    )
};
const ROOM_ID: DocArg = string(c"room");
const FIELD_VALUE: &[DocArg] = &[string(c"field"), string(c"value")];
const FIELDS: DocArg = fields(raw::REDISMODULE_CMD_ARG_MULTIPLE);
const OPTIONAL_FIELDS: DocArg =
    fields(raw::REDISMODULE_CMD_ARG_OPTIONAL | raw::REDISMODULE_CMD_ARG_MULTIPLE);
const READ: Needs = Needs {
    access: Access::Read,
    publishes: false,
};
const WRITE: Needs = Needs {
    access: Access::Write,
    publishes: true,
};
/// Changes keys and publishes nothing: `VIOLET.LEASE`.
const WRITE_QUIETLY: Needs = Needs {
    access: Access::Write,
    publishes: false,
};

/// A registered command and the function Redis calls for it.
pub struct Entry {
    pub command: &'static Command,
    pub handler: CommandHandler,
}

/// Declares each command once: its table entry and its entry point.
macro_rules! commands {
    ($($name:ident = $command:expr;)*) => {
        $(
            #[allow(non_upper_case_globals)]
            static $name: Command = $command;
        )*

        mod handlers {
            use super::*;
            $(
                #[allow(non_snake_case)]
                pub extern "C" fn $name(
                    ctx: *mut raw::RedisModuleCtx,
                    argv: *mut *mut raw::RedisModuleString,
                    argc: std::os::raw::c_int,
                ) -> std::os::raw::c_int {
                    ffi::run_command(ctx, argv, argc, |ctx, args| {
                        commands::dispatch(&super::$name, ctx, args)
                    })
                }
            )*
        }

        /// Every command, in registration order.
        pub static COMMANDS: &[Entry] = &[
            $(Entry { command: &$name, handler: handlers::$name },)*
        ];
    };
}

commands! {
    CREATE = Command {
        name: c"VIOLET.CREATE",
        run: commands::create,
        needs: WRITE,
        fast: true,
        deny_oom: true,
        arity: -4,
        summary: c"Creates a room and moves the socket into it as its owner",
        complexity: c"O(1)",
        since: FIRST_VERSION,
        args: &[NAMESPACE, SOCKET, ROOM_ID, OPTIONAL_FIELDS],
    };
    JOIN = Command {
        name: c"VIOLET.JOIN",
        run: commands::join,
        needs: WRITE,
        fast: true,
        deny_oom: true,
        arity: 4,
        summary: c"Moves the socket into an existing room, out of the room it was in",
        complexity: c"O(1)",
        since: FIRST_VERSION,
        args: &[NAMESPACE, SOCKET, ROOM_ID],
    };
    LEAVE = Command {
        name: c"VIOLET.LEAVE",
        run: commands::leave,
        needs: WRITE,
        fast: true,
        deny_oom: false,
        arity: 3,
        summary: c"Takes the socket out of its room, destroying the room if it empties",
        complexity: c"O(1)",
        since: FIRST_VERSION,
        args: &[NAMESPACE, SOCKET],
    };
    UPDATE = Command {
        name: c"VIOLET.UPDATE",
        run: commands::update,
        needs: WRITE,
        fast: true,
        deny_oom: true,
        arity: -5,
        summary: c"Sets details of a room",
        complexity: c"O(1)",
        since: FIRST_VERSION,
        args: &[NAMESPACE, ROOM_ID, FIELDS],
    };
    SAY = Command {
        name: c"VIOLET.SAY",
        run: commands::say,
        needs: Needs { access: Access::Read, publishes: true },
        fast: true,
        deny_oom: false,
        arity: 4,
        summary: c"Publishes a message to the room the socket is in",
        complexity: c"O(1)",
        since: FIRST_VERSION,
        args: &[NAMESPACE, SOCKET, string(c"data")],
    };
    TOP = Command {
        name: c"VIOLET.TOP",
        run: commands::top,
        needs: READ,
        fast: false,
        deny_oom: false,
        arity: -2,
        summary: c"Lists public rooms by viewers, most first",
        complexity: c"O(log(N) + M) with N public rooms and M the rooms listed",
        since: FIRST_VERSION,
        args: &[
            NAMESPACE,
            option(c"count", c"COUNT"),
            option(c"offset", c"OFFSET"),
            option(c"maxbytes", c"MAXBYTES"),
        ],
    };
    ROOM = Command {
        name: c"VIOLET.ROOM",
        run: commands::room_info,
        needs: READ,
        fast: true,
        deny_oom: false,
        arity: 3,
        summary: c"Returns a room's viewers and details",
        complexity: c"O(1)",
        since: FIRST_VERSION,
        args: &[NAMESPACE, ROOM_ID],
    };
    MEMBERS = Command {
        name: c"VIOLET.MEMBERS",
        run: commands::members,
        needs: READ,
        fast: false,
        deny_oom: false,
        arity: -3,
        summary: c"Returns a page of the sockets in a room and the cursor of the next page",
        complexity: c"O(N) with N the page size (COUNT, 100 by default, at most 500)",
        since: FIRST_VERSION,
        args: &[NAMESPACE, ROOM_ID, CURSOR, COUNT],
    };
    WHERE = Command {
        name: c"VIOLET.WHERE",
        run: commands::where_is,
        needs: READ,
        fast: true,
        deny_oom: false,
        arity: 3,
        summary: c"Returns the room a socket is in",
        complexity: c"O(1)",
        since: FIRST_VERSION,
        args: &[NAMESPACE, SOCKET],
    };
    CHECK = Command {
        name: c"VIOLET.CHECK",
        run: commands::check,
        needs: READ,
        fast: false,
        deny_oom: false,
        arity: -2,
        summary: c"Verifies every invariant of a namespace; FULL also walks the keyspace for stray keys",
        complexity: c"O(N) with N the nodes, sockets and rooms of the namespace; with FULL, O(keyspace) more",
        since: FIRST_VERSION,
        args: &[NAMESPACE, FULL],
    };
    LEASE = Command {
        name: c"VIOLET.LEASE",
        run: commands::lease,
        needs: WRITE_QUIETLY,
        fast: true,
        deny_oom: true,
        arity: -3,
        summary: c"Renews or creates a node's lease on its sockets: renewed, created, or expired while they are reaped",
        complexity: c"O(log N) with N the nodes of the namespace",
        since: FIRST_VERSION,
        args: &[NAMESPACE, NODE, TTL_MS],
    };
    RELEASE = Command {
        name: c"VIOLET.RELEASE",
        run: commands::release,
        needs: WRITE,
        fast: false,
        deny_oom: false,
        arity: 3,
        summary: c"Ends a node's lease now; its sockets leave their rooms (past the reaper's batch, on its next runs)",
        complexity: c"O(M) with M the node's sockets, at most the reaper's batch at once",
        since: FIRST_VERSION,
        args: &[NAMESPACE, NODE],
    };
}

/// Registers every command; runs while the module loads.
pub fn register(ctx: &Context) -> Status {
    let missing = ffi::missing_apis();
    if !missing.is_empty() {
        ctx.log_warning(&format!(
            "Violet needs Redis 7.0 or newer; this server lacks RedisModule_{}",
            missing.join(", RedisModule_")
        ));
        return Status::Err;
    }
    let violet = ffi::add_acl_category(ctx, CATEGORY);
    let mut with_categories = true;
    for entry in COMMANDS {
        let command = entry.command;
        let (Ok(flags), Ok(categories)) = (
            CString::new(command.flags()),
            CString::new(command.acl_categories(violet)),
        ) else {
            return Status::Err;
        };
        let registration = CommandRegistration {
            name: command.name,
            handler: entry.handler,
            flags: &flags,
            acl_categories: &categories,
            arity: command.arity,
            summary: command.summary,
            complexity: command.complexity,
            since: command.since,
            namespace_flags: command.namespace_flags(),
            namespace_notes: NAMESPACE_NOTES,
            args: command.args,
        };
        match ffi::register_command(ctx, &registration) {
            Ok(registered) => with_categories &= registered.acl_categories,
            Err(error) => {
                ctx.log_warning(&format!("Violet: {error}"));
                return Status::Err;
            }
        }
    }
    ctx.log_notice(match (with_categories, violet) {
        (true, true) => "Violet: commands are in ACL categories, and all in @violet",
        (true, false) => {
            "Violet: commands are in ACL categories; this server cannot add @violet (Redis 7.4+)"
        }
        _ => {
            "Violet: this server cannot put module commands in ACL categories (Redis 7.2+): \
             grant VIOLET.* commands by name"
        }
    });
    Status::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(name: &str) -> &'static Command {
        COMMANDS
            .iter()
            .map(|e| e.command)
            .find(|c| c.name.to_str() == Ok(name))
            .unwrap()
    }

    #[test]
    fn flags_and_categories_follow_what_each_command_does() {
        let join = command("VIOLET.JOIN");
        assert_eq!(join.flags(), "write deny-oom fast pubsub");
        assert_eq!(join.acl_categories(true), "write fast pubsub violet");
        assert_eq!(command("VIOLET.LEAVE").flags(), "write fast pubsub");
        assert_eq!(
            command("VIOLET.SAY").acl_categories(false),
            "read fast pubsub"
        );
        for slow in ["VIOLET.TOP", "VIOLET.MEMBERS", "VIOLET.CHECK"] {
            // (VIOLET.RELEASE is slow too, and writes.)
            assert_eq!(command(slow).flags(), "readonly");
            assert_eq!(command(slow).acl_categories(false), "read slow");
        }
        assert_eq!(
            command("VIOLET.ROOM").acl_categories(true),
            "read fast violet"
        );
    }

    #[test]
    fn every_command_publishes_iff_it_writes_except_say_and_lease() {
        for entry in COMMANDS {
            let c = entry.command;
            let writes = c.needs.access == Access::Write;
            let name = c.name.to_str();
            let say = name == Ok("VIOLET.SAY");
            let lease = name == Ok("VIOLET.LEASE");
            assert_eq!(c.needs.publishes, (writes || say) && !lease, "{:?}", c.name);
            assert!(
                c.arity.abs() >= 2,
                "{:?} takes at least the namespace",
                c.name
            );
        }
    }
}
