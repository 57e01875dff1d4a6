//! Participant status, the state of participants and groups (E21–E33, E69–E80) and their activity (E46–E47,
//! E81).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, PathIdKey, Valid, ValidQuery};
use crate::error::{Error, FieldError, Result};
use crate::events::{self, Event, EventFilter, EventSort, EventStatus, EventType};
use crate::holder_state as operations;
use crate::holders::Holder;
use crate::holders::state::{
    Counter, HistoryEntry, HistoryFilter, STATE_OPERATIONS, STATE_TYPES, Window, WindowChange,
};
use crate::money;
use crate::pagination::{Page, PageParams, page_by_key};
use crate::participants::{self, Detail, ParticipantStatus};
use crate::validation::{Fields, Request, SortDir};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_status))
        .routes(routes!(tags, replace_tags))
        .routes(routes!(program_tags))
        .routes(routes!(add_tag, remove_tag))
        .routes(routes!(attributes, merge_attributes))
        .routes(routes!(set_attribute, remove_attribute))
        .routes(routes!(counters))
        .routes(routes!(counter, set_counter, delete_counter))
        .routes(routes!(events))
        .routes(routes!(state_history))
        .routes(routes!(group_tags, group_replace_tags))
        .routes(routes!(group_add_tag, group_remove_tag))
        .routes(routes!(group_attributes, group_merge_attributes))
        .routes(routes!(group_set_attribute, group_remove_attribute))
        .routes(routes!(group_counters))
        .routes(routes!(
            group_counter,
            group_set_counter,
            group_delete_counter
        ))
        .routes(routes!(group_state_history))
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

#[derive(ToSchema)]
struct SetStatus {
    status: ParticipantStatus,
}

impl Request for SetStatus {
    fn read(f: &Fields<'_>) -> Self {
        SetStatus {
            status: f.req_word("status"),
        }
    }
}

#[derive(ToSchema)]
#[schema(example = json!({"tags": ["vip", "newsletter"]}))]
struct ReplaceTags {
    /// The new tags: at most 100, each at most 255 characters; lower-cased.
    #[schema(max_items = 100)]
    tags: Vec<String>,
}

impl Request for ReplaceTags {
    fn read(f: &Fields<'_>) -> Self {
        ReplaceTags {
            tags: f.req_string_list("tags", 255),
        }
    }
}

#[derive(ToSchema)]
#[schema(example = json!({"attributes": {"tier": "gold"}}))]
struct MergeAttributes {
    /// At most 100, with values of at most 1000 characters; keys not given keep their values.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    attributes: Vec<(String, String)>,
}

impl Request for MergeAttributes {
    fn read(f: &Fields<'_>) -> Self {
        MergeAttributes {
            attributes: f.req_string_map("attributes", 1000),
        }
    }
}

#[derive(ToSchema)]
struct SetAttribute {
    #[schema(min_length = 1, max_length = 1000)]
    value: String,
}

impl Request for SetAttribute {
    fn read(f: &Fields<'_>) -> Self {
        SetAttribute {
            value: f.req_str("value", 1, 1000),
        }
    }
}

#[derive(ToSchema)]
#[schema(example = json!({"value": "3", "reset_after": "720h"}))]
struct SetCounter {
    #[schema(value_type = String, min_length = 1, max_length = 64, pattern = r"^-?[0-9]+(\.[0-9]+)?$")]
    value: Decimal,
    /// A duration such as `24h`; an empty string removes the window.
    #[schema(value_type = Option<String>, max_length = 64)]
    reset_after: WindowChange,
}

impl Request for SetCounter {
    fn read(f: &Fields<'_>) -> Self {
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
        let reset_after = match f.opt_str("reset_after", 0, 64) {
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
        SetCounter {
            value: value.unwrap_or_default(),
            reset_after,
        }
    }
}

/// The filters of one participant's events.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct ParticipantEvents {
    program_id: Option<Uuid>,
    #[param(inline)]
    status: Option<EventStatus>,
    /// EXTERNAL (sent by a client) or SYSTEM (created by an automation).
    #[param(inline)]
    event_type: Option<EventType>,
    /// Received at or after.
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// Happened at or after.
    event_from: Option<DateTime<Utc>>,
    event_to: Option<DateTime<Utc>>,
    #[param(rename = "sort_dir", value_type = Option<SortDir>, inline)]
    ascending: bool,
    #[param(ignore)]
    page: PageParams,
}

impl Request for ParticipantEvents {
    fn read(q: &Fields<'_>) -> Self {
        let (from, to) = q.range("from", "to");
        let (event_from, event_to) = q.range("event_from", "event_to");
        ParticipantEvents {
            program_id: q.opt_uuid("program_id"),
            status: q.opt_word("status"),
            event_type: q.opt_word("event_type"),
            from,
            to,
            event_from,
            event_to,
            ascending: q.ascending(),
            page: PageParams::read(q),
        }
    }
}

