//! Operations: the static page, `/healthz`, `/metrics`, the logs.

mod shim_common;

use serde_json::json;
use shim_common::*;
use std::time::Duration;
use support::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_page_health_and_metrics() {
    let redis = RedisServer::start();
    let site = tempfile::tempdir().unwrap();
    std::fs::write(
        site.path().join("index.html"),
        "<h1>violet test page</h1>\n",
    )
    .unwrap();
    std::fs::write(site.path().join("app.js"), "console.log('violet');\n").unwrap();
    let mut settings = config(&redis);
    settings.static_dir = site.path().to_path_buf();
    let shim = Shim::start(settings).await;

    let (status, body) = http_get(shim.addr, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("violet test page"), "{body}");
    let (status, body) = http_get(shim.addr, "/app.js").await;
    assert_eq!(status, 200);
    assert!(body.contains("console.log"));
    assert_eq!(http_get(shim.addr, "/missing.html").await.0, 404);
    assert_eq!(http_get(shim.addr, "/../Cargo.toml").await.0, 404);

    let (status, body) = http_get(shim.addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let mut client = shim.client().await;
    let missing = client
        .request(json!({"kind": "room-joined", "room_id": "nope"}))
        .await;
    assert_eq!(missing["code"], "NOROOM");
    client.request(json!({"kind": "top"})).await;

    let (status, metrics) = http_get(shim.addr, "/metrics").await;
    assert_eq!(status, 200);
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("{name} missing from:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert_eq!(value("violet_connections_open"), 1.0);
    // The start-up probe connection and this client.
    assert!(value("violet_connections_total") >= 2.0);
    assert!(value("violet_messages_in_total") >= 2.0);
    assert!(value("violet_messages_out_total") >= 3.0);
    assert_eq!(value("violet_errors_total{code=\"NOROOM\"}"), 1.0);
    assert_eq!(value("violet_errors_total{code=\"FULL\"}"), 0.0);
    assert!(value("violet_redis_latency_seconds_count") >= 2.0);
    assert!(metrics.contains("# TYPE violet_redis_latency_seconds histogram"));

    client.close().await;
    shim.stop().await;
    assert_consistent(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_without_the_module_is_reported_unavailable() {
    let redis = RedisServer::start_without_module(&[]);
    let shim = Shim::launch(config(&redis)).await;
    let (status, body) = http_get(shim.addr, "/healthz").await;
    assert_eq!(status, 503);
    assert!(body.contains("module is not loaded"), "{body}");

    let mut client = shim.client().await;
    let reply = client
        .request(json!({"kind": "room-created", "details": {}}))
        .await;
    assert_eq!(reply["code"], "UNAVAILABLE", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .contains("module is not loaded"),
        "{reply}"
    );
    client.close().await;
    shim.stop().await;
}

/// A `violet-shim` process on `seeds` as its cluster, logging with the
/// default filter (as a user who sets none gets it) into `log`.
fn spawn_on_cluster(seeds: &str, log: &std::path::Path) -> Process {
    let port = support::free_port();
    let child = std::process::Command::new(support::shim_binary())
        .args(["--port", &port.to_string(), "--namespace", NS])
        .args(["--redis-cluster", seeds])
        .env_remove("RUST_LOG")
        .env_remove("VIOLET_LOG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start violet-shim");
    Process(child)
}

/// A Redis out of reach is said once, by the shim, and not at every attempt
/// of the `redis` crate's cluster client to reconnect (dozens a second).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_logged_once_not_at_every_retry() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shim.log");
    let nobody = support::free_port();
    let mut process = spawn_on_cluster(&format!("127.0.0.1:{nobody}"), &log);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("the shim says Redis is out of reach", || async {
        read().contains("cannot reach Redis for the lease")
    })
    .await;
    // The cluster client keeps trying meanwhile, every half second or so.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sigterm(&process);
    assert_eq!(exit_code(&mut process).await, Some(0));
    let logged = read();
    let from_redis: Vec<&str> = logged.lines().filter(|l| l.contains(" redis::")).collect();
    assert!(from_redis.is_empty(), "{}", from_redis.join("\n"));
    let count = |what: &str| logged.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("cannot reach Redis for the lease"), 1, "{logged}");
    assert_eq!(
        count("cannot connect to the cluster for events"),
        1,
        "{logged}"
    );
}

/// Why the cluster cannot be used is said in the shim's own words, with the
/// redis crate's logs off: here, a seed that is no cluster node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn why_the_cluster_cannot_be_used_is_logged() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shim.log");
    let mut process = spawn_on_cluster(&redis.url(), &log);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("the shim says why", || async {
        read().contains("cluster support disabled")
    })
    .await;
    sigterm(&process);
    assert_eq!(exit_code(&mut process).await, Some(0));
}

/// Redis going away is said once when it goes, and once more when the lease
/// runs out meanwhile, however often the shim tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_is_logged_once() {
    let mut redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("shim.log");
    let (mut process, _) = start_shim_process(&redis, &["--lease", "600"], &log).await;
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    eventually("the shim takes its lease", || async {
        read().contains("lease taken")
    })
    .await;
    redis.kill();
    // Renewals are tried every 200 ms: a dozen failures, three leases.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    sigterm(&process);
    assert_eq!(exit_code(&mut process).await, Some(0));
    let logged = read();
    let count = |what: &str| logged.lines().filter(|l| l.contains(what)).count();
    assert_eq!(count("cannot reach Redis for the lease"), 1, "{logged}");
    assert_eq!(count("could not renew the lease in time"), 1, "{logged}");
}
