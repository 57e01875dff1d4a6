//! Participant status, profile updates, state (E20–E33) and activity (E46–E47).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, JsonBody, PathId, PathIdKey, QueryParams};
use crate::error::Result;
use crate::events::{self, Event, EventFilter};
use crate::money;
use crate::pagination::{Page, PageParams, page_by_key};
use crate::participants::state::{
    Counter, HistoryEntry, HistoryFilter, STATE_OPERATIONS, STATE_TYPES, Window, WindowChange,
};
use crate::participants::{self, Detail};
use crate::validation::Validator;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_status))
        .routes(routes!(tags, replace_tags))
        .routes(routes!(add_tag, remove_tag))
        .routes(routes!(attributes, merge_attributes))
        .routes(routes!(set_attribute, remove_attribute))
        .routes(routes!(counters))
        .routes(routes!(counter, set_counter, delete_counter))
        .routes(routes!(events))
        .routes(routes!(state_history))
}

#[derive(Serialize, ToSchema)]
struct Tag {
    #[schema(example = "vip")]
    tag: String,
}

#[derive(Serialize, ToSchema)]
struct Tags {
    tags: Vec<String>,
}

#[derive(Serialize, ToSchema)]
struct Attribute {
    #[schema(example = "tier")]
    key: String,
    #[schema(example = "gold")]
    value: String,
}

#[derive(Serialize, ToSchema)]
struct Attributes {
    attributes: BTreeMap<String, String>,
}

/// Request bodies and query strings as the document shows them; the handlers read them with `Validator`.
#[allow(dead_code)]
mod doc {
    use crate::participants::ParticipantStatus;
    use crate::participants::state::{StateOperation, StateType};
    use std::collections::HashMap;
    use uuid::Uuid;

    #[derive(utoipa::ToSchema)]
    pub struct SetStatus {
        status: ParticipantStatus,
    }

    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"tags": ["vip", "newsletter"]}))]
    pub struct ReplaceTags {
        /// The new tags, each at most 255 characters; lower-cased.
        tags: Vec<String>,
    }

    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"attributes": {"tier": "gold"}}))]
    pub struct MergeAttributes {
        /// Values of at most 1000 characters; keys not given keep their values.
        attributes: HashMap<String, String>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct SetAttribute {
        #[schema(min_length = 1, max_length = 1000)]
        value: String,
    }

    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"value": "3", "reset_after": "720h"}))]
    pub struct SetCounter {
        #[schema(min_length = 1, max_length = 64, pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
        value: String,
        /// A duration such as `24h`; an empty string removes the window.
        #[schema(max_length = 64)]
        reset_after: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct EventQuery {
        program_id: Option<Uuid>,
        #[param(inline)]
        status: Option<crate::events::EventStatus>,
        /// Received at or after; requires `to`.
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// Happened at or after; requires `event_to`.
        event_from: Option<chrono::DateTime<chrono::Utc>>,
        event_to: Option<chrono::DateTime<chrono::Utc>>,
        #[param(inline)]
        sort_dir: Option<crate::validation::SortDir>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct HistoryQuery {
        #[param(inline)]
        state_type: Option<StateType>,
        #[param(min_length = 1, max_length = 255)]
        key: Option<String>,
        #[param(inline)]
        operation: Option<StateOperation>,
        program_id: Option<Uuid>,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        /// State history pages hold at most 100 rows.
        #[param(minimum = 1, maximum = 100)]
        limit: Option<i64>,
        #[param(min_length = 1, max_length = 1000)]
        cursor: Option<String>,
    }
}

#[utoipa::path(patch, path = "/participants/{id}/status", tag = "participants", params(PathId), request_body = doc::SetStatus,
    responses((status = 200, body = Detail), Rejected, NotFound, Conflict))]
async fn set_status(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let status = v.body(&body)?.req_enum("status", participants::STATUSES);
    v.finish()?;
    let status = participants::ParticipantStatus::parse(status)
        .ok_or_else(|| crate::error::Error::Internal("validated status is unknown".into()))?;
    Ok(Json(
        participants::set_status(&s.pool, &actor, id, status).await?,
    ))
}

#[utoipa::path(get, path = "/participants/{id}/state/tags", tag = "state", params(PathId, PageParams),
    responses((status = 200, body = Page<Tag>), Rejected, NotFound))]
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
        page_by_key(tags, |t| t.as_str(), cursor, limit).map(|tag| Tag { tag }),
    ))
}

