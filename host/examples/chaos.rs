//! The chaos command: events keep arriving while the server is killed with SIGKILL and started again, cycle
//! after cycle. Afterwards every acknowledged event must be stored once and COMPLETED, each credited exactly
//! once, and `scrip verify`'s invariants must hold. Usage (results in BENCHMARKS.md):
//!
//!     cargo run --release -p scrip --example chaos -- --cycles 20 --every 2
//!     cargo run -p scrip --example chaos -- --smoke     # two short cycles; the test command runs this
//!     cargo run --release -p scrip --example chaos -- --cycles 20 --restart-postgres 'pg_ctlcluster 15 main restart'
//!
//! With `--restart-postgres`, every other cycle restarts the database with that command instead of killing
//! the server, which has to ride it out: requests meanwhile are refused with 503 and resent, the workers
//! reconnect, and nothing acknowledged may be lost.
//!
//! The server runs in a child process (this program started again with `--serve`), so each kill is a real
//! one: no destructor, no graceful stop. Clients resend an event whose answer they did not get with the same
//! idempotency key, as a client of the API should; an event counts as acknowledged when a 202 came back.

use clap::Parser;
use scrip::BoxError;
use scrip::events::worker::Pipeline;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use uuid::Uuid;

#[derive(Parser, Debug)]
struct Args {
    /// Two short cycles, to check the command works (the test command runs this).
    #[arg(long)]
    smoke: bool,
    /// How many times the server is killed and started again.
    #[arg(long, default_value_t = 5)]
    cycles: usize,
    /// Seconds between kills.
    #[arg(long, default_value_t = 2.0)]
    every: f64,
    /// Concurrent HTTP clients sending single events.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// A shell command that restarts Postgres: run on every other cycle instead of killing the server.
    #[arg(long)]
    restart_postgres: Option<String>,
    /// Run as the server on this address (what the command starts in its child process).
    #[arg(long, hide = true)]
    serve: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    let database = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/scrip_bench".into());
    if let Some(addr) = args.serve {
        let pool = scrip::db::pool(&database, 8).await?;
        // Clients send as fast as they can: no rate limit.
        let options = scrip::Options {
            pipeline: Pipeline::default(),
            rate_limits: scrip::rate_limits::Settings {
                per_second: 0,
                burst: 0,
            },
            ..scrip::Options::default()
        };
        let running = scrip::start(pool, addr, options).await?;
        running.until_signal().await;
        return Ok(());
    }
    if args.smoke {
        (args.cycles, args.every, args.clients) = (2, 0.5, 2);
    }
    let url = format!(
        "{}/scrip_chaos_{}",
        database
            .rsplit_once('/')
            .map_or(database.as_str(), |(s, _)| s),
        Uuid::now_v7().simple()
    );
    let pool = scrip::db::connect_and_migrate(&url, 8).await?;
    let outcome = run(&args, &url, &pool).await;
    pool.close().await;
    sqlx::Postgres::force_drop_database(&url).await?;
    let report = outcome?;
    println!(
        "| cycles | acknowledged | stored | lost | credited other than once | failed | verify |\n|---|---|---|---|---|---|---|\n| {} | {} | {} | {} | {} | {} | {} |",
        args.cycles,
        report.acknowledged,
        report.stored,
        report.acknowledged - report.stored,
        report.not_once,
        report.failed,
        if report.problems.is_empty() {
            "ok"
        } else {
            "problems"
        },
    );
    let clean = report.stored == report.acknowledged
        && report.not_once == 0
        && report.failed == 0
        && report.problems.is_empty();
    if !clean {
        return Err(format!(
            "the ledger did not survive the kills: {:?}",
            report.problems
        )
        .into());
    }
    Ok(())
}

struct Report {
    acknowledged: usize,
    stored: usize,
    not_once: i64,
    failed: i64,
    problems: Vec<String>,
}

