//! The only `unsafe` in Violet: the few Redis APIs that the safe bindings lack.

use redis_module::{raw, Context, ContextFlags, KeyType, RedisString};
use std::ffi::{CStr, CString};
use std::os::raw::c_char;

/// How a server publishes Violet's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pubsub {
    /// Classic pub/sub (`RedisModule_PublishMessage`, as `PUBLISH`): what a
    /// server without cluster mode does, where subscribers `SUBSCRIBE`.
    Classic,
    /// Sharded pub/sub (`RedisModule_PublishMessageShard`, as `SPUBLISH`):
    /// what a server in cluster mode does, where subscribers `SSUBSCRIBE`
    /// on the node that owns the namespace's slot, or on one of its replicas.
    Sharded,
}

/// How this server publishes events: [`Pubsub::Sharded`] in cluster mode
/// (`REDISMODULE_CTX_FLAGS_CLUSTER`), [`Pubsub::Classic`] otherwise.
///
/// On a cluster, a classic publish goes over the cluster bus to every node,
/// so each event costs every node some work and bus traffic, however few
/// subscribers it has, and the cost grows with the cluster. A shard publish
/// reaches only the nodes of the shard that owns the channel's slot, and
/// every events channel names its namespace's hash tag, so it hashes to the
/// namespace's slot: the node where the command ran, and its replicas.
///
/// A server in cluster mode that lacks `RedisModule_PublishMessageShard`
/// (older than Redis 7.0, which Violet refuses at load anyway) publishes
/// classically, as before. Reading the context flags is cheap (Redis reads
/// its own state, with no allocation and no I/O); a command asks once, when
/// it first publishes (see `RedisStore`).
pub fn pubsub(ctx: &Context) -> Pubsub {
    let cluster = ctx.get_flags().contains(ContextFlags::CLUSTER);
    if cluster && shard_publish_exists() {
        Pubsub::Sharded
    } else {
        Pubsub::Classic
    }
}

/// Whether the server has `RedisModule_PublishMessageShard` (Redis 7.0+, Valkey).
pub fn shard_publish_exists() -> bool {
    // SAFETY: the function pointer is set by `RedisModule_Init` at load, before
    // any command runs, and is only read (copied) afterwards.
    unsafe { raw::RedisModule_PublishMessageShard }.is_some()
}

/// Publishes `message` on `channel` the way `pubsub` says (see [`pubsub`]):
/// `RedisModule_PublishMessage` or `RedisModule_PublishMessageShard`. Unlike
/// a `PUBLISH` or `SPUBLISH` through `RedisModule_Call`, neither is
/// replicated as a command; on a cluster Redis forwards the message itself,
/// to every node (classic) or to the nodes of this shard (sharded).
pub fn publish(ctx: &Context, pubsub: Pubsub, channel: &RedisString, message: &str) {
    let message = redis_string(ctx, message.as_bytes());
    // SAFETY: the function pointers are set by `RedisModule_Init` at load,
    // before any command runs, and are only read afterwards.
    let (sharded, classic) = unsafe {
        (
            raw::RedisModule_PublishMessageShard,
            raw::RedisModule_PublishMessage,
        )
    };
    let function = match pubsub {
        Pubsub::Sharded => sharded.or(classic),
        Pubsub::Classic => classic,
    };
    let Some(publish) = function else {
        ctx.log_warning("RedisModule_PublishMessage is missing: event not published");
        return;
    };
    // SAFETY: `ctx.ctx` is the context of the command (or timer) now running;
    // `channel` and `message` are live Redis strings owned here until after
    // the call, and Redis copies what it keeps. Both functions take the same
    // arguments.
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

// ---------------------------------------------------------------------------
// Commands: registration and the entry point Redis calls.
// ---------------------------------------------------------------------------

/// The signature Redis calls a command with.
pub type CommandHandler = extern "C" fn(
    *mut raw::RedisModuleCtx,
    *mut *mut raw::RedisModuleString,
    std::os::raw::c_int,
) -> std::os::raw::c_int;

/// Runs a command: wraps Redis's arguments, calls `run`, sends its reply.
pub fn run_command(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: std::os::raw::c_int,
    run: impl FnOnce(&Context, Vec<RedisString>) -> redis_module::RedisResult,
) -> std::os::raw::c_int {
    let context = Context::new(ctx);
    let args = redis_module::decode_args(ctx, argv, argc);
    match run(&context, args) {
        // `Context::reply` writes error text one `char` to a byte, which
        // turns any non-ASCII input quoted in the message into invalid UTF-8.
        Err(redis_module::RedisError::String(message)) => reply_error(&context, &message),
        reply => context.reply(reply) as std::os::raw::c_int,
    }
}

/// Replies with the error `message`, its UTF-8 kept whole; a line break or
/// NUL (which Violet's messages never hold, since quoted input is escaped)
/// would become a space, so the reply stays one line.
pub fn reply_error(ctx: &Context, message: &str) -> std::os::raw::c_int {
    let line: Vec<u8> = message
        .bytes()
        .map(|b| {
            if matches!(b, b'\r' | b'\n' | 0) {
                b' '
            } else {
                b
            }
        })
        .collect();
    let line = CString::new(line).unwrap_or_default();
    // SAFETY: `ctx.ctx` is the running command's context; `line` is a valid C
    // string that lives until after the call, and Redis copies it.
    unsafe { raw::RedisModule_ReplyWithError.map_or(1, |f| f(ctx.ctx, line.as_ptr())) }
}

/// A command argument as `COMMAND DOCS` shows it.
pub struct DocArg {
    pub name: &'static CStr,
    pub kind: raw::RedisModuleCommandArgType,
    pub token: Option<&'static CStr>,
    pub flags: u32,
    pub subargs: &'static [DocArg],
}

/// Everything Redis is told about one command.
pub struct CommandRegistration<'a> {
    pub name: &'static CStr,
    pub handler: CommandHandler,
    /// `RedisModule_CreateCommand` flags (`write deny-oom fast`, ...).
    pub flags: &'a CStr,
    /// ACL categories (`write fast pubsub`, ...), set where the server can.
    pub acl_categories: &'a CStr,
    pub arity: i32,
    pub summary: &'static CStr,
    pub complexity: &'static CStr,
    pub since: &'static CStr,
    /// Key-spec flags of argument 1, the namespace (`REDISMODULE_CMD_KEY_*`).
    pub namespace_flags: u64,
    pub namespace_notes: &'static CStr,
    pub args: &'static [DocArg],
}

