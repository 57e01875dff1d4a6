//! Reports: program activity (E119).

use super::AppState;
use super::error::Rejected;
use super::extract::{Auth, ValidQuery};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::reports::{self, ActivityQuery, ActivityRow};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(program_activity))
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
