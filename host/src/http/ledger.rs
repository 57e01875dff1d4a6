//! Journal entries (E116–E117).

use super::AppState;
use super::error::{NotFound, Rejected};
use super::extract::{Auth, PathId, ValidQuery};
use crate::error::Result;
use crate::ledger::{self, EntryFilter, JournalEntry};
use crate::pagination::{Page, PageParams};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
}

impl Request for EntryFilter {
    fn read(q: &Fields<'_>) -> Self {
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
        EntryFilter {
            program_id: q.opt_uuid("program_id"),
            event_id: q.opt_uuid("event_id"),
            rule_id: q.opt_uuid("rule_id"),
            asset_id: q.opt_uuid("asset_id"),
            participant_id: q.opt_uuid("participant_id"),
            group_id: q.opt_uuid("group_id"),
            external_id: q.opt_str("external_id", 1, 255),
            bucket: q.opt_word("bucket"),
            from: q.opt_time("from"),
            to: q.opt_time("to"),
            min_amount: q.opt_decimal("min_amount"),
            max_amount: q.opt_decimal("max_amount"),
            action_type: q.opt_str("action_type", 1, 64),
            reference_id: q.opt_str("reference_id", 1, 255),
            page: PageParams::read(q),
        }
    }
}

#[utoipa::path(get, path = "/journal-entries", tag = "ledger", operation_id = "list_journal_entries",
    params(PageParams, EntryFilter), responses((status = 200, body = Page<JournalEntry>), Rejected))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<EntryFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(ledger::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/journal-entries/{id}", tag = "ledger", operation_id = "get_journal_entry", params(PathId),
    responses((status = 200, body = JournalEntry), Rejected, NotFound))]
async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(ledger::get(&s.pool, &actor, id).await?))
}
