//! `scrip verify`'s whole-system checks: the invariants that every table together must keep. They read across
//! every domain's tables, so their SQL is here rather than in any one domain's repository.

use crate::error::Result;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// What the invariant check found wrong; empty when the ledger is consistent.
#[derive(Debug, Default, Serialize)]
pub struct Inconsistencies {
    /// (entry, asset, sum) for entries whose postings do not sum to zero.
    pub unbalanced_entries: Vec<(Uuid, Uuid, Decimal)>,
    /// (account, stored balance, sum of postings).
    pub drifted_balances: Vec<(Uuid, Decimal, Decimal)>,
    /// (account, balance) for accounts other than participants' and groups' below zero (only they may overdraw).
    pub negative_balances: Vec<(Uuid, Decimal)>,
    /// Events that are not COMPLETED yet have ledger entries: a failed attempt left effects behind.
    pub effects_of_unfinished_events: Vec<Uuid>,
    /// Events PENDING but not queued exactly once, or queued but not PENDING.
    pub misqueued_events: Vec<Uuid>,
    /// (participant, asset, bucket, balance, lots) where a LOT asset's balance is not what its lots hold.
    pub lot_mismatches: Vec<(Uuid, Uuid, String, Decimal, Decimal)>,
    /// Lots that something other than expiry took from after they expired.
    pub spent_after_expiry: Vec<Uuid>,
    /// Idempotency keys whose recorded effect is not exactly one existing journal entry of their own.
    pub idempotency_violations: Vec<String>,
    /// Events, evaluations, entries, postings and lots naming an organization, program, asset, participant,
    /// rule, API key or account that does not exist or disagrees with the row it was copied from.
    pub broken_references: Vec<String>,
    /// Redemptions whose entry, reversals or reward's stock disagree with what they record.
    pub misstated_redemptions: Vec<String>,
}

impl Inconsistencies {
    pub fn is_empty(&self) -> bool {
        self.unbalanced_entries.is_empty()
            && self.drifted_balances.is_empty()
            && self.negative_balances.is_empty()
            && self.effects_of_unfinished_events.is_empty()
            && self.misqueued_events.is_empty()
            && self.lot_mismatches.is_empty()
            && self.spent_after_expiry.is_empty()
            && self.idempotency_violations.is_empty()
            && self.broken_references.is_empty()
            && self.misstated_redemptions.is_empty()
    }
}

/// Σ postings = 0 per entry and asset; every materialised balance = Σ its postings; only participants and groups below
/// zero; only completed events have effects; exactly the pending events are queued; every reference copied into the per-event tables holds.
pub async fn check_invariants(pool: &PgPool) -> Result<Inconsistencies> {
    Ok(Inconsistencies {
        unbalanced_entries: unbalanced_entries(pool).await?,
        drifted_balances: drifted_balances(pool).await?,
        negative_balances: negative_balances(pool).await?,
        effects_of_unfinished_events: effects_of_unfinished_events(pool).await?,
        misqueued_events: misqueued_events(pool).await?,
        lot_mismatches: lot_mismatches(pool).await?,
        spent_after_expiry: spent_after_expiry(pool).await?,
        idempotency_violations: idempotency_violations(pool).await?,
        broken_references: broken_references(pool).await?,
        misstated_redemptions: misstated_redemptions(pool).await?,
    })
}

async fn unbalanced_entries(pool: &PgPool) -> sqlx::Result<Vec<(Uuid, Uuid, Decimal)>> {
    sqlx::query_as(
        "SELECT journal_entry_id, asset_id, sum(amount) FROM postings
          GROUP BY journal_entry_id, asset_id HAVING sum(amount) <> 0",
    )
    .fetch_all(pool)
    .await
}

async fn drifted_balances(pool: &PgPool) -> sqlx::Result<Vec<(Uuid, Decimal, Decimal)>> {
    sqlx::query_as(
        "SELECT a.id, a.balance, COALESCE(sum(x.amount), 0) AS posted
           FROM accounts a LEFT JOIN postings x ON x.account_id = a.id
          WHERE a.balance IS NOT NULL
          GROUP BY a.id, a.balance
         HAVING a.balance <> COALESCE(sum(x.amount), 0)",
    )
    .fetch_all(pool)
    .await
}

