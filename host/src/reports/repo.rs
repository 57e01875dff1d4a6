use super::liability::{LiabilityQuery, RollforwardQuery, ScheduleQuery, SummaryQuery};
use super::{ActivityQuery, ActivityRow};
use crate::ledger::Bucket;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

pub async fn program_activity(
    pool: &PgPool,
    organization_id: Uuid,
    q: &ActivityQuery,
) -> sqlx::Result<Vec<ActivityRow>> {
    let (after_key, after_id) = q
        .page
        .cursor
        .as_ref()
        .map_or((None, None), |c| (Some(c.key.clone()), Some(c.id)));
    sqlx::query_as(
        "WITH program AS (
             SELECT id, name, created_at FROM programs
              WHERE organization_id = $1
                AND ($5::text IS NULL OR (created_at, id) > ($5::timestamptz, $6::uuid))),
         movement AS (
             SELECT j.program_id, j.action_type, j.created_at, x.entity_id, x.amount
               FROM journal_entries j JOIN postings x ON x.journal_entry_id = j.id
              WHERE j.organization_id = $1 AND x.entity_type IN ('PARTICIPANT', 'GROUP')
                AND j.action_type IN ('CREDIT', 'VOID_HOLD', 'DEBIT', 'REDEMPTION', 'REVERSAL')),
         activity AS (
             SELECT p.id AS program_id, p.name AS program_name, p.created_at,
                    (SELECT count(*) FROM events e WHERE e.program_id = p.id
                        AND ($3::timestamptz IS NULL OR e.created_at BETWEEN $3 AND $4)) AS event_count,
                    (SELECT count(*) FROM journal_entries j WHERE j.program_id = p.id) AS journal_count,
                    (SELECT count(*) FROM journal_entries j WHERE j.program_id = p.id
                        AND ($3::timestamptz IS NULL OR j.created_at BETWEEN $3 AND $4)) AS window_entries,
                    -- Net of provisional accruals: what a settlement returns or a void takes back was
                    -- counted when it was credited.
                    (SELECT COALESCE(sum(m.amount), 0) FROM movement m
                      WHERE m.program_id = p.id AND m.action_type IN ('CREDIT', 'VOID_HOLD')
                        AND ($3::timestamptz IS NULL OR m.created_at BETWEEN $3 AND $4)) AS total_issued,
                    (SELECT COALESCE(-sum(m.amount), 0) FROM movement m
                      WHERE m.program_id = p.id AND m.action_type IN ('DEBIT', 'REDEMPTION', 'REVERSAL')
                        AND ($3::timestamptz IS NULL OR m.created_at BETWEEN $3 AND $4)) AS total_redeemed,
                    (SELECT count(DISTINCT m.entity_id) FROM movement m WHERE m.program_id = p.id
                        AND m.action_type IN ('CREDIT', 'DEBIT', 'REDEMPTION')) AS unique_participants,
                    -- Activity is an event received or a ledger entry, so a program whose rules only tag
                    -- or count is active too.
                    GREATEST((SELECT max(j.created_at) FROM journal_entries j WHERE j.program_id = p.id),
                             (SELECT max(e.created_at) FROM events e WHERE e.program_id = p.id))
                        AS last_activity_at,
                    (SELECT count(*) FROM rewards w WHERE w.program_id = p.id AND w.status <> 'ARCHIVED')
                        AS reward_count,
                    (SELECT count(*) FROM tiers t WHERE t.program_id = p.id AND t.status <> 'ARCHIVED')
                        AS tier_count,
                    (SELECT count(*) FROM program_assets pa WHERE pa.program_id = p.id) AS asset_count,
                    (SELECT count(*) FROM rules r WHERE r.program_id = p.id AND r.status <> 'ARCHIVED') AS rule_count,
                    (SELECT COALESCE(max(a.scale), 0::smallint) FROM program_assets pa JOIN assets a ON a.id = pa.asset_id
                      WHERE pa.program_id = p.id) AS scale
               FROM program p)
         SELECT program_id, program_name, created_at, event_count, journal_count, total_issued, total_redeemed,
                unique_participants, last_activity_at, asset_count, rule_count, tier_count, reward_count, scale
           FROM activity
          WHERE ($2::timestamptz IS NULL OR last_activity_at > $2)
            AND ($3::timestamptz IS NULL OR event_count > 0 OR window_entries > 0)
          ORDER BY created_at, program_id
          LIMIT $7 + 1",
    )
    .bind(organization_id)
    .bind(q.since)
    .bind(q.from)
    .bind(q.to)
    .bind(after_key)
    .bind(after_id)
    .bind(q.page.limit)
    .fetch_all(pool)
    .await
}

