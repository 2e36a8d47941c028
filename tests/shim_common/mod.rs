//! Helpers the shim's tests share: a shim running in-process on a loopback
//! listener, WebSocket clients that match replies to requests by `ref`, and
//! plain HTTP GETs. Everything is real; nothing is mocked.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use support::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use violet_shim::Config;

/// How long any awaited condition may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// The namespace the tests use.
pub const NS: &str = "watch-party";

/// A shim serving in this process, stopped (gracefully) by [`Shim::stop`] or
/// on drop.
pub struct Shim {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Settings for a shim on `redis`.
pub fn config(redis: &RedisServer) -> Config {
    Config {
        redis_url: redis.url(),
        namespaces: vec![NS.to_owned()],
        redis_timeout: Duration::from_millis(1500),
        ..Config::default()
    }
}

impl Shim {
    /// Starts a shim and waits until it has subscribed to the events of
    /// every namespace it serves.
    pub async fn start(config: Config) -> Self {
        let namespaces = config.namespaces.clone();
        let shim = Self::launch(config).await;
        for namespace in &namespaces {
            shim.wait_subscribed(&shim.ws_url_for(namespace)).await;
        }
        shim
    }

    /// Starts a shim without waiting for anything.
    pub async fn launch(config: Config) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(violet_shim::run(listener, config, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Waits until the events subscription of the namespace at `url` is
    /// up: a create seen as a push.
    async fn wait_subscribed(&self, url: &str) {
        let mut client = Client::connect(url).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let reply = client
                .request(json!({"kind": "room-created", "details": {}}))
                .await;
            let Some(room) = reply["room_id"].as_str().map(str::to_owned) else {
                panic!("the shim could not create a room: {reply}");
            };
            let pushed = client
                .try_push(Duration::from_millis(300), |p| {
                    p["kind"] == "member-joined" && p["room_id"] == room.as_str()
                })
                .await;
            client.request(json!({"kind": "room-left"})).await;
            if pushed.is_some() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the shim never subscribed to events"
            );
        }
        client.close().await;
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.ws_url()).await
    }

    /// The WebSocket URL of one of the namespaces served, `/ws/{namespace}`.
    pub fn ws_url_for(&self, namespace: &str) -> String {
        format!("ws://{}/ws/{namespace}", self.addr)
    }

    /// A client in one of the namespaces served.
    pub async fn client_in(&self, namespace: &str) -> Client {
        Client::connect(&self.ws_url_for(namespace)).await
    }

    /// Stops the shim as SIGTERM would, and waits for `run` to return.
    pub async fn stop(mut self) {
        self.stop_inner().await;
    }

    async fn stop_inner(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(WAIT, task)
                .await
                .expect("the shim stops in time")
                .expect("the shim task does not panic");
            result.expect("run returns Ok");
        }
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A WebSocket client of the shim.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub socket_id: String,
    /// Frames received while waiting for something else.
    pub pending: VecDeque<Value>,
    next_ref: u64,
}

impl Client {
    /// Connects and reads the welcome frame.
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        Self::welcome(ws).await
    }

    /// Connects with a small TCP receive buffer, so that a client that
    /// stops reading soon leaves the shim's frames waiting on its side.
    pub async fn connect_with_small_receive_buffer(url: &str) -> Self {
        let request = url.into_client_request().expect("request");
        let host = request.uri().host().expect("host").to_owned();
        let port = request.uri().port_u16().expect("port");
        let address: SocketAddr = format!("{host}:{port}").parse().expect("address");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        let stream = socket.connect(address).await.expect("TCP connect");
        let (ws, _) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
        )
        .await
        .expect("connect in time")
        .expect("connect");
        Self::welcome(ws).await
    }

    /// Connects with an `Origin` header; the HTTP error if refused.
    pub async fn connect_with_origin(
        url: &str,
        origin: &str,
    ) -> Result<Self, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request().expect("request");
        request
            .headers_mut()
            .insert("Origin", origin.parse().expect("header"));
        let (ws, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Self::welcome(ws).await)
    }

    async fn welcome(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        let mut client = Self {
            ws,
            socket_id: String::new(),
            pending: VecDeque::new(),
            next_ref: 0,
        };
        let welcome = client.next_frame().await;
        assert_eq!(welcome["kind"], "welcome", "{welcome}");
        client.socket_id = welcome["socket_id"].as_str().expect("socket id").to_owned();
        client
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text))
            .await
            .expect("send a frame");
    }

    /// Sends `request` with a fresh `ref` and returns the reply carrying it.
    pub async fn request(&mut self, mut request: Value) -> Value {
        self.next_ref += 1;
        let reference = json!(format!("r{}", self.next_ref));
        request["ref"] = reference.clone();
        self.send_text(&request.to_string()).await;
        let reply = self.next_matching(|f| f["ref"] == reference).await;
        reply
    }

    /// Creates a room with no details; returns its id.
    pub async fn create_room(&mut self) -> String {
        let reply = self
            .request(json!({"kind": "room-created", "details": {}}))
            .await;
        let Some(room) = reply["room_id"].as_str() else {
            panic!("room-created failed: {reply}");
        };
        room.to_owned()
    }

    /// Sends raw text and returns the next frame that is not a push.
    pub async fn raw_request(&mut self, text: &str) -> Value {
        self.send_text(text).await;
        self.next_matching(|f| !is_push(f)).await
    }

    /// The next frame, from the backlog or the socket.
    pub async fn next_frame(&mut self) -> Value {
        if let Some(frame) = self.pending.pop_front() {
            return frame;
        }
        self.read_frame(WAIT).await.expect("a frame in time")
    }

    /// The first frame matching `wanted`; others are kept for later.
    pub async fn next_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        self.try_push(WAIT, wanted)
            .await
            .expect("the expected frame arrives in time")
    }

    /// Like [`Self::next_matching`], giving up after `within`.
    pub async fn try_push(
        &mut self,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(&wanted) {
            return self.pending.remove(i);
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.read_frame(left).await?;
            if wanted(&frame) {
                return Some(frame);
            }
            self.pending.push_back(frame);
        }
    }

    async fn read_frame(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(&text).expect("frames are JSON"))
                }
                Some(Ok(Message::Close(frame))) => panic!("closed by the shim: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("WebSocket error: {e}"),
                None => panic!("the connection ended"),
            }
        }
    }

    /// Reads until the shim closes the connection; its close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("the shim did not close the connection in time"),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    // Keep reading, as a browser does, so that the reply to
                    // the close frame goes out.
                    let _ = tokio::time::timeout(WAIT, async {
                        while let Some(Ok(_)) = self.ws.next().await {}
                    })
                    .await;
                    return frame;
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => return None,
            }
        }
    }

    /// Closes with a close frame, as a tab does.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(WAIT, async { while self.ws.next().await.is_some() {} }).await;
    }
}