/// What registration could do on this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// `RedisModule_SetCommandACLCategories` exists (Redis 7.2+, Valkey).
    pub acl_categories: bool,
}

/// The Redis APIs Violet cannot run without; a server that lacks one (older
/// than Redis 7.0) is refused at load rather than running without ACL checks.
pub fn missing_apis() -> Vec<&'static str> {
    // SAFETY: the function pointers are set by `RedisModule_Init` at load,
    // before this runs, and are only read (copied) afterwards.
    let present = unsafe {
        [
            (
                "CreateCommand",
                { raw::RedisModule_CreateCommand }.is_some(),
            ),
            ("GetCommand", { raw::RedisModule_GetCommand }.is_some()),
            (
                "SetCommandInfo",
                { raw::RedisModule_SetCommandInfo }.is_some(),
            ),
            ("GetClientId", { raw::RedisModule_GetClientId }.is_some()),
            (
                "GetClientUserNameById",
                { raw::RedisModule_GetClientUserNameById }.is_some(),
            ),
            (
                "GetCurrentUserName",
                { raw::RedisModule_GetCurrentUserName }.is_some(),
            ),
            (
                "GetModuleUserFromUserName",
                { raw::RedisModule_GetModuleUserFromUserName }.is_some(),
            ),
            (
                "FreeModuleUser",
                { raw::RedisModule_FreeModuleUser }.is_some(),
            ),
            (
                "ACLCheckKeyPermissions",
                { raw::RedisModule_ACLCheckKeyPermissions }.is_some(),
            ),
            (
                "ACLCheckChannelPermissions",
                { raw::RedisModule_ACLCheckChannelPermissions }.is_some(),
            ),
            (
                "ACLAddLogEntry",
                { raw::RedisModule_ACLAddLogEntry }.is_some(),
            ),
            ("FreeString", { raw::RedisModule_FreeString }.is_some()),
        ]
    };
    present
        .into_iter()
        .filter(|(_, present)| !present)
        .map(|(name, _)| name)
        .collect()
}

/// Adds an ACL category (`RedisModule_AddACLCategory`, Redis 7.4+ and
/// Valkey). The bindings predate it, so it is looked up by name; returns
/// whether the category now exists. Only valid while the module loads.
pub fn add_acl_category(ctx: &Context, name: &CStr) -> bool {
    type AddAclCategory =
        unsafe extern "C" fn(*mut raw::RedisModuleCtx, *const c_char) -> std::os::raw::c_int;
    // SAFETY: as above, the pointer is set at load and only read afterwards.
    let Some(get_api) = (unsafe { raw::RedisModule_GetApi }) else {
        return false;
    };
    let mut function: Option<AddAclCategory> = None;
    // SAFETY: `RedisModule_GetApi` writes one function pointer (or nothing)
    // into the `Option<fn>`, which has the layout of a nullable pointer.
    let found = unsafe {
        get_api(
            c"RedisModule_AddACLCategory".as_ptr(),
            (&raw mut function).cast::<std::ffi::c_void>(),
        )
    };
    let Some(add) = function.filter(|_| found == raw::REDISMODULE_OK as i32) else {
        return false;
    };
    // SAFETY: `ctx` is the context `RedisModule_OnLoad` runs with, and `name`
    // is a NUL-terminated string that Redis copies.
    unsafe { add(ctx.ctx, name.as_ptr()) == raw::REDISMODULE_OK as i32 }
}

/// Registers one command with its flags, documentation, key spec and, where
/// the server supports it, ACL categories.
pub fn register_command(
    ctx: &Context,
    command: &CommandRegistration<'_>,
) -> Result<Registered, String> {
    let name = command.name.to_string_lossy();
    // SAFETY: the pointers were checked by `missing_apis` at load and are only
    // read afterwards; every string passed is NUL-terminated and lives until
    // the call returns (Redis copies what it keeps); `handler` is a plain
    // `extern "C"` function with the signature Redis calls.
    unsafe {
        let create = raw::RedisModule_CreateCommand.ok_or("no RedisModule_CreateCommand")?;
        let created = create(
            ctx.ctx,
            command.name.as_ptr(),
            Some(command.handler),
            command.flags.as_ptr(),
            0,
            0,
            0,
        );
        if created != raw::REDISMODULE_OK as i32 {
            return Err(format!("RedisModule_CreateCommand refused {name}"));
        }
        let get = raw::RedisModule_GetCommand.ok_or("no RedisModule_GetCommand")?;
        let handle = get(ctx.ctx, command.name.as_ptr());
        if handle.is_null() {
            return Err(format!("{name} is missing after its registration"));
        }
        let mut key_specs = [namespace_key_spec(command), zeroed_key_spec()];
        let args = DocArgs::build(command.args);
        let info = raw::RedisModuleCommandInfo {
            version: &COMMAND_INFO_VERSION,
            summary: command.summary.as_ptr(),
            complexity: command.complexity.as_ptr(),
            since: command.since.as_ptr(),
            history: std::ptr::null_mut(),
            tips: std::ptr::null(),
            arity: command.arity,
            key_specs: key_specs.as_mut_ptr(),
            args: args.root(),
        };
        let set_info = raw::RedisModule_SetCommandInfo.ok_or("no RedisModule_SetCommandInfo")?;
        if set_info(handle, &info) != raw::REDISMODULE_OK as i32 {
            return Err(format!("RedisModule_SetCommandInfo refused {name}"));
        }
        let acl_categories = match raw::RedisModule_SetCommandACLCategories {
            Some(set_categories) => {
                if set_categories(handle, command.acl_categories.as_ptr())
                    != raw::REDISMODULE_OK as i32
                {
                    return Err(format!(
                        "RedisModule_SetCommandACLCategories refused {:?} for {name}",
                        command.acl_categories
                    ));
                }
                true
            }
            None => false,
        };
        Ok(Registered { acl_categories })
    }
}

static COMMAND_INFO_VERSION: raw::RedisModuleCommandInfoVersion =
    raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };

/// Argument 1 as one key, for cluster routing, with the command's flags.
fn namespace_key_spec(command: &CommandRegistration<'_>) -> raw::RedisModuleCommandKeySpec {
    raw::RedisModuleCommandKeySpec {
        notes: command.namespace_notes.as_ptr(),
        flags: command.namespace_flags,
        begin_search_type: raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX,
        bs: raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
            index: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: 1 },
        },
        find_keys_type: raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE,
        fk: raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
            range: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
                lastkey: 0,
                keystep: 1,
                limit: 0,
            },
        },
    }
}

