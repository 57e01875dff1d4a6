//! The hash chain. Each organization's journal entries are chained in `chain_seq` order:
//! `entry_hash = sha256(previous entry_hash ‖ canonical JSON of the entry and its postings)`, hex-encoded,
//! with an empty previous hash for the first entry.
//!
//! Writers never touch the chain. A sealer seals entries after they commit, numbering them in the order it
//! sees them; an entry whose transaction commits late is sealed in a later pass, after the current tip, so the
//! chain never has to be rewritten. One sealer runs at a time (an advisory lock); every `scrip serve` offers.

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
        "created_at": crate::time_key(entry.created_at),
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

const ENTRY_COLUMNS: &str = "id, organization_id, program_id, action_type, description, event_id, rule_id, \
                             reference_id, created_by_api_key_id, created_at";

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
    let entries: Vec<EntryRow> = sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM journal_entries WHERE chain_seq IS NULL
          ORDER BY organization_id, created_at, id LIMIT $1"
    ))
    .bind(SEAL_BATCH)
    .fetch_all(&mut *tx)
    .await?;
    if entries.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
    let postings = postings_of(&mut tx, &ids).await?;
    let mut tips: HashMap<Uuid, (i64, String)> = HashMap::new();
    let (mut seqs, mut hashes) = (Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len()));
    for entry in &entries {
        if let std::collections::hash_map::Entry::Vacant(e) = tips.entry(entry.organization_id) {
            let tip: Option<(i64, String)> = sqlx::query_as(
                "SELECT chain_seq, entry_hash FROM journal_entries
                  WHERE organization_id = $1 AND chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1",
            )
            .bind(entry.organization_id)
            .fetch_optional(&mut *tx)
            .await?;
            e.insert(tip.unwrap_or((0, String::new())));
        }
        let Some((seq, previous)) = tips.get_mut(&entry.organization_id) else {
            continue;
        };
        let own: Vec<&PostingRow> = postings
            .get(&entry.id)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        *seq += 1;
        *previous = chain_hash(previous, entry, &own);
        seqs.push(*seq);
        hashes.push(previous.clone());
    }
    sqlx::query(
        "UPDATE journal_entries j SET chain_seq = t.seq, entry_hash = t.hash
           FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS t(id, seq, hash)
          WHERE j.id = t.id",
    )
    .bind(&ids)
    .bind(&seqs)
    .bind(&hashes)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(entries.len())
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
            "SELECT count(*) FROM journal_entries WHERE chain_seq IS NULL",
        )
        .fetch_one(&mut *conn)
        .await?,
        ..Default::default()
    };
    for organization_id in organizations {
        let (mut expected_seq, mut previous) = (0i64, String::new());
        loop {
            let rows: Vec<(i64, Option<String>, EntryRow)> =
                sqlx::query_as::<_, SealedRow>(&format!(
                    "SELECT chain_seq, entry_hash, {ENTRY_COLUMNS} FROM journal_entries
                  WHERE organization_id = $1 AND chain_seq > $2 ORDER BY chain_seq LIMIT 5000"
                ))
                .bind(organization_id)
                .bind(expected_seq)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(|r| (r.chain_seq, r.entry_hash, r.entry))
                .collect();
            if rows.is_empty() {
                break;
            }
            let ids: Vec<Uuid> = rows.iter().map(|(_, _, e)| e.id).collect();
            let postings = postings_of(&mut conn, &ids).await?;
            for (seq, stored, entry) in rows {
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
                if stored.as_deref() != Some(recomputed.as_str()) {
                    broken(
                        "entry_hash does not match the entry, its postings and the previous hash"
                            .into(),
                    );
                }
                report.sealed_entries += 1;
                expected_seq = seq;
                // Continue from what is stored, so one altered entry is reported once, not for every later one.
                previous = stored.unwrap_or(recomputed);
            }
        }
    }
    Ok(report)
}

#[derive(sqlx::FromRow)]
struct SealedRow {
    chain_seq: i64,
    entry_hash: Option<String>,
    #[sqlx(flatten)]
    entry: EntryRow,
}
