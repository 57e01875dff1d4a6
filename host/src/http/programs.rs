//! Programs (E1–E6) and assets (E13–E16).

use super::AppState;
use super::extract::{Auth, JsonBody, PathId, QueryParams};
use crate::assets::{self, AssetFilter, AssetPatch, NewAsset};
use crate::error::Result;
use crate::programs::{self, NewProgram, ProgramFilter, ProgramPatch};
use crate::validation::{Patch, Validator};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/programs", get(list_programs).post(create_program))
        .route("/programs/{id}", get(get_program).patch(update_program))
        .route(
            "/programs/{id}/assets",
            get(list_program_assets).post(link_asset),
        )
        .route("/assets", get(list_assets).post(create_asset))
        .route("/assets/{id}", get(get_asset).patch(update_asset))
}

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
        sort_by_name: q.opt_enum("sort_by", &["created_at", "name"]) == Some("name"),
        ascending: q.ascending(),
        cursor,
        limit,
    };
    v.finish()?;
    Ok(Json(programs::list(&s.pool, &actor, filter).await?))
}

async fn get_program(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(programs::get(&s.pool, &actor, id).await?))
}

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
        status: f.opt_enum("status", programs::STATUSES),
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
        programs::link_asset(&s.pool, &actor, id, asset_id).await?,
    ))
}

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
        programs::list_assets(&s.pool, &actor, id, cursor, limit).await?,
    ))
}

async fn create_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let symbol = f.req_str("symbol", 1, 16);
    if !symbol.chars().all(|c| c.is_ascii_alphanumeric()) {
        f.reject(
            "symbol",
            "alphanumeric string",
            "symbol must contain only letters and digits",
        );
    }
    let new = NewAsset {
        program_id: f.req_uuid("program_id"),
        name: f.req_str("name", 1, 255),
        symbol,
        inventory_mode: f.req_enum("inventory_mode", assets::INVENTORY_MODES),
        issuance_policy: f.req_enum("issuance_policy", assets::ISSUANCE_POLICIES),
        scale: i16::try_from(f.req_int("scale", 0, 18)).unwrap_or_default(),
        max_transaction_amount: f.opt_positive_decimal("max_transaction_amount"),
    };
    v.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(assets::create(&s.pool, &actor, new).await?),
    ))
}

async fn list_assets(
    State(s): State<AppState>,
    Auth(actor): Auth,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let filter = AssetFilter {
        program_id: q.opt_uuid("program_id"),
        status: q.opt_enum("status", &["ACTIVE", "ARCHIVED"]),
        search: q.opt_str("search", 1, 255),
        cursor,
        limit,
    };
    v.finish()?;
    Ok(Json(assets::list(&s.pool, &actor, filter).await?))
}

async fn get_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(assets::get(&s.pool, &actor, id).await?))
}

async fn update_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    for immutable in [
        "inventory_mode",
        "issuance_policy",
        "scale",
        "symbol",
        "program_id",
    ] {
        if f.contains(immutable) {
            f.reject(
                immutable,
                "absent",
                format!("{immutable} cannot be changed after the asset is created"),
            );
        }
    }
    let archive = match f.raw("status") {
        None => false,
        Some(_) => f.opt_enum("status", &["ARCHIVED"]).is_some(),
    };
    let patch = AssetPatch {
        name: f.opt_str("name", 1, 255),
        archive,
        max_transaction_amount: f.patch("max_transaction_amount", |f, k| f.opt_positive_decimal(k)),
    };
    f.require_any();
    v.finish()?;
    Ok(Json(assets::update(&s.pool, &actor, id, patch).await?))
}
