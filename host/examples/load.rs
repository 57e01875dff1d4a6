//! The load harness (issue 6): how close the event pipeline comes to what Postgres itself can do on the same
//! machine. Usage (numbers in BENCHMARKS.md):
//!
//!     rules-examples/build.sh && cargo run --release -p scrip --example load -- --seconds 10 --clients 16
//!     cargo run -p scrip --example load -- --smoke     # tiny numbers; the test command runs this
//!
//! 1. The ceiling: single-row INSERT commits per second from `--clients` connections, on a fresh database of
//!    DATABASE_URL's server.
//! 2. For each scenario and mode, a fresh database and a server in this process (`--workers` event workers),
//!    driven over HTTP by `--clients` concurrent clients for `--seconds`: `single` POSTs /v1/events, `batch`
//!    POSTs /v1/events/batch with 100 events, `paced` sends single POSTs at `--rate` events/s in all.
//! 3. Reported: events accepted/s, events COMPLETED/s (all events, from the first request until the last one
//!    completed, so a backlog that drains later counts against it), ingest latency p50/p99, ingest → COMPLETED
//!    lag p50/p99 (from the events' own timestamps), each rate as a ratio to the ceiling, and the process's
//!    peak resident memory during each run (server and clients share the process).
//!
//! Scenarios: `hot` (one program, one asset, every credit from the same issuance account), `spread` (ten
//! programs, each with its own asset and rule), `wasm` (hot, with the purchase-points component instead of
//! CEL), `lot` (hot, on a LOT asset). The run fails if any event fails or the ledger is inconsistent.

use chrono::{DateTime, Utc};
use clap::Parser;
use scrip::BoxError;
use scrip::events::worker::Pipeline;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::migrate::MigrateDatabase;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Parser, Debug, Clone)]
struct Args {
    /// Tiny numbers, to check the harness works (the test command runs this).
    #[arg(long)]
    smoke: bool,
    /// How long each run sends events.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Concurrent HTTP clients, and connections for the INSERT ceiling.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Event workers in the server; by default as many as `scrip serve` runs.
    #[arg(long, default_value_t = Pipeline::default().workers)]
    workers: usize,
    /// Events per second in all for the `paced` mode.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Scenarios to run: hot, spread, wasm, lot.
    #[arg(long, value_delimiter = ',', default_value = "hot,spread,wasm,lot")]
    scenarios: Vec<String>,
    /// Modes to run: single, batch, paced.
    #[arg(long, value_delimiter = ',', default_value = "single,batch,paced")]
    modes: Vec<String>,
    /// Keep each run's database, to look into its events afterwards (prints where it is).
    #[arg(long)]
    keep: bool,
}

