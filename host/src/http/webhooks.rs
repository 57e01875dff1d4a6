//! Webhook endpoints (E125–E130) and their deliveries (E131–E134).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, Valid, ValidQuery};
use crate::error::Result;
use crate::pagination::Page;
use crate::validation::{Fields, Request};
use crate::webhooks::{
    self, ALL_EVENTS, Delivery, DeliveryDetail, DeliveryFilter, Endpoint, EndpointFilter,
    EndpointPatch, EndpointStatus, NewEndpoint, WebhookEventType,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(get_endpoint, update_endpoint, archive_endpoint))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_deliveries))
        .routes(routes!(get_delivery))
        .routes(routes!(retry_delivery))
        .routes(routes!(resend_delivery))
}

/// Webhook endpoint and delivery lists: 20 a page unless asked, at most 100.
const PAGE: (i64, i64) = (20, 100);

/// 1 to 20 event types, or `*`; repeats are dropped.
fn enabled_events(f: &Fields<'_>, key: &str) -> Option<Vec<String>> {
    let mut events = f.opt_string_list(key, 64)?;
    if !(1..=20).contains(&events.len()) {
        f.reject(
            key,
            "1 to 20 event types",
            format!("{key} must name 1 to 20 event types"),
        );
    }
    for (i, event) in events.iter().enumerate() {
        if event != ALL_EVENTS && WebhookEventType::parse(event).is_none() {
            let expected = format!("* or one of {}", WebhookEventType::NAMES.join(", "));
            f.reject(
                &format!("{key}[{i}]"),
                &expected,
                format!("{event} is not a webhook event type"),
            );
        }
    }
    events.sort();
    events.dedup();
    Some(events)
}

impl Request for NewEndpoint {
    fn read(f: &Fields<'_>) -> Self {
        let enabled_events = enabled_events(f, "enabled_events");
        if enabled_events.is_none() {
            f.missing("enabled_events");
        }
        NewEndpoint {
            url: f.req_str("url", 1, 2048),
            enabled_events: enabled_events.unwrap_or_default(),
            description: f.opt_str("description", 0, 1000),
            metadata: f.raw("metadata").filter(|v| !v.is_null()).cloned(),
        }
    }
}

impl Request for EndpointPatch {
    fn read(f: &Fields<'_>) -> Self {
        f.require_any();
        let status = f.opt_word("status");
        if status == Some(EndpointStatus::Archived) {
            f.reject(
                "status",
                "ACTIVE or DISABLED",
                "archive an endpoint with DELETE",
            );
        }
        EndpointPatch {
            url: f.opt_str("url", 1, 2048),
            description: f.patch("description", |f, key| f.opt_str(key, 0, 1000)),
            enabled_events: enabled_events(f, "enabled_events"),
            status,
            metadata: f.patch("metadata", |f, key| f.raw(key).cloned()),
        }
    }
}

impl Request for EndpointFilter {
    fn read(q: &Fields<'_>) -> Self {
        let status = q.opt_word("status");
        if status == Some(EndpointStatus::Archived) {
            q.reject(
                "status",
                "ACTIVE or DISABLED",
                "archived endpoints are not listed",
            );
        }
        let (cursor, limit) = q.page_within(PAGE.0, PAGE.1);
        EndpointFilter {
            status,
            limit,
            cursor,
        }
    }
}

impl Request for DeliveryFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (cursor, limit) = q.page_within(PAGE.0, PAGE.1);
        DeliveryFilter {
            status: q.opt_word("status"),
            limit,
            cursor,
        }
    }
}

/// E125: the answer is the only one, besides rotate-secret, that shows the signing secret.
#[utoipa::path(post, path = "/webhook-endpoints", tag = "webhooks", request_body = NewEndpoint,
    responses((status = 201, description = "Endpoint created, with its secret.", body = Endpoint), Rejected))]
