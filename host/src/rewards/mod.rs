//! The rewards catalog (E102–E105): what a program's members can redeem. A UNIT_BASED reward costs quantity ×
//! `unit_cost` and may cap its stock (`max_total`) and what one member takes (`max_per_participant`); an
//! AMOUNT_BASED reward takes any amount from `unit_cost` up. Redemptions lock the reward's row while they take
//! stock, so the count is exact under any concurrency and only redemptions of one reward wait for each other.

mod repo;

use crate::error::{Error, FieldError, OnConstraint, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page, PageParams};
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

crate::vocabulary!(
    /// UNIT_BASED: quantity × unit_cost, with stock; AMOUNT_BASED: any amount from unit_cost up.
    pub enum RedemptionType {
        UnitBased = "UNIT_BASED",
        AmountBased = "AMOUNT_BASED",
    }
);
crate::vocabulary!(
    /// Only an ACTIVE reward inside its availability window is redeemable. OUT_OF_STOCK is set when
    /// `redeemed_count` reaches `max_total` and lifted when reversals or a larger cap bring stock back.
    pub enum RewardStatus {
        Draft = "DRAFT",
        Active = "ACTIVE",
        OutOfStock = "OUT_OF_STOCK",
        Archived = "ARCHIVED",
    }
);
crate::vocabulary!(
    /// The orders a reward list can be in.
    pub enum RewardSort {
        CreatedAt = "created_at",
        Name = "name",
    }
);

#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct Reward {
    pub id: Uuid,
    pub program_id: Uuid,
    pub asset_id: Uuid,
    #[schema(example = "Free coffee")]
    pub name: String,
    pub description: Option<String>,
    pub category: Option<String>,
    pub redemption_type: RedemptionType,
    /// The price of one unit; for AMOUNT_BASED rewards the least a redemption may take.
    #[schema(value_type = String, example = "100")]
    pub unit_cost: Decimal,
    pub status: RewardStatus,
    pub max_total: Option<i64>,
    pub max_per_participant: Option<i64>,
    /// UNIT_BASED: units redeemed and not reversed. AMOUNT_BASED: redemptions made.
    pub redeemed_count: i64,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub metadata: sqlx::types::Json<Value>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The asset's scale, which `unit_cost` is shown in.
    #[schema(ignore)]
    pub scale: i16,
}

impl Serialize for Reward {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "id": self.id,
            "program_id": self.program_id,
            "asset_id": self.asset_id,
            "name": self.name,
            "description": self.description,
            "category": self.category,
            "redemption_type": self.redemption_type,
            "unit_cost": crate::money::format(self.unit_cost, self.scale),
            "status": self.status,
            "max_total": self.max_total,
            "max_per_participant": self.max_per_participant,
            "redeemed_count": self.redeemed_count,
            "available_from": self.available_from,
            "available_until": self.available_until,
            "metadata": self.metadata.0,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
        .serialize(s)
    }
}

impl Reward {
    fn sold_out(&self) -> bool {
        self.max_total.is_some_and(|max| self.redeemed_count >= max)
    }

    /// ACTIVE and OUT_OF_STOCK follow the stock; DRAFT and ARCHIVED are the operator's to change.
    fn follow_stock(&mut self) {
        self.status = match self.status {
            RewardStatus::Active if self.sold_out() => RewardStatus::OutOfStock,
            RewardStatus::OutOfStock if !self.sold_out() => RewardStatus::Active,
            status => status,
        };
    }

    /// Whether a member may redeem it at `now`: 409 `reward_not_active`, `out_of_stock` or
    /// `reward_not_available` otherwise.
    pub fn check_redeemable(&self, now: DateTime<Utc>) -> Result<()> {
        let refuse = |code, message: String| Err(Error::Conflict { code, message });
        match self.status {
            RewardStatus::Active => {}
            RewardStatus::OutOfStock => {
                return refuse(
                    "out_of_stock",
                    format!("reward {} is out of stock", self.id),
                );
            }
            status => {
                return refuse(
                    "reward_not_active",
                    format!(
                        "reward {} is {status}: only an ACTIVE reward is redeemable",
                        self.id
                    ),
                );
            }
        }
        if self.available_from.is_some_and(|from| now < from)
            || self.available_until.is_some_and(|until| now > until)
        {
            return refuse(
                "reward_not_available",
                format!(
                    "reward {} is not redeemable outside its availability window",
                    self.id
                ),
            );
        }
        Ok(())
    }
}

/// A reward to create.
#[derive(utoipa::ToSchema)]
#[schema(as = CreateReward, example = json!({"name": "Free coffee", "redemption_type": "UNIT_BASED",
    "asset_id": "550e8400-e29b-41d4-a716-446655440001", "unit_cost": "100", "status": "ACTIVE", "max_total": 500}))]