/// The all-zero key spec that ends the list.
fn zeroed_key_spec() -> raw::RedisModuleCommandKeySpec {
    // SAFETY: the key spec is plain C data (pointers, integers, unions of
    // integers) for which all zeros is valid: it is the list terminator.
    unsafe { std::mem::zeroed() }
}

/// `COMMAND DOCS` arguments in Redis's layout: NULL-terminated arrays whose
/// nested arrays are owned here until `RedisModule_SetCommandInfo` has copied
/// them.
struct DocArgs {
    levels: Vec<Vec<raw::RedisModuleCommandArg>>,
}

impl DocArgs {
    fn build(args: &[DocArg]) -> Self {
        let mut levels = Vec::new();
        Self::level(args, &mut levels);
        Self { levels }
    }

    /// Builds one array (children first, so their addresses are final) and
    /// returns its index in `levels`.
    fn level(args: &[DocArg], levels: &mut Vec<Vec<raw::RedisModuleCommandArg>>) -> usize {
        let mut level = Vec::with_capacity(args.len() + 1);
        for arg in args {
            let subargs = if arg.subargs.is_empty() {
                std::ptr::null_mut()
            } else {
                let index = Self::level(arg.subargs, levels);
                levels[index].as_mut_ptr()
            };
            level.push(raw::RedisModuleCommandArg {
                name: arg.name.as_ptr(),
                type_: arg.kind,
                key_spec_index: -1,
                token: arg.token.map_or(std::ptr::null(), CStr::as_ptr),
                summary: std::ptr::null(),
                since: std::ptr::null(),
                flags: arg.flags as i32,
                deprecated_since: std::ptr::null(),
                subargs,
                display_text: std::ptr::null(),
            });
        }
        // SAFETY: an all-zero argument (NULL name) ends the array.
        level.push(unsafe { std::mem::zeroed() });
        levels.push(level);
        levels.len() - 1
    }

    fn root(&self) -> *mut raw::RedisModuleCommandArg {
        // The top level is built last. Moving a `Vec` into `levels` moves no
        // element, so the addresses taken for `subargs` stay valid.
        self.levels
            .last()
            .map_or(std::ptr::null_mut(), |l| l.as_ptr().cast_mut())
    }
}

// ---------------------------------------------------------------------------
// ACL: the user a command runs as, and its key and channel permissions.
// ---------------------------------------------------------------------------

/// Who is running the command now running.
pub enum Caller {
    /// A client without an ACL user: the replication link, the AOF loader, or
    /// another module's `RedisModule_Call` without the `C` flag. Redis lets
    /// those run anything; so does Violet.
    Unrestricted,
    /// A client acting as an ACL user: a connection, or a Lua script or
    /// function running for one.
    User(AclUser),
    /// The client's user could not be found; nothing is allowed.
    Unknown,
}

/// An ACL user, released when dropped (`RedisModule_FreeModuleUser`).
pub struct AclUser(std::ptr::NonNull<raw::RedisModuleUser>);

/// The client id Redis gives the AOF loader (`CLIENT_ID_AOF`).
const AOF_CLIENT_ID: u64 = u64::MAX;

/// The user of the client running the current command.
///
/// A connected client is found by id (`RedisModule_GetClientUserNameById`),
/// which answers NULL for a client without a user instead of failing. A
/// client that is not a connection (a Lua script's, another module's) is
/// not found that way; `RedisModule_GetCurrentUserName` would read its user
/// without checking for NULL, so for those a `RedisModule_Call` with the `C`
/// flag first tells whether the client has a user at all.
pub fn caller(ctx: &Context) -> Caller {
    // SAFETY: the pointers were checked at load and are only read afterwards;
    // `ctx.ctx` is the context of the command now running.
    let id = unsafe { raw::RedisModule_GetClientId.map_or(0, |f| f(ctx.ctx)) };
    if id == 0 || id == AOF_CLIENT_ID {
        return Caller::Unrestricted;
    }
    // SAFETY: as above; a non-NULL result is a new string owned here.
    let mut name = unsafe {
        raw::RedisModule_GetClientUserNameById.map_or(std::ptr::null_mut(), |f| f(ctx.ctx, id))
    };
    if name.is_null() {
        if !client_has_user(ctx) {
            return Caller::Unrestricted;
        }
        // SAFETY: the client has a user (checked just above), which is all
        // `RedisModule_GetCurrentUserName` needs; the result is owned here.
        name = unsafe {
            raw::RedisModule_GetCurrentUserName.map_or(std::ptr::null_mut(), |f| f(ctx.ctx))
        };
        if name.is_null() {
            return Caller::Unknown;
        }
    }
    // SAFETY: `name` is a live string owned here, freed right after the
    // lookup, which copies nothing from it.
    let user = unsafe {
        let user =
            raw::RedisModule_GetModuleUserFromUserName.map_or(std::ptr::null_mut(), |f| f(name));
        if let Some(free) = raw::RedisModule_FreeString {
            free(ctx.ctx, name);
        }
        user
    };
    std::ptr::NonNull::new(user).map_or(Caller::Unknown, |user| Caller::User(AclUser(user)))
}

/// Whether the current client has an ACL user. `RedisModule_Call` with the
/// `C` flag (run as the client's user) fails with "cannot run as user" before
/// it even looks the command up when there is none; with a user, the unknown
/// command fails without running anything and without an ACL log entry.
fn client_has_user(ctx: &Context) -> bool {
    static AS_USER: std::sync::LazyLock<redis_module::CallOptions> =
        std::sync::LazyLock::new(|| {
            redis_module::CallOptionsBuilder::new()
                .verify_acl()
                .errors_as_replies()
                .build()
        });
    let reply: redis_module::CallResult<'static> =
        ctx.call_ext("VIOLET.NO-SUCH-COMMAND", &AS_USER, &[] as &[&str]);
    match reply {
        Err(error) => !error.to_string().contains("cannot run as user"),
        Ok(_) => true,
    }
}

/// `REDISMODULE_CMD_KEY_ACCESS`: the user may read the key.
pub const KEY_READ: i32 = raw::REDISMODULE_CMD_KEY_ACCESS as i32;
/// `REDISMODULE_CMD_KEY_ACCESS | REDISMODULE_CMD_KEY_UPDATE`: read and write.
pub const KEY_READ_WRITE: i32 =
    (raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_UPDATE) as i32;

