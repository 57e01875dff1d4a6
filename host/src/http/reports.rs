//! Reports: program activity (E119), the ledger summary (E118), liability (E120), its rollforward (E121) and
//! the expiration schedule.

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, ValidQuery};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::reports::liability::{
    self, Granularity, Liability, LiabilityQuery, MAX_BUCKETS, Rollforward, RollforwardQuery,
    ScheduleQuery, ScheduleRow, SummaryQuery, SummaryRow,
};
use crate::reports::{self, ActivityQuery, ActivityRow};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use chrono::Datelike;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(program_activity))
        .routes(routes!(ledger_summary))
        .routes(routes!(liability_report))
        .routes(routes!(rollforward))
        .routes(routes!(expiration_schedule))
}

impl Request for ActivityQuery {
    fn read(q: &Fields<'_>) -> Self {
        let window = q.window();
        ActivityQuery {
            since: q.opt_time("since"),
            from: window.map(|(from, _)| from),
            to: window.map(|(_, to)| to),
            page: PageParams::read(q),
        }
    }
}

#[utoipa::path(get, path = "/reports/program-activity", tag = "reports", params(PageParams, ActivityQuery),
    responses((status = 200, body = Page<ActivityRow>), Rejected))]
async fn program_activity(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(query): ValidQuery<ActivityQuery>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        reports::program_activity(&s.pool, &actor, query).await?,
    ))
}

impl Request for SummaryQuery {
    fn read(q: &Fields<'_>) -> Self {
        let window = q.window();
        SummaryQuery {
            program_id: q.opt_uuid("program_id"),
            from: window.map(|(from, _)| from),
            to: window.map(|(_, to)| to),
            page: PageParams::read(q),
        }
    }
}

impl Request for LiabilityQuery {
    fn read(q: &Fields<'_>) -> Self {
        LiabilityQuery {
            as_of: q.opt_time("as_of"),
            program_id: q.opt_uuid("program_id"),
            asset_id: q.opt_uuid("asset_id"),
            by_bucket: q.opt_bool("by_bucket").unwrap_or(false),
            page: PageParams::read(q),
        }
    }
}

impl Request for RollforwardQuery {
    fn read(q: &Fields<'_>) -> Self {
        let (from, to) = q.req_window();
        RollforwardQuery {
            from,
            to,
            program_id: q.opt_uuid("program_id"),
            asset_id: q.opt_uuid("asset_id"),
            page: PageParams::read(q),
        }
    }
}

impl Request for ScheduleQuery {
    fn read(q: &Fields<'_>) -> Self {
        let (from, to) = q.req_window();
        let granularity = q.opt_word("granularity").unwrap_or(Granularity::Month);
        let buckets = match granularity {
            Granularity::Day => (to - from).num_days(),
            Granularity::Week => (to - from).num_weeks(),
            Granularity::Month => {
                let months = |t: chrono::DateTime<chrono::Utc>| {
                    i64::from(t.year()) * 12 + i64::from(t.month())
                };
                months(to) - months(from)
            }
        };
        if buckets >= MAX_BUCKETS {
            q.reject(
                "to",
                &format!("a window of fewer than {MAX_BUCKETS} {granularity}s"),
                format!(
                    "the window spans more than {MAX_BUCKETS} buckets; choose a coarser granularity"
                ),
            );
        }
        ScheduleQuery {
            from,
            to,
            granularity,
            program_id: q.opt_uuid("program_id"),
            asset_id: q.opt_uuid("asset_id"),
            page: PageParams::read(q),
        }
    }
}

/// E118: per asset, what was issued, redeemed, expired and forfeited; a window adds its own figures.
#[utoipa::path(get, path = "/reports/ledger-summary", tag = "reports", params(PageParams, SummaryQuery),
    responses((status = 200, body = Page<SummaryRow>), Rejected))]
async fn ledger_summary(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(query): ValidQuery<SummaryQuery>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        liability::ledger_summary(&s.pool, &actor, query).await?,
    ))
}

/// E120: what is owed per program and asset at an instant.
#[utoipa::path(get, path = "/reports/liability", tag = "reports", params(PageParams, LiabilityQuery),
    responses((status = 200, body = Liability), Rejected))]
async fn liability_report(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(query): ValidQuery<LiabilityQuery>,
) -> Result<impl IntoResponse> {
    Ok(Json(liability::liability(&s.pool, &actor, query).await?))
}

/// E121: how the liability moved in a window, line by line. Activity that fits no line fails the report with
/// 409 `unclassified_activity` rather than misstating it.
#[utoipa::path(get, path = "/reports/liability-rollforward", tag = "reports", params(PageParams, RollforwardQuery),
    responses((status = 200, body = Rollforward), Rejected, Conflict))]
async fn rollforward(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(query): ValidQuery<RollforwardQuery>,
) -> Result<impl IntoResponse> {
    Ok(Json(liability::rollforward(&s.pool, &actor, query).await?))
}

/// When the value held in lots expires, in calendar buckets (UTC).
#[utoipa::path(get, path = "/reports/expiration-schedule", tag = "reports", params(PageParams, ScheduleQuery),
    responses((status = 200, body = Page<ScheduleRow>), Rejected, NotFound))]
async fn expiration_schedule(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(query): ValidQuery<ScheduleQuery>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        liability::expiration_schedule(&s.pool, &actor, query).await?,
    ))
}
