//! Events (E82–E86).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, Valid, ValidQuery};
use crate::error::{Error, Result};
use crate::events::{
    self, Ack, Event, EventDetail, EventFilter, EventSort, Impact, Ingested, NewEvent, Party,
    Retried,
};
use crate::pagination::{Page, PageParams};
use crate::validation::{Fields, Request, Validator};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, ingest))
        .routes(routes!(ingest_batch))
        .routes(routes!(by_key))
        .routes(routes!(get_one))
        .routes(routes!(impact))
        .routes(routes!(retry))
}

/// E83's answer: one result per event, in the order sent.
#[derive(Serialize, ToSchema)]
struct BatchResult {
    total: usize,
    success_count: usize,
    error_count: usize,
    results: Vec<BatchItem>,
}

#[derive(Serialize, ToSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
enum BatchItem {
    Accepted { index: usize, event: Ack },
    Error { index: usize, error: String },
}

/// The participant is named by `external_id` or `participant_id`, not both; so is the optional recipient.
#[derive(ToSchema)]
#[schema(as = NewEvent, example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000", "external_id": "user_123",
    "idempotency_key": "order-1001", "event_data": {"type": "purchase", "amount": 49.99}}))]
struct EventBody {
    program_id: Uuid,
    #[schema(min_length = 1, max_length = 255)]
    external_id: Option<String>,
    participant_id: Option<Uuid>,
    #[schema(min_length = 1, max_length = 255)]
    recipient_external_id: Option<String>,
    recipient_id: Option<Uuid>,
    /// Unique per program: a repeat returns the original event.
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: String,
    /// When it happened; default: when it was received.
    event_timestamp: Option<DateTime<Utc>>,
    /// What rules see as `event.*`.
    #[schema(value_type = Object)]
    event_data: Map<String, Value>,
}

/// One party of an event: an external id or a participant id, not both (recorded when both are sent).
fn identity(f: &Fields<'_>, external_key: &str, id_key: &str) -> (Option<String>, Option<Uuid>) {
    let (external_id, id) = (f.opt_str(external_key, 1, 255), f.opt_uuid(id_key));
    if external_id.is_some() && id.is_some() {
        let expected = format!("one of {external_key}, {id_key}");
        f.reject(
            id_key,
            &expected,
            format!("send {external_key} or {id_key}, not both"),
        );
    }
    (external_id, id)
}

impl Request for EventBody {
    fn read(f: &Fields<'_>) -> Self {
        let (external_id, participant_id) = identity(f, "external_id", "participant_id");
        if f.raw("external_id").is_none() && f.raw("participant_id").is_none() {
            let expected = "one of external_id, participant_id";
            f.reject(
                "external_id",
                expected,
                "external_id or participant_id is required",
            );
        }
        let (recipient_external_id, recipient_id) =
            identity(f, "recipient_external_id", "recipient_id");
        let program_id = f.req_uuid("program_id");
        let idempotency_key = f.req_str("idempotency_key", 1, 255);
        let event_timestamp = f.opt_time("event_timestamp");
        let event_data = f.req_object("event_data").cloned().unwrap_or_default();
        if let Some(problem) = crate::events::oversized(&event_data) {
            f.reject("event_data", "object within the size bounds", problem);
        }
        EventBody {
            program_id,
            external_id,
            participant_id,
            recipient_external_id,
            recipient_id,
            idempotency_key,
            event_timestamp,
            event_data,
        }
    }
}

impl EventBody {
    /// The event, once `read` found nothing wrong: exactly one participant field is then set.
    fn into_event(self) -> Result<NewEvent> {
        Ok(NewEvent {
            program_id: self.program_id,
            participant: Party::named(self.external_id, self.participant_id)
                .ok_or_else(|| Error::Internal("validated event has no participant".into()))?,
            recipient: Party::named(self.recipient_external_id, self.recipient_id),
            idempotency_key: self.idempotency_key,
            event_timestamp: self.event_timestamp,
            event_data: self.event_data,
        })
    }
}

const BATCH_MAX: usize = 100;

/// Up to 100 events, each read on its own so that an invalid one fails only itself.
#[derive(ToSchema)]
struct Batch {
    /// Each item as the body of POST /v1/events (`NewEvent`). Items are validated one by one: an invalid
    /// item is reported in its result and does not fail the batch.
    #[schema(min_items = 1, max_items = 100, value_type = Vec<Object>)]
    events: Vec<Result<NewEvent, String>>,
}

impl Request for Batch {
    fn read(f: &Fields<'_>) -> Self {
        let events = match f.opt_array("events") {
            None if f.raw("events").is_none() => {
                f.reject("events", "array of 1 to 100 events", "events is required");
                Vec::new()
            }
            None => Vec::new(),
            Some(items) if items.is_empty() || items.len() > BATCH_MAX => {
                f.reject(
                    "events",
                    "array of 1 to 100 events",
                    "a batch holds 1 to 100 events",
                );
                Vec::new()
            }
            Some(items) => items.iter().map(read_item).collect(),
        };
        Batch { events }
    }
}

