//! The harness Violet's tests and benchmarks share.
//!
//! Everything here is real: [`RedisServer`] is a `redis-server` process on a
//! free loopback port with the freshly built module loaded, and
//! [`shim_binary`] is the freshly built `violet-shim`. Processes are stopped
//! when their handle drops.
//!
//! The server binary is `redis-server` from the `PATH` unless
//! `VIOLET_REDIS_SERVER` names another one (such as a `valkey-server`), and
//! likewise the command-line client is `redis-cli` unless `VIOLET_REDIS_CLI`
//! names another; `scripts/test` runs the module tests a second time that way,
//! against Valkey.

pub mod cluster;
pub mod events;
pub mod keyspace;
pub mod workload;

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long a server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How many ports a new server tries before its start fails.
const START_ATTEMPTS: usize = 5;

/// The workspace's root folder.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds `package` in release mode, once per test process, so every test
/// runs against the code as it is now. Returns the folder of the build.
fn build_release(package: &str, built: &'static OnceLock<PathBuf>) -> &'static Path {
    built.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "-p", package])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build --release -p {package} failed"
        );
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"))
            .join("release")
    })
}

/// The freshly built module, `target/release/libviolet.so`.
pub fn module_path() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    build_release("violet", &BUILT).join("libviolet.so")
}

/// The freshly built shim binary, `target/release/violet-shim`.
pub fn shim_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    build_release("violet-shim", &BUILT).join("violet-shim")
}

/// Every socket in `room`, sorted: `VIOLET.MEMBERS` page by page.
pub fn all_members(con: &mut redis::Connection, namespace: &str, room: &str) -> Vec<String> {
    let mut members = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let (next, page): (String, Vec<String>) = redis::cmd("VIOLET.MEMBERS")
            .arg(namespace)
            .arg(room)
            .arg("CURSOR")
            .arg(&cursor)
            .query(con)
            .expect("VIOLET.MEMBERS");
        members.extend(page);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    members.sort();
    members.dedup();
    members
}

/// The server binary the tests start: `VIOLET_REDIS_SERVER` if set (a path,
/// or a name to find on the `PATH`), else `redis-server`.
pub fn server_binary() -> OsString {
    binary_from_env("VIOLET_REDIS_SERVER", "redis-server")
}

/// The command-line client the tests run: `VIOLET_REDIS_CLI` if set, else
/// `redis-cli`.
pub fn cli_binary() -> OsString {
    binary_from_env("VIOLET_REDIS_CLI", "redis-cli")
}

fn binary_from_env(variable: &str, default: &str) -> OsString {
    std::env::var_os(variable)
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.into())
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A `redis-server` with the Violet module, on loopback, in a temporary folder.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    args: Vec<String>,
    with_module: bool,
    module_args: Vec<String>,
    /// A program the server runs under, with its arguments
    /// (`valgrind --tool=callgrind ...`), or nothing.
    wrapper: Vec<String>,
}

impl RedisServer {
    /// A server with no persistence.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments, such as
    /// `["--appendonly", "yes"]` or `["--replicaof", "127.0.0.1", "6379"]`.
    pub fn start_with(args: &[&str]) -> Self {
        Self::launch(args, true)
    }

    /// A plain `redis-server` without the module, for showing that Violet's
    /// data is ordinary Redis data.
    pub fn start_without_module(args: &[&str]) -> Self {
        Self::launch(args, false)
    }

    /// A server whose module is loaded with arguments, such as
    /// `["lease-ms", "5000"]` (`--loadmodule libviolet.so lease-ms 5000`).
    pub fn start_with_module_args(module_args: &[&str], args: &[&str]) -> Self {
        let mut server = Self::new(args, true);
        server.module_args = module_args.iter().map(|a| a.to_string()).collect();
        server.first_spawn();
        server
    }

    /// A server with the module run under `wrapper`, a program and its
    /// arguments that the server's command line follows (such as
    /// `["valgrind", "--tool=callgrind"]`); [`Self::pid`] is the wrapper's,
    /// which for valgrind is the server's. It has `timeout` to answer its
    /// first `PING`.
    pub fn start_under(wrapper: &[&str], args: &[&str], timeout: Duration) -> Self {
        let mut server = Self::new(args, true);
        server.wrapper = wrapper.iter().map(|a| a.to_string()).collect();
        server.spawn_within(timeout);
        server
    }

