//! Executing one rule action inside an event's transaction. `Ok(Err(reason))` is a business failure: the
//! caller fails the whole event with it.

use super::batch::Batch;
use crate::assets::Asset;
use crate::balances::{self, By};
use crate::error::Error;
use crate::ledger::lots::{self, LotSpec, NewLot, Selector};
use crate::ledger::{self, AccountKey, Bucket, NewEntry, Owner, PostError};
use crate::participants::state::{self, Origin, WindowChange};
use crate::participants::{self, ParticipantStatus, State};
use crate::rules::budgets;
use crate::rules::cel::{Template, Variables};
use crate::rules::{Amount, BLOCKED_WHEN_INACTIVE, CompiledAction, CompiledRule, Step, TargetRef};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

/// Everything the actions of one event share.
pub struct EventContext<'a> {
    pub event_id: Uuid,
    pub organization_id: Uuid,
    pub program_id: Uuid,
    /// Whether an unknown `external_id` in a target creates the participant (the program's policy).
    pub create_unknown: bool,
    /// Who actions apply to without a `target`: the recipient if the event has one, else its participant.
    pub default_target: Uuid,
    pub vars: &'a Variables,
    /// Participants this event has locked, with their state as the event began.
    pub participants: HashMap<Uuid, State>,
    pub batch: &'a mut Batch,
}

type Outcome = sqlx::Result<Result<Value, String>>;

pub async fn execute(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    rule: &CompiledRule,
    action: &CompiledAction,
) -> Outcome {
    // Credits and debits decide for themselves (see `money`); every other action writes.
    if !matches!(action.step, Step::Money { .. }) {
        ctx.batch.begin_writes(conn).await?;
    }
    let target = match resolve_target(conn, ctx, &action.target).await? {
        Ok(target) => target,
        Err(reason) => return Ok(Err(reason)),
    };
    let status = ctx
        .participants
        .get(&target)
        .map_or(ParticipantStatus::Closed, |p| p.status);
    if status != ParticipantStatus::Active && BLOCKED_WHEN_INACTIVE.contains(&action.kind.as_str())
    {
        return Ok(Err(format!("participant is {status}")));
    }
    let origin = Origin {
        organization_id: ctx.organization_id,
        program_id: Some(ctx.program_id),
        event_id: Some(ctx.event_id),
        rule_id: Some(rule.id),
        api_key_id: None,
    };
    let result = match &action.step {
        Step::Money { .. } => return money(conn, ctx, rule, action, target).await,
        Step::Operation {
            op,
            asset_id,
            amount,
            description,
            reference,
        } => {
            let asset = match ctx
                .batch
                .asset(conn, ctx.organization_id, ctx.program_id, *asset_id)
                .await?
            {
                Ok(asset) => asset,
                Err(reason) => return Ok(Err(reason)),
            };
            let amount = match amount.as_ref().map(|a| evaluate(a, ctx.vars)) {
                Some(Ok(amount)) => Some(amount),
                Some(Err(reason)) => return Ok(Err(format!("amount {reason}"))),
                None => None,
            };
            let reference_id = match reference.as_ref().map(|r| r.render(ctx.vars)) {
                Some(Ok(reference)) => Some(reference),
                Some(Err(err)) => return Ok(Err(format!("reference_id expression failed: {err}"))),
                None => None,
            };
            let by = By {
                organization_id: ctx.organization_id,
                api_key_id: None,
                event_id: Some(ctx.event_id),
                rule_id: Some(rule.id),
            };
            let description = description
                .clone()
                .unwrap_or_else(|| format!("{}: {}", rule.name, op.name()));
            let selector = Selector {
                reference_id,
                ..Selector::default()
            };
            return match balances::apply(
                conn,
                by,
                ctx.program_id,
                target,
                &asset,
                *op,
                description,
                amount,
                &selector,
            )
            .await
            {
                Ok(result) => Ok(Ok(result)),
                Err(Error::Database(err)) => Err(err),
                Err(Error::Invalid(problems)) => Ok(Err(problems
                    .into_iter()
                    .map(|p| p.message)
                    .collect::<Vec<_>>()
                    .join("; "))),
                Err(other) => Ok(Err(other.to_string())),
            };
        }
        Step::Tag { tag, add } => {
            ctx.batch.stale.insert(target);
            let changed = state::set_tag(conn, &origin, target, tag, *add).await?;
            json!({"type": action.kind, "participant_id": target, "tag": tag, "changed": changed})
        }
        Step::Counter { key, delta, window } => {
            let delta = match evaluate(delta, ctx.vars) {
                Ok(delta) => delta,
                Err(reason) => return Ok(Err(format!("value {reason}"))),
            };
            let window = window.clone().map_or(WindowChange::Keep, WindowChange::Set);
            ctx.batch.stale.insert(target);
            let (old, new) =
                match state::increment_counter(conn, &origin, target, key, delta, window).await? {
                    Ok(values) => values,
                    Err(invalid) => return Ok(Err(format!("counter {key} would be {invalid}"))),
                };
            json!({"type": action.kind, "participant_id": target, "key": key,
                   "previous": old.normalize().to_string(), "value": new.normalize().to_string()})
        }
        Step::Attribute { key, value } => {
            let value = match value.render(ctx.vars) {
                Ok(value) if !value.is_empty() && value.chars().count() <= 1000 => value,
                Ok(_) => return Ok(Err("attribute values must be 1 to 1000 characters".into())),
                Err(err) => return Ok(Err(format!("value expression failed: {err}"))),
            };
            ctx.batch.stale.insert(target);
            let previous = state::set_attribute(conn, &origin, target, key, &value).await?;
            json!({"type": action.kind, "participant_id": target, "key": key, "value": value, "previous": previous})
        }
    };
    Ok(Ok(result))
}