/// Validates one batch item on its own, so its errors do not fail the batch.
fn read_item(item: &Value) -> Result<NewEvent, String> {
    let v = Validator::new();
    let body = v.body(item).map(|f| EventBody::read(&f));
    let outcome = body.and_then(|body| {
        v.finish()?;
        body.into_event()
    });
    outcome.map_err(|e| match e {
        Error::Invalid(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    })
}

impl Request for EventFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (from, to) = q.range("from", "to");
        let (event_from, event_to) = q.range("event_from", "event_to");
        EventFilter {
            program_id: q.opt_uuid("program_id"),
            status: q.opt_word("status"),
            event_type: q.opt_word("event_type"),
            participant_id: q.opt_uuid("participant_id"),
            external_id: q.opt_str("external_id", 1, 255),
            rule_id: q.opt_uuid("rule_id"),
            from,
            to,
            event_from,
            event_to,
            sort_by: q.opt_word("sort_by").unwrap_or(EventSort::CreatedAt),
            ascending: q.ascending(),
            page: PageParams::read(q),
        }
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct DetailQuery {
    /// Include evaluations skipped by errors and timeouts.
    #[param(value_type = Option<bool>)]
    include_skipped: bool,
}

impl Request for DetailQuery {
    fn read(q: &Fields<'_>) -> Self {
        DetailQuery {
            include_skipped: q.opt_bool("include_skipped").unwrap_or(false),
        }
    }
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct KeyQuery {
    program_id: Uuid,
    #[param(min_length = 1, max_length = 255)]
    idempotency_key: String,
    #[param(value_type = Option<bool>)]
    include_skipped: bool,
}

impl Request for KeyQuery {
    fn read(q: &Fields<'_>) -> Self {
        KeyQuery {
            program_id: q.req_uuid("program_id"),
            idempotency_key: q.req_str("idempotency_key", 1, 255),
            include_skipped: q.opt_bool("include_skipped").unwrap_or(false),
        }
    }
}

#[utoipa::path(post, path = "/events", tag = "events", request_body = EventBody,
    responses((status = 202, description = "Stored durably and queued; a repeated idempotency key returns the original event.", body = Ack),
        Rejected, NotFound, Conflict))]
async fn ingest(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Valid(body): Valid<EventBody>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::ACCEPTED,
        Json(s.intake.ingest(&actor, body.into_event()?).await?),
    ))
}

#[utoipa::path(post, path = "/events/batch", tag = "events", request_body = Batch,
    responses((status = 202, body = BatchResult), Rejected, NotFound))]
async fn ingest_batch(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Valid(batch): Valid<Batch>,
) -> Result<impl IntoResponse> {
    let outcomes = events::ingest_batch(&s.pool, &s.doorbell, &actor, batch.events).await?;
    let total = outcomes.len();
    let results: Vec<BatchItem> = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Ingested::Accepted(event) => BatchItem::Accepted { index, event },
            Ingested::Rejected(error) => BatchItem::Error { index, error },
        })
        .collect();
    let accepted = results
        .iter()
        .filter(|r| matches!(r, BatchItem::Accepted { .. }))
        .count();
    Ok((
        StatusCode::ACCEPTED,
        Json(BatchResult {
            total,
            success_count: accepted,
            error_count: total - accepted,
            results,
        }),
    ))
}

#[utoipa::path(get, path = "/events", tag = "events", operation_id = "list_events", params(PageParams, EventFilter),
    responses((status = 200, body = Page<Event>), Rejected))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<EventFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(events::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/events/{id}", tag = "events", operation_id = "get_event", params(PathId, DetailQuery),
    responses((status = 200, body = EventDetail), Rejected, NotFound))]
async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(q): ValidQuery<DetailQuery>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        events::get(&s.pool, &actor, id, q.include_skipped).await?,
    ))
}

#[utoipa::path(get, path = "/events/by-key", tag = "events", params(KeyQuery),
    responses((status = 200, body = EventDetail), Rejected, NotFound))]
async fn by_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(q): ValidQuery<KeyQuery>,
) -> Result<impl IntoResponse> {
    let found = events::get_by_key(
        &s.pool,
        &actor,
        q.program_id,
        &q.idempotency_key,
        q.include_skipped,
    );
    Ok(Json(found.await?))
}

#[utoipa::path(get, path = "/events/{id}/impact", tag = "events", params(PathId),
    responses((status = 200, description = "Empty lists until the event is COMPLETED or FAILED.", body = Impact), Rejected, NotFound))]
async fn impact(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(events::impact(&s.pool, &actor, id).await?))
}

#[utoipa::path(post, path = "/events/{id}/retry", tag = "events", params(PathId),
    responses((status = 200, body = Retried), Rejected, NotFound, Conflict))]
async fn retry(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(events::retry(&s.pool, &s.doorbell, &actor, id).await?))
}
