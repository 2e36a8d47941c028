//! One WebSocket connection: its id, its loop, its goodbye.
//!
//! The socket is split into a sink and a stream, and one `tokio::select!` loop
//! waits on the client's frames, the pushes the [`crate::registry::Hub`] queues
//! for it, the ping timer and shutdown. Requests are handled one at a time, in
//! order, each with exactly one `VIOLET.*` command. However the loop ends, the
//! socket leaves its room.

use crate::outbox::{outbox, Inbox, Next, Push};
use crate::protocol::{self, detail_fields, ErrorCode, Frame, Incoming, Request, ShimError};
use crate::ratelimit::{TokenBucket, Verdict};
use crate::server::Shared;
use crate::space::Space;
use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, OwnedSemaphorePermit};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use violet_contract::limits::TOP_DEFAULT;

/// How long a closing connection waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The most pushes written to a socket at once, in frames and in bytes (a
/// batch stops once past the bytes): enough that a busy room's pushes go
/// out in one write, few enough that the WebSocket's write buffer stays
/// small.
const BATCH_FRAMES: usize = 64;
const BATCH_BYTES: usize = 16 * 1024;

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client sent a close frame.
    ClientClosed,
    /// The stream ended or failed (tab closed, network gone).
    Gone,
    /// Nothing, not even a pong, for the pong timeout.
    Silent,
    /// A frame over the size limit, of this many bytes.
    TooBig(usize),
    /// Past the rate limit, again and again.
    Flooding,
    /// A text frame that is not UTF-8.
    NotUtf8,
    /// A frame that breaks the WebSocket protocol (unmasked, a fragmented
    /// or oversized control frame, reserved bits).
    BadFrame,
    /// Could not keep up with its pushes (or took too long to take a frame).
    TooSlow,
    /// The shim is stopping.
    Shutdown,
}

impl End {
    /// The close frame the shim sends, if any.
    fn close_frame(self, max_frame_bytes: usize) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::TooBig(size) => (
                close_code::SIZE,
                format!("message too big: {size} bytes, the limit is {max_frame_bytes}"),
            ),
            End::Flooding => (
                close_code::POLICY,
                "rate limit exceeded: too many messages".to_owned(),
            ),
            End::TooSlow => (
                close_code::POLICY,
                "too slow: could not keep up with updates".to_owned(),
            ),
            End::NotUtf8 => (close_code::INVALID, "text frames must be UTF-8".to_owned()),
            End::BadFrame => (close_code::PROTOCOL, "WebSocket protocol error".to_owned()),
            End::Shutdown => (close_code::AWAY, "server shutting down".to_owned()),
            End::ClientClosed | End::Gone | End::Silent => return None,
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// Runs one upgraded connection to its end.
pub(crate) async fn serve(
    ws: WebSocket,
    shared: Arc<Shared>,
    space: Arc<Space>,
    permit: OwnedSemaphorePermit,
) {
    let socket_id = shared.next_socket_id();
    let shutdown = shared.notify_shutdown.subscribe();
    let (pushes_tx, pushes) = outbox(shared.config.push_buffer, shared.config.max_queue_bytes);
    space.hub.register(&socket_id, pushes_tx);
    shared.metrics.connection_opened();
    debug!(socket = %socket_id, "connected");

    let (sink, stream) = ws.split();
    let mut connection = Connection {
        bucket: TokenBucket::new(shared.config.rate, std::time::Instant::now()),
        dropped: pushes.dropped(),
        socket_id,
        shared,
        space,
        sink,
    };
    let (end, stream) = connection.run(stream, pushes, shutdown).await;
    if end == End::TooSlow {
        connection.shared.metrics.slow_client();
    }
    // Boxed, as a request's answer is: an idle connection's task need not
    // carry the state of its ending.
    Box::pin(connection.close(end, stream)).await;
    Box::pin(connection.leave()).await;
    connection.shared.metrics.connection_closed();
    drop(permit);
}

struct Connection {
    socket_id: String,
    shared: Arc<Shared>,
    /// The namespace the connection is in.
    space: Arc<Space>,
    sink: Sink,
    bucket: TokenBucket,
    /// Cancelled when the hub finds the client too slow for its pushes.
    dropped: CancellationToken,
}

impl Connection {
    async fn run(
        &mut self,
        mut stream: Stream,
        mut pushes: Inbox,
        mut shutdown: broadcast::Receiver<()>,
    ) -> (End, Stream) {
        if self.shared.is_shutting_down() {
            return (End::Shutdown, stream);
        }
        let welcome = Frame::Welcome {
            socket_id: self.socket_id.clone(),
        };
        if let Err(end) = self.send(welcome.to_text(None).into()).await {
            return (end, stream);
        }
        let config = &self.shared.config;
        let (ping_every, pong_timeout) = (config.ping_interval, config.pong_timeout);
        let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
        let mut last_heard = Instant::now();
        let end = loop {
            let step = tokio::select! {
                incoming = stream.next() => match incoming {
                    Some(Ok(message)) => {
                        last_heard = Instant::now();
                        // Boxed: answering a request waits on Redis and
                        // takes a few KiB of state, which an idle
                        // connection should not carry.
                        Box::pin(self.on_message(message)).await
                    }
                    Some(Err(error)) => Err(self.on_error(error)),
                    None => Err(End::Gone),
                },
                next = pushes.next() => match next {
                    // The push keeps its share of the queue's bytes until sent.
                    Some(Next::Push(push)) => self.send_pushes(push, &mut pushes).await,
                    Some(Next::Top(text)) => self.send(text).await,
                    None => Err(End::TooSlow),
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() >= pong_timeout {
                        Err(End::Silent)
                    } else {
                        self.send_message(Message::Ping(Default::default())).await
                    }
                }
                _ = shutdown.recv() => Err(End::Shutdown),
            };
            if let Err(end) = step {
                break end;
            }
        };
        (end, stream)
    }

