//! Assets: the units of value (points, credits, cash). Mode, issuance policy and scale shape the ledger and
//! never change after creation.

mod repo;

use crate::error::{Error, FieldError, OnConstraint, Result};
use crate::money::{self, PositiveAmount};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page, PageParams};
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

crate::vocabulary!(
    /// SIMPLE balances are one number; LOT balances are lots with their own expiry.
    pub enum InventoryMode {
        Simple = "SIMPLE",
        Lot = "LOT",
    }
);
crate::vocabulary!(
    /// UNLIMITED assets are issued on demand; PREFUNDED ones are drawn from the program wallet.
    pub enum IssuancePolicy {
        Unlimited = "UNLIMITED",
        Prefunded = "PREFUNDED",
    }
);
crate::vocabulary!(
    /// An archived asset can no longer be moved or changed.
    pub enum AssetStatus {
        Active = "ACTIVE",
        Archived = "ARCHIVED",
    }
);

#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct Asset {
    pub id: Uuid,
    #[schema(example = "Points")]
    pub name: String,
    #[schema(example = "PTS")]
    pub symbol: String,
    pub inventory_mode: InventoryMode,
    pub issuance_policy: IssuancePolicy,
    #[schema(minimum = 0, maximum = 18)]
    pub scale: i16,
    /// A decimal string at the asset's scale.
    #[schema(value_type = Option<String>, example = "1000.00")]
    pub max_transaction_amount: Option<Decimal>,
    pub program_ids: Vec<Uuid>,
    pub status: AssetStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Asset {
    /// Where credits of this asset in `program_id` come from, and debits return to: the program wallet for
    /// PREFUNDED assets, the organization's issuance account for UNLIMITED ones.
    pub fn source(&self, program_id: Uuid) -> crate::ledger::Owner {
        if self.issuance_policy == IssuancePolicy::Prefunded {
            crate::ledger::Owner::Program(program_id)
        } else {
            crate::ledger::Owner::Issuance
        }
    }

    /// Whether balances of this asset are lots.
    pub fn has_lots(&self) -> bool {
        self.inventory_mode == InventoryMode::Lot
    }

    pub fn format(&self, amount: Decimal) -> String {
        money::format(amount, self.scale)
    }

    /// Checks an amount moved in one transaction: positive, within scale, within `max_transaction_amount`.
    pub fn check_amount(&self, field: &str, amount: Decimal) -> Result<(), FieldError> {
        if amount <= Decimal::ZERO {
            return Err(FieldError::invalid(
                field,
                "positive amount",
                Some(amount.to_string()),
                "amount must be positive",
            ));
        }
        if !money::fits_scale(amount, self.scale) {
            return Err(FieldError::invalid(
                field,
                format!("at most {} decimal places", self.scale),
                Some(amount.to_string()),
                "amount exceeds asset scale",
            )
            .with_reason("invalid_scale"));
        }
        if let Some(max) = self.max_transaction_amount.filter(|max| amount > *max) {
            return Err(FieldError::invalid(
                field,
                format!("at most {}", self.format(max)),
                Some(amount.to_string()),
                "amount exceeds the asset's max_transaction_amount",
            ));
        }
        Ok(())
    }
}

/// The wire form: amounts as strings at the asset's scale.
impl Serialize for Asset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "id": self.id,
            "name": self.name,
            "symbol": self.symbol,
            "inventory_mode": self.inventory_mode,
            "issuance_policy": self.issuance_policy,
            "scale": self.scale,
            "max_transaction_amount": self.max_transaction_amount.map(|m| self.format(m)),
            "program_ids": self.program_ids,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted_at": self.deleted_at,
        })
        .serialize(s)
    }
}

/// A new asset, linked to `program_id`.
#[derive(utoipa::ToSchema)]
#[schema(as = CreateAsset, example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000",
    "name": "Points", "symbol": "PTS", "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0}))]
pub struct NewAsset {
    pub program_id: Uuid,
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// Letters and digits.
    #[schema(min_length = 1, max_length = 16, pattern = "^[A-Za-z0-9]+$")]
    pub symbol: String,
    pub inventory_mode: InventoryMode,
    pub issuance_policy: IssuancePolicy,
    #[schema(value_type = i64, minimum = 0, maximum = 18)]
    pub scale: i16,
    /// Positive.
    #[schema(value_type = Option<PositiveAmount>)]
    pub max_transaction_amount: Option<Decimal>,
}

#[derive(Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetFilter {
    pub program_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<AssetStatus>,
    /// Part of the name or symbol, case-insensitive.
    #[param(min_length = 1, max_length = 255)]
    pub search: Option<String>,
    #[param(ignore)]
    pub page: PageParams,
}

