//! Automations (E107–E115).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, PathIds, Valid, ValidQuery};
use crate::automations::{
    self, Automation, AutomationFilter, AutomationPatch, AutomationStatus, NewAutomation,
    Subscription, SubscriptionFilter, TriggerSpec, TriggerType,
};
use crate::error::Result;
use crate::pagination::Page;
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, archive))
        .routes(routes!(trigger))
        .routes(routes!(cancel))
        .routes(routes!(refresh_subscriptions))
        .routes(routes!(subscriptions))
}

/// Automation and subscription lists: 20 a page unless asked, at most 100.
const PAGE: (i64, i64) = (20, 100);
/// The longest CEL a filter or guard may be.
const MAX_CEL: usize = 4096;

/// A payload: an object no larger than an event's data may be.
fn payload(f: &Fields<'_>) -> Option<Map<String, Value>> {
    let payload = f.opt_object("payload")?.clone();
    if let Some(message) = crate::events::oversized(&payload) {
        f.reject("payload", "object", message);
    }
    Some(payload)
}

fn filter_hints(f: &Fields<'_>) -> Option<Vec<Value>> {
    let items = f.opt_array("filter_hints")?;
    f.objects("filter_hints", items);
    Some(items.clone())
}

impl Request for TriggerSpec {
    fn read(t: &Fields<'_>) -> Self {
        TriggerSpec {
            kind: t.req_word("type"),
            cron_expression: t.opt_str("cron_expression", 1, 255),
            timezone: t.opt_str("timezone", 1, 64),
            trigger_at: t.opt_time("trigger_at"),
            schedule_type: t.opt_word("schedule_type"),
            schedule_config: t.opt_object("schedule_config").cloned(),
        }
    }
}

impl Request for NewAutomation {
    fn read(f: &Fields<'_>) -> Self {
        // Without a trigger the request is refused already; the placeholder is never used.
        let trigger = match f.req_object("trigger") {
            Some(map) => TriggerSpec::read(&f.nested(map, f.path("trigger"))),
            None => TriggerSpec {
                kind: TriggerType::Cron,
                cron_expression: None,
                timezone: None,
                trigger_at: None,
                schedule_type: None,
                schedule_config: None,
            },
        };
        NewAutomation {
            name: f.req_str("name", 1, 255),
            event_name: f.req_str("event_name", 1, 255),
            scope: f.req_word("scope"),
            trigger,
            description: f.opt_str("description", 0, 1000),
            payload: payload(f),
            participant_filter: f.opt_str("participant_filter", 1, MAX_CEL),
            guard_condition: f.opt_str("guard_condition", 1, MAX_CEL),
            filter_hints: filter_hints(f),
            participant_id: f.opt_uuid("participant_id"),
        }
    }
}

impl Request for AutomationPatch {
    fn read(f: &Fields<'_>) -> Self {
        f.require_any();
        let status = f.opt_word("status");
        if status == Some(AutomationStatus::Archived) {
            f.reject(
                "status",
                "active or paused",
                "archive an automation with DELETE",
            );
        }
        AutomationPatch {
            name: f.opt_str("name", 1, 255),
            description: f.patch("description", |f, key| f.opt_str(key, 0, 1000)),
            event_name: f.opt_str("event_name", 1, 255),
            payload: payload(f),
            status,
            cron_expression: f.opt_str("cron_expression", 1, 255),
            timezone: f.opt_str("timezone", 1, 64),
            trigger_at: f.opt_time("trigger_at"),
            schedule_config: f.opt_object("schedule_config").cloned(),
            participant_filter: f.patch("participant_filter", |f, key| f.opt_str(key, 1, MAX_CEL)),
            guard_condition: f.patch("guard_condition", |f, key| f.opt_str(key, 1, MAX_CEL)),
            filter_hints: filter_hints(f),
        }
    }
}

impl Request for AutomationFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (cursor, limit) = q.page_within(PAGE.0, PAGE.1);
        AutomationFilter {
            search: q.opt_str("search", 1, 255),
            trigger_type: q.opt_word("trigger_type"),
            scope: q.opt_word("scope"),
            status: q.opt_word("status"),
            source: q.opt_word("source"),
            cursor,
            limit,
        }
    }
}

impl Request for SubscriptionFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (cursor, limit) = q.page_within(PAGE.0, PAGE.1);
        SubscriptionFilter {
            status: q.opt_word("status"),
            cursor,
            limit,
        }
    }
}

/// E107: `immediate` automations start their fan-out at once; participant_state ones make their
/// subscriptions at once.
#[utoipa::path(post, path = "/programs/{id}/automations", tag = "automations",
    params(("id" = Uuid, Path, description = "Program id")), request_body = NewAutomation,
    responses((status = 201, body = Automation), Rejected, NotFound, Conflict))]
