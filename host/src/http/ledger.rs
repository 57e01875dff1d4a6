//! Journal entries (E116–E117).

use super::AppState;
use super::error::{NotFound, Rejected};
use super::extract::{Auth, PathId, QueryParams};
use crate::error::Result;
use crate::ledger::{self, EntryFilter, JournalEntry};
use crate::pagination::{Page, PageParams};
use crate::validation::Validator;
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

/// Query strings and answers as the document shows them.
#[allow(dead_code)]
mod doc {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct EntryQuery {
        program_id: Option<Uuid>,
        event_id: Option<Uuid>,
        rule_id: Option<Uuid>,
        asset_id: Option<Uuid>,
        /// At most one of participant_id, group_id and external_id.
        participant_id: Option<Uuid>,
        group_id: Option<Uuid>,
        #[param(min_length = 1, max_length = 255)]
        external_id: Option<String>,
        #[param(inline)]
        bucket: Option<crate::ledger::Bucket>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        /// Entries with a posting of at least this size.
        #[param(inline)]
        min_amount: Option<crate::money::Amount>,
        #[param(inline)]
        max_amount: Option<crate::money::Amount>,
        #[param(min_length = 1, max_length = 64)]
        action_type: Option<String>,
        #[param(min_length = 1, max_length = 255)]
        reference_id: Option<String>,
    }
}

#[utoipa::path(get, path = "/journal-entries", tag = "ledger", operation_id = "list_journal_entries",
    params(PageParams, doc::EntryQuery), responses((status = 200, body = Page<JournalEntry>), Rejected))]
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

#[utoipa::path(get, path = "/journal-entries/{id}", tag = "ledger", operation_id = "get_journal_entry", params(PathId),
    responses((status = 200, body = JournalEntry), Rejected, NotFound))]
async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(ledger::get(&s.pool, &actor, id).await?))
}
