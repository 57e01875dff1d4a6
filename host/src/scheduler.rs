//! The automation scheduler: every `scrip serve` with workers runs it, and Postgres is its only coordinator.
//! Three passes, each a transaction over rows claimed with SKIP LOCKED, so any number of processes share the
//! work and a crash loses nothing committed:
//!
//! - due automations fire: a program-scoped one stores its SYSTEM event; a participants-scoped one starts a
//!   fan-out; a participant_state one starts a pass that (re)makes its subscriptions;
//! - fan-outs advance a page of participants at a time (in id order, from a stored cursor), one event per
//!   participant that passes the filter and guard, all stored by one statement; a fan-out waits while its
//!   organization has a full queue, so live events are never far behind it;
//! - due subscriptions fire, each for one participant.
//!
//! Every event's idempotency key names the automation, the fire time and the participant, so a page redone
//! after a crash, or raced by another process, stores nothing twice. Time is the `Clock`'s. A server that was
//! down catches up: a fire that fell due while it was down happens once, late, stamped with its due time, and
//! the recurring fires missed meanwhile are not made up.

use crate::automations::schedule::{self, StateSchedule};
use crate::automations::{
    self, Automation, Due, FanOut, REFRESH_EVERY, Scope, SubscriptionDue, SubscriptionStatus,
    SubscriptionUpdate, Timing, TriggerType,
};
use crate::clock::Clock;
use crate::events::{self, Doorbell, SystemEvent};
use crate::participants::{self, State};
use crate::rules::cel::{self, Expression, Variables};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use sqlx::PgPool;
use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

const POLL: Duration = Duration::from_millis(500);
/// Automations fired per transaction.
const FIRE_BATCH: i64 = 100;
/// Subscriptions fired per transaction.
const SUBSCRIPTION_BATCH: i64 = 1000;

/// How fan-outs go: `SCRIP_FAN_OUT_PAGE` participants per transaction, and a pause while the organization
/// has `SCRIP_FAN_OUT_ROOM` events queued.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub page: i64,
    pub room: i64,
}

impl Default for Settings {
    fn default() -> Self {
        // Live events of the organization wait behind at most about room + page fan-out events.
        Settings {
            page: 500,
            room: 1000,
        }
    }
}

/// What every pass needs.
struct Scheduler {
    pool: PgPool,
    clock: Clock,
    doorbell: Doorbell,
    settings: Settings,
}

/// Runs the passes until `stopped`, going straight on while there is work and polling when there is none.
pub async fn run(
    pool: PgPool,
    clock: Clock,
    doorbell: Doorbell,
    settings: Settings,
    mut stopped: watch::Receiver<bool>,
) {
    let scheduler = Scheduler {
        pool,
        clock,
        doorbell,
        settings,
    };
    while !*stopped.borrow() {
        match scheduler.pass().await {
            Ok(0) => {}
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(error = %err, "automation scheduler pass failed; will retry")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => {}
        }
    }
}

impl Scheduler {
    /// One of each pass; returns how much they did.
    async fn pass(&self) -> sqlx::Result<usize> {
        let (pool, clock, doorbell) = (&self.pool, &self.clock, &self.doorbell);
        Ok(fire_due(pool, clock, doorbell).await?
            + fan_out(pool, clock, doorbell, self.settings).await?
            + fire_subscriptions(pool, clock, doorbell).await?)
    }
}

/// What an automation's events hold: its payload, with `type` its event name.
fn event_data(a: &Automation) -> Map<String, Value> {
    let mut data = a.payload.0.as_object().cloned().unwrap_or_default();
    data.insert("type".into(), Value::String(a.event_name.clone()));
    data
}

/// The idempotency key of what `a` creates for its fire at `at`, for `participant` if it fans out.
fn key(a: &Automation, at: DateTime<Utc>, participant: Option<Uuid>) -> String {
    let at = crate::pagination::time_key(at);
    match participant {
        Some(p) => format!("automation:{}:{at}:{p}", a.id),
        None => format!("automation:{}:{at}", a.id),
    }
}

