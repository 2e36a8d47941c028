//! Logging: `tracing` to stderr.

/// The filter when none is given: the shim's own messages from `info` up,
/// and none of the `redis` crate's, whose cluster client logs every
/// reconnection attempt, at every level up to `error` (dozens a second
/// while a cluster is out of reach). Its failures reach the shim as
/// errors, and the shim logs those state changes itself, once each.
pub const DEFAULT_FILTER: &str = "info,redis=off";

/// Logs to stderr with `tracing`, filtered by `filter`, else `RUST_LOG`,
/// else [`DEFAULT_FILTER`].
pub fn init_logging(filter: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
