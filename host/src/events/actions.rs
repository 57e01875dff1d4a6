//! Executing one rule action inside an event's transaction. `Ok(Err(reason))` is a business failure: the
//! caller fails the whole event with it.

use super::batch::Batch;
use crate::assets::Asset;
use crate::automations::{FromRule, RuleSchedule};
use crate::balances::{self, Operated};
use crate::error::Error;
use crate::holders::Holder;
use crate::holders::state::{self, Origin, WindowChange};
use crate::ledger::Bucket;
use crate::ledger::lots::{LotSpec, Selector};
use crate::movement::{self, Account, Kind, Movement};
use crate::participants::{self, ParticipantStatus, State};
use crate::rules::budgets;
use crate::rules::cel::{Template, Variables};
use crate::rules::evaluation::EvaluationReason;
use crate::rules::{ActionType, CompiledAction, CompiledRule, Step, TargetRef};
use crate::tiers::holders::Assigned;
use chrono::{DateTime, Utc};
use serde::Serialize;
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
    /// Who actions apply to without a `target`: the recipient if the event has one, else its participant;
    /// nobody for a program-wide SYSTEM event.
    pub default_target: Option<Uuid>,
    pub vars: &'a Variables,
    /// Participants this event has locked, with their state as the event began.
    pub participants: HashMap<Uuid, State>,
    pub batch: &'a mut Batch,
}

type Outcome = sqlx::Result<Result<ActionResult, String>>;

/// What one action did, as the event's evaluation records it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ActionResult {
    Money(Money),
    Operation(Operated),
    Tag {
        #[serde(rename = "type")]
        kind: ActionType,
        #[serde(flatten)]
        holder: Holder,
        tag: String,
        changed: bool,
    },
    ProgramTag {
        #[serde(rename = "type")]
        kind: ActionType,
        program_id: Uuid,
        tag: String,
        changed: bool,
    },
    Counter {
        #[serde(rename = "type")]
        kind: ActionType,
        #[serde(flatten)]
        holder: Holder,
        key: String,
        previous: String,
        value: String,
    },
    Attribute {
        #[serde(rename = "type")]
        kind: ActionType,
        #[serde(flatten)]
        holder: Holder,
        key: String,
        value: String,
        previous: Option<String>,
    },
    /// SCHEDULE_EVENT and BROADCAST: the automation that will create the event(s).
    Scheduled {
        #[serde(rename = "type")]
        kind: ActionType,
        automation_id: Uuid,
        event_name: String,
        /// SCHEDULE_EVENT: whom the event is about (none for a program-wide event).
        #[serde(skip_serializing_if = "Option::is_none")]
        participant_id: Option<Uuid>,
        scheduled_at: DateTime<Utc>,
    },
    /// SET_TIER; `skipped` when the tier is archived, which changes nothing.
    Tier {
        #[serde(rename = "type")]
        kind: ActionType,
        #[serde(flatten)]
        holder: Holder,
        tier: String,
        level: String,
        previous: Option<String>,
        skipped: bool,
    },
}

/// A CREDIT or DEBIT: made, or a credit its budget could not cover.
#[derive(Debug, Serialize)]
pub struct Money {
    #[serde(rename = "type")]
    kind: ActionType,
    asset_id: Uuid,
    amount: String,
    #[serde(flatten)]
    holder: Holder,
    #[serde(skip_serializing_if = "Option::is_none")]
    journal_entry_id: Option<Uuid>,
    /// A credit that replaced a provisional hold of the same reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    settle: Option<movement::Settlement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed: Option<EvaluationReason>,
}

impl ActionResult {
    /// A credit its budget could not cover: the rule matched, nothing was credited.
    pub fn suppressed(&self) -> bool {
        matches!(
            self,
            ActionResult::Money(Money {
                suppressed: Some(_),
                ..
            })
        )
    }

