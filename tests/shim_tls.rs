//! The shim reaches a Redis that takes only TLS and a password, with a
//! `rediss://:password@host:port` URL.

mod shim_common;

use serde_json::json;
use shim_common::*;
use std::process::Command;
use support::{free_port, RedisServer};

const PASSWORD: &str = "s3cret-violet";

/// A self-signed certificate and its key, made with the `openssl` tool.
fn certificate(dir: &std::path::Path) -> (String, String) {
    let (cert, key) = (dir.join("redis.crt"), dir.join("redis.key"));
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(status.status.success(), "{status:?}");
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_password() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = certificate(certs.path());
    let tls_port = free_port().to_string();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &cert,
        "--tls-auth-clients",
        "no",
    ]);
    let mut admin = redis.connection();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASSWORD)
        .query(&mut admin)
        .unwrap();

    let mut settings = config(&redis);
    settings.redis_url = format!("rediss://:{PASSWORD}@127.0.0.1:{tls_port}/#insecure");
    let shim = Shim::start(settings).await;
    let mut client = shim.client().await;
    let created = client
        .request(json!({"kind": "room-created", "details": {"title": "Over TLS"}}))
        .await;
    assert_eq!(created["kind"], "room-created", "{created}");
    let room = created["room_id"].as_str().unwrap().to_owned();

    let _: () = redis::cmd("AUTH").arg(PASSWORD).query(&mut admin).unwrap();
    let title: String = redis::cmd("HGET")
        .arg(format!("violet:{{{NS}}}:room:{room}"))
        .arg("title")
        .query(&mut admin)
        .unwrap();
    assert_eq!(title, "Over TLS");
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    assert!(
        clients
            .lines()
            .filter(|l| l.contains("cmd=subscribe") || l.contains("sub=1"))
            .count()
            >= 1,
        "the events subscription is up: {clients}"
    );
    assert_eq!(http_get(shim.addr, "/healthz").await.0, 200);

    client.close().await;
    shim.stop().await;
}
