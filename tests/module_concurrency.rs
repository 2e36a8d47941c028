//! Several clients hammering CREATE/JOIN/LEAVE at once over shared rooms. Each
//! client owns its sockets, so it knows exactly where they must end up; the
//! module must agree, and every invariant must hold.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::thread;
use support::RedisServer;

const NS: &str = "busy";
const CLIENTS: usize = 6;
const SOCKETS_PER_CLIENT: usize = 10;
const ROOMS: usize = 8;
const CALLS_PER_CLIENT: usize = 1500;

/// Runs one client's random traffic; returns where its sockets are.
fn hammer(server_url: String, client: usize) -> BTreeMap<String, Option<String>> {
    let mut con = redis::Client::open(server_url)
        .unwrap()
        .get_connection()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(client as u64);
    let mut located: BTreeMap<String, Option<String>> = (0..SOCKETS_PER_CLIENT)
        .map(|i| (format!("c{client}-s{i}"), None))
        .collect();
    for _ in 0..CALLS_PER_CLIENT {
        let socket = format!("c{client}-s{}", rng.random_range(0..SOCKETS_PER_CLIENT));
        let room = format!("room{}", rng.random_range(0..ROOMS));
        match rng.random_range(0..10) {
            0..=1 => {
                let created: redis::RedisResult<String> = redis::cmd("VIOLET.CREATE")
                    .arg(NS)
                    .arg(&socket)
                    .arg(&room)
                    .arg("capacity")
                    .arg(rng.random_range(3..12))
                    .query(&mut con);
                match created {
                    Ok(id) => located.insert(socket, Some(id)),
                    Err(e) => {
                        assert_eq!(e.code(), Some("EXISTS"), "{e}");
                        None
                    }
                };
            }
            2..=6 => {
                let joined: redis::RedisResult<(Option<String>, i64)> = redis::cmd("VIOLET.JOIN")
                    .arg(NS)
                    .arg(&socket)
                    .arg(&room)
                    .query(&mut con);
                match joined {
                    Ok((previous, viewers)) => {
                        assert!(viewers >= 1);
                        assert_eq!(previous, located[&socket], "{socket} moved behind my back");
                        located.insert(socket, Some(room));
                    }
                    Err(e) => assert!(matches!(e.code(), Some("NOROOM" | "FULL")), "{e}"),
                }
            }
            _ => {
                let left: Option<String> = redis::cmd("VIOLET.LEAVE")
                    .arg(NS)
                    .arg(&socket)
                    .query(&mut con)
                    .unwrap();
                assert_eq!(left, located[&socket]);
                located.insert(socket, None);
            }
        }
    }
    located
}

#[test]
fn concurrent_clients_keep_every_invariant() {
    let server = RedisServer::start();
    let handles: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let url = server.url();
            thread::spawn(move || hammer(url, client))
        })
        .collect();
    let mut expected = BTreeMap::new();
    for handle in handles {
        expected.extend(handle.join().expect("a client thread failed"));
    }

    let mut con = server.connection();
    let checked: String = redis::cmd("VIOLET.CHECK").arg(NS).query(&mut con).unwrap();
    assert_eq!(checked, "OK");
    let mut occupied = 0;
    for (socket, room) in &expected {
        let actual: Option<String> = redis::cmd("VIOLET.WHERE")
            .arg(NS)
            .arg(socket)
            .query(&mut con)
            .unwrap();
        assert_eq!(&actual, room, "{socket}");
        occupied += usize::from(room.is_some());
    }
    let mut counted = 0;
    for room in 0..ROOMS {
        let members = support::all_members(&mut con, NS, &format!("room{room}"));
        counted += members.len();
    }
    assert_eq!(
        counted, occupied,
        "every placed socket is in exactly one member set"
    );
}
