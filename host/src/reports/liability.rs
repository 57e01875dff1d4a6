//! The books: what the organization owes and how it moved. The liability is the balance of every account that
//! holds value for someone — participants, groups and the ledger entities a program redeems into — never the
//! program wallets or the system accounts. Each report is a sum of postings, so it is the same every time it
//! is asked for the same window: the ledger is append-only.
//!
//! - ledger summary (E118): per asset, what was issued, redeemed, expired and forfeited, and what is left;
//! - liability (E120): per program and asset (and bucket), the balance at an instant;
//! - rollforward (E121): per program and asset, the opening balance, every kind of movement in a window, and
//!   the closing balance, the lines summing exactly to closing − opening;
//! - expiration schedule: when the value held in lots expires, in calendar buckets.

use super::repo;
use crate::error::{Error, FieldError, Result};
use crate::ledger::EntryType;
use crate::money;
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page, PageParams};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;

/// E118's query: `from` and `to` come together and add the window's figures.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    pub program_id: Option<Uuid>,
    /// Window start, inclusive; requires `to`.
    pub from: Option<DateTime<Utc>>,
    /// Window end, inclusive; requires `from`.
    pub to: Option<DateTime<Utc>>,
    #[param(ignore)]
    pub page: PageParams,
}

/// One asset's totals. `current_balance` = `total_issued` − `total_redeemed` − `total_expired` −
/// `total_forfeited`, exactly. Issued is net of provisional accruals returned by their settlement or voided;
/// redeemed is redemptions and debits net of reversals.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryRow {
    pub asset_id: Uuid,
    pub asset_name: String,
    pub asset_symbol: String,
    pub total_issued: String,
    pub total_redeemed: String,
    pub total_expired: String,
    pub total_forfeited: String,
    pub current_balance: String,
    /// Participants whose balance of the asset is not zero.
    pub participant_count: i64,
    /// With a window: the balance just before `from`. Then `closing_balance` − `opening_balance` =
    /// `period_issued` − `period_redeemed` − `period_expired` − `period_forfeited` + `other_adjustments_net`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opening_balance: Option<String>,
    /// With a window: the balance at `to`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closing_balance: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_issued: Option<String>,
    /// With a window: redemptions and debits, before reversals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_redeemed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_expired: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_forfeited: Option<String>,
    /// With a window: reversals of redemptions, and movements between holders (transfers, holds, maturity).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_adjustments_net: Option<String>,
}

/// E118.
pub async fn ledger_summary(
    pool: &PgPool,
    actor: &Actor,
    q: SummaryQuery,
) -> Result<Page<SummaryRow>> {
    let rows = repo::ledger_summary(pool, actor.organization_id, &q).await?;
    let page = Page::from_rows(rows, q.page.limit, |r| Cursor::new("", r.asset_id));
    let windowed = q.from.is_some();
    Ok(page.map(|r| {
        let f = |amount| money::format(amount, r.scale);
        SummaryRow {
            asset_id: r.asset_id,
            asset_name: r.asset_name.clone(),
            asset_symbol: r.asset_symbol.clone(),
            total_issued: f(r.issued),
            total_redeemed: f(r.redeemed),
            total_expired: f(r.expired),
            total_forfeited: f(r.forfeited),
            current_balance: f(r.balance),
            participant_count: r.participant_count,
            opening_balance: windowed.then(|| f(r.opening)),
            closing_balance: windowed.then(|| f(r.closing)),
            period_issued: windowed.then(|| f(r.period_issued)),
            period_redeemed: windowed.then(|| f(r.period_redeemed)),
            period_expired: windowed.then(|| f(r.period_expired)),
            period_forfeited: windowed.then(|| f(r.period_forfeited)),
            other_adjustments_net: windowed.then(|| f(r.period_other)),
        }
    }))
}

/// E120's query.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiabilityQuery {
    /// The instant, inclusive; default now.
    pub as_of: Option<DateTime<Utc>>,
    pub program_id: Option<Uuid>,
    pub asset_id: Option<Uuid>,
    /// One row per bucket too.
    #[param(value_type = Option<bool>)]
    pub by_bucket: bool,
    #[param(ignore)]
    pub page: PageParams,
}

