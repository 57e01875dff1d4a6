use super::{AccountKey, BalanceRow, Bucket, EntryFilter, EntryRow, NewEntry, Owner, PostingRow};
use crate::pagination::Order;
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use std::collections::HashMap;
use uuid::Uuid;

/// Account ids for `keys`, creating missing accounts. New non-system accounts start at a zero balance.
pub async fn resolve_accounts(
    conn: &mut PgConnection,
    organization_id: Uuid,
    keys: &[AccountKey],
) -> sqlx::Result<HashMap<AccountKey, Uuid>> {
    let ids: Vec<Uuid> = keys.iter().map(|_| Uuid::now_v7()).collect();
    let types: Vec<&str> = keys.iter().map(|k| k.owner.entity_type()).collect();
    let entities: Vec<Option<Uuid>> = keys.iter().map(|k| k.owner.entity_id()).collect();
    let assets: Vec<Uuid> = keys.iter().map(|k| k.asset_id).collect();
    let buckets: Vec<Bucket> = keys.iter().map(|k| k.bucket).collect();
    // Rows inserted by this statement are invisible to its own SELECTs, so the halves never overlap. Holders'
    // and system accounts (no entity) are found apart: `IS NOT DISTINCT FROM` cannot use the index, and read
    // every account of the asset for each key.
    let rows: Vec<(Uuid, String, Option<Uuid>, Uuid, Bucket)> = sqlx::query_as(
        "WITH wanted AS (
             SELECT DISTINCT ON (entity_type, entity_id, asset_id, bucket) *
               FROM unnest($2::uuid[], $3::text[], $4::uuid[], $5::uuid[], $6::text[])
                    AS t(id, entity_type, entity_id, asset_id, bucket)),
         created AS (
             INSERT INTO accounts (id, organization_id, entity_type, entity_id, asset_id, bucket, balance)
             SELECT id, $1, entity_type, entity_id, asset_id, bucket,
                    CASE WHEN entity_id IS NULL THEN NULL ELSE 0 END
               FROM wanted
             ON CONFLICT ON CONSTRAINT accounts_identity DO NOTHING
             RETURNING id, entity_type, entity_id, asset_id, bucket)
         SELECT id, entity_type, entity_id, asset_id, bucket FROM created
         UNION ALL
         SELECT a.id, a.entity_type, a.entity_id, a.asset_id, a.bucket
           FROM accounts a JOIN wanted w
             ON a.organization_id = $1 AND a.entity_type = w.entity_type AND a.entity_id = w.entity_id
            AND a.asset_id = w.asset_id AND a.bucket = w.bucket
         UNION ALL
         SELECT a.id, a.entity_type, a.entity_id, a.asset_id, a.bucket
           FROM accounts a JOIN wanted w
             ON a.organization_id = $1 AND a.entity_type = w.entity_type AND a.entity_id IS NULL
            AND w.entity_id IS NULL AND a.asset_id = w.asset_id AND a.bucket = w.bucket",
    )
    .bind(organization_id)
    .bind(&ids)
    .bind(&types)
    .bind(&entities)
    .bind(&assets)
    .bind(&buckets)
    .fetch_all(&mut *conn)
    .await?;
    let found: HashMap<(String, Option<Uuid>, Uuid, Bucket), Uuid> = rows
        .into_iter()
        .map(|(id, t, e, a, b)| ((t, e, a, b), id))
        .collect();
    let mut accounts = HashMap::with_capacity(keys.len());
    for key in keys {
        let identity = (
            key.owner.entity_type().to_owned(),
            key.owner.entity_id(),
            key.asset_id,
            key.bucket,
        );
        match found.get(&identity) {
            Some(id) => {
                accounts.insert(*key, *id);
            }
            // Another transaction created it after our snapshot: ON CONFLICT waited for it, so it is visible now.
            None => return Box::pin(resolve_accounts(conn, organization_id, keys)).await,
        }
    }
    Ok(accounts)
}

