//! A rule that misbehaves on request, to show the sandbox contains it. `config.attack` picks the attack:
//! `loop`, `memory`, `recursion`, `panic`, `sleep`, `flood` (oversized output), `ambient` (files, environment,
//! arguments and network: it reports what it could reach as tags), `entropy` (its output depends on clock
//! and randomness).

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
            // Tries to hold the host's thread in a host call, where fuel does not burn. Time stands still for
            // rules, so each sleep returns at once and the loop burns fuel like any other.
            "sleep" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "flood" => Ok((0..5_000).map(|i| tag(format!("t{i}"))).collect()),
            "ambient" => {
                let mut reached = Vec::new();
                if std::fs::read("/etc/passwd").is_ok() || std::fs::read_dir(".").is_ok() {
                    reached.push(tag("read-files"));
                }
                if std::env::vars().next().is_some() || std::env::args().len() > 0 {
                    reached.push(tag("read-environment"));
                }
                if sockets() {
                    reached.push(tag("used-network"));
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

/// Resolves a name and connects to Postgres' port through WASI sockets directly (Debian's wasi-libc has no
/// sockets, so `std::net` cannot link there); `true` if either worked.
fn sockets() -> bool {
    use wasi::sockets::instance_network::instance_network;
    use wasi::sockets::ip_name_lookup::resolve_addresses;
    use wasi::sockets::network::{IpAddressFamily, IpSocketAddress, Ipv4SocketAddress};
    use wasi::sockets::tcp_create_socket::create_tcp_socket;
    let network = instance_network();
    let resolved = resolve_addresses(&network, "localhost").is_ok_and(|stream| {
        stream.subscribe().block();
        matches!(stream.resolve_next_address(), Ok(Some(_)))
    });
    let connected = create_tcp_socket(IpAddressFamily::Ipv4).is_ok_and(|socket| {
        let postgres = IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: 5432,
            address: (127, 0, 0, 1),
        });
        socket.start_connect(&network, postgres).is_ok() && {
            socket.subscribe().block();
            socket.finish_connect().is_ok()
        }
    });
    resolved || connected
}

// Recursing forever is the point: the host's stack limit must stop it.
#[allow(unconditional_recursion)]
fn dive(depth: u64) -> u64 {
    std::hint::black_box(dive(depth + 1)) + 1
}

scrip_rule::export_rule!(Hostile);
