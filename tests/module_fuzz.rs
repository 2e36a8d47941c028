//! Random arguments to every `VIOLET.*` command, random bytes included,
//! against a real redis-server: Redis never crashes, every reply is one the
//! client can read (error text in UTF-8), a refused command changes nothing
//! (`DEBUG DIGEST`), and the namespace stays consistent. Seeded, so a failure
//! replays.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::{Connection, ErrorKind, Value};
use support::RedisServer;

const SEED: u64 = 0x5eed_71e7;
const CALLS: usize = 3_000;
const NS: &str = "f";

const COMMANDS: [&str; 12] = [
    "VIOLET.CREATE",
    "VIOLET.JOIN",
    "VIOLET.LEAVE",
    "VIOLET.UPDATE",
    "VIOLET.SAY",
    "VIOLET.TOP",
    "VIOLET.ROOM",
    "VIOLET.MEMBERS",
    "VIOLET.WHERE",
    "VIOLET.CHECK",
    "VIOLET.LEASE",
    "VIOLET.RELEASE",
];

/// Words the commands mean something by, so that random calls often get
/// past the first checks.
const WORDS: [&str; 24] = [
    NS,
    "n:1",
    "n:2",
    "m:1",
    "n",
    "m",
    "r1",
    "r2",
    "*",
    "title",
    "visibility",
    "public",
    "Private",
    "capacity",
    "2",
    "0",
    "COUNT",
    "OFFSET",
    "CURSOR",
    "FULL",
    "1000",
    "100",
    "owner",
    "salle-été",
];

fn random_arg(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..10) {
        0..=5 => WORDS[rng.random_range(0..WORDS.len())].as_bytes().to_vec(),
        6 => {
            // Raw bytes: invalid UTF-8, CR, LF and NUL included.
            let len = rng.random_range(0..40);
            (0..len).map(|_| rng.random()).collect()
        }
        7 => "é\u{200B}房🎬一😀\r\n\"\\".as_bytes().to_vec(),
        8 => vec![b'x'; rng.random_range(100..5_000)],
        _ => rng.random_range(0..100_000u64).to_string().into_bytes(),
    }
}

fn digest(con: &mut Connection) -> String {
    redis::cmd("DEBUG")
        .arg("DIGEST")
        .query(con)
        .expect("DEBUG DIGEST")
}

#[test]
fn random_arguments_never_crash_redis_nor_change_anything_when_refused() {
    let server = RedisServer::start();
    let mut con = server.connection();
    let mut rng = StdRng::seed_from_u64(SEED);
    let (mut accepted, mut refused) = (0, 0);
    for call in 0..CALLS {
        let name = COMMANDS[rng.random_range(0..COMMANDS.len())];
        let mut cmd = redis::cmd(name);
        let arity = rng.random_range(0..8);
        let mut shown = vec![name.to_owned()];
        for i in 0..arity {
            // Mostly the namespace first, as a real caller would.
            let arg = if i == 0 && rng.random_bool(0.8) {
                NS.as_bytes().to_vec()
            } else {
                random_arg(&mut rng)
            };
            shown.push(String::from_utf8_lossy(&arg).chars().take(40).collect());
            cmd.arg(arg);
        }
        let before = digest(&mut con);
        match cmd.query::<Value>(&mut con) {
            Ok(_) => accepted += 1,
            Err(error) => {
                assert!(
                    !matches!(error.kind(), ErrorKind::Parse | ErrorKind::Io),
                    "call {call} {shown:?}: the reply could not be read: {error}"
                );
                assert_eq!(
                    digest(&mut con),
                    before,
                    "call {call} {shown:?} was refused ({error}) but changed data"
                );
                refused += 1;
            }
        }
    }
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG", "Redis is alive");
    let check: String = redis::cmd("VIOLET.CHECK")
        .arg(NS)
        .arg("FULL")
        .query(&mut con)
        .unwrap();
    assert_eq!(check, "OK");
    assert!(
        accepted > 200 && refused > 200,
        "{accepted} accepted, {refused} refused"
    );
    eprintln!("{accepted} calls accepted, {refused} refused");
}
