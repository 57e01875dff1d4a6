//! Benchmark: expire N lots with the real expiry pass (`movement::due::run_once`), batch after batch, on a fresh
//! database; then check the ledger's invariants. Usage (numbers in BENCHMARKS.md):
//!
//!     cargo run --release -p scrip --example expire_lots -- 1000000
//!
//! Uses DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432/scrip_bench) and drops the
//! database it creates. The lots belong to N/100 participants, 100 each, all already past `expires_at`.

use scrip::BoxError;
use sqlx::Executor;
use sqlx::migrate::MigrateDatabase;
use std::time::Instant;
use uuid::Uuid;

const LOTS_PER_PARTICIPANT: i64 = 100;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let lots: i64 = std::env::args()
        .nth(1)
        .map_or(Ok(1_000_000), |n| n.parse())?;
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/scrip_bench".into());
    let url = format!(
        "{}/scrip_bench_{}",
        server.rsplit_once('/').map_or(server.as_str(), |(s, _)| s),
        Uuid::now_v7().simple()
    );
    let pool = scrip::db::connect_and_migrate(&url, 4).await?;
    let participants = lots / LOTS_PER_PARTICIPANT;

    let started = Instant::now();
    seed(&pool, participants).await?;
    println!(
        "seeded {lots} expired lots for {participants} participants in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let (mut batches, mut expired) = (0, 0);
    loop {
        let done = scrip::movement::due::run_once(&pool).await?;
        if done == 0 {
            break;
        }
        batches += 1;
        expired += done;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "expired {expired} lots in {batches} batches: {seconds:.1} s ({:.0} lots/s)",
        expired as f64 / seconds
    );

    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM lots WHERE remaining > 0")
        .fetch_one(&pool)
        .await?;
    let found = scrip::verify::check_invariants(&pool).await?;
    println!(
        "lots still holding value: {left}; ledger consistent: {}",
        found.is_empty()
    );
    pool.close().await;
    sqlx::Postgres::force_drop_database(&url).await?;
    if left != 0 || !found.is_empty() {
        return Err(format!("inconsistent after expiry: {found:?}").into());
    }
    Ok(())
}

/// One CREDIT entry per participant (issuance −100, participant +100) and its 100 lots of 1, expired an hour ago.
async fn seed(pool: &sqlx::PgPool, participants: i64) -> Result<(), BoxError> {
    let key = scrip::organizations::create_api_key(pool, "bench").await?;
    let (org, program, asset) = (key.organization_id, Uuid::now_v7(), Uuid::now_v7());
    let mut tx = pool.begin().await?;
    tx.execute(
        sqlx::query("INSERT INTO programs (id, organization_id, name) VALUES ($1, $2, 'bench')")
            .bind(program)
            .bind(org),
    )
    .await?;
    tx.execute(
        sqlx::query(
            "WITH a AS (INSERT INTO assets (id, organization_id, name, symbol, inventory_mode, issuance_policy, scale)
                        VALUES ($1, $2, 'Miles', 'MI', 'LOT', 'UNLIMITED', 0) RETURNING id)
             INSERT INTO program_assets (program_id, asset_id, organization_id) SELECT $3, id, $2 FROM a",
        )
        .bind(asset)
        .bind(org)
        .bind(program),
    )
    .await?;
    let statements = [
        "INSERT INTO participants (id, organization_id, external_id)
         SELECT gen_random_uuid(), $1, 'p' || g FROM generate_series(1, $4) g",
        "INSERT INTO accounts (id, organization_id, entity_type, entity_id, asset_id, bucket, balance)
         SELECT gen_random_uuid(), $1, 'PARTICIPANT', p.id, $3, 'AVAILABLE', $5 FROM participants p",
        "INSERT INTO accounts (id, organization_id, entity_type, entity_id, asset_id, bucket, balance)
         VALUES (gen_random_uuid(), $1, 'SYSTEM_ISSUANCE', NULL, $3, 'AVAILABLE', NULL)",
        "INSERT INTO journal_entries (id, organization_id, program_id, action_type, description, created_at)
         SELECT p.id, $1, $2, 'CREDIT', 'seed', now() - interval '2 hours' FROM participants p",
        "INSERT INTO postings (id, journal_entry_id, organization_id, account_id, program_id, asset_id, entity_type,
                               entity_id, bucket, amount)
         SELECT gen_random_uuid(), a.entity_id, $1, a.id, $2, $3, 'PARTICIPANT', a.entity_id, 'AVAILABLE', $5
           FROM accounts a WHERE a.entity_type = 'PARTICIPANT'
         UNION ALL
         SELECT gen_random_uuid(), p.id, $1, i.id, $2, $3, 'SYSTEM_ISSUANCE', NULL, 'AVAILABLE', -$5
           FROM participants p CROSS JOIN accounts i WHERE i.entity_type = 'SYSTEM_ISSUANCE'",
        "INSERT INTO lots (id, organization_id, participant_id, asset_id, program_id, journal_entry_id, amount,
                           remaining, status, earned_at, expires_at)
         SELECT gen_random_uuid(), $1, p.id, $3, $2, p.id, 1, 1, 'AVAILABLE', now() - interval '2 hours',
                now() - interval '1 hour'
           FROM participants p CROSS JOIN generate_series(1, $5) g",
    ];
    for statement in statements {
        tx.execute(
            sqlx::query(statement)
                .bind(org)
                .bind(program)
                .bind(asset)
                .bind(participants)
                .bind(rust_decimal::Decimal::from(LOTS_PER_PARTICIPANT)),
        )
        .await?;
    }
    tx.commit().await?;
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}
