//! The backtest benchmark: how many stored events a backtest gets through per second. Usage (numbers in
//! BENCHMARKS.md):
//!
//!     rules-examples/build.sh && cargo run --release -p scrip --example backtest -- --events 1000000
//!     cargo run -p scrip --example backtest -- --smoke     # tiny numbers; the test command runs this
//!
//! 1. A fresh database of DATABASE_URL's server and a server in this process. One program whose purchases
//!    are counted and paid by a CEL rule, and paid again by the purchase-points component capped by the
//!    participant's balance; `--events` purchases by `--participants` members go through the real pipeline
//!    (`/v1/events/batch`, workers), 20,000 at a time, until every one is COMPLETED.
//! 2. Backtests over all of them, each a call after another following `next_cursor` until the window is
//!    done: `cel, event only` (a new CEL rule reading only the event: no history rebuilt), `cel, counters`
//!    (the saved CEL rule with a condition on the participant's counter: each event's state rebuilt from the
//!    state history) and `wasm, balances` (the saved component with another cap: state and balances rebuilt,
//!    the module run per event), and both saved rules as they are. Reported: events evaluated per second,
//!    calls, what matched and what would have been credited. It fails unless every event was evaluated, the
//!    saved rules as they are differ from what they did in no event, and `cel, counters` matched each
//!    member's purchases from the eleventh on.

use clap::Parser;
use scrip::BoxError;
use scrip::events::worker::Pipeline;
use serde_json::{Value, json};
use sqlx::migrate::MigrateDatabase;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Purchases sent before waiting for them to be processed.
const WAVE: usize = 20_000;

#[derive(Parser, Debug)]
struct Args {
    /// Tiny numbers, to check the benchmark works (the test command runs this).
    #[arg(long)]
    smoke: bool,
    /// Purchases stored before the backtests.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    /// Members they are spread over.
    #[arg(long, default_value_t = 10_000)]
    participants: usize,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = Args::parse();
    if args.smoke {
        // Three chunks of a call, so that participants are carried from one to the next.
        (args.events, args.participants) = (4_500, 45);
    }
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/scrip_bench".into());
    let url = format!(
        "{}/scrip_backtest_{}",
        server.rsplit_once('/').map_or(server.as_str(), |(s, _)| s),
        Uuid::now_v7().simple()
    );
    let pool = scrip::db::connect_and_migrate(&url, 32).await?;
    let key = scrip::organizations::create_api_key(&pool, "backtest")
        .await?
        .key;
    let options = scrip::Options {
        pipeline: Pipeline::default(),
        rate_limits: scrip::rate_limits::Settings {
            per_second: 0,
            burst: 0,
        },
        ..Default::default()
    };
    let running = scrip::start(pool.clone(), "127.0.0.1:0".parse()?, options).await?;
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("http://{}/v1", running.addr),
        key,
    };
    let history = History::store(&api, &pool, &args).await?;
    println!(
        "stored: {} events by {} participants, processed at {:.0} events/s\n",
        args.events, args.participants, history.processed_per_second
    );
    println!("| backtest | events | seconds | events/s | calls | matched | credited |");
    println!("|---|---|---|---|---|---|---|");
    let counted_changed = json!({
        "condition": "has(participant.counters.purchases) && participant.counters.purchases >= 10"});
    let candidates = [
        (
            "cel, event only",
            json!({"rule": {"program_id": history.program, "name": "double big baskets",
                            "condition": "event.amount >= 40",
                            "actions": [{"type": "CREDIT", "asset_id": history.asset,
                                         "amount": "event.amount * 2"}]}}),
        ),
        (
            "cel, counters, as saved",
            json!({"rule_id": history.counted}),
        ),
        (
            "cel, counters",
            json!({"rule_id": history.counted, "changes": counted_changed}),
        ),
        (
            "wasm, balances, as saved",
            json!({"rule_id": history.capped}),
        ),
        (
            "wasm, balances",
            json!({"rule_id": history.capped, "changes": {
                "config": {"asset_id": history.asset, "points": "5", "max_balance": "500"}}}),
        ),
    ];
    let mut failed = false;
    for (name, candidate) in candidates {
        let run = backtest(&api, candidate, &history).await?;
        println!(
            "| {name} | {} | {:.1} | {:.0} | {} | {} | {} |",
            run.evaluated,
            run.seconds,
            run.evaluated as f64 / run.seconds,
            run.calls,
            run.matched,
            run.credited
        );
        if run.evaluated != args.events as u64 {
            eprintln!(
                "{name}: evaluated {} of {} events",
                run.evaluated, args.events
            );
            failed = true;
        }
    }
    running.stop().await;
    pool.close().await;
    sqlx::Postgres::force_drop_database(&url).await?;
    match failed {
        true => Err("a backtest did not find what was expected".into()),
        false => Ok(()),
    }
}

struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// POSTs and returns the answer, or fails with what the server said.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, BoxError> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        match status.is_success() {
            true => Ok(answer),
            false => Err(format!("POST {path}: {status} {answer}").into()),
        }
    }
}

/// What was stored: the program, its asset, its two rules, and the window around the events.
struct History {
    program: Value,
    asset: Value,
    counted: Value,
    capped: Value,
    from: String,
    to: String,
    processed_per_second: f64,
}

