//! The original's layout and the seven commands it moved a socket with, for
//! the benchmarks that compare Violet with it (`join_ways`, `instructions`):
//! per room a set of members (`room_population:ROOM`) and a hash of details
//! (`room_details:ROOM`), and one sorted set of the public rooms by members
//! (`public_rooms`), all under [`PREFIX`]. Not atomic, no events, no node
//! index: less work than a `VIOLET.JOIN`.

/// The prefix of the original's keys.
pub const PREFIX: &str = "watch-party:";

/// Makes `room` a public room of `members` in the original's layout.
pub fn create_room(con: &mut redis::Connection, room: &str, members: &[String]) {
    let _: () = redis::cmd("SADD")
        .arg(format!("{PREFIX}room_population:{room}"))
        .arg(members)
        .query(con)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(format!("{PREFIX}public_rooms"))
        .arg(members.len())
        .arg(room)
        .query(con)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{PREFIX}room_details:{room}"))
        .arg("visibility")
        .arg("public")
        .query(con)
        .unwrap();
}

/// The original's seven commands moving `socket` from `from` to `to`:
/// `EXISTS`, `HGET`, `SREM`, `ZINCRBY`, `SADD`, `ZINCRBY`, `SCARD`.
pub fn push_move(pipe: &mut redis::Pipeline, from: &str, to: &str, socket: &str) {
    let details = format!("{PREFIX}room_details:{to}");
    let ranking = format!("{PREFIX}public_rooms");
    pipe.cmd("EXISTS").arg(&details);
    pipe.cmd("HGET").arg(&details).arg("visibility");
    pipe.cmd("SREM")
        .arg(format!("{PREFIX}room_population:{from}"))
        .arg(socket);
    pipe.cmd("ZINCRBY").arg(&ranking).arg(-1).arg(from);
    pipe.cmd("SADD")
        .arg(format!("{PREFIX}room_population:{to}"))
        .arg(socket);
    pipe.cmd("ZINCRBY").arg(&ranking).arg(1).arg(to);
    pipe.cmd("SCARD")
        .arg(format!("{PREFIX}room_population:{from}"));
}