/// CREDIT issues value to the participant; DEBIT takes it back. Value comes from and returns to the system
/// issuance account for UNLIMITED assets, and the program wallet for PREFUNDED ones.
async fn money(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    rule: &CompiledRule,
    action: &CompiledAction,
    participant: Uuid,
) -> Outcome {
    let Step::Money {
        debit,
        asset_id,
        amount,
        description,
        allow_negative,
        lot,
    } = &action.step
    else {
        return Ok(Err("not a money action".into()));
    };
    let asset = match ctx
        .batch
        .asset(conn, ctx.organization_id, ctx.program_id, *asset_id)
        .await?
    {
        Ok(asset) => asset,
        Err(reason) => return Ok(Err(reason)),
    };
    if asset.status != crate::assets::AssetStatus::Active {
        return Ok(Err("asset is archived".into()));
    }
    let amount = match evaluate(amount, ctx.vars) {
        Ok(amount) => amount,
        Err(reason) => return Ok(Err(format!("amount {reason}"))),
    };
    if let Err(problem) = asset.check_amount("amount", amount) {
        return Ok(Err(problem.message));
    }
    let budgeted = ctx.batch.budgeted.contains(&(rule.id, asset.id));
    let is_lot = asset.has_lots();
    // A CEL rule's lot fields were checked against its asset when it was written; a wasm rule's are here.
    if !is_lot && lot.is_set() {
        return Ok(Err(
            "bucket HELD, expires_at, matures_at and reference_id need a LOT asset".into(),
        ));
    }
    // A credit's lot: its dates count from the event's time; DEFERRED until it matures.
    let mut spec = LotSpec::default();
    let mut bucket = Bucket::Available;
    if !*debit && is_lot {
        spec.expires_at = lot.expires.as_ref().map(|when| when.from(ctx.vars.now));
        spec.matures_at = lot.matures.as_ref().map(|when| when.from(ctx.vars.now));
        spec.reference_id = match lot.reference.as_ref().map(|r| r.render(ctx.vars)) {
            Some(Ok(reference)) => Some(reference),
            Some(Err(err)) => return Ok(Err(format!("reference_id expression failed: {err}"))),
            None => None,
        };
        bucket = spec.bucket(
            if lot.held {
                Bucket::Held
            } else {
                Bucket::Available
            },
            chrono::Utc::now(),
        );
    }
    // A plain LOT credit skips settling when the batch knows the holder has nothing to settle (no overdraft
    // to repay, no lot due), and is then deferred like any other credit its source allows. One that settles a
    // hold, or whose lot is born expired, takes the full path.
    let born_expired = spec.expires_at.is_some_and(|at| at <= chrono::Utc::now());
    let nothing_to_settle = is_lot
        && !*debit
        && !budgeted
        && spec.reference_id.is_none()
        && !born_expired
        && ctx
            .batch
            .has_nothing_to_settle(conn, participant, asset.id)
            .await?;
    let settles_lots = is_lot && !nothing_to_settle;
    if budgeted || settles_lots {
        ctx.batch.begin_writes(conn).await?;
    }
    if !debit
        && budgeted
        && !budgets::draw(conn, rule.id, asset.id, amount, ctx.batch.budget_slot).await?
    {
        // The budget cannot cover the credit: the rule matched, the credit is not made.
        return Ok(Ok(json!({
            "type": action.kind,
            "asset_id": asset.id,
            "amount": asset.format(amount),
            "participant_id": participant,
            "suppressed": crate::rules::evaluation::EvaluationReason::BudgetExceeded,
        })));
    }
    // LOT assets: spend from lots (oldest first), credit into a new lot after repaying any overdraft.
    let holder = Owner::Participant(participant);
    let (mut plan, mut debt) = (None, Decimal::ZERO);
    if settles_lots {
        lots::settle(conn, participant, asset.id).await?;
        if *debit {
            let taken = lots::plan(
                conn,
                participant,
                asset.id,
                Bucket::Available,
                Some(amount),
                &Selector::default(),
            )
            .await?;
            if taken.total < amount && !allow_negative {
                return Ok(Err("insufficient balance".into()));
            }
            plan = Some(taken);
        } else {
            debt = -ledger::snapshot(conn, ctx.organization_id, holder, asset.id)
                .await?
                .available
                .min(Decimal::ZERO);
        }
    }
    let mut entry = money_entry(
        ctx,
        rule,
        *debit,
        description.clone(),
        *allow_negative,
        &asset,
        participant,
        amount,
        bucket,
    );
    // Settlement: an AVAILABLE credit with the reference of provisional HELD lots replaces them. What was held
    // goes back to its source in the same entry; `delta` is what the settlement differs from the hold.
    let mut settled = None;
    if let (false, Bucket::Available, Some(reference)) = (*debit, bucket, spec.reference_id.clone())
    {
        let selector = Selector {
            reference_id: Some(reference),
            provisional_only: true,
            ..Selector::default()
        };
        let held = lots::plan(conn, participant, asset.id, Bucket::Held, None, &selector).await?;
        if held.total > Decimal::ZERO {
            entry
                .postings
                .push((AccountKey::new(holder, asset.id, Bucket::Held), -held.total));
            entry.postings.push((
                AccountKey::new(asset.source(ctx.program_id), asset.id, Bucket::Available),
                held.total,
            ));
            settled = Some(held);
        }
    }
    let credited = (is_lot && !*debit).then_some(NewLot {
        organization_id: ctx.organization_id,
        program_id: ctx.program_id,
        participant,
        asset_id: asset.id,
        amount,
        bucket,
        spec,
        provisional: lot.held,
        debt,
    });
    match ctx
        .batch
        .post(conn, ctx.organization_id, entry, credited)
        .await
    {
        Ok(journal_entry_id) => {
            if let Some(held) = &settled {
                lots::consume(conn, journal_entry_id, held).await?;
            }
            if let Some(plan) = &plan {
                lots::consume(conn, journal_entry_id, plan).await?;
            }
            let mut result = json!({
                "type": action.kind,
                "asset_id": asset.id,
                "amount": asset.format(amount),
                "participant_id": participant,
                "journal_entry_id": journal_entry_id,
            });
            if let Some(held) = &settled {
                result["settle"] = json!({"held_amount": asset.format(held.total), "delta": asset.format(amount - held.total)});
            }
            Ok(Ok(result))
        }
        Err(PostError::InsufficientBalance) if !debit => {
            Ok(Err("insufficient program wallet balance".into()))
        }
        Err(PostError::InsufficientBalance) => Ok(Err("insufficient balance".into())),
        Err(PostError::Unbalanced) => Ok(Err("postings do not balance".into())),
        Err(PostError::Database(err)) => Err(err),
    }
}

