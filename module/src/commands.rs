//! The command layer: parse the arguments, call the rules, shape the reply.
//!
//! Nothing here decides anything about rooms; see [`crate::rooms`].

use crate::acl::{Needs, Permissions};
use crate::details::Details;
use crate::error::{err_corrupt, err_internal, err_invalid, VioletError};
use crate::ids::{Namespace, NodeId, RoomId, SocketId};
use crate::leases::LeaseOutcome;
use crate::reaper;
use crate::redis_store::RedisStore;
use crate::registry::Command;
use crate::rooms::{NewRoom, RoomView, Rooms};
use redis_module::{Context, NextArg, RedisError, RedisResult, RedisString, RedisValue};
use std::panic::{catch_unwind, AssertUnwindSafe};

use violet_contract::keys::events_channel;
use violet_contract::limits::{MEMBERS_PAGE_DEFAULT, MEMBERS_PAGE_MAX, TOP_DEFAULT, TOP_MAX};

/// A command's arguments after its name.
pub type Args = std::iter::Skip<std::vec::IntoIter<RedisString>>;

impl From<VioletError> for RedisError {
    fn from(error: VioletError) -> Self {
        RedisError::String(error.to_string())
    }
}

/// Runs a command, turning a panic into an error reply: a bug in Violet must
/// never take Redis down.
pub fn dispatch(command: &Command, ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let run = || (command.run)(ctx, command.needs, args.into_iter().skip(1));
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| {
        ctx.log_warning("Violet: a command panicked; the error was returned to the client");
        Err(err_internal().into())
    })
}

/// Runs timer work, catching a panic as [`dispatch`] does for commands:
/// `None` when it panicked.
pub fn guarded_timer<T>(ctx: &Context, work: fn(&Context) -> T) -> Option<T> {
    let done = catch_unwind(AssertUnwindSafe(|| work(ctx))).ok();
    if done.is_none() {
        ctx.log_warning("Violet: the reaper panicked; it runs again at its next interval");
    }
    done
}

/// The store for a command on `namespace`, acting for the calling user: a
/// command that publishes is refused here, before it reads anything, unless
/// the user may publish on the namespace's events channel.
fn open<'c>(
    ctx: &'c Context,
    needs: Needs,
    namespace: &Namespace,
) -> Result<RedisStore<'c>, VioletError> {
    let store = RedisStore::new(ctx, Permissions::of_caller(ctx, needs.access));
    if needs.publishes {
        store.permit_publish(&events_channel(namespace))?;
    }
    Ok(store)
}

/// `VIOLET.CREATE NS SOCKET ROOM|* [field value ...]`: the new room's id.
pub fn create(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let socket = socket(&args.next_arg()?)?;
    let room = args.next_arg()?;
    let details = details(args.collect(), false)?;
    let room = match utf8(&room)? {
        "*" => NewRoom::Fresh,
        named => NewRoom::Named(RoomId::parse(named)?),
    };
    let mut store = open(ctx, needs, &namespace)?;
    let room = Rooms::new(&mut store, &namespace).create(&socket, room, details)?;
    Ok(RedisValue::BulkString(room))
}

/// `VIOLET.JOIN NS SOCKET ROOM`: `[previous room or nil, viewers]`.
pub fn join(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let socket = socket(&args.next_arg()?)?;
    let room = room(&args.next_arg()?)?;
    args.done()?;
    let mut store = open(ctx, needs, &namespace)?;
    let joined = Rooms::new(&mut store, &namespace).join(&socket, &room)?;
    Ok(RedisValue::Array(vec![
        optional(joined.previous),
        count(joined.viewers),
    ]))
}

/// `VIOLET.LEAVE NS SOCKET`: the room left, or nil.
pub fn leave(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let socket = socket(&args.next_arg()?)?;
    args.done()?;
    let mut store = open(ctx, needs, &namespace)?;
    Ok(optional(Rooms::new(&mut store, &namespace).leave(&socket)?))
}

