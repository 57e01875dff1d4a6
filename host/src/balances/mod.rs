//! Direct balance operations on a participant (E40–E43) and transfers between participants (E106), for SIMPLE
//! and LOT assets, and what the ledger shows of a participant: lots (E39), history (E45) and statement (E48);
//! program wallets are in `wallet`. Each is one balanced journal entry written under the participants' locks; on LOT assets the
//! lots are settled (expired, matured), spent oldest first and linked to the entry. Hold, release, forfeit and
//! transfer accept an `idempotency_key`.

pub mod wallet;

use crate::assets::Asset;
use crate::error::{Error, FieldError, Result};
use crate::idempotency::{self, Claim, Key};
use crate::ledger::lots::{self, LotSpec, NewLot, Plan, Selector};
use crate::ledger::{self, AccountKey, Bucket, NewEntry, Owner, PostError};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page};
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
    pub bucket: Bucket,
    pub allow_negative: bool,
}

/// HOLD moves AVAILABLE to HELD, RELEASE the reverse, FORFEIT takes `bucket` to breakage, VOID_HOLD returns
/// provisional HELD lots (credited straight into HELD) to where they came from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Operation {
    Hold,
    Release,
    Forfeit { bucket: Bucket },
    VoidHold,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Hold => "HOLD",
            Operation::Release => "RELEASE",
            Operation::Forfeit { .. } => "FORFEIT",
            Operation::VoidHold => "VOID_HOLD",
        }
    }

    /// Forfeit and void-hold are how value leaves a closed account, so they work whatever the status.
    pub fn requires_active(self) -> bool {
        matches!(self, Operation::Hold | Operation::Release)
    }

    /// The bucket the value leaves, and where it goes.
    fn movement(self, participant: Uuid, source: Owner) -> (Bucket, Owner, Bucket) {
        use Bucket::{Available, Held};
        match self {
            Operation::Hold => (Available, Owner::Participant(participant), Held),
            Operation::Release => (Held, Owner::Participant(participant), Available),
            Operation::Forfeit { bucket } => (bucket, Owner::Breakage, Available),
            Operation::VoidHold => (Held, source, Available),
        }
    }
}

/// Who makes an operation, for its journal entry: an API key, or a rule processing an event.
#[derive(Debug, Clone, Copy)]
pub struct By {
    pub organization_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub rule_id: Option<Uuid>,
}

impl By {
    pub fn api(actor: &Actor) -> Self {
        By {
            organization_id: actor.organization_id,
            api_key_id: Some(actor.api_key_id),
            event_id: None,
            rule_id: None,
        }
    }
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
    let holder = Owner::Participant(participant);
    let overdraft = a.allow_negative && a.bucket == Bucket::Available;
    let mut spent = None;
    let mut debt = Decimal::ZERO;
    if asset.has_lots() {
        lots::settle(&mut tx, participant, asset.id).await?;
        if a.debit {
            let plan = lots::plan(
                &mut tx,
                participant,
                asset.id,
                a.bucket,
                Some(a.amount),
                &Selector::default(),
            )
            .await?;
            if plan.total < a.amount && !overdraft {
                return Err(Error::Insufficient("insufficient balance".into()));
            }
            spent = Some(plan);
        } else {
            debt = debt_of(&mut tx, actor, participant, &asset).await?;
        }
    }
    let signed = if a.debit { -a.amount } else { a.amount };
    let entry = api_entry(
        actor,
        a.program_id,
        if a.debit { "DEBIT" } else { "CREDIT" },
        a.description,
        vec![
            (AccountKey::new(holder, asset.id, a.bucket), signed),
            (
                AccountKey::new(asset.source(a.program_id), asset.id, Bucket::Available),
                -signed,
            ),
        ],
    );
    let journal_entry_id = post(
        &mut tx,
        actor,
        &NewEntry {
            allow_negative: overdraft,
            ..entry
        },
    )
    .await?;
    match &spent {
        Some(plan) => lots::consume(&mut tx, journal_entry_id, plan).await?,
        None if asset.has_lots() => {
            let lot = new_lot(
                actor,
                &asset,
                a.program_id,
                participant,
                a.amount,
                a.bucket,
                debt,
            );
            lots::create(&mut tx, &[(journal_entry_id, &lot)]).await?;
        }
        None => {}
    }
    let balance = ledger::snapshot(&mut tx, actor.organization_id, holder, asset.id).await?;
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

/// E41–E44. Returns the result and whether it is a replay of an earlier request with the same key.
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
    let response = apply(
        &mut tx,
        By::api(actor),
        r.program_id,
        participant,
        &asset,
        op,
        r.description,
        r.amount,
        &r.lots,
    )
    .await?;
    if let Some(key) = &key {
        idempotency::remember(&mut tx, key, &response).await?;
    }
    tx.commit().await?;
    Ok((response, false))
}

