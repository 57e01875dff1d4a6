//! Reports: program activity (E119).

use super::AppState;
use super::error::Rejected;
use super::extract::{Auth, QueryParams};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::reports::{self, ActivityQuery};
use crate::validation::Validator;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(program_activity))
}

/// Query strings and answers as the document shows them.
#[allow(dead_code)]
mod doc {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ActivityQuery {
        /// Only programs with ledger activity after this instant.
        since: Option<DateTime<Utc>>,
        /// Scopes the counts and totals; requires `to`.
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    }

    /// One program's activity; totals are decimal strings.
    #[derive(utoipa::ToSchema)]
    pub struct ProgramActivity {
        program_id: Uuid,
        program_name: String,
        event_count: i64,
        journal_count: i64,
        #[schema(example = "1500")]
        total_issued: String,
        #[schema(example = "200")]
        total_redeemed: String,
        unique_participants: i64,
        last_activity_at: Option<DateTime<Utc>>,
        asset_count: i64,
        rule_count: i64,
        tier_count: i64,
        reward_count: i64,
    }
}

#[utoipa::path(get, path = "/reports/program-activity", tag = "reports", params(PageParams, doc::ActivityQuery),
    responses((status = 200, body = Page<doc::ProgramActivity>), Rejected))]
async fn program_activity(
    State(s): State<AppState>,
    Auth(actor): Auth,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let query = ActivityQuery {
        since: q.opt_time("since"),
        window: q.window(),
        cursor,
        limit,
    };
    v.finish()?;
    Ok(Json(
        reports::program_activity(&s.pool, &actor, query).await?,
    ))
}
