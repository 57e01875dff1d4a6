//! Events: ingested synchronously (shape validated, stored PENDING, acknowledged with 202) and processed
//! asynchronously by workers (`worker`). Idempotency is per (program, idempotency_key): the first event wins,
//! repeats return it and create nothing, also when they race.

mod actions;
mod batch;
mod doorbell;
mod intake;
mod repo;
pub mod worker;

pub use doorbell::Doorbell;
pub use intake::Intake;

use crate::error::{Error, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page, PageParams};
pub use crate::participants::Party;
use crate::rules::evaluation::{EvaluationReason, EvaluationStatus};
use crate::validation::SortDir;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

crate::vocabulary!(
    /// Where an event is: PENDING until processed (RECEIVED and PROCESSING are never stored: an event is
    /// stored PENDING and goes from there to COMPLETED or FAILED in one transaction).
    pub enum EventStatus {
        Received = "RECEIVED",
        Pending = "PENDING",
        Processing = "PROCESSING",
        Completed = "COMPLETED",
        Failed = "FAILED",
    }
);
crate::vocabulary!(
    /// EXTERNAL events come from clients; SYSTEM events from the engine itself.
    pub enum EventType {
        External = "EXTERNAL",
        System = "SYSTEM",
    }
);
crate::vocabulary!(
    /// The orders an event list can be in.
    pub enum EventSort {
        CreatedAt = "created_at",
        EventTimestamp = "event_timestamp",
        Status = "status",
    }
);
/// Evaluations hidden from E85 unless `include_skipped=true`.
pub const HIDDEN_EVALUATIONS: &[EvaluationStatus] = &[
    EvaluationStatus::SkippedError,
    EvaluationStatus::SkippedTimeout,
];

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub program_id: Uuid,
    pub participant: Party,
    pub recipient: Option<Party>,
    pub idempotency_key: String,
    /// `None` when the client did not send one: the event happened when it was received.
    pub event_timestamp: Option<DateTime<Utc>>,
    pub event_data: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Event {
    pub id: Uuid,
    pub program_id: Uuid,
    pub participant_id: Option<Uuid>,
    pub external_id: Option<String>,
    pub recipient_id: Option<Uuid>,
    pub recipient_external_id: Option<String>,
    pub idempotency_key: String,
    pub event_type: EventType,
    #[schema(value_type = Object, example = json!({"type": "purchase", "amount": 49.99}))]
    pub event_data: sqlx::types::Json<Value>,
    pub event_timestamp: DateTime<Utc>,
    pub status: EventStatus,
    pub error_message: Option<String>,
    pub received_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
}

/// The acknowledgement of an ingest.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ack {
    pub id: Uuid,
    pub program_id: Uuid,
    pub participant_id: Option<Uuid>,
    pub external_id: Option<String>,
    pub idempotency_key: String,
    pub event_timestamp: DateTime<Utc>,
    pub status: EventStatus,
}