impl AclUser {
    /// `RedisModule_ACLCheckKeyPermissions` with `KEY_READ` or `KEY_READ_WRITE`.
    pub fn may_access_key(&self, key: &RedisString, access: i32) -> bool {
        // SAFETY: the user is live while `self` is; `key` is a live string.
        unsafe {
            raw::RedisModule_ACLCheckKeyPermissions.is_some_and(|f| {
                f(self.0.as_ptr(), key.inner, access) == raw::REDISMODULE_OK as i32
            })
        }
    }

    /// `RedisModule_ACLCheckChannelPermissions` for publishing on `channel`.
    pub fn may_publish(&self, channel: &RedisString) -> bool {
        // SAFETY: as above. Since Redis 7.0 the last argument is a set of
        // `REDISMODULE_CMD_CHANNEL_*` flags.
        unsafe {
            raw::RedisModule_ACLCheckChannelPermissions.is_some_and(|f| {
                f(
                    self.0.as_ptr(),
                    channel.inner,
                    raw::REDISMODULE_CMD_CHANNEL_PUBLISH as i32,
                ) == raw::REDISMODULE_OK as i32
            })
        }
    }

    /// Records a refusal in `ACL LOG`, as Redis does for its own commands.
    pub fn log_denied(&self, ctx: &Context, object: &RedisString, channel: bool) {
        let reason = if channel {
            raw::RedisModuleACLLogEntryReason_REDISMODULE_ACL_LOG_CHANNEL
        } else {
            raw::RedisModuleACLLogEntryReason_REDISMODULE_ACL_LOG_KEY
        };
        // SAFETY: the context, the user and the string are all live; Redis
        // copies the object.
        unsafe {
            if let Some(log) = raw::RedisModule_ACLAddLogEntry {
                log(ctx.ctx, self.0.as_ptr(), object.inner, reason);
            }
        }
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        // SAFETY: the user came from `RedisModule_GetModuleUserFromUserName`
        // and is freed once, here.
        unsafe {
            if let Some(free) = raw::RedisModule_FreeModuleUser {
                free(self.0.as_ptr());
            }
        }
    }
}

/// A Redis string of `bytes`, without the intermediate `CString` that
/// `Context::create_string` makes.
pub fn redis_string(ctx: &Context, bytes: &[u8]) -> RedisString {
    RedisString::create_from_slice(ctx.ctx, bytes)
}

// ---------------------------------------------------------------------------
// Writes through the key API, their keyspace events and their replication.
// ---------------------------------------------------------------------------

/// A key opened for reading and writing (`RedisModule_OpenKey`), closed when
/// dropped; closing a key opened for writing signals it modified (`WATCH`).
pub struct WritableKey {
    handle: std::ptr::NonNull<raw::RedisModuleKey>,
}

/// The kind of a keyspace event (`REDISMODULE_NOTIFY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    ZSet,
}

impl WritableKey {
    /// Opens `key` for writing; `None` only if Redis refuses (it does not for
    /// a key name, missing or not).
    pub fn open(ctx: &Context, key: &RedisString) -> Option<Self> {
        let handle = raw::open_key(ctx.ctx, key.inner, raw::KeyMode::READ | raw::KeyMode::WRITE);
        std::ptr::NonNull::new(handle).map(|handle| Self { handle })
    }

    fn raw(&self) -> *mut raw::RedisModuleKey {
        self.handle.as_ptr()
    }

    /// The type of the value, `Empty` for a missing key.
    pub fn kind(&self) -> KeyType {
        // SAFETY: the key is open while `self` lives; the pointer is set at
        // load and only read afterwards.
        KeyType::from(unsafe { raw::RedisModule_KeyType.map_or(0, |f| f(self.raw())) })
    }

    /// The number of elements of the value (0 for a missing key).
    pub fn length(&self) -> u64 {
        // SAFETY: as for `kind`.
        unsafe { raw::RedisModule_ValueLength.map_or(0, |f| f(self.raw())) as u64 }
    }

    /// `RedisModule_ZsetAdd`, with `NX` when `only_new`: whether the sorted
    /// set changed (`Err` if the key holds another type).
    pub fn zset_add(&self, score: f64, member: &RedisString, only_new: bool) -> Result<bool, ()> {
        let mut flags: std::os::raw::c_int = if only_new {
            raw::REDISMODULE_ZADD_NX as i32
        } else {
            0
        };
        // SAFETY: the key is open, `member` is live and copied by Redis, and
        // `flags` is valid for reads and writes during the call.
        let status = unsafe {
            raw::RedisModule_ZsetAdd.map_or(raw::REDISMODULE_ERR as i32, |f| {
                f(self.raw(), score, member.inner, &raw mut flags)
            })
        };
        if status != raw::REDISMODULE_OK as i32 {
            return Err(());
        }
        let changed = (raw::REDISMODULE_ZADD_ADDED | raw::REDISMODULE_ZADD_UPDATED) as i32;
        Ok(flags & changed != 0)
    }
}

impl Drop for WritableKey {
    fn drop(&mut self) {
        raw::close_key(self.raw());
    }
}

/// Fires the keyspace event `event` on `key`, as Redis's own command would
/// (`RedisModule_NotifyKeyspaceEvent`); nothing happens unless
/// `notify-keyspace-events` asks for that kind.
pub fn notify(ctx: &Context, kind: Notify, event: &CStr, key: &RedisString) {
    let kind = match kind {
        Notify::ZSet => raw::REDISMODULE_NOTIFY_ZSET,
    };
    // SAFETY: the context is the running command's (or timer's); `event` is a
    // C string and `key` a live string, both only read during the call.
    unsafe {
        if let Some(f) = raw::RedisModule_NotifyKeyspaceEvent {
            f(ctx.ctx, kind, event.as_ptr(), key.inner);
        }
    }
}

