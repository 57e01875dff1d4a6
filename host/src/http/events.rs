//! Events (E82–E86).

use super::AppState;
use super::extract::{Auth, JsonBody, PathId, QueryParams};
use crate::error::{Error, Result};
use crate::events::{self, EventFilter, Ingested, NewEvent, Party};
use crate::validation::{Fields, Validator};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/events", get(list).post(ingest))
        .route("/events/batch", post(ingest_batch))
        .route("/events/by-key", get(by_key))
        .route("/events/{id}", get(get_one))
        .route("/events/{id}/impact", get(impact))
        .route("/events/{id}/retry", post(retry))
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
    Some(NewEvent {
        program_id,
        participant: participant.ok().flatten()?,
        recipient: recipient.ok()?,
        idempotency_key,
        event_timestamp,
        event_data: event_data?,
    })
}

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
        Json(events::ingest(&s.pool, &actor, new).await?),
    ))
}

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
    let outcomes = events::ingest_batch(&s.pool, &actor, items).await?;
    let results: Vec<Value> = outcomes
        .iter()
        .enumerate()
        .map(|(index, outcome)| match outcome {
            Ingested::Accepted(ack) => json!({"index": index, "status": "accepted", "event": ack}),
            Ingested::Rejected(error) => json!({"index": index, "status": "error", "error": error}),
        })
        .collect();
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, Ingested::Accepted(_)))
        .count();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "total": outcomes.len(),
            "success_count": accepted,
            "error_count": outcomes.len() - accepted,
            "results": results,
        })),
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

async fn impact(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(events::impact(&s.pool, &actor, id).await?))
}

async fn retry(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(events::retry(&s.pool, &actor, id).await?))
}
