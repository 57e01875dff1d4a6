//! Direct balance operations on a participant (E40–E43) and transfers between participants (E106), for
//! SIMPLE assets. Each is one balanced journal entry written under the participants' locks; hold, release,
//! forfeit and transfer accept an `idempotency_key`.

use crate::assets::Asset;
use crate::error::{Error, FieldError, Result};
use crate::idempotency::{self, Claim, Key};
use crate::ledger::{self, AccountKey, NewEntry, Owner, PostError};
use crate::organizations::Actor;
use crate::participants;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub struct Adjustment {
    pub program_id: Uuid,
    pub asset_id: Uuid,
    pub debit: bool,
    pub amount: Decimal,
    pub description: String,
    pub bucket: &'static str,
    pub allow_negative: bool,
}

/// HOLD moves AVAILABLE to HELD, RELEASE the reverse, FORFEIT takes `bucket` to breakage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Operation {
    Hold,
    Release,
    Forfeit { bucket: &'static str },
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Hold => "HOLD",
            Operation::Release => "RELEASE",
            Operation::Forfeit { .. } => "FORFEIT",
        }
    }

    /// The bucket the value leaves, and where it goes.
    fn movement(self, participant: Uuid) -> (&'static str, Owner, &'static str) {
        match self {
            Operation::Hold => ("AVAILABLE", Owner::Participant(participant), "HELD"),
            Operation::Release => ("HELD", Owner::Participant(participant), "AVAILABLE"),
            Operation::Forfeit { bucket } => (bucket, Owner::Breakage, "AVAILABLE"),
        }
    }
}

pub struct OperationRequest {
    pub program_id: Uuid,
    pub asset_id: Uuid,
    pub description: String,
    /// `None`: the whole balance of the bucket the value leaves.
    pub amount: Option<Decimal>,
    pub idempotency_key: Option<String>,
}

/// E40: a CREDIT from the asset's source (issuance or the program wallet), or a DEBIT back to it.
pub async fn adjust(
    pool: &PgPool,
    actor: &Actor,
    participant: Uuid,
    a: Adjustment,
) -> Result<Value> {
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
    asset
        .check_amount("amount", a.amount)
        .map_err(Error::invalid)?;
    let signed = if a.debit { -a.amount } else { a.amount };
    let entry = NewEntry {
        program_id: a.program_id,
        action_type: if a.debit { "DEBIT" } else { "CREDIT" },
        description: Some(a.description),
        event_id: None,
        rule_id: None,
        reference_id: None,
        created_by_api_key_id: Some(actor.api_key_id),
        postings: vec![
            (
                AccountKey::new(Owner::Participant(participant), asset.id, a.bucket),
                signed,
            ),
            (
                AccountKey::new(asset.source(a.program_id), asset.id, "AVAILABLE"),
                -signed,
            ),
        ],
        allow_negative: a.allow_negative,
    };
    let journal_entry_id = post(&mut tx, actor, &entry).await?;
    let balance = ledger::snapshot(
        &mut tx,
        actor.organization_id,
        Owner::Participant(participant),
        asset.id,
    )
    .await?;
    tx.commit().await?;
    Ok(json!({
        "amount": asset.format(a.amount),
        "asset_id": asset.id,
        "program_id": a.program_id,
        "bucket": a.bucket,
        "type": if a.debit { "DEBIT" } else { "CREDIT" },
        "journal_entry_id": journal_entry_id,
        "balance": balance.to_json(asset.scale),
        "message": "Balance adjusted successfully",
    }))
}

/// E41–E43. Returns the result and whether it is a replay of an earlier request with the same key.
pub async fn operate(
    pool: &PgPool,
    actor: &Actor,
    participant: Uuid,
    op: Operation,
    r: OperationRequest,
) -> Result<(Value, bool)> {
    let mut tx = pool.begin().await?;
    let key = r.idempotency_key.as_deref().map(|key| Key {
        organization_id: actor.organization_id,
        program_id: r.program_id,
        operation: op.name(),
        key,
    });
    let request = json!({"participant_id": participant, "asset_id": r.asset_id, "description": r.description,
        "amount": r.amount.map(|a| a.normalize().to_string()), "operation": op.name(),
        "bucket": op.movement(participant).0});
    if let Some(key) = &key {
        if let Claim::Replay(response) = idempotency::claim(&mut tx, key, &request).await? {
            return Ok((response, true));
        }
    }
    // Forfeits are how value leaves a closed account, so they are allowed whatever the participant's status.
    let allow_inactive = matches!(op, Operation::Forfeit { .. });
    let asset = prepare(
        &mut tx,
        actor,
        &[participant],
        r.program_id,
        r.asset_id,
        !allow_inactive,
    )
    .await?;
    let (from_bucket, to, to_bucket) = op.movement(participant);
    let before = ledger::snapshot(
        &mut tx,
        actor.organization_id,
        Owner::Participant(participant),
        asset.id,
    )
    .await?;
    let amount = match r.amount {
        Some(amount) => {
            asset
                .check_amount("amount", amount)
                .map_err(Error::invalid)?;
            amount
        }
        None => before.bucket(from_bucket),
    };
    if amount <= Decimal::ZERO {
        return Err(Error::Insufficient(format!(
            "there is nothing in {from_bucket} to process"
        )));
    }
    let entry = NewEntry {
        program_id: r.program_id,
        action_type: op.name(),
        description: Some(r.description),
        event_id: None,
        rule_id: None,
        reference_id: None,
        created_by_api_key_id: Some(actor.api_key_id),
        postings: vec![
            (
                AccountKey::new(Owner::Participant(participant), asset.id, from_bucket),
                -amount,
            ),
            (AccountKey::new(to, asset.id, to_bucket), amount),
        ],
        allow_negative: false,
    };
    let journal_entry_id = post(&mut tx, actor, &entry).await?;
    let balance = ledger::snapshot(
        &mut tx,
        actor.organization_id,
        Owner::Participant(participant),
        asset.id,
    )
    .await?;
    let response = json!({
        "operation": op.name(),
        "amount_processed": asset.format(amount),
        "asset_id": asset.id,
        "program_id": r.program_id,
        "journal_entry_id": journal_entry_id,
        "balance": balance.to_json(asset.scale),
        "message": format!("Processed {}", asset.format(amount)),
    });
    if let Some(key) = &key {
        idempotency::remember(&mut tx, key, &response).await?;
    }
    tx.commit().await?;
    Ok((response, false))
}

