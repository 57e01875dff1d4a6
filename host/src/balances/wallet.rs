//! Program wallets (PREFUNDED assets): funding and burning (E8, E9), their balances (E10), history (E11) and
//! statement (E12).

use crate::assets::Asset;
use crate::error::{Error, Result};
use crate::movement::{self, Account, Kind, Movement, Origin};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page, PageParams};
use rust_decimal::Decimal;
use sqlx::PgPool;
use uuid::Uuid;

/// E8's and E9's answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WalletMoved {
    /// The wallet's AVAILABLE balance afterwards.
    pub available: String,
    /// Null when nothing moved: an UNLIMITED asset has no wallet to fund or burn.
    pub journal_entry_id: Option<Uuid>,
    pub message: String,
}

/// A program wallet's balance in one PREFUNDED asset.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct WalletBalance {
    pub asset_id: Uuid,
    #[schema(value_type = String)]
    pub issuance_policy: crate::assets::IssuancePolicy,
    pub available: String,
    pub held: String,
    pub deferred: String,
}

/// E8 (fund) moves value from issuance into the program's wallet; E9 (burn) moves it to breakage. Only
/// PREFUNDED assets have a wallet: on an UNLIMITED asset both have no effect, as Scrip documents.
pub async fn move_wallet(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    asset_id: Uuid,
    amount: Decimal,
    description: Option<String>,
    fund: bool,
) -> Result<WalletMoved> {
    let mut tx = pool.begin().await?;
    crate::programs::lock_for_update(&mut tx, actor.organization_id, program_id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    let asset = crate::assets::find_linked(&mut tx, actor.organization_id, program_id, asset_id)
        .await?
        .ok_or(Error::NotFound("asset"))?;
    if asset.issuance_policy != crate::assets::IssuancePolicy::Prefunded {
        asset
            .check_amount("amount", amount)
            .map_err(Error::invalid)?;
        return Ok(WalletMoved {
            available: asset.format(Decimal::ZERO),
            journal_entry_id: None,
            message: format!(
                "no effect: {} is UNLIMITED, issued on demand without a program wallet",
                asset.symbol
            ),
        });
    }
    let kind = match fund {
        true => Kind::Fund { amount },
        false => Kind::Burn { amount },
    };
    let moved = movement::apply(
        &mut tx,
        &Movement {
            organization_id: actor.organization_id,
            program_id,
            asset: &asset,
            account: Account::ProgramWallet,
            kind,
            origin: Origin::Operation {
                api_key_id: actor.api_key_id,
            },
            description,
            known_clear: false,
        },
    )
    .await?;
    let balance = crate::ledger::snapshot(
        &mut tx,
        actor.organization_id,
        crate::ledger::Owner::Program(program_id),
        asset.id,
    )
    .await?;
    tx.commit().await?;
    Ok(WalletMoved {
        available: asset.format(balance.available),
        journal_entry_id: Some(moved.journal_entry_id),
        message: match fund {
            true => "Program funded successfully",
            false => "Program balance burned successfully",
        }
        .into(),
    })
}

/// E10: the wallet of every PREFUNDED asset linked to the program (or of `asset_id`).
pub async fn wallet_balances(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    asset_id: Option<Uuid>,
    cursor: Option<Cursor>,
    limit: i64,
) -> Result<Page<WalletBalance>> {
    let assets = crate::assets::list_of_program(
        pool,
        actor,
        program_id,
        PageParams {
            cursor: None,
            limit: 200,
        },
    )
    .await?
    .data;
    let mut conn = pool.acquire().await?;
    let mut rows = Vec::new();
    let mut prefunded: Vec<&Asset> = assets
        .iter()
        .filter(|a| {
            a.issuance_policy == crate::assets::IssuancePolicy::Prefunded
                && asset_id.is_none_or(|id| id == a.id)
        })
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
        let balance = balance.view(asset.scale);
        rows.push(WalletBalance {
            asset_id: asset.id,
            issuance_policy: asset.issuance_policy,
            available: balance.available,
            held: balance.held,
            deferred: balance.deferred,
        });
    }
    Ok(Page::from_rows(rows, limit, |row| {
        Cursor::new("", row.asset_id)
    }))
}

/// E11: the program wallet's postings, newest first.
pub async fn wallet_history(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Option<Uuid>,
    filter: crate::ledger::ActivityFilter,
) -> Result<Page<crate::ledger::ActivityRow>> {
    crate::programs::get(pool, actor, id).await?;
    crate::ledger::history(
        pool,
        actor,
        crate::ledger::Owner::Program(id),
        asset_id,
        filter,
    )
    .await
}

/// E12: the program wallet's statement for one asset.
pub async fn wallet_statement(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Uuid,
    filter: crate::ledger::ActivityFilter,
) -> Result<crate::ledger::Statement> {
    crate::programs::get(pool, actor, id).await?;
    super::holder_statement(
        pool,
        actor,
        crate::ledger::Owner::Program(id),
        asset_id,
        filter,
    )
    .await
}
