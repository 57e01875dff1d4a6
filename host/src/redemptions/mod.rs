//! Redemptions (E49–E54): a member spends AVAILABLE value, as an amount or on a catalog reward, and the value
//! goes to the program's redemption target; reversals give it back, in full or in parts. Each is one journal
//! entry written by `movement` under the participant's lock, with the reward's row locked when stock moves.
//! On LOT assets a redemption consumes lots oldest first and its reversals restore those same lots, the last
//! taken first. The redemption and reversal records are what `redemption.completed` and `redemption.reversed`
//! report.

mod repo;

use crate::error::{Error, FieldError, Result};
use crate::holders::Holder;
use crate::idempotency::{self, Claim, Key};
use crate::movement::{self, Account, Kind, Movement, Origin};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page, PageParams};
use crate::rewards::{self, RedemptionType, Reward};
use crate::webhooks::{self, Notice, WebhookEventType};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

crate::vocabulary!(
    /// How much of a redemption reversals have given back.
    pub enum RedemptionStatus {
        Completed = "COMPLETED",
        PartiallyReversed = "PARTIALLY_REVERSED",
        FullyReversed = "FULLY_REVERSED",
    }
);

/// A redemption as E49–E52 answer it; amounts are decimal strings in the asset's scale.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Redemption {
    pub id: Uuid,
    pub participant_id: Uuid,
    pub program_id: Uuid,
    pub asset_id: Uuid,
    /// The total debited.
    #[schema(example = "200")]
    pub amount: String,
    pub description: Option<String>,
    pub journal_entry_id: Uuid,
    /// Catalog redemptions only, with `quantity` and the `unit_cost` paid.
    pub reward_id: Option<Uuid>,
    pub quantity: Option<i64>,
    pub unit_cost: Option<String>,
    pub reversed_amount: String,
    pub reversed_quantity: i64,
    pub status: RedemptionStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One reversal of a redemption (E53, E54).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedemptionReversal {
    pub id: Uuid,
    pub redemption_id: Uuid,
    #[schema(example = "100")]
    pub amount: String,
    /// UNIT_BASED redemptions only.
    pub quantity: Option<i64>,
    pub reason: String,
    pub journal_entry_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// E49: an amount of an asset, with no reward.
#[derive(utoipa::ToSchema)]
#[schema(as = RedeemAmount, example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000",
    "asset_id": "550e8400-e29b-41d4-a716-446655440001", "amount": "500", "description": "Statement credit"}))]
pub struct AmountRedemption {
    pub program_id: Uuid,
    pub asset_id: Uuid,
    #[schema(value_type = crate::money::PositiveAmount)]
    pub amount: Decimal,
    #[schema(min_length = 1, max_length = 500)]
    pub description: String,
    /// A repeat with the same key and body returns the first answer with 200.
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

/// E50: a catalog reward; `quantity` for UNIT_BASED rewards (default 1), `amount` for AMOUNT_BASED ones.
#[derive(utoipa::ToSchema)]
#[schema(as = RedeemItem, example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000",
    "reward_id": "550e8400-e29b-41d4-a716-446655440002", "quantity": 2}))]
pub struct ItemRedemption {
    pub program_id: Uuid,
    pub reward_id: Uuid,
    /// UNIT_BASED only; default 1.
    #[schema(minimum = 1)]
    pub quantity: Option<i64>,
    /// AMOUNT_BASED only, and required there: at least the reward's `unit_cost`.
    #[schema(value_type = Option<crate::money::PositiveAmount>)]
    pub amount: Option<Decimal>,
    /// Default "Redeemed: " and the reward's name.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

/// E53: omit `amount` and `quantity` to reverse what is left; a partial reversal gives `quantity` for
/// UNIT_BASED redemptions and `amount` for the others.
#[derive(utoipa::ToSchema)]
#[schema(as = ReverseRedemption, example = json!({"reason": "Order cancelled", "quantity": 1}))]
pub struct ReversalRequest {
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
    #[schema(value_type = Option<crate::money::PositiveAmount>)]
    pub amount: Option<Decimal>,
    #[schema(minimum = 1)]
    pub quantity: Option<i64>,
    #[schema(min_length = 1, max_length = 255)]
    pub idempotency_key: Option<String>,
}

/// E51's filters.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RedemptionFilter {
    #[param(inline)]
    pub status: Option<RedemptionStatus>,
    pub reward_catalog_item_id: Option<Uuid>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created at or before.
    pub to: Option<DateTime<Utc>>,
    #[param(ignore)]
    pub page: PageParams,
}

/// What a redemption spends, once the request is read.
enum Spend {
    Amount {
        asset_id: Uuid,
        amount: Decimal,
        description: String,
    },
    Item {
        reward_id: Uuid,
        quantity: Option<i64>,
        amount: Option<Decimal>,
        description: Option<String>,
    },
}