/// What a program owes in an asset (in one bucket with `by_bucket`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiabilityRow {
    pub program_id: Uuid,
    pub program_name: String,
    pub asset_id: Uuid,
    pub asset_name: String,
    pub asset_symbol: String,
    pub scale: i16,
    pub balance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::ledger::Bucket>)]
    pub bucket: Option<crate::ledger::Bucket>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Liability {
    /// The instant the balances are at.
    pub as_of: DateTime<Utc>,
    #[serde(flatten)]
    pub page: Page<LiabilityRow>,
}

/// E120: every program × asset (× bucket) with activity at or before `as_of`.
pub async fn liability(pool: &PgPool, actor: &Actor, q: LiabilityQuery) -> Result<Liability> {
    let as_of = q.as_of.unwrap_or_else(Utc::now);
    let rows = repo::liability(pool, actor.organization_id, as_of, &q).await?;
    let page = Page::from_rows(rows, q.page.limit, |r| Cursor::new(&r.row_key, r.asset_id));
    Ok(Liability {
        as_of,
        page: page.map(|r| LiabilityRow {
            balance: money::format(r.balance, r.scale),
            program_id: r.program_id,
            program_name: r.program_name,
            asset_id: r.asset_id,
            asset_name: r.asset_name,
            asset_symbol: r.asset_symbol,
            scale: r.scale,
            bucket: r.bucket,
        }),
    })
}

/// E121's query: the window is required.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RollforwardQuery {
    /// Window start, inclusive.
    pub from: DateTime<Utc>,
    /// Window end, inclusive.
    pub to: DateTime<Utc>,
    pub program_id: Option<Uuid>,
    pub asset_id: Option<Uuid>,
    #[param(ignore)]
    pub page: PageParams,
}

/// The lines of a rollforward. Each is signed as it moves the liability: what leaves it is negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Line {
    /// Credits by rules.
    Issued,
    /// Provisional accruals a settling credit returned to their source.
    IssuanceReturns,
    /// Redemptions out of participants' and groups' balances.
    Redeemed,
    /// DEBIT actions of rules.
    Debited,
    Expired,
    Forfeited,
    /// Provisional accruals voided.
    HoldsVoided,
    /// Redemptions into a ledger entity the program redeems into.
    RedemptionReceipts,
    /// Reversals back into participants' and groups' balances.
    RedemptionReversals,
    /// Reversals out of the ledger entity a redemption went to.
    ReversalClawbacks,
    /// Transfers between holders.
    TransfersNet,
    /// Holds, releases and maturity: value changing bucket.
    BucketMovementsNet,
    /// Credits and debits made by hand through the API (E40).
    AdjustmentsNet,
}

impl Line {
    /// The line a posting on a liability account belongs to: by what the entry did, whose account it is,
    /// whether a rule made it, and (for credits) its sign. `None`: it fits no line.
    pub fn of(action: EntryType, holder: &str, by_rule: bool, positive: bool) -> Option<Line> {
        let entity = holder == "LEDGER_ENTITY";
        Some(match action {
            EntryType::Credit | EntryType::Debit if !by_rule => Line::AdjustmentsNet,
            EntryType::Credit if positive => Line::Issued,
            EntryType::Credit => Line::IssuanceReturns,
            EntryType::Debit => Line::Debited,
            EntryType::Redemption if entity => Line::RedemptionReceipts,
            EntryType::Redemption => Line::Redeemed,
            EntryType::Reversal if entity => Line::ReversalClawbacks,
            EntryType::Reversal => Line::RedemptionReversals,
            EntryType::Expiration => Line::Expired,
            EntryType::Forfeit => Line::Forfeited,
            EntryType::VoidHold => Line::HoldsVoided,
            EntryType::Transfer => Line::TransfersNet,
            EntryType::Hold | EntryType::Release | EntryType::Maturity => Line::BucketMovementsNet,
            // Funding and burning move a program wallet, which holds no one's value.
            EntryType::Fund | EntryType::Burn => return None,
        })
    }
}