impl From<ParticipantEvents> for EventFilter {
    fn from(q: ParticipantEvents) -> Self {
        EventFilter {
            program_id: q.program_id,
            status: q.status,
            event_type: q.event_type,
            participant_id: None,
            external_id: None,
            rule_id: None,
            from: q.from,
            to: q.to,
            event_from: q.event_from,
            event_to: q.event_to,
            sort_by: EventSort::CreatedAt,
            ascending: q.ascending,
            page: q.page,
        }
    }
}

impl Request for HistoryFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (cursor, limit) = q.page_within(50, 100);
        let (from, to) = q.range("from", "to");
        let (event_from, event_to) = q.range("event_from", "event_to");
        HistoryFilter {
            state_type: q.opt_enum("state_type", STATE_TYPES),
            key: q.opt_str("key", 1, 255),
            operation: q.opt_enum("operation", STATE_OPERATIONS),
            program_id: q.opt_uuid("program_id"),
            from,
            to,
            event_from,
            event_to,
            limit,
            cursor,
        }
    }
}

#[utoipa::path(patch, path = "/participants/{id}/status", tag = "participants", params(PathId), request_body = SetStatus,
    responses((status = 200, body = Detail), Rejected, NotFound, Conflict))]
async fn set_status(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<SetStatus>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        participants::set_status(&s.pool, &actor, id, body.status).await?,
    ))
}

/// A page of attributes sorted by key.
fn attribute_page(
    attributes: Vec<(String, String)>,
    PageParams { cursor, limit }: PageParams,
) -> Page<Attribute> {
    page_by_key(attributes, |(k, _)| k.as_str(), cursor, limit)
        .map(|(key, value)| Attribute { key, value })
}

/// A page of counters sorted by key.
fn counter_page(counters: Vec<Counter>, PageParams { cursor, limit }: PageParams) -> Page<Counter> {
    page_by_key(counters, |c| c.key.as_str(), cursor, limit)
}

/// A page of sorted tags.
fn tag_page(tags: Vec<String>, PageParams { cursor, limit }: PageParams) -> Page<Tag> {
    page_by_key(tags, |t| t.as_str(), cursor, limit).map(|tag| Tag { tag })
}

#[utoipa::path(get, path = "/participants/{id}/state/tags", tag = "state", params(PathId, PageParams),
    responses((status = 200, body = Page<Tag>), Rejected, NotFound))]
async fn tags(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(tag_page(
        operations::tags(&s.pool, &actor, Holder::Participant(id)).await?,
        page,
    )))
}

/// The program's own tags, which TAG and UNTAG actions with `target: {type: PROGRAM}` write.
#[utoipa::path(get, path = "/programs/{id}/state/tags", tag = "state", params(PathId, PageParams),
    responses((status = 200, body = Page<Tag>), Rejected, NotFound))]
async fn program_tags(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(tag_page(
        crate::programs::tags(&s.pool, &actor, id).await?,
        page,
    )))
}

#[utoipa::path(put, path = "/participants/{id}/state/tags", tag = "state", params(PathId), request_body = ReplaceTags,
    responses((status = 200, body = Tags), Rejected, NotFound, Conflict))]
async fn replace_tags(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<ReplaceTags>,
) -> Result<impl IntoResponse> {
    let tags =
        operations::replace_tags(&s.pool, &actor, Holder::Participant(id), &body.tags).await?;
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
    add_holder_tag(&s, &actor, Holder::Participant(id), &tag).await
}

/// Adds a tag of 1 to 255 characters, lower-cased: 201 when it is new, 200 when it was there.
async fn add_holder_tag(
    s: &AppState,
    actor: &crate::organizations::Actor,
    holder: Holder,
    tag: &str,
) -> Result<(StatusCode, Json<Tag>)> {
    let count = tag.chars().count();
    if !(1..=255).contains(&count) {
        return Err(Error::invalid(FieldError::invalid(
            "tag",
            "string of 1 to 255 characters",
            Some(format!("{count} characters")),
            "tag must be 1 to 255 characters long",
        )));
    }
    let tag = tag.to_lowercase();
    let added = operations::add_tag(&s.pool, actor, holder, &tag).await?;
    let status = match added {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(Tag { tag })))
}

#[utoipa::path(delete, path = "/participants/{id}/state/tags/{tag}", tag = "state", params(("id" = Uuid, Path), ("tag" = String, Path, description = "Matched case-insensitively.")),
    responses((status = 204, description = "Removed, or was not there."), Rejected, NotFound, Conflict))]