impl Spend {
    /// What the request means, for its idempotency key: a replay means the same.
    fn meaning(&self, participant: Uuid) -> serde_json::Value {
        match self {
            Spend::Amount {
                asset_id,
                amount,
                description,
            } => json!({"participant_id": participant, "asset_id": asset_id,
                "amount": amount.normalize().to_string(), "description": description}),
            Spend::Item {
                reward_id,
                quantity,
                amount,
                description,
            } => {
                json!({"participant_id": participant, "reward_id": reward_id, "quantity": quantity,
                "amount": amount.map(|a| a.normalize().to_string()), "description": description})
            }
        }
    }
}

/// E49. Returns the redemption and whether it replays an earlier request with the same key.
pub async fn redeem_amount(
    pool: &PgPool,
    actor: &Actor,
    participant: Uuid,
    r: AmountRedemption,
) -> Result<(Redemption, bool)> {
    let spend = Spend::Amount {
        asset_id: r.asset_id,
        amount: r.amount,
        description: r.description,
    };
    redeem(
        pool,
        actor,
        (participant, r.program_id),
        spend,
        r.idempotency_key,
    )
    .await
}

/// E50.
pub async fn redeem_item(
    pool: &PgPool,
    actor: &Actor,
    participant: Uuid,
    r: ItemRedemption,
) -> Result<(Redemption, bool)> {
    let spend = Spend::Item {
        reward_id: r.reward_id,
        quantity: r.quantity,
        amount: r.amount,
        description: r.description,
    };
    redeem(
        pool,
        actor,
        (participant, r.program_id),
        spend,
        r.idempotency_key,
    )
    .await
}

/// The participant's redemption in the program, under an optional idempotency key.
async fn redeem(
    pool: &PgPool,
    actor: &Actor,
    (participant, program_id): (Uuid, Uuid),
    spend: Spend,
    idempotency_key: Option<String>,
) -> Result<(Redemption, bool)> {
    let request = spend.meaning(participant);
    let mut tx = pool.begin().await?;
    let key = idempotency_key.as_deref().map(|key| Key {
        organization_id: actor.organization_id,
        program_id,
        operation: "REDEMPTION",
        key,
    });
    if let Some(key) = &key
        && let Claim::Replay(response) = idempotency::claim(&mut tx, key, &request).await?
    {
        return Ok((response, true));
    }
    let org = actor.organization_id;
    let target = crate::programs::redemption_target(&mut tx, org, program_id).await?;
    // The reward's asset never changes, so it can be read before the participant's lock, which comes first.
    let asset_id = match &spend {
        Spend::Amount { asset_id, .. } => *asset_id,
        Spend::Item { reward_id, .. } => {
            rewards::peek(&mut tx, org, program_id, *reward_id)
                .await?
                .asset_id
        }
    };
    let asset = crate::balances::prepare(
        &mut tx,
        actor,
        &[Holder::Participant(participant)],
        program_id,
        asset_id,
        true,
    )
    .await?;
    let (amount, description, item) = match spend {
        Spend::Amount {
            amount,
            description,
            ..
        } => (amount, description, None),
        Spend::Item {
            reward_id,
            quantity,
            amount,
            description,
        } => {
            let mut reward = rewards::lock(&mut tx, org, program_id, reward_id).await?;
            reward.check_redeemable(Utc::now())?;
            let (units, cost) = price(&reward, quantity, amount)?;
            let held = repo::units_held(&mut tx, reward.id, participant).await?;
            rewards::take_stock(&mut tx, &mut reward, units, held).await?;
            let description = description.unwrap_or_else(|| format!("Redeemed: {}", reward.name));
            let item = (reward.id, units, reward.unit_cost);
            (cost, description, Some(item))
        }
    };
    let moved = movement::apply(
        &mut tx,
        &Movement {
            organization_id: org,
            program_id,
            asset: &asset,
            account: Account::Holder(Holder::Participant(participant)),
            kind: Kind::Redeem {
                amount,
                target: target.owner()?,
            },
            origin: Origin::Operation {
                api_key_id: actor.api_key_id,
            },
            description: Some(description.clone()),
            known_clear: false,
        },
    )
    .await?;
    let record = repo::NewRedemption {
        id: Uuid::now_v7(),
        organization_id: org,
        program_id,
        participant_id: participant,
        asset_id: asset.id,
        item,
        amount,
        description,
        journal_entry_id: moved.journal_entry_id,
        target,
    };
    repo::insert(&mut tx, &record).await?;
    let redemption = repo::find(&mut tx, org, record.id, false)
        .await?
        .ok_or(Error::NotFound("redemption"))?
        .view();
    let kind = WebhookEventType::RedemptionCompleted;
    webhooks::emit(&mut tx, &[Notice::new(org, kind, &redemption)]).await?;
    if let Some(key) = &key {
        idempotency::remember(&mut tx, key, &redemption).await?;
    }
    tx.commit().await?;
    Ok((redemption, false))
}

