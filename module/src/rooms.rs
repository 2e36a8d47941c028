//! The room rules: plain Rust over a [`Store`], with no knowledge of the FFI.
//!
//! Every write operation first reads and validates everything it needs, and
//! only then writes: an operation that returns an error has changed nothing and
//! published nothing. Each operation costs a constant number of store calls
//! (independent of how many rooms and sockets exist), except the queries that
//! list things.
//!
//! After every operation these invariants hold: a socket is in at most one room,
//! and `node(S)[S] == R` exactly when `S` is in `members(R)`, where `node(S)`
//! is the hash of the node `S` belongs to; a node with sockets is in the node
//! index; a room exists (hash and members) exactly while it has a member; a
//! public room is ranked with a score equal to its member count, a private
//! room is not ranked. Leases and reaping are in [`crate::leases`].

use crate::details::{
    parse_capacity, Details, Visibility, CAPACITY, MAX_FIELDS, OWNER, VISIBILITY,
};
use crate::error::{
    err_exists, err_full, err_invalid, err_no_room, err_not_in_room, err_too_many_fields, Result,
};
use crate::ids::{Namespace, RoomId, SocketId};
use crate::store::Store;
use std::collections::BTreeMap;
use violet_contract::events::{Event, Reason};
use violet_contract::keys::{node_of, Keys};

pub use violet_contract::limits::MAX_MESSAGE_BYTES;

/// How many random ids `VIOLET.CREATE NS SOCKET *` tries before giving up.
const FRESH_ID_ATTEMPTS: usize = 16;

/// The room `VIOLET.CREATE` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewRoom {
    /// `*`: a random id, unique in the namespace.
    Fresh,
    /// An id chosen by the caller.
    Named(RoomId),
}

/// What `VIOLET.JOIN` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The room the socket was in before, if any (the joined room itself when
    /// the socket was already there).
    pub previous: Option<String>,
    /// The room's viewers after the join.
    pub viewers: u64,
}

/// A room as the queries show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomView {
    pub room: String,
    pub viewers: u64,
    pub fields: Vec<(String, String)>,
}

impl RoomView {
    /// What the room adds to a `VIOLET.TOP` reply, as `MAXBYTES` counts it:
    /// the bytes of its id and of its details' names and values.
    pub fn bytes(&self) -> u64 {
        let fields = self
            .fields
            .iter()
            .map(|(name, value)| name.len().saturating_add(value.len()))
            .fold(0usize, usize::saturating_add);
        u64::try_from(self.room.len().saturating_add(fields)).unwrap_or(u64::MAX)
    }
}

/// The keys of one room: its details' hash and its members' set, each
/// named once per operation.
pub(crate) struct RoomKeys {
    details: String,
    members: String,
}

/// What taking a socket out of its room involves, read before any write.
pub(crate) struct Departure {
    pub(crate) room: String,
    keys: RoomKeys,
    public: bool,
    /// The room's viewers before the socket leaves.
    viewers: u64,
}

/// What [`Rooms::depart`] did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Departed<'d> {
    /// Whether the socket was moved into the arrival room's members (not
    /// when it was missing from its room's, which only a broken invariant
    /// allows).
    moved: bool,
    /// The left room's new rank (its viewers now) when it stays and is
    /// public, for the caller to write.
    rank: Option<(u64, &'d str)>,
}

/// The rooms of one namespace.
pub struct Rooms<'s, S: Store> {
    pub(crate) store: &'s mut S,
    pub(crate) keys: Keys,
    pending: Vec<Event>,
}

impl<'s, S: Store> Rooms<'s, S> {
    pub fn new(store: &'s mut S, namespace: &Namespace) -> Self {
        Self {
            store,
            keys: Keys::new(namespace.as_str()),
            pending: Vec::new(),
        }
    }

