//! Events (E82–E86).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, JsonBody, PathId, QueryParams};
use crate::error::{Error, Result};
use crate::events::{
    self, Ack, Event, EventDetail, EventFilter, Impact, Ingested, NewEvent, Party, Retried,
};
use crate::pagination::{Page, PageParams};
use crate::validation::{Fields, Validator};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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

/// Request bodies and query strings as the document shows them; the handlers read them with `Validator`.
#[allow(dead_code)]
mod doc {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    /// The participant is named by `external_id` or `participant_id`, not both; so is the optional recipient.
    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000", "external_id": "user_123",
        "idempotency_key": "order-1001", "event_data": {"type": "purchase", "amount": 49.99}}))]
    pub struct NewEvent {
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
        event_data: serde_json::Value,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Batch {
        /// Each item as the body of POST /v1/events (`NewEvent`). Items are validated one by one: an invalid
        /// item is reported in its result and does not fail the batch.
        #[schema(min_items = 1, max_items = 100, value_type = Vec<Object>)]
        events: Vec<serde_json::Value>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct EventQuery {
        program_id: Option<Uuid>,
        #[param(inline)]
        status: Option<crate::events::EventStatus>,
        #[param(inline)]
        event_type: Option<crate::events::EventType>,
        participant_id: Option<Uuid>,
        #[param(min_length = 1, max_length = 255)]
        external_id: Option<String>,
        /// Events a rule evaluated.
        rule_id: Option<Uuid>,
        /// Received at or after; requires `to`.
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        /// Happened at or after; requires `event_to`.
        event_from: Option<DateTime<Utc>>,
        event_to: Option<DateTime<Utc>>,
        #[param(inline)]
        sort_by: Option<crate::events::EventSort>,
        #[param(inline)]
        sort_dir: Option<crate::validation::SortDir>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct DetailQuery {
        /// Include evaluations skipped by errors and timeouts.
        include_skipped: Option<bool>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct KeyQuery {
        program_id: Uuid,
        #[param(min_length = 1, max_length = 255)]
        idempotency_key: String,
        include_skipped: Option<bool>,
    }
}

const BATCH_MAX: usize = 100;

/// One party of an event, named by an external id or a participant id but not both. `Ok(None)` when neither
/// was sent; `Err` when the field was invalid (already recorded).
fn identity(f: &Fields<'_>, external_key: &str, id_key: &str) -> Result<Option<Party>, ()> {
    match (f.opt_str(external_key, 1, 255), f.opt_uuid(id_key)) {
        (Some(external_id), None) => Ok(Some(Party::External(external_id))),
        (None, Some(id)) => Ok(Some(Party::Id(id))),
        (Some(_), Some(_)) => {
            let expected = format!("one of {external_key}, {id_key}");
            f.reject(
                id_key,
                &expected,
                format!("send {external_key} or {id_key}, not both"),
            );
            Err(())
        }
        (None, None) if f.raw(external_key).is_some() || f.raw(id_key).is_some() => Err(()),
        (None, None) => Ok(None),
    }
}

/// The fields of one event (E82 body, or one item of E83).
fn parse_event(f: &Fields<'_>) -> Option<NewEvent> {
    let participant = identity(f, "external_id", "participant_id");
    if let Ok(None) = participant {
        let expected = "one of external_id, participant_id";
        f.reject(
            "external_id",
            expected,
            "external_id or participant_id is required",
        );
    }
    let recipient = identity(f, "recipient_external_id", "recipient_id");
    let program_id = f.req_uuid("program_id");
    let idempotency_key = f.req_str("idempotency_key", 1, 255);
    let event_timestamp = f.opt_time("event_timestamp");
    let event_data = f.req_object("event_data").cloned();
    if let Some(problem) = event_data.as_ref().and_then(crate::events::oversized) {
        f.reject("event_data", "object within the size bounds", problem);
    }
    Some(NewEvent {
        program_id,
        participant: participant.ok().flatten()?,
        recipient: recipient.ok()?,
        idempotency_key,
        event_timestamp,
        event_data: event_data?,
    })
}

#[utoipa::path(post, path = "/events", tag = "events", request_body = doc::NewEvent,
    responses((status = 202, description = "Stored durably and queued; a repeated idempotency key returns the original event.", body = Ack),
        Rejected, NotFound, Conflict))]
async fn ingest(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let new = parse_event(&v.body(&body)?);
    v.finish()?;
    let new = new.ok_or_else(|| Error::Internal("validated event is incomplete".into()))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(s.intake.ingest(&actor, new).await?),
    ))
}

#[utoipa::path(post, path = "/events/batch", tag = "events", request_body = doc::Batch,
    responses((status = 202, body = BatchResult), Rejected, NotFound))]
async fn ingest_batch(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let items = match f.opt_array("events") {
        None if !v.has_errors() => {
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
        Some(items) => items.iter().map(parse_item).collect(),
    };
    v.finish()?;
    let outcomes = events::ingest_batch(&s.pool, &s.doorbell, &actor, items).await?;
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

/// Validates one batch item on its own, so its errors do not fail the batch.
fn parse_item(item: &Value) -> Result<NewEvent, String> {
    let v = Validator::new();
    let parsed = v
        .body(item)
        .map_err(|e| e.to_string())
        .map(|f| parse_event(&f))?;
    match (v.finish(), parsed) {
        (Ok(()), Some(new)) => Ok(new),
        (Err(Error::Invalid(errors)), _) => Err(errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")),
        (Err(other), _) => Err(other.to_string()),
        (Ok(()), None) => Err("invalid event".into()),
    }
}

#[utoipa::path(get, path = "/events", tag = "events", operation_id = "list_events", params(PageParams, doc::EventQuery),
    responses((status = 200, body = Page<Event>), Rejected))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let filter = EventFilter {
        program_id: q.opt_uuid("program_id"),
        status: q.opt_enum("status", events::STATUSES),
        event_type: q.opt_enum("event_type", events::EVENT_TYPES),
        participant_id: q.opt_uuid("participant_id"),
        external_id: q.opt_str("external_id", 1, 255),
        rule_id: q.opt_uuid("rule_id"),
        created: q.window(),
        happened: q.pair("event_from", "event_to"),
        sort_by: q
            .opt_enum("sort_by", events::SORT_KEYS)
            .unwrap_or("created_at"),
        ascending: q.ascending(),
        cursor,
        limit,
    };
    v.finish()?;
    Ok(Json(events::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/events/{id}", tag = "events", operation_id = "get_event", params(PathId, doc::DetailQuery),
    responses((status = 200, body = EventDetail), Rejected, NotFound))]
async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let include_skipped = v.query(&q).opt_bool("include_skipped").unwrap_or(false);
    v.finish()?;
    Ok(Json(
        events::get(&s.pool, &actor, id, include_skipped).await?,
    ))
}

#[utoipa::path(get, path = "/events/by-key", tag = "events", params(doc::KeyQuery),
    responses((status = 200, body = EventDetail), Rejected, NotFound))]
async fn by_key(
    State(s): State<AppState>,
    Auth(actor): Auth,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let program_id = q.req_uuid("program_id");
    let key = q.req_str("idempotency_key", 1, 255);
    let include_skipped = q.opt_bool("include_skipped").unwrap_or(false);
    v.finish()?;
    Ok(Json(
        events::get_by_key(&s.pool, &actor, program_id, &key, include_skipped).await?,
    ))
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
