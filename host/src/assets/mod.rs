//! Assets: the units of value (points, credits, cash). Mode, issuance policy and scale shape the ledger and
//! never change after creation.

mod repo;

use crate::error::{Error, FieldError, OnConstraint, Result};
use crate::money;
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page};
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub use repo::find_linked;

crate::vocabulary!(
    /// SIMPLE balances are one number; LOT balances are lots with their own expiry.
    pub enum InventoryMode {
        Simple = "SIMPLE",
        Lot = "LOT",
    }
);
pub const INVENTORY_MODES: &[&str] = InventoryMode::NAMES;
crate::vocabulary!(
    /// UNLIMITED assets are issued on demand; PREFUNDED ones are drawn from the program wallet.
    pub enum IssuancePolicy {
        Unlimited = "UNLIMITED",
        Prefunded = "PREFUNDED",
    }
);
pub const ISSUANCE_POLICIES: &[&str] = IssuancePolicy::NAMES;
crate::vocabulary!(
    /// An archived asset can no longer be moved or changed.
    pub enum AssetStatus {
        Active = "ACTIVE",
        Archived = "ARCHIVED",
    }
);
pub const STATUSES: &[&str] = AssetStatus::NAMES;

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

pub struct NewAsset {
    pub program_id: Uuid,
    pub name: String,
    pub symbol: String,
    pub inventory_mode: InventoryMode,
    pub issuance_policy: IssuancePolicy,
    pub scale: i16,
    pub max_transaction_amount: Option<Decimal>,
}

#[derive(Default)]
pub struct AssetFilter {
    pub program_id: Option<Uuid>,
    pub status: Option<&'static str>,
    pub search: Option<String>,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

pub struct AssetPatch {
    pub name: Option<String>,
    pub archive: bool,
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
    Ok(Page::from_rows(rows, filter.limit, |a| {
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

/// The assets linked to a program.
pub async fn list_of_program(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Page<Asset>> {
    crate::programs::get(pool, actor, program_id).await?;
    let filter = AssetFilter {
        program_id: Some(program_id),
        cursor,
        limit,
        ..Default::default()
    };
    list(pool, actor, filter).await
}