async fn remove_tag(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, tag): PathIdKey,
) -> Result<impl IntoResponse> {
    operations::remove_tag(&s.pool, &actor, Holder::Participant(id), &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/participants/{id}/state/attributes", tag = "state", params(PathId, PageParams),
    responses((status = 200, body = Page<Attribute>), Rejected, NotFound))]
async fn attributes(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(attribute_page(
        operations::attributes(&s.pool, &actor, Holder::Participant(id)).await?,
        page,
    )))
}

#[utoipa::path(patch, path = "/participants/{id}/state/attributes", tag = "state", params(PathId), request_body = MergeAttributes,
    responses((status = 200, description = "All attributes after the merge.", body = Attributes), Rejected, NotFound, Conflict))]
async fn merge_attributes(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<MergeAttributes>,
) -> Result<impl IntoResponse> {
    let all =
        operations::set_attributes(&s.pool, &actor, Holder::Participant(id), &body.attributes)
            .await?;
    Ok(Json(Attributes {
        attributes: all.into_iter().collect(),
    }))
}

#[utoipa::path(put, path = "/participants/{id}/state/attributes/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)), request_body = SetAttribute,
    responses((status = 200, body = Attribute), Rejected, NotFound, Conflict))]
async fn set_attribute(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
    Valid(SetAttribute { value }): Valid<SetAttribute>,
) -> Result<impl IntoResponse> {
    operations::set_attributes(
        &s.pool,
        &actor,
        Holder::Participant(id),
        &[(key.clone(), value.clone())],
    )
    .await?;
    Ok(Json(Attribute { key, value }))
}

#[utoipa::path(delete, path = "/participants/{id}/state/attributes/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 204, description = "Removed."), Rejected, NotFound, Conflict))]
async fn remove_attribute(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    operations::remove_attribute(&s.pool, &actor, Holder::Participant(id), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/participants/{id}/state/counters", tag = "state", params(PathId, PageParams),
    responses((status = 200, body = Page<Counter>), Rejected, NotFound))]
async fn counters(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(counter_page(
        operations::counters(&s.pool, &actor, Holder::Participant(id)).await?,
        page,
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
        operations::counter(&s.pool, &actor, Holder::Participant(id), &key).await?,
    ))
}

#[utoipa::path(put, path = "/participants/{id}/state/counters/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)), request_body = SetCounter,
    responses((status = 200, body = Counter), Rejected, NotFound, Conflict))]
async fn set_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
    Valid(body): Valid<SetCounter>,
) -> Result<impl IntoResponse> {
    let set = operations::set_counter(
        &s.pool,
        &actor,
        Holder::Participant(id),
        &key,
        body.value,
        body.reset_after,
    );
    Ok(Json(set.await?))
}

#[utoipa::path(delete, path = "/participants/{id}/state/counters/{key}", tag = "state", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 204, description = "Removed."), Rejected, NotFound, Conflict))]
async fn delete_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    operations::delete_counter(&s.pool, &actor, Holder::Participant(id), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/participants/{id}/activity/events", tag = "participants", operation_id = "participant_events",
    params(PathId, PageParams, ParticipantEvents), responses((status = 200, body = Page<Event>), Rejected, NotFound))]
async fn events(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(q): ValidQuery<ParticipantEvents>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        events::list_for_participant(&s.pool, &actor, id, q.into()).await?,
    ))
}

#[utoipa::path(get, path = "/participants/{id}/activity/state-history", tag = "participants",
    params(PathId, HistoryFilter), responses((status = 200, body = Page<HistoryEntry>), Rejected, NotFound))]
async fn state_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(filter): ValidQuery<HistoryFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        operations::history(&s.pool, &actor, Holder::Participant(id), filter).await?,
    ))
}

#[utoipa::path(get, path = "/groups/{id}/state/tags", tag = "groups", params(PathId, PageParams),
    responses((status = 200, body = Page<Tag>), Rejected, NotFound))]
async fn group_tags(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    let tags = operations::tags(&s.pool, &actor, Holder::Group(id)).await?;
    Ok(Json(tag_page(tags, page)))
}

#[utoipa::path(put, path = "/groups/{id}/state/tags", tag = "groups", params(PathId), request_body = ReplaceTags,
    responses((status = 200, body = Tags), Rejected, NotFound, Conflict))]
async fn group_replace_tags(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<ReplaceTags>,
) -> Result<impl IntoResponse> {
    let tags = operations::replace_tags(&s.pool, &actor, Holder::Group(id), &body.tags).await?;
    Ok(Json(Tags { tags }))
}