/// Replicates `command args...` to replicas and the AOF once the command
/// ends (`RedisModule_Replicate`), in order with the other effects, wrapped
/// with them in `MULTI`/`EXEC`.
pub fn replicate(ctx: &Context, command: &CStr, args: &[&RedisString]) {
    let mut argv: [*mut raw::RedisModuleString; 8] = [std::ptr::null_mut(); 8];
    let mut many = Vec::new();
    let argv: &mut [*mut raw::RedisModuleString] = if args.len() <= argv.len() {
        for (slot, arg) in argv.iter_mut().zip(args) {
            *slot = arg.inner;
        }
        &mut argv[..args.len()]
    } else {
        many.extend(args.iter().map(|arg| arg.inner));
        &mut many
    };
    // SAFETY: the context is live; the `v` format takes an array of live
    // strings and its length, whose strings Redis retains itself.
    unsafe {
        if let Some(f) = raw::RedisModule_Replicate {
            f(
                ctx.ctx,
                command.as_ptr(),
                c"v".as_ptr(),
                argv.as_mut_ptr(),
                argv.len(),
            );
        }
    }
}

/// `command args...` (`SADD`, `SREM`, `SMOVE`, `HSET`, `HDEL`, `ZREM`,
/// `DEL`) through `RedisModule_Call`, replicated by Redis if it
/// changed anything (the `!` flag: Redis reuses the command it has looked
/// up, cheaper than `RedisModule_Replicate` after it): its integer reply, or
/// the error.
pub fn call_set_write(ctx: &Context, command: &CStr, args: &[&RedisString]) -> Result<i64, String> {
    // SAFETY: the context is live; `ss` and `sss` take as many live strings,
    // passed here, and `v` an array of live strings and its length, which
    // outlives the call; the reply is read, then freed once, here.
    unsafe {
        let call = raw::RedisModule_Call.ok_or("no RedisModule_Call")?;
        let reply = match args {
            [key, member] => call(
                ctx.ctx,
                command.as_ptr(),
                c"!Ess".as_ptr(),
                key.inner,
                member.inner,
            ),
            [source, destination, member] => call(
                ctx.ctx,
                command.as_ptr(),
                c"!Esss".as_ptr(),
                source.inner,
                destination.inner,
                member.inner,
            ),
            _ => {
                let mut argv: Vec<*mut raw::RedisModuleString> =
                    args.iter().map(|arg| arg.inner).collect();
                call(
                    ctx.ctx,
                    command.as_ptr(),
                    c"!Ev".as_ptr(),
                    argv.as_mut_ptr(),
                    argv.len(),
                )
            }
        };
        if reply.is_null() {
            return Err(format!("{} failed", command.to_string_lossy()));
        }
        let kind = raw::RedisModule_CallReplyType.map_or(-1, |f| f(reply));
        let result = if kind == raw::REDISMODULE_REPLY_INTEGER as i32 {
            Ok(raw::RedisModule_CallReplyInteger.map_or(0, |f| f(reply)))
        } else {
            let mut len = 0;
            let text = raw::RedisModule_CallReplyStringPtr
                .map_or(std::ptr::null(), |f| f(reply, &raw mut len));
            Err(if text.is_null() {
                "unexpected reply from Redis".to_owned()
            } else {
                String::from_utf8_lossy(std::slice::from_raw_parts(text.cast::<u8>(), len))
                    .into_owned()
            })
        };
        if let Some(free) = raw::RedisModule_FreeCallReply {
            free(reply);
        }
        result
    }
}

/// `RedisModule_HashGet` of one field of the hash at `key`, opened for
/// reading: `Err` if the key holds another type.
pub fn hash_get(
    ctx: &Context,
    key: &RedisString,
    field: &RedisString,
) -> Result<Option<RedisString>, ()> {
    let handle = raw::open_key(ctx.ctx, key.inner, raw::KeyMode::READ);
    if handle.is_null() {
        return Ok(None);
    }
    // SAFETY: `handle` is open until closed below, and holds a hash where
    // `hash_field` reads it.
    let result = unsafe {
        match KeyType::from(raw::RedisModule_KeyType.map_or(0, |f| f(handle))) {
            KeyType::Empty => Ok(None),
            KeyType::Hash => Ok(hash_field(ctx, handle, field)),
            _ => Err(()),
        }
    };
    raw::close_key(handle);
    result
}

/// `RedisModule_HashGet` of `field` of the hash open as `handle`.
///
/// # Safety
/// `handle` is a key open for reading that holds a hash.
unsafe fn hash_field(
    ctx: &Context,
    handle: *mut raw::RedisModuleKey,
    field: &RedisString,
) -> Option<RedisString> {
    let mut value: *mut raw::RedisModuleString = std::ptr::null_mut();
    // SAFETY: the caller's promise; the value pointer is written by Redis
    // (NULL for a missing field) and the string it points to is owned here,
    // freed by `RedisString`'s drop.
    unsafe {
        if let Some(f) = raw::RedisModule_HashGet {
            f(
                handle,
                raw::REDISMODULE_HASH_NONE as i32,
                field.inner,
                &raw mut value,
                std::ptr::null_mut::<raw::RedisModuleString>(),
            );
        }
    }
    (!value.is_null()).then(|| RedisString::from_redis_module_string(ctx.ctx, value))
}

/// `RedisModule_HashGet` of each of `fields` of the hash at `key`, opened
/// once for reading: a value per field, in order; `Err` if the key holds
/// another type.
pub fn hash_get_many<F: std::ops::Deref<Target = RedisString>>(
    ctx: &Context,
    key: &RedisString,
    fields: &[F],
) -> Result<Vec<Option<RedisString>>, ()> {
    let handle = raw::open_key(ctx.ctx, key.inner, raw::KeyMode::READ);
    if handle.is_null() {
        return Ok(fields.iter().map(|_| None).collect());
    }
    // SAFETY: `handle` is open until closed below, and holds a hash where
    // `hash_field` reads it.
    let result = unsafe {
        match KeyType::from(raw::RedisModule_KeyType.map_or(0, |f| f(handle))) {
            KeyType::Empty => Ok(fields.iter().map(|_| None).collect()),
            KeyType::Hash => Ok(fields
                .iter()
                .map(|field| hash_field(ctx, handle, field))
                .collect()),
            _ => Err(()),
        }
    };
    raw::close_key(handle);
    result
}