    /// Handles one frame from the client.
    async fn on_message(&mut self, message: Message) -> Result<(), End> {
        let max = self.shared.config.max_frame_bytes;
        match message {
            Message::Text(text) => {
                self.shared.metrics.message_in();
                if text.len() > max {
                    return Err(End::TooBig(text.len()));
                }
                if self.rate_limited().await? {
                    return Ok(());
                }
                let Incoming { reference, request } = protocol::parse(&text);
                let reply = match request {
                    Ok(request) => self.respond(request).await.unwrap_or_else(Frame::from),
                    Err(error) => Frame::from(error),
                };
                self.reply(reply, reference.as_ref()).await
            }
            Message::Binary(data) => {
                self.shared.metrics.message_in();
                if data.len() > max {
                    return Err(End::TooBig(data.len()));
                }
                if self.rate_limited().await? {
                    return Ok(());
                }
                let error =
                    ShimError::bad_request("binary frames are not supported; send JSON text");
                self.reply(error.into(), None).await
            }
            Message::Close(_) => Err(End::ClientClosed),
            // Control frames cost a token like any frame: a browser only
            // answers the shim's pings, and a flood of them is closed as any
            // flood is. Nothing is answered (tungstenite keeps at most one
            // pong to send).
            Message::Ping(_) | Message::Pong(_) => {
                match self.bucket.take(std::time::Instant::now()) {
                    Verdict::Close => Err(End::Flooding),
                    Verdict::Allow | Verdict::Limit => Ok(()),
                }
            }
        }
    }

    /// Whether the frame is over the rate limit (and answered `RATE_LIMITED`).
    async fn rate_limited(&mut self) -> Result<bool, End> {
        match self.bucket.take(std::time::Instant::now()) {
            Verdict::Allow => Ok(false),
            Verdict::Limit => {
                let error = ShimError::new(
                    ErrorCode::RateLimited,
                    "too many messages; slow down or the connection will be closed",
                );
                self.reply(error.into(), None).await?;
                Ok(true)
            }
            Verdict::Close => Err(End::Flooding),
        }
    }

    /// The reply to one request: exactly one `VIOLET.*` command (none for
    /// `unwatch-top`).
    async fn respond(&self, request: Request) -> Result<Frame, ShimError> {
        let violet = &self.space.violet;
        let hub = &self.space.hub;
        let me = self.socket_id.as_str();
        Ok(match request {
            Request::RoomCreated { details, room_id } => {
                let fields = detail_fields(&details)?;
                let room = violet.create(me, room_id.as_deref(), &fields).await?;
                hub.set_room(me, Some(&room));
                Frame::RoomCreated { room_id: room }
            }
            Request::RoomJoined { room_id } => {
                let (prev_room_id, viewers) = violet.join(me, &room_id).await?;
                hub.set_room(me, Some(&room_id));
                Frame::RoomJoined {
                    room_id,
                    prev_room_id,
                    viewers,
                }
            }
            Request::RoomLeft {} => {
                let room_id = violet.leave(me).await?;
                hub.set_room(me, None);
                Frame::RoomLeft { room_id }
            }
            Request::Top { count, offset } => {
                let top = self.space.top.get(count, offset).await?;
                protocol::top_within(top.rooms(), None, self.shared.config.max_reply_bytes)
            }
            Request::Room { room_id } => Frame::Room {
                room: violet.room(&room_id).await?,
            },
            Request::Members {
                room_id,
                cursor,
                count,
            } => {
                let (cursor, members) = violet.members(&room_id, cursor.as_deref(), count).await?;
                Frame::Members {
                    room_id,
                    members,
                    cursor,
                }
            }
            Request::RoomMessage { data } => {
                let room_id = violet.say(me, &data.to_string()).await?;
                hub.set_room(me, Some(&room_id));
                Frame::RoomMessage { room_id }
            }
            Request::WatchTop { count } => {
                let count = count.unwrap_or(TOP_DEFAULT);
                let top = self.space.top.get(Some(count), None).await?;
                hub.watch_top(me, Some(count));
                protocol::top_within(top.rooms(), None, self.shared.config.max_reply_bytes)
            }
            Request::UnwatchTop {} => {
                hub.watch_top(me, None);
                Frame::UnwatchTop {}
            }
        })
    }