    /// Creates a room and moves `socket` into it as its owner, out of (and, if
    /// it empties, destroying) the room it was in. Returns the new room's id.
    ///
    /// # Errors
    /// `EXISTS` when the named room exists.
    pub fn create(&mut self, socket: &SocketId, room: NewRoom, details: Details) -> Result<String> {
        let (room, keys) = match room {
            NewRoom::Named(room) => {
                let keys = self.room_keys(&room);
                if self.taken(&keys)? {
                    return Err(err_exists(&room));
                }
                (room.to_string(), keys)
            }
            NewRoom::Fresh => self.fresh_room()?,
        };
        let mut details = details;
        details.set_default(VISIBILITY, Visibility::Public.as_str());
        // The rule UPDATE applies too: every stored field but `owner` counts,
        // the default visibility included.
        if details.fields().len() > MAX_FIELDS {
            return Err(err_too_many_fields());
        }
        let visibility = details.visibility().unwrap_or(Visibility::Public);
        let node = self.keys.node_of_socket(socket);
        let departure = self.plan_departure(socket, &node)?;
        let arrival = self.plan_arrival(&node, departure.is_some())?;
        self.check_ranking_to_rank(visibility == Visibility::Public, departure.as_ref())?;

        let departed = self.move_out(socket, &node, departure.as_ref(), &keys.members)?;
        let mut fields = vec![(OWNER, socket.as_str())];
        fields.extend(
            details
                .fields()
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str())),
        );
        self.store.hset(&keys.details, &fields)?;
        let before = (!departed.moved).then_some(0);
        self.add_member(socket, &room, &keys.members, &node, arrival, before)?;
        let new_rank = (visibility == Visibility::Public).then_some((1, room.as_str()));
        self.rank(departed.rank, new_rank)?;
        self.pending.push(Event::Created {
            room: room.clone(),
            socket: socket.to_string(),
            viewers: 1,
            visibility: visibility.as_str().to_owned(),
        });
        self.flush();
        Ok(room)
    }

    /// Moves `socket` into an existing room, out of the one it was in.
    /// Joining the room the socket is in changes nothing.
    ///
    /// # Errors
    /// `NOROOM` when the room does not exist, `FULL` when it is at capacity.
    pub fn join(&mut self, socket: &SocketId, room: &RoomId) -> Result<Joined> {
        // One read of the room's hash for both fields; the capacity is
        // checked below, where it was read before.
        let keys = self.room_keys(room);
        let mut read = self
            .store
            .hmget(&keys.details, &[VISIBILITY, CAPACITY])?
            .into_iter();
        let (visibility, capacity) = (read.next().flatten(), read.next().flatten());
        let visibility = visibility
            .map(|v| Visibility::parse(&v))
            .transpose()?
            .ok_or_else(|| err_no_room(room))?;
        let viewers = self.store.scard(&keys.members)?;
        let node = self.keys.node_of_socket(socket);
        let departure = self.plan_departure(socket, &node)?;
        if let Some(departure) = departure.as_ref().filter(|d| d.room == room.as_str()) {
            return Ok(Joined {
                previous: Some(departure.room.clone()),
                viewers,
            });
        }
        if let Some(capacity) = capacity {
            let capacity = parse_capacity(&capacity)?;
            if viewers >= capacity {
                return Err(err_full(room, capacity));
            }
        }
        let arrival = self.plan_arrival(&node, departure.is_some())?;
        self.check_ranking_to_rank(visibility == Visibility::Public, departure.as_ref())?;

        let departed = self.move_out(socket, &node, departure.as_ref(), &keys.members)?;
        let before = (!departed.moved).then_some(viewers);
        let viewers = self.add_member(socket, room, &keys.members, &node, arrival, before)?;
        let new_rank = (visibility == Visibility::Public).then_some((viewers, room.as_str()));
        self.rank(departed.rank, new_rank)?;
        self.pending.push(Event::Joined {
            room: room.to_string(),
            socket: socket.to_string(),
            viewers,
        });
        self.flush();
        Ok(Joined {
            previous: departure.map(|d| d.room),
            viewers,
        })
    }

    /// Takes `socket` out of its room, destroying the room if it empties.
    /// Returns the room left, if the socket was in one.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn leave(&mut self, socket: &SocketId) -> Result<Option<String>> {
        self.leave_for(socket, Reason::Left)
    }

    /// Takes `socket` out of its room for `reason`, as [`Rooms::leave`] does.
    pub(crate) fn leave_for(&mut self, socket: &str, reason: Reason) -> Result<Option<String>> {
        let node = self.keys.node_of_socket(socket);
        let Some(departure) = self.plan_departure(socket, &node)? else {
            return Ok(None);
        };
        self.check_ranking_to_rank(false, Some(&departure))?;
        self.check_nodes()?;
        let departed = self.depart(socket, &node, &departure, reason, None)?;
        self.rank(departed.rank, None)?;
        self.flush();
        Ok(Some(departure.room))
    }

    /// Sets details of a room; a change of `visibility` moves the room into or
    /// out of the ranking.
    ///
    /// # Errors
    /// `NOROOM` when the room does not exist, `ERR` when the room would carry
    /// more than [`MAX_FIELDS`] fields.
    pub fn update(&mut self, room: &RoomId, details: &Details) -> Result<()> {
        let key = self.keys.room(room);
        let existing = self.store.hgetall(&key)?;
        if existing.is_empty() {
            return Err(err_no_room(room));
        }
        let mut names: Vec<&str> = existing
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| *n != OWNER)
            .collect();
        for (name, _) in details.fields() {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        if names.len() > MAX_FIELDS {
            return Err(err_too_many_fields());
        }
        let was = stored_visibility(&existing)?;
        let now = details.visibility().unwrap_or(was);
        // A new rank needs the live count; read it (and check the ranking's
        // type) before the first write.
        let rank = match now {
            _ if now == was => None,
            Visibility::Public => Some(Some(self.store.scard(&self.keys.members(room))?)),
            Visibility::Private => Some(None),
        };
        if rank.is_some() {
            self.check_ranking()?;
        }

        let fields: Vec<(&str, &str)> = details
            .fields()
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        self.store.hset(&key, &fields)?;
        match rank {
            Some(Some(viewers)) => self.store.zadd(self.keys.rooms(), viewers, room)?,
            Some(None) => self.store.zrem(self.keys.rooms(), room)?,
            None => {}
        }
        self.pending.push(Event::Updated {
            room: room.to_string(),
            fields: details.fields().iter().cloned().collect::<BTreeMap<_, _>>(),
        });
        self.flush();
        Ok(())
    }

    /// Sends `data` to every member of the room `socket` is in (through the
    /// events channel). Returns that room.
    ///
    /// # Errors
    /// `NOTINROOM` when the socket is in no room, `ERR` when `data` is larger
    /// than [`MAX_MESSAGE_BYTES`].
    pub fn say(&mut self, socket: &SocketId, data: &str) -> Result<String> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(err_invalid(format!(
                "a message is at most {MAX_MESSAGE_BYTES} bytes"
            )));
        }
        let room = self
            .store
            .hget(&self.keys.node_of_socket(socket), socket)?
            .ok_or_else(|| err_not_in_room(socket))?;
        self.pending.push(Event::Message {
            room: room.clone(),
            socket: socket.to_string(),
            data: data.to_owned(),
        });
        self.flush();
        Ok(room)
    }

    /// Public rooms by viewers, most first: `count` of them after skipping `offset`.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn top(&mut self, offset: u64, count: u64) -> Result<Vec<RoomView>> {
        self.top_within(offset, count, u64::MAX)
    }

    /// Like [`Self::top`], but it stops adding rooms once the rooms listed
    /// hold more than `max_bytes` (see [`RoomView::bytes`]): the room that
    /// passes `max_bytes` is the last one listed. So a reply holds at least
    /// one room when the ranking has one at `offset`, and at most
    /// `max_bytes` plus one room's bytes; a caller can page on with `offset`
    /// past the rooms it got, however large one room is. Only the rooms
    /// listed are read.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn top_within(&mut self, offset: u64, count: u64, max_bytes: u64) -> Result<Vec<RoomView>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let ranked =
            self.store
                .zrevrange(self.keys.rooms(), offset, offset.saturating_add(count - 1))?;
        let mut views = Vec::with_capacity(ranked.len());
        let mut bytes: u64 = 0;
        for (room, _) in ranked {
            let view = self.view(room)?;
            bytes = bytes.saturating_add(view.bytes());
            views.push(view);
            if bytes > max_bytes {
                break;
            }
        }
        Ok(views)
    }

    /// One room's viewers and details, or `None` if it does not exist.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn room(&mut self, room: &RoomId) -> Result<Option<RoomView>> {
        let view = self.view(room.to_string())?;
        Ok((!view.fields.is_empty()).then_some(view))
    }

    /// A page of the sockets in a room (none when it does not exist): about
    /// `count` of them from `cursor` (0 to start), and the cursor of the next
    /// page (0 after the last). Each page costs O(its size), however large
    /// the room; a member there for the whole walk is listed at least once.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn members(
        &mut self,
        room: &RoomId,
        cursor: u64,
        count: u64,
    ) -> Result<(u64, Vec<String>)> {
        self.store.sscan(&self.keys.members(room), cursor, count)
    }

    /// The room `socket` is in, if any.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn room_of(&mut self, socket: &SocketId) -> Result<Option<String>> {
        self.store.hget(&self.keys.node_of_socket(socket), socket)
    }

    /// Checks every invariant of the namespace; returns the violations.
    /// `full` also walks the keyspace for keys no index reaches.
    ///
    /// # Errors
    /// Only what the store reports.
    pub fn check(&mut self, full: bool) -> Result<Vec<String>> {
        crate::check::violations(self.store, &self.keys, full)
    }

    fn view(&mut self, room: String) -> Result<RoomView> {
        let fields = self.store.hgetall(&self.keys.room(&room))?;
        let viewers = self.store.scard(&self.keys.members(&room))?;
        Ok(RoomView {
            room,
            viewers,
            fields,
        })
    }

    fn room_keys(&self, room: &str) -> RoomKeys {
        RoomKeys {
            details: self.keys.room(room),
            members: self.keys.members(room),
        }
    }

    /// Whether the room's id is in use: by a room, or by a stray member set.
    fn taken(&mut self, keys: &RoomKeys) -> Result<bool> {
        Ok(self.store.exists(&keys.details)? || self.store.exists(&keys.members)?)
    }

    /// A random room id not in use, and its keys.
    fn fresh_room(&mut self) -> Result<(String, RoomKeys)> {
        for _ in 0..FRESH_ID_ATTEMPTS {
            let id = self.store.random_id();
            let keys = self.room_keys(&id);
            if !self.taken(&keys)? {
                return Ok((id, keys));
            }
        }
        Err(err_invalid("could not find a free room id; try again"))
    }

    /// Whether `socket`, arriving in a room, is its node's first socket in a
    /// room, so that the node must enter the node index. A socket that was in
    /// a room already (`moving`) keeps its node's entry: no read at all.
    /// `node` is the key of the socket's node's hash.
    fn plan_arrival(&mut self, node: &str, moving: bool) -> Result<Arrival> {
        if moving || self.store.hlen(node)? > 0 {
            return Ok(Arrival::Known);
        }
        self.check_nodes()?;
        Ok(Arrival::FirstOfNode)
    }

    /// Adds `socket` to the room (whose members' key is `members`), which
    /// had `before` members, or `None` when [`Self::depart`] has moved it
    /// into the room's members already. `node` is the key of the socket's
    /// node's hash. Returns the room's viewers now.
    fn add_member(
        &mut self,
        socket: &str,
        room: &str,
        members: &str,
        node: &str,
        arrival: Arrival,
        before: Option<u64>,
    ) -> Result<u64> {
        let viewers = match before {
            Some(viewers) => viewers + u64::from(self.store.sadd(members, socket)?),
            // A move cannot tell whether the socket was a member already
            // (which only a broken invariant allows): count the members
            // again.
            None => self.store.scard(members)?,
        };
        self.store.hset(node, &[(socket, room)])?;
        if arrival == Arrival::FirstOfNode {
            // A node with no lease never expires; VIOLET.LEASE gives it one.
            self.store
                .zadd_new(self.keys.nodes(), f64::INFINITY, node_of(socket))?;
        }
        Ok(viewers)
    }

    /// Reads what taking `socket` out of its current room will need. Reading
    /// every key before the first write also means that a key of the wrong
    /// type fails the command before it changes anything.
    /// `node` is the key of the socket's node's hash.
    pub(crate) fn plan_departure(&mut self, socket: &str, node: &str) -> Result<Option<Departure>> {
        let Some(room) = self.store.hget(node, socket)? else {
            return Ok(None);
        };
        let keys = self.room_keys(&room);
        let visibility = self
            .store
            .hget(&keys.details, VISIBILITY)?
            .map(|v| Visibility::parse(&v))
            .transpose()?;
        let viewers = self.store.scard(&keys.members)?;
        Ok(Some(Departure {
            room,
            keys,
            public: visibility == Some(Visibility::Public),
            viewers,
        }))
    }

    /// Fails, before any write, if the ranking is not a sorted set.
    pub(crate) fn check_ranking(&mut self) -> Result<()> {
        self.store.zcard(self.keys.rooms()).map(drop)
    }

    /// [`Self::check_ranking`] for an operation that ranks the room it
    /// makes or joins (`arrival`) and the one it leaves, if public, and
    /// stays (see [`Self::rank`]): the store may keep the ranking open for
    /// that `ZADD`. Not when the room left empties, which takes it out of
    /// the ranking first.
    fn check_ranking_to_rank(&mut self, arrival: bool, left: Option<&Departure>) -> Result<()> {
        let empties = left.is_some_and(|d| d.viewers <= 1);
        if !empties && (arrival || left.is_some_and(|d| d.public)) {
            self.store.zcard_to_write(self.keys.rooms()).map(drop)
        } else {
            self.check_ranking()
        }
    }

    /// Fails, before any write, if the node index is not a sorted set.
    pub(crate) fn check_nodes(&mut self) -> Result<()> {
        self.store.zcard(self.keys.nodes()).map(drop)
    }

    /// Takes `socket`, arriving in the room whose members' key is `to`, out
    /// of the room it was in, if any ([`Self::depart`]).
    fn move_out<'d>(
        &mut self,
        socket: &str,
        node_key: &str,
        departure: Option<&'d Departure>,
        to: &str,
    ) -> Result<Departed<'d>> {
        match departure {
            Some(departure) => self.depart(socket, node_key, departure, Reason::Left, Some(to)),
            None => Ok(Departed::default()),
        }
    }

    /// Takes `socket` out of the room planned, destroying the room if it
    /// empties and otherwise giving its new rank (see below). A socket
    /// that is moving to another room (`to`: that room's members' key) goes
    /// from one room's members to the other's in one `SMOVE`, and keeps its
    /// entry in its node's hash (`node_key`), which the arrival overwrites.
    /// A node with no lease leaves the node index with its last socket; a
    /// node with a lease stays while it holds it.
    /// The left room's new rank is the caller's to write ([`Self::rank`]),
    /// so that a move reranks both its rooms in one `ZADD`.
    pub(crate) fn depart<'d>(
        &mut self,
        socket: &str,
        node_key: &str,
        departure: &'d Departure,
        reason: Reason,
        to: Option<&str>,
    ) -> Result<Departed<'d>> {
        let room = departure.room.as_str();
        let members = departure.keys.members.as_str();
        let removed = match to {
            Some(to) => self.store.smove(members, to, socket)?,
            None => self.store.srem(members, socket)?,
        };
        let moved = removed && to.is_some();
        if to.is_none() {
            self.store.hdel(node_key, socket)?;
            if self.store.hlen(node_key)? == 0 {
                let node = node_of(socket);
                if self.store.zscore(self.keys.nodes(), node)? == Some(f64::INFINITY) {
                    self.store.zrem(self.keys.nodes(), node)?;
                }
            }
        }
        let viewers = departure.viewers - u64::from(removed && departure.viewers > 0);
        self.pending.push(Event::Left {
            room: room.to_owned(),
            socket: socket.to_string(),
            viewers,
            reason,
        });
        if viewers == 0 {
            // The members set went with its last member (`viewers` counts
            // it): naming it again would be a write for nothing.
            self.store.del(&[&departure.keys.details])?;
            self.store.zrem(self.keys.rooms(), room)?;
            self.pending.push(Event::Destroyed {
                room: room.to_owned(),
            });
        }
        Ok(Departed {
            moved,
            rank: (viewers > 0 && departure.public).then_some((viewers, room)),
        })
    }

    /// Writes the ranking's changes of an operation in one `ZADD`: the new
    /// rank of the room left, if [`Self::depart`] gave one, then the
    /// arrival's, if any (each its viewers and the room).
    fn rank(&mut self, left: Option<(u64, &str)>, arrival: Option<(u64, &str)>) -> Result<()> {
        match (left, arrival) {
            (Some(left), Some(arrival)) => self.store.zadd_all(self.keys.rooms(), &[left, arrival]),
            (Some((viewers, room)), None) | (None, Some((viewers, room))) => {
                self.store.zadd(self.keys.rooms(), viewers, room)
            }
            (None, None) => Ok(()),
        }
    }

    /// Publishes the events of an operation that succeeded.
    pub(crate) fn flush(&mut self) {
        let channel = self.keys.events();
        for event in self.pending.drain(..) {
            self.store.publish(&channel, &event.to_json());
        }
    }
}

/// Whether an arriving socket brings its node into the node index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    /// The node is indexed already (it has a socket in a room, or a lease).
    Known,
    /// The node has no socket in a room yet: index it if it is not.
    FirstOfNode,
}

fn stored_visibility(fields: &[(String, String)]) -> Result<Visibility> {
    let value = fields
        .iter()
        .find(|(n, _)| n == VISIBILITY)
        .map_or("", |(_, v)| v.as_str());
    Visibility::parse(value)
}