/// Every field and value of the hash at `key`, read through the key itself
/// (`RedisModule_ScanKey`) rather than an `HGETALL` call, which makes Redis
/// build a reply for Violet to parse again: about a fifth of the cost per
/// field. Bytes that are not UTF-8 are replaced, as in every read. `Err` if
/// the key holds another type.
pub fn hash_pairs(ctx: &Context, key: &RedisString) -> Result<Vec<(String, String)>, ()> {
    let handle = raw::open_key(ctx.ctx, key.inner, raw::KeyMode::READ);
    if handle.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: `handle` is open until closed below and nothing writes the key
    // meanwhile; `pairs` outlives the scan that `collect_pair` writes it
    // through; the cursor is made and destroyed here.
    let result = unsafe {
        match KeyType::from(raw::RedisModule_KeyType.map_or(0, |f| f(handle))) {
            KeyType::Empty => Ok(Vec::new()),
            KeyType::Hash => {
                let length = raw::RedisModule_ValueLength.map_or(0, |f| f(handle));
                let mut pairs: Vec<(String, String)> = Vec::with_capacity(length);
                if let (Some(create), Some(scan), Some(destroy)) = (
                    raw::RedisModule_ScanCursorCreate,
                    raw::RedisModule_ScanKey,
                    raw::RedisModule_ScanCursorDestroy,
                ) {
                    let cursor = create();
                    // A small hash is scanned in one step; a large one in
                    // several, until the scan says it is done.
                    while scan(
                        handle,
                        cursor,
                        Some(collect_pair),
                        (&raw mut pairs).cast::<std::ffi::c_void>(),
                    ) != 0
                    {}
                    destroy(cursor);
                }
                Ok(pairs)
            }
            _ => Err(()),
        }
    };
    raw::close_key(handle);
    result
}

/// `RedisModule_ScanKey`'s callback for [`hash_pairs`]: adds one field and
/// its value to the `Vec` behind `pairs`.
extern "C" fn collect_pair(
    _key: *mut raw::RedisModuleKey,
    field: *mut raw::RedisModuleString,
    value: *mut raw::RedisModuleString,
    pairs: *mut std::ffi::c_void,
) {
    if field.is_null() || value.is_null() || pairs.is_null() {
        return;
    }
    let text = |string| String::from_utf8_lossy(RedisString::string_as_slice(string)).into_owned();
    // SAFETY: `pairs` is the `Vec` that `hash_pairs` passed to the scan it
    // is still running, borrowed by nothing else meanwhile.
    let pairs = unsafe { &mut *pairs.cast::<Vec<(String, String)>>() };
    pairs.push((text(field), text(value)));
}

/// How many strings a [`Strings`] keeps at most.
const KEPT_STRINGS: usize = 64;
/// How many strings may pass from one command to the next: past this many,
/// a command starts with none (so that each still has room for its own).
const KEPT_ACROSS: usize = 32;
/// The slots of a [`Strings`]' index: a power of two, at least twice
/// [`KEPT_STRINGS`], so that a look-up probes few.
const INDEX_SLOTS: usize = 128;

/// The strings kept, each with its bytes as Redis holds them (so that a
/// look-up compares Rust slices without calling into Redis), and an
/// open-addressing index of them by the hash of their bytes: each slot
/// holds 0 or the position of a string plus one.
struct Kept {
    strings: Vec<(RedisString, *const u8, usize)>,
    index: [u8; INDEX_SLOTS],
}

impl Kept {
    const fn new() -> Self {
        Self {
            strings: Vec::new(),
            index: [0; INDEX_SLOTS],
        }
    }

    fn clear(&mut self) {
        self.strings.clear();
        self.index = [0; INDEX_SLOTS];
    }
}

thread_local! {
    /// The strings the last command kept, for the next one.
    static KEPT_BETWEEN: std::cell::RefCell<Kept> = const { std::cell::RefCell::new(Kept::new()) };
}

/// The slot where the look-up of `bytes` starts: a multiplicative hash of
/// their words (FxHash's), folded to the index's size. The last word of a
/// string of 8 bytes or more overlaps the one before it rather than being
/// copied out (a call to `memcpy` for a few bytes).
fn slot_of(bytes: &[u8]) -> usize {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let word = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().unwrap_or_default());
    let mix = |hash: u64, word: u64| (hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    let mut hash = bytes.len() as u64;
    if bytes.len() >= 8 {
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            hash = mix(hash, word(chunk));
        }
        if !words.remainder().is_empty() {
            hash = mix(hash, word(&bytes[bytes.len() - 8..]));
        }
    } else {
        let mut tail = 0u64;
        for (i, &byte) in bytes.iter().enumerate() {
            tail |= u64::from(byte) << (8 * i);
        }
        hash = mix(hash, tail);
    }
    // The high bits are the best mixed.
    (hash >> 57) as usize % INDEX_SLOTS
}

/// The Redis strings commands have made (key names, fields, members), kept
/// so that a name used again is not made again: a move names the ranking
/// three times, the socket four, and the next command on the namespace names
/// the ranking, the events channel, its node's hash and the `visibility`
/// field again. A command takes the strings the last one left (all of them,
/// unless they are more than [`KEPT_ACROSS`]) and leaves its own when it
/// ends. They are plain counted Redis strings, made without a context, which
/// Redis never changes: commands given one as an argument copy it or take
/// another reference. A look-up hashes the bytes once and compares the few
/// strings in its slots of the index.
pub struct Strings {
    kept: std::cell::RefCell<Kept>,
}

/// A string from [`Strings`]: kept there, or made for one use once it is full.
pub enum Str<'s> {
    Kept(&'s RedisString),
    Made(RedisString),
}

impl std::ops::Deref for Str<'_> {
    type Target = RedisString;

    fn deref(&self) -> &RedisString {
        match self {
            Str::Kept(kept) => kept,
            Str::Made(made) => made,
        }
    }
}

impl Strings {
    pub fn new() -> Self {
        let mut kept = KEPT_BETWEEN
            .try_with(|between| std::mem::replace(&mut *between.borrow_mut(), Kept::new()))
            .unwrap_or_else(|_| Kept::new());
        if kept.strings.len() > KEPT_ACROSS {
            kept.clear();
        }
        kept.strings
            .reserve_exact(KEPT_STRINGS - kept.strings.len());
        Self {
            kept: std::cell::RefCell::new(kept),
        }
    }