/// Units taken from stock and the cost: quantity × unit_cost for UNIT_BASED rewards; for AMOUNT_BASED ones
/// an amount of at least unit_cost, counted as one redemption.
fn price(
    reward: &Reward,
    quantity: Option<i64>,
    amount: Option<Decimal>,
) -> Result<(i64, Decimal)> {
    let scale = reward.scale;
    match (reward.redemption_type, quantity, amount) {
        (RedemptionType::UnitBased, quantity, None) => {
            let units = quantity.unwrap_or(1);
            let cost = reward
                .unit_cost
                .checked_mul(Decimal::from(units))
                .ok_or_else(|| too_many(units))?;
            Ok((units, cost))
        }
        (RedemptionType::UnitBased, _, Some(_)) => Err(Error::invalid(FieldError::invalid(
            "amount",
            "absent for UNIT_BASED rewards",
            None,
            "a UNIT_BASED reward costs quantity × unit_cost; give quantity, not amount",
        ))),
        (RedemptionType::AmountBased, Some(_), _) => Err(Error::invalid(FieldError::invalid(
            "quantity",
            "absent for AMOUNT_BASED rewards",
            None,
            "an AMOUNT_BASED reward takes an amount; give amount, not quantity",
        ))),
        (RedemptionType::AmountBased, None, None) => {
            Err(Error::invalid(FieldError::required("amount")))
        }
        (RedemptionType::AmountBased, None, Some(amount)) if amount < reward.unit_cost => {
            Err(Error::invalid(FieldError::invalid(
                "amount",
                format!("at least {}", crate::money::format(reward.unit_cost, scale)),
                Some(amount.to_string()),
                "amount must be at least the reward's unit_cost",
            )))
        }
        (RedemptionType::AmountBased, None, Some(amount)) => Ok((1, amount)),
    }
}

fn too_many(units: i64) -> Error {
    Error::invalid(FieldError::invalid(
        "quantity",
        "a quantity whose cost is an amount",
        Some(units.to_string()),
        "quantity × unit_cost is too large",
    ))
}

/// E52.
pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Redemption> {
    let mut conn = pool.acquire().await?;
    Ok(repo::find(&mut conn, actor.organization_id, id, false)
        .await?
        .ok_or(Error::NotFound("redemption"))?
        .view())
}

/// E51: the participant's redemptions, newest first.
pub async fn list(
    pool: &PgPool,
    actor: &Actor,
    participant: Uuid,
    filter: RedemptionFilter,
) -> Result<Page<Redemption>> {
    crate::participants::require(pool, actor, participant).await?;
    let order = Order {
        column: "r.created_at",
        sql_type: "timestamptz",
        descending: true,
    };
    let rows = repo::list(pool, participant, &filter, order).await?;
    let page = Page::from_rows(rows, filter.page.limit, |r| Cursor::at(r.created_at, r.id));
    Ok(page.map(repo::RedemptionRow::view))
}

/// E54: a redemption's reversals, oldest first.
pub async fn reversals(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    page: PageParams,
) -> Result<Page<RedemptionReversal>> {
    get(pool, actor, id).await?;
    let order = Order {
        column: "v.created_at",
        sql_type: "timestamptz",
        descending: false,
    };
    let rows = repo::reversals(pool, id, &page, order).await?;
    let page = Page::from_rows(rows, page.limit, |r| Cursor::at(r.created_at, r.id));
    Ok(page.map(repo::ReversalRow::view))
}

