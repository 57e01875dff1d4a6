use super::{Redemption, RedemptionFilter, RedemptionReversal, RedemptionStatus};
use crate::money::format;
use crate::pagination::{Order, PageParams};
use crate::programs::{RedemptionTarget, Target};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

#[derive(Debug, sqlx::FromRow)]
pub struct RedemptionRow {
    pub id: Uuid,
    pub participant_id: Uuid,
    pub program_id: Uuid,
    pub asset_id: Uuid,
    pub reward_id: Option<Uuid>,
    pub quantity: Option<i64>,
    pub unit_cost: Option<Decimal>,
    pub amount: Decimal,
    pub description: Option<String>,
    pub journal_entry_id: Uuid,
    pub target_type: RedemptionTarget,
    pub target_entity_id: Option<Uuid>,
    pub reversed_amount: Decimal,
    pub reversed_quantity: i64,
    pub status: RedemptionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub scale: i16,
}

impl RedemptionRow {
    /// Where the redemption sent its value: where its reversals take it back from.
    pub fn target(&self) -> Target {
        Target {
            kind: self.target_type,
            entity_id: self.target_entity_id,
        }
    }

    pub fn format(&self, amount: Decimal) -> String {
        format(amount, self.scale)
    }

    pub fn view(self) -> Redemption {
        Redemption {
            id: self.id,
            participant_id: self.participant_id,
            program_id: self.program_id,
            asset_id: self.asset_id,
            amount: self.format(self.amount),
            description: self.description.clone(),
            journal_entry_id: self.journal_entry_id,
            reward_id: self.reward_id,
            quantity: self.quantity,
            unit_cost: self.unit_cost.map(|cost| self.format(cost)),
            reversed_amount: self.format(self.reversed_amount),
            reversed_quantity: self.reversed_quantity,
            status: self.status,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct ReversalRow {
    pub id: Uuid,
    pub redemption_id: Uuid,
    pub amount: Decimal,
    pub quantity: Option<i64>,
    pub reason: String,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub scale: i16,
}

impl ReversalRow {
    pub fn view(self) -> RedemptionReversal {
        RedemptionReversal {
            id: self.id,
            redemption_id: self.redemption_id,
            amount: format(self.amount, self.scale),
            quantity: self.quantity,
            reason: self.reason,
            journal_entry_id: self.journal_entry_id,
            created_at: self.created_at,
        }
    }
}

pub struct NewRedemption {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub program_id: Uuid,
    pub participant_id: Uuid,
    pub asset_id: Uuid,
    /// A catalog redemption's reward, units and unit cost.
    pub item: Option<(Uuid, i64, Decimal)>,
    pub amount: Decimal,
    pub description: String,
    pub journal_entry_id: Uuid,
    pub target: Target,
}

const COLUMNS: &str = "r.id, r.participant_id, r.program_id, r.asset_id, r.reward_id, r.quantity, r.unit_cost, \
                       r.amount, r.description, r.journal_entry_id, r.target_type, r.target_entity_id, \
                       r.reversed_amount, r.reversed_quantity, r.status, r.created_at, r.updated_at, a.scale";

pub async fn insert(conn: &mut PgConnection, r: &NewRedemption) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO redemptions (id, organization_id, program_id, participant_id, asset_id, reward_id, quantity,
                                  unit_cost, amount, description, journal_entry_id, target_type, target_entity_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(r.id)
    .bind(r.organization_id)
    .bind(r.program_id)
    .bind(r.participant_id)
    .bind(r.asset_id)
    .bind(r.item.map(|(reward, _, _)| reward))
    .bind(r.item.map(|(_, units, _)| units))
    .bind(r.item.map(|(_, _, cost)| cost))
    .bind(r.amount)
    .bind(&r.description)
    .bind(r.journal_entry_id)
    .bind(r.target.kind)
    .bind(r.target.entity_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A redemption of the organization; `lock` takes its row for the rest of the transaction.
pub async fn find(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
    lock: bool,
) -> sqlx::Result<Option<RedemptionRow>> {
    let lock = if lock { " FOR NO KEY UPDATE OF r" } else { "" };
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM redemptions r JOIN assets a ON a.id = r.asset_id
          WHERE r.id = $1 AND r.organization_id = $2{lock}"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    participant: Uuid,
    filter: &RedemptionFilter,
    order: Order,
) -> sqlx::Result<Vec<RedemptionRow>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM redemptions r JOIN assets a ON a.id = r.asset_id WHERE r.participant_id = "
    ));
    q.push_bind(participant);
    if let Some(status) = filter.status {
        q.push(" AND r.status = ").push_bind(status);
    }
    if let Some(reward) = filter.reward_catalog_item_id {
        q.push(" AND r.reward_id = ").push_bind(reward);
    }
    crate::search::push_range(&mut q, "r.created_at", filter.from, filter.to);
    order.push(
        &mut q,
        "r.id",
        filter.page.cursor.clone(),
        filter.page.limit,
    );
    q.build_query_as().fetch_all(pool).await
}

/// The units of a reward a participant holds: redeemed and not reversed.
pub async fn units_held(
    conn: &mut PgConnection,
    reward_id: Uuid,
    participant: Uuid,
) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(quantity - reversed_quantity), 0)::bigint FROM redemptions
          WHERE reward_id = $1 AND participant_id = $2",
    )
    .bind(reward_id)
    .bind(participant)
    .fetch_one(conn)
    .await
}

/// Records a reversal of `(amount, units)` and what it leaves of the redemption.
pub async fn insert_reversal(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
    redemption: &RedemptionRow,
    (amount, units): (Decimal, Option<i64>),
    reason: &str,
    journal_entry_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "WITH reversal AS (
             INSERT INTO redemption_reversals (id, organization_id, redemption_id, amount, quantity, reason,
                                               journal_entry_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7))
         UPDATE redemptions
            SET reversed_amount = reversed_amount + $4,
                reversed_quantity = reversed_quantity + COALESCE($5, 0),
                status = CASE WHEN reversed_amount + $4 = amount THEN 'FULLY_REVERSED'
                              ELSE 'PARTIALLY_REVERSED' END,
                updated_at = now()
          WHERE id = $3",
    )
    .bind(id)
    .bind(organization_id)
    .bind(redemption.id)
    .bind(amount)
    .bind(units)
    .bind(reason)
    .bind(journal_entry_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn find_reversal(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<ReversalRow>> {
    sqlx::query_as(
        "SELECT v.id, v.redemption_id, v.amount, v.quantity, v.reason, v.journal_entry_id, v.created_at, a.scale
           FROM redemption_reversals v JOIN redemptions r ON r.id = v.redemption_id
           JOIN assets a ON a.id = r.asset_id
          WHERE v.id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn reversals(
    pool: &PgPool,
    redemption: Uuid,
    page: &PageParams,
    order: Order,
) -> sqlx::Result<Vec<ReversalRow>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT v.id, v.redemption_id, v.amount, v.quantity, v.reason, v.journal_entry_id, v.created_at, a.scale
           FROM redemption_reversals v JOIN redemptions r ON r.id = v.redemption_id
           JOIN assets a ON a.id = r.asset_id
          WHERE v.redemption_id = ",
    );
    q.push_bind(redemption);
    order.push(&mut q, "v.id", page.cursor.clone(), page.limit);
    q.build_query_as().fetch_all(pool).await
}