/// `(id, entity_type, entity_id, asset_id, bucket)` of the accounts owned by `owners` (participants, programs)
/// and of the system accounts of these organizations.
#[derive(Debug, sqlx::FromRow)]
pub struct AccountRow {
    pub id: Uuid,
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub asset_id: Uuid,
    pub bucket: String,
    /// `None` for system accounts, whose balance is the sum of their postings.
    pub balance: Option<Decimal>,
    pub scale: i16,
}

pub async fn accounts_of(
    conn: &mut PgConnection,
    organization_ids: &[Uuid],
    owners: &[Uuid],
) -> sqlx::Result<Vec<AccountRow>> {
    sqlx::query_as(
        "SELECT a.id, a.entity_type, a.entity_id, a.asset_id, a.bucket, a.balance, s.scale
           FROM accounts a JOIN assets s ON s.id = a.asset_id WHERE a.entity_id = ANY($2)
         UNION ALL
         SELECT a.id, a.entity_type, a.entity_id, a.asset_id, a.bucket, a.balance, s.scale
           FROM accounts a JOIN assets s ON s.id = a.asset_id
          WHERE a.organization_id = ANY($1) AND a.entity_id IS NULL",
    )
    .bind(organization_ids)
    .bind(owners)
    .fetch_all(conn)
    .await
}

/// Inserts `(id, organization, entry)`s with their postings and applies them to materialised balances, in one
/// statement. Returns `(entity_type, new balance)` for every materialised account it changed.
pub async fn insert_entries(
    conn: &mut PgConnection,
    entries: &[(Uuid, Uuid, &NewEntry)],
    account_id: impl Fn(&AccountKey) -> Uuid,
) -> sqlx::Result<Vec<(String, Decimal)>> {
    let mut e = EntryColumns::default();
    let mut p = PostingColumns::default();
    for (id, organization_id, entry) in entries {
        e.ids.push(*id);
        e.organizations.push(*organization_id);
        e.programs.push(entry.program_id);
        e.action_types.push(entry.action_type.as_str());
        e.descriptions.push(entry.description.as_deref());
        e.events.push(entry.event_id);
        e.rules.push(entry.rule_id);
        e.references.push(entry.reference_id.as_deref());
        e.api_keys.push(entry.created_by_api_key_id);
        for (key, amount) in &entry.postings {
            p.ids.push(Uuid::now_v7());
            p.entries.push(*id);
            p.programs.push(entry.program_id);
            p.accounts.push(account_id(key));
            p.amounts.push(*amount);
        }
    }
    sqlx::query_as(
        "WITH entries AS (
             INSERT INTO journal_entries (id, organization_id, program_id, action_type, description, event_id,
                                          rule_id, reference_id, created_by_api_key_id)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::uuid[],
                                  $7::uuid[], $8::text[], $9::uuid[])),
         input AS (
             SELECT t.posting_id, t.entry_id, t.program_id, t.amount, a.id AS account_id, a.organization_id,
                    a.asset_id, a.entity_type, a.entity_id, a.bucket
               FROM unnest($10::uuid[], $11::uuid[], $12::uuid[], $13::uuid[], $14::numeric[])
                    AS t(posting_id, entry_id, program_id, account_id, amount)
               JOIN accounts a ON a.id = t.account_id),
         posted AS (
             INSERT INTO postings (id, journal_entry_id, organization_id, account_id, program_id, asset_id,
                                   entity_type, entity_id, bucket, amount)
             SELECT posting_id, entry_id, organization_id, account_id, program_id, asset_id, entity_type,
                    entity_id, bucket, amount
               FROM input),
         delta AS (
             SELECT account_id, sum(amount) AS amount FROM input WHERE entity_id IS NOT NULL GROUP BY account_id)
         UPDATE accounts a SET balance = a.balance + delta.amount
           FROM delta WHERE a.id = delta.account_id
         RETURNING a.entity_type, a.balance",
    )
    .bind(&e.ids)
    .bind(&e.organizations)
    .bind(&e.programs)
    .bind(&e.action_types)
    .bind(&e.descriptions)
    .bind(&e.events)
    .bind(&e.rules)
    .bind(&e.references)
    .bind(&e.api_keys)
    .bind(&p.ids)
    .bind(&p.entries)
    .bind(&p.programs)
    .bind(&p.accounts)
    .bind(&p.amounts)
    .fetch_all(conn)
    .await
}