#[utoipa::path(put, path = "/participants/{id}/state/tags", tag = "state", params(PathId), request_body = doc::ReplaceTags,
    responses((status = 200, body = Tags), Rejected, NotFound, Conflict))]
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
    Ok(Json(Tags { tags }))
}

#[utoipa::path(put, path = "/participants/{id}/state/tags/{tag}", tag = "state", params(("id" = Uuid, Path), ("tag" = String, Path, description = "Matched case-insensitively.")),
    responses((status = 201, description = "Added.", body = Tag), (status = 200, description = "Already there.", body = Tag),
        Rejected, NotFound, Conflict))]
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
        Json(Tag { tag }),
    ))
}

#[utoipa::path(delete, path = "/participants/{id}/state/tags/{tag}", tag = "state", params(("id" = Uuid, Path), ("tag" = String, Path, description = "Matched case-insensitively.")),
    responses((status = 204, description = "Removed, or was not there."), Rejected, NotFound, Conflict))]
async fn remove_tag(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, tag): PathIdKey,
) -> Result<impl IntoResponse> {
    participants::remove_tag(&s.pool, &actor, id, &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/participants/{id}/state/attributes", tag = "state", params(PathId, PageParams),
    responses((status = 200, body = Page<Attribute>), Rejected, NotFound))]
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
    Ok(Json(page.map(|(key, value)| Attribute { key, value })))
}

#[utoipa::path(patch, path = "/participants/{id}/state/attributes", tag = "state", params(PathId), request_body = doc::MergeAttributes,
    responses((status = 200, description = "All attributes after the merge.", body = Attributes), Rejected, NotFound, Conflict))]
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
    Ok(Json(Attributes {
        attributes: all.into_iter().collect(),
    }))
}

#[utoipa::path(put, path = "/participants/{id}/state/attributes/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)), request_body = doc::SetAttribute,
    responses((status = 200, body = Attribute), Rejected, NotFound, Conflict))]
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
    Ok(Json(Attribute { key, value }))
}

#[utoipa::path(delete, path = "/participants/{id}/state/attributes/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 204, description = "Removed."), Rejected, NotFound, Conflict))]
async fn remove_attribute(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    participants::remove_attribute(&s.pool, &actor, id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/participants/{id}/state/counters", tag = "state", params(PathId, PageParams),
    responses((status = 200, body = Page<Counter>), Rejected, NotFound))]
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

#[utoipa::path(get, path = "/participants/{id}/state/counters/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 200, body = Counter), Rejected, NotFound))]
async fn counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    Ok(Json(
        participants::counter(&s.pool, &actor, id, &key).await?,
    ))
}

#[utoipa::path(put, path = "/participants/{id}/state/counters/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)), request_body = doc::SetCounter,
    responses((status = 200, body = Counter), Rejected, NotFound, Conflict))]
async fn set_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let text = f.req_str("value", 1, 64);
    let value = money::parse_amount(&text);
    match value {
        Err(money::Invalid::TooLarge) => f.reject(
            "value",
            "decimal string",
            format!("value is {}", money::Invalid::TooLarge),
        ),
        Err(money::Invalid::NotDecimal) if !text.is_empty() => f.reject(
            "value",
            "decimal string",
            "value must be a decimal string such as \"42\"",
        ),
        _ => {}
    }
    let value = value.ok();
    let window = match f.opt_str("reset_after", 0, 64) {
        None => WindowChange::Keep,
        Some(text) if text.is_empty() => WindowChange::Clear,
        Some(text) => Window::parse(&text)
            .map(WindowChange::Set)
            .unwrap_or_else(|| {
                f.reject(
                    "reset_after",
                    "Go duration such as 24h",
                    "reset_after must be a duration such as \"720h\", at most 876000h",
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

#[utoipa::path(delete, path = "/participants/{id}/state/counters/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 204, description = "Removed."), Rejected, NotFound, Conflict))]
async fn delete_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    participants::delete_counter(&s.pool, &actor, id, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/participants/{id}/activity/events", tag = "participants", operation_id = "participant_events",
    params(PathId, PageParams, doc::EventQuery), responses((status = 200, body = Page<Event>), Rejected, NotFound))]
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

#[utoipa::path(get, path = "/participants/{id}/activity/state-history", tag = "participants",
    params(PathId, doc::HistoryQuery), responses((status = 200, body = Page<HistoryEntry>), Rejected, NotFound))]
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
        state_type: q.opt_enum("state_type", STATE_TYPES),
        key: q.opt_str("key", 1, 255),
        operation: q.opt_enum("operation", STATE_OPERATIONS),
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