fn system_event(
    a: &Automation,
    at: DateTime<Utc>,
    participant: Option<Uuid>,
    fans_out: bool,
) -> SystemEvent {
    SystemEvent {
        organization_id: a.organization_id,
        program_id: a.program_id,
        participant_id: participant,
        idempotency_key: key(a, at, participant.filter(|_| fans_out)),
        event_data: event_data(a),
        event_timestamp: at,
    }
}

async fn fire_due(pool: &PgPool, clock: &Clock, doorbell: &Doorbell) -> sqlx::Result<usize> {
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let due = automations::claim_due(&mut tx, now, FIRE_BATCH).await?;
    let mut events = Vec::new();
    let mut fired = Vec::with_capacity(due.len());
    for a in &due {
        let Some(at) = a.next_run_at else { continue };
        let timing = a.timing();
        let mut record = Due {
            id: a.id,
            next_run_at: match &timing {
                Ok(Timing::Cron(cron)) => cron.next_after(at.max(now)),
                Ok(Timing::PerParticipant(_)) => Some(now + REFRESH_EVERY),
                _ => None,
            },
            keep_next_run: false,
            last_run_at: now,
            processed: a.trigger_type == TriggerType::OneTime,
            fan_out: None,
            last_error: None,
        };
        match (timing, a.scope) {
            (Err(message), _) => {
                tracing::warn!(automation_id = %a.id, %message, "automation cannot fire");
                record.last_error = Some(message);
                record.next_run_at = None;
            }
            (Ok(_), Scope::Program) => events.push(system_event(a, at, a.participant_id, false)),
            (Ok(_), Scope::Participants) if a.fanning_out() => {
                record.last_error = Some(format!(
                    "the fire due at {at} was skipped: the fan-out of an earlier fire was still running"
                ));
            }
            (Ok(_), Scope::Participants) => record.fan_out = Some(at),
        }
        fired.push(record);
    }
    let stored = events::store_system(&mut tx, &events).await?;
    if !fired.is_empty() {
        automations::fired(&mut tx, &fired).await?;
    }
    tx.commit().await?;
    events::queued(doorbell, stored);
    Ok(due.len())
}

/// A filter or guard, compiled; `None` when there is none. They were checked when written.
fn compiled(source: Option<&str>) -> Result<Option<Expression>, String> {
    source.map(cel::compile_condition).transpose()
}

/// Whether `condition` holds for the participant; an expression that fails counts as false.
fn holds(condition: &Option<Expression>, vars: &Variables) -> bool {
    condition
        .as_ref()
        .is_none_or(|c| c.condition(vars).unwrap_or(false))
}

/// What a filter or guard sees: `event` (the automation's event data, converted once by the caller),
/// `participant` and `now`.
fn variables(event: &::cel::Value, state: &State, at: DateTime<Utc>) -> Variables {
    Variables::new(
        event.clone(),
        events::worker::participant_value(state, &[]),
        at,
    )
}

fn event_value(data: &Map<String, Value>) -> ::cel::Value {
    cel::from_json(&Value::Object(data.clone()))
}