    /// Drops the link to the journal entry, which the event's failure rolled back.
    pub fn forget_entry(&mut self) {
        match self {
            ActionResult::Money(money) => money.journal_entry_id = None,
            ActionResult::Operation(operated) => operated.journal_entry_id = None,
            _ => {}
        }
    }
}

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
    if let Step::Broadcast {
        event_name,
        payload,
    } = &action.step
    {
        let at = ctx.vars.now;
        return schedule(
            conn,
            ctx,
            action,
            event_name,
            payload,
            RuleSchedule::Broadcast { at },
        )
        .await;
    }
    if let (TargetRef::Event, None, Step::ScheduleEvent { .. }) =
        (&action.target, ctx.default_target, &action.step)
    {
        return schedule_event(conn, ctx, action, None).await;
    }
    if let (TargetRef::Program, Step::Tag { tag, add }) = (&action.target, &action.step) {
        let changed =
            crate::programs::set_tag(conn, ctx.organization_id, ctx.program_id, tag, *add).await?;
        return Ok(Ok(ActionResult::ProgramTag {
            kind: action.kind,
            program_id: ctx.program_id,
            tag: tag.clone(),
            changed,
        }));
    }
    let target = match resolve_target(conn, ctx, &action.target).await? {
        Ok(target) => target,
        Err(reason) => return Ok(Err(reason)),
    };
    if let Holder::Participant(id) = target {
        let status = ctx
            .participants
            .get(&id)
            .map_or(ParticipantStatus::Closed, |p| p.status);
        if status != ParticipantStatus::Active && action.kind.blocked_when_inactive() {
            return Ok(Err(format!("participant is {status}")));
        }
        // Its state changes: the batch reads it again before it is next used.
        if !matches!(action.step, Step::Money { .. } | Step::Operation { .. }) {
            ctx.batch.stale.insert(id);
        }
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
        Step::ScheduleEvent { .. } => match target {
            Holder::Participant(id) => return schedule_event(conn, ctx, action, Some(id)).await,
            Holder::Group(_) => return Ok(Err("SCHEDULE_EVENT needs a participant".into())),
        },
        Step::Broadcast { .. } => return Ok(Err("BROADCAST takes no target".into())),
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
            let amount = match amount.as_ref().map(|a| a.value(ctx.vars)) {
                Some(Ok(amount)) => Some(amount),
                Some(Err(reason)) => return Ok(Err(format!("amount {reason}"))),
                None => None,
            };
            let reference_id = match reference.as_ref().map(|r| r.render(ctx.vars)) {
                Some(Ok(reference)) => Some(reference),
                Some(Err(err)) => return Ok(Err(format!("reference_id expression failed: {err}"))),
                None => None,
            };
            let description = description
                .clone()
                .unwrap_or_else(|| format!("{}: {}", rule.name, op.name()));
            let kind = Kind::Operation {
                op: *op,
                amount,
                lots: Selector {
                    reference_id: reference_id.clone(),
                    ..Selector::default()
                },
            };
            let m = by_rule(ctx, rule, &asset, target, kind, description, false);
            let moved = match movement::plan(conn, &m).await {
                Ok(planned) => {
                    movement::post(conn, ctx.organization_id, planned, &mut movement::Direct).await
                }
                Err(err) => Err(err),
            };
            return match moved {
                Ok(moved) => {
                    let result = balances::operation_result(
                        conn,
                        ctx.organization_id,
                        ctx.program_id,
                        target,
                        &asset,
                        *op,
                        &moved,
                        reference_id,
                    )
                    .await?;
                    Ok(Ok(ActionResult::Operation(result)))
                }
                Err(err) => refusal(err),
            };
        }
        Step::Tag { tag, add } => {
            let changed = state::set_tag(conn, &origin, target.id(), tag, *add).await?;
            ActionResult::Tag {
                kind: action.kind,
                holder: target,
                tag: tag.clone(),
                changed,
            }
        }
        Step::Counter { key, delta, window } => {
            let delta = match delta.value(ctx.vars) {
                Ok(delta) => delta,
                Err(reason) => return Ok(Err(format!("value {reason}"))),
            };
            let window = window.clone().map_or(WindowChange::Keep, WindowChange::Set);
            let incremented =
                state::increment_counter(conn, &origin, target.id(), key, delta, window).await?;
            let (old, new) = match incremented {
                Ok(values) => values,
                Err(invalid) => return Ok(Err(format!("counter {key} would be {invalid}"))),
            };
            ActionResult::Counter {
                kind: action.kind,
                holder: target,
                key: key.clone(),
                previous: old.normalize().to_string(),
                value: new.normalize().to_string(),
            }
        }
        Step::Attribute { key, value } => {
            let value = match value.render(ctx.vars) {
                Ok(value) if !value.is_empty() && value.chars().count() <= 1000 => value,
                Ok(_) => return Ok(Err("attribute values must be 1 to 1000 characters".into())),
                Err(err) => return Ok(Err(format!("value expression failed: {err}"))),
            };
            let previous = state::set_attribute(conn, &origin, target.id(), key, &value).await?;
            ActionResult::Attribute {
                kind: action.kind,
                holder: target,
                key: key.clone(),
                value,
                previous,
            }
        }
        Step::Tier {
            tier,
            level,
            expires,
        } => {
            let expires_at = expires.as_ref().map(|when| when.from(ctx.vars.now));
            let assigned = crate::tiers::holders::assign_by_rule(
                conn, &origin, target, tier, level, expires_at,
            )
            .await?;
            let (previous, skipped) = match assigned {
                Ok(Assigned::Set { previous }) => (previous, false),
                Ok(Assigned::TierArchived) => (None, true),
                Err(reason) => return Ok(Err(reason)),
            };
            ActionResult::Tier {
                kind: action.kind,
                holder: target,
                tier: tier.clone(),
                level: level.clone(),
                previous,
                skipped,
            }
        }
    };
    Ok(Ok(result))
}

