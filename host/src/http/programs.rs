//! Programs (E1–E6) and the assets linked to them.

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, PathIds, Valid, ValidQuery};
use crate::assets::Asset;
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::programs::{
    self, NewProgram, Program, ProgramFilter, ProgramPatch, RedemptionTarget,
    UnknownParticipantPolicy,
};
use crate::validation::{Fields, Patch, Request};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_programs, create_program))
        .routes(routes!(get_program, update_program))
        .routes(routes!(list_program_assets, link_asset))
        .routes(routes!(unlink_asset))
}

impl Request for NewProgram {
    fn read(f: &Fields<'_>) -> Self {
        NewProgram {
            name: f.req_str("name", 1, 255),
            description: f.opt_str("description", 0, 1000),
            on_unknown_participant: f
                .opt_word("on_unknown_participant")
                .unwrap_or(UnknownParticipantPolicy::Create),
        }
    }
}

impl Request for ProgramFilter {
    fn read(q: &Fields<'_>) -> Self {
        ProgramFilter {
            include_archived: q.opt_bool("include_archived").unwrap_or(false),
            status: q.opt_word("status"),
            search: q.opt_str("search", 1, 255),
            sort_by: q.opt_word("sort_by"),
            ascending: q.ascending(),
            page: PageParams::read(q),
        }
    }
}

impl Request for ProgramPatch {
    fn read(f: &Fields<'_>) -> Self {
        let patch = ProgramPatch {
            name: f.opt_str("name", 1, 255),
            description: f.patch("description", |f, k| f.opt_str(k, 0, 1000)),
            on_unknown_participant: f.opt_word("on_unknown_participant"),
            status: f.opt_word("status"),
            redemption_target_type: f.opt_word("redemption_target_type"),
            redemption_target_entity_id: f
                .patch("redemption_target_entity_id", |f, k| f.opt_uuid(k)),
        };
        f.require_any();
        let entity_given = matches!(patch.redemption_target_entity_id, Patch::Set(_));
        match patch.redemption_target_type {
            Some(RedemptionTarget::LedgerEntity) if !entity_given => f.reject(
                "redemption_target_entity_id",
                "uuid",
                "redemption_target_entity_id is required when redemption_target_type is LEDGER_ENTITY",
            ),
            Some(target) if target != RedemptionTarget::LedgerEntity && entity_given => f.reject(
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
        patch
    }
}

/// The asset to link to a program.
#[derive(utoipa::ToSchema)]
pub struct LinkAsset {
    asset_id: Uuid,
}

impl Request for LinkAsset {
    fn read(f: &Fields<'_>) -> Self {
        LinkAsset {
            asset_id: f.req_uuid("asset_id"),
        }
    }
}

#[utoipa::path(post, path = "/programs", tag = "programs", request_body = NewProgram,
    responses((status = 201, description = "The program, ACTIVE.", body = Program), Rejected))]
async fn create_program(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Valid(new): Valid<NewProgram>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(programs::create(&s.pool, &actor, new).await?),
    ))
}

#[utoipa::path(get, path = "/programs", tag = "programs", params(PageParams, ProgramFilter),
    responses((status = 200, body = Page<Program>), Rejected))]
async fn list_programs(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<ProgramFilter>,
) -> Result<impl IntoResponse> {
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

#[utoipa::path(patch, path = "/programs/{id}", tag = "programs", params(PathId), request_body = ProgramPatch,
    responses((status = 200, body = Program), Rejected, NotFound))]
async fn update_program(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(patch): Valid<ProgramPatch>,
) -> Result<impl IntoResponse> {
    Ok(Json(programs::update(&s.pool, &actor, id, patch).await?))
}

#[utoipa::path(post, path = "/programs/{id}/assets", tag = "programs", params(PathId), request_body = LinkAsset,
    responses((status = 200, description = "The asset with its `program_ids`.", body = Asset), Rejected, NotFound, Conflict))]
async fn link_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(link): Valid<LinkAsset>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        crate::assets::link_to_program(&s.pool, &actor, id, link.asset_id).await?,
    ))
}

/// E7: only an asset no value has moved in within the program, and that no rule of the program names, can be
/// unlinked.
#[utoipa::path(delete, path = "/programs/{id}/assets/{asset_id}", tag = "programs",
    params(("id" = Uuid, Path, description = "Program id"), ("asset_id" = Uuid, Path)),
    responses((status = 204, description = "Unlinked."), Rejected, NotFound, Conflict))]
async fn unlink_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, asset_id): PathIds,
) -> Result<impl IntoResponse> {
    crate::assets::unlink_from_program(&s.pool, &actor, program_id, asset_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/programs/{id}/assets", tag = "programs", params(PathId, PageParams),
    responses((status = 200, body = Page<Asset>), Rejected, NotFound))]
async fn list_program_assets(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        crate::assets::list_of_program(&s.pool, &actor, id, page).await?,
    ))
}