/// Performs a hold, release, forfeit or void-hold in the caller's transaction. The participant is locked and
/// the asset checked by the caller; the API and rule actions share this.
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    conn: &mut PgConnection,
    by: By,
    program_id: Uuid,
    participant: Uuid,
    asset: &Asset,
    op: Operation,
    description: String,
    amount: Option<Decimal>,
    selector: &Selector,
) -> Result<Value> {
    let (from_bucket, to, to_bucket) = op.movement(participant, asset.source(program_id));
    if let Some(amount) = amount {
        asset
            .check_amount("amount", amount)
            .map_err(Error::invalid)?;
    }
    let plan = match asset.has_lots() {
        true => {
            lots::settle(conn, participant, asset.id).await?;
            // A hold stamps the lots it takes with its reference; the others select by it.
            let selection = match op {
                Operation::Hold => Selector {
                    reference_id: None,
                    ..selector.clone()
                },
                Operation::VoidHold => Selector {
                    provisional_only: true,
                    ..selector.clone()
                },
                _ => selector.clone(),
            };
            Some(lots::plan(conn, participant, asset.id, from_bucket, amount, &selection).await?)
        }
        _ if op == Operation::VoidHold => {
            return Err(Error::invalid(FieldError::invalid(
                "asset_id",
                "LOT asset",
                Some(asset.id.to_string()),
                "void-hold cancels provisional lots, which only LOT assets have",
            )));
        }
        _ if selector.is_set() => return Err(lot_fields_on_simple()),
        _ => None,
    };
    let amount = match (&plan, amount) {
        (Some(plan), Some(amount)) if plan.total < amount => {
            return Err(Error::Insufficient(format!(
                "the selected lots hold {}",
                asset.format(plan.total)
            )));
        }
        (Some(plan), _) => plan.total,
        (None, Some(amount)) => amount,
        (None, None) => ledger::snapshot(
            conn,
            by.organization_id,
            Owner::Participant(participant),
            asset.id,
        )
        .await?
        .bucket(from_bucket),
    };
    if amount <= Decimal::ZERO {
        return Err(Error::Insufficient(format!(
            "there is nothing in {from_bucket} to process"
        )));
    }
    let entry = NewEntry {
        program_id,
        action_type: op.name(),
        description: Some(description),
        event_id: by.event_id,
        rule_id: by.rule_id,
        reference_id: selector.reference_id.clone(),
        created_by_api_key_id: by.api_key_id,
        postings: vec![
            (
                AccountKey::new(Owner::Participant(participant), asset.id, from_bucket),
                -amount,
            ),
            (AccountKey::new(to, asset.id, to_bucket), amount),
        ],
        allow_negative: false,
    };
    let journal_entry_id = post_by(conn, by.organization_id, &entry).await?;
    if let Some(plan) = &plan {
        match op {
            Operation::Hold => {
                lots::shift(
                    conn,
                    journal_entry_id,
                    plan,
                    "HELD",
                    selector.reference_id.as_deref(),
                )
                .await?
            }
            Operation::Release => {
                lots::shift(conn, journal_entry_id, plan, "AVAILABLE", None).await?
            }
            Operation::Forfeit { .. } | Operation::VoidHold => {
                lots::consume(conn, journal_entry_id, plan).await?
            }
        }
    }
    let balance = ledger::snapshot(
        conn,
        by.organization_id,
        Owner::Participant(participant),
        asset.id,
    )
    .await?;
    let mut response = json!({
        "operation": op.name(),
        "amount_processed": asset.format(amount),
        "asset_id": asset.id,
        "program_id": program_id,
        "journal_entry_id": journal_entry_id,
        "balance": balance.to_json(asset.scale),
        "message": format!("Processed {}", asset.format(amount)),
    });
    if let Some(plan) = &plan {
        response["lots_processed"] = json!(plan.processed(asset.scale));
        response["reference_id"] = json!(selector.reference_id);
    }
    Ok(response)
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
    let mut postings = Vec::with_capacity(recipients.len() + 1);
    let mut total = Decimal::ZERO;
    for (i, (id, amount)) in recipients.iter().enumerate() {
        asset
            .check_amount(&format!("recipients[{i}].amount"), *amount)
            .map_err(Error::invalid)?;
        total += *amount;
        postings.push((
            AccountKey::new(Owner::Participant(*id), asset.id, Bucket::Available),
            *amount,
        ));
    }
    postings.push((
        AccountKey::new(Owner::Participant(source), asset.id, Bucket::Available),
        -total,
    ));
    let spent = match asset.has_lots() {
        true => Some(spend_lots(&mut tx, actor, &asset, source, &recipients, total).await?),
        false => None,
    };
    let journal_entry_id = post(
        &mut tx,
        actor,
        &api_entry(actor, t.program_id, "TRANSFER", t.description, postings),
    )
    .await?;
    if let Some((plan, debts)) = &spent {
        lots::consume(&mut tx, journal_entry_id, plan).await?;
        let created: Vec<NewLot> = recipients
            .iter()
            .zip(debts)
            .map(|((participant, amount), debt)| {
                new_lot(
                    actor,
                    &asset,
                    t.program_id,
                    *participant,
                    *amount,
                    Bucket::Available,
                    *debt,
                )
            })
            .collect();
        let created: Vec<(Uuid, &NewLot)> =
            created.iter().map(|lot| (journal_entry_id, lot)).collect();
        lots::create(&mut tx, &created).await?;
    }
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

/// The source's lots covering `total`, and each recipient's overdraft that their new lot repays first.
async fn spend_lots(
    conn: &mut PgConnection,
    actor: &Actor,
    asset: &Asset,
    source: Uuid,
    recipients: &[(Uuid, Decimal)],
    total: Decimal,
) -> Result<(Plan, Vec<Decimal>)> {
    lots::settle(conn, source, asset.id).await?;
    let plan = lots::plan(
        conn,
        source,
        asset.id,
        Bucket::Available,
        Some(total),
        &Selector::default(),
    )
    .await?;
    if plan.total < total {
        return Err(Error::Insufficient("insufficient balance".into()));
    }
    let mut debts = Vec::with_capacity(recipients.len());
    for (id, _) in recipients {
        debts.push(debt_of(conn, actor, *id, asset).await?);
    }
    Ok((plan, debts))
}

/// What a participant's AVAILABLE balance is below zero: an overdraft the next credit repays first.
async fn debt_of(
    conn: &mut PgConnection,
    actor: &Actor,
    participant: Uuid,
    asset: &Asset,
) -> Result<Decimal> {
    let available = ledger::snapshot(
        conn,
        actor.organization_id,
        Owner::Participant(participant),
        asset.id,
    )
    .await?
    .available;
    Ok(-available.min(Decimal::ZERO))
}

/// The lot of an API credit; one straight into HELD is a provisional accrual, which void-hold may cancel.
fn new_lot(
    actor: &Actor,
    asset: &Asset,
    program_id: Uuid,
    participant: Uuid,
    amount: Decimal,
    bucket: Bucket,
    debt: Decimal,
) -> NewLot {
    NewLot {
        organization_id: actor.organization_id,
        program_id,
        participant,
        asset_id: asset.id,
        amount,
        bucket,
        spec: LotSpec::default(),
        provisional: bucket == Bucket::Held,
        debt,
    }
}

/// An entry made by an API call rather than a rule.
fn api_entry(
    actor: &Actor,
    program_id: Uuid,
    action_type: &'static str,
    description: String,
    postings: Vec<(AccountKey, Decimal)>,
) -> NewEntry {
    NewEntry {
        program_id,
        action_type,
        description: Some(description),
        event_id: None,
        rule_id: None,
        reference_id: None,
        created_by_api_key_id: Some(actor.api_key_id),
        postings,
        allow_negative: false,
    }
}

fn lot_fields_on_simple() -> Error {
    Error::invalid(FieldError::invalid(
        "reference_id",
        "absent",
        None,
        "reference_id, lot_ids, earned_from and earned_to select lots, which only LOT assets have",
    ))
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

async fn post(conn: &mut PgConnection, actor: &Actor, entry: &NewEntry) -> Result<Uuid> {
    post_by(conn, actor.organization_id, entry).await
}

async fn post_by(conn: &mut PgConnection, organization_id: Uuid, entry: &NewEntry) -> Result<Uuid> {
    ledger::post(
        conn,
        organization_id,
        entry,
        &ledger::KnownAccounts::default(),
    )
    .await
    .map_err(|err| match err {
        PostError::InsufficientBalance => Error::Insufficient("insufficient balance".into()),
        PostError::Unbalanced => Error::Internal("postings do not balance".into()),
        PostError::Database(err) => Error::Database(err),
    })
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
    let page = Page::from_rows(rows, filter.limit, |lot| Cursor::new("", lot.id));
    Ok(page.map(|lot| crate::ledger::lots::LotView::new(lot, asset.scale)))
}

/// E45: the participant's postings, newest first.
pub async fn history(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    filter: crate::ledger::ActivityFilter,
) -> Result<Page<crate::ledger::ActivityRow>> {
    participants::require(pool, actor, id).await?;
    crate::ledger::history(pool, actor, crate::ledger::Owner::Participant(id), filter).await
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