impl From<&Event> for Ack {
    fn from(e: &Event) -> Self {
        Ack {
            id: e.id,
            program_id: e.program_id,
            participant_id: e.participant_id,
            external_id: e.external_id.clone(),
            idempotency_key: e.idempotency_key.clone(),
            event_timestamp: e.event_timestamp,
            status: e.status,
        }
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Evaluation {
    pub id: Uuid,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub rule_history_id: Uuid,
    pub status: EvaluationStatus,
    pub reason: Option<EvaluationReason>,
    pub stopped_by_rule_id: Option<Uuid>,
    pub error_message: Option<String>,
    /// What each action did.
    #[schema(value_type = Vec<Object>)]
    pub results: sqlx::types::Json<Value>,
    /// Wasm rules only: the fuel the evaluation burned and what the module printed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_consumed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub event: Event,
    pub rule_evaluations: Vec<Evaluation>,
}

/// Which events a list holds. Either end of a window may be left open.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    pub program_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<EventStatus>,
    #[param(inline)]
    pub event_type: Option<EventType>,
    pub participant_id: Option<Uuid>,
    #[param(min_length = 1, max_length = 255)]
    pub external_id: Option<String>,
    /// Events a rule evaluated.
    pub rule_id: Option<Uuid>,
    /// Received at or after.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Happened at or after.
    pub event_from: Option<DateTime<Utc>>,
    pub event_to: Option<DateTime<Utc>>,
    #[param(value_type = Option<EventSort>, inline)]
    pub sort_by: EventSort,
    #[param(rename = "sort_dir", value_type = Option<SortDir>, inline)]
    pub ascending: bool,
    #[param(ignore)]
    pub page: PageParams,
}

/// How one item of a batch ended.
pub enum Ingested {
    Accepted(Ack),
    Rejected(String),
}

/// The answer to a single ingest, given what inserting it returned: the new event, or, when nothing was
/// inserted, the event already stored under its key — unless the event names something missing (404).
async fn acknowledge(
    pool: &PgPool,
    actor: &Actor,
    new: &NewEvent,
    inserted: Option<Event>,
) -> Result<Ack> {
    if let Some(event) = inserted {
        return Ok(Ack::from(&event));
    }
    check_references(pool, actor, new).await?;
    let existing = repo::find_by_key(
        pool,
        actor.organization_id,
        new.program_id,
        &new.idempotency_key,
    )
    .await?;
    // The conflicting row is committed (ON CONFLICT waited for it), so it is visible here.
    existing
        .map(|e| Ack::from(&e))
        .ok_or_else(|| Error::Internal("idempotent event vanished".into()))
}

/// An event the engine creates (an automation fires): stored as a SYSTEM event and processed like any other.
#[derive(Debug, Clone)]
pub struct SystemEvent {
    pub organization_id: Uuid,
    pub program_id: Uuid,
    /// None for a program-wide event.
    pub participant_id: Option<Uuid>,
    /// Made of what fired (automation, fire time, participant): a second store of the same fire stores nothing.
    pub idempotency_key: String,
    pub event_data: Map<String, Value>,
    pub event_timestamp: DateTime<Utc>,
}

/// Stores and queues SYSTEM events in the caller's transaction, one statement for all; an event whose key is
/// taken was stored before and is left out. Returns how many were stored: once the transaction commits, tell
/// the workers with [`queued`].
pub async fn store_system(
    conn: &mut sqlx::PgConnection,
    events: &[SystemEvent],
) -> sqlx::Result<usize> {
    if events.is_empty() {
        return Ok(0);
    }
    repo::insert_system(conn, events).await
}

/// `count` new events are in the queue: the workers are woken, and the metrics count them.
pub fn queued(doorbell: &Doorbell, count: usize) {
    if count > 0 {
        crate::metrics::events_accepted(count);
        doorbell.ring();
    }
}

/// Ingests a batch with one statement for all of it (one commit), and a few more only for items it did not
/// insert. A bad item is reported and does not stop the others. A repeated key with the same payload returns the original event, with a
/// different payload it is an error for that item.
pub async fn ingest_batch(
    pool: &PgPool,
    doorbell: &Doorbell,
    actor: &Actor,
    items: Vec<Result<NewEvent, String>>,
) -> Result<Vec<Ingested>> {
    let planned: Vec<std::result::Result<(Uuid, &NewEvent), &String>> = items
        .iter()
        .map(|item| item.as_ref().map(|new| (Uuid::now_v7(), new)))
        .collect();
    let to_insert: Vec<(Uuid, &Actor, &NewEvent)> = planned
        .iter()
        .flatten()
        .map(|(id, new)| (*id, actor, *new))
        .collect();
    let inserted: HashMap<Uuid, Event> = repo::insert_many(pool, &to_insert)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    queued(doorbell, inserted.len());
    // The others name something missing, or use a key already taken (by a stored event or an earlier item of
    // this batch): committed by now, so visible.
    let rest: Vec<&NewEvent> = to_insert
        .iter()
        .filter(|(id, _, _)| !inserted.contains_key(id))
        .map(|(_, _, new)| *new)
        .collect();
    let known = known_references(pool, actor, &rest).await?;
    let taken: Vec<(Uuid, String)> = rest
        .iter()
        .filter(|new| missing_reference(new, &known).is_none())
        .map(|new| (new.program_id, new.idempotency_key.clone()))
        .collect();
    let existing: HashMap<(Uuid, String), Event> = match taken.is_empty() {
        true => HashMap::new(),
        false => repo::find_by_keys(pool, actor.organization_id, &taken)
            .await?
            .into_iter()
            .map(|e| ((e.program_id, e.idempotency_key.clone()), e))
            .collect(),
    };
    planned
        .into_iter()
        .map(|plan| {
            let (id, new) = match plan {
                Err(message) => return Ok(Ingested::Rejected(message.clone())),
                Ok(plan) => plan,
            };
            if let Some(event) = inserted.get(&id) {
                return Ok(Ingested::Accepted(Ack::from(event)));
            }
            if let Some(what) = missing_reference(new, &known) {
                return Ok(Ingested::Rejected(format!("invalid {what}_id: not found")));
            }
            match existing.get(&(new.program_id, new.idempotency_key.clone())) {
                Some(event) if same_payload(event, new) => Ok(Ingested::Accepted(Ack::from(event))),
                Some(_) => Ok(Ingested::Rejected(format!(
                    "idempotency_key {} was already used for a different event in this program",
                    new.idempotency_key
                ))),
                None => Err(Error::Internal("idempotent event vanished".into())),
            }
        })
        .collect()
}

/// The programs, and participants named by id, of these events that exist: at most two queries for any number.
struct Known {
    programs: HashSet<Uuid>,
    participants: HashSet<Uuid>,
}

async fn known_references(pool: &PgPool, actor: &Actor, events: &[&NewEvent]) -> Result<Known> {
    let org = actor.organization_id;
    let program_ids: Vec<Uuid> = events.iter().map(|e| e.program_id).collect();
    let participant_ids: Vec<Uuid> = events
        .iter()
        .flat_map(|e| [Some(&e.participant), e.recipient.as_ref()])
        .filter_map(|party| match party {
            Some(Party::Id(id)) => Some(*id),
            _ => None,
        })
        .collect();
    let existing = async |kind, ids: &[Uuid]| -> Result<HashSet<Uuid>> {
        // Nothing to look up, no query: participants named by external id, or a batch stored whole.
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        Ok(repo::existing(pool, kind, org, ids)
            .await?
            .into_iter()
            .collect())
    };
    Ok(Known {
        programs: existing(repo::Referenced::Programs, &program_ids).await?,
        participants: existing(repo::Referenced::Participants, &participant_ids).await?,
    })
}

/// What `new` names that does not exist: `program` or `participant`.
fn missing_reference(new: &NewEvent, known: &Known) -> Option<&'static str> {
    if !known.programs.contains(&new.program_id) {
        return Some("program");
    }
    [Some(&new.participant), new.recipient.as_ref()]
        .into_iter()
        .flatten()
        .any(|party| matches!(party, Party::Id(id) if !known.participants.contains(id)))
        .then_some("participant")
}

