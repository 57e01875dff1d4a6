//! The storage of lots of LOT assets (see the migration for the invariant): reading, locking, creating, taking
//! and splitting them. `movement` decides what moves: it plans which lots an entry takes before the entry is
//! written — the entry needs the total — and applies the plan after, linking each lot to it. A lot's holder is
//! a participant or a group; callers hold the holder's lock.

use super::Bucket;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;
use std::collections::HashSet;
use uuid::Uuid;

/// What a credit says about the lot it creates.
#[derive(Debug, Clone, Default)]
pub struct LotSpec {
    pub expires_at: Option<DateTime<Utc>>,
    pub matures_at: Option<DateTime<Utc>>,
    pub reference_id: Option<String>,
}

impl LotSpec {
    /// The bucket a credit lands in: DEFERRED until it matures, otherwise the one requested.
    pub fn bucket(&self, requested: Bucket, now: DateTime<Utc>) -> Bucket {
        if self.matures_at.is_some_and(|t| t > now) {
            Bucket::Deferred
        } else {
            requested
        }
    }
}

/// Which lots an operation may take.
#[derive(Debug, Clone, Default)]
pub struct Selector {
    pub reference_id: Option<String>,
    pub lot_ids: Option<Vec<Uuid>>,
    pub earned: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Only lots credited straight into HELD (void-hold).
    pub provisional_only: bool,
}