/// Rows written per event whose copied references name no row or disagree with their source (see migrations
/// 0009 and 0010: these columns have no foreign keys). Each as "table id".
async fn broken_references(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT 'posting ' || x.id FROM postings x
           LEFT JOIN accounts a ON a.id = x.account_id
           LEFT JOIN journal_entries j ON j.id = x.journal_entry_id
          WHERE (a.organization_id, a.asset_id, a.entity_type, a.entity_id, a.bucket, j.organization_id,
                 j.program_id)
                IS DISTINCT FROM (x.organization_id, x.asset_id, x.entity_type, x.entity_id, x.bucket,
                                  x.organization_id, x.program_id)
         UNION ALL
         SELECT 'journal entry ' || j.id FROM journal_entries j
           LEFT JOIN programs g ON g.id = j.program_id
          WHERE g.organization_id IS DISTINCT FROM j.organization_id
             OR (j.rule_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM rules r WHERE r.id = j.rule_id AND r.organization_id = j.organization_id))
             OR (j.created_by_api_key_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM api_keys k
                     WHERE k.id = j.created_by_api_key_id AND k.organization_id = j.organization_id))
         UNION ALL
         SELECT 'event ' || e.id FROM events e
           LEFT JOIN programs g ON g.id = e.program_id
          WHERE g.organization_id IS DISTINCT FROM e.organization_id
             OR (e.participant_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM participants p
                     WHERE p.id = e.participant_id AND p.organization_id = e.organization_id))
             OR (e.created_by_api_key_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM api_keys k
                     WHERE k.id = e.created_by_api_key_id AND k.organization_id = e.organization_id))
         UNION ALL
         SELECT 'lot ' || l.id FROM lots l
           LEFT JOIN assets s ON s.id = l.asset_id
           LEFT JOIN programs g ON g.id = l.program_id
           LEFT JOIN journal_entries j ON j.id = l.journal_entry_id
          WHERE (s.organization_id, g.organization_id, j.organization_id)
                IS DISTINCT FROM (l.organization_id, l.organization_id, l.organization_id)
         UNION ALL
         SELECT 'rule evaluation ' || v.id FROM rule_evaluations v
           LEFT JOIN rule_history h ON h.id = v.rule_history_id
           LEFT JOIN events e ON e.id = v.event_id
          WHERE (h.rule_id, h.organization_id, e.organization_id)
                IS DISTINCT FROM (v.rule_id, v.organization_id, v.organization_id)
             OR (v.stopped_by_rule_id IS NOT NULL AND NOT EXISTS (
                    SELECT 1 FROM rules r WHERE r.id = v.stopped_by_rule_id AND r.organization_id = v.organization_id))",
    )
    .fetch_all(pool)
    .await
}

async fn negative_balances(pool: &PgPool) -> sqlx::Result<Vec<(Uuid, Decimal)>> {
    sqlx::query_as(
        "SELECT id, balance FROM accounts WHERE balance < 0 AND entity_type NOT IN ('PARTICIPANT', 'GROUP')",
    )
    .fetch_all(pool)
    .await
}

async fn effects_of_unfinished_events(pool: &PgPool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT e.id FROM events e JOIN journal_entries j ON j.event_id = e.id WHERE e.status <> 'COMPLETED'",
    )
    .fetch_all(pool)
    .await
}

/// Events out of place in the queue: PENDING but not queued exactly once, queued but not PENDING, or queued
/// under another organization than their own.
async fn misqueued_events(pool: &PgPool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT COALESCE(e.id, q.event_id)
           FROM (SELECT q.event_id, count(*) AS times,
                        bool_and(q.organization_id IS NOT DISTINCT FROM v.organization_id) AS agrees
                   FROM event_queue q LEFT JOIN events v ON v.id = q.event_id GROUP BY q.event_id) q
           FULL JOIN (SELECT id FROM events WHERE status = 'PENDING') e ON e.id = q.event_id
          WHERE q.event_id IS NULL OR e.id IS NULL OR q.times <> 1 OR NOT q.agrees",
    )
    .fetch_all(pool)
    .await
}