/// SCHEDULE_EVENT: an event about `participant`, the delay after this event's time.
async fn schedule_event(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    action: &CompiledAction,
    participant: Option<Uuid>,
) -> Outcome {
    let Step::ScheduleEvent {
        event_name,
        delay,
        payload,
    } = &action.step
    else {
        return Ok(Err("not a SCHEDULE_EVENT action".into()));
    };
    let at = ctx.vars.now + *delay;
    let kind = RuleSchedule::Later { participant, at };
    schedule(conn, ctx, action, event_name, payload, kind).await
}

/// Writes the automation of a SCHEDULE_EVENT or BROADCAST; the scheduler creates the events.
async fn schedule(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    action: &CompiledAction,
    event_name: &str,
    payload: &serde_json::Map<String, serde_json::Value>,
    kind: RuleSchedule,
) -> Outcome {
    let from = FromRule {
        organization_id: ctx.organization_id,
        program_id: ctx.program_id,
        event_id: ctx.event_id,
        event_name: event_name.to_owned(),
        payload: payload.clone(),
        kind,
    };
    let automation_id = crate::automations::create_from_rule(conn, from).await?;
    let (participant_id, scheduled_at) = match kind {
        RuleSchedule::Later { participant, at } => (participant, at),
        RuleSchedule::Broadcast { at } => (None, at),
    };
    Ok(Ok(ActionResult::Scheduled {
        kind: action.kind,
        automation_id,
        event_name: event_name.to_owned(),
        participant_id,
        scheduled_at,
    }))
}

/// CREDIT issues value to the holder; DEBIT takes it back. Value comes from and returns to the system
/// issuance account for UNLIMITED assets, and the program wallet for PREFUNDED ones.
async fn money(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    rule: &CompiledRule,
    action: &CompiledAction,
    holder: Holder,
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
    let amount = match amount.value(ctx.vars) {
        Ok(amount) => amount,
        Err(reason) => return Ok(Err(format!("amount {reason}"))),
    };
    let is_lot = asset.has_lots();
    // A CEL rule's lot fields were checked against its asset when it was written; a wasm rule's are here.
    if !is_lot && lot.is_set() {
        return Ok(Err(
            "bucket HELD, expires_at, matures_at and reference_id need a LOT asset".into(),
        ));
    }
    let kind = match debit {
        true => Kind::Debit {
            amount,
            bucket: Bucket::Available,
            allow_negative: *allow_negative,
        },
        // A credit's lot dates count from the event's time.
        false => Kind::Credit {
            amount,
            bucket: if lot.held {
                Bucket::Held
            } else {
                Bucket::Available
            },
            lot: LotSpec {
                expires_at: lot.expires.as_ref().map(|when| when.from(ctx.vars.now)),
                matures_at: lot.matures.as_ref().map(|when| when.from(ctx.vars.now)),
                reference_id: match lot.reference.as_ref().map(|r| r.render(ctx.vars)) {
                    Some(Ok(reference)) => Some(reference),
                    Some(Err(err)) => {
                        return Ok(Err(format!("reference_id expression failed: {err}")));
                    }
                    None => None,
                },
            },
        },
    };
    let budgeted = ctx.batch.budgeted.contains(&(rule.id, asset.id));
    // A plain LOT credit skips settling when the batch knows the holder has nothing to settle (no overdraft
    // to repay, no lot due), and is then deferred like any other credit its source allows. One that settles a
    // hold, or whose lot is born expired, takes the full path.
    let plain_credit = match &kind {
        Kind::Credit { lot, .. } => {
            lot.reference_id.is_none() && lot.expires_at.is_none_or(|at| at > chrono::Utc::now())
        }
        _ => false,
    };
    let known_clear = match holder {
        Holder::Participant(participant) if is_lot && plain_credit && !budgeted => {
            ctx.batch
                .has_nothing_to_settle(conn, participant, asset.id)
                .await?
        }
        _ => false,
    };
    if budgeted || (is_lot && !known_clear) {
        ctx.batch.begin_writes(conn).await?;
    }
    let description = description
        .clone()
        .unwrap_or_else(|| format!("{}: {} {}", rule.name, asset.format(amount), asset.symbol));
    let m = by_rule(ctx, rule, &asset, holder, kind, description, known_clear);
    let planned = match movement::plan(conn, &m).await {
        Ok(planned) => planned,
        Err(err) => return refusal(err),
    };
    if !debit
        && budgeted
        && !budgets::draw(conn, rule.id, asset.id, amount, ctx.batch.budget_slot).await?
    {
        // The budget cannot cover the credit: the rule matched, the credit is not made.
        return Ok(Ok(ActionResult::Money(Money {
            kind: action.kind,
            asset_id: asset.id,
            amount: asset.format(amount),
            holder,
            journal_entry_id: None,
            settle: None,
            suppressed: Some(EvaluationReason::BudgetExceeded),
        })));
    }
    match movement::post(conn, ctx.organization_id, planned, ctx.batch).await {
        Ok(moved) => Ok(Ok(ActionResult::Money(Money {
            kind: action.kind,
            asset_id: asset.id,
            amount: asset.format(amount),
            holder,
            journal_entry_id: Some(moved.journal_entry_id),
            settle: moved
                .settled_hold
                .map(|held| movement::Settlement::new(amount, held, asset.scale)),
            suppressed: None,
        }))),
        Err(err) => refusal(err),
    }
}

