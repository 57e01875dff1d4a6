//! The load harness: how close the event pipeline comes to what Postgres itself can do on the same
//! machine. Usage (numbers in BENCHMARKS.md):
//!
//!     rules-examples/build.sh && cargo run --release -p scrip --example load -- --seconds 10 --clients 16
//!     cargo run -p scrip --example load -- --smoke     # tiny numbers; the test command runs this
//!
//! 1. The ceilings, each on a fresh database of DATABASE_URL's server: single-row INSERT commits per second
//!    from `--clients` connections, and the ledger's own (credit entries per second written the way worker
//!    batches write them, with nothing else; see [`ledger_ceiling`]).
//! 2. For each scenario and mode, a fresh database and a server in this process (`--workers` event workers),
//!    driven over HTTP by `--clients` concurrent clients for `--seconds`: `single` POSTs /v1/events, `batch`
//!    POSTs /v1/events/batch with 100 events, `paced` sends single POSTs at `--rate` events/s in all, `drain`
//!    sends batches with no worker running, then starts the workers and times them through the backlog: what
//!    processing alone can take, as `--workers 0` shows what ingest alone can.
//! 3. Reported: events accepted/s, events COMPLETED/s (all events, from the first request until the last one
//!    completed, so a backlog that drains later counts against it), ingest latency p50/p99, ingest → COMPLETED
//!    lag p50/p99 (from the events' own timestamps), each rate as a ratio to the ceilings, and the process's
//!    peak resident memory during each run (server and clients share the process).
//!
//! Scenarios: `hot` (one program, one asset, every credit from the same issuance account), `spread` (ten
//! programs, each with its own asset and rule), `wasm` (hot, with the purchase-points component instead of
//! CEL), `lot` (hot, on a LOT asset), `counted` (hot, each purchase also counted) and `tiered` (counted, the
//! count qualifying members for the levels of an ACTIVITY_REFRESH tier) and `hooked` (hot, with a webhook
//! endpoint subscribed to every event type, delivering to a receiver in this process). The run fails if any event fails or the ledger is inconsistent.
//!
//! `--scale-out N` then drains one backlog with one server process and an equal one with N (the harness
//! starts itself as each, so they are separate OS processes on one database), and reports the combined rate
//! against one process's with the machine's CPU use: busy, by Postgres, by the servers.

