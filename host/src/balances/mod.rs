//! Direct balance operations on a holder, participant or group (E40–E43, E65–E68), and transfers between
//! holders (E106), for SIMPLE and LOT assets, and what the ledger shows of a holder: lots (E39), history (E45)
//! and statement (E48); program wallets are in `wallet`. Each is one balanced journal entry written under the
//! holders' locks (participants first, then groups); on LOT assets the
//! lots are settled (expired, matured), spent oldest first and linked to the entry. Hold, release, forfeit and
//! transfer accept an `idempotency_key`.

pub mod wallet;

use crate::assets::Asset;
use crate::error::{Error, FieldError, Result};
use crate::holders::Holder;
use crate::idempotency::{self, Claim, Key};
use crate::ledger::lots::{LotSpec, LotTaken, Selector};
use crate::ledger::{self, Balance, Bucket, EntryType, Owner};
use crate::movement::{self, Account, Kind, Movement, Operation, Origin};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page};
use crate::participants;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

crate::vocabulary!(
    /// The direction of an adjustment.
    pub enum AdjustmentType {
        Credit = "CREDIT",
        Debit = "DEBIT",
    }
);
crate::api_enum!(
    /// The buckets a client may move value in or out of directly.
    pub OperableBucket = OPERABLE_BUCKETS ["AVAILABLE", "HELD"]
);

/// E40's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Adjusted {
    pub amount: String,
    pub asset_id: Uuid,
    pub program_id: Uuid,
    #[schema(value_type = OperableBucket)]
    pub bucket: Bucket,
    #[serde(rename = "type")]
    #[schema(value_type = AdjustmentType)]
    pub kind: EntryType,
    pub journal_entry_id: Uuid,
    pub balance: Balance,
    pub message: String,
}

/// The answer of E41–E44, and the result of the same rule actions.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Operated {
    /// HOLD, RELEASE, FORFEIT or VOID_HOLD.
    pub operation: String,
    pub amount_processed: String,
    pub asset_id: Uuid,
    pub program_id: Uuid,
    /// Always in an answer; a rule's result leaves it out when its event failed, so the entry was not kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Uuid, required = true)]
    pub journal_entry_id: Option<Uuid>,
    pub balance: Balance,
    pub message: String,
    /// LOT assets only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lots_processed: Option<Vec<LotTaken>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
}

/// E106's answer.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Transferred {
    pub asset_id: Uuid,
    pub journal_entry_id: Uuid,
    pub recipient_count: i64,
    pub source_id: Uuid,
    pub total_amount: String,
}

/// A credit or debit by hand, from or back to the asset's source.
#[derive(utoipa::ToSchema)]
#[schema(as = Adjust, example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000",
    "asset_id": "550e8400-e29b-41d4-a716-446655440001", "type": "CREDIT", "amount": "100",
    "description": "Goodwill credit"}))]
pub struct Adjustment {
    pub program_id: Uuid,
    pub asset_id: Uuid,
    #[schema(rename = "type")]
    pub kind: AdjustmentType,
    /// Positive, within the asset's scale.
    #[schema(value_type = crate::money::PositiveAmount)]
    pub amount: Decimal,
    #[schema(min_length = 1, max_length = 500)]
    pub description: String,
    /// Default AVAILABLE.
    #[schema(value_type = Option<OperableBucket>)]
    pub bucket: Bucket,
    /// DEBIT only: let the balance go below zero.
    #[schema(value_type = Option<bool>)]
    pub allow_negative: bool,
}

pub struct OperationRequest {
    pub program_id: Uuid,
    pub asset_id: Uuid,
    pub description: String,
    /// `None`: everything selected (the whole bucket of a SIMPLE asset).
    pub amount: Option<Decimal>,
    /// Which lots (LOT assets only): `reference_id`, `lot_ids`, `earned_from`/`earned_to`.
    pub lots: Selector,
    pub idempotency_key: Option<String>,
}