pub struct NewReward {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    pub redemption_type: RedemptionType,
    /// Linked to the program.
    pub asset_id: Uuid,
    #[schema(value_type = crate::money::PositiveAmount)]
    pub unit_cost: Decimal,
    pub status: RewardStatus,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[schema(max_length = 100)]
    pub category: Option<String>,
    /// UNIT_BASED only; none is unlimited.
    #[schema(minimum = 1)]
    pub max_total: Option<i64>,
    /// UNIT_BASED only; none is unlimited.
    #[schema(minimum = 1)]
    pub max_per_participant: Option<i64>,
    pub available_from: Option<DateTime<Utc>>,
    pub available_until: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

/// Only the fields given change, `null` clears; `redemption_type` and `asset_id` never change.
#[derive(utoipa::ToSchema)]
#[schema(as = UpdateReward, example = json!({"status": "ARCHIVED"}))]
pub struct RewardPatch {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub description: Patch<String>,
    #[schema(value_type = Option<String>, max_length = 100)]
    pub category: Patch<String>,
    #[schema(value_type = Option<crate::money::PositiveAmount>)]
    pub unit_cost: Option<Decimal>,
    pub status: Option<RewardStatus>,
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub max_total: Patch<i64>,
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub max_per_participant: Patch<i64>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub available_from: Patch<DateTime<Utc>>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub available_until: Patch<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RewardFilter {
    #[param(inline)]
    pub status: Option<RewardStatus>,
    /// Show archived rewards too (a `status` filter does as well).
    #[param(value_type = Option<bool>)]
    pub include_archived: bool,
    /// Part of the name, case-insensitive.
    #[param(min_length = 1, max_length = 255)]
    pub search: Option<String>,
    #[param(inline)]
    pub sort_by: Option<RewardSort>,
    #[param(rename = "sort_dir", value_type = Option<crate::validation::SortDir>, inline)]
    pub ascending: bool,
    #[param(ignore)]
    pub page: PageParams,
}

fn name_taken(name: &str) -> impl FnOnce() -> Error + '_ {
    move || Error::Conflict {
        code: "conflict",
        message: format!("the program already has a reward named {name}"),
    }
}

/// E102: the asset must be linked to the program, and `unit_cost` must suit it.
pub async fn create(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    new: NewReward,
) -> Result<Reward> {
    crate::programs::get(pool, actor, program_id).await?;
    let mut conn = pool.acquire().await?;
    let asset =
        crate::assets::find_linked(&mut conn, actor.organization_id, program_id, new.asset_id)
            .await?
            .ok_or_else(|| {
                Error::invalid(FieldError::invalid(
                    "asset_id",
                    "an asset linked to the program",
                    Some(new.asset_id.to_string()),
                    "the asset is not linked to the program",
                ))
            })?;
    asset
        .check_amount("unit_cost", new.unit_cost)
        .map_err(Error::invalid)?;
    let mut reward = Reward {
        id: Uuid::now_v7(),
        program_id,
        asset_id: asset.id,
        name: new.name,
        description: new.description,
        category: new.category,
        redemption_type: new.redemption_type,
        unit_cost: new.unit_cost,
        status: new.status,
        max_total: new.max_total,
        max_per_participant: new.max_per_participant,
        redeemed_count: 0,
        available_from: new.available_from,
        available_until: new.available_until,
        metadata: sqlx::types::Json(Value::Object(new.metadata.unwrap_or_default())),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        scale: asset.scale,
    };
    reward.follow_stock();
    repo::insert(&mut conn, actor.organization_id, &reward)
        .await
        .on_constraint("rewards_name_unique", name_taken(&reward.name))?;
    get(pool, actor, program_id, reward.id).await
}

/// E104.
pub async fn get(pool: &PgPool, actor: &Actor, program_id: Uuid, id: Uuid) -> Result<Reward> {
    let mut conn = pool.acquire().await?;
    repo::find(&mut conn, actor.organization_id, program_id, id, false)
        .await?
        .ok_or(Error::NotFound("reward"))
}

/// E103: archived rewards are hidden unless asked for.
pub async fn list(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    filter: RewardFilter,
) -> Result<Page<Reward>> {
    crate::programs::get(pool, actor, program_id).await?;
    let by_name = filter.sort_by == Some(RewardSort::Name);
    let order = Order {
        column: if by_name { "r.name" } else { "r.created_at" },
        sql_type: if by_name { "text" } else { "timestamptz" },
        descending: !filter.ascending,
    };
    let rows = repo::list(pool, program_id, &filter, order).await?;
    Ok(Page::from_rows(rows, filter.page.limit, |r| {
        if by_name {
            Cursor::new(&r.name, r.id)
        } else {
            Cursor::at(r.created_at, r.id)
        }
    }))
}

/// E105. Caps apply to UNIT_BASED rewards only, and a window must end after it starts.
pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    id: Uuid,
    patch: RewardPatch,
) -> Result<Reward> {
    let mut tx = pool.begin().await?;
    let mut reward = repo::find(&mut tx, actor.organization_id, program_id, id, true)
        .await?
        .ok_or(Error::NotFound("reward"))?;
    if let Some(name) = patch.name {
        reward.name = name;
    }
    patch.description.apply(&mut reward.description);
    patch.category.apply(&mut reward.category);
    if let Some(cost) = patch.unit_cost {
        let asset = crate::assets::get(pool, actor, reward.asset_id).await?;
        asset
            .check_amount("unit_cost", cost)
            .map_err(Error::invalid)?;
        reward.unit_cost = cost;
    }
    patch.max_total.apply(&mut reward.max_total);
    patch
        .max_per_participant
        .apply(&mut reward.max_per_participant);
    patch.available_from.apply(&mut reward.available_from);
    patch.available_until.apply(&mut reward.available_until);
    if let Some(metadata) = patch.metadata {
        reward.metadata = sqlx::types::Json(Value::Object(metadata));
    }
    check_shape(&reward)?;
    let explicit_out_of_stock = patch.status == Some(RewardStatus::OutOfStock);
    if let Some(status) = patch.status {
        reward.status = status;
    }
    if !explicit_out_of_stock {
        reward.follow_stock();
    }
    repo::save(&mut tx, &reward)
        .await
        .on_constraint("rewards_name_unique", name_taken(&reward.name))?;
    tx.commit().await?;
    get(pool, actor, program_id, id).await
}