/// Postings on the accounts that make up the liability: whoever the organization holds value for.
const LIABILITY: &str = "x.entity_type IN ('PARTICIPANT', 'GROUP', 'LEDGER_ENTITY')";

#[derive(Debug, sqlx::FromRow)]
pub struct SummaryRow {
    pub asset_id: Uuid,
    pub asset_name: String,
    pub asset_symbol: String,
    pub scale: i16,
    pub issued: Decimal,
    pub redeemed: Decimal,
    pub expired: Decimal,
    pub forfeited: Decimal,
    pub balance: Decimal,
    pub participant_count: i64,
    pub opening: Decimal,
    pub closing: Decimal,
    pub period_issued: Decimal,
    pub period_redeemed: Decimal,
    pub period_expired: Decimal,
    pub period_forfeited: Decimal,
    pub period_other: Decimal,
}

pub async fn ledger_summary(
    pool: &PgPool,
    organization_id: Uuid,
    q: &SummaryQuery,
) -> sqlx::Result<Vec<SummaryRow>> {
    sqlx::query_as(&format!(
        "WITH p AS (
             SELECT x.asset_id, x.entity_type, x.entity_id, x.amount, x.created_at AS posted_at, j.action_type,
                    -- Without a window the period sums are over nothing, and left out of the answer.
                    COALESCE(x.created_at BETWEEN $3::timestamptz AND $4::timestamptz, false) AS inside
               FROM postings x JOIN journal_entries j ON j.id = x.journal_entry_id
              WHERE x.organization_id = $1 AND {LIABILITY} AND ($2::uuid IS NULL OR x.program_id = $2)
                AND ($5::uuid IS NULL OR x.asset_id > $5)),
         held AS (
             SELECT asset_id, count(*) AS holders FROM (
                 SELECT asset_id, entity_id FROM p WHERE entity_type = 'PARTICIPANT'
                  GROUP BY asset_id, entity_id HAVING sum(amount) <> 0) h
              GROUP BY asset_id)
         SELECT p.asset_id, a.name AS asset_name, a.symbol AS asset_symbol, a.scale,
                COALESCE(sum(amount) FILTER (WHERE action_type IN ('CREDIT', 'VOID_HOLD')), 0) AS issued,
                COALESCE(-sum(amount) FILTER (WHERE action_type IN ('REDEMPTION', 'REVERSAL', 'DEBIT')), 0) AS redeemed,
                COALESCE(-sum(amount) FILTER (WHERE action_type = 'EXPIRATION'), 0) AS expired,
                COALESCE(-sum(amount) FILTER (WHERE action_type = 'FORFEIT'), 0) AS forfeited,
                sum(amount) AS balance,
                COALESCE(max(held.holders), 0) AS participant_count,
                COALESCE(sum(amount) FILTER (WHERE posted_at < $3::timestamptz), 0) AS opening,
                COALESCE(sum(amount) FILTER (WHERE posted_at <= $4::timestamptz), 0) AS closing,
                COALESCE(sum(amount) FILTER (WHERE inside AND action_type IN ('CREDIT', 'VOID_HOLD')), 0)
                    AS period_issued,
                COALESCE(-sum(amount) FILTER (WHERE inside AND action_type IN ('REDEMPTION', 'DEBIT')), 0)
                    AS period_redeemed,
                COALESCE(-sum(amount) FILTER (WHERE inside AND action_type = 'EXPIRATION'), 0) AS period_expired,
                COALESCE(-sum(amount) FILTER (WHERE inside AND action_type = 'FORFEIT'), 0) AS period_forfeited,
                COALESCE(sum(amount) FILTER (WHERE inside AND action_type NOT IN
                    ('CREDIT', 'VOID_HOLD', 'REDEMPTION', 'DEBIT', 'EXPIRATION', 'FORFEIT')), 0) AS period_other
           FROM p JOIN assets a ON a.id = p.asset_id LEFT JOIN held ON held.asset_id = p.asset_id
          GROUP BY p.asset_id, a.name, a.symbol, a.scale
          ORDER BY p.asset_id LIMIT $6 + 1"
    ))
    .bind(organization_id)
    .bind(q.program_id)
    .bind(q.from)
    .bind(q.to)
    .bind(q.page.cursor.as_ref().map(|c| c.id))
    .bind(q.page.limit)
    .fetch_all(pool)
    .await
}