pub fn is_push(frame: &Value) -> bool {
    matches!(
        frame["kind"].as_str(),
        Some("member-joined" | "member-left" | "room-updated" | "room-destroyed" | "message")
    ) || (frame["kind"] == "top" && frame.get("ref").is_none())
}

/// Runs `check` until it returns true, failing after [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An async connection to the test's Redis.
pub async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis")
}

/// `VIOLET.CHECK NS` is `OK`.
pub async fn assert_consistent(redis: &RedisServer) {
    let mut con = redis_connection(redis).await;
    let check: String = redis::cmd("VIOLET.CHECK")
        .arg(NS)
        .query_async(&mut con)
        .await
        .expect("VIOLET.CHECK");
    assert_eq!(check, "OK");
}

/// `VIOLET.WHERE NS socket`.
pub async fn where_is(redis: &RedisServer, socket: &str) -> Option<String> {
    let mut con = redis_connection(redis).await;
    redis::cmd("VIOLET.WHERE")
        .arg(NS)
        .arg(socket)
        .query_async(&mut con)
        .await
        .expect("VIOLET.WHERE")
}

/// Every socket in the room, sorted (`VIOLET.MEMBERS` page by page).
pub async fn members(redis: &RedisServer, room: &str) -> Vec<String> {
    support::all_members(&mut redis.connection(), NS, room)
}

/// Whether the room exists.
pub async fn room_exists(redis: &RedisServer, room: &str) -> bool {
    let mut con = redis_connection(redis).await;
    let found: redis::Value = redis::cmd("VIOLET.ROOM")
        .arg(NS)
        .arg(room)
        .query_async(&mut con)
        .await
        .expect("VIOLET.ROOM");
    !matches!(found, redis::Value::Nil)
}

/// The value of a metric without labels in `GET /metrics`.
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    body.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// A plain HTTP/1.1 GET on loopback: the status and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let work = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        String::from_utf8_lossy(&response).into_owned()
    };
    let response = tokio::time::timeout(WAIT, work)
        .await
        .expect("HTTP answer in time");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A `violet-shim` process, killed if the test fails early.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn_shim(args: &[&str], log: &Path) -> Process {
    let log = std::fs::File::create(log).expect("log file");
    let child = Command::new(support::shim_binary())
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start violet-shim");
    Process(child)
}

/// A `violet-shim` process on a free port, serving [`NS`] on `redis` with
/// `extra` options, once it answers `/healthz`; and its port.
pub async fn start_shim_process(redis: &RedisServer, extra: &[&str], log: &Path) -> (Process, u16) {
    let port = support::free_port();
    let (port_arg, url) = (port.to_string(), redis.url());
    let mut args = vec!["--port", &port_arg, "--redis-url", &url, "--namespace", NS];
    args.extend_from_slice(extra);
    let process = spawn_shim(&args, log);
    wait_healthy(port).await;
    (process, port)
}

pub async fn wait_healthy(port: u16) {
    let addr = ([127, 0, 0, 1], port).into();
    eventually("the shim answers /healthz", || async move {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return false;
        }
        http_get(addr, "/healthz").await.0 == 200
    })
    .await;
}

pub fn sigterm(process: &Process) {
    signal("TERM", process.0.id());
}

/// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`) to a process.
pub fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

pub async fn exit_code(process: &mut Process) -> Option<i32> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = process.0.try_wait().expect("wait") {
            return status.code();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shim did not exit in time"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