/// What a patched reward must still be: caps on UNIT_BASED rewards only, a window that ends after it starts.
fn check_shape(reward: &Reward) -> Result<()> {
    let mut errors = Vec::new();
    if reward.redemption_type == RedemptionType::AmountBased {
        for (field, cap) in [
            ("max_total", reward.max_total),
            ("max_per_participant", reward.max_per_participant),
        ] {
            if cap.is_some() {
                errors.push(caps_unit_based_only(field));
            }
        }
    }
    if let (Some(from), Some(until)) = (reward.available_from, reward.available_until)
        && from >= until
    {
        errors.push(window_backwards());
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(Error::Invalid(errors)),
    }
}

pub fn caps_unit_based_only(field: &str) -> FieldError {
    FieldError::invalid(
        field,
        "absent for AMOUNT_BASED rewards",
        None,
        format!("{field} caps UNIT_BASED rewards only; AMOUNT_BASED rewards have no stock"),
    )
}

pub fn window_backwards() -> FieldError {
    FieldError::invalid(
        "available_until",
        "after available_from",
        None,
        "available_until must be after available_from",
    )
}

/// Locks a reward of the program for a redemption or a reversal, in the caller's transaction, after the
/// participant's lock (the order every writer takes them in).
pub async fn lock(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    id: Uuid,
) -> Result<Reward> {
    repo::find(conn, organization_id, program_id, id, true)
        .await?
        .ok_or(Error::NotFound("reward"))
}

/// A reward of the organization, unlocked: what a redemption reads before it takes locks.
pub async fn peek(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    id: Uuid,
) -> Result<Reward> {
    repo::find(conn, organization_id, program_id, id, false)
        .await?
        .ok_or(Error::NotFound("reward"))
}

/// Takes `units` of a locked reward's stock for a member who already holds `members_units` of it: 409
/// `out_of_stock` or `redemption_limit_exceeded` beyond its caps. Reaching `max_total` makes it OUT_OF_STOCK.
pub async fn take_stock(
    conn: &mut PgConnection,
    reward: &mut Reward,
    units: i64,
    members_units: i64,
) -> Result<()> {
    if let Some(max) = reward.max_total
        && reward.redeemed_count + units > max
    {
        return Err(Error::Conflict {
            code: "out_of_stock",
            message: format!(
                "reward {} has {} left",
                reward.id,
                (max - reward.redeemed_count).max(0)
            ),
        });
    }
    if let Some(max) = reward.max_per_participant
        && members_units + units > max
    {
        return Err(Error::Conflict {
            code: "redemption_limit_exceeded",
            message: format!(
                "a participant may redeem at most {max} of reward {}; this one holds {members_units}",
                reward.id
            ),
        });
    }
    reward.redeemed_count += units;
    reward.follow_stock();
    Ok(repo::save_stock(conn, reward).await?)
}

/// Gives `units` back to a locked reward's stock (a reversal); an OUT_OF_STOCK reward may become ACTIVE.
pub async fn return_stock(conn: &mut PgConnection, reward: &mut Reward, units: i64) -> Result<()> {
    reward.redeemed_count = (reward.redeemed_count - units).max(0);
    reward.follow_stock();
    Ok(repo::save_stock(conn, reward).await?)
}
