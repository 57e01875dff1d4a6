//! Direct balance operations on a participant (E40–E43) and transfers between participants (E106), for SIMPLE
//! and LOT assets, and what the ledger shows of a participant: lots (E39), history (E45) and statement (E48);
//! program wallets are in `wallet`. Each is one balanced journal entry written under the participants' locks; on LOT assets the
//! lots are settled (expired, matured), spent oldest first and linked to the entry. Hold, release, forfeit and
//! transfer accept an `idempotency_key`.

pub mod wallet;

use crate::assets::Asset;
use crate::error::{Error, FieldError, Result};
use crate::idempotency::{self, Claim, Key};
use crate::ledger::lots::{LotSpec, LotTaken, Selector};
use crate::ledger::{self, Balance, Bucket, EntryType, Owner};
use crate::movement::{self, Holder, Kind, Movement, Operation, Origin};
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

/// E40: a CREDIT from the asset's source (issuance or the program wallet), or a DEBIT back to it.
pub async fn adjust(
    pool: &PgPool,
    actor: &Actor,
    participant: Uuid,
    a: Adjustment,
) -> Result<Adjusted> {
    let mut tx = pool.begin().await?;
    let asset = prepare(
        &mut tx,
        actor,
        &[participant],
        a.program_id,
        a.asset_id,
        true,
    )
    .await?;
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
        &by_api(
            actor,
            a.program_id,
            &asset,
            participant,
            kind,
            a.description,
        ),
    )
    .await?;
    let holder = Owner::Participant(participant);
    let balance = ledger::snapshot(&mut tx, actor.organization_id, holder, asset.id).await?;
    tx.commit().await?;
    Ok(Adjusted {
        amount: asset.format(a.amount),
        asset_id: asset.id,
        program_id: a.program_id,
        bucket: a.bucket,
        kind: entry_type,
        journal_entry_id: moved.journal_entry_id,
        balance: balance.view(asset.scale),
        message: "Balance adjusted successfully".into(),
    })
}

/// A movement of a participant's value made by an API call.
fn by_api<'a>(
    actor: &Actor,
    program_id: Uuid,
    asset: &'a Asset,
    participant: Uuid,
    kind: Kind,
    description: String,
) -> Movement<'a> {
    Movement {
        organization_id: actor.organization_id,
        program_id,
        asset,
        holder: Holder::Participant(participant),
        kind,
        origin: Origin::Operation {
            api_key_id: actor.api_key_id,
        },
        description: Some(description),
        known_clear: false,
    }
}

/// E41–E44. Returns the result and whether it is a replay of an earlier request with the same key.
pub async fn operate(
    pool: &PgPool,
    actor: &Actor,
    participant: Uuid,
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
    let request = json!({"participant_id": participant, "asset_id": r.asset_id, "description": r.description,
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
        &[participant],
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
        &by_api(
            actor,
            r.program_id,
            &asset,
            participant,
            kind,
            r.description,
        ),
    )
    .await?;
    let response = operation_result(
        &mut tx,
        actor.organization_id,
        r.program_id,
        participant,
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

/// What a hold, release, forfeit or void-hold did, with the participant's balance after it: the answer of
/// E41–E44 and the result of the same rule actions.
#[allow(clippy::too_many_arguments)]
pub async fn operation_result(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    participant: Uuid,
    asset: &Asset,
    op: Operation,
    moved: &movement::Moved,
    reference_id: Option<String>,
) -> sqlx::Result<Operated> {
    let holder = Owner::Participant(participant);
    let balance = ledger::snapshot(conn, organization_id, holder, asset.id).await?;
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
    pub source: participants::Party,
    pub recipients: Vec<(participants::Party, Decimal)>,
    pub idempotency_key: Option<String>,
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
    let source = participants::find_party(&mut tx, actor.organization_id, &t.source).await?;
    let mut recipients = Vec::with_capacity(t.recipients.len());
    for (i, (party, amount)) in t.recipients.iter().enumerate() {
        let id = participants::find_party(&mut tx, actor.organization_id, party).await?;
        if id == source {
            return Err(self_transfer(i));
        }
        recipients.push((id, *amount));
    }
    let mut everyone: Vec<Uuid> = recipients
        .iter()
        .map(|(id, _)| *id)
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
        source_id: source,
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
            "a participant other than the source",
            None,
            "a participant cannot transfer to itself",
        )
        .with_reason("self_transfer"),
    ])
}

/// Locks the participants (404 if one is unknown), checks they are ACTIVE unless `require_active` is false,
/// and returns the asset, which must be linked to the program and active.
pub async fn prepare(
    conn: &mut PgConnection,
    actor: &Actor,
    participants: &[Uuid],
    program_id: Uuid,
    asset_id: Uuid,
    require_active: bool,
) -> Result<Asset> {
    let states = participants::lock_state(conn, actor.organization_id, participants).await?;
    if states.len() != participants.len() {
        return Err(Error::NotFound("participant"));
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

/// E39: the participant's lots of one asset.
pub async fn lots(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Uuid,
    filter: crate::ledger::lots::LotFilter,
) -> Result<Page<crate::ledger::lots::LotView>> {
    participants::require(pool, actor, id).await?;
    let asset = crate::assets::get(pool, actor, asset_id).await?;
    let mut conn = pool.acquire().await?;
    let rows = crate::ledger::lots::list(&mut conn, id, asset_id, &filter).await?;
    let page = Page::from_rows(rows, filter.page.limit, |lot| Cursor::new("", lot.id));
    Ok(page.map(|lot| crate::ledger::lots::LotView::new(lot, asset.scale)))
}

/// E45: the participant's postings, newest first.
pub async fn history(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Option<Uuid>,
    filter: crate::ledger::ActivityFilter,
) -> Result<Page<crate::ledger::ActivityRow>> {
    participants::require(pool, actor, id).await?;
    crate::ledger::history(pool, actor, Owner::Participant(id), asset_id, filter).await
}

/// E48: the participant's statement for one asset.
pub async fn statement(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Uuid,
    filter: crate::ledger::ActivityFilter,
) -> Result<crate::ledger::Statement> {
    participants::require(pool, actor, id).await?;
    holder_statement(pool, actor, Owner::Participant(id), asset_id, filter).await
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