/// E40, E65: a CREDIT from the asset's source (issuance or the program wallet), or a DEBIT back to it.
pub async fn adjust(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    a: Adjustment,
) -> Result<Adjusted> {
    let mut tx = pool.begin().await?;
    let asset = prepare(&mut tx, actor, &[holder], a.program_id, a.asset_id, true).await?;
    let kind = match a.kind {
        AdjustmentType::Debit => Kind::Debit {
            amount: a.amount,
            bucket: a.bucket,
            allow_negative: a.allow_negative,
        },
        AdjustmentType::Credit => Kind::Credit {
            amount: a.amount,
            bucket: a.bucket,
            lot: LotSpec::default(),
        },
    };
    let entry_type = kind.entry_type();
    let moved = movement::apply(
        &mut tx,
        &by_api(actor, a.program_id, &asset, holder, kind, a.description),
    )
    .await?;
    let balance =
        ledger::snapshot(&mut tx, actor.organization_id, holder.owner(), asset.id).await?;
    tx.commit().await?;
    Ok(Adjusted {
        amount: asset.format(a.amount),
        asset_id: asset.id,
        program_id: a.program_id,
        bucket: a.bucket,
        kind: entry_type,
        journal_entry_id: moved.journal_entry_id,
        balance: balance.view(asset.scale),
        message: match holder {
            Holder::Participant(_) => "Balance adjusted successfully",
            Holder::Group(_) => "Group balance adjusted successfully",
        }
        .into(),
    })
}

/// A movement of a holder's value made by an API call.
fn by_api<'a>(
    actor: &Actor,
    program_id: Uuid,
    asset: &'a Asset,
    holder: Holder,
    kind: Kind,
    description: String,
) -> Movement<'a> {
    Movement {
        organization_id: actor.organization_id,
        program_id,
        asset,
        account: Account::Holder(holder),
        kind,
        origin: Origin::Operation {
            api_key_id: actor.api_key_id,
        },
        description: Some(description),
        known_clear: false,
    }
}

/// E41–E44, E66–E68. Returns the result and whether it is a replay of an earlier request with the same key.
pub async fn operate(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    op: Operation,
    r: OperationRequest,
) -> Result<(Operated, bool)> {
    let mut tx = pool.begin().await?;
    let key = r.idempotency_key.as_deref().map(|key| Key {
        organization_id: actor.organization_id,
        program_id: r.program_id,
        operation: op.name(),
        key,
    });
    let holder_field = match holder {
        Holder::Participant(_) => "participant_id",
        Holder::Group(_) => "group_id",
    };
    let request = json!({holder_field: holder.id(), "asset_id": r.asset_id, "description": r.description,
        "amount": r.amount.map(|a| a.normalize().to_string()), "operation": op,
        "reference_id": r.lots.reference_id, "lot_ids": r.lots.lot_ids,
        "earned": r.lots.earned.map(|(from, to)| [crate::pagination::time_key(from), crate::pagination::time_key(to)])});
    if let Some(key) = &key
        && let Claim::Replay(response) = idempotency::claim(&mut tx, key, &request).await?
    {
        return Ok((response, true));
    }
    let asset = prepare(
        &mut tx,
        actor,
        &[holder],
        r.program_id,
        r.asset_id,
        op.requires_active(),
    )
    .await?;
    let reference_id = r.lots.reference_id.clone();
    let kind = Kind::Operation {
        op,
        amount: r.amount,
        lots: r.lots,
    };
    let moved = movement::apply(
        &mut tx,
        &by_api(actor, r.program_id, &asset, holder, kind, r.description),
    )
    .await?;
    let response = operation_result(
        &mut tx,
        actor.organization_id,
        r.program_id,
        holder,
        &asset,
        op,
        &moved,
        reference_id,
    )
    .await?;
    if let Some(key) = &key {
        idempotency::remember(&mut tx, key, &response).await?;
    }
    tx.commit().await?;
    Ok((response, false))
}

/// What a hold, release, forfeit or void-hold did, with the holder's balance after it: the answer of
/// E41–E44 and E66–E68, and the result of the same rule actions.
#[allow(clippy::too_many_arguments)]
pub async fn operation_result(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    holder: Holder,
    asset: &Asset,
    op: Operation,
    moved: &movement::Moved,
    reference_id: Option<String>,
) -> sqlx::Result<Operated> {
    let balance = ledger::snapshot(conn, organization_id, holder.owner(), asset.id).await?;
    Ok(Operated {
        operation: op.name().into(),
        amount_processed: asset.format(moved.amount),
        asset_id: asset.id,
        program_id,
        journal_entry_id: Some(moved.journal_entry_id),
        balance: balance.view(asset.scale),
        message: format!("Processed {}", asset.format(moved.amount)),
        lots_processed: moved.lots.as_ref().map(|plan| plan.processed(asset.scale)),
        reference_id: moved.lots.as_ref().and(reference_id),
    })
}

