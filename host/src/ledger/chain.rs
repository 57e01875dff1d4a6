//! The hash chain. Each organization's journal entries are chained in `chain_seq` order:
//! `entry_hash = sha256(previous entry_hash ‖ canonical JSON of the entry and its postings)`, hex-encoded,
//! with an empty previous hash for the first entry.
//!
//! Writers never touch the chain. A sealer seals entries after they commit, one insert-only `journal_seals`
//! row per entry, numbering them in the order it takes them: by the transaction that wrote them
//! (`written_by`), then id. Every transaction of this database with an id below the oldest one of it still
//! running has ended, so the entries below that horizon are final and none can later appear behind the last
//! one sealed (`journal_seal_cursor`). Transactions of other databases on the server cannot write this
//! journal and do not hold sealing back (see [`horizon`]); one left open in this database does, until it
//! ends. One sealer runs at a time (an advisory lock); every `scrip serve` offers.

use crate::organizations::hex;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// Advisory lock key held by the one sealer at work ("SCRIPSEA").
const SEALER_LOCK: i64 = 0x5343_5249_5053_4541;
const SEAL_BATCH: i64 = 1000;
const SEAL_IDLE: Duration = Duration::from_millis(500);

#[derive(Debug, sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    organization_id: Uuid,
    program_id: Uuid,
    action_type: String,
    description: Option<String>,
    event_id: Option<Uuid>,
    rule_id: Option<Uuid>,
    reference_id: Option<String>,
    created_by_api_key_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct PostingRow {
    journal_entry_id: Uuid,
    id: Uuid,
    account_id: Uuid,
    asset_id: Uuid,
    entity_type: String,
    entity_id: Option<Uuid>,
    bucket: String,
    amount: Decimal,
}