/// How long the clients send, or how many requests each sends in smoke mode.
#[derive(Clone, Copy)]
enum Budget {
    For(Duration),
    Requests(usize),
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    // The server's warnings and errors (a 500's cause, say) go to stderr; RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    if args.smoke {
        (args.seconds, args.clients, args.workers, args.rate) = (0.5, 2, 2, 200.0);
    }
    let budget = match args.smoke {
        true => Budget::Requests(3),
        false => Budget::For(Duration::from_secs_f64(args.seconds)),
    };
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/scrip_bench".into());

    let ceiling =
        insert_ceiling(&server, args.clients, Duration::from_secs_f64(args.seconds)).await?;
    println!(
        "ceiling: {ceiling:.0} single-row INSERT commits/s with {} connections\n",
        args.clients
    );
    println!(
        "| scenario | mode | events | accepted/s | completed/s | ingest p50 / p99 | lag p50 / p99 | accepted / ceiling | completed / ceiling | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for scenario in &args.scenarios {
        for mode in &args.modes {
            match run(&server, &args, scenario, mode, budget).await {
                Ok(r) => println!(
                    "| {scenario} | {mode} | {} | {:.0} | {:.0} | {} / {} | {} / {} | {:.2} | {:.2} | {} MiB |",
                    r.events,
                    r.accepted_per_s,
                    r.completed_per_s,
                    ms(r.ingest.0),
                    ms(r.ingest.1),
                    ms(r.lag.0),
                    ms(r.lag.1),
                    r.accepted_per_s / ceiling,
                    r.completed_per_s / ceiling,
                    r.rss_mib,
                ),
                Err(err) => {
                    println!("| {scenario} | {mode} | failed: {err} |");
                    failures.push(format!("{scenario}/{mode}: {err}"));
                }
            }
        }
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(failures.join("; ").into()),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A fresh database on `server`'s host.
async fn fresh_database(server: &str) -> Result<(String, PgPool), BoxError> {
    let url = format!(
        "{}/scrip_load_{}",
        server.rsplit_once('/').map_or(server, |(s, _)| s),
        Uuid::now_v7().simple()
    );
    let pool = scrip::db::connect_and_migrate(&url, 32).await?;
    Ok((url, pool))
}

async fn drop_database(url: &str, pool: PgPool) -> Result<(), BoxError> {
    pool.close().await;
    sqlx::Postgres::force_drop_database(url).await?;
    Ok(())
}

/// Single-row INSERT commits per second from `clients` connections over `period`.
async fn insert_ceiling(server: &str, clients: usize, period: Duration) -> Result<f64, BoxError> {
    let (url, pool) = fresh_database(server).await?;
    sqlx::query("CREATE TABLE ceiling (id bigserial PRIMARY KEY, payload text NOT NULL, at timestamptz NOT NULL DEFAULT now())")
        .execute(&pool)
        .await?;
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (pool, done) = (pool.clone(), done.clone());
        tasks.spawn(async move {
            while started.elapsed() < period {
                sqlx::query("INSERT INTO ceiling (payload) VALUES ($1)")
                    .bind("{\"type\": \"purchase\", \"amount\": 49.99}")
                    .execute(&pool)
                    .await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    drop_database(&url, pool).await?;
    Ok(rate)
}

struct Report {
    events: usize,
    accepted_per_s: f64,
    completed_per_s: f64,
    /// p50, p99
    ingest: (Duration, Duration),
    lag: (Duration, Duration),
    /// The most resident memory seen during the run.
    rss_mib: u64,
}

async fn run(
    server: &str,
    args: &Args,
    scenario: &str,
    mode: &str,
    budget: Budget,
) -> Result<Report, BoxError> {
    let (url, pool) = fresh_database(server).await?;
    let key = scrip::organizations::create_api_key(&pool, "load")
        .await?
        .key;
    let running = scrip::start(
        pool.clone(),
        "127.0.0.1:0".parse()?,
        Pipeline {
            workers: args.workers,
            ..Pipeline::default()
        },
    )
    .await?;
    let api = Api {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(args.clients)
            .build()?,
        base: format!("http://{}/v1", running.addr),
        key,
    };
    let targets = set_up(&api, scenario).await?;

    let rss = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let rss = rss.clone();
        tokio::spawn(async move {
            loop {
                rss.fetch_max(memory_mib("VmRSS:"), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let batch = if mode == "batch" { 100 } else { 1 };
    // Paced clients each send their share of the rate; the others send as fast as answers come back.
    let interval = (mode == "paced")
        .then(|| Duration::from_secs_f64(args.clients as f64 / args.rate.max(1.0)));
    let started = Instant::now();
    // Completion is timed on the database's clock, which stamps each event's processed_at.
    let started_db: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&pool)
        .await?;
    let sent = Arc::new(AtomicUsize::new(0));
    let targets = Arc::new(targets);
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..args.clients {
        let (api, targets, sent) = (api.clone(), targets.clone(), sent.clone());
        clients.spawn(async move {
            let mut latencies = Vec::new();
            let mut request = 0;
            loop {
                let due = interval.map(|every| started + every * request as u32);
                let more = match budget {
                    Budget::For(period) => started.elapsed() < period,
                    Budget::Requests(n) => request < n,
                };
                if !more {
                    break;
                }
                if let Some(due) = due {
                    tokio::time::sleep_until(due.into()).await;
                }
                let events: Vec<Value> = (0..batch)
                    .map(|i| {
                        let n = sent.fetch_add(1, Ordering::Relaxed);
                        let program = &targets[n % targets.len()];
                        json!({"program_id": program,
                               "external_id": format!("user-{}", (n * 7 + i) % 1000),
                               "idempotency_key": format!("c{client}-{n}"),
                               "event_data": {"type": "purchase", "amount": 49.99}})
                    })
                    .collect();
                let at = Instant::now();
                let (status, answer) = match batch {
                    1 => api.post("/events", events[0].clone()).await?,
                    _ => api.post("/events/batch", json!({"events": events})).await?,
                };
                latencies.push(at.elapsed());
                if !status.is_success() {
                    return Err(format!("ingest answered {status} {answer}").into());
                }
                request += 1;
            }
            Ok::<_, BoxError>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(joined) = clients.join_next().await {
        latencies.extend(joined??);
    }
    let sending = started.elapsed();
    let events = sent.load(Ordering::Relaxed);

    // Every event must reach a final state; a stuck pipeline fails the run instead of hanging it. The poll
    // stops at the first pending event and runs every 100 ms, so it takes little from the pipeline it
    // measures (a count every 10 ms took a tenth of Postgres's time during a drain); the run ends at the last
    // event's processed_at, not at the poll that noticed.
    let deadline = Instant::now() + Duration::from_secs(300).max(sending * 20);
    loop {
        let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM event_queue)")
            .fetch_one(&pool)
            .await?;
        if !pending || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sampler.abort();
    let (completed, failed, last): (i64, i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'COMPLETED'), count(*) FILTER (WHERE status = 'FAILED'),
                max(processed_at)
           FROM events",
    )
    .fetch_one(&pool)
    .await?;
    let finished = last
        .and_then(|last| (last - started_db).to_std().ok())
        .unwrap_or(sending)
        .max(sending);
    let rss_mib = rss.load(Ordering::Relaxed);
    let (lag_p50, lag_p99): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8
           FROM events WHERE status = 'COMPLETED'",
    )
    .fetch_one(&pool)
    .await?;
    running.stop().await;
    let inconsistent = scrip::ledger::check_invariants(&pool).await?;
    match args.keep {
        true => println!("kept {url}"),
        false => drop_database(&url, pool).await?,
    }
    if failed > 0 || completed as usize != events {
        return Err(format!("{completed} of {events} events completed, {failed} failed").into());
    }
    if !inconsistent.is_empty() {
        return Err(format!("ledger inconsistent: {inconsistent:?}").into());
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let seconds = |s: Option<f64>| Duration::from_secs_f64(s.unwrap_or(0.0).max(0.0));
    Ok(Report {
        events,
        accepted_per_s: events as f64 / sending.as_secs_f64(),
        completed_per_s: events as f64 / finished.as_secs_f64(),
        ingest: (at(0.5), at(0.99)),
        lag: (seconds(lag_p50), seconds(lag_p99)),
        rss_mib,
    })
}

#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn post(
        &self,
        path: &str,
        body: Value,
    ) -> Result<(reqwest::StatusCode, Value), BoxError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        Ok((
            response.status(),
            response.json().await.unwrap_or(Value::Null),
        ))
    }

    /// POSTs and returns the created object, or fails with what the server said.
    async fn create(&self, path: &str, body: Value) -> Result<Value, BoxError> {
        match self.post(path, body).await? {
            (status, created) if status.is_success() => Ok(created),
            (status, body) => Err(format!("POST {path}: {status} {body}").into()),
        }
    }
}

/// The programs, assets and rules of a scenario; returns the program ids, which events go to in turn.
async fn set_up(api: &Api, scenario: &str) -> Result<Vec<Value>, BoxError> {
    let programs = if scenario == "spread" { 10 } else { 1 };
    let mut targets = Vec::new();
    for n in 0..programs {
        let program = api
            .create("/programs", json!({"name": format!("Load {n}")}))
            .await?;
        let mode = if scenario == "lot" { "LOT" } else { "SIMPLE" };
        let asset = api
            .create(
                "/assets",
                json!({"program_id": program["id"], "name": format!("Points {n}"), "symbol": format!("P{n}"),
                       "inventory_mode": mode, "issuance_policy": "UNLIMITED", "scale": 0}),
            )
            .await?;
        if scenario == "wasm" {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../rules-examples/dist/purchase-points.wasm"
            );
            let bytes = std::fs::read(path)
                .map_err(|e| format!("{path}: {e} (run rules-examples/build.sh)"))?;
            let response = api
                .client
                .post(format!("{}/modules", api.base))
                .bearer_auth(&api.key)
                .header("Content-Type", "application/wasm")
                .body(bytes)
                .send()
                .await?;
            let module: Value = response.json().await?;
            api.create(
                "/rules",
                json!({"program_id": program["id"], "name": "10 per purchase", "module_id": module["id"],
                       "config": {"asset_id": asset["id"], "points": "10"}}),
            )
            .await?;
        } else {
            api.create(
                "/rules",
                json!({"program_id": program["id"], "name": "10 per purchase",
                       "condition": "event.type == \"purchase\"",
                       "actions": [{"type": "CREDIT", "asset_id": asset["id"], "amount": "10"}]}),
            )
            .await?;
        }
        targets.push(program["id"].clone());
    }
    Ok(targets)
}

/// A memory figure of this process (server and clients) from /proc; 0 where there is none.
fn memory_mib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}