async fn check_references(pool: &PgPool, actor: &Actor, new: &NewEvent) -> Result<()> {
    let known = known_references(pool, actor, &[new]).await?;
    match missing_reference(new, &known) {
        Some(what) => Err(Error::NotFound(what)),
        None => Ok(()),
    }
}

fn same_payload(stored: &Event, new: &NewEvent) -> bool {
    let identity = match &new.participant {
        Party::External(external_id) => stored.external_id.as_ref() == Some(external_id),
        Party::Id(id) => stored.participant_id == Some(*id) && stored.external_id.is_none(),
    };
    let recipient = match &new.recipient {
        None => stored.recipient_id.is_none() && stored.recipient_external_id.is_none(),
        Some(Party::Id(id)) => stored.recipient_id == Some(*id),
        Some(Party::External(x)) => stored.recipient_external_id.as_ref() == Some(x),
    };
    let timestamp = new
        .event_timestamp
        .is_none_or(|t| t == stored.event_timestamp);
    identity
        && recipient
        && timestamp
        && stored.event_data.0 == Value::Object(new.event_data.clone())
}

pub async fn get(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    include_skipped: bool,
) -> Result<EventDetail> {
    let event = repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("event"))?;
    detail(pool, event, include_skipped).await
}

pub async fn get_by_key(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    key: &str,
    include_skipped: bool,
) -> Result<EventDetail> {
    let event = repo::find_by_key(pool, actor.organization_id, program_id, key)
        .await?
        .ok_or(Error::NotFound("event"))?;
    detail(pool, event, include_skipped).await
}

