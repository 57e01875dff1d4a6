//! Participant status, profile updates, state (E20–E33) and activity (E46–E47).

use super::AppState;
use super::extract::{Auth, JsonBody, PathId, PathIdKey, QueryParams};
use crate::error::Result;
use crate::events::{self, EventFilter};
use crate::money;
use crate::pagination::page_by_key;
use crate::participants;
use crate::participants::state::{HistoryFilter, Window, WindowChange};
use crate::validation::Validator;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, put};
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/participants/{id}/status",
            axum::routing::patch(set_status),
        )
        .route("/participants/{id}/state/tags", get(tags).put(replace_tags))
        .route(
            "/participants/{id}/state/tags/{tag}",
            put(add_tag).delete(remove_tag),
        )
        .route(
            "/participants/{id}/state/attributes",
            get(attributes).patch(merge_attributes),
        )
        .route(
            "/participants/{id}/state/attributes/{key}",
            put(set_attribute).delete(remove_attribute),
        )
        .route("/participants/{id}/state/counters", get(counters))
        .route(
            "/participants/{id}/state/counters/{key}",
            get(counter).put(set_counter).delete(delete_counter),
        )
        .route("/participants/{id}/activity/events", get(events))
        .route(
            "/participants/{id}/activity/state-history",
            get(state_history),
        )
}

async fn set_status(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let status = v.body(&body)?.req_enum("status", participants::STATUSES);
    v.finish()?;
    Ok(Json(
        participants::set_status(&s.pool, &actor, id, status).await?,
    ))
}

async fn tags(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let (cursor, limit) = v.query(&q).page();
    v.finish()?;
    let tags = participants::tags(&s.pool, &actor, id).await?;
    Ok(Json(
        page_by_key(tags, |t| t.as_str(), cursor, limit).map(|tag| json!({"tag": tag})),
    ))
}

async fn replace_tags(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let tags = f.opt_string_list("tags", 255);
    if tags.is_none() && f.raw("tags").is_none() {
        f.reject("tags", "array of strings", "tags is required");
    }
    v.finish()?;
    let tags = participants::replace_tags(&s.pool, &actor, id, &tags.unwrap_or_default()).await?;
    Ok(Json(json!({"tags": tags})))
}

async fn add_tag(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, tag): PathIdKey,
) -> Result<impl IntoResponse> {
    let tag = tag.to_lowercase();
    let added = participants::add_tag(&s.pool, &actor, id, &tag).await?;
    Ok((
        if added {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(json!({"tag": tag})),
    ))
}

async fn remove_tag(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, tag): PathIdKey,
) -> Result<impl IntoResponse> {
    participants::remove_tag(&s.pool, &actor, id, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn attributes(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let (cursor, limit) = v.query(&q).page();
    v.finish()?;
    let attributes = participants::attributes(&s.pool, &actor, id).await?;
    let page = page_by_key(attributes, |(k, _)| k.as_str(), cursor, limit);
    Ok(Json(
        page.map(|(key, value)| json!({"key": key, "value": value})),
    ))
}

async fn merge_attributes(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let pairs = f.opt_string_map("attributes", 1000);
    if pairs.is_none() && f.raw("attributes").is_none() {
        f.reject("attributes", "object of strings", "attributes is required");
    }
    v.finish()?;
    let all = participants::set_attributes(&s.pool, &actor, id, &pairs.unwrap_or_default()).await?;
    let all: serde_json::Map<_, _> = all.into_iter().map(|(k, v)| (k, v.into())).collect();
    Ok(Json(json!({"attributes": all})))
}

async fn set_attribute(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let value = v.body(&body)?.req_str("value", 1, 1000);
    v.finish()?;
    participants::set_attributes(&s.pool, &actor, id, &[(key.clone(), value.clone())]).await?;
    Ok(Json(json!({"key": key, "value": value})))
}

async fn remove_attribute(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    participants::remove_attribute(&s.pool, &actor, id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn counters(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let (cursor, limit) = v.query(&q).page();
    v.finish()?;
    let counters = participants::counters(&s.pool, &actor, id).await?;
    Ok(Json(page_by_key(
        counters,
        |c| c.key.as_str(),
        cursor,
        limit,
    )))
}

async fn counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    Ok(Json(
        participants::counter(&s.pool, &actor, id, &key).await?,
    ))
}

async fn set_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let text = f.req_str("value", 1, 64);
    let value = money::parse(&text);
    if value.is_none() && !text.is_empty() {
        f.reject(
            "value",
            "decimal string",
            "value must be a decimal string such as \"42\"",
        );
    }
    let window = match f.opt_str("reset_after", 0, 64) {
        None => WindowChange::Keep,
        Some(text) if text.is_empty() => WindowChange::Clear,
        Some(text) => Window::parse(&text)
            .map(WindowChange::Set)
            .unwrap_or_else(|| {
                f.reject(
                    "reset_after",
                    "Go duration such as 24h",
                    "reset_after must be a duration such as \"720h\"",
                );
                WindowChange::Keep
            }),
    };
    v.finish()?;
    let value = value.unwrap_or_default();
    Ok(Json(
        participants::set_counter(&s.pool, &actor, id, &key, value, window).await?,
    ))
}

async fn delete_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    participants::delete_counter(&s.pool, &actor, id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn events(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let filter = EventFilter {
        program_id: q.opt_uuid("program_id"),
        status: q.opt_enum("status", events::STATUSES),
        created: q.window(),
        happened: q.pair("event_from", "event_to"),
        sort_by: "created_at",
        ascending: q.ascending(),
        cursor,
        limit,
        ..Default::default()
    };
    v.finish()?;
    Ok(Json(
        events::list_for_participant(&s.pool, &actor, id, filter).await?,
    ))
}

async fn state_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    // State history pages are smaller than other lists: at most 100.
    let (cursor, limit) = q.page_within(50, 100);
    let filter = HistoryFilter {
        state_type: q.opt_enum("state_type", &["tag", "counter", "attribute", "tier"]),
        key: q.opt_str("key", 1, 255),
        operation: q.opt_enum(
            "operation",
            &["set", "delete", "add", "remove", "auto_reset"],
        ),
        program_id: q.opt_uuid("program_id"),
        changed: q.window(),
        cursor,
        limit,
    };
    v.finish()?;
    Ok(Json(
        participants::state_history(&s.pool, &actor, id, filter).await?,
    ))
}