use chrono::{DateTime, Utc};
use clap::Parser;
use rust_decimal::Decimal;
use scrip::BoxError;
use scrip::events::worker::Pipeline;
use scrip::ledger::{AccountKey, Bucket, EntryType, Journal, KnownAccounts, NewEntry, Owner};
use serde_json::{Value, json};
use sqlx::Connection;
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
    /// Event workers in the server; by default as many as `scrip serve` runs. With 0, events are only
    /// ingested (they stay queued): what ingest alone can take.
    #[arg(long, default_value_t = Pipeline::default().workers)]
    workers: usize,
    /// Events per second in all for the `paced` mode.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Scenarios to run: hot, spread, wasm, lot, counted, tiered, hooked.
    #[arg(long, value_delimiter = ',', default_value = "hot,spread,wasm,lot")]
    scenarios: Vec<String>,
    /// Modes to run: single, batch, paced, drain.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "single,batch,paced,drain"
    )]
    modes: Vec<String>,
    /// Keep each run's database, to look into its events afterwards (prints where it is).
    #[arg(long)]
    keep: bool,
    /// Run the server without request logs, to measure what they cost.
    #[arg(long)]
    no_request_logs: bool,
    /// Webhook attempts the server keeps in flight (`SCRIP_WEBHOOK_CONCURRENCY`); 0 writes the `hooked`
    /// scenario's deliveries without sending them, to tell the outbox's cost from the sending's.
    #[arg(long, default_value_t = scrip::webhooks::delivery::Settings::default().concurrency)]
    webhook_concurrency: usize,
    /// After the scenarios, a BROADCAST-style fan-out over this many participants (0: none), with live events
    /// sent at `--rate` before and during it.
    #[arg(long, default_value_t = 0)]
    fan_out: usize,
    /// After the scenarios, the same backlog drained by one `scrip` process and by this many (0: neither),
    /// each a separate process with `--workers` workers on one database.
    #[arg(long, default_value_t = 0)]
    scale_out: usize,
    /// Events in each scale-out backlog.
    #[arg(long, default_value_t = 50_000)]
    scale_out_events: usize,
    /// Postgres's `commit_delay` in microseconds for each run's database (with `commit_siblings` 5), to
    /// measure group commit; 0 leaves the server's setting.
    #[arg(long, default_value_t = 0)]
    commit_delay: u32,
    /// Run as one server process of a scale-out run, on this database, until stdin closes (the harness starts
    /// itself this way).
    #[arg(long, hide = true)]
    serve_database: Option<String>,
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
    if let Some(database) = &args.serve_database {
        return serve_until_stdin_closes(database, args.workers).await;
    }
    if args.smoke {
        (
            args.seconds,
            args.clients,
            args.workers,
            args.rate,
            args.fan_out,
            args.scale_out,
            args.scale_out_events,
        ) = (0.5, 2, 2, 200.0, 500, 2, 600);
    }
    NO_REQUEST_LOGS.store(args.no_request_logs, Ordering::Relaxed);
    COMMIT_DELAY.store(args.commit_delay, Ordering::Relaxed);
    WEBHOOK_CONCURRENCY.store(args.webhook_concurrency, Ordering::Relaxed);
    let budget = match args.smoke {
        true => Budget::Requests(3),
        false => Budget::For(Duration::from_secs_f64(args.seconds)),
    };
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/scrip_bench".into());

    let ceiling =
        insert_ceiling(&server, args.clients, Duration::from_secs_f64(args.seconds)).await?;
    println!(
        "ceiling: {ceiling:.0} single-row INSERT commits/s with {} connections",
        args.clients
    );
    let ledger = ledger_ceiling(&server, Duration::from_secs_f64(args.seconds)).await?;
    println!(
        "ledger ceiling: {ledger:.0} credit entries/s, {LEDGER_BATCH} per transaction, with {LEDGER_CONNECTIONS} connections\n"
    );
    println!(
        "| scenario | mode | events | accepted/s | completed/s | ingest p50 / p99 | lag p50 / p99 | accepted / ceiling | completed / ceiling | completed / ledger ceiling | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for scenario in &args.scenarios {
        for mode in &args.modes {
            match run(&server, &args, scenario, mode, budget).await {
                Ok(r) => println!(
                    "| {scenario} | {mode} | {} | {:.0} | {:.0} | {} / {} | {} / {} | {:.2} | {:.2} | {:.2} | {} MiB |",
                    r.events,
                    r.accepted_per_s,
                    r.completed_per_s,
                    ms(r.ingest.0),
                    ms(r.ingest.1),
                    ms(r.lag.0),
                    ms(r.lag.1),
                    r.accepted_per_s / ceiling,
                    r.completed_per_s / ceiling,
                    r.completed_per_s / ledger,
                    r.rss_mib,
                ),
                Err(err) => {
                    println!("| {scenario} | {mode} | failed: {err} |");
                    failures.push(format!("{scenario}/{mode}: {err}"));
                }
            }
        }
    }
    if args.fan_out > 0 {
        fan_out(&server, &args).await?;
    }
    if args.scale_out > 0 {
        scale_out(&server, &args).await?;
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(failures.join("; ").into()),
    }
}