#[allow(clippy::too_many_arguments)]
fn money_entry(
    ctx: &EventContext<'_>,
    rule: &CompiledRule,
    debit: bool,
    description: Option<String>,
    allow_negative: bool,
    asset: &Asset,
    participant: Uuid,
    amount: Decimal,
    bucket: Bucket,
) -> NewEntry {
    let source = asset.source(ctx.program_id);
    let account = |owner, bucket| AccountKey::new(owner, asset.id, bucket);
    let signed = if debit { -amount } else { amount };
    NewEntry {
        program_id: ctx.program_id,
        action_type: if debit { "DEBIT" } else { "CREDIT" },
        description: Some(description.unwrap_or_else(|| {
            format!("{}: {} {}", rule.name, asset.format(amount), asset.symbol)
        })),
        event_id: Some(ctx.event_id),
        rule_id: Some(rule.id),
        reference_id: None,
        created_by_api_key_id: None,
        postings: vec![
            (account(Owner::Participant(participant), bucket), signed),
            (account(source, Bucket::Available), -signed),
        ],
        allow_negative,
    }
}

/// A number from a literal or an expression; `Err` says why not, to follow the field's name.
fn evaluate(amount: &Amount, vars: &Variables) -> Result<Decimal, String> {
    match amount {
        Amount::Literal(amount) => Ok(*amount),
        Amount::Expression(Ok(expression)) => expression
            .amount(vars)
            .map_err(|err| format!("expression failed: {err}")),
        Amount::Expression(Err(compile_error)) => Err(format!("does not compile: {compile_error}")),
    }
}

