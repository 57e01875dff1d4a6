//! Programs: the container for rules, participants' enrollments and linked assets.

mod repo;

use crate::assets::{self, Asset};
use crate::error::{Error, OnConstraint, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page};
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

pub use repo::lock_for_update;

crate::api_enum!(pub ProgramStatus = STATUSES ["ACTIVE", "SUSPENDED", "ARCHIVED"]);
crate::api_enum!(
    /// What an event for an unknown `external_id` does: create the participant, or fail.
    pub UnknownParticipantPolicy = UNKNOWN_PARTICIPANT_POLICIES ["CREATE", "REJECT"]
);
crate::api_enum!(
    /// Where redeemed value goes.
    pub RedemptionTarget = REDEMPTION_TARGETS ["SYSTEM_REDEMPTION", "SYSTEM_BREAKAGE", "LEDGER_ENTITY"]
);

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Program {
    pub id: Uuid,
    #[schema(example = "Coffee Rewards")]
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = UnknownParticipantPolicy)]
    pub on_unknown_participant: String,
    #[schema(value_type = ProgramStatus)]
    pub status: String,
    #[schema(value_type = RedemptionTarget)]
    pub redemption_target_type: String,
    pub redemption_target_entity_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

pub struct NewProgram {
    pub name: String,
    pub description: Option<String>,
    pub on_unknown_participant: &'static str,
}

#[derive(Default)]
pub struct ProgramFilter {
    pub include_archived: bool,
    pub status: Option<&'static str>,
    pub search: Option<String>,
    pub sort_by_name: bool,
    pub ascending: bool,
    pub cursor: Option<Cursor>,
    pub limit: i64,
}

pub struct ProgramPatch {
    pub name: Option<String>,
    pub description: Patch<String>,
    pub on_unknown_participant: Option<&'static str>,
    pub status: Option<&'static str>,
    pub redemption_target_type: Option<&'static str>,
    pub redemption_target_entity_id: Patch<Uuid>,
}

pub async fn create(pool: &PgPool, actor: &Actor, new: NewProgram) -> Result<Program> {
    Ok(repo::insert(pool, actor.organization_id, Uuid::now_v7(), &new).await?)
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Program> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("program"))
}

pub async fn list(pool: &PgPool, actor: &Actor, filter: ProgramFilter) -> Result<Page<Program>> {
    let order = Order {
        column: if filter.sort_by_name {
            "name"
        } else {
            "created_at"
        },
        sql_type: if filter.sort_by_name {
            "text"
        } else {
            "timestamptz"
        },
        descending: !filter.ascending,
    };
    let limit = filter.limit;
    let rows = repo::list(pool, actor.organization_id, &filter, order).await?;
    Ok(Page::from_rows(rows, limit, |p| {
        if filter.sort_by_name {
            Cursor::new(&p.name, p.id)
        } else {
            Cursor::at(p.created_at, p.id)
        }
    }))
}

pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    patch: ProgramPatch,
) -> Result<Program> {
    let mut tx = pool.begin().await?;
    let mut program = lock_for_update(&mut tx, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    if let Some(name) = patch.name {
        program.name = name;
    }
    match patch.description {
        Patch::Set(text) => program.description = Some(text),
        Patch::Null => program.description = None,
        Patch::Absent => {}
    }
    if let Some(policy) = patch.on_unknown_participant {
        program.on_unknown_participant = policy.into();
    }
    if let Some(target) = patch.redemption_target_type {
        program.redemption_target_type = target.into();
        program.redemption_target_entity_id = match patch.redemption_target_entity_id {
            Patch::Set(entity) => Some(entity),
            _ => None,
        };
    }
    if let Some(status) = patch.status {
        program.deleted_at = match (status, program.deleted_at) {
            ("ARCHIVED", Some(at)) => Some(at),
            ("ARCHIVED", None) => Some(Utc::now()),
            _ => None,
        };
        program.status = status.into();
    }
    let program = repo::save(&mut tx, &program).await?;
    tx.commit().await?;
    Ok(program)
}

/// Links an existing asset of the organization to the program; linking twice is a conflict.
pub async fn link_asset(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    asset_id: Uuid,
) -> Result<Asset> {
    get(pool, actor, program_id).await?;
    assets::get(pool, actor, asset_id).await?;
    repo::link_asset(pool, actor.organization_id, program_id, asset_id)
        .await
        .on_constraint("program_assets_pkey", || {
            Error::conflict("asset is already linked to this program")
        })?;
    assets::get(pool, actor, asset_id).await
}

pub async fn list_assets(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Page<Asset>> {
    get(pool, actor, program_id).await?;
    let filter = assets::AssetFilter {
        program_id: Some(program_id),
        cursor,
        limit,
        ..Default::default()
    };
    assets::list(pool, actor, filter).await
}

/// Whether the program exists and is ACTIVE, read in the caller's transaction.
pub async fn is_active(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<bool> {
    Ok(repo::status(conn, id).await?.as_deref() == Some("ACTIVE"))
}

/// E8 (fund) moves value from issuance into the program's wallet; E9 (burn) moves it to breakage. Only
/// PREFUNDED assets have a wallet.
pub async fn move_wallet(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    asset_id: Uuid,
    amount: Decimal,
    description: Option<String>,
    fund: bool,
) -> Result<serde_json::Value> {
    use crate::ledger::{AccountKey, NewEntry, Owner, PostError};
    let mut tx = pool.begin().await?;
    lock_for_update(&mut tx, actor.organization_id, program_id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    let asset = crate::assets::find_linked(&mut tx, actor.organization_id, program_id, asset_id)
        .await?
        .ok_or(Error::NotFound("asset"))?;
    if asset.issuance_policy != "PREFUNDED" {
        return Err(Error::invalid(crate::error::FieldError::invalid(
            "asset_id",
            "PREFUNDED asset",
            Some(asset_id.to_string()),
            "only PREFUNDED assets have a program wallet; UNLIMITED assets are issued without one",
        )));
    }
    asset
        .check_amount("amount", amount)
        .map_err(Error::invalid)?;
    let wallet = AccountKey::new(Owner::Program(program_id), asset.id, "AVAILABLE");
    let other = AccountKey::new(
        if fund {
            Owner::Issuance
        } else {
            Owner::Breakage
        },
        asset.id,
        "AVAILABLE",
    );
    let signed = if fund { amount } else { -amount };
    let entry = NewEntry {
        program_id,
        action_type: if fund { "FUND" } else { "BURN" },
        description,
        event_id: None,
        rule_id: None,
        reference_id: None,
        created_by_api_key_id: Some(actor.api_key_id),
        postings: vec![(wallet, signed), (other, -signed)],
        allow_negative: false,
    };
    let journal_entry_id = crate::ledger::post(
        &mut tx,
        actor.organization_id,
        &entry,
        &crate::ledger::KnownAccounts::default(),
    )
    .await
    .map_err(|e| match e {
        PostError::InsufficientBalance => {
            Error::Insufficient("the program wallet holds less than that".into())
        }
        PostError::Unbalanced => Error::Internal("postings do not balance".into()),
        PostError::Database(err) => Error::Database(err),
    })?;
    let balance = crate::ledger::snapshot(
        &mut tx,
        actor.organization_id,
        Owner::Program(program_id),
        asset.id,
    )
    .await?;
    tx.commit().await?;
    Ok(serde_json::json!({
        "available": asset.format(balance.available),
        "journal_entry_id": journal_entry_id,
        "message": if fund { "Program funded successfully" } else { "Program balance burned successfully" },
    }))
}

/// E10: the wallet of every PREFUNDED asset linked to the program (or of `asset_id`).
pub async fn wallet_balances(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    asset_id: Option<Uuid>,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Page<serde_json::Value>> {
    let assets = list_assets(pool, actor, program_id, None, 200).await?.data;
    let mut conn = pool.acquire().await?;
    let mut rows = Vec::new();
    let mut prefunded: Vec<&Asset> = assets
        .iter()
        .filter(|a| a.issuance_policy == "PREFUNDED" && asset_id.is_none_or(|id| id == a.id))
        .filter(|a| cursor.as_ref().is_none_or(|c| a.id > c.id))
        .collect();
    prefunded.sort_by_key(|a| a.id);
    for asset in prefunded
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(0) + 1)
    {
        let owner = crate::ledger::Owner::Program(program_id);
        let balance =
            crate::ledger::snapshot(&mut conn, actor.organization_id, owner, asset.id).await?;
        let mut row = balance.to_json(asset.scale);
        row["asset_id"] = serde_json::json!(asset.id);
        row["issuance_policy"] = serde_json::json!(asset.issuance_policy);
        rows.push((asset.id, row));
    }
    Ok(Page::from_rows(rows, limit, |(id, _)| Cursor::new("", *id)).map(|(_, row)| row))
}

/// E11: the program wallet's postings, newest first.
pub async fn wallet_history(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    filter: crate::ledger::ActivityFilter,
) -> Result<Page<crate::ledger::ActivityRow>> {
    get(pool, actor, id).await?;
    crate::ledger::history(pool, actor, crate::ledger::Owner::Program(id), filter).await
}

/// E12: the program wallet's statement for one asset.
pub async fn wallet_statement(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Uuid,
    filter: crate::ledger::ActivityFilter,
) -> Result<crate::ledger::Statement> {
    get(pool, actor, id).await?;
    let asset = crate::assets::get(pool, actor, asset_id).await?;
    crate::ledger::statement(
        pool,
        actor,
        crate::ledger::Owner::Program(id),
        &asset,
        filter,
    )
    .await
}
