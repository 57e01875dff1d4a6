//! Lots that come due: past `matures_at` a DEFERRED lot becomes AVAILABLE (a MATURITY entry); past
//! `expires_at` what remains of a lot goes to breakage (an EXPIRATION entry). Every movement settles its
//! holder first, so no expired lot is ever spent and every matured lot is spendable on time; a background
//! pass settles everyone else in bounded batches.

use super::BalanceChanged;
use crate::holders::Holder;
use crate::ledger::lots::{self, Due, DueLot};
use crate::ledger::{self, AccountKey, Bucket, EntryType, KnownAccounts, NewEntry, Owner};
use crate::webhooks::{self, Notice, WebhookEventType};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// Settles one holder's lots of one asset; the caller holds the holder's lock.
pub async fn settle(conn: &mut PgConnection, holder: Uuid, asset_id: Uuid) -> sqlx::Result<()> {
    settle_due(conn, Due::Expiry, Some((holder, asset_id)), i64::MAX).await?;
    settle_due(conn, Due::Maturity, Some((holder, asset_id)), i64::MAX).await?;
    Ok(())
}

/// Processes up to `limit` due lots — of one holder when `holder` is given — in the caller's transaction:
/// one entry per holder, asset and program. Returns how many lots it processed; rerunning it finds
/// nothing done twice, since processed lots are no longer due.
pub async fn settle_due(
    conn: &mut PgConnection,
    due: Due,
    holder: Option<(Uuid, Uuid)>,
    limit: i64,
) -> sqlx::Result<usize> {
    let holders = lots::due_holders(conn, due, holder, limit).await?;
    if holders.is_empty() {
        return Ok(0);
    }
    if holder.is_none() {
        crate::participants::lock(conn, &holders).await?;
        crate::groups::lock_many(conn, &holders).await?;
    }
    let due_lots = lots::lock_due(conn, due, &holders, holder.map(|(_, a)| a), limit).await?;
    if due_lots.is_empty() {
        return Ok(0);
    }
    let mut groups: BTreeMap<(Uuid, Owner, Uuid, Uuid), Vec<&DueLot>> = BTreeMap::new();
    for lot in &due_lots {
        let key = (
            lot.organization_id,
            lot.holder(),
            lot.asset_id,
            lot.program_id,
        );
        groups.entry(key).or_default().push(lot);
    }
    let (action_type, description) = match due {
        Due::Maturity => (EntryType::Maturity, "Lots matured"),
        Due::Expiry => (EntryType::Expiration, "Lots expired"),
    };
    let mut entries = Vec::with_capacity(groups.len());
    let mut entry_of: HashMap<Uuid, Uuid> = HashMap::new();
    let mut notices = Vec::new();
    for ((organization_id, owner, asset_id, program_id), group) in &groups {
        let mut per_bucket: BTreeMap<Bucket, Decimal> = BTreeMap::new();
        for lot in group {
            *per_bucket.entry(lot.status).or_default() += lot.remaining;
        }
        let entry_id = Uuid::now_v7();
        if let (Due::Expiry, Some(holder)) = (due, holder_of(*owner)) {
            let expired = BalanceChanged {
                holder,
                program_id: *program_id,
                asset_id: *asset_id,
                amount: crate::money::format(
                    per_bucket.values().sum(),
                    group.first().map_or(0, |lot| lot.scale),
                ),
                journal_entry_id: entry_id,
                reference_id: None,
                settle: None,
                event_id: None,
                rule_id: None,
            };
            let kind = WebhookEventType::BalanceExpired;
            notices.push(Notice::new(*organization_id, kind, &expired));
        }
        let holder = |bucket| AccountKey::new(*owner, *asset_id, bucket);
        let to = match due {
            Due::Maturity => holder(Bucket::Available),
            Due::Expiry => AccountKey::new(Owner::Breakage, *asset_id, Bucket::Available),
        };
        let postings = per_bucket
            .into_iter()
            .flat_map(|(bucket, sum)| [(holder(bucket), -sum), (to, sum)])
            .collect();
        let entry = NewEntry {
            program_id: *program_id,
            action_type,
            description: Some(description.into()),
            event_id: None,
            rule_id: None,
            reference_id: None,
            created_by_api_key_id: None,
            postings,
            allow_negative: false,
        };
        entry_of.extend(group.iter().map(|lot| (lot.id, entry_id)));
        entries.push((entry_id, *organization_id, entry));
    }
    let written: Vec<(Uuid, Uuid, &NewEntry)> =
        entries.iter().map(|(id, org, e)| (*id, *org, e)).collect();
    ledger::write(conn, &written, &KnownAccounts::default()).await?;
    let entry_ids: Vec<Uuid> = due_lots
        .iter()
        .map(|lot| entry_of.get(&lot.id).copied().unwrap_or_default())
        .collect();
    lots::close_due(conn, due, &due_lots, &entry_ids).await?;
    webhooks::emit(conn, &notices).await?;
    Ok(due_lots.len())
}

/// Lots are held by participants and groups only.
fn holder_of(owner: Owner) -> Option<Holder> {
    match owner {
        Owner::Participant(id) => Some(Holder::Participant(id)),
        Owner::Group(id) => Some(Holder::Group(id)),
        _ => None,
    }
}

const JOB_BATCH: i64 = 5000;

/// Expires and matures lots in bounded batches, each its own transaction, until `shutdown`.
pub async fn run_jobs(pool: sqlx::PgPool, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    while !*shutdown.borrow() {
        match run_once(&pool).await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "lot expiry or maturity failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One batch of expiries and one of maturities; returns how many lots they processed.
pub async fn run_once(pool: &sqlx::PgPool) -> sqlx::Result<usize> {
    let mut done = 0;
    for due in [Due::Expiry, Due::Maturity] {
        let mut tx = pool.begin().await?;
        done += settle_due(&mut tx, due, None, JOB_BATCH).await?;
        tx.commit().await?;
    }
    Ok(done)
}