async fn fan_out(
    pool: &PgPool,
    clock: &Clock,
    doorbell: &Doorbell,
    settings: Settings,
) -> sqlx::Result<usize> {
    let mut tx = pool.begin().await?;
    let Some(a) = automations::claim_fan_out(&mut tx, settings.room).await? else {
        tx.commit().await?;
        return Ok(0);
    };
    let now = clock.now();
    let at = a.execution_fire_at.unwrap_or(now);
    let conditions = compiled(a.participant_filter.as_deref())
        .and_then(|filter| Ok((filter, compiled(a.guard_condition.as_deref())?)));
    let schedule = match a.timing() {
        Ok(Timing::PerParticipant(schedule)) => Ok(Some(schedule)),
        Ok(_) => Ok(None),
        Err(message) => Err(message),
    };
    let ((filter, guard), schedule) = match (conditions, schedule) {
        (Ok(conditions), Ok(schedule)) => (conditions, schedule),
        (Err(message), _) | (_, Err(message)) => {
            automations::finish(&mut tx, a.id, now, Some(&message)).await?;
            tx.commit().await?;
            return Ok(1);
        }
    };
    let page =
        participants::member_states(&mut tx, a.program_id, a.execution_cursor, settings.page)
            .await?;
    let event = event_value(&event_data(&a));
    let mut stored = 0;
    match &schedule {
        Some(schedule) => {
            let seen: Vec<Uuid> = page.iter().map(|s| s.id).collect();
            let matching: Vec<SubscriptionUpdate> = page
                .iter()
                .filter(|state| holds(&filter, &variables(&event, state, now)))
                .map(|state| subscription(&a, schedule, state, now))
                .collect();
            let recompute = matches!(schedule, StateSchedule::AttributeDate { .. });
            automations::subscribe(&mut tx, &a, &seen, &matching, recompute).await?;
        }
        None => {
            let events: Vec<SystemEvent> = page
                .iter()
                .filter(|state| {
                    let vars = variables(&event, state, at);
                    holds(&filter, &vars) && holds(&guard, &vars)
                })
                .map(|state| system_event(&a, at, Some(state.id), true))
                .collect();
            stored = events::store_system(&mut tx, &events).await?;
        }
    }
    let progress = FanOut {
        id: a.id,
        cursor: page.last().map(|s| s.id),
        processed: i32::try_from(page.len()).unwrap_or(i32::MAX),
        done: page.len() < usize::try_from(settings.page).unwrap_or(usize::MAX),
        now,
    };
    automations::advanced(&mut tx, &progress).await?;
    tx.commit().await?;
    events::queued(doorbell, stored);
    Ok(page.len().max(1))
}

/// A new subscription of a participant that matches the filter at `now`.
fn subscription(
    a: &Automation,
    schedule: &StateSchedule,
    state: &State,
    now: DateTime<Utc>,
) -> SubscriptionUpdate {
    let mut update = SubscriptionUpdate {
        automation_id: a.id,
        participant_id: state.id,
        status: SubscriptionStatus::Active,
        next_trigger_at: None,
        triggered_at: None,
        last_error: None,
    };
    match schedule {
        StateSchedule::AttributeDate {
            attribute,
            time,
            tz,
        } => match attribute_date(state, attribute) {
            Ok(md) => update.next_trigger_at = schedule::next_date(md, *time, *tz, now),
            Err(message) => {
                (update.status, update.last_error) = (SubscriptionStatus::Failed, Some(message))
            }
        },
        StateSchedule::Interval { every } => update.next_trigger_at = Some(now + *every),
        StateSchedule::Cron(cron) => update.next_trigger_at = cron.next_after(now),
        StateSchedule::Threshold { .. } => update.next_trigger_at = Some(now),
    }
    update
}

fn attribute_date(state: &State, attribute: &str) -> Result<(u32, u32), String> {
    state
        .attributes
        .0
        .get(attribute)
        .and_then(Value::as_str)
        .and_then(schedule::month_day)
        .ok_or_else(|| format!("attribute {attribute} holds no date (MM-DD or YYYY-MM-DD)"))
}