impl History {
    async fn store(api: &Api, pool: &sqlx::PgPool, args: &Args) -> Result<History, BoxError> {
        let from = chrono::Utc::now().to_rfc3339();
        let program = api
            .post("/programs", &json!({"name": "Backtested"}))
            .await?["id"]
            .clone();
        let asset = api
            .post(
                "/assets",
                &json!({"program_id": program, "name": "Points", "symbol": "PTS",
                        "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0}),
            )
            .await?["id"]
            .clone();
        let counted = api
            .post(
                "/rules",
                &json!({"program_id": program, "name": "10 per purchase, counted",
                        "condition": "event.type == \"purchase\"",
                        "actions": [{"type": "CREDIT", "asset_id": asset, "amount": "10"},
                                    {"type": "COUNTER", "key": "purchases"}]}),
            )
            .await?["id"]
            .clone();
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../rules-examples/dist/purchase-points.wasm"
        );
        let bytes = std::fs::read(path)
            .map_err(|e| format!("{path}: {e} (run rules-examples/build.sh)"))?;
        let module: Value = api
            .client
            .post(format!("{}/modules", api.base))
            .bearer_auth(&api.key)
            .header("Content-Type", "application/wasm")
            .body(bytes)
            .send()
            .await?
            .json()
            .await?;
        let capped = api
            .post(
                "/rules",
                &json!({"program_id": program, "name": "5 per purchase up to 1000", "module_id": module["id"],
                        "config": {"asset_id": asset, "points": "5", "max_balance": "1000"}}),
            )
            .await?["id"]
            .clone();
        let started = Instant::now();
        // In waves of WAVE purchases, each processed before the next is sent: a backlog of a million in the
        // queue at once measures the queue, not the backtest.
        let api = std::sync::Arc::new(Api {
            client: api.client.clone(),
            base: api.base.clone(),
            key: api.key.clone(),
        });
        let (events, participants) = (args.events, args.participants);
        for wave in (0..events).step_by(WAVE) {
            let wave_end = (wave + WAVE).min(events);
            // Eight clients, each sending its share of the wave 100 at a time.
            let mut sending = tokio::task::JoinSet::new();
            for client in 0..8 {
                let (api, program) = (api.clone(), program.clone());
                sending.spawn(async move {
                    let mine: Vec<usize> = (wave + client..wave_end).step_by(8).collect();
                    for chunk in mine.chunks(100) {
                        let batch: Vec<Value> = chunk
                            .iter()
                            .map(|n| {
                                json!({"program_id": program,
                                       "external_id": format!("member-{}", n % participants),
                                       "idempotency_key": format!("purchase-{n}"),
                                       "event_data": {"type": "purchase", "amount": 10 + (n % 7) * 10}})
                            })
                            .collect();
                        api.post("/events/batch", &json!({"events": batch})).await?;
                    }
                    Ok::<_, BoxError>(())
                });
            }
            while let Some(sent) = sending.join_next().await {
                sent??;
            }
            let deadline = Instant::now() + Duration::from_secs(600);
            while sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM event_queue)")
                .fetch_one(pool)
                .await?
            {
                if Instant::now() > deadline {
                    return Err("a wave was not processed in ten minutes".into());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let failed: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE status <> 'COMPLETED'")
                .fetch_one(pool)
                .await?;
        if failed > 0 {
            return Err(format!("{failed} events did not complete").into());
        }
        Ok(History {
            program,
            asset,
            counted,
            capped,
            from,
            to: (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339(),
            processed_per_second: args.events as f64 / started.elapsed().as_secs_f64(),
        })
    }
}

struct Run {
    evaluated: u64,
    /// Events newly matched, no longer matched or matched with other amounts, against the saved rule.
    differences: u64,
    matched: u64,
    /// What it would have credited.
    credited: rust_decimal::Decimal,
    calls: u64,
    seconds: f64,
}

/// One candidate over the whole window, a call after another.
async fn backtest(api: &Api, candidate: Value, history: &History) -> Result<Run, BoxError> {
    let mut body = candidate;
    body["from"] = json!(history.from);
    body["to"] = json!(history.to);
    body["limit"] = json!(1_000_000);
    body["changes_limit"] = json!(0);
    let mut run = Run {
        evaluated: 0,
        differences: 0,
        matched: 0,
        credited: rust_decimal::Decimal::ZERO,
        calls: 0,
        seconds: 0.0,
    };
    let started = Instant::now();
    loop {
        let report = api.post("/rules/backtest", &body).await?;
        run.calls += 1;
        run.evaluated += report["events_evaluated"].as_u64().unwrap_or(0);
        run.matched += report["matched"].as_u64().unwrap_or(0);
        let comparison = &report["comparison"];
        for count in ["newly_matched", "no_longer_matched", "amounts_changed"] {
            run.differences += comparison[count].as_u64().unwrap_or(0);
        }
        let credited = report["assets"][0]["credited"].as_str().unwrap_or("0");
        run.credited += credited.parse::<rust_decimal::Decimal>()?;
        match report["next_cursor"].as_str() {
            Some(cursor) => body["after"] = json!(cursor),
            None => break,
        }
    }
    run.seconds = started.elapsed().as_secs_f64();
    Ok(run)
}
