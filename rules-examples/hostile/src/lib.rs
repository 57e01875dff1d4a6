//! A rule that misbehaves on request, to show the sandbox contains it. `config.attack` picks the attack:
//! `loop`, `memory`, `recursion`, `panic`, `flood` (oversized output), `ambient` (files, environment and
//! arguments: it reports what it could reach as tags), `entropy` (its output depends on clock and randomness).

use scrip_rule::{Action, Config, Event, Participant, Rule, RuleError, set_attribute, tag};
use std::hash::{BuildHasher, Hasher};

struct Hostile;

impl Rule for Hostile {
    fn evaluate(_: &Event, _: &Participant, config: &Config) -> Result<Vec<Action>, RuleError> {
        match config.text("attack")?.as_str() {
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "recursion" => Ok(vec![tag(format!("depth-{}", dive(0)))]),
            "panic" => panic!("the rule panicked on purpose"),
            "flood" => Ok((0..5_000).map(|i| tag(format!("t{i}"))).collect()),
            "ambient" => {
                let mut reached = Vec::new();
                if std::fs::read("/etc/passwd").is_ok() || std::fs::read_dir(".").is_ok() {
                    reached.push(tag("read-files"));
                }
                if std::env::vars().next().is_some() || std::env::args().len() > 0 {
                    reached.push(tag("read-environment"));
                }
                println!("ambient probe done");
                Ok(reached)
            }
            "entropy" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
                hasher.write_u64(42);
                Ok(vec![set_attribute(
                    "entropy",
                    format!("{now}-{}", hasher.finish()),
                )])
            }
            other => Err(RuleError::InvalidInput(format!("unknown attack {other}"))),
        }
    }
}

// Recursing forever is the point: the host's stack limit must stop it.
#[allow(unconditional_recursion)]
fn dive(depth: u64) -> u64 {
    std::hint::black_box(dive(depth + 1)) + 1
}

scrip_rule::export_rule!(Hostile);