async fn spent_after_expiry(pool: &PgPool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT DISTINCT l.id FROM lot_consumptions c
           JOIN lots l ON l.id = c.lot_id
           JOIN journal_entries j ON j.id = c.journal_entry_id
          WHERE j.action_type <> 'EXPIRATION' AND l.expires_at IS NOT NULL AND j.created_at > l.expires_at",
    )
    .fetch_all(pool)
    .await
}

/// A key whose response names no entry, an entry that does not exist, or an entry another key also names.
async fn idempotency_violations(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "WITH effects AS (
             SELECT k.operation || ':' || k.key AS key, (k.response->>'journal_entry_id')::uuid AS entry
               FROM idempotency_keys k WHERE k.response IS NOT NULL)
         SELECT e.key FROM effects e LEFT JOIN journal_entries j ON j.id = e.entry
          WHERE j.id IS NULL OR (SELECT count(*) FROM effects o WHERE o.entry = e.entry) > 1",
    )
    .fetch_all(pool)
    .await
}

/// Holders whose bucket balances differ from the remaining value of their lots: (holder, asset, bucket,
/// balance, lots).
async fn lot_mismatches(
    pool: &sqlx::PgPool,
) -> sqlx::Result<Vec<(Uuid, Uuid, String, Decimal, Decimal)>> {
    sqlx::query_as(
        "WITH held AS (
             SELECT a.entity_id AS holder_id, a.asset_id, a.bucket, a.balance
               FROM accounts a JOIN assets s ON s.id = a.asset_id
              WHERE s.inventory_mode = 'LOT' AND a.entity_type IN ('PARTICIPANT', 'GROUP')),
         lotted AS (
             SELECT holder_id, asset_id, status AS bucket, sum(remaining) AS remaining
               FROM lots WHERE status IN ('AVAILABLE', 'HELD', 'DEFERRED') GROUP BY 1, 2, 3)
         SELECT COALESCE(h.holder_id, l.holder_id), COALESCE(h.asset_id, l.asset_id),
                COALESCE(h.bucket, l.bucket), COALESCE(h.balance, 0), COALESCE(l.remaining, 0)
           FROM held h FULL JOIN lotted l USING (holder_id, asset_id, bucket)
          WHERE GREATEST(COALESCE(h.balance, 0), 0) <> COALESCE(l.remaining, 0)",
    )
    .fetch_all(pool)
    .await
}

/// A redemption whose entry did not take its amount from the participant, whose reversed amount or units are
/// not what its reversals gave back, or whose reversals' entries did not give it; a UNIT_BASED reward whose
/// `redeemed_count` is not the units its redemptions hold.
async fn misstated_redemptions(pool: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT 'redemption ' || r.id FROM redemptions r
          WHERE -r.amount IS DISTINCT FROM (SELECT sum(x.amount) FROM postings x
                                             WHERE x.journal_entry_id = r.journal_entry_id
                                               AND x.entity_type = 'PARTICIPANT' AND x.entity_id = r.participant_id)
             OR r.reversed_amount <> (SELECT COALESCE(sum(v.amount), 0) FROM redemption_reversals v
                                       WHERE v.redemption_id = r.id)
             OR r.reversed_quantity <> (SELECT COALESCE(sum(v.quantity), 0) FROM redemption_reversals v
                                         WHERE v.redemption_id = r.id)
             OR r.reversed_amount IS DISTINCT FROM
                (SELECT COALESCE(sum(x.amount), 0) FROM redemption_reversals v
                   JOIN postings x ON x.journal_entry_id = v.journal_entry_id
                  WHERE v.redemption_id = r.id AND x.entity_type = 'PARTICIPANT' AND x.entity_id = r.participant_id)
         UNION ALL
         SELECT 'reward ' || w.id FROM rewards w
          WHERE w.redemption_type = 'UNIT_BASED'
            AND w.redeemed_count <> (SELECT COALESCE(sum(r.quantity - r.reversed_quantity), 0)
                                       FROM redemptions r WHERE r.reward_id = w.id)",
    )
    .fetch_all(pool)
    .await
}