/// The participant an action applies to, locked and enrolled in the event's program.
async fn resolve_target(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    target: &TargetRef,
) -> sqlx::Result<Result<Uuid, String>> {
    let render = |template: &Template| {
        template
            .render(ctx.vars)
            .map_err(|err| format!("target expression failed: {err}"))
    };
    let id = match target {
        TargetRef::Event => return Ok(Ok(ctx.default_target)),
        TargetRef::Id(id) => *id,
        TargetRef::ParticipantId(template) => {
            match render(template).map(|text| Uuid::parse_str(&text)) {
                Ok(Ok(id)) => id,
                Ok(Err(_)) => return Ok(Err("target participant_id is not a UUID".into())),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        TargetRef::ExternalId(template) => {
            let external_id = match render(template) {
                Ok(external_id) if !external_id.is_empty() => external_id,
                Ok(_) => return Ok(Err("target external_id is empty".into())),
                Err(reason) => return Ok(Err(reason)),
            };
            // It may create the participant.
            ctx.batch.begin_writes(conn).await?;
            match participants::resolve_external(
                conn,
                ctx.organization_id,
                &external_id,
                ctx.create_unknown,
            )
            .await
            {
                Ok(Some(id)) => {
                    ctx.batch
                        .created_by_action(ctx.organization_id, &external_id, id);
                    id
                }
                Ok(None) => {
                    return Ok(Err(format!(
                        "target participant with external_id {external_id} not found"
                    )));
                }
                Err(crate::error::Error::Database(err)) => return Err(err),
                Err(other) => return Ok(Err(other.to_string())),
            }
        }
    };
    if !ctx.participants.contains_key(&id) {
        let Some(state) = ctx
            .batch
            .enter(conn, ctx.organization_id, ctx.program_id, id)
            .await?
        else {
            return Ok(Err(format!("target participant {id} not found")));
        };
        ctx.participants.insert(id, state);
    }
    Ok(Ok(id))
}
