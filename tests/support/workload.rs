//! Random Violet traffic: commands drawn from a small pool of sockets, rooms and
//! fields, so that moves, collisions, full rooms and destructions happen often.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A random stream of `VIOLET.*` commands over one namespace.
pub struct Workload {
    rng: StdRng,
    namespace: String,
    sockets: usize,
    rooms: usize,
}

impl Workload {
    pub fn new(seed: u64, namespace: &str, sockets: usize, rooms: usize) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            namespace: namespace.to_owned(),
            sockets,
            rooms,
        }
    }

    /// The next command, as its arguments (command name first).
    pub fn next_command(&mut self) -> Vec<String> {
        let roll = self.rng.random_range(0..100);
        let mut args = vec![String::new(), self.namespace.clone()];
        match roll {
            0..=19 => {
                args[0] = "VIOLET.CREATE".into();
                args.push(self.socket());
                args.push(if self.rng.random_bool(0.2) {
                    "*".into()
                } else {
                    self.room()
                });
                args.extend(self.fields(true));
            }
            20..=59 => {
                args[0] = "VIOLET.JOIN".into();
                args.push(self.socket());
                args.push(self.room());
            }
            60..=84 => {
                args[0] = "VIOLET.LEAVE".into();
                args.push(self.socket());
            }
            _ => {
                args[0] = "VIOLET.UPDATE".into();
                args.push(self.room());
                let mut fields = self.fields(false);
                if fields.is_empty() {
                    fields = vec!["title".into(), format!("t{}", self.rng.random_range(0..9))];
                }
                args.extend(fields);
            }
        }
        args
    }

    fn socket(&mut self) -> String {
        format!("s{}", self.rng.random_range(0..self.sockets))
    }

    fn room(&mut self) -> String {
        format!("room:{}", self.rng.random_range(0..self.rooms))
    }

    /// Zero to three field/value pairs, now and then an invalid one.
    fn fields(&mut self, allow_capacity: bool) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..self.rng.random_range(0..=3) {
            let (name, value) = match self.rng.random_range(0..10) {
                0..=2 => (
                    "visibility",
                    if self.rng.random_bool(0.5) {
                        "Public"
                    } else {
                        "private"
                    }
                    .to_owned(),
                ),
                3 if allow_capacity => ("capacity", self.rng.random_range(1..4).to_string()),
                4 => ("title", format!("Title {}", self.rng.random_range(0..5))),
                5 => ("topic", "anime".to_owned()),
                6 if self.rng.random_bool(0.3) => ("owner", "intruder".to_owned()),
                7 if self.rng.random_bool(0.3) => ("capacity", "0".to_owned()),
                _ => ("thumbnail", "url://thumbnail".to_owned()),
            };
            out.push(name.to_owned());
            out.push(value);
        }
        out
    }
}