async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(program_id): PathId,
    Valid(new): Valid<NewAutomation>,
) -> Result<impl IntoResponse> {
    let automation = automations::create(&s.pool, &s.clock, &actor, program_id, new).await?;
    Ok((StatusCode::CREATED, Json(automation)))
}

/// E108: newest first; filters combine.
#[utoipa::path(get, path = "/programs/{id}/automations", tag = "automations",
    params(("id" = Uuid, Path, description = "Program id"), AutomationFilter),
    responses((status = 200, body = Page<Automation>), Rejected, NotFound))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(program_id): PathId,
    ValidQuery(filter): ValidQuery<AutomationFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        automations::list(&s.pool, &actor, program_id, filter).await?,
    ))
}

/// E109: archived automations too.
#[utoipa::path(get, path = "/programs/{id}/automations/{automation_id}", tag = "automations",
    params(("id" = Uuid, Path, description = "Program id"), ("automation_id" = Uuid, Path)),
    responses((status = 200, body = Automation), Rejected, NotFound))]
async fn get(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
) -> Result<impl IntoResponse> {
    Ok(Json(
        automations::get(&s.pool, &actor, program_id, id).await?,
    ))
}

/// E110: trigger type and scope never change. Pausing stops future fires, not a fan-out already running.
#[utoipa::path(patch, path = "/programs/{id}/automations/{automation_id}", tag = "automations",
    params(("id" = Uuid, Path, description = "Program id"), ("automation_id" = Uuid, Path)),
    request_body = AutomationPatch,
    responses((status = 200, body = Automation), Rejected, NotFound, Conflict))]
async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
    Valid(patch): Valid<AutomationPatch>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        automations::update(&s.pool, &s.clock, &actor, program_id, id, patch).await?,
    ))
}

/// E111: archived for good, still readable.
#[utoipa::path(delete, path = "/programs/{id}/automations/{automation_id}", tag = "automations",
    params(("id" = Uuid, Path, description = "Program id"), ("automation_id" = Uuid, Path)),
    responses((status = 200, description = "Automation archived.", body = Automation), Rejected, NotFound,
              Conflict))]
async fn archive(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
) -> Result<impl IntoResponse> {
    Ok(Json(
        automations::archive(&s.pool, &s.clock, &actor, program_id, id).await?,
    ))
}

/// E112: fires now. cron with program scope: `next_run_at` becomes now. participants scope with no fan-out
/// running: a fan-out starts. Anything else is a 400.
#[utoipa::path(post, path = "/programs/{id}/automations/{automation_id}/trigger", tag = "automations",
    params(("id" = Uuid, Path, description = "Program id"), ("automation_id" = Uuid, Path)),
    responses((status = 200, description = "Automation triggered.", body = Automation), Rejected, NotFound,
              Conflict))]
async fn trigger(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
) -> Result<impl IntoResponse> {
    Ok(Json(
        automations::trigger(&s.pool, &s.clock, &actor, program_id, id).await?,
    ))
}

/// E113: the fan-out pending or running stops (`failed`); the events it created stay, the automation keeps
/// its schedule. 409 `no_execution` when none is running.
#[utoipa::path(post, path = "/programs/{id}/automations/{automation_id}/cancel", tag = "automations",
    params(("id" = Uuid, Path, description = "Program id"), ("automation_id" = Uuid, Path)),
    responses((status = 200, description = "Automation cancelled.", body = Automation), Rejected, NotFound,
              Conflict))]
async fn cancel(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
) -> Result<impl IntoResponse> {
    Ok(Json(
        automations::cancel(&s.pool, &s.clock, &actor, program_id, id).await?,
    ))
}

/// E114: queues a pass of a participant_state automation's filter over every participant: newly matching
/// ones are subscribed, ones no longer matching unsubscribed. Also done every hour.
#[utoipa::path(post, path = "/programs/{id}/automations/{automation_id}/refresh-subscriptions",
    tag = "automations",
    params(("id" = Uuid, Path, description = "Program id"), ("automation_id" = Uuid, Path)),
    responses((status = 202, description = "Refresh queued.", body = Object), Rejected, NotFound, Conflict))]
async fn refresh_subscriptions(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
) -> Result<impl IntoResponse> {
    automations::refresh(&s.pool, &s.clock, &actor, program_id, id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({}))))
}

/// E115: newest first; automations other than participant_state have none.
#[utoipa::path(get, path = "/programs/{id}/automations/{automation_id}/subscriptions", tag = "automations",
    params(("id" = Uuid, Path, description = "Program id"), ("automation_id" = Uuid, Path),
           SubscriptionFilter),
    responses((status = 200, body = Page<Subscription>), Rejected, NotFound))]
async fn subscriptions(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, id): PathIds,
    ValidQuery(filter): ValidQuery<SubscriptionFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        automations::subscriptions(&s.pool, &actor, program_id, id, filter).await?,
    ))
}
