//! Embedded mode: a `redis-server` with the Violet module, started and
//! stopped by the shim, for a one-command local setup.

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long the embedded server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A `redis-server` child on a free loopback port, with no persistence.
/// It is killed when this value drops, and by [`EmbeddedRedis::stop`].
#[derive(Debug)]
pub struct EmbeddedRedis {
    child: Child,
    port: u16,
}

impl EmbeddedRedis {
    /// Starts `redis-server --port <free> --bind 127.0.0.1 --save '' --appendonly no
    /// --loadmodule <module>` and waits until it answers `PING`.
    ///
    /// # Errors
    /// When the module is missing, the server cannot be started, exits, or
    /// does not answer within 15 s.
    pub async fn start(redis_server: &Path, module: &Path) -> io::Result<Self> {
        if !module.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "the Violet module {} does not exist; build it (cargo build --release -p violet) or pass --module",
                    module.display()
                ),
            ));
        }
        let module = std::fs::canonicalize(module)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(redis_server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .arg("--loadmodule")
            .arg(&module)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {}: {e}", redis_server.display()),
                )
            })?;
        let mut server = Self { child, port };
        server.wait_ready().await?;
        tracing::info!(port, module = %module.display(), "embedded redis-server started");
        Ok(server)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server and waits for it to exit.
    ///
    /// # Errors
    /// When the process cannot be signalled or waited for.
    pub async fn stop(mut self) -> io::Result<()> {
        self.child.kill().await
    }

    async fn wait_ready(&mut self) -> io::Result<()> {
        let client = redis::Client::open(self.url()).map_err(io::Error::other)?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "redis-server exited at start ({status}); is the module built for this Redis?"
                )));
            }
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut connection).await;
                if pong.is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not answer in time",
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
