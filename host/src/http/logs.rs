//! Request logs (E122, E123) and API usage (E124).

use super::AppState;
use super::error::{NotFound, Rejected};
use super::extract::{Auth, PathId, ValidQuery};
use crate::error::Result;
use crate::pagination::Page;
use crate::request_logs::{self, LogFilter, LogSort, RequestLog, RequestLogDetail, Usage};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_logs))
        .routes(routes!(get_log))
        .routes(routes!(usage))
}

impl Request for LogFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (cursor, limit) = q.page_within(50, 100);
        let (from, to) = q.range("from", "to");
        let (status_min, status_max) = (
            q.opt_int("status_min", 100, 599),
            q.opt_int("status_max", 100, 599),
        );
        if let (Some(min), Some(max)) = (status_min, status_max)
            && min > max
        {
            q.reject(
                "status_max",
                "a status not below status_min",
                "status_max must not be below status_min",
            );
        }
        let sort_by = q.opt_word("sort_by").unwrap_or(LogSort::CreatedAt);
        // A cursor carries the sort column's value of the page's last row.
        let fits = |c: &crate::pagination::Cursor| match sort_by {
            LogSort::CreatedAt => DateTime::parse_from_rfc3339(&c.key).is_ok(),
            LogSort::DurationMs | LogSort::StatusCode => c.key.parse::<i32>().is_ok(),
        };
        if cursor.as_ref().is_some_and(|c| !fits(c)) {
            q.reject(
                "cursor",
                "a cursor of a list in this sort_by",
                "cursor comes from a list sorted otherwise",
            );
        }
        LogFilter {
            method: q.opt_str("method", 1, 10),
            route_pattern: q.opt_str("route_pattern", 1, 255),
            request_id: q.opt_str("request_id", 1, 100),
            auth_type: q.opt_word("auth_type"),
            status_min,
            status_max,
            from,
            to,
            sort_by,
            ascending: q.ascending(),
            limit,
            cursor,
        }
    }
}

/// E124's window.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct UsageWindow {
    /// Default: 30 days before `to`.
    from: Option<DateTime<Utc>>,
    /// Default: now.
    to: Option<DateTime<Utc>>,
}

impl Request for UsageWindow {
    fn read(q: &Fields<'_>) -> Self {
        let (from, to) = q.range("from", "to");
        UsageWindow { from, to }
    }
}

/// E122: this organization's API requests, newest first unless sorted otherwise. Logs are written a
/// moment after each answer and kept for the operator's retention period (30 days by default).
#[utoipa::path(get, path = "/logs", tag = "logs", params(LogFilter),
    responses((status = 200, body = Page<RequestLog>), Rejected))]
async fn list_logs(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<LogFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(request_logs::list(&s.pool, &actor, filter).await?))
}

/// E123: one request with its bodies (secrets redacted, at most 16 KiB each).
#[utoipa::path(get, path = "/logs/{id}", tag = "logs", params(PathId),
    responses((status = 200, body = RequestLogDetail), Rejected, NotFound))]
async fn get_log(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(request_logs::get(&s.pool, &actor, id).await?))
}

/// E124: requests, errors (status 400 and above) and mean latency per UTC day, from the request logs.
#[utoipa::path(get, path = "/usage", tag = "logs", params(UsageWindow),
    responses((status = 200, body = Usage), Rejected))]
async fn usage(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(window): ValidQuery<UsageWindow>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        request_logs::usage(&s.pool, &actor, window.from, window.to).await?,
    ))
}