pub struct Transfer {
    pub program_id: Uuid,
    pub asset_id: Uuid,
    pub description: String,
    pub source: Named,
    pub recipients: Vec<(Named, Decimal)>,
    pub idempotency_key: Option<String>,
}

/// A holder as a client names one: a participant by id or external id, or a group by id.
#[derive(Debug, Clone, PartialEq)]
pub enum Named {
    Participant(participants::Party),
    Group(Uuid),
}

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Named::Participant(party) => party.fmt(f),
            Named::Group(id) => write!(f, "group_id:{id}"),
        }
    }
}

/// The holder a client named; `NotFound` when the organization has none such.
async fn find_named(conn: &mut PgConnection, actor: &Actor, named: &Named) -> Result<Holder> {
    match named {
        Named::Participant(party) => participants::find_party(conn, actor.organization_id, party)
            .await
            .map(Holder::Participant),
        Named::Group(id) => crate::groups::lock(conn, actor.organization_id, *id)
            .await?
            .map(|g| Holder::Group(g.id))
            .ok_or(Error::NotFound("group")),
    }
}

/// E106: one entry moving value from the source's AVAILABLE to every recipient's, all or nothing. On LOT
/// assets the source's lots are spent oldest first and every recipient gets a fresh lot (no expiry carried).
pub async fn transfer(pool: &PgPool, actor: &Actor, t: Transfer) -> Result<(Transferred, bool)> {
    let mut tx = pool.begin().await?;
    let key = t.idempotency_key.as_deref().map(|key| Key {
        organization_id: actor.organization_id,
        program_id: t.program_id,
        operation: "TRANSFER",
        key,
    });
    let request = json!({"asset_id": t.asset_id, "description": t.description, "source": t.source.to_string(),
        "recipients": t.recipients.iter().map(|(p, a)| json!([p.to_string(), a.normalize().to_string()])).collect::<Vec<_>>()});
    if let Some(key) = &key
        && let Claim::Replay(response) = idempotency::claim(&mut tx, key, &request).await?
    {
        return Ok((response, true));
    }
    let source = find_named(&mut tx, actor, &t.source).await?;
    let mut recipients = Vec::with_capacity(t.recipients.len());
    for (i, (named, amount)) in t.recipients.iter().enumerate() {
        let holder = find_named(&mut tx, actor, named).await?;
        if holder == source {
            return Err(self_transfer(i));
        }
        recipients.push((holder, *amount));
    }
    let mut everyone: Vec<Holder> = recipients
        .iter()
        .map(|(holder, _)| *holder)
        .chain([source])
        .collect();
    everyone.sort();
    everyone.dedup();
    let asset = prepare(&mut tx, actor, &everyone, t.program_id, t.asset_id, true).await?;
    if !crate::programs::is_active(&mut tx, t.program_id).await? {
        return Err(Error::conflict("transfers need an ACTIVE program"));
    }
    let description = t.description;
    let moved = movement::apply(
        &mut tx,
        &by_api(
            actor,
            t.program_id,
            &asset,
            source,
            Kind::Transfer {
                recipients: recipients.clone(),
            },
            description,
        ),
    )
    .await?;
    let response = Transferred {
        asset_id: asset.id,
        journal_entry_id: moved.journal_entry_id,
        recipient_count: i64::try_from(recipients.len()).unwrap_or(i64::MAX),
        source_id: source.id(),
        total_amount: asset.format(moved.amount),
    };
    if let Some(key) = &key {
        idempotency::remember(&mut tx, key, &response).await?;
    }
    tx.commit().await?;
    Ok((response, false))
}

fn self_transfer(i: usize) -> Error {
    Error::Invalid(vec![
        FieldError::invalid(
            format!("recipients[{i}]"),
            "a holder other than the source",
            None,
            "a participant or group cannot transfer to itself",
        )
        .with_reason("self_transfer"),
    ])
}