async fn create_endpoint(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Valid(new): Valid<NewEndpoint>,
) -> Result<impl IntoResponse> {
    let endpoint = webhooks::create(&s.pool, &s.webhook_urls, &actor, new).await?;
    Ok((StatusCode::CREATED, Json(endpoint)))
}

/// E126: newest first; archived endpoints are never listed.
#[utoipa::path(get, path = "/webhook-endpoints", tag = "webhooks",
    params(EndpointFilter),
    responses((status = 200, body = Page<Endpoint>), Rejected))]
async fn list_endpoints(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<EndpointFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(webhooks::list(&s.pool, &actor, filter).await?))
}

/// E127.
#[utoipa::path(get, path = "/webhook-endpoints/{id}", tag = "webhooks", params(PathId),
    responses((status = 200, body = Endpoint), Rejected, NotFound))]
async fn get_endpoint(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(webhooks::get(&s.pool, &actor, id).await?))
}

/// E128: what is given changes; making a DISABLED endpoint ACTIVE again resumes its deliveries.
#[utoipa::path(patch, path = "/webhook-endpoints/{id}", tag = "webhooks", params(PathId),
    request_body = EndpointPatch,
    responses((status = 200, body = Endpoint), Rejected, NotFound, Conflict))]
async fn update_endpoint(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(patch): Valid<EndpointPatch>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        webhooks::update(&s.pool, &s.webhook_urls, &actor, id, patch).await?,
    ))
}

/// E129: archives the endpoint for good; deliveries it has not been sent are never sent.
#[utoipa::path(delete, path = "/webhook-endpoints/{id}", tag = "webhooks", params(PathId),
    responses((status = 200, description = "Endpoint archived.", body = Endpoint), Rejected, NotFound, Conflict))]
async fn archive_endpoint(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(webhooks::archive(&s.pool, &actor, id).await?))
}

/// E130: a new secret, shown in the answer; the old one stops working at once.
#[utoipa::path(post, path = "/webhook-endpoints/{id}/rotate-secret", tag = "webhooks", params(PathId),
    responses((status = 200, body = Endpoint), Rejected, NotFound, Conflict))]
async fn rotate_secret(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(webhooks::rotate_secret(&s.pool, &actor, id).await?))
}

/// E131: newest first.
#[utoipa::path(get, path = "/webhook-endpoints/{id}/deliveries", tag = "webhooks",
    params(PathId, DeliveryFilter),
    responses((status = 200, body = Page<Delivery>), Rejected, NotFound))]
async fn list_deliveries(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(filter): ValidQuery<DeliveryFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        webhooks::deliveries(&s.pool, &actor, id, filter).await?,
    ))
}

/// E132: with the last response's body (first 4 KB) and error.
#[utoipa::path(get, path = "/webhook-deliveries/{id}", tag = "webhooks", params(PathId),
    responses((status = 200, body = DeliveryDetail), Rejected, NotFound))]
async fn get_delivery(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(webhooks::delivery(&s.pool, &actor, id).await?))
}

/// E133: a FAILED delivery is PENDING again with a fresh 8 attempts, the first at once; a delivery in any
/// other status is not found.
#[utoipa::path(post, path = "/webhook-deliveries/{id}/retry", tag = "webhooks", params(PathId),
    responses((status = 200, body = DeliveryDetail), Rejected, NotFound))]
async fn retry_delivery(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(webhooks::retry(&s.pool, &actor, id).await?))
}

/// E134: a new delivery of the same event to the same endpoint (`resend_seq` one higher); the source is
/// untouched. Only DELIVERED and FAILED deliveries of ACTIVE endpoints can be resent.
#[utoipa::path(post, path = "/webhook-deliveries/{id}/resend", tag = "webhooks", params(PathId),
    responses((status = 201, description = "The new delivery.", body = DeliveryDetail), Rejected, NotFound, Conflict))]
async fn resend_delivery(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    let resent = webhooks::resend(&s.pool, &actor, id).await?;
    Ok((StatusCode::CREATED, Json(resent)))
}