pub struct Transfer {
    pub program_id: Uuid,
    pub asset_id: Uuid,
    pub description: String,
    pub source: participants::Party,
    pub recipients: Vec<(participants::Party, Decimal)>,
    pub idempotency_key: Option<String>,
}

/// E106: one entry moving value from the source's AVAILABLE to every recipient's, all or nothing.
pub async fn transfer(pool: &PgPool, actor: &Actor, t: Transfer) -> Result<(Value, bool)> {
    let mut tx = pool.begin().await?;
    let key = t.idempotency_key.as_deref().map(|key| Key {
        organization_id: actor.organization_id,
        program_id: t.program_id,
        operation: "TRANSFER",
        key,
    });
    let request = json!({"asset_id": t.asset_id, "description": t.description, "source": t.source.to_string(),
        "recipients": t.recipients.iter().map(|(p, a)| json!([p.to_string(), a.normalize().to_string()])).collect::<Vec<_>>()});
    if let Some(key) = &key {
        if let Claim::Replay(response) = idempotency::claim(&mut tx, key, &request).await? {
            return Ok((response, true));
        }
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
    let mut postings = Vec::with_capacity(recipients.len() + 1);
    let mut total = Decimal::ZERO;
    for (i, (id, amount)) in recipients.iter().enumerate() {
        asset
            .check_amount(&format!("recipients[{i}].amount"), *amount)
            .map_err(Error::invalid)?;
        total += *amount;
        postings.push((
            AccountKey::new(Owner::Participant(*id), asset.id, "AVAILABLE"),
            *amount,
        ));
    }
    postings.push((
        AccountKey::new(Owner::Participant(source), asset.id, "AVAILABLE"),
        -total,
    ));
    let entry = NewEntry {
        program_id: t.program_id,
        action_type: "TRANSFER",
        description: Some(t.description),
        event_id: None,
        rule_id: None,
        reference_id: None,
        created_by_api_key_id: Some(actor.api_key_id),
        postings,
        allow_negative: false,
    };
    let journal_entry_id = post(&mut tx, actor, &entry).await?;
    let response = json!({
        "asset_id": asset.id,
        "journal_entry_id": journal_entry_id,
        "recipient_count": recipients.len(),
        "source_id": source,
        "total_amount": asset.format(total),
    });
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
/// and returns the asset, which must be linked to the program. LOT assets wait for lot support.
async fn prepare(
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
        .find(|s| require_active && s.status != "ACTIVE")
    {
        return Err(Error::Conflict {
            code: "participant_inactive",
            message: format!("participant {} is {}", inactive.id, inactive.status),
        });
    }
    let asset = crate::assets::find_linked(conn, actor.organization_id, program_id, asset_id)
        .await?
        .ok_or(Error::NotFound("asset"))?;
    if asset.status != "ACTIVE" {
        return Err(Error::conflict("the asset is archived"));
    }
    if asset.inventory_mode == "LOT" {
        return Err(Error::invalid(FieldError::invalid(
            "asset_id",
            "SIMPLE asset",
            Some(asset_id.to_string()),
            "balance operations on LOT assets are not supported yet",
        )));
    }
    Ok(asset)
}

async fn post(conn: &mut PgConnection, actor: &Actor, entry: &NewEntry) -> Result<Uuid> {
    ledger::post(conn, actor.organization_id, entry)
        .await
        .map_err(|err| match err {
            PostError::InsufficientBalance => Error::Insufficient("insufficient balance".into()),
            PostError::Unbalanced => Error::Internal("postings do not balance".into()),
            PostError::Database(err) => Error::Database(err),
        })
}