/// E53. What is left of the redemption bounds every reversal; a UNIT_BASED redemption is reversed by
/// quantity and gives its units back to the reward's stock.
pub async fn reverse(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    r: ReversalRequest,
) -> Result<(RedemptionReversal, bool)> {
    let org = actor.organization_id;
    let mut tx = pool.begin().await?;
    let found = repo::find(&mut tx, org, id, false)
        .await?
        .ok_or(Error::NotFound("redemption"))?;
    let key = r.idempotency_key.as_deref().map(|key| Key {
        organization_id: org,
        program_id: found.program_id,
        operation: "REDEMPTION_REVERSAL",
        key,
    });
    let request = json!({"redemption_id": id, "reason": r.reason, "quantity": r.quantity,
        "amount": r.amount.map(|a| a.normalize().to_string())});
    if let Some(key) = &key
        && let Claim::Replay(response) = idempotency::claim(&mut tx, key, &request).await?
    {
        return Ok((response, true));
    }
    let asset = crate::balances::prepare(
        &mut tx,
        actor,
        &[Holder::Participant(found.participant_id)],
        found.program_id,
        found.asset_id,
        false,
    )
    .await?;
    let mut reward = match found.reward_id {
        Some(reward_id) => Some(rewards::lock(&mut tx, org, found.program_id, reward_id).await?),
        None => None,
    };
    let redemption = repo::find(&mut tx, org, id, true)
        .await?
        .ok_or(Error::NotFound("redemption"))?;
    let by_units = reward
        .as_ref()
        .is_some_and(|reward| reward.redemption_type == RedemptionType::UnitBased);
    let (amount, quantity) = redemption.portion(by_units, r.amount, r.quantity)?;
    let target = redemption.target().owner()?;
    let moved = movement::apply(
        &mut tx,
        &Movement {
            organization_id: org,
            program_id: redemption.program_id,
            asset: &asset,
            account: Account::Holder(Holder::Participant(redemption.participant_id)),
            kind: Kind::Unredeem {
                amount,
                target,
                redemption: redemption.journal_entry_id,
            },
            origin: Origin::Operation {
                api_key_id: actor.api_key_id,
            },
            description: Some(r.reason.clone()),
            known_clear: false,
        },
    )
    .await?;
    let reversal_id = Uuid::now_v7();
    repo::insert_reversal(
        &mut tx,
        org,
        reversal_id,
        &redemption,
        (amount, quantity),
        &r.reason,
        moved.journal_entry_id,
    )
    .await?;
    if let (Some(reward), Some(units)) = (reward.as_mut(), quantity) {
        rewards::return_stock(&mut tx, reward, units).await?;
    }
    let reversal = repo::find_reversal(&mut tx, reversal_id)
        .await?
        .ok_or(Error::NotFound("redemption reversal"))?
        .view();
    let reversed = Reversed {
        redemption: repo::find(&mut tx, org, id, false)
            .await?
            .ok_or(Error::NotFound("redemption"))?
            .view(),
        reversal: &reversal,
    };
    let kind = WebhookEventType::RedemptionReversed;
    webhooks::emit(&mut tx, &[Notice::new(org, kind, &reversed)]).await?;
    if let Some(key) = &key {
        idempotency::remember(&mut tx, key, &reversal).await?;
    }
    tx.commit().await?;
    Ok((reversal, false))
}

/// The data of redemption.reversed: the redemption as it is now, and the reversal that changed it.
#[derive(Serialize)]
struct Reversed<'a> {
    redemption: Redemption,
    reversal: &'a RedemptionReversal,
}

impl repo::RedemptionRow {
    /// The amount and units a reversal gives back: what is left when neither is asked for; otherwise the
    /// quantity (by units) or the amount asked for, which what is left must cover.
    fn portion(
        &self,
        by_units: bool,
        amount: Option<Decimal>,
        quantity: Option<i64>,
    ) -> Result<(Decimal, Option<i64>)> {
        let left = self.amount - self.reversed_amount;
        let units_left = self.quantity.map(|q| q - self.reversed_quantity);
        if left <= Decimal::ZERO {
            return Err(Error::Conflict {
                code: "already_reversed",
                message: format!("redemption {} is already fully reversed", self.id),
            });
        }
        let exceeds = |field: &str, asked: String, left: String| {
            Err(Error::Conflict {
                code: "reversal_exceeds_redemption",
                message: format!(
                    "{field} {asked} is more than the {left} left to reverse of redemption {}",
                    self.id
                ),
            })
        };
        match (by_units, amount, quantity) {
            (true, Some(_), _) => Err(Error::invalid(FieldError::invalid(
                "amount",
                "absent for UNIT_BASED redemptions",
                None,
                "a UNIT_BASED redemption is reversed by quantity",
            ))),
            (false, _, Some(_)) => Err(Error::invalid(FieldError::invalid(
                "quantity",
                "absent",
                None,
                "only UNIT_BASED redemptions are reversed by quantity; give amount",
            ))),
            (true, None, Some(units)) => {
                let units_left = units_left.unwrap_or_default();
                if units > units_left {
                    return exceeds("quantity", units.to_string(), units_left.to_string());
                }
                let unit_cost = self.unit_cost.unwrap_or_default();
                Ok((unit_cost * Decimal::from(units), Some(units)))
            }
            (false, Some(amount), None) => {
                if amount > left {
                    return exceeds("amount", self.format(amount), self.format(left));
                }
                Ok((amount, None))
            }
            (true, None, None) => Ok((left, units_left)),
            (false, None, None) => Ok((left, None)),
        }
    }
}