impl Selector {
    /// Whether the request named lots at all (only LOT assets may).
    pub fn is_set(&self) -> bool {
        self.reference_id.is_some() || self.lot_ids.is_some() || self.earned.is_some()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Lot {
    pub id: Uuid,
    pub asset_id: Uuid,
    pub program_id: Uuid,
    pub amount: Decimal,
    pub remaining: Decimal,
    pub status: LotStatus,
    pub reference_id: Option<String>,
    pub provisional: bool,
    pub earned_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub matures_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// The lots an operation will take, oldest first, and how much of each.
#[derive(Debug, Default)]
pub struct Plan {
    pub takes: Vec<(Lot, Decimal)>,
    pub total: Decimal,
}

impl Plan {
    /// Each lot taken and how much, as balance-operation answers show it.
    pub fn processed(&self, scale: i16) -> Vec<LotTaken> {
        self.takes
            .iter()
            .map(|(lot, take)| LotTaken {
                id: lot.id,
                amount: crate::money::format(*take, scale),
            })
            .collect()
    }
}

/// A lot an operation took from, and how much.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LotTaken {
    pub id: Uuid,
    pub amount: String,
}

const LOT_COLUMNS: &str = "id, asset_id, program_id, amount, remaining, status, reference_id, provisional, earned_at, \
                           expires_at, matures_at, created_at";

/// Plans taking up to `amount` (everything selected when `None`) from the holder's lots in `status`.
pub async fn plan(
    conn: &mut PgConnection,
    holder: Uuid,
    asset_id: Uuid,
    status: Bucket,
    amount: Option<Decimal>,
    selector: &Selector,
) -> sqlx::Result<Plan> {
    let (from, to) = selector
        .earned
        .map_or((None, None), |(from, to)| (Some(from), Some(to)));
    let lots: Vec<Lot> = sqlx::query_as(&format!(
        "SELECT {LOT_COLUMNS} FROM lots
          WHERE holder_id = $1 AND asset_id = $2 AND status = $3 AND remaining > 0
            AND (expires_at IS NULL OR expires_at > now())
            AND ($4::text IS NULL OR reference_id = $4)
            AND ($5::uuid[] IS NULL OR id = ANY($5))
            AND ($6::timestamptz IS NULL OR earned_at BETWEEN $6 AND $7)
            AND (NOT $8 OR provisional)
          ORDER BY earned_at, id
            FOR UPDATE"
    ))
    .bind(holder)
    .bind(asset_id)
    .bind(status)
    .bind(&selector.reference_id)
    .bind(&selector.lot_ids)
    .bind(from)
    .bind(to)
    .bind(selector.provisional_only)
    .fetch_all(conn)
    .await?;
    let mut plan = Plan::default();
    for lot in lots {
        let left = amount.map_or(lot.remaining, |a| a - plan.total);
        if left <= Decimal::ZERO {
            break;
        }
        let take = lot.remaining.min(left);
        plan.total += take;
        plan.takes.push((lot, take));
    }
    Ok(plan)
}

/// The value leaves the lots for good (debit, forfeit, transfer out, void).
pub async fn consume(conn: &mut PgConnection, entry_id: Uuid, plan: &Plan) -> sqlx::Result<()> {
    let (ids, takes): (Vec<Uuid>, Vec<Decimal>) =
        plan.takes.iter().map(|(lot, take)| (lot.id, *take)).unzip();
    sqlx::query(
        "UPDATE lots l SET remaining = l.remaining - t.take,
                status = CASE WHEN l.remaining = t.take THEN 'CONSUMED' ELSE l.status END
           FROM unnest($1::uuid[], $2::numeric[]) AS t(id, take) WHERE l.id = t.id",
    )
    .bind(&ids)
    .bind(&takes)
    .execute(&mut *conn)
    .await?;
    link(conn, &vec![entry_id; ids.len()], &ids, &takes).await
}

/// The value changes bucket (hold, release): a lot taken whole changes status; a lot taken in part is split,
/// the part keeping the lot's earn time and dates. `stamp` sets the reference of what moved.
pub async fn shift(
    conn: &mut PgConnection,
    entry_id: Uuid,
    plan: &Plan,
    to: Bucket,
    stamp: Option<&str>,
) -> sqlx::Result<()> {
    for (lot, take) in &plan.takes {
        if *take == lot.remaining {
            sqlx::query("UPDATE lots SET status = $2, reference_id = COALESCE($3, reference_id) WHERE id = $1")
                .bind(lot.id)
                .bind(to)
                .bind(stamp)
                .execute(&mut *conn)
                .await?;
            continue;
        }
        sqlx::query(
            "WITH parent AS (UPDATE lots SET remaining = remaining - $3 WHERE id = $1 RETURNING *)
             INSERT INTO lots (id, organization_id, holder_type, holder_id, asset_id, program_id, journal_entry_id,
                               parent_lot_id, amount, remaining, status, reference_id, provisional, earned_at,
                               expires_at, matures_at)
             SELECT $2, organization_id, holder_type, holder_id, asset_id, program_id, $4, id, $3, $3, $5,
                    COALESCE($6, reference_id), provisional, earned_at, expires_at, matures_at
               FROM parent",
        )
        .bind(lot.id)
        .bind(Uuid::now_v7())
        .bind(take)
        .bind(entry_id)
        .bind(to)
        .bind(stamp)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Plans giving back up to `amount` of what the entry `consumed_by` took from lots and no reversal has given
/// back yet: the last lot it took first (LIFO), so partial reversals return the newest value before the oldest.
pub async fn plan_restore(
    conn: &mut PgConnection,
    consumed_by: Uuid,
    amount: Decimal,
) -> sqlx::Result<Plan> {
    let consumed: Vec<(Uuid, Decimal)> = sqlx::query_as(
        "SELECT c.lot_id, c.amount - COALESCE((SELECT sum(r.amount) FROM lot_restorations r
                                                 WHERE r.reverses_entry_id = c.journal_entry_id
                                                   AND r.lot_id = c.lot_id), 0)
           FROM lot_consumptions c JOIN lots l ON l.id = c.lot_id
          WHERE c.journal_entry_id = $1
          ORDER BY l.earned_at DESC, l.id DESC",
    )
    .bind(consumed_by)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = consumed.iter().map(|(id, _)| *id).collect();
    let mut lots: std::collections::HashMap<Uuid, Lot> = sqlx::query_as::<_, Lot>(&format!(
        "SELECT {LOT_COLUMNS} FROM lots WHERE id = ANY($1) FOR UPDATE"
    ))
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|lot| (lot.id, lot))
    .collect();
    let mut plan = Plan::default();
    for (id, left) in consumed {
        let wanted = amount - plan.total;
        if wanted <= Decimal::ZERO {
            break;
        }
        let give = left.min(wanted);
        if let (true, Some(lot)) = (give > Decimal::ZERO, lots.remove(&id)) {
            plan.total += give;
            plan.takes.push((lot, give));
        }
    }
    Ok(plan)
}

/// Gives the planned value back to its lots, as AVAILABLE value with the lot's earn time and dates, for the
/// reversal entry `entry_id` of `consumed_by`. A lot now held gets a part split off it instead, so held value
/// stays what it was. The first `debt` of it repays the holder's overdraft and goes back to no lot.
pub async fn restore(
    conn: &mut PgConnection,
    entry_id: Uuid,
    consumed_by: Uuid,
    plan: &Plan,
    debt: Decimal,
) -> sqlx::Result<()> {
    let mut debt = debt.max(Decimal::ZERO);
    for (lot, give) in &plan.takes {
        let repaid = debt.min(*give);
        debt -= repaid;
        let back = *give - repaid;
        let restored_lot = match (back > Decimal::ZERO, lot.status) {
            (false, _) => lot.id,
            (true, LotStatus::Held | LotStatus::Deferred) => {
                let id = Uuid::now_v7();
                sqlx::query(
                    "INSERT INTO lots (id, organization_id, holder_type, holder_id, asset_id, program_id, journal_entry_id,
                                       parent_lot_id, amount, remaining, status, reference_id, provisional,
                                       earned_at, expires_at, matures_at)
                     SELECT $2, organization_id, holder_type, holder_id, asset_id, program_id, $3, id, $4, $4,
                            'AVAILABLE', reference_id, false, earned_at, expires_at, matures_at
                       FROM lots WHERE id = $1",
                )
                .bind(lot.id)
                .bind(id)
                .bind(entry_id)
                .bind(back)
                .execute(&mut *conn)
                .await?;
                id
            }
            (true, _) => {
                sqlx::query(
                    "UPDATE lots SET remaining = remaining + $2, status = 'AVAILABLE' WHERE id = $1",
                )
                .bind(lot.id)
                .bind(back)
                .execute(&mut *conn)
                .await?;
                lot.id
            }
        };
        sqlx::query(
            "INSERT INTO lot_restorations (id, lot_id, restored_lot_id, reverses_entry_id, journal_entry_id, amount)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(Uuid::now_v7())
        .bind(lot.id)
        .bind(restored_lot)
        .bind(consumed_by)
        .bind(entry_id)
        .bind(give)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A credit's lot, created once the credit's entry is posted.
#[derive(Debug, Clone)]
pub struct NewLot {
    pub organization_id: Uuid,
    pub program_id: Uuid,
    /// A participant or a group.
    pub holder: super::Owner,
    pub asset_id: Uuid,
    pub amount: Decimal,
    pub bucket: Bucket,
    pub spec: LotSpec,
    /// Credited straight into HELD: a provisional accrual, which void-hold may cancel.
    pub provisional: bool,
    /// The holder's overdraft, which an AVAILABLE credit repays first.
    pub debt: Decimal,
}

impl NewLot {
    fn repaid(&self) -> Decimal {
        match self.bucket {
            Bucket::Available => self.debt.max(Decimal::ZERO).min(self.amount),
            Bucket::Held | Bucket::Deferred => Decimal::ZERO,
        }
    }
}

/// Creates the lots of credits just posted, each `(entry, lot)`, in one statement. What repays an overdraft
/// is recorded as consumed by the lot's own entry.
pub async fn create(conn: &mut PgConnection, lots: &[(Uuid, &NewLot)]) -> sqlx::Result<()> {
    let mut c = LotColumns::default();
    let (mut repaying, mut repaid_lots, mut repaid) = (Vec::new(), Vec::new(), Vec::new());
    for (entry_id, lot) in lots {
        let id = Uuid::now_v7();
        let repays = lot.repaid();
        if repays > Decimal::ZERO {
            repaying.push(*entry_id);
            repaid_lots.push(id);
            repaid.push(repays);
        }
        c.ids.push(id);
        c.organizations.push(lot.organization_id);
        c.kinds.push(lot.holder.entity_type());
        c.holders.push(lot.holder.entity_id().unwrap_or_default());
        c.assets.push(lot.asset_id);
        c.programs.push(lot.program_id);
        c.entries.push(*entry_id);
        c.amounts.push(lot.amount);
        c.remaining.push(lot.amount - repays);
        c.buckets.push(lot.bucket);
        c.references.push(lot.spec.reference_id.as_deref());
        c.provisional.push(lot.provisional);
        c.expires.push(lot.spec.expires_at);
        c.matures.push(lot.spec.matures_at);
    }
    sqlx::query(
        "INSERT INTO lots (id, organization_id, holder_type, holder_id, asset_id, program_id, journal_entry_id,
                           amount, remaining, status, reference_id, provisional, earned_at, expires_at, matures_at)
         SELECT id, organization_id, holder_type, holder_id, asset_id, program_id, journal_entry_id, amount,
                remaining, CASE WHEN remaining = 0 THEN 'CONSUMED' ELSE bucket END, reference_id, provisional,
                now(), expires_at, matures_at
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::uuid[], $7::numeric[],
                       $8::numeric[], $9::text[], $10::text[], $11::bool[], $12::timestamptz[], $13::timestamptz[],
                       $14::text[])
                AS t(id, organization_id, holder_id, asset_id, program_id, journal_entry_id, amount,
                     remaining, bucket, reference_id, provisional, expires_at, matures_at, holder_type)",
    )
    .bind(&c.ids)
    .bind(&c.organizations)
    .bind(&c.holders)
    .bind(&c.assets)
    .bind(&c.programs)
    .bind(&c.entries)
    .bind(&c.amounts)
    .bind(&c.remaining)
    .bind(&c.buckets)
    .bind(&c.references)
    .bind(&c.provisional)
    .bind(&c.expires)
    .bind(&c.matures)
    .bind(&c.kinds)
    .execute(&mut *conn)
    .await?;
    if !repaid.is_empty() {
        link(conn, &repaying, &repaid_lots, &repaid).await?;
    }
    Ok(())
}

#[derive(Default)]
struct LotColumns<'a> {
    ids: Vec<Uuid>,
    organizations: Vec<Uuid>,
    kinds: Vec<&'static str>,
    holders: Vec<Uuid>,
    assets: Vec<Uuid>,
    programs: Vec<Uuid>,
    entries: Vec<Uuid>,
    amounts: Vec<Decimal>,
    remaining: Vec<Decimal>,
    buckets: Vec<Bucket>,
    references: Vec<Option<&'a str>>,
    provisional: Vec<bool>,
    expires: Vec<Option<DateTime<Utc>>>,
    matures: Vec<Option<DateTime<Utc>>>,
}