/// One program × asset: `opening_balance` + every line = `closing_balance`, exactly.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RollforwardRow {
    pub program_id: Uuid,
    pub program_name: String,
    pub asset_id: Uuid,
    pub asset_name: String,
    pub asset_symbol: String,
    pub scale: i16,
    /// The balance just before `from`.
    pub opening_balance: String,
    /// Credits by rules.
    pub issued: String,
    /// Redemptions out of participants' and groups' balances (negative).
    pub redeemed: String,
    /// DEBIT actions of rules (negative).
    pub debited: String,
    pub expired: String,
    pub forfeited: String,
    /// Provisional accruals voided (negative).
    pub holds_voided: String,
    /// Provisional accruals a settling credit returned to their source (negative).
    pub issuance_returns: String,
    /// Redemptions into a LEDGER_ENTITY redemption target, which holds them as a liability.
    pub redemption_receipts: String,
    /// Reversals back into participants' and groups' balances.
    pub redemption_reversals: String,
    /// Reversals out of a LEDGER_ENTITY redemption target (negative).
    pub reversal_clawbacks: String,
    pub transfers_net: String,
    /// Holds, releases and maturity.
    pub bucket_movements_net: String,
    /// Credits and debits made through the API (E40).
    pub adjustments_net: String,
    /// The balance at `to`.
    pub closing_balance: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rollforward {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    #[serde(flatten)]
    pub page: Page<RollforwardRow>,
}

/// E121. A posting that fits no line fails the report (409 `unclassified_activity`) rather than misstating it.
pub async fn rollforward(pool: &PgPool, actor: &Actor, q: RollforwardQuery) -> Result<Rollforward> {
    let rows = repo::rollforward_rows(pool, actor.organization_id, &q).await?;
    let page = Page::from_rows(rows, q.page.limit, |r| Cursor::new(&r.row_key, r.asset_id));
    let keys: Vec<(Uuid, Uuid)> = page
        .data
        .iter()
        .map(|r| (r.program_id, r.asset_id))
        .collect();
    let mut lines: HashMap<(Uuid, Uuid, Line), Decimal> = HashMap::new();
    for m in repo::rollforward_movements(pool, actor.organization_id, &q, &keys).await? {
        let line = EntryType::parse(&m.action_type)
            .and_then(|action| Line::of(action, &m.entity_type, m.by_rule, m.positive))
            .ok_or_else(|| Error::Conflict {
                code: "unclassified_activity",
                message: format!(
                    "a {} posting on a {} account of program {} fits no rollforward line",
                    m.action_type, m.entity_type, m.program_id
                ),
            })?;
        *lines.entry((m.program_id, m.asset_id, line)).or_default() += m.amount;
    }
    let mut rows = Vec::with_capacity(page.data.len());
    for r in &page.data {
        let line = |l| {
            lines
                .get(&(r.program_id, r.asset_id, l))
                .copied()
                .unwrap_or_default()
        };
        let moved: Decimal = lines
            .iter()
            .filter(|((p, a, _), _)| (*p, *a) == (r.program_id, r.asset_id))
            .map(|(_, amount)| *amount)
            .sum();
        if r.opening + moved != r.closing {
            return Err(Error::Internal(format!(
                "the rollforward of program {} asset {} does not reconcile: {} + {moved} ≠ {}",
                r.program_id, r.asset_id, r.opening, r.closing
            )));
        }
        let f = |amount| money::format(amount, r.scale);
        rows.push(RollforwardRow {
            program_id: r.program_id,
            program_name: r.program_name.clone(),
            asset_id: r.asset_id,
            asset_name: r.asset_name.clone(),
            asset_symbol: r.asset_symbol.clone(),
            scale: r.scale,
            opening_balance: f(r.opening),
            issued: f(line(Line::Issued)),
            redeemed: f(line(Line::Redeemed)),
            debited: f(line(Line::Debited)),
            expired: f(line(Line::Expired)),
            forfeited: f(line(Line::Forfeited)),
            holds_voided: f(line(Line::HoldsVoided)),
            issuance_returns: f(line(Line::IssuanceReturns)),
            redemption_receipts: f(line(Line::RedemptionReceipts)),
            redemption_reversals: f(line(Line::RedemptionReversals)),
            reversal_clawbacks: f(line(Line::ReversalClawbacks)),
            transfers_net: f(line(Line::TransfersNet)),
            bucket_movements_net: f(line(Line::BucketMovementsNet)),
            adjustments_net: f(line(Line::AdjustmentsNet)),
            closing_balance: f(r.closing),
        });
    }
    Ok(Rollforward {
        from: q.from,
        to: q.to,
        page: Page {
            data: rows,
            pagination: page.pagination,
        },
    })
}