crate::vocabulary!(
    /// The one status a change can set: archiving cannot be undone.
    pub enum ArchiveStatus {
        Archived = "ARCHIVED",
    }
);

/// Only `name`, `max_transaction_amount` and archiving can change; at least one is required.
#[derive(utoipa::ToSchema)]
#[schema(as = UpdateAsset)]
pub struct AssetPatch {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    /// Archiving cannot be undone.
    pub status: Option<ArchiveStatus>,
    /// Positive; null removes the limit.
    #[schema(value_type = Option<PositiveAmount>, nullable)]
    pub max_transaction_amount: Patch<Decimal>,
}

pub async fn create(pool: &PgPool, actor: &Actor, new: NewAsset) -> Result<Asset> {
    if let Some(max) = new.max_transaction_amount {
        check_max_scale(max, new.scale)?;
    }
    crate::programs::get(pool, actor, new.program_id).await?;
    let mut tx = pool.begin().await?;
    let id = Uuid::now_v7();
    repo::insert(&mut tx, actor.organization_id, id, &new)
        .await
        .on_constraint("assets_symbol_unique", || {
            Error::conflict(format!(
                "an asset with symbol {} already exists",
                new.symbol
            ))
        })?;
    crate::ledger::open_system_accounts(&mut tx, actor.organization_id, id).await?;
    tx.commit().await?;
    get(pool, actor, id).await
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Asset> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("asset"))
}

pub async fn list(pool: &PgPool, actor: &Actor, filter: AssetFilter) -> Result<Page<Asset>> {
    let order = Order {
        column: "a.created_at",
        sql_type: "timestamptz",
        descending: true,
    };
    let rows = repo::list(pool, actor.organization_id, &filter, order).await?;
    Ok(Page::from_rows(rows, filter.page.limit, |a| {
        Cursor::at(a.created_at, a.id)
    }))
}

pub async fn update(pool: &PgPool, actor: &Actor, id: Uuid, patch: AssetPatch) -> Result<Asset> {
    let current = get(pool, actor, id).await?;
    if let Patch::Set(max) = patch.max_transaction_amount {
        check_max_scale(max, current.scale)?;
    }
    if current.status == AssetStatus::Archived {
        return Err(Error::conflict("archived assets cannot be changed"));
    }
    repo::update(pool, actor.organization_id, id, &patch).await?;
    get(pool, actor, id).await
}

fn check_max_scale(max: Decimal, scale: i16) -> Result<()> {
    if money::fits_scale(max, scale) {
        return Ok(());
    }
    Err(Error::invalid(
        FieldError::invalid(
            "max_transaction_amount",
            format!("at most {scale} decimal places"),
            Some(max.to_string()),
            "max_transaction_amount exceeds the asset's scale",
        )
        .with_reason("invalid_scale"),
    ))
}

/// Links an existing asset of the organization to a program; linking twice is a conflict.
pub async fn link_to_program(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    asset_id: Uuid,
) -> Result<Asset> {
    crate::programs::get(pool, actor, program_id).await?;
    get(pool, actor, asset_id).await?;
    repo::link_asset(pool, actor.organization_id, program_id, asset_id)
        .await
        .on_constraint("program_assets_pkey", || {
            Error::conflict("asset is already linked to this program")
        })?;
    get(pool, actor, asset_id).await
}

/// E7: unlinks an asset from a program, which only an asset no value has moved in there, and no rule of the
/// program names, can leave. The program's row lock orders this with rule changes, which take it too.
pub async fn unlink_from_program(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    asset_id: Uuid,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    crate::programs::lock_for_update(&mut tx, actor.organization_id, program_id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    repo::find_linked(&mut tx, actor.organization_id, program_id, asset_id)
        .await?
        .ok_or(Error::NotFound("asset linked to this program"))?;
    if let Some(reason) = repo::unlink_blocker(&mut tx, program_id, asset_id).await? {
        return Err(Error::conflict(format!(
            "the asset cannot be unlinked: {reason}"
        )));
    }
    repo::unlink(&mut tx, program_id, asset_id).await?;
    tx.commit().await?;
    Ok(())
}

/// The assets linked to a program.
pub async fn list_of_program(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    page: PageParams,
) -> Result<Page<Asset>> {
    crate::programs::get(pool, actor, program_id).await?;
    let filter = AssetFilter {
        program_id: Some(program_id),
        page,
        ..Default::default()
    };
    list(pool, actor, filter).await
}

/// An asset of the organization that is linked to `program_id`.
pub async fn find_linked(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Asset>> {
    repo::find_linked(conn, organization_id, program_id, id).await
}