/// Records that each entry took its amount from its lot.
async fn link(
    conn: &mut PgConnection,
    entries: &[Uuid],
    ids: &[Uuid],
    takes: &[Decimal],
) -> sqlx::Result<()> {
    let link_ids: Vec<Uuid> = ids.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO lot_consumptions (id, lot_id, journal_entry_id, amount)
         SELECT id, lot_id, entry_id, amount
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::numeric[]) AS t(entry_id, id, lot_id, amount)",
    )
    .bind(entries)
    .bind(&link_ids)
    .bind(ids)
    .bind(takes)
    .execute(conn)
    .await?;
    Ok(())
}

/// A lot due to mature or expire, as the passes read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueLot {
    pub id: Uuid,
    pub organization_id: Uuid,
    holder_type: String,
    holder_id: Uuid,
    pub asset_id: Uuid,
    pub program_id: Uuid,
    /// Due lots are in a bucket: AVAILABLE, HELD or DEFERRED.
    pub status: Bucket,
    pub remaining: Decimal,
    /// The asset's scale, for what reports the amount.
    pub scale: i16,
}

impl DueLot {
    /// The participant or group whose lot it is.
    pub fn holder(&self) -> super::Owner {
        super::Owner::from_row(&self.holder_type, Some(self.holder_id))
            .unwrap_or(super::Owner::Participant(self.holder_id))
    }
}