crate::vocabulary!(
    /// The calendar unit of an expiration schedule's buckets (UTC).
    pub enum Granularity {
        Day = "day",
        Week = "week",
        Month = "month",
    }
);

/// The most buckets one schedule has: a window longer than this many granules is refused.
pub const MAX_BUCKETS: i64 = 400;

/// The expiration schedule's query: the window is required.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ScheduleQuery {
    /// Window start, inclusive.
    pub from: DateTime<Utc>,
    /// Window end, inclusive.
    pub to: DateTime<Utc>,
    /// Default month.
    #[param(inline, value_type = Option<Granularity>)]
    pub granularity: Granularity,
    pub program_id: Option<Uuid>,
    /// A LOT asset; SIMPLE assets have no lots to expire.
    pub asset_id: Option<Uuid>,
    #[param(ignore)]
    pub page: PageParams,
}

/// One calendar bucket of the window: what expires in it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleBucket {
    pub bucket_start: DateTime<Utc>,
    pub bucket_end: DateTime<Utc>,
    pub amount: String,
    pub lot_count: i64,
}

/// A LOT asset's outstanding value by when it expires: the buckets and the three figures outside them sum
/// exactly to `total_outstanding`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleRow {
    pub asset_id: Uuid,
    pub asset_name: String,
    pub asset_symbol: String,
    pub scale: i16,
    /// What the asset's lots hold now, in every bucket.
    pub total_outstanding: String,
    pub never_expiring: String,
    pub expiring_before_window: String,
    pub expiring_after_window: String,
    pub buckets: Vec<ScheduleBucket>,
}

/// The expiration schedule (concepts §20.5).
pub async fn expiration_schedule(
    pool: &PgPool,
    actor: &Actor,
    q: ScheduleQuery,
) -> Result<Page<ScheduleRow>> {
    if let Some(asset_id) = q.asset_id {
        let asset = crate::assets::get(pool, actor, asset_id).await?;
        if !asset.has_lots() {
            return Err(Error::invalid(FieldError::invalid(
                "asset_id",
                "a LOT asset",
                Some(asset_id.to_string()),
                "only LOT assets have lots that expire",
            )));
        }
    }
    let assets = repo::schedule_assets(pool, actor.organization_id, &q).await?;
    let page = Page::from_rows(assets, q.page.limit, |a| Cursor::new("", a.asset_id));
    let ids: Vec<Uuid> = page.data.iter().map(|a| a.asset_id).collect();
    let mut buckets: HashMap<Uuid, Vec<repo::BucketRow>> = HashMap::new();
    for b in repo::schedule_buckets(pool, actor.organization_id, &q, &ids).await? {
        buckets.entry(b.asset_id).or_default().push(b);
    }
    Ok(page.map(|a| {
        let f = |amount| money::format(amount, a.scale);
        let buckets = buckets
            .remove(&a.asset_id)
            .unwrap_or_default()
            .into_iter()
            .map(|b| ScheduleBucket {
                bucket_start: b.bucket_start,
                bucket_end: b.bucket_end,
                amount: f(b.amount),
                lot_count: b.lot_count,
            })
            .collect();
        ScheduleRow {
            asset_id: a.asset_id,
            asset_name: a.asset_name.clone(),
            asset_symbol: a.asset_symbol.clone(),
            scale: a.scale,
            total_outstanding: f(a.total),
            never_expiring: f(a.never),
            expiring_before_window: f(a.before),
            expiring_after_window: f(a.after),
            buckets,
        }
    }))
}