#[derive(Default)]
struct EntryColumns<'a> {
    ids: Vec<Uuid>,
    organizations: Vec<Uuid>,
    programs: Vec<Uuid>,
    action_types: Vec<&'static str>,
    descriptions: Vec<Option<&'a str>>,
    events: Vec<Option<Uuid>>,
    rules: Vec<Option<Uuid>>,
    references: Vec<Option<&'a str>>,
    api_keys: Vec<Option<Uuid>>,
}

#[derive(Default)]
struct PostingColumns {
    ids: Vec<Uuid>,
    entries: Vec<Uuid>,
    programs: Vec<Uuid>,
    accounts: Vec<Uuid>,
    amounts: Vec<Decimal>,
}

const ENTRY_COLUMNS: &str =
    "e.id, e.program_id, p.name AS program_name, e.action_type, e.description, e.event_id,
    e.rule_id, e.reference_id, e.created_by_api_key_id,
    (SELECT s.entry_hash FROM journal_seals s WHERE s.journal_entry_id = e.id) AS entry_hash, e.created_at";

pub async fn find_entry(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<EntryRow>> {
    sqlx::query_as(&format!(
        "SELECT {ENTRY_COLUMNS} FROM journal_entries e JOIN programs p ON p.id = e.program_id
          WHERE e.id = $1 AND e.organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn list_entries(
    pool: &PgPool,
    organization_id: Uuid,
    f: &EntryFilter,
    order: Order,
) -> sqlx::Result<Vec<EntryRow>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {ENTRY_COLUMNS} FROM journal_entries e JOIN programs p ON p.id = e.program_id
          WHERE e.organization_id = "
    ));
    q.push_bind(organization_id);
    for (column, value) in [
        ("e.program_id", f.program_id),
        ("e.event_id", f.event_id),
        ("e.rule_id", f.rule_id),
    ] {
        if let Some(value) = value {
            q.push(format_args!(" AND {column} = ")).push_bind(value);
        }
    }
    if let Some(action_type) = &f.action_type {
        q.push(" AND e.action_type = ")
            .push_bind(action_type.clone());
    }
    if let Some(reference_id) = &f.reference_id {
        q.push(" AND e.reference_id = ")
            .push_bind(reference_id.clone());
    }
    if let Some(from) = f.from {
        q.push(" AND e.created_at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" AND e.created_at <= ").push_bind(to);
    }
    let posting_filter = f.asset_id.is_some()
        || f.participant_id.is_some()
        || f.group_id.is_some()
        || f.external_id.is_some()
        || f.bucket.is_some()
        || f.min_amount.is_some()
        || f.max_amount.is_some();
    if posting_filter {
        q.push(" AND EXISTS (SELECT 1 FROM postings x WHERE x.journal_entry_id = e.id");
        if let Some(asset_id) = f.asset_id {
            q.push(" AND x.asset_id = ").push_bind(asset_id);
        }
        if let Some(id) = f.participant_id {
            q.push(" AND x.entity_type = 'PARTICIPANT' AND x.entity_id = ")
                .push_bind(id);
        }
        if let Some(id) = f.group_id {
            q.push(" AND x.entity_type = 'GROUP' AND x.entity_id = ")
                .push_bind(id);
        }
        if let Some(external_id) = &f.external_id {
            q.push(
                " AND x.entity_type = 'PARTICIPANT' AND x.entity_id = (SELECT id FROM participants",
            );
            q.push(" WHERE organization_id = ")
                .push_bind(organization_id);
            q.push(" AND external_id = ")
                .push_bind(external_id.clone())
                .push(")");
        }
        if let Some(bucket) = f.bucket {
            q.push(" AND x.bucket = ").push_bind(bucket);
        }
        if let Some(min) = f.min_amount {
            q.push(" AND x.amount >= ").push_bind(min);
        }
        if let Some(max) = f.max_amount {
            q.push(" AND x.amount <= ").push_bind(max);
        }
        q.push(")");
    }
    order.push(&mut q, "e.id", f.page.cursor.clone(), f.page.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn postings_of(pool: &PgPool, entry_ids: &[Uuid]) -> sqlx::Result<Vec<PostingRow>> {
    sqlx::query_as(
        "SELECT x.id, x.journal_entry_id, x.amount, s.scale, x.asset_id, s.symbol AS asset_symbol, x.bucket,
                x.entity_type, x.entity_id, x.program_id, x.created_at
           FROM postings x JOIN assets s ON s.id = x.asset_id
          WHERE x.journal_entry_id = ANY($1)
          ORDER BY x.journal_entry_id, x.amount, x.id",
    )
    .bind(entry_ids)
    .fetch_all(pool)
    .await
}

pub async fn balance_impact(
    pool: &PgPool,
    organization_id: Uuid,
    event_id: Uuid,
) -> sqlx::Result<Vec<super::BalanceImpact>> {
    sqlx::query_as(
        "SELECT x.entity_type, x.entity_id, s.symbol AS asset_symbol, s.scale, x.bucket, sum(x.amount) AS amount
           FROM postings x
           JOIN journal_entries j ON j.id = x.journal_entry_id
           JOIN assets s ON s.id = x.asset_id
          WHERE j.event_id = $1 AND j.organization_id = $2
          GROUP BY x.entity_type, x.entity_id, s.symbol, s.scale, x.bucket
         HAVING sum(x.amount) <> 0
          ORDER BY x.entity_type, x.entity_id, s.symbol, x.bucket",
    )
    .bind(event_id)
    .bind(organization_id)
    .fetch_all(pool)
    .await
}

pub async fn snapshot(
    conn: &mut PgConnection,
    organization_id: Uuid,
    owner: super::Owner,
    asset_id: Uuid,
) -> sqlx::Result<super::Snapshot> {
    sqlx::query_as(
        "SELECT COALESCE(sum(balance) FILTER (WHERE bucket = 'AVAILABLE'), 0) AS available,
                COALESCE(sum(balance) FILTER (WHERE bucket = 'HELD'), 0) AS held,
                COALESCE(sum(balance) FILTER (WHERE bucket = 'DEFERRED'), 0) AS deferred
           FROM accounts
          WHERE organization_id = $1 AND entity_type = $2 AND entity_id = $3 AND asset_id = $4",
    )
    .bind(organization_id)
    .bind(owner.entity_type())
    .bind(owner.entity_id())
    .bind(asset_id)
    .fetch_one(conn)
    .await
}

const ACTIVITY_COLUMNS: &str =
    "x.id AS posting_id, x.journal_entry_id, j.action_type, x.amount, s.scale, x.asset_id,
    x.bucket, j.description, j.event_id, e.event_timestamp, j.created_by_api_key_id, x.created_at";

const ACTIVITY_FROM: &str = "FROM postings x
    JOIN journal_entries j ON j.id = x.journal_entry_id
    JOIN assets s ON s.id = x.asset_id
    LEFT JOIN events e ON e.id = j.event_id
   WHERE x.organization_id = $1 AND x.entity_type = $2 AND x.entity_id = $3
     AND ($4::uuid IS NULL OR x.asset_id = $4) AND ($5::text IS NULL OR x.bucket = $5)";

pub async fn history(
    pool: &PgPool,
    organization_id: Uuid,
    owner: super::Owner,
    asset_id: Option<Uuid>,
    f: &super::ActivityFilter,
) -> sqlx::Result<Vec<super::ActivityRow>> {
    let (after_key, after_id) = f
        .page
        .cursor
        .as_ref()
        .map_or((None, None), |c| (Some(c.key.clone()), Some(c.id)));
    sqlx::query_as(&format!(
        "SELECT {ACTIVITY_COLUMNS}, NULL::numeric AS running_balance {ACTIVITY_FROM}
            AND ($6::timestamptz IS NULL OR x.created_at >= $6) AND ($7::timestamptz IS NULL OR x.created_at <= $7)
            AND ($8::timestamptz IS NULL OR COALESCE(e.event_timestamp, x.created_at) >= $8)
            AND ($9::timestamptz IS NULL OR COALESCE(e.event_timestamp, x.created_at) <= $9)
            AND ($10::text IS NULL OR (x.created_at, x.id) < ($10::timestamptz, $11::uuid))
          ORDER BY x.created_at DESC, x.id DESC
          LIMIT $12 + 1"
    ))
    .bind(organization_id)
    .bind(owner.entity_type())
    .bind(owner.entity_id())
    .bind(asset_id)
    .bind(f.bucket)
    .bind(f.from)
    .bind(f.to)
    .bind(f.event_from)
    .bind(f.event_to)
    .bind(after_key)
    .bind(after_id)
    .bind(f.page.limit)
    .fetch_all(pool)
    .await
}

/// The balance before the window and at its end (the whole history without one).
pub async fn statement_bounds(
    pool: &PgPool,
    organization_id: Uuid,
    owner: super::Owner,
    asset_id: Uuid,
    f: &super::ActivityFilter,
) -> sqlx::Result<(Decimal, Decimal)> {
    sqlx::query_as(
        "SELECT COALESCE(sum(amount) FILTER (WHERE $6::timestamptz IS NOT NULL AND created_at < $6), 0),
                COALESCE(sum(amount) FILTER (WHERE $7::timestamptz IS NULL OR created_at <= $7), 0)
           FROM postings
          WHERE organization_id = $1 AND entity_type = $2 AND entity_id = $3 AND asset_id = $4
            AND ($5::text IS NULL OR bucket = $5)",
    )
    .bind(organization_id)
    .bind(owner.entity_type())
    .bind(owner.entity_id())
    .bind(asset_id)
    .bind(f.bucket)
    .bind(f.from)
    .bind(f.to)
    .fetch_one(pool)
    .await
}

pub async fn statement_lines(
    pool: &PgPool,
    organization_id: Uuid,
    owner: super::Owner,
    asset_id: Uuid,
    f: &super::ActivityFilter,
) -> sqlx::Result<Vec<super::ActivityRow>> {
    let (after_key, after_id) = f
        .page
        .cursor
        .as_ref()
        .map_or((None, None), |c| (Some(c.key.clone()), Some(c.id)));
    sqlx::query_as(&format!(
        "WITH lines AS (
             SELECT {ACTIVITY_COLUMNS}, sum(x.amount) OVER (ORDER BY x.created_at, x.id) AS running_balance
             {ACTIVITY_FROM})
         SELECT * FROM lines
          WHERE ($6::timestamptz IS NULL OR created_at >= $6) AND ($7::timestamptz IS NULL OR created_at <= $7)
            AND ($8::text IS NULL OR (created_at, posting_id) > ($8::timestamptz, $9::uuid))
          ORDER BY created_at, posting_id
          LIMIT $10 + 1"
    ))
    .bind(organization_id)
    .bind(owner.entity_type())
    .bind(owner.entity_id())
    .bind(Some(asset_id))
    .bind(f.bucket)
    .bind(f.from)
    .bind(f.to)
    .bind(after_key)
    .bind(after_id)
    .bind(f.page.limit)
    .fetch_all(pool)
    .await
}

/// A holder's balances per asset, from its materialised accounts, ordered by asset id after `after`; only the
/// assets linked to `program_id` when given; `limit` `None` reads them all.
pub async fn balances_of(
    db: impl sqlx::PgExecutor<'_>,
    organization_id: Uuid,
    holder: Owner,
    asset_id: Option<Uuid>,
    program_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: Option<i64>,
) -> sqlx::Result<Vec<BalanceRow>> {
    sqlx::query_as(
        "SELECT a.asset_id, s.scale,
                COALESCE(sum(a.balance) FILTER (WHERE a.bucket = 'AVAILABLE'), 0) AS available,
                COALESCE(sum(a.balance) FILTER (WHERE a.bucket = 'HELD'), 0) AS held,
                COALESCE(sum(a.balance) FILTER (WHERE a.bucket = 'DEFERRED'), 0) AS deferred
           FROM accounts a JOIN assets s ON s.id = a.asset_id
          WHERE a.organization_id = $1 AND a.entity_type = $6 AND a.entity_id = $2
            AND ($3::uuid IS NULL OR a.asset_id = $3)
            AND ($4::uuid IS NULL OR a.asset_id > $4)
            AND ($7::uuid IS NULL OR EXISTS (
                    SELECT 1 FROM program_assets l WHERE l.program_id = $7 AND l.asset_id = a.asset_id))
          GROUP BY a.asset_id, s.scale
          ORDER BY a.asset_id
          LIMIT $5",
    )
    .bind(organization_id)
    .bind(holder.entity_id())
    .bind(asset_id)
    .bind(after)
    .bind(limit)
    .bind(holder.entity_type())
    .bind(program_id)
    .fetch_all(db)
    .await
}

/// Each participant's AVAILABLE postings that sort from its `from` (inclusive) to its bound (see
/// `super::PastPosting`), by participant and then in that order.
pub async fn available_between(
    conn: &mut PgConnection,
    participants: &[Uuid],
    froms: &[Uuid],
    bounds: &[Uuid],
) -> sqlx::Result<Vec<super::PastPosting>> {
    // A posting sorts at its event's state_as_of, which is before the posting was made: one made before
    // `from` cannot sort after it.
    sqlx::query_as(
        "SELECT p.entity_id AS participant_id, COALESCE(e.state_as_of, p.id) AS position, p.asset_id, a.scale,
                p.amount
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS w (participant_id, from_id, bound)
           JOIN postings p ON p.entity_id = w.participant_id AND p.entity_type = 'PARTICIPANT'
                          AND p.bucket = 'AVAILABLE' AND p.id >= w.from_id
           JOIN journal_entries j ON j.id = p.journal_entry_id
           JOIN assets a ON a.id = p.asset_id
           LEFT JOIN events e ON e.id = j.event_id
          WHERE COALESCE(e.state_as_of, p.id) >= w.from_id AND COALESCE(e.state_as_of, p.id) < w.bound
          ORDER BY 1, 2, p.id",
    )
    .bind(participants)
    .bind(froms)
    .bind(bounds)
    .fetch_all(conn)
    .await
}

/// What `rule_id`'s CREDIT and DEBIT entries moved for each of these events, by asset: credited to and
/// debited from holders (system accounts and program wallets on the other side are left out).
pub async fn moved_by_rule(
    conn: &mut PgConnection,
    rule_id: Uuid,
    events: &[Uuid],
) -> sqlx::Result<Vec<super::RuleMovement>> {
    sqlx::query_as(
        "SELECT j.event_id, p.asset_id,
                COALESCE(sum(p.amount) FILTER (WHERE j.action_type = 'CREDIT' AND p.amount > 0), 0) AS credited,
                COALESCE(-sum(p.amount) FILTER (WHERE j.action_type = 'DEBIT' AND p.amount < 0), 0) AS debited
           FROM journal_entries j JOIN postings p ON p.journal_entry_id = j.id
          WHERE j.event_id = ANY($1) AND j.rule_id = $2 AND j.action_type IN ('CREDIT', 'DEBIT')
            AND p.entity_type IN ('PARTICIPANT', 'GROUP')
          GROUP BY 1, 2",
    )
    .bind(events)
    .bind(rule_id)
    .fetch_all(conn)
    .await
}