    fn launch(args: &[&str], with_module: bool) -> Self {
        let mut server = Self::new(args, with_module);
        server.first_spawn();
        server
    }

    /// Starts the server on a port that was free a moment ago, and on
    /// another if that one was taken meanwhile (by a server of a test
    /// running beside, say).
    fn first_spawn(&mut self) {
        for _ in 0..START_ATTEMPTS {
            match self.try_spawn(START_TIMEOUT) {
                Ok(()) => return,
                Err(_) => self.port = free_port(),
            }
        }
        self.spawn();
    }

    fn new(args: &[&str], with_module: bool) -> Self {
        Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().expect("temporary folder"),
            args: args.iter().map(|a| a.to_string()).collect(),
            with_module,
            module_args: Vec::new(),
            wrapper: Vec::new(),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (for `kill -STOP`, say).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server is running").id()
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The folder holding the server's RDB and AOF files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new synchronous connection.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("connect to redis-server")
    }

    /// Stops the server the way an operator would (`SHUTDOWN`, which saves
    /// when persistence is on) and starts it again on the same port and files.
    pub fn restart(&mut self) {
        self.shutdown();
        self.spawn();
    }

    /// Kills the server at once, as a crash would; [`Self::restart_after_kill`]
    /// brings it back.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed server again on the same port and files.
    pub fn restart_after_kill(&mut self) {
        assert!(self.child.is_none(), "the server is still running");
        self.spawn();
    }

    fn shutdown(&mut self) {
        if let Some(mut child) = self.child.take() {
            let mut con = self.connection();
            let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").query(&mut con);
            let _ = child.wait();
        }
    }

    /// Starts the server again on its port and files.
    fn spawn(&mut self) {
        self.spawn_within(START_TIMEOUT);
    }

    fn spawn_within(&mut self, timeout: Duration) {
        if let Err(status) = self.try_spawn(timeout) {
            panic!(
                "{} on port {} exited at start: {status}",
                server_binary().to_string_lossy(),
                self.port
            );
        }
    }

    fn try_spawn(&mut self, timeout: Duration) -> Result<(), std::process::ExitStatus> {
        let port = self.port.to_string();
        let binary = server_binary();
        let mut command = match self.wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        command
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(self.dir.path());
        if self.with_module {
            command
                .arg("--loadmodule")
                .arg(module_path())
                .args(&self.module_args);
        }
        command
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "start {} (is it installed? VIOLET_REDIS_SERVER names another server): {e}",
                binary.to_string_lossy()
            )
        });
        let pid = child.id();
        self.child = Some(child);
        self.wait_ready(pid, timeout)
    }

    /// Waits until the server `pid` answers on its port with its data
    /// loaded; `Err` when it exited (its port taken, say). Another process
    /// answering on the port is not it: a server whose port was taken
    /// would otherwise seem ready, and its test talk to another test's.
    fn wait_ready(&mut self, pid: u32, timeout: Duration) -> Result<(), std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let client = redis::Client::open(self.url()).expect("redis url");
        let process_id = format!("process_id:{pid}");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(status);
                }
            }
            // The `loading:` line itself, not the text `loading:0`, which
            // `async_loading:0` also holds: a server answers INFO while it
            // loads its data (Valkey 9.1 often does, even for a small AOF).
            let ready = client.get_connection().and_then(|mut c| {
                let server: String = redis::cmd("INFO").arg("server").query(&mut c)?;
                let info: String = redis::cmd("INFO").arg("persistence").query(&mut c)?;
                Ok(server.lines().any(|l| l.trim_end() == process_id)
                    && info.lines().any(|l| l.trim_end() == "loading:0"))
            });
            if matches!(ready, Ok(true)) {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "{} on port {} did not start",
                server_binary().to_string_lossy(),
                self.port
            );
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The resident memory of process `pid`, in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The value of `field` (with its colon, `used_memory:`) in `INFO section`.
///
/// # Panics
/// When the field is not there.
pub fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
        .trim()
        .to_owned()
}
