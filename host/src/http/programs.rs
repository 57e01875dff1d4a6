//! Programs (E1–E6) and the assets linked to them.

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, JsonBody, PathId, QueryParams};
use crate::assets::Asset;
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::programs::{self, NewProgram, Program, ProgramFilter, ProgramPatch};
use crate::validation::{Patch, Validator};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_programs, create_program))
        .routes(routes!(get_program, update_program))
        .routes(routes!(list_program_assets, link_asset))
}

crate::api_enum!(ProgramSort = PROGRAM_SORT_KEYS ["created_at", "name"]);

/// Request bodies and query strings as the document shows them; the handlers read them with `Validator`.
#[allow(dead_code)]
mod doc {
    use crate::programs::{ProgramStatus, RedemptionTarget, UnknownParticipantPolicy};
    use uuid::Uuid;

    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"name": "Coffee Rewards", "description": "Earn points on every purchase"}))]
    pub struct CreateProgram {
        #[schema(min_length = 1, max_length = 255)]
        name: String,
        #[schema(max_length = 1000)]
        description: Option<String>,
        /// Default CREATE.
        on_unknown_participant: Option<UnknownParticipantPolicy>,
    }

    /// Only the fields given change; at least one is required.
    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"status": "SUSPENDED"}))]
    pub struct UpdateProgram {
        #[schema(min_length = 1, max_length = 255)]
        name: Option<String>,
        #[schema(max_length = 1000)]
        description: Option<String>,
        on_unknown_participant: Option<UnknownParticipantPolicy>,
        status: Option<ProgramStatus>,
        redemption_target_type: Option<RedemptionTarget>,
        /// Required with LEDGER_ENTITY, omitted otherwise.
        redemption_target_entity_id: Option<Uuid>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct LinkAsset {
        asset_id: Uuid,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ProgramQuery {
        /// Show archived programs too (a `status` filter does as well).
        include_archived: Option<bool>,
        #[param(inline)]
        status: Option<ProgramStatus>,
        /// Part of the name, case-insensitive.
        #[param(min_length = 1, max_length = 255)]
        search: Option<String>,
        #[param(inline)]
        sort_by: Option<super::ProgramSort>,
        #[param(inline)]
        sort_dir: Option<crate::validation::SortDir>,
    }
}

#[utoipa::path(post, path = "/programs", tag = "programs", request_body = doc::CreateProgram,
    responses((status = 201, description = "The program, ACTIVE.", body = Program), Rejected))]
async fn create_program(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let new = NewProgram {
        name: f.req_str("name", 1, 255),
        description: f.opt_str("description", 0, 1000),
        on_unknown_participant: f
            .opt_enum(
                "on_unknown_participant",
                programs::UNKNOWN_PARTICIPANT_POLICIES,
            )
            .unwrap_or("CREATE"),
    };
    v.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(programs::create(&s.pool, &actor, new).await?),
    ))
}

#[utoipa::path(get, path = "/programs", tag = "programs", params(PageParams, doc::ProgramQuery),
    responses((status = 200, body = Page<Program>), Rejected))]
async fn list_programs(
    State(s): State<AppState>,
    Auth(actor): Auth,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let filter = ProgramFilter {
        include_archived: q.opt_bool("include_archived").unwrap_or(false),
        status: q.opt_enum("status", programs::STATUSES),
        search: q.opt_str("search", 1, 255),
        sort_by_name: q.opt_enum("sort_by", PROGRAM_SORT_KEYS) == Some("name"),
        ascending: q.ascending(),
        cursor,
        limit,
    };
    v.finish()?;
    Ok(Json(programs::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/programs/{id}", tag = "programs", params(PathId),
    responses((status = 200, body = Program), Rejected, NotFound))]
async fn get_program(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(programs::get(&s.pool, &actor, id).await?))
}

#[utoipa::path(patch, path = "/programs/{id}", tag = "programs", params(PathId), request_body = doc::UpdateProgram,
    responses((status = 200, body = Program), Rejected, NotFound))]
async fn update_program(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let patch = ProgramPatch {
        name: f.opt_str("name", 1, 255),
        description: f.patch("description", |f, k| f.opt_str(k, 0, 1000)),
        on_unknown_participant: f.opt_enum(
            "on_unknown_participant",
            programs::UNKNOWN_PARTICIPANT_POLICIES,
        ),
        status: f
            .opt_enum("status", programs::STATUSES)
            .and_then(programs::ProgramStatus::parse),
        redemption_target_type: f.opt_enum("redemption_target_type", programs::REDEMPTION_TARGETS),
        redemption_target_entity_id: f.patch("redemption_target_entity_id", |f, k| f.opt_uuid(k)),
    };
    f.require_any();
    let entity_given = matches!(patch.redemption_target_entity_id, Patch::Set(_));
    match patch.redemption_target_type {
        Some("LEDGER_ENTITY") if !entity_given => f.reject(
            "redemption_target_entity_id",
            "uuid",
            "redemption_target_entity_id is required when redemption_target_type is LEDGER_ENTITY",
        ),
        Some(target) if target != "LEDGER_ENTITY" && entity_given => f.reject(
            "redemption_target_entity_id",
            "absent",
            "redemption_target_entity_id must be omitted for SYSTEM_* redemption targets",
        ),
        None if !patch.redemption_target_entity_id.is_absent() => f.reject(
            "redemption_target_type",
            "LEDGER_ENTITY",
            "redemption_target_entity_id can only be set together with redemption_target_type LEDGER_ENTITY",
        ),
        _ => {}
    }
    v.finish()?;
    Ok(Json(programs::update(&s.pool, &actor, id, patch).await?))
}

#[utoipa::path(post, path = "/programs/{id}/assets", tag = "programs", params(PathId), request_body = doc::LinkAsset,
    responses((status = 200, description = "The asset with its `program_ids`.", body = Asset), Rejected, NotFound, Conflict))]
async fn link_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let asset_id = v.body(&body)?.req_uuid("asset_id");
    v.finish()?;
    Ok(Json(
        crate::assets::link_to_program(&s.pool, &actor, id, asset_id).await?,
    ))
}

#[utoipa::path(get, path = "/programs/{id}/assets", tag = "programs", params(PathId, PageParams),
    responses((status = 200, body = Page<Asset>), Rejected, NotFound))]
async fn list_program_assets(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let (cursor, limit) = v.query(&q).page();
    v.finish()?;
    Ok(Json(
        crate::assets::list_of_program(&s.pool, &actor, id, cursor, limit).await?,
    ))
}