/// Which background pass: lots past `matures_at` become AVAILABLE (MATURITY entries); lots past
/// `expires_at` lose what remains to breakage (EXPIRATION entries).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Due {
    Maturity,
    Expiry,
}

impl Due {
    /// Which lots are due, as SQL over `lots`.
    fn condition(self) -> &'static str {
        match self {
            Due::Maturity => "status = 'DEFERRED' AND matures_at <= now()",
            Due::Expiry => {
                "remaining > 0 AND status IN ('AVAILABLE', 'HELD', 'DEFERRED') AND expires_at <= now()"
            }
        }
    }
}

/// The (holder, asset)s of these holders that have a lot due to expire or mature: what settling them would act
/// on.
pub async fn due_holdings(
    conn: &mut PgConnection,
    holders: &[Uuid],
) -> sqlx::Result<HashSet<(Uuid, Uuid)>> {
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(&format!(
        "SELECT holder_id, asset_id FROM lots WHERE holder_id = ANY($1) AND {}
         UNION
         SELECT holder_id, asset_id FROM lots WHERE holder_id = ANY($1) AND {}",
        Due::Expiry.condition(),
        Due::Maturity.condition()
    ))
    .bind(holders)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Up to `limit` holders with a due lot (`holder` alone, for one of its assets, when given), in id order:
/// whom the caller locks, before [`lock_due`], unless it holds the holder's lock already.
pub async fn due_holders(
    conn: &mut PgConnection,
    due: Due,
    holder: Option<(Uuid, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    let condition = due.condition();
    // Walk the date's index: ordering a whole backlog by holder would make every batch read all of it.
    let order = match due {
        Due::Maturity => "matures_at",
        Due::Expiry => "expires_at",
    };
    let (one, asset) = holder.map_or((None, None), |(h, a)| (Some(h), Some(a)));
    let mut found: Vec<Uuid> = sqlx::query_scalar(&format!(
        "SELECT holder_id FROM lots WHERE {condition}
            AND ($1::uuid IS NULL OR (holder_id = $1 AND asset_id = $2))
          ORDER BY {order} LIMIT $3"
    ))
    .bind(one)
    .bind(asset)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    found.sort();
    found.dedup();
    Ok(found)
}

/// Locks up to `limit` due lots of these holders (of one asset when given), ordered by holder. The caller
/// holds the holders' locks: holders first, then their lots, the lock order every writer uses.
pub async fn lock_due(
    conn: &mut PgConnection,
    due: Due,
    holders: &[Uuid],
    asset: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<DueLot>> {
    let condition = due.condition();
    sqlx::query_as(&format!(
        "SELECT id, organization_id, holder_type, holder_id, asset_id, program_id, status, remaining,
                (SELECT scale FROM assets WHERE assets.id = lots.asset_id) AS scale FROM lots
          WHERE {condition} AND holder_id = ANY($1)
            AND ($2::uuid IS NULL OR asset_id = $2)
          ORDER BY holder_id, id LIMIT $3 FOR UPDATE"
    ))
    .bind(holders)
    .bind(asset)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}

/// Due lots whose entries are written: matured ones become AVAILABLE; expired ones lose what remains, taken
/// by their entry (`entries`, one per lot).
pub async fn close_due(
    conn: &mut PgConnection,
    due: Due,
    lots: &[DueLot],
    entries: &[Uuid],
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = lots.iter().map(|l| l.id).collect();
    match due {
        Due::Maturity => {
            sqlx::query("UPDATE lots SET status = 'AVAILABLE' WHERE id = ANY($1)")
                .bind(&ids)
                .execute(&mut *conn)
                .await?;
        }
        Due::Expiry => {
            let takes: Vec<Decimal> = lots.iter().map(|l| l.remaining).collect();
            let link_ids: Vec<Uuid> = lots.iter().map(|_| Uuid::now_v7()).collect();
            sqlx::query(
                "WITH expired AS (UPDATE lots SET remaining = 0, status = 'EXPIRED' WHERE id = ANY($1))
                 INSERT INTO lot_consumptions (id, lot_id, journal_entry_id, amount)
                 SELECT * FROM unnest($2::uuid[], $1::uuid[], $3::uuid[], $4::numeric[])",
            )
            .bind(&ids)
            .bind(&link_ids)
            .bind(entries)
            .bind(&takes)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

crate::vocabulary!(
    /// Where a lot's value sits (a bucket), or that it is spent or expired.
    pub enum LotStatus {
        Available = "AVAILABLE",
        Held = "HELD",
        Deferred = "DEFERRED",
        Consumed = "CONSUMED",
        Expired = "EXPIRED",
    }
);

/// A lot as E39 lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Lot)]
pub struct LotView {
    pub id: Uuid,
    pub asset_id: Uuid,
    pub program_id: Uuid,
    #[schema(example = "100")]
    pub amount: String,
    #[schema(example = "40")]
    pub remaining: String,
    pub status: LotStatus,
    pub reference_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub matures_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl LotView {
    pub fn new(lot: Lot, scale: i16) -> Self {
        LotView {
            id: lot.id,
            asset_id: lot.asset_id,
            program_id: lot.program_id,
            amount: crate::money::format(lot.amount, scale),
            remaining: crate::money::format(lot.remaining, scale),
            status: lot.status,
            reference_id: lot.reference_id,
            expires_at: lot.expires_at,
            matures_at: lot.matures_at,
            created_at: lot.created_at,
        }
    }
}

#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LotFilter {
    pub program_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<LotStatus>,
    pub expires_before: Option<DateTime<Utc>>,
    pub expires_after: Option<DateTime<Utc>>,
    #[param(min_length = 1, max_length = 255)]
    pub reference_id: Option<String>,
    #[param(ignore)]
    pub page: crate::pagination::PageParams,
}

/// E39: a holder's lots of one asset, oldest first.
pub async fn list(
    conn: &mut PgConnection,
    holder: Uuid,
    asset_id: Uuid,
    f: &LotFilter,
) -> sqlx::Result<Vec<Lot>> {
    sqlx::query_as(&format!(
        "SELECT {LOT_COLUMNS} FROM lots
          WHERE holder_id = $1 AND asset_id = $2
            AND ($3::uuid IS NULL OR program_id = $3) AND ($4::text IS NULL OR status = $4)
            AND ($5::timestamptz IS NULL OR expires_at < $5) AND ($6::timestamptz IS NULL OR expires_at > $6)
            AND ($7::text IS NULL OR reference_id = $7) AND ($8::uuid IS NULL OR id > $8)
          ORDER BY id LIMIT $9 + 1"
    ))
    .bind(holder)
    .bind(asset_id)
    .bind(f.program_id)
    .bind(f.status)
    .bind(f.expires_before)
    .bind(f.expires_after)
    .bind(&f.reference_id)
    .bind(f.page.cursor.as_ref().map(|c| c.id))
    .bind(f.page.limit)
    .fetch_all(conn)
    .await
}