    fn on_error(&self, error: axum::Error) -> End {
        use std::error::Error as _;
        use tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
        let inner = error.source().and_then(|e| e.downcast_ref::<WsError>());
        match inner {
            Some(WsError::Capacity(CapacityError::MessageTooLong { size, .. })) => {
                End::TooBig(*size)
            }
            Some(
                WsError::ConnectionClosed
                | WsError::AlreadyClosed
                | WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake),
            ) => End::Gone,
            Some(WsError::Io(io))
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                End::Gone
            }
            // The client's fault, and cheap for it to repeat: no warning.
            Some(WsError::Utf8(_)) => {
                debug!(socket = %self.socket_id, %error, "text frame not UTF-8");
                End::NotUtf8
            }
            Some(WsError::Protocol(_)) => {
                debug!(socket = %self.socket_id, %error, "WebSocket protocol error");
                End::BadFrame
            }
            _ => {
                warn!(socket = %self.socket_id, %error, "WebSocket error");
                End::Gone
            }
        }
    }

    /// Sends a reply, within `--max-reply-bytes` (see [`Frame::to_text_within`]).
    async fn reply(
        &mut self,
        frame: Frame,
        reference: Option<&serde_json::Value>,
    ) -> Result<(), End> {
        let max = self.shared.config.max_reply_bytes;
        let (text, error) = frame.to_text_within(reference, max);
        if let Some(code) = error {
            self.shared.metrics.error(code);
        }
        self.bucket.charge_reply(text.len());
        self.send(text.into()).await
    }

    async fn send(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.send_message(Message::Text(text)).await?;
        self.shared.metrics.message_out();
        Ok(())
    }

    /// Sends `first` and the pushes queued behind it, up to
    /// [`BATCH_FRAMES`] frames and [`BATCH_BYTES`] bytes, in one write to
    /// the socket: a push costs a system call and a wake-up of this task
    /// per batch, not per push. Each push keeps its share of the queue's
    /// bytes until the batch is written.
    async fn send_pushes(&mut self, first: Push, pushes: &mut Inbox) -> Result<(), End> {
        let mut bytes = first.text.len();
        let mut batch = vec![first];
        while batch.len() < BATCH_FRAMES && bytes < BATCH_BYTES {
            let Some(push) = pushes.try_push() else {
                break;
            };
            bytes += push.text.len();
            batch.push(push);
        }
        let sink = &mut self.sink;
        let write = async {
            for push in &batch {
                sink.feed(Message::Text(push.text.clone())).await?;
            }
            sink.flush().await
        };
        let sent = tokio::select! {
            sent = timeout(self.shared.config.pong_timeout, write) => sent,
            () = self.dropped.cancelled() => return Err(End::TooSlow),
        };
        match sent {
            Ok(Ok(())) => {
                self.shared.metrics.messages_out(batch.len());
                Ok(())
            }
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::TooSlow),
        }
    }

    /// Sends a frame. A client that does not take it within the pong
    /// timeout, or that falls too far behind its pushes meanwhile, is too
    /// slow.
    async fn send_message(&mut self, message: Message) -> Result<(), End> {
        let sent = tokio::select! {
            sent = timeout(self.shared.config.pong_timeout, self.sink.send(message)) => sent,
            () = self.dropped.cancelled() => return Err(End::TooSlow),
        };
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::TooSlow),
        }
    }

    /// Says goodbye: a close frame with a reason when the shim ends the
    /// connection, then waits briefly for the client's own close frame so
    /// that the reason is not lost to a reset.
    async fn close(&mut self, end: End, mut stream: Stream) {
        match end {
            End::Gone | End::Silent => {
                debug!(socket = %self.socket_id, ?end, "disconnected");
                return;
            }
            End::ClientClosed => {
                let _ = timeout(CLOSE_WAIT, self.sink.close()).await;
                debug!(socket = %self.socket_id, "closed by the client");
                return;
            }
            _ => {}
        }
        let frame = end.close_frame(self.shared.config.max_frame_bytes);
        if !matches!(end, End::Shutdown) {
            info!(socket = %self.socket_id, ?end, "closing connection");
        }
        let goodbye = async {
            if self.sink.send(Message::Close(frame)).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
            let _ = self.sink.close().await;
        };
        let _ = timeout(CLOSE_WAIT, goodbye).await;
    }

    /// Takes the socket out of its room. Retried briefly while Redis is
    /// unavailable, so that a blip does not leave a ghost viewer.
    async fn leave(&self) {
        self.space.hub.unregister(&self.socket_id);
        let mut delay = Duration::from_millis(100);
        for attempt in 0..4 {
            match self.space.violet.leave(&self.socket_id).await {
                Ok(room) => {
                    debug!(socket = %self.socket_id, ?room, "left");
                    return;
                }
                Err(error) if error.code == ErrorCode::Unavailable && attempt < 3 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => {
                    warn!(socket = %self.socket_id, %error, "could not take the socket out of its room");
                    return;
                }
            }
        }
    }
}
