//! The `scrip` binary itself: `scrip dev` from nothing, and a server killed mid-batch.

use crate::common::{database_url, id, test_options};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const SCRIP: &str = env!("CARGO_BIN_EXE_scrip");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub async fn signal(child: &Child, name: &str) {
    let pid = child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args([name, &pid])
        .status()
        .await
        .expect("kill");
    assert!(status.success());
}

/// Reads stdout lines until one contains `until`; returns every line read.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    until: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let wait = async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.contains(until);
            seen.push(line);
            if done {
                return true;
            }
        }
        false
    };
    let found = tokio::time::timeout(Duration::from_secs(90), wait)
        .await
        .unwrap_or(false);
    assert!(found, "never printed {until:?}; printed {seen:?}");
    seen
}

/// Over the API at `base`: a program with an UNLIMITED points asset and a rule crediting `amount` on every
/// event; returns the program's id.
async fn program_crediting(
    client: &reqwest::Client,
    base: &str,
    key: &str,
    amount: &str,
) -> String {
    let post = |path: &'static str, body: serde_json::Value| async move {
        let r = client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert!(r.status().is_success(), "POST {path}: {}", r.status());
        r.json::<serde_json::Value>().await.expect("json")
    };
    let program = id(&post("/programs", json!({"name": "Credited"})).await);
    let asset = id(&post(
        "/assets",
        json!({"program_id": program, "name": "Points", "symbol": "PTS",
               "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0}),
    )
    .await);
    post(
        "/rules",
        json!({"program_id": program, "name": "credit", "condition": "true",
               "actions": [{"type": "CREDIT", "asset_id": asset, "amount": amount}]}),
    )
    .await;
    program
}

#[tokio::test]
async fn scrip_dev_starts_a_private_postgres_and_prints_a_key() {
    let data = std::env::temp_dir().join(format!("scrip-dev-{}", uuid::Uuid::now_v7()));
    let (pg_port, http_port) = (free_port(), free_port());
    let start = || {
        Command::new(SCRIP)
            .args(["dev", "--data-dir"])
            .arg(&data)
            .env(
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{pg_port}/scrip"),
            )
            .env("SCRIP_ADDR", format!("127.0.0.1:{http_port}"))
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("scrip dev starts")
    };
    let client = reqwest::Client::new();
    let programs = format!("http://127.0.0.1:{http_port}/v1/programs");

    let mut first = start();
    let mut lines = BufReader::new(first.stdout.take().expect("stdout")).lines();
    let printed = read_until(&mut lines, "serving on").await;
    let key = printed
        .iter()
        .find_map(|l| l.strip_prefix("export SCRIP_API_KEY="))
        .unwrap_or_else(|| panic!("no key printed: {printed:?}"))
        .to_owned();
    let created = client
        .post(&programs)
        .bearer_auth(&key)
        .json(&json!({"name": "Dev"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status().as_u16(), 201);
    signal(&first, "-TERM").await;
    let status = tokio::time::timeout(Duration::from_secs(30), first.wait())
        .await
        .expect("stops")
        .expect("status");
    assert!(status.success(), "scrip dev exited with {status}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err(),
        "the private cluster was stopped"
    );

    // A second start reuses the cluster and its data, and prints no new key.
    let mut second = start();
    let mut lines = BufReader::new(second.stdout.take().expect("stdout")).lines();
    let printed = read_until(&mut lines, "serving on").await;
    assert!(
        printed.iter().all(|l| !l.contains("SCRIP_API_KEY")),
        "{printed:?}"
    );
    let listed = client
        .get(&programs)
        .header("X-API-Key", &key)
        .send()
        .await
        .expect("sent");
    let body: serde_json::Value = listed.json().await.expect("json");
    assert_eq!(body["data"][0]["name"], "Dev");
    signal(&second, "-TERM").await;
    let _ = tokio::time::timeout(Duration::from_secs(30), second.wait()).await;
    let _ = std::fs::remove_dir_all(&data);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_server_killed_mid_batch_loses_and_doubles_nothing(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    const EVENTS: usize = 3000;
    // An API without workers queues the backlog.
    let pool = PgPoolOptions::new()
        .max_connections(8)
        .connect_with(connect.clone())
        .await
        .expect("pool");
    let ingest_only = scrip::start(
        pool.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        test_options(0),
    )
    .await
    .expect("server");
    let key = scrip::organizations::create_api_key(&pool, "crash")
        .await
        .expect("key")
        .key;
    let base = format!("http://{}/v1", ingest_only.addr);
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let program = program_crediting(&client, &base, &key, "10").await;
    for batch in 0..EVENTS / 100 {
        let events: Vec<_> = (0..100)
            .map(|i| {
                json!({"program_id": program, "external_id": format!("user-{}", i % 50),
                            "idempotency_key": format!("e-{batch}-{i}"), "event_data": {"n": i}})
            })
            .collect();
        let r = post("/events/batch", json!({"events": events}))
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 202);
    }
    let completed = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE status = 'COMPLETED'")
            .fetch_one(&pool)
            .await
            .expect("count")
    };

    // A real `scrip serve` process works on the backlog and is killed without warning.
    let mut doomed = Command::new(SCRIP)
        .arg("serve")
        .env("DATABASE_URL", database_url(&connect))
        .env("SCRIP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("SCRIP_WORKERS", "2")
        .env("SCRIP_RETRY_BACKOFF_MS", "10")
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("scrip serve starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while completed().await < 100 {
        assert!(Instant::now() < deadline, "the server processed nothing");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    signal(&doomed, "-KILL").await;
    let _ = doomed.wait().await;
    let at_kill = completed().await;
    assert!(
        (at_kill as usize) < EVENTS,
        "the backlog finished before the kill; the test proved nothing"
    );

    // Two servers on the same database finish the rest.
    let mut finishers = Vec::new();
    for _ in 0..2 {
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .connect_with(connect.clone())
            .await
            .expect("pool");
        finishers.push(
            scrip::start(pool, "127.0.0.1:0".parse().expect("addr"), test_options(2))
                .await
                .expect("server"),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while (completed().await as usize) < EVENTS {
        assert!(
            Instant::now() < deadline,
            "backlog not finished: {} of {EVENTS}",
            completed().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for finisher in finishers {
        finisher.stop().await;
    }
    ingest_only.stop().await;

    let not_once: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e
          WHERE (SELECT count(*) FROM journal_entries j WHERE j.event_id = e.id) <> 1
             OR (SELECT count(*) FROM rule_evaluations v WHERE v.event_id = e.id) <> 1",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(
        not_once, 0,
        "every event credited and evaluated exactly once"
    );
    let total: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT sum(balance) FROM accounts WHERE entity_type = 'PARTICIPANT'")
            .fetch_one(&pool)
            .await
            .expect("sum");
    assert_eq!(total, rust_decimal::Decimal::from(EVENTS * 10));
    let found = scrip::verify::check_invariants(&pool)
        .await
        .expect("invariants");
    assert!(found.is_empty(), "{found:?}");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn api_keys_come_from_the_cli_and_reuse_the_organization(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let run = |args: &'static [&'static str]| {
        let url = database_url(&connect);
        async move {
            let out = Command::new(SCRIP)
                .args(args)
                .env("DATABASE_URL", url)
                .output()
                .await
                .expect("scrip runs");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        }
    };
    assert_eq!(
        run(&["migrate"]).await,
        "migrations applied",
        "migrating twice is a no-op"
    );
    let first = run(&["api-key", "create", "--org", "acme"]).await;
    let second = run(&["api-key", "create", "--org", "acme"]).await;
    let key = |out: &str| out.lines().last().unwrap_or_default().to_owned();
    assert!(
        key(&first).starts_with("sk_") && key(&second).starts_with("sk_"),
        "{first}\n{second}"
    );
    assert_ne!(key(&first), key(&second));

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(connect)
        .await
        .expect("pool");
    let a = scrip::organizations::authenticate(&pool, &key(&first))
        .await
        .expect("first key works");
    let b = scrip::organizations::authenticate(&pool, &key(&second))
        .await
        .expect("second key works");
    assert_eq!(
        a.organization_id, b.organization_id,
        "the organization is created once"
    );
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT key_hash FROM api_keys ORDER BY created_at")
            .fetch_all(&pool)
            .await
            .expect("hashes");
    let digest = |out: &str| <sha2::Sha256 as sha2::Digest>::digest(key(out).as_bytes()).to_vec();
    assert_eq!(
        stored,
        [digest(&first), digest(&second)],
        "only SHA-256 hashes of the keys are stored"
    );
    assert!(
        scrip::organizations::authenticate(&pool, "sk_forged")
            .await
            .is_err()
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn sigterm_stops_the_server_and_keeps_every_event_it_acknowledged(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(connect.clone())
        .await
        .expect("pool");
    let key = scrip::organizations::create_api_key(&pool, "term")
        .await
        .expect("key")
        .key;
    let addr = format!("127.0.0.1:{}", free_port());
    let mut server = Command::new(SCRIP)
        .arg("serve")
        .env("DATABASE_URL", database_url(&connect))
        .env("SCRIP_ADDR", &addr)
        .env("SCRIP_WORKERS", "2")
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("scrip serve starts");
    let base = format!("http://{addr}/v1");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "the server never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let program = program_crediting(&client, &base, &key, "1").await;

    // Clients keep sending until the server stops answering; each remembers what was acknowledged.
    let senders: Vec<_> =
        (0..8)
            .map(|client_no| {
                let (client, base, key, program) =
                    (client.clone(), base.clone(), key.clone(), program.clone());
                tokio::spawn(async move {
                    let mut acknowledged = Vec::new();
                    for n in 0.. {
                        let key_of_event = format!("t-{client_no}-{n}");
                        let sent = client
                        .post(format!("{base}/events"))
                        .bearer_auth(&key)
                        .json(&json!({"program_id": program, "external_id": format!("u{client_no}"),
                                      "idempotency_key": key_of_event, "event_data": {}}))
                        .send()
                        .await;
                        match sent {
                            Ok(r) if r.status().as_u16() == 202 => acknowledged.push(key_of_event),
                            Ok(r) => panic!("unexpected answer {}", r.status()),
                            Err(_) => break,
                        }
                    }
                    acknowledged
                })
            })
            .collect();
    let received = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    while received().await < 300 {
        assert!(Instant::now() < deadline, "the server took no events");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&server, "-TERM").await;
    let exited = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("the server exits within 30 s")
        .expect("status");
    assert!(exited.success(), "a clean exit: {exited:?}");

    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await.expect("sender"));
    }
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE idempotency_key = ANY($1)")
            .bind(&acknowledged)
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(
        stored as usize,
        acknowledged.len(),
        "every acknowledged event is stored"
    );

    // Another server finishes whatever the stopped one left; each event is credited once.
    let finisher = scrip::start(
        pool.clone(),
        "127.0.0.1:0".parse().expect("addr"),
        test_options(2),
    )
    .await
    .expect("server");
    let pending = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE status <> 'COMPLETED'")
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending().await > 0 {
        assert!(Instant::now() < deadline, "events left unprocessed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    finisher.stop().await;
    let not_once: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e
          WHERE (SELECT count(*) FROM journal_entries j WHERE j.event_id = e.id) <> 1",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(not_once, 0, "every event credited exactly once");
}