fn counter(state: &State, key: &str) -> Decimal {
    match state.counters.0.get(key) {
        Some(Value::Number(n)) => Decimal::from_str(&n.to_string()).unwrap_or_default(),
        Some(Value::String(s)) => Decimal::from_str(s).unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

/// An automation as its due subscriptions need it, worked out once per pass.
struct Subscribed {
    automation: Automation,
    schedule: Result<Option<StateSchedule>, String>,
    guard: Option<Expression>,
    event: ::cel::Value,
}

async fn fire_subscriptions(
    pool: &PgPool,
    clock: &Clock,
    doorbell: &Doorbell,
) -> sqlx::Result<usize> {
    let now = clock.now();
    let mut tx = pool.begin().await?;
    let due = automations::claim_subscriptions(&mut tx, now, SUBSCRIPTION_BATCH).await?;
    if due.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let mut ids: Vec<Uuid> = due.iter().map(|d| d.automation_id).collect();
    ids.sort();
    ids.dedup();
    let owners: HashMap<Uuid, Subscribed> = automations::find_many(&mut tx, &ids)
        .await?
        .into_iter()
        .map(|a| {
            let schedule = match a.timing() {
                Ok(Timing::PerParticipant(schedule)) => Ok(Some(schedule)),
                Ok(_) => Ok(None),
                Err(message) => Err(message),
            };
            let guard = compiled(a.guard_condition.as_deref()).ok().flatten();
            let event = event_value(&event_data(&a));
            let subscribed = Subscribed {
                automation: a,
                schedule,
                guard,
                event,
            };
            (subscribed.automation.id, subscribed)
        })
        .collect();
    let mut people: Vec<Uuid> = due.iter().map(|d| d.participant_id).collect();
    people.sort();
    people.dedup();
    let states: HashMap<Uuid, State> = participants::states(&mut tx, &people)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    let mut events = Vec::new();
    let mut updates = Vec::with_capacity(due.len());
    for d in &due {
        let (Some(owner), Some(state)) =
            (owners.get(&d.automation_id), states.get(&d.participant_id))
        else {
            continue;
        };
        let (fires, update) = next_of(owner, d, state, now);
        let vars = variables(&owner.event, state, d.next_trigger_at);
        if fires && holds(&owner.guard, &vars) {
            let a = &owner.automation;
            events.push(system_event(a, d.next_trigger_at, Some(state.id), true));
        }
        updates.push(update);
    }
    let stored = events::store_system(&mut tx, &events).await?;
    automations::triggered(&mut tx, &updates).await?;
    tx.commit().await?;
    events::queued(doorbell, stored);
    Ok(due.len())
}

/// Whether a due subscription fires now, and what becomes of it.
fn next_of(
    owner: &Subscribed,
    d: &SubscriptionDue,
    state: &State,
    now: DateTime<Utc>,
) -> (bool, SubscriptionUpdate) {
    let due = d.next_trigger_at;
    let mut update = SubscriptionUpdate {
        automation_id: owner.automation.id,
        participant_id: d.participant_id,
        status: SubscriptionStatus::Active,
        next_trigger_at: None,
        triggered_at: None,
        last_error: None,
    };
    let schedule = match &owner.schedule {
        Ok(Some(schedule)) => schedule,
        Ok(None) => return (false, update),
        Err(message) => {
            (update.status, update.last_error) =
                (SubscriptionStatus::Failed, Some(message.clone()));
            return (false, update);
        }
    };
    let fires = match schedule {
        StateSchedule::AttributeDate {
            attribute,
            time,
            tz,
        } => match attribute_date(state, attribute) {
            // The attribute may have changed since this was scheduled: fire only on the date it holds now.
            Ok(md) => {
                let on =
                    schedule::next_date(md, *time, *tz, due - chrono::Duration::microseconds(1));
                let fires = on == Some(due);
                update.next_trigger_at = match fires {
                    true => schedule::next_date(md, *time, *tz, due),
                    false => on,
                };
                fires
            }
            Err(message) => {
                (update.status, update.last_error) = (SubscriptionStatus::Failed, Some(message));
                false
            }
        },
        StateSchedule::Interval { every } => {
            // Periods run on from this one: the first was due an interval after subscribing.
            update.next_trigger_at = Some(schedule::next_period(due, *every, due.max(now)));
            true
        }
        StateSchedule::Cron(cron) => {
            update.next_trigger_at = cron.next_after(due.max(now));
            true
        }
        StateSchedule::Threshold {
            counter: key,
            threshold,
            check_every,
        } => {
            let reached = counter(state, key) >= *threshold;
            match reached {
                true => update.status = SubscriptionStatus::Completed,
                false => update.next_trigger_at = Some(now + *check_every),
            }
            reached
        }
    };
    if fires {
        update.triggered_at = Some(due);
    }
    (fires, update)
}