#[utoipa::path(put, path = "/groups/{id}/state/tags/{tag}", tag = "groups", params(("id" = Uuid, Path), ("tag" = String, Path, description = "Matched case-insensitively.")),
    responses((status = 201, description = "Added.", body = Tag), (status = 200, description = "Already there.", body = Tag),
        Rejected, NotFound, Conflict))]
async fn group_add_tag(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, tag): PathIdKey,
) -> Result<impl IntoResponse> {
    add_holder_tag(&s, &actor, Holder::Group(id), &tag).await
}

#[utoipa::path(delete, path = "/groups/{id}/state/tags/{tag}", tag = "groups", params(("id" = Uuid, Path), ("tag" = String, Path, description = "Matched case-insensitively.")),
    responses((status = 204, description = "Removed, or was not there."), Rejected, NotFound, Conflict))]
async fn group_remove_tag(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, tag): PathIdKey,
) -> Result<impl IntoResponse> {
    operations::remove_tag(&s.pool, &actor, Holder::Group(id), &tag).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/groups/{id}/state/attributes", tag = "groups", params(PathId, PageParams),
    responses((status = 200, body = Page<Attribute>), Rejected, NotFound))]
async fn group_attributes(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    let attributes = operations::attributes(&s.pool, &actor, Holder::Group(id)).await?;
    Ok(Json(attribute_page(attributes, page)))
}

#[utoipa::path(patch, path = "/groups/{id}/state/attributes", tag = "groups", params(PathId), request_body = MergeAttributes,
    responses((status = 200, description = "All attributes after the merge.", body = Attributes), Rejected, NotFound, Conflict))]
async fn group_merge_attributes(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<MergeAttributes>,
) -> Result<impl IntoResponse> {
    let holder = Holder::Group(id);
    let all = operations::set_attributes(&s.pool, &actor, holder, &body.attributes).await?;
    Ok(Json(Attributes {
        attributes: all.into_iter().collect(),
    }))
}

#[utoipa::path(put, path = "/groups/{id}/state/attributes/{key}", tag = "groups", params(("id" = Uuid, Path), ("key" = String, Path)), request_body = SetAttribute,
    responses((status = 200, body = Attribute), Rejected, NotFound, Conflict))]
async fn group_set_attribute(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
    Valid(SetAttribute { value }): Valid<SetAttribute>,
) -> Result<impl IntoResponse> {
    let pair = [(key.clone(), value.clone())];
    operations::set_attributes(&s.pool, &actor, Holder::Group(id), &pair).await?;
    Ok(Json(Attribute { key, value }))
}

#[utoipa::path(delete, path = "/groups/{id}/state/attributes/{key}", tag = "groups", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 204, description = "Removed, or was not there."), Rejected, NotFound, Conflict))]
async fn group_remove_attribute(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    operations::remove_attribute(&s.pool, &actor, Holder::Group(id), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/groups/{id}/state/counters", tag = "groups", params(PathId, PageParams),
    responses((status = 200, body = Page<Counter>), Rejected, NotFound))]
async fn group_counters(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    let counters = operations::counters(&s.pool, &actor, Holder::Group(id)).await?;
    Ok(Json(counter_page(counters, page)))
}

#[utoipa::path(get, path = "/groups/{id}/state/counters/{key}", tag = "groups", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 200, body = Counter), Rejected, NotFound))]
async fn group_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    Ok(Json(
        operations::counter(&s.pool, &actor, Holder::Group(id), &key).await?,
    ))
}

#[utoipa::path(put, path = "/groups/{id}/state/counters/{key}", tag = "groups", params(("id" = Uuid, Path), ("key" = String, Path)), request_body = SetCounter,
    responses((status = 200, body = Counter), Rejected, NotFound, Conflict))]
async fn group_set_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
    Valid(body): Valid<SetCounter>,
) -> Result<impl IntoResponse> {
    let holder = Holder::Group(id);
    let set = operations::set_counter(&s.pool, &actor, holder, &key, body.value, body.reset_after);
    Ok(Json(set.await?))
}

#[utoipa::path(delete, path = "/groups/{id}/state/counters/{key}", tag = "groups", params(("id" = Uuid, Path), ("key" = String, Path)),
    responses((status = 204, description = "Removed, or was not there."), Rejected, NotFound, Conflict))]
async fn group_delete_counter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIdKey(id, key): PathIdKey,
) -> Result<impl IntoResponse> {
    operations::delete_counter(&s.pool, &actor, Holder::Group(id), &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/groups/{id}/activity/state-history", tag = "groups",
    params(PathId, HistoryFilter), responses((status = 200, body = Page<HistoryEntry>), Rejected, NotFound))]
async fn group_state_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(filter): ValidQuery<HistoryFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        operations::history(&s.pool, &actor, Holder::Group(id), filter).await?,
    ))
}