/// Locks the holders, participants first and then groups (404 if one is unknown), checks participants are
/// ACTIVE unless `require_active` is false and groups are not archived, and returns the asset, which must be
/// linked to the program and active.
pub async fn prepare(
    conn: &mut PgConnection,
    actor: &Actor,
    holders: &[Holder],
    program_id: Uuid,
    asset_id: Uuid,
    require_active: bool,
) -> Result<Asset> {
    let (mut participant_ids, mut group_ids) = (Vec::new(), Vec::new());
    for holder in holders {
        match holder {
            Holder::Participant(id) => participant_ids.push(*id),
            Holder::Group(id) => group_ids.push(*id),
        }
    }
    let states = participants::lock_state(conn, actor.organization_id, &participant_ids).await?;
    if states.len() != participant_ids.len() {
        return Err(Error::NotFound("participant"));
    }
    group_ids.sort();
    for id in group_ids {
        crate::groups::lock(conn, actor.organization_id, id)
            .await?
            .ok_or(Error::NotFound("group"))?
            .require_active()?;
    }
    if let Some(inactive) = states
        .iter()
        .find(|s| require_active && s.status != participants::ParticipantStatus::Active)
    {
        return Err(Error::Conflict {
            code: "participant_inactive",
            message: format!("participant {} is {}", inactive.id, inactive.status),
        });
    }
    let asset = crate::assets::find_linked(conn, actor.organization_id, program_id, asset_id)
        .await?
        .ok_or(Error::NotFound("asset"))?;
    if asset.status != crate::assets::AssetStatus::Active {
        return Err(Error::conflict("the asset is archived"));
    }
    Ok(asset)
}

/// E64: the group's balance of each asset, of the assets linked to `program_id` when given.
pub async fn group_balances(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    program_id: Option<Uuid>,
    page: crate::pagination::PageParams,
) -> Result<Page<crate::groups::GroupBalance>> {
    crate::groups::require(pool, actor, id).await?;
    let (after, limit) = (page.cursor.map(|c| c.id), page.limit);
    let rows = ledger::balances_of(
        pool,
        actor.organization_id,
        Owner::Group(id),
        None,
        program_id,
        after,
        Some(limit + 1),
    )
    .await?;
    let page = Page::from_rows(rows, limit, |b| Cursor::new("", b.asset_id));
    Ok(page.map(crate::groups::GroupBalance::from))
}

/// E39: the holder's lots of one asset.
pub async fn lots(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    asset_id: Uuid,
    filter: crate::ledger::lots::LotFilter,
) -> Result<Page<crate::ledger::lots::LotView>> {
    crate::holder_state::require(pool, actor, holder).await?;
    let asset = crate::assets::get(pool, actor, asset_id).await?;
    let mut conn = pool.acquire().await?;
    let rows = crate::ledger::lots::list(&mut conn, holder.id(), asset_id, &filter).await?;
    let page = Page::from_rows(rows, filter.page.limit, |lot| Cursor::new("", lot.id));
    Ok(page.map(|lot| crate::ledger::lots::LotView::new(lot, asset.scale)))
}

/// E45: the holder's postings, newest first.
pub async fn history(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    asset_id: Option<Uuid>,
    filter: crate::ledger::ActivityFilter,
) -> Result<Page<crate::ledger::ActivityRow>> {
    crate::holder_state::require(pool, actor, holder).await?;
    crate::ledger::history(pool, actor, holder.owner(), asset_id, filter).await
}

/// E48: the holder's statement for one asset.
pub async fn statement(
    pool: &PgPool,
    actor: &Actor,
    holder: Holder,
    asset_id: Uuid,
    filter: crate::ledger::ActivityFilter,
) -> Result<crate::ledger::Statement> {
    crate::holder_state::require(pool, actor, holder).await?;
    holder_statement(pool, actor, holder.owner(), asset_id, filter).await
}

/// The statement of a holder's account in one of the organization's assets (E12, E48); the caller has
/// checked that the holder exists.
pub(crate) async fn holder_statement(
    pool: &PgPool,
    actor: &Actor,
    holder: Owner,
    asset_id: Uuid,
    filter: crate::ledger::ActivityFilter,
) -> Result<crate::ledger::Statement> {
    let asset = crate::assets::get(pool, actor, asset_id).await?;
    ledger::statement(pool, actor, holder, (asset.id, asset.scale), filter).await
}