    /// The string of `bytes`, made only if not kept yet.
    pub fn get(&self, ctx: &Context, bytes: &[u8]) -> Str<'_> {
        let mut kept = self.kept.borrow_mut();
        let kept = &mut *kept;
        let mut slot = slot_of(bytes);
        let index = loop {
            match kept.index[slot] {
                0 => break None,
                entry => {
                    let (_, ptr, len) = kept.strings[usize::from(entry) - 1];
                    // SAFETY: `ptr` and `len` are the bytes of a string kept
                    // (alive and never changed) in this vector.
                    if len == bytes.len()
                        && unsafe { std::slice::from_raw_parts(ptr, len) } == bytes
                    {
                        break Some(usize::from(entry) - 1);
                    }
                    slot = (slot + 1) % INDEX_SLOTS;
                }
            }
        };
        let index = match index {
            Some(index) => index,
            None if kept.strings.len() < kept.strings.capacity()
                && kept.strings.len() < KEPT_STRINGS =>
            {
                // Without a context: it may outlive this command's.
                let string = RedisString::create_from_slice(std::ptr::null_mut(), bytes);
                let mut len = 0;
                // SAFETY: `string` is live; Redis answers a pointer to its
                // bytes, valid while the string lives unchanged.
                let ptr = unsafe {
                    raw::RedisModule_StringPtrLen
                        .map_or(std::ptr::null(), |f| f(string.inner, &raw mut len))
                };
                if ptr.is_null() {
                    return Str::Made(string);
                }
                kept.strings.push((string, ptr.cast::<u8>(), len));
                // At most KEPT_STRINGS (64) strings: the position fits a
                // byte, and the index (twice as many slots) has a free slot.
                kept.index[slot] = kept.strings.len() as u8;
                kept.strings.len() - 1
            }
            None => return Str::Made(redis_string(ctx, bytes)),
        };
        let found: *const RedisString = &raw const kept.strings[index].0;
        // SAFETY: the vector never grows past the capacity it was made with
        // (see above), so its elements never move, and none is removed or
        // changed before `self` is dropped; the reference lives no longer
        // than the borrow of `self`.
        Str::Kept(unsafe { &*found })
    }
}

impl Drop for Strings {
    /// Leaves the strings for the next command.
    fn drop(&mut self) {
        let kept = std::mem::replace(self.kept.get_mut(), Kept::new());
        // On a thread that is ending, they are simply freed.
        let _ = KEPT_BETWEEN.try_with(|between| *between.borrow_mut() = kept);
    }
}

impl Default for Strings {
    fn default() -> Self {
        Self::new()
    }
}

/// The decimal string of `n` (`RedisModule_CreateStringFromLongLong`).
pub fn integer_string(ctx: &Context, n: i64) -> RedisString {
    // SAFETY: the context is live; the new string is owned by the returned
    // `RedisString`, which frees it.
    let inner = unsafe {
        raw::RedisModule_CreateStringFromLongLong.map_or(std::ptr::null_mut(), |f| f(ctx.ctx, n))
    };
    if inner.is_null() {
        return redis_string(ctx, n.to_string().as_bytes());
    }
    RedisString::from_redis_module_string(ctx.ctx, inner)
}

/// How many effects [`Replication`] holds before it replicates them anyway.
const HELD_EFFECTS: usize = 64;

/// The plain effects of a command's key-API writes, replicated together when
/// it ends ([`Replication::flush`]) so that consecutive writes of one command
/// to one key go as one: the reaper reranks a room once per socket it reaps.
/// Only a store told to hold its effects uses it (`RedisStore::hold_effects`);
/// others replicate each write at once.
///
/// Effects on different keys commute, and every effect of a command reaches
/// replicas and the AOF inside one `MULTI`/`EXEC`, so only the order of the
/// effects on each key matters; that order is kept. Each argument is a
/// reference Redis counts (`RedisModule_RetainString`), so no string is
/// copied. A write that Redis replicates itself (a command call) first
/// sends out what is held for its keys ([`Replication::holds`]).
#[derive(Default)]
pub struct Replication {
    effects: Vec<(&'static CStr, Vec<RedisString>)>,
}

impl Replication {
    /// Holds `command key args...`, a command that takes more arguments of
    /// the same shape (`ZADD key score member ...`): it joins the key's
    /// last effect held if that is the same command.
    pub fn add(&mut self, ctx: &Context, command: &'static CStr, args: &[&RedisString]) {
        let Some((key, rest)) = args.split_first() else {
            return;
        };
        let last = self
            .effects
            .iter()
            .rposition(|(_, held)| held.first().is_some_and(|k| k.as_slice() == key.as_slice()));
        if let Some(last) = last.filter(|&i| self.effects[i].0 == command) {
            self.effects[last]
                .1
                .extend(rest.iter().map(|arg| retain(arg)));
        } else {
            self.effects
                .push((command, args.iter().map(|arg| retain(arg)).collect()));
        }
        if self.effects.len() >= HELD_EFFECTS {
            self.flush(ctx);
        }
    }

    /// Whether an effect on `key` is held.
    pub fn holds(&self, key: &RedisString) -> bool {
        self.effects
            .iter()
            .any(|(_, held)| held.first().is_some_and(|k| k.as_slice() == key.as_slice()))
    }

    /// Replicates the effects held, in order.
    pub fn flush(&mut self, ctx: &Context) {
        for (command, args) in self.effects.drain(..) {
            let args: Vec<&RedisString> = args.iter().collect();
            replicate(ctx, command, &args);
        }
    }
}

/// Another counted reference to `string` (`RedisModule_RetainString`), freed
/// when the result is dropped.
fn retain(string: &RedisString) -> RedisString {
    // SAFETY: `string` is live; retaining a string made with a context
    // while auto memory is off (Violet never turns it on) only counts one
    // more reference, which the returned string frees, without a context.
    unsafe {
        if let Some(f) = raw::RedisModule_RetainString {
            f(std::ptr::null_mut(), string.inner);
            return RedisString::from_redis_module_string(std::ptr::null_mut(), string.inner);
        }
        raw::RedisModule_CreateStringFromString.map_or_else(
            || RedisString::create_from_slice(std::ptr::null_mut(), string.as_slice()),
            |f| {
                RedisString::from_redis_module_string(
                    std::ptr::null_mut(),
                    f(std::ptr::null_mut(), string.inner),
                )
            },
        )
    }
}

// ---------------------------------------------------------------------------
// The allocator: Redis's, with a cache of small freed blocks in front.
// ---------------------------------------------------------------------------

// Built where it is the allocator (inside Redis) and for its unit test; the
// `bench` feature's builds use the system allocator.
#[cfg(any(test, not(feature = "bench")))]
pub use caching_alloc::CachingAlloc;

#[cfg(any(test, not(feature = "bench")))]
mod caching_alloc {
    /// How many sizes of small blocks [`CachingAlloc`] keeps: 16, 32, ... 256 bytes.
    const BLOCK_CLASSES: usize = 16;
    /// The step between two sizes of blocks, and their alignment.
    const BLOCK_STEP: usize = 16;
    /// How many freed blocks of each size it keeps at most: 64 of each is
    /// 136 KiB at most, all of it counted by Redis as used memory.
    const KEPT_BLOCKS: u32 = 64;