/// A movement a rule makes while processing the event.
fn by_rule<'a>(
    ctx: &EventContext<'_>,
    rule: &CompiledRule,
    asset: &'a Asset,
    holder: Holder,
    kind: Kind,
    description: String,
    known_clear: bool,
) -> Movement<'a> {
    Movement {
        organization_id: ctx.organization_id,
        program_id: ctx.program_id,
        asset,
        account: Account::Holder(holder),
        kind,
        origin: movement::Origin::Rule {
            event_id: ctx.event_id,
            rule_id: rule.id,
        },
        description: Some(description),
        known_clear,
    }
}

/// A movement the ledger refused fails the event with the reason; a database error is the batch's.
fn refusal(err: Error) -> Outcome {
    match err {
        Error::Database(err) => Err(err),
        Error::Invalid(problems) => Ok(Err(problems
            .into_iter()
            .map(|p| p.message)
            .collect::<Vec<_>>()
            .join("; "))),
        other => Ok(Err(other.to_string())),
    }
}

/// The holder an action applies to, locked: a participant, enrolled in the event's program, or a group.
async fn resolve_target(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    target: &TargetRef,
) -> sqlx::Result<Result<Holder, String>> {
    let render = |template: &Template| {
        template
            .render(ctx.vars)
            .map_err(|err| format!("target expression failed: {err}"))
    };
    let id = match target {
        TargetRef::Event => {
            return Ok(ctx
                .default_target
                .map(Holder::Participant)
                .ok_or_else(no_participant));
        }
        TargetRef::Program => return Ok(Err("only TAG and UNTAG can target the program".into())),
        TargetRef::Group(id) => return group_target(conn, ctx, *id).await,
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
    Ok(Ok(Holder::Participant(id)))
}

fn no_participant() -> String {
    "the event is about no participant: the action needs a target".into()
}

/// The group an action applies to, locked after the batch's participants: the one named, or else the ACTIVE
/// group the event's participant (its recipient if it has one) joined first.
async fn group_target(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    id: Option<Uuid>,
) -> sqlx::Result<Result<Holder, String>> {
    ctx.batch.begin_writes(conn).await?;
    let id = match id {
        Some(id) => id,
        None => {
            let Some(member) = ctx.default_target else {
                return Ok(Err(no_participant()));
            };
            match crate::groups::first_of(conn, member).await? {
                Some(id) => id,
                None => return Ok(Err(format!("participant {member} is in no active group"))),
            }
        }
    };
    Ok(
        match crate::groups::lock(conn, ctx.organization_id, id).await? {
            Some(group) if group.require_active().is_ok() => Ok(Holder::Group(id)),
            Some(_) => Err(format!("group {id} is archived")),
            None => Err(format!("target group {id} not found")),
        },
    )
}