async fn detail(pool: &PgPool, event: Event, include_skipped: bool) -> Result<EventDetail> {
    let rule_evaluations = repo::evaluations(pool, event.id, include_skipped).await?;
    Ok(EventDetail {
        event,
        rule_evaluations,
    })
}

pub async fn list(pool: &PgPool, actor: &Actor, filter: EventFilter) -> Result<Page<Event>> {
    let order = Order {
        column: filter.sort_by.as_str(),
        sql_type: if filter.sort_by == EventSort::Status {
            "text"
        } else {
            "timestamptz"
        },
        descending: !filter.ascending,
    };
    let rows = repo::list(pool, actor.organization_id, &filter, order).await?;
    let sort_by = filter.sort_by;
    Ok(Page::from_rows(
        rows,
        filter.page.limit,
        |e| match sort_by {
            EventSort::EventTimestamp => Cursor::at(e.event_timestamp, e.id),
            EventSort::Status => Cursor::new(e.status, e.id),
            EventSort::CreatedAt => Cursor::at(e.created_at, e.id),
        },
    ))
}

/// E46: the events of one participant.
pub async fn list_for_participant(
    pool: &PgPool,
    actor: &Actor,
    participant_id: Uuid,
    filter: EventFilter,
) -> Result<Page<Event>> {
    if !repo::participant_exists(pool, actor.organization_id, participant_id).await? {
        return Err(Error::NotFound("participant"));
    }
    list(
        pool,
        actor,
        EventFilter {
            participant_id: Some(participant_id),
            ..filter
        },
    )
    .await
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Retried {
    pub event_id: Uuid,
    pub status: EventStatus,
    pub previous_status: EventStatus,
    pub previous_error: Option<String>,
    #[schema(value_type = String)]
    pub message: &'static str,
}

/// E88: a FAILED event goes back to PENDING with a fresh set of attempts; any other status is a conflict.
pub async fn retry(pool: &PgPool, doorbell: &Doorbell, actor: &Actor, id: Uuid) -> Result<Retried> {
    match repo::requeue_failed(pool, actor.organization_id, id).await? {
        Some(previous_error) => {
            doorbell.ring();
            Ok(Retried {
                event_id: id,
                status: EventStatus::Pending,
                previous_status: EventStatus::Failed,
                previous_error,
                message: "Event queued for retry",
            })
        }
        None => match repo::find(pool, actor.organization_id, id).await? {
            None => Err(Error::NotFound("event")),
            Some(event) => Err(Error::conflict(format!(
                "event is {}; only FAILED events can be retried",
                event.status
            ))),
        },
    }
}

/// E87: everything the event caused. Empty until processing has finished.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Impact {
    #[serde(flatten)]
    pub event: Event,
    pub rule_evaluations: Vec<Evaluation>,
    pub journal_entries: Vec<crate::ledger::JournalEntry>,
    pub state_changes: Vec<crate::holders::state::HistoryEntry>,
    pub balance_impact: Vec<crate::ledger::BalanceImpact>,
}

pub async fn impact(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Impact> {
    let event = repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("event"))?;
    let mut impact = Impact {
        event,
        rule_evaluations: Vec::new(),
        journal_entries: Vec::new(),
        state_changes: Vec::new(),
        balance_impact: Vec::new(),
    };
    if matches!(
        impact.event.status,
        EventStatus::Completed | EventStatus::Failed
    ) {
        impact.rule_evaluations = repo::evaluations(pool, id, true).await?;
        impact.journal_entries = crate::ledger::entries_of_event(pool, actor, id).await?;
        impact.state_changes =
            crate::holders::state::changes_of_event(pool, actor.organization_id, id).await?;
        impact.balance_impact = crate::ledger::balance_impact(pool, actor, id).await?;
    }
    Ok(impact)
}