/// A program × asset (× bucket) of a liability report, with the key its pages are cut by.
#[derive(Debug, sqlx::FromRow)]
pub struct LiabilityRow {
    pub row_key: String,
    pub program_id: Uuid,
    pub program_name: String,
    pub asset_id: Uuid,
    pub asset_name: String,
    pub asset_symbol: String,
    pub scale: i16,
    pub bucket: Option<Bucket>,
    pub balance: Decimal,
}

pub async fn liability(
    pool: &PgPool,
    organization_id: Uuid,
    as_of: DateTime<Utc>,
    q: &LiabilityQuery,
) -> sqlx::Result<Vec<LiabilityRow>> {
    let bucket = if q.by_bucket {
        "x.bucket"
    } else {
        "NULL::text"
    };
    sqlx::query_as(&format!(
        "SELECT * FROM (
             SELECT x.program_id::text || ':' || x.asset_id::text || ':' || COALESCE({bucket}, '') AS row_key,
                    x.program_id, pr.name AS program_name, x.asset_id, a.name AS asset_name,
                    a.symbol AS asset_symbol, a.scale, {bucket} AS bucket, sum(x.amount) AS balance
               FROM postings x JOIN programs pr ON pr.id = x.program_id JOIN assets a ON a.id = x.asset_id
              WHERE x.organization_id = $1 AND {LIABILITY} AND x.created_at <= $2
                AND ($3::uuid IS NULL OR x.program_id = $3) AND ($4::uuid IS NULL OR x.asset_id = $4)
              GROUP BY 1, x.program_id, pr.name, x.asset_id, a.name, a.symbol, a.scale, {bucket}) r
          WHERE $5::text IS NULL OR row_key > $5
          ORDER BY row_key LIMIT $6 + 1"
    ))
    .bind(organization_id)
    .bind(as_of)
    .bind(q.program_id)
    .bind(q.asset_id)
    .bind(q.page.cursor.as_ref().map(|c| c.key.clone()))
    .bind(q.page.limit)
    .fetch_all(pool)
    .await
}

/// A program × asset of a rollforward: its balances at the window's ends.
#[derive(Debug, sqlx::FromRow)]
pub struct RollforwardRow {
    pub row_key: String,
    pub program_id: Uuid,
    pub program_name: String,
    pub asset_id: Uuid,
    pub asset_name: String,
    pub asset_symbol: String,
    pub scale: i16,
    pub opening: Decimal,
    pub closing: Decimal,
}

pub async fn rollforward_rows(
    pool: &PgPool,
    organization_id: Uuid,
    q: &RollforwardQuery,
) -> sqlx::Result<Vec<RollforwardRow>> {
    sqlx::query_as(&format!(
        "SELECT * FROM (
             SELECT x.program_id::text || ':' || x.asset_id::text AS row_key,
                    x.program_id, pr.name AS program_name, x.asset_id, a.name AS asset_name,
                    a.symbol AS asset_symbol, a.scale,
                    COALESCE(sum(x.amount) FILTER (WHERE x.created_at < $2), 0) AS opening,
                    sum(x.amount) AS closing
               FROM postings x JOIN programs pr ON pr.id = x.program_id JOIN assets a ON a.id = x.asset_id
              WHERE x.organization_id = $1 AND {LIABILITY} AND x.created_at <= $3
                AND ($4::uuid IS NULL OR x.program_id = $4) AND ($5::uuid IS NULL OR x.asset_id = $5)
              GROUP BY x.program_id, pr.name, x.asset_id, a.name, a.symbol, a.scale) r
          WHERE $6::text IS NULL OR row_key > $6
          ORDER BY row_key LIMIT $7 + 1"
    ))
    .bind(organization_id)
    .bind(q.from)
    .bind(q.to)
    .bind(q.program_id)
    .bind(q.asset_id)
    .bind(q.page.cursor.as_ref().map(|c| c.key.clone()))
    .bind(q.page.limit)
    .fetch_all(pool)
    .await
}

/// The window's postings on the liability of these program × assets, summed by what classifies them.
#[derive(Debug, sqlx::FromRow)]
pub struct Movement {
    pub program_id: Uuid,
    pub asset_id: Uuid,
    pub action_type: String,
    pub entity_type: String,
    pub by_rule: bool,
    pub positive: bool,
    pub amount: Decimal,
}