/// `VIOLET.UPDATE NS ROOM field value [field value ...]`: `OK`.
pub fn update(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let room = room(&args.next_arg()?)?;
    let details = details(args.collect(), true)?;
    let mut store = open(ctx, needs, &namespace)?;
    Rooms::new(&mut store, &namespace).update(&room, &details)?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `VIOLET.SAY NS SOCKET DATA`: the room the message went to.
pub fn say(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let socket = socket(&args.next_arg()?)?;
    let data = args.next_arg()?;
    args.done()?;
    let mut store = open(ctx, needs, &namespace)?;
    let room = Rooms::new(&mut store, &namespace).say(&socket, utf8(&data)?)?;
    Ok(RedisValue::BulkString(room))
}

/// `VIOLET.TOP NS [COUNT n] [OFFSET k] [MAXBYTES b]`:
/// `[[room, viewers, [field, value, ...]], ...]`; with `MAXBYTES`, the list
/// stops after the room that takes its ids and details past `b` bytes.
pub fn top(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let (mut count, mut offset, mut max_bytes) = (TOP_DEFAULT, 0, u64::MAX);
    while let Some(option) = args.next() {
        let value = args.next_arg()?;
        match utf8(&option)?.to_ascii_uppercase().as_str() {
            "COUNT" => count = number(&value, "COUNT", TOP_MAX)?,
            "OFFSET" => offset = number(&value, "OFFSET", u64::MAX)?,
            "MAXBYTES" => max_bytes = number_in(&value, "MAXBYTES", 1, u64::MAX)?,
            _ => {
                return Err(err_invalid(
                    "syntax error: VIOLET.TOP takes COUNT n, OFFSET k and MAXBYTES b",
                )
                .into())
            }
        }
    }
    let mut store = open(ctx, needs, &namespace)?;
    let rooms = Rooms::new(&mut store, &namespace).top_within(offset, count, max_bytes)?;
    Ok(RedisValue::Array(rooms.into_iter().map(view).collect()))
}

/// `VIOLET.ROOM NS ROOM`: `[room, viewers, [field, value, ...]]`, or nil.
pub fn room_info(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let room = room(&args.next_arg()?)?;
    args.done()?;
    let mut store = open(ctx, needs, &namespace)?;
    let found = Rooms::new(&mut store, &namespace).room(&room)?;
    Ok(found.map_or(RedisValue::Null, view))
}

/// `VIOLET.MEMBERS NS ROOM [CURSOR c] [COUNT n]`: `[next cursor, [socket, ...]]`,
/// a page of the room's sockets; the next cursor is `0` after the last page.
pub fn members(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let room = room(&args.next_arg()?)?;
    let (mut cursor, mut count) = (0, MEMBERS_PAGE_DEFAULT);
    while let Some(option) = args.next() {
        let value = args.next_arg()?;
        match utf8(&option)?.to_ascii_uppercase().as_str() {
            "CURSOR" => cursor = number(&value, "CURSOR", u64::MAX)?,
            "COUNT" => count = number_in(&value, "COUNT", 1, MEMBERS_PAGE_MAX)?,
            _ => {
                return Err(
                    err_invalid("syntax error: VIOLET.MEMBERS takes CURSOR c and COUNT n").into(),
                )
            }
        }
    }
    let mut store = open(ctx, needs, &namespace)?;
    let (next, members) = Rooms::new(&mut store, &namespace).members(&room, cursor, count)?;
    Ok(RedisValue::Array(vec![
        RedisValue::BulkString(next.to_string()),
        RedisValue::Array(members.into_iter().map(RedisValue::BulkString).collect()),
    ]))
}

/// `VIOLET.WHERE NS SOCKET`: the socket's room, or nil.
pub fn where_is(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let socket = socket(&args.next_arg()?)?;
    args.done()?;
    let mut store = open(ctx, needs, &namespace)?;
    Ok(optional(
        Rooms::new(&mut store, &namespace).room_of(&socket)?,
    ))
}

/// `VIOLET.LEASE NS NODE [TTL-MS]`: `renewed`, `created` or `expired`.
pub fn lease(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let node = node(&args.next_arg()?)?;
    let ttl = match args.next() {
        Some(ttl) => number_in(&ttl, "TTL-MS", reaper::LEASE_MIN_MS, reaper::LEASE_MAX_MS)?,
        None => reaper::default_lease_ms(),
    };
    args.done()?;
    let mut store = open(ctx, needs, &namespace)?;
    let outcome = Rooms::new(&mut store, &namespace).lease(&node, ttl)?;
    if outcome != LeaseOutcome::Expired {
        reaper::watch(ctx, &namespace);
    }
    Ok(RedisValue::SimpleStringStatic(outcome.as_str()))
}

/// `VIOLET.RELEASE NS NODE`: how many of the node's sockets left their rooms
/// now; past the reaper's batch size, the rest leave on its next runs.
pub fn release(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let node = node(&args.next_arg()?)?;
    args.done()?;
    let mut store = open(ctx, needs, &namespace)?;
    store.hold_effects();
    let removed = Rooms::new(&mut store, &namespace).release(&node, reaper::batch())?;
    reaper::watch(ctx, &namespace);
    Ok(count(removed))
}

/// `VIOLET.CHECK NS [FULL]`: `OK`, or a `CORRUPT` error naming every violation.
pub fn check(ctx: &Context, needs: Needs, mut args: Args) -> RedisResult {
    let namespace = namespace(&args.next_arg()?)?;
    let full = match args.next() {
        None => false,
        Some(option) if utf8(&option)?.eq_ignore_ascii_case("FULL") => true,
        Some(_) => return Err(err_invalid("syntax error: VIOLET.CHECK takes FULL").into()),
    };
    args.done()?;
    let mut store = open(ctx, needs, &namespace)?;
    let violations = Rooms::new(&mut store, &namespace).check(full)?;
    if violations.is_empty() {
        Ok(RedisValue::SimpleStringStatic("OK"))
    } else {
        Err(err_corrupt(&violations).into())
    }
}

fn utf8(arg: &RedisString) -> Result<&str, VioletError> {
    std::str::from_utf8(arg.as_slice()).map_err(|_| err_invalid("arguments must be valid UTF-8"))
}

fn namespace(arg: &RedisString) -> Result<Namespace, VioletError> {
    Namespace::parse(utf8(arg)?)
}

fn socket(arg: &RedisString) -> Result<SocketId, VioletError> {
    SocketId::parse(utf8(arg)?)
}

fn room(arg: &RedisString) -> Result<RoomId, VioletError> {
    RoomId::parse(utf8(arg)?)
}

fn node(arg: &RedisString) -> Result<NodeId, VioletError> {
    NodeId::parse(utf8(arg)?)
}

/// `field value` pairs; a missing value is an arity error, as with `HSET`.
fn details(rest: Vec<RedisString>, at_least_one: bool) -> Result<Details, RedisError> {
    if !rest.len().is_multiple_of(2) || (at_least_one && rest.is_empty()) {
        return Err(RedisError::WrongArity);
    }
    let pairs = rest
        .chunks(2)
        .map(|pair| Ok((utf8(&pair[0])?, utf8(&pair[1])?)))
        .collect::<Result<Vec<_>, VioletError>>()?;
    Ok(Details::parse(pairs)?)
}

fn number(arg: &RedisString, option: &str, max: u64) -> Result<u64, VioletError> {
    number_in(arg, option, 0, max)
}

fn number_in(arg: &RedisString, option: &str, min: u64, max: u64) -> Result<u64, VioletError> {
    utf8(arg)?
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| err_invalid(format!("{option} must be an integer from {min} to {max}")))
}

fn optional(text: Option<String>) -> RedisValue {
    text.map_or(RedisValue::Null, RedisValue::BulkString)
}

fn count(n: u64) -> RedisValue {
    RedisValue::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn view(room: RoomView) -> RedisValue {
    let fields = room
        .fields
        .into_iter()
        .flat_map(|(name, value)| [RedisValue::BulkString(name), RedisValue::BulkString(value)])
        .collect();
    RedisValue::Array(vec![
        RedisValue::BulkString(room.room),
        count(room.viewers),
        RedisValue::Array(fields),
    ])
}
