//! Assets (E13–E16).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, PathId, Valid, ValidQuery};
use crate::assets::{self, Asset, AssetFilter, AssetPatch, NewAsset};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_assets, create_asset))
        .routes(routes!(get_asset, update_asset))
}

impl Request for NewAsset {
    fn read(f: &Fields<'_>) -> Self {
        let symbol = f.req_str("symbol", 1, 16);
        if !symbol.chars().all(|c| c.is_ascii_alphanumeric()) {
            f.reject(
                "symbol",
                "alphanumeric string",
                "symbol must contain only letters and digits",
            );
        }
        NewAsset {
            program_id: f.req_uuid("program_id"),
            name: f.req_str("name", 1, 255),
            symbol,
            inventory_mode: f.req_word("inventory_mode"),
            issuance_policy: f.req_word("issuance_policy"),
            scale: i16::try_from(f.req_int("scale", 0, 18)).unwrap_or_default(),
            max_transaction_amount: f.opt_positive_decimal("max_transaction_amount"),
        }
    }
}

impl Request for AssetFilter {
    fn read(q: &Fields<'_>) -> Self {
        AssetFilter {
            program_id: q.opt_uuid("program_id"),
            status: q.opt_word("status"),
            search: q.opt_str("search", 1, 255),
            page: PageParams::read(q),
        }
    }
}

impl Request for AssetPatch {
    fn read(f: &Fields<'_>) -> Self {
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
        f.require_any();
        AssetPatch {
            name: f.opt_str("name", 1, 255),
            status: f.opt_word("status"),
            max_transaction_amount: f
                .patch("max_transaction_amount", |f, k| f.opt_positive_decimal(k)),
        }
    }
}

#[utoipa::path(post, path = "/assets", tag = "assets", request_body = NewAsset,
    responses((status = 201, description = "The asset, linked to `program_id`.", body = Asset), Rejected, NotFound, Conflict))]
async fn create_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Valid(new): Valid<NewAsset>,
) -> Result<impl IntoResponse> {
    Ok((
        StatusCode::CREATED,
        Json(assets::create(&s.pool, &actor, new).await?),
    ))
}

#[utoipa::path(get, path = "/assets", tag = "assets", params(PageParams, AssetFilter),
    responses((status = 200, body = Page<Asset>), Rejected))]
async fn list_assets(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<AssetFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(assets::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/assets/{id}", tag = "assets", params(PathId),
    responses((status = 200, body = Asset), Rejected, NotFound))]
async fn get_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(assets::get(&s.pool, &actor, id).await?))
}

#[utoipa::path(patch, path = "/assets/{id}", tag = "assets", params(PathId), request_body = AssetPatch,
    responses((status = 200, body = Asset), Rejected, NotFound, Conflict))]
async fn update_asset(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(patch): Valid<AssetPatch>,
) -> Result<impl IntoResponse> {
    Ok(Json(assets::update(&s.pool, &actor, id, patch).await?))
}