    /// An allocator in front of `A` (Redis's, inside Redis) that keeps small
    /// freed blocks and hands them out again: a command makes and drops a few
    /// dozen small Rust values (key names, events, replies), and each went
    /// through Redis's accounting allocator (`zmalloc`: jemalloc's `malloc` and
    /// `malloc_usable_size` on every allocation and every free). The blocks kept
    /// stay allocated from `A`, so Redis still counts them in `used_memory`.
    ///
    /// The cache is per thread (Violet runs on Redis's main thread only); a
    /// block freed on another thread goes to that thread's cache or to `A`.
    pub struct CachingAlloc<A>(pub A);

    /// One thread's freed blocks: for each size, a list linked through the
    /// blocks' first bytes, and its length.
    struct FreeBlocks {
        heads: [std::cell::Cell<*mut u8>; BLOCK_CLASSES],
        counts: [std::cell::Cell<u32>; BLOCK_CLASSES],
    }

    thread_local! {
        // `const` and without `Drop`: reading it never allocates nor registers
        // a destructor, which an allocator must not do.
        static FREE_BLOCKS: FreeBlocks = const {
            FreeBlocks {
                heads: [const { std::cell::Cell::new(std::ptr::null_mut()) }; BLOCK_CLASSES],
                counts: [const { std::cell::Cell::new(0) }; BLOCK_CLASSES],
            }
        };
    }

    /// The size class of `layout`, if it is small enough to be cached.
    fn block_class(layout: std::alloc::Layout) -> Option<usize> {
        let size = layout.size();
        (size != 0 && size <= BLOCK_CLASSES * BLOCK_STEP && layout.align() <= BLOCK_STEP)
            .then(|| (size - 1) / BLOCK_STEP)
    }

    /// The layout every block of `class` is allocated from `A` with.
    fn block_layout(class: usize) -> std::alloc::Layout {
        // SAFETY: the size is a positive multiple of the alignment, a power of
        // two, and far below `isize::MAX`.
        unsafe {
            std::alloc::Layout::from_size_align_unchecked((class + 1) * BLOCK_STEP, BLOCK_STEP)
        }
    }

    // SAFETY: every block handed out is either fresh from `A` with the layout of
    // its class (which fits any layout of that class: at least as large, as
    // aligned) or one of those, freed and kept; a kept block is owned by the
    // cache alone until handed out again; blocks that are not cached go to and
    // come from `A` with their own layout.
    unsafe impl<A: std::alloc::GlobalAlloc> std::alloc::GlobalAlloc for CachingAlloc<A> {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            let Some(class) = block_class(layout) else {
                // SAFETY: as the caller promised for `layout`.
                return unsafe { self.0.alloc(layout) };
            };
            let kept = FREE_BLOCKS
                .try_with(|blocks| {
                    let head = blocks.heads[class].get();
                    if !head.is_null() {
                        // SAFETY: `head` is a kept block of this class; its first
                        // bytes hold the next kept block (written by `dealloc`).
                        blocks.heads[class].set(unsafe { head.cast::<*mut u8>().read() });
                        blocks.counts[class].set(blocks.counts[class].get() - 1);
                    }
                    head
                })
                .unwrap_or(std::ptr::null_mut());
            if kept.is_null() {
                // SAFETY: the class layout has a non-zero size.
                unsafe { self.0.alloc(block_layout(class)) }
            } else {
                kept
            }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
            let Some(class) = block_class(layout) else {
                // SAFETY: `ptr` came from `A` with this very layout.
                return unsafe { self.0.dealloc(ptr, layout) };
            };
            let kept = FREE_BLOCKS
                .try_with(|blocks| {
                    if blocks.counts[class].get() >= KEPT_BLOCKS {
                        return false;
                    }
                    // SAFETY: `ptr` is a block of this class, at least 16 bytes
                    // and 16-aligned, no longer used by anyone: its first bytes
                    // can hold the link to the next kept block.
                    unsafe { ptr.cast::<*mut u8>().write(blocks.heads[class].get()) };
                    blocks.heads[class].set(ptr);
                    blocks.counts[class].set(blocks.counts[class].get() + 1);
                    true
                })
                .unwrap_or(false);
            if !kept {
                // SAFETY: every block of this class came from `A` with its layout.
                unsafe { self.0.dealloc(ptr, block_layout(class)) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CachingAlloc;
    use std::alloc::{GlobalAlloc, Layout, System};

    #[test]
    fn caching_alloc_hands_out_usable_blocks_and_reuses_freed_ones() {
        let alloc = CachingAlloc(System);
        let small = Layout::from_size_align(24, 8).unwrap();
        let large = Layout::from_size_align(4096, 8).unwrap();
        // SAFETY: every block is written within its layout, then freed once
        // with the layout it was allocated with.
        unsafe {
            let a = alloc.alloc(small);
            a.write_bytes(0xAB, small.size());
            alloc.dealloc(a, small);
            // A freed block of the same size class (17-32 bytes) comes back.
            let b = alloc.alloc(Layout::from_size_align(32, 16).unwrap());
            assert_eq!(a, b);
            b.write_bytes(0xCD, 32);
            alloc.dealloc(b, Layout::from_size_align(32, 16).unwrap());
            // Many blocks at once: all distinct, all usable, past what is kept.
            let blocks: Vec<*mut u8> = (0..200).map(|_| alloc.alloc(small)).collect();
            for (i, block) in blocks.iter().enumerate() {
                block.write_bytes(i as u8, small.size());
            }
            for (i, block) in blocks.iter().enumerate() {
                assert!(std::slice::from_raw_parts(*block, small.size())
                    .iter()
                    .all(|&b| b == i as u8));
            }
            for block in blocks {
                alloc.dealloc(block, small);
            }
            let big = alloc.alloc(large);
            big.write_bytes(1, large.size());
            alloc.dealloc(big, large);
            let grown = alloc.realloc(alloc.alloc(small), small, 300);
            grown.write_bytes(2, 300);
            alloc.dealloc(grown, Layout::from_size_align(300, 8).unwrap());
        }
    }
}
