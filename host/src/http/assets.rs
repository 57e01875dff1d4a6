//! Assets (E13–E16).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, JsonBody, PathId, QueryParams};
use crate::assets::{self, Asset, AssetFilter, AssetPatch, NewAsset};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::validation::Validator;
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

crate::api_enum!(ArchiveStatus = ARCHIVE["ARCHIVED"]);

/// Request bodies and query strings as the document shows them; the handlers read them with `Validator`.
#[allow(dead_code)]
mod doc {
    use crate::money::PositiveAmount;
    use uuid::Uuid;

    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000", "name": "Points",
        "symbol": "PTS", "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0}))]
    pub struct CreateAsset {
        program_id: Uuid,
        #[schema(min_length = 1, max_length = 255)]
        name: String,
        /// Letters and digits.
        #[schema(min_length = 1, max_length = 16, pattern = "^[A-Za-z0-9]+$")]
        symbol: String,
        inventory_mode: crate::assets::InventoryMode,
        issuance_policy: crate::assets::IssuancePolicy,
        #[schema(minimum = 0, maximum = 18)]
        scale: i64,
        /// Positive.
        max_transaction_amount: Option<PositiveAmount>,
    }

    /// Only `name`, `max_transaction_amount` and archiving can change; at least one is required.
    #[derive(utoipa::ToSchema)]
    pub struct UpdateAsset {
        #[schema(min_length = 1, max_length = 255)]
        name: Option<String>,
        /// Archiving cannot be undone.
        status: Option<super::ArchiveStatus>,
        /// Positive; null removes the limit.
        #[schema(nullable)]
        max_transaction_amount: Option<PositiveAmount>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct AssetQuery {
        program_id: Option<Uuid>,
        #[param(inline)]
        status: Option<crate::assets::AssetStatus>,
        /// Part of the name or symbol, case-insensitive.
        #[param(min_length = 1, max_length = 255)]
        search: Option<String>,
    }
}

#[utoipa::path(post, path = "/assets", tag = "assets", request_body = doc::CreateAsset,
    responses((status = 201, description = "The asset, linked to `program_id`.", body = Asset), Rejected, NotFound, Conflict))]
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
        inventory_mode: assets::InventoryMode::parse(
            f.req_enum("inventory_mode", assets::INVENTORY_MODES),
        )
        .unwrap_or(assets::InventoryMode::Simple),
        issuance_policy: assets::IssuancePolicy::parse(
            f.req_enum("issuance_policy", assets::ISSUANCE_POLICIES),
        )
        .unwrap_or(assets::IssuancePolicy::Unlimited),
        scale: i16::try_from(f.req_int("scale", 0, 18)).unwrap_or_default(),
        max_transaction_amount: f.opt_positive_decimal("max_transaction_amount"),
    };
    v.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(assets::create(&s.pool, &actor, new).await?),
    ))
}

#[utoipa::path(get, path = "/assets", tag = "assets", params(PageParams, doc::AssetQuery),
    responses((status = 200, body = Page<Asset>), Rejected))]
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
        status: q.opt_enum("status", assets::STATUSES),
        search: q.opt_str("search", 1, 255),
        cursor,
        limit,
    };
    v.finish()?;
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

#[utoipa::path(patch, path = "/assets/{id}", tag = "assets", params(PathId), request_body = doc::UpdateAsset,
    responses((status = 200, body = Asset), Rejected, NotFound, Conflict))]
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
        Some(_) => f.opt_enum("status", ARCHIVE).is_some(),
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
