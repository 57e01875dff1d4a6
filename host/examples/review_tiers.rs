//! Benchmark: a tier's period end over N members, reviewed by the real lifecycle pass
//! (`tiers::lifecycle::run_once`, batch after batch) on a fresh database; then check what it did. Usage (numbers
//! in BENCHMARKS.md):
//!
//!     cargo run --release -p scrip --example review_tiers -- 100000
//!
//! Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432/scrip_bench) and drops the
//! database it creates. Every member holds gold (spend ≥ 1000) of a CALENDAR_YEAR tier created last year, with
//! a spend counter spread evenly over 0–2999; at the period end a third no longer qualifies and drops to what
//! it does qualify for, and every spend keeps only what exceeds gold's threshold (EXCESS).

use chrono::{Datelike, TimeZone, Utc};
use scrip::BoxError;
use sqlx::Executor;
use sqlx::migrate::MigrateDatabase;
use std::time::Instant;
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let members: i64 = std::env::args().nth(1).map_or(Ok(100_000), |n| n.parse())?;
    let batch: i64 = std::env::args().nth(2).map_or(Ok(2000), |n| n.parse())?;
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/scrip_bench".into());
    let url = format!(
        "{}/scrip_bench_{}",
        server.rsplit_once('/').map_or(server.as_str(), |(s, _)| s),
        Uuid::now_v7().simple()
    );
    let pool = scrip::db::connect_and_migrate(&url, 4).await?;

    let started = Instant::now();
    seed(&pool, members).await?;
    println!(
        "seeded {members} gold members in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let now = Utc::now();
    let started = Instant::now();
    let mut rounds = 0;
    while scrip::tiers::lifecycle::run_once(&pool, now, batch).await? > 0 {
        rounds += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "reviewed {members} members in {rounds} rounds of {batch}: {seconds:.1} s ({:.0} members/s)",
        members as f64 / seconds
    );

    let (kept, dropped, pending): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE l.key = 'gold'), count(*) FILTER (WHERE l.key <> 'gold'),
                count(*) FILTER (WHERE h.downgrade_at IS NOT NULL)
           FROM holder_tiers h JOIN tier_levels l ON l.id = h.level_id",
    )
    .fetch_one(&pool)
    .await?;
    let (rolled, over): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM state_history WHERE operation = 'auto_reset'),
                (SELECT count(*) FROM participant_counters WHERE value >= 2000)",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "gold kept {kept}, moved down {dropped}, base {}, pending {pending}; spends rolled over {rolled}",
        members - kept - dropped
    );
    pool.close().await;
    sqlx::Postgres::force_drop_database(&url).await?;
    if pending != 0 || over != 0 || rolled == 0 || kept == members {
        return Err("the review did not finish what was due".into());
    }
    Ok(())
}

async fn seed(pool: &sqlx::PgPool, members: i64) -> Result<(), BoxError> {
    let key = scrip::organizations::create_api_key(pool, "bench").await?;
    let (org, program, tier) = (key.organization_id, Uuid::now_v7(), Uuid::now_v7());
    let year_ago = Utc
        .with_ymd_and_hms(Utc::now().year() - 1, 6, 1, 0, 0, 0)
        .single()
        .ok_or("a date")?;
    let lifecycle = serde_json::json!({
        "retention": {"mode": "PERIOD_BASED"},
        "qualification_period": {"type": "CALENDAR_YEAR"},
        "downgrade_policy": {"mode": "DROP_TO_QUALIFYING"},
        "counters": {"qualifying": ["spend"], "rollover": "EXCESS"}});
    let level = |threshold: i64| {
        serde_json::json!({"mode": "ALL", "criteria": [
            {"counter": "spend", "operator": ">=", "threshold": threshold}]})
    };
    let mut tx = pool.begin().await?;
    tx.execute(
        sqlx::query("INSERT INTO programs (id, organization_id, name) VALUES ($1, $2, 'bench')")
            .bind(program)
            .bind(org),
    )
    .await?;
    tx.execute(
        sqlx::query(
            "INSERT INTO tiers (id, organization_id, program_id, key, lifecycle, created_at, updated_at)
             VALUES ($1, $2, $3, 'status', $4, $5, $5)",
        )
        .bind(tier)
        .bind(org)
        .bind(program)
        .bind(&lifecycle)
        .bind(year_ago),
    )
    .await?;
    for (key, rank, threshold) in [("silver", 1, 100), ("gold", 2, 1000), ("platinum", 3, 2500)] {
        tx.execute(
            sqlx::query(
                "INSERT INTO tier_levels (id, tier_id, key, rank, qualification) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(Uuid::now_v7())
            .bind(tier)
            .bind(key)
            .bind(rank)
            .bind(level(threshold)),
        )
        .await?;
    }
    let statements = [
        "INSERT INTO participants (id, organization_id, external_id)
         SELECT gen_random_uuid(), $1, 'p' || g FROM generate_series(1, $3) g",
        "INSERT INTO participant_programs (participant_id, program_id) SELECT id, $2 FROM participants",
        "INSERT INTO participant_counters (participant_id, key, value)
         SELECT id, 'spend', row_number() OVER (ORDER BY id) % 3000 FROM participants",
        "INSERT INTO holder_tiers (tier_id, holder_type, holder_id, level_id, acquired_at)
         SELECT $4, 'PARTICIPANT', p.id, l.id, $5 FROM participants p
           JOIN tier_levels l ON l.tier_id = $4 AND l.key = 'gold'",
    ];
    for statement in statements {
        tx.execute(
            sqlx::query(statement)
                .bind(org)
                .bind(program)
                .bind(members)
                .bind(tier)
                .bind(year_ago),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