pub async fn rollforward_movements(
    pool: &PgPool,
    organization_id: Uuid,
    q: &RollforwardQuery,
    keys: &[(Uuid, Uuid)],
) -> sqlx::Result<Vec<Movement>> {
    let (programs, assets): (Vec<Uuid>, Vec<Uuid>) = keys.iter().copied().unzip();
    sqlx::query_as(&format!(
        "SELECT x.program_id, x.asset_id, j.action_type, x.entity_type, j.event_id IS NOT NULL AS by_rule,
                x.amount > 0 AS positive, sum(x.amount) AS amount
           FROM postings x JOIN journal_entries j ON j.id = x.journal_entry_id
          WHERE x.organization_id = $1 AND {LIABILITY} AND x.created_at BETWEEN $2 AND $3
            AND (x.program_id, x.asset_id) IN (SELECT * FROM unnest($4::uuid[], $5::uuid[]))
          GROUP BY 1, 2, 3, 4, 5, 6"
    ))
    .bind(organization_id)
    .bind(q.from)
    .bind(q.to)
    .bind(&programs)
    .bind(&assets)
    .fetch_all(pool)
    .await
}

/// A LOT asset's outstanding lots, split by where their expiry falls against the window.
#[derive(Debug, sqlx::FromRow)]
pub struct ScheduleAsset {
    pub asset_id: Uuid,
    pub asset_name: String,
    pub asset_symbol: String,
    pub scale: i16,
    pub total: Decimal,
    pub never: Decimal,
    pub before: Decimal,
    pub after: Decimal,
}

/// Outstanding value: what lots hold in any bucket.
const OUTSTANDING: &str =
    "l.organization_id = $1 AND l.status IN ('AVAILABLE', 'HELD', 'DEFERRED') AND l.remaining > 0
                           AND ($4::uuid IS NULL OR l.program_id = $4)";

pub async fn schedule_assets(
    pool: &PgPool,
    organization_id: Uuid,
    q: &ScheduleQuery,
) -> sqlx::Result<Vec<ScheduleAsset>> {
    sqlx::query_as(&format!(
        "SELECT a.id AS asset_id, a.name AS asset_name, a.symbol AS asset_symbol, a.scale,
                COALESCE(sum(l.remaining), 0) AS total,
                COALESCE(sum(l.remaining) FILTER (WHERE l.expires_at IS NULL), 0) AS never,
                COALESCE(sum(l.remaining) FILTER (WHERE l.expires_at < $2), 0) AS before,
                COALESCE(sum(l.remaining) FILTER (WHERE l.expires_at > $3), 0) AS after
           FROM assets a LEFT JOIN lots l ON l.asset_id = a.id AND {OUTSTANDING}
          WHERE a.organization_id = $1 AND a.inventory_mode = 'LOT'
            AND ($5::uuid IS NULL OR a.id = $5) AND ($6::uuid IS NULL OR a.id > $6)
          GROUP BY a.id, a.name, a.symbol, a.scale
          ORDER BY a.id LIMIT $7 + 1"
    ))
    .bind(organization_id)
    .bind(q.from)
    .bind(q.to)
    .bind(q.program_id)
    .bind(q.asset_id)
    .bind(q.page.cursor.as_ref().map(|c| c.id))
    .bind(q.page.limit)
    .fetch_all(pool)
    .await
}

#[derive(Debug, sqlx::FromRow)]
pub struct BucketRow {
    pub asset_id: Uuid,
    pub bucket_start: DateTime<Utc>,
    pub bucket_end: DateTime<Utc>,
    pub amount: Decimal,
    pub lot_count: i64,
}

/// Every calendar bucket (UTC) the window touches, for each asset, with what expires in it within the window.
pub async fn schedule_buckets(
    pool: &PgPool,
    organization_id: Uuid,
    q: &ScheduleQuery,
    assets: &[Uuid],
) -> sqlx::Result<Vec<BucketRow>> {
    let unit = q.granularity.as_str();
    sqlx::query_as(&format!(
        "WITH bucket AS (
             SELECT s AS bucket_start, s + interval '1 {unit}' AS bucket_end
               FROM generate_series(date_trunc('{unit}', $2::timestamptz, 'UTC'), $3::timestamptz,
                                    interval '1 {unit}') s)
         SELECT asset.id AS asset_id, b.bucket_start, b.bucket_end,
                COALESCE(sum(l.remaining), 0) AS amount, count(l.id) AS lot_count
           FROM unnest($5::uuid[]) AS asset(id) CROSS JOIN bucket b
           LEFT JOIN lots l ON l.asset_id = asset.id AND {OUTSTANDING}
                AND l.expires_at BETWEEN $2 AND $3
                AND l.expires_at >= b.bucket_start AND l.expires_at < b.bucket_end
          GROUP BY asset.id, b.bucket_start, b.bucket_end
          ORDER BY asset.id, b.bucket_start"
    ))
    .bind(organization_id)
    .bind(q.from)
    .bind(q.to)
    .bind(q.program_id)
    .bind(assets)
    .fetch_all(pool)
    .await
}
