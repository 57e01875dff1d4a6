//! Journal entries (E116–E117) and program activity (E119).

use super::AppState;
use super::extract::{Auth, PathId, QueryParams};
use crate::error::Result;
use crate::ledger::{self, EntryFilter};
use crate::reports::{self, ActivityQuery};
use crate::validation::Validator;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/journal-entries", get(list))
        .route("/journal-entries/{id}", get(get_one))
        .route("/reports/program-activity", get(program_activity))
}

async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let filter = EntryFilter {
        program_id: q.opt_uuid("program_id"),
        event_id: q.opt_uuid("event_id"),
        rule_id: q.opt_uuid("rule_id"),
        asset_id: q.opt_uuid("asset_id"),
        participant_id: q.opt_uuid("participant_id"),
        group_id: q.opt_uuid("group_id"),
        external_id: q.opt_str("external_id", 1, 255),
        bucket: q.opt_enum("bucket", ledger::BUCKETS),
        created: (q.opt_time("from"), q.opt_time("to")),
        min_amount: q.opt_decimal("min_amount"),
        max_amount: q.opt_decimal("max_amount"),
        action_type: q.opt_str("action_type", 1, 64),
        reference_id: q.opt_str("reference_id", 1, 255),
        cursor,
        limit,
    };
    let entity_filters = ["participant_id", "group_id", "external_id"]
        .iter()
        .filter(|k| q.raw(k).is_some())
        .count();
    if entity_filters > 1 {
        q.reject(
            "participant_id",
            "at most one of participant_id, group_id, external_id",
            "participant_id, group_id and external_id are mutually exclusive",
        );
    }
    v.finish()?;
    Ok(Json(ledger::list(&s.pool, &actor, filter).await?))
}

async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(ledger::get(&s.pool, &actor, id).await?))
}

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