/// An immediate participants automation over `args.fan_out` members, each of whose events a rule credits,
/// while live events arrive at `args.rate`: how fast the scheduler creates the events, how fast they are
/// processed, and what the fan-out does to live events' lag (before it, and while it runs).
async fn fan_out(server: &str, args: &Args) -> Result<(), BoxError> {
    let Served {
        url,
        pool,
        running,
        api,
    } = serve(server, args.workers, args.clients).await?;
    let program = set_up(&api, "hot").await?.remove(0);
    let program_id: Uuid = program.as_str().unwrap_or_default().parse()?;
    // Members are written directly: enrolling them through events is not what is measured.
    sqlx::query(
        "WITH p AS (SELECT organization_id FROM programs WHERE id = $1),
              made AS (INSERT INTO participants (id, organization_id, external_id)
                       SELECT gen_random_uuid(), p.organization_id, 'member-' || n
                         FROM p, generate_series(1, $2) AS n RETURNING id)
         INSERT INTO participant_programs (participant_id, program_id) SELECT id, $1 FROM made",
    )
    .bind(program_id)
    .bind(i64::try_from(args.fan_out)?)
    .execute(&pool)
    .await?;
    let live = |phase: &'static str, stop: Arc<std::sync::atomic::AtomicBool>| {
        let (api, program) = (api.clone(), program.clone());
        let every = Duration::from_secs_f64(1.0 / args.rate.max(1.0));
        tokio::spawn(async move {
            let started = Instant::now();
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep_until((started + every * n).into()).await;
                let event = json!({"program_id": program, "external_id": format!("member-{}", n % 100 + 1),
                                   "idempotency_key": format!("{phase}-{n}"),
                                   "event_data": {"type": "purchase", "phase": phase}});
                api.post("/events", event).await?;
                n += 1;
            }
            Ok::<_, BoxError>(n)
        })
    };
    let lag = async |phase: &str| -> Result<(f64, f64), BoxError> {
        let (p50, p99): (Option<f64>, Option<f64>) = sqlx::query_as(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8
               FROM events WHERE event_type = 'EXTERNAL' AND event_data->>'phase' = $1",
        )
        .bind(phase)
        .fetch_one(&pool)
        .await?;
        Ok((p50.unwrap_or(0.0) * 1000.0, p99.unwrap_or(0.0) * 1000.0))
    };
    // Until no event of `event_type` (any, when `None`) is queued.
    let drained = async |event_type: Option<&str>| -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM event_queue q JOIN events e ON e.id = q.event_id
                             WHERE $1::text IS NULL OR e.event_type = $1)",
        )
        .bind(event_type)
        .fetch_one(&pool)
        .await?
        {
            if Instant::now() > deadline {
                return Err("the queue did not drain in 10 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    };

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let before = live("before", stop.clone());
    tokio::time::sleep(Duration::from_secs_f64(args.seconds.min(5.0))).await;
    stop.store(true, Ordering::Relaxed);
    before.await??;
    drained(None).await?;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let during = live("during", stop.clone());
    let automation = api
        .create(
            &format!("/programs/{program_id}/automations"),
            json!({"name": "Everyone", "event_name": "purchase", "scope": "participants",
                   "trigger": {"type": "immediate"}}),
        )
        .await?;
    let automation_id: Uuid = automation["id"].as_str().unwrap_or_default().parse()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let (started, created): (DateTime<Utc>, DateTime<Utc>) = loop {
        let row: (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT execution_status, execution_started_at, execution_completed_at FROM automations WHERE id = $1",
        )
        .bind(automation_id)
        .fetch_one(&pool)
        .await?;
        if let ("completed", Some(started), Some(completed)) = (row.0.as_str(), row.1, row.2) {
            break (started, completed);
        }
        if Instant::now() > deadline {
            return Err(format!("the fan-out did not finish in 10 minutes: {}", row.0).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Live events go on until the fan-out's last event is processed.
    drained(Some("SYSTEM")).await?;
    stop.store(true, Ordering::Relaxed);
    during.await??;
    drained(None).await?;
    let (system, last): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT count(*), max(processed_at) FROM events WHERE event_type = 'SYSTEM' AND status = 'COMPLETED'",
    )
    .fetch_one(&pool)
    .await?;
    if system as usize != args.fan_out {
        return Err(format!("{system} of {} fan-out events completed", args.fan_out).into());
    }
    let seconds = |d: chrono::TimeDelta| d.num_milliseconds().max(1) as f64 / 1000.0;
    let processed = seconds(last.unwrap_or(created) - started);
    let (before, during) = (lag("before").await?, lag("during").await?);
    running.stop().await;
    let inconsistent = scrip::verify::check_invariants(&pool).await?;
    drop_database(&url, pool).await?;
    if !inconsistent.is_empty() {
        return Err(format!("ledger inconsistent: {inconsistent:?}").into());
    }
    println!(
        "\n| fan-out | participants | created in | created/s | all processed in | processed/s | live lag p50 / p99 before | during |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| immediate, participants | {} | {:.2} s | {:.0} | {:.1} s | {:.0} | {:.1} / {:.1} ms | {:.1} / {:.1} ms |",
        args.fan_out,
        seconds(created - started),
        args.fan_out as f64 / seconds(created - started),
        processed,
        args.fan_out as f64 / processed,
        before.0,
        before.1,
        during.0,
        during.1,
    );
    Ok(())
}

/// One backlog of `--scale-out-events` purchases drained by one server process, then an equal one by
/// `--scale-out` processes on the same database (each its own OS process, as several `scrip serve` would be):
/// the combined rate against one process's, and where the machine's CPU went meanwhile.
async fn scale_out(server: &str, args: &Args) -> Result<(), BoxError> {
    println!(
        "\n| processes | workers each | events | drained in | completed/s | vs one process | CPU busy | postgres | scrip |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut one = None;
    for processes in [1, args.scale_out] {
        let Served {
            url,
            pool,
            running,
            api,
        } = serve(server, 0, args.clients).await?;
        let program = set_up(&api, "hot").await?.remove(0);
        let batches = args.scale_out_events.div_ceil(100);
        let next = Arc::new(AtomicUsize::new(0));
        let mut clients = tokio::task::JoinSet::new();
        for _ in 0..args.clients {
            let (api, program, next) = (api.clone(), program.clone(), next.clone());
            clients.spawn(async move {
                loop {
                    let batch = next.fetch_add(1, Ordering::Relaxed);
                    if batch >= batches {
                        return Ok::<_, BoxError>(());
                    }
                    let events: Vec<Value> = (0..100)
                        .map(|i| {
                            json!({"program_id": program, "external_id": format!("user-{}", (batch * 7 + i) % 1000),
                                   "idempotency_key": format!("b{batch}-{i}"),
                                   "event_data": {"type": "purchase", "amount": 49.99}})
                        })
                        .collect();
                    let (status, answer) = api.post("/events/batch", json!({"events": events})).await?;
                    if !status.is_success() {
                        return Err(format!("ingest answered {status} {answer}").into());
                    }
                }
            });
        }
        while let Some(joined) = clients.join_next().await {
            joined??;
        }
        running.stop().await;
        let events = batches * 100;

        let before = Cpu::read();
        let started: DateTime<Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&pool)
            .await?;
        let mut children = Vec::new();
        for _ in 0..processes {
            children.push(
                tokio::process::Command::new(std::env::current_exe()?)
                    .args([
                        "--serve-database",
                        &url,
                        "--workers",
                        &args.workers.to_string(),
                    ])
                    .stdin(std::process::Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()?,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(900);
        while sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM event_queue)")
            .fetch_one(&pool)
            .await?
        {
            if Instant::now() > deadline {
                return Err("the backlog did not drain in 15 minutes".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
        let after = Cpu::read();
        let used = after.since(&before, &pids);
        for mut child in children {
            // Closing its stdin stops a child as SIGTERM stops `scrip serve`: it finishes what it holds.
            drop(child.stdin.take());
            child.wait().await?;
        }
        let (completed, last): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'COMPLETED'), max(processed_at) FROM events",
        )
        .fetch_one(&pool)
        .await?;
        let inconsistent = scrip::verify::check_invariants(&pool).await?;
        drop_database(&url, pool).await?;
        if completed as usize != events {
            return Err(format!("{completed} of {events} events completed").into());
        }
        if !inconsistent.is_empty() {
            return Err(format!("ledger inconsistent: {inconsistent:?}").into());
        }
        let took = last
            .and_then(|last| (last - started).to_std().ok())
            .unwrap_or_default()
            .max(Duration::from_millis(1));
        let rate = events as f64 / took.as_secs_f64();
        let one_rate = *one.get_or_insert(rate);
        println!(
            "| {processes} | {} | {events} | {:.2} s | {rate:.0} | {:.2} | {:.0} % | {:.0} % | {:.0} % |",
            args.workers,
            took.as_secs_f64(),
            rate / one_rate,
            used.busy * 100.0,
            used.postgres * 100.0,
            used.scrip * 100.0,
        );
    }
    Ok(())
}

/// The scale-out children: a server with `workers` workers on `database`, until the harness closes stdin.
async fn serve_until_stdin_closes(database: &str, workers: usize) -> Result<(), BoxError> {
    use tokio::io::AsyncReadExt;
    let pool = scrip::db::connect_and_migrate(database, 16).await?;
    let running = scrip::start(pool, "127.0.0.1:0".parse()?, options(workers)).await?;
    let mut rest = Vec::new();
    tokio::io::stdin().read_to_end(&mut rest).await?;
    running.stop().await;
    Ok(())
}

/// CPU time from /proc, in clock ticks: the machine's, idle and busy, and every process's by pid and name.
struct Cpu {
    total: u64,
    idle: u64,
    processes: Vec<(u32, String, u64)>,
}

/// Shares of the machine's CPU time over an interval (1.0: every core the whole time).
struct CpuUse {
    busy: f64,
    postgres: f64,
    scrip: f64,
}

impl Cpu {
    fn read() -> Cpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
        let processes = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
                let (name, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
                let fields: Vec<&str> = rest.split_whitespace().collect();
                // utime and stime are the 14th and 15th fields, the 12th and 13th after the name.
                let used =
                    fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
                Some((pid, name.to_owned(), used))
            })
            .collect();
        Cpu {
            total: ticks.iter().take(8).sum(),
            idle,
            processes,
        }
    }

    fn since(&self, before: &Cpu, children: &[u32]) -> CpuUse {
        let total = self.total.saturating_sub(before.total).max(1) as f64;
        let used = |keep: &dyn Fn(u32, &str) -> bool| -> f64 {
            let spent: u64 = self
                .processes
                .iter()
                .filter(|(pid, name, _)| keep(*pid, name))
                .map(|(pid, _, now)| {
                    let then = before
                        .processes
                        .iter()
                        .find(|(p, _, _)| p == pid)
                        .map_or(0, |(_, _, t)| *t);
                    now.saturating_sub(then)
                })
                .sum();
            spent as f64 / total
        };
        CpuUse {
            busy: 1.0 - self.idle.saturating_sub(before.idle) as f64 / total,
            postgres: used(&|_, name| name == "postgres"),
            scrip: used(&|pid, _| children.contains(&pid)),
        }
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
    let delay = COMMIT_DELAY.load(Ordering::Relaxed);
    if delay > 0 {
        // Set before any connection of the run opens: a database's settings apply to sessions opened after.
        sqlx::Postgres::create_database(&url).await?;
        let name = url.rsplit_once('/').map_or("", |(_, name)| name);
        let mut admin = sqlx::PgConnection::connect(&url).await?;
        for setting in [
            format!("ALTER DATABASE \"{name}\" SET commit_delay = {delay}"),
            format!("ALTER DATABASE \"{name}\" SET commit_siblings = 5"),
        ] {
            sqlx::query(&setting).execute(&mut admin).await?;
        }
        admin.close().await?;
    }
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

/// A fresh database with a server in this process, and a client for its API.
struct Served {
    url: String,
    pool: PgPool,
    running: scrip::Running,
    api: Api,
}

async fn serve(server: &str, workers: usize, clients: usize) -> Result<Served, BoxError> {
    let (url, pool) = fresh_database(server).await?;
    let key = scrip::organizations::create_api_key(&pool, "load")
        .await?
        .key;
    let running = scrip::start(pool.clone(), "127.0.0.1:0".parse()?, options(workers)).await?;
    let api = Api {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(clients)
            .build()?,
        base: format!("http://{}/v1", running.addr),
        key,
    };
    Ok(Served {
        url,
        pool,
        running,
        api,
    })
}

/// The server as deployed, request logs included unless `--no-request-logs`, but without a rate limit (the
/// harness is one organization sending as fast as the pipeline takes it) and with webhooks allowed to the
/// harness's own receiver on loopback.
fn options(workers: usize) -> scrip::Options {
    let logged = !NO_REQUEST_LOGS.load(Ordering::Relaxed);
    scrip::Options {
        pipeline: Pipeline {
            workers,
            ..Pipeline::default()
        },
        webhooks: scrip::webhooks::delivery::Settings {
            policy: scrip::webhooks::url::UrlPolicy {
                allow_loopback: true,
            },
            concurrency: WEBHOOK_CONCURRENCY.load(Ordering::Relaxed),
            ..Default::default()
        },
        rate_limits: scrip::rate_limits::Settings {
            per_second: 0,
            burst: 0,
        },
        request_logs: scrip::request_logs::Settings {
            retention_days: if logged { 30 } else { 0 },
        },
        ..Default::default()
    }
}

/// `--no-request-logs` and `--webhook-concurrency`, for [`options`].
static NO_REQUEST_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static WEBHOOK_CONCURRENCY: AtomicUsize = AtomicUsize::new(16);
/// `--commit-delay`, for [`fresh_database`].
static COMMIT_DELAY: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A webhook receiver on loopback that answers 200 to everything; returns its URL.
async fn receiver() -> Result<String, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new().fallback(|| async { "ok" });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Entries per transaction in the ledger ceiling: as many as a worker claims events.
const LEDGER_BATCH: usize = 100;
/// Connections writing the ledger ceiling: on two cores 1 wrote 14,500 entries/s, 2 20,200, 3 and 4 22,800.
const LEDGER_CONNECTIONS: usize = 4;

/// The ledger's own ceiling: credit entries per second written the way a worker batch writes its events'
/// credits (the accounts read by `KnownAccounts::load`, then `Journal::write_first` with 100 entries of two
/// postings each, one transaction per batch), from [`LEDGER_CONNECTIONS`] connections, each crediting
/// participants of its own, and nothing else: no events, rules, evaluations, statuses or seals. A pipeline
/// that gives every event such an entry cannot complete more events per second than this on the same machine.
async fn ledger_ceiling(server: &str, period: Duration) -> Result<f64, BoxError> {
    let Served {
        url,
        pool,
        running,
        api,
    } = serve(server, 0, 1).await?;
    set_up(&api, "hot").await?;
    running.stop().await;
    let (organization_id, program_id, asset_id): (Uuid, Uuid, Uuid) = sqlx::query_as(
        "SELECT a.organization_id, pa.program_id, a.id FROM assets a JOIN program_assets pa ON pa.asset_id = a.id",
    )
    .fetch_one(&pool)
    .await?;
    let participants: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO participants (id, organization_id, external_id)
         SELECT gen_random_uuid(), $1, 'user-' || n FROM generate_series(1, $2) n RETURNING id",
    )
    .bind(organization_id)
    .bind((LEDGER_BATCH * 5 * LEDGER_CONNECTIONS) as i32)
    .fetch_all(&pool)
    .await?;
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for own in participants.chunks(LEDGER_BATCH * 5) {
        let (pool, done, own) = (pool.clone(), done.clone(), own.to_vec());
        tasks.spawn(async move {
            for round in 0.. {
                if started.elapsed() >= period {
                    break;
                }
                let start = (round * LEDGER_BATCH) % own.len();
                let credited = &own[start..start + LEDGER_BATCH];
                let owners: Vec<Uuid> = credited.iter().copied().chain([program_id]).collect();
                let mut tx = pool.begin().await?;
                let known = KnownAccounts::load(&mut tx, &[organization_id], &owners).await?;
                let mut journal = Journal::default();
                for participant in credited {
                    journal.defer(organization_id, credit(program_id, asset_id, *participant))?;
                }
                journal.write_first(&mut tx, LEDGER_BATCH, &known).await?;
                tx.commit().await?;
                done.fetch_add(LEDGER_BATCH, Ordering::Relaxed);
            }
            Ok::<_, BoxError>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined??;
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    drop_database(&url, pool).await?;
    Ok(rate)
}

/// The entry a `hot` event's rule writes: 10 points from the issuance account to the participant.
fn credit(program_id: Uuid, asset_id: Uuid, participant: Uuid) -> NewEntry {
    let points = Decimal::from(10);
    NewEntry {
        program_id,
        action_type: EntryType::Credit,
        description: Some("10 per purchase: 10 P0".into()),
        event_id: None,
        rule_id: None,
        reference_id: None,
        created_by_api_key_id: None,
        postings: vec![
            (
                AccountKey::new(Owner::Participant(participant), asset_id, Bucket::Available),
                points,
            ),
            (
                AccountKey::new(Owner::Issuance, asset_id, Bucket::Available),
                -points,
            ),
        ],
        allow_negative: false,
    }
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
    // A drain first ingests with no workers, then starts them on the backlog.
    let draining = mode == "drain";
    let Served {
        url,
        pool,
        running,
        api,
    } = serve(
        server,
        if draining { 0 } else { args.workers },
        args.clients,
    )
    .await?;
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
    let batch = if mode == "single" || mode == "paced" {
        1
    } else {
        100
    };
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
    // A drain is timed from when its workers start, on the database's clock like completion.
    let (drainer, started_db): (_, DateTime<Utc>) = match draining && args.workers > 0 {
        true => (
            Some(scrip::start(pool.clone(), "127.0.0.1:0".parse()?, options(args.workers)).await?),
            sqlx::query_scalar("SELECT clock_timestamp()")
                .fetch_one(&pool)
                .await?,
        ),
        false => (None, started_db),
    };

    // Every event must reach a final state; a stuck pipeline fails the run instead of hanging it. The poll
    // stops at the first pending event and runs every 100 ms, so it takes little from the pipeline it
    // measures (a count every 10 ms took a tenth of Postgres's time during a drain); the run ends at the last
    // event's processed_at, not at the poll that noticed.
    // With no workers nothing drains: the run measures ingest alone, and every event must still be queued.
    let deadline = Instant::now() + Duration::from_secs(300).max(sending * 20);
    let processing = args.workers > 0;
    while processing && Instant::now() < deadline {
        let pending: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM event_queue)")
            .fetch_one(&pool)
            .await?;
        if !pending {
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
        .max(if draining { Duration::ZERO } else { sending });
    let rss_mib = rss.load(Ordering::Relaxed);
    let (lag_p50, lag_p99): (Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8,
                percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM processed_at - received_at))::float8
           FROM events WHERE status = 'COMPLETED'",
    )
    .fetch_one(&pool)
    .await?;
    running.stop().await;
    if let Some(drainer) = drainer {
        drainer.stop().await;
    }
    let inconsistent = scrip::verify::check_invariants(&pool).await?;
    match args.keep {
        true => println!("kept {url}"),
        false => drop_database(&url, pool).await?,
    }
    let expected = if args.workers > 0 { events } else { 0 };
    if failed > 0 || completed as usize != expected {
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
        completed_per_s: completed as f64 / finished.as_secs_f64(),
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
    if scenario == "hooked" {
        api.create(
            "/webhook-endpoints",
            json!({"url": receiver().await?, "enabled_events": ["*"]}),
        )
        .await?;
    }
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
        } else if scenario == "tiered" || scenario == "counted" {
            if scenario == "tiered" {
                api.create(
                &format!("/programs/{}/tiers", program["id"].as_str().unwrap_or_default()),
                json!({"key": "status",
                       "lifecycle": {"retention": {"mode": "ACTIVITY_REFRESH", "duration": "8760h"}},
                       "levels": [
                           {"key": "silver", "rank": 1, "qualification": {"mode": "ALL", "criteria": [
                               {"counter": "purchases", "operator": ">=", "threshold": 5}]}},
                           {"key": "gold", "rank": 2, "qualification": {"mode": "ALL", "criteria": [
                               {"counter": "purchases", "operator": ">=", "threshold": 50}]}}]}),
                )
                .await?;
            }
            api.create(
                "/rules",
                json!({"program_id": program["id"], "name": "10 per purchase, counted",
                       "condition": "event.type == \"purchase\"",
                       "actions": [{"type": "CREDIT", "asset_id": asset["id"], "amount": "10"},
                                   {"type": "COUNTER", "key": "purchases"}]}),
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