/// The server in a child process, on `addr`, and a wait until it answers.
async fn start_server(url: &str, addr: std::net::SocketAddr) -> Result<Child, BoxError> {
    let child = Command::new(std::env::current_exe()?)
        .args(["--serve", &addr.to_string()])
        .env("DATABASE_URL", url)
        .kill_on_drop(true)
        .spawn()?;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            return Err("the server did not start within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

async fn run(args: &Args, url: &str, pool: &PgPool) -> Result<Report, BoxError> {
    let key = scrip::organizations::create_api_key(pool, "chaos")
        .await?
        .key;
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut server = start_server(url, addr).await?;
    let base = format!("http://{addr}/v1");
    let client = reqwest::Client::new();
    let program = set_up(&client, &base, &key).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let senders: Vec<_> = (0..args.clients)
        .map(|n| {
            let (client, base, key, program, stop) = (
                client.clone(),
                base.clone(),
                key.clone(),
                program.clone(),
                stop.clone(),
            );
            tokio::spawn(async move { send(client, base, key, program, n, stop).await })
        })
        .collect();
    for cycle in 0..args.cycles {
        tokio::time::sleep(Duration::from_secs_f64(args.every)).await;
        match &args.restart_postgres {
            Some(restart) if cycle % 2 == 1 => {
                let status = Command::new("sh").args(["-c", restart]).status().await?;
                if !status.success() {
                    return Err(format!("`{restart}` failed: {status}").into());
                }
            }
            _ => {
                server.start_kill()?;
                server.wait().await?;
                server = start_server(url, addr).await?;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for sender in senders {
        acknowledged.extend(sender.await?);
    }

    // The last server works through what is left.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE status NOT IN ('COMPLETED', 'FAILED')",
        )
        .fetch_one(pool)
        .await?;
        if waiting == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("{waiting} events still waiting after 120 s").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.start_kill()?;
    server.wait().await?;

    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE status = 'COMPLETED' AND idempotency_key = ANY($1)",
    )
    .bind(&acknowledged)
    .fetch_one(pool)
    .await?;
    let not_once: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e
          WHERE (SELECT count(*) FROM journal_entries j WHERE j.event_id = e.id) <> 1",
    )
    .fetch_one(pool)
    .await?;
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE status = 'FAILED'")
        .fetch_one(pool)
        .await?;
    let found = scrip::verify::check_invariants(pool).await?;
    let problems = match found.is_empty() {
        true => Vec::new(),
        false => vec![format!("{found:?}")],
    };
    Ok(Report {
        acknowledged: acknowledged.len(),
        stored: usize::try_from(stored).unwrap_or(0),
        not_once,
        failed,
        problems,
    })
}

/// A program with a points asset and a rule crediting 1 on every event; returns the program's id.
async fn set_up(client: &reqwest::Client, base: &str, key: &str) -> Result<String, BoxError> {
    let post = |path: &'static str, body: Value| async move {
        let r = client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            return Err(format!("POST {path}: {}", r.status()).into());
        }
        let body: Value = r.json().await?;
        Ok::<String, BoxError>(body["id"].as_str().unwrap_or_default().to_owned())
    };
    let program = post("/programs", json!({"name": "Chaos"})).await?;
    let asset = post(
        "/assets",
        json!({"program_id": program, "name": "Points", "symbol": "PTS",
               "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0}),
    )
    .await?;
    post(
        "/rules",
        json!({"program_id": program, "name": "one", "condition": "true",
               "actions": [{"type": "CREDIT", "asset_id": asset, "amount": "1"}]}),
    )
    .await?;
    Ok(program)
}

/// Sends events one after another until `stop`; an event whose answer was lost is sent again with its key.
/// Returns the keys of the acknowledged ones.
async fn send(
    client: reqwest::Client,
    base: String,
    key: String,
    program: String,
    sender: usize,
    stop: Arc<AtomicBool>,
) -> Vec<String> {
    let mut acknowledged = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let idempotency_key = format!("s{sender}-{n}");
        let sent = client
            .post(format!("{base}/events"))
            .bearer_auth(&key)
            .json(
                &json!({"program_id": program, "external_id": format!("p{}", n % 20),
                          "idempotency_key": idempotency_key, "event_data": {}}),
            )
            .timeout(Duration::from_secs(5))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().as_u16() == 202 => {
                acknowledged.push(idempotency_key);
                n += 1;
            }
            // The server is down or restarting: send the same event again.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    acknowledged
}