/// How far behind processing is: seconds since the oldest due event became due.
pub async fn queue_lag_seconds(pool: &PgPool) -> Result<f64> {
    Ok(repo::queue_lag_seconds(pool).await?)
}

/// How many events wait in the queue, retries included.
pub async fn queue_depth(pool: &PgPool) -> Result<i64> {
    Ok(repo::queue_depth(pool).await?)
}

/// An organization's share of the queue, for the console.
pub struct QueueState {
    /// Events waiting, due or not, retries included.
    pub depth: i64,
    /// Seconds since the oldest due event became due; 0 when none is due.
    pub lag_seconds: f64,
}

pub async fn organization_queue(pool: &PgPool, actor: &Actor) -> Result<QueueState> {
    let (depth, lag_seconds) = repo::organization_queue(pool, actor.organization_id).await?;
    Ok(QueueState { depth, lag_seconds })
}

/// How many of the organization's events finished in each minute since `since` (minutes with none left out).
pub async fn finished_per_minute(
    pool: &PgPool,
    actor: &Actor,
    since: DateTime<Utc>,
) -> Result<Vec<(DateTime<Utc>, i64)>> {
    Ok(repo::finished_per_minute(pool, actor.organization_id, since).await?)
}

/// The largest `event_data` accepted, as JSON, and the most items any list in it may have. What rules do
/// with an event grows with it (a CEL macro visits a list; a wasm rule receives the whole event), so its
/// size is bounded where it enters.
pub const MAX_EVENT_DATA_BYTES: usize = 64 << 10;
pub const MAX_LIST_ITEMS: usize = 1000;

/// Why `event_data` is too large to accept, if it is.
pub fn oversized(data: &Map<String, Value>) -> Option<String> {
    let mut size = ByteCount(0);
    if serde_json::to_writer(&mut size, data).is_err() || size.0 > MAX_EVENT_DATA_BYTES {
        return Some(format!(
            "event_data must be at most {MAX_EVENT_DATA_BYTES} bytes as JSON"
        ));
    }
    let mut stack: Vec<&Value> = data.values().collect();
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) if items.len() > MAX_LIST_ITEMS => {
                return Some(format!(
                    "lists in event_data may have at most {MAX_LIST_ITEMS} items"
                ));
            }
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    None
}

/// Counts what is written, keeping nothing.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Which processed events a backtest reads: a program's, received in `[from, to)`, of one type or both.
#[derive(Debug, Clone, Copy)]
pub struct ProcessedWindow {
    pub program_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub event_type: Option<EventType>,
}

/// A processed event as a backtest reads it.
#[derive(Debug, sqlx::FromRow)]
pub struct PastEvent {
    pub id: Uuid,
    pub participant_id: Option<Uuid>,
    pub event_data: sqlx::types::Json<Value>,
    pub event_timestamp: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    state_as_of: Option<Uuid>,
}

impl PastEvent {
    /// Where its processing began among state changes and postings (`events.state_as_of`): what sorts
    /// before it is what its rules saw. Events processed before that was recorded are placed where they were
    /// received, the nearest point known.
    pub fn state_as_of(&self) -> Uuid {
        self.state_as_of
            .unwrap_or_else(|| crate::ids::first_at(self.created_at))
    }
}

/// How a rule evaluated an event, as recorded.
#[derive(Debug, sqlx::FromRow)]
pub struct RecordedEvaluation {
    pub event_id: Uuid,
    pub status: EvaluationStatus,
    pub reason: Option<EvaluationReason>,
}

/// Up to `limit` events of `window` processed to completion, in the order received, after `after`.
pub async fn processed_in_window(
    conn: &mut PgConnection,
    window: &ProcessedWindow,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<PastEvent>> {
    repo::processed_in_window(conn, window, after, limit).await
}

/// How `rule_id` evaluated each of `events`, for those it evaluated.
pub async fn evaluations_of_rule(
    conn: &mut PgConnection,
    rule_id: Uuid,
    events: &[Uuid],
) -> sqlx::Result<Vec<RecordedEvaluation>> {
    repo::evaluations_of_rule(conn, rule_id, events).await
}