/// What the hash covers, in a fixed form: object keys sorted, amounts without trailing zeros, times in µs.
fn canonical(entry: &EntryRow, postings: &[&PostingRow]) -> Value {
    let mut postings: Vec<&&PostingRow> = postings.iter().collect();
    postings.sort_by_key(|p| p.id);
    json!({
        "id": entry.id,
        "organization_id": entry.organization_id,
        "program_id": entry.program_id,
        "action_type": entry.action_type,
        "description": entry.description,
        "event_id": entry.event_id,
        "rule_id": entry.rule_id,
        "reference_id": entry.reference_id,
        "created_by_api_key_id": entry.created_by_api_key_id,
        "created_at": crate::pagination::time_key(entry.created_at),
        "postings": postings.iter().map(|p| json!({
            "id": p.id,
            "account_id": p.account_id,
            "asset_id": p.asset_id,
            "entity_type": p.entity_type,
            "entity_id": p.entity_id,
            "bucket": p.bucket,
            "amount": p.amount.normalize().to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn chain_hash(previous: &str, entry: &EntryRow, postings: &[&PostingRow]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(canonical(entry, postings).to_string().as_bytes());
    hex(&hasher.finalize())
}

const ENTRY_COLUMNS: &str = "j.id, j.organization_id, j.program_id, j.action_type, j.description, j.event_id, \
                             j.rule_id, j.reference_id, j.created_by_api_key_id, j.created_at";

async fn postings_of(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, Vec<PostingRow>>> {
    let rows: Vec<PostingRow> = sqlx::query_as(
        "SELECT journal_entry_id, id, account_id, asset_id, entity_type, entity_id, bucket, amount
           FROM postings WHERE journal_entry_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut grouped: HashMap<Uuid, Vec<PostingRow>> = HashMap::new();
    for row in rows {
        grouped.entry(row.journal_entry_id).or_default().push(row);
    }
    Ok(grouped)
}

/// An entry the sealer may take, with its place in the sealing order.
#[derive(sqlx::FromRow)]
struct Final {
    written_by: String,
    #[sqlx(flatten)]
    entry: EntryRow,
}

/// Seals up to one batch of committed, unsealed entries. Returns how many it sealed; 0 when another sealer
/// holds the lock or there is nothing to seal.
pub async fn seal(pool: &PgPool) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(SEALER_LOCK)
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(0);
    }
    let (written_by, entry_id): (String, Uuid) =
        sqlx::query_as("SELECT written_by::text, entry_id FROM journal_seal_cursor")
            .fetch_one(&mut *tx)
            .await?;
    let horizon = horizon(&mut tx).await?;
    let entries: Vec<Final> = sqlx::query_as(&format!(
        "SELECT j.written_by::text AS written_by, {ENTRY_COLUMNS} FROM journal_entries j
          WHERE (j.written_by, j.id) > ($1::text::xid8, $2)
            AND j.written_by < $4::text::xid8
          ORDER BY j.written_by, j.id LIMIT $3"
    ))
    .bind(&written_by)
    .bind(entry_id)
    .bind(SEAL_BATCH)
    .bind(&horizon)
    .fetch_all(&mut *tx)
    .await?;
    let Some(last) = entries.last() else {
        return Ok(0);
    };
    let cursor = (last.written_by.clone(), last.entry.id);
    let ids: Vec<Uuid> = entries.iter().map(|e| e.entry.id).collect();
    let postings = postings_of(&mut tx, &ids).await?;
    let mut tips = tips(&mut tx, entries.iter().map(|e| e.entry.organization_id)).await?;
    let mut seals = SealColumns::default();
    for Final { entry, .. } in &entries {
        let (seq, previous) = tips.entry(entry.organization_id).or_default();
        let own: Vec<&PostingRow> = postings
            .get(&entry.id)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        *seq += 1;
        *previous = chain_hash(previous, entry, &own);
        seals.organizations.push(entry.organization_id);
        seals.seqs.push(*seq);
        seals.hashes.push(previous.clone());
    }
    sqlx::query(
        "WITH sealed AS (
             INSERT INTO journal_seals (journal_entry_id, organization_id, chain_seq, entry_hash)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bigint[], $4::text[]))
         UPDATE journal_seal_cursor SET written_by = $5::text::xid8, entry_id = $6",
    )
    .bind(&ids)
    .bind(&seals.organizations)
    .bind(&seals.seqs)
    .bind(&seals.hashes)
    .bind(&cursor.0)
    .bind(cursor.1)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(entries.len())
}

/// The oldest transaction id that may still write this database: the oldest running transaction of a
/// session connected to it (or prepared in it), else the next id to be assigned. Entries written below it
/// are final once a later statement's snapshot is taken, which is why the caller reads them in another one:
/// a transaction that ended between this statement's snapshot and its read of the sessions is already
/// visible then. Where some session of this database hides its transaction from this role (no
/// `pg_read_all_stats`), every transaction on the server counts, as Postgres's own horizon does.
async fn horizon(conn: &mut PgConnection) -> sqlx::Result<String> {
    sqlx::query_scalar(
        "WITH snapshot AS (SELECT pg_current_snapshot() AS s),
              ours AS (
                  SELECT backend_xid::text::numeric AS xid FROM pg_stat_activity
                   WHERE datname = current_database() AND backend_xid IS NOT NULL
                  UNION ALL
                  SELECT transaction::text::numeric FROM pg_prepared_xacts WHERE database = current_database()),
              hidden AS (
                  SELECT 1 FROM pg_stat_activity
                   WHERE datname = current_database() AND backend_type = 'client backend' AND state IS NULL)
         SELECT (CASE
                 WHEN EXISTS (SELECT 1 FROM hidden) THEN (SELECT pg_snapshot_xmin(s) FROM snapshot)
                 ELSE COALESCE(
                     (SELECT x FROM snapshot, pg_snapshot_xip(s) AS x
                       WHERE x::text::numeric % 4294967296 IN (SELECT xid FROM ours)
                       ORDER BY x LIMIT 1),
                     (SELECT pg_snapshot_xmax(s) FROM snapshot))
                 END)::text",
    )
    .fetch_one(conn)
    .await
}

#[derive(Default)]
struct SealColumns {
    organizations: Vec<Uuid>,
    seqs: Vec<i64>,
    hashes: Vec<String>,
}

/// The last seal of each of these organizations: its number and hash; absent for an empty chain.
async fn tips(
    conn: &mut PgConnection,
    organizations: impl Iterator<Item = Uuid>,
) -> sqlx::Result<HashMap<Uuid, (i64, String)>> {
    let mut organizations: Vec<Uuid> = organizations.collect();
    organizations.sort();
    organizations.dedup();
    let rows: Vec<(Uuid, i64, String)> = sqlx::query_as(
        "SELECT o.id, t.chain_seq, t.entry_hash FROM unnest($1::uuid[]) AS o(id)
           CROSS JOIN LATERAL (SELECT chain_seq, entry_hash FROM journal_seals s
                                WHERE s.organization_id = o.id ORDER BY chain_seq DESC LIMIT 1) t",
    )
    .bind(&organizations)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(organization_id, seq, hash)| (organization_id, (seq, hash)))
        .collect())
}

/// Seals continuously until `shutdown`.
pub async fn run_sealer(pool: PgPool, mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        match seal(&pool).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "sealing the journal failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(SEAL_IDLE) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// A break in an organization's chain.
#[derive(Debug, Clone, Serialize)]
pub struct Break {
    pub organization_id: Uuid,
    pub journal_entry_id: Uuid,
    pub chain_seq: i64,
    pub problem: String,
}

#[derive(Debug, Default, Serialize)]
pub struct ChainReport {
    pub organizations: usize,
    pub sealed_entries: usize,
    pub unsealed_entries: i64,
    pub breaks: Vec<Break>,
}

/// Recomputes every organization's chain from its first entry.
pub async fn verify(pool: &PgPool) -> sqlx::Result<ChainReport> {
    let mut conn = pool.acquire().await?;
    let organizations: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM organizations ORDER BY id")
        .fetch_all(&mut *conn)
        .await?;
    let mut report = ChainReport {
        organizations: organizations.len(),
        unsealed_entries: sqlx::query_scalar(
            "SELECT count(*) FROM journal_entries j
              WHERE NOT EXISTS (SELECT 1 FROM journal_seals s WHERE s.journal_entry_id = j.id)",
        )
        .fetch_one(&mut *conn)
        .await?,
        ..Default::default()
    };
    let orphans: Vec<(Uuid, Uuid, i64)> = sqlx::query_as(
        "SELECT s.organization_id, s.journal_entry_id, s.chain_seq FROM journal_seals s
          WHERE NOT EXISTS (SELECT 1 FROM journal_entries j
                             WHERE j.id = s.journal_entry_id AND j.organization_id = s.organization_id)
          ORDER BY s.organization_id, s.chain_seq",
    )
    .fetch_all(&mut *conn)
    .await?;
    report.breaks.extend(orphans.into_iter().map(
        |(organization_id, journal_entry_id, chain_seq)| Break {
            organization_id,
            journal_entry_id,
            chain_seq,
            problem: "sealed, but no such entry exists in the organization".into(),
        },
    ));
    for organization_id in organizations {
        check_chain(&mut conn, organization_id, &mut report).await?;
    }
    Ok(report)
}

/// Recomputes one organization's chain from its first entry into `report`.
async fn check_chain(
    conn: &mut PgConnection,
    organization_id: Uuid,
    report: &mut ChainReport,
) -> sqlx::Result<()> {
    let (mut expected_seq, mut previous) = (0i64, String::new());
    loop {
        let rows: Vec<SealedRow> = sqlx::query_as(&format!(
            "SELECT s.chain_seq, s.entry_hash, {ENTRY_COLUMNS}
               FROM journal_seals s
               JOIN journal_entries j ON j.id = s.journal_entry_id AND j.organization_id = s.organization_id
              WHERE s.organization_id = $1 AND s.chain_seq > $2 ORDER BY s.chain_seq LIMIT 5000"
        ))
        .bind(organization_id)
        .bind(expected_seq)
        .fetch_all(&mut *conn)
        .await?;
        if rows.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = rows.iter().map(|r| r.entry.id).collect();
        let postings = postings_of(conn, &ids).await?;
        for SealedRow {
            chain_seq: seq,
            entry_hash: stored,
            entry,
        } in rows
        {
            let own: Vec<&PostingRow> = postings
                .get(&entry.id)
                .map(|p| p.iter().collect())
                .unwrap_or_default();
            let recomputed = chain_hash(&previous, &entry, &own);
            let mut broken = |problem: String| {
                report.breaks.push(Break {
                    organization_id,
                    journal_entry_id: entry.id,
                    chain_seq: seq,
                    problem,
                });
            };
            if seq != expected_seq + 1 {
                broken(format!(
                    "chain_seq {seq} follows {expected_seq}: entries are missing"
                ));
            }
            if stored != recomputed {
                broken(
                    "entry_hash does not match the entry, its postings and the previous hash"
                        .into(),
                );
            }
            report.sealed_entries += 1;
            expected_seq = seq;
            // Continue from what is stored, so one altered entry is reported once, not for every later one.
            previous = stored;
        }
    }
    Ok(())
}

/// Recomputes one organization's chain from its first entry (what the console shows of it).
pub async fn verify_organization(
    pool: &PgPool,
    organization_id: Uuid,
) -> sqlx::Result<ChainReport> {
    let mut conn = pool.acquire().await?;
    let mut report = ChainReport {
        organizations: 1,
        unsealed_entries: sqlx::query_scalar(
            "SELECT count(*) FROM journal_entries j
              WHERE j.organization_id = $1
                AND NOT EXISTS (SELECT 1 FROM journal_seals s WHERE s.journal_entry_id = j.id)",
        )
        .bind(organization_id)
        .fetch_one(&mut *conn)
        .await?,
        ..Default::default()
    };
    check_chain(&mut conn, organization_id, &mut report).await?;
    Ok(report)
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    chain_seq: i64,
    entry_hash: String,
    #[sqlx(flatten)]
    entry: EntryRow,
}
