//! Benchmark: how many events per second the pipeline completes. Usage (numbers in BENCHMARKS.md):
//!
//!     cargo run -p scrip --example event_throughput -- 20000 4
//!
//! Creates a fresh database on DATABASE_URL's server with the quickstart's program, asset and rule (10 points
//! per purchase), queues N events for 1,000 participants through the batch API of a server without workers,
//! then starts W workers and measures until every event is COMPLETED. Every credit comes from the one
//! issuance account, so a hot row there would show up as a ceiling here.

use scrip::BoxError;
use scrip::events::worker::Pipeline;
use serde_json::json;
use sqlx::migrate::MigrateDatabase;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(Ok(20_000), |n| n.parse())?;
    let workers: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/scrip_bench".into());
    let url = format!(
        "{}/scrip_bench_{}",
        server.rsplit_once('/').map_or(server.as_str(), |(s, _)| s),
        Uuid::now_v7().simple()
    );
    let pool = scrip::db::connect_and_migrate(&url, 16).await?;
    let key = scrip::organizations::create_api_key(&pool, "bench")
        .await?
        .key;
    let api = scrip::start(
        pool.clone(),
        "127.0.0.1:0".parse()?,
        Pipeline {
            workers: 0,
            ..Pipeline::default()
        },
    )
    .await?;
    let base = format!("http://{}/v1", api.addr);
    let client = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{base}{path}"))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let program: serde_json::Value = post("/programs", json!({"name": "Bench"}))
        .await?
        .json()
        .await?;
    let asset: serde_json::Value = post(
        "/assets",
        json!({"program_id": program["id"], "name": "Points", "symbol": "PTS",
        "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0}),
    )
    .await?
    .json()
    .await?;
    post("/rules", json!({"program_id": program["id"], "name": "10 per purchase", "condition": "event.type == \"purchase\"",
        "actions": [{"type": "CREDIT", "asset_id": asset["id"], "amount": "10"}]})).await?;
    let queued = Instant::now();
    for chunk in 0..events.div_ceil(100) {
        let batch: Vec<_> = (chunk * 100..((chunk + 1) * 100).min(events))
            .map(|n| json!({"program_id": program["id"], "external_id": format!("user-{}", n % 1000),
                            "idempotency_key": format!("e{n}"), "event_data": {"type": "purchase", "amount": 49.99}}))
            .collect();
        post("/events/batch", json!({"events": batch})).await?;
    }
    println!(
        "queued {events} events through the batch API in {:.1} s",
        queued.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let processing = scrip::start(
        pool.clone(),
        "127.0.0.1:0".parse()?,
        Pipeline {
            workers,
            ..Pipeline::default()
        },
    )
    .await?;
    loop {
        let done: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE status = 'COMPLETED'")
                .fetch_one(&pool)
                .await?;
        if done as usize >= events {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{workers} workers completed {events} events in {seconds:.1} s: {:.0} events/s",
        events as f64 / seconds
    );
    processing.stop().await;
    api.stop().await;
    let found = scrip::ledger::check_invariants(&pool).await?;
    println!("ledger consistent: {}", found.is_empty());
    pool.close().await;
    sqlx::Postgres::force_drop_database(&url).await?;
    Ok(())
}
