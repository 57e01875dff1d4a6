//! Redemptions (E49–E54).

use super::AppState;
use super::error::{Conflict, Insufficient, NotFound, Rejected};
use super::extract::{Auth, PathId, Valid, ValidQuery};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::redemptions::{
    self, AmountRedemption, ItemRedemption, Redemption, RedemptionFilter, RedemptionReversal,
    ReversalRequest,
};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_redemptions, redeem_amount))
        .routes(routes!(redeem_item))
        .routes(routes!(get_redemption))
        .routes(routes!(reverse))
        .routes(routes!(list_reversals))
}

impl Request for AmountRedemption {
    fn read(f: &Fields<'_>) -> Self {
        AmountRedemption {
            program_id: f.req_uuid("program_id"),
            asset_id: f.req_uuid("asset_id"),
            amount: f.req_positive_decimal("amount").unwrap_or_default(),
            description: f.req_str("description", 1, 500),
            idempotency_key: f.opt_str("idempotency_key", 1, 255),
        }
    }
}

impl Request for ItemRedemption {
    fn read(f: &Fields<'_>) -> Self {
        ItemRedemption {
            program_id: f.req_uuid("program_id"),
            reward_id: f.req_uuid("reward_id"),
            quantity: f.opt_int("quantity", 1, i64::from(i32::MAX)),
            amount: f.opt_positive_decimal("amount"),
            description: f.opt_str("description", 1, 500),
            idempotency_key: f.opt_str("idempotency_key", 1, 255),
        }
    }
}

impl Request for ReversalRequest {
    fn read(f: &Fields<'_>) -> Self {
        let reversal = ReversalRequest {
            reason: f.req_str("reason", 1, 500),
            amount: f.opt_positive_decimal("amount"),
            quantity: f.opt_int("quantity", 1, i64::from(i32::MAX)),
            idempotency_key: f.opt_str("idempotency_key", 1, 255),
        };
        if reversal.amount.is_some() && reversal.quantity.is_some() {
            f.reject(
                "quantity",
                "absent when amount is given",
                "give amount or quantity, not both",
            );
        }
        reversal
    }
}

impl Request for RedemptionFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (from, to) = q.range("from", "to");
        RedemptionFilter {
            status: q.opt_word("status"),
            reward_catalog_item_id: q.opt_uuid("reward_catalog_item_id"),
            from,
            to,
            page: PageParams::read(q),
        }
    }
}

/// 201 for a new record, 200 for a replayed idempotency key.
fn created<T: serde::Serialize>((body, replayed): (T, bool)) -> impl IntoResponse {
    let status = match replayed {
        true => StatusCode::OK,
        false => StatusCode::CREATED,
    };
    (status, Json(body))
}

/// E49: debits the participant's AVAILABLE value to the program's redemption target.
#[utoipa::path(post, path = "/participants/{id}/redemptions", tag = "redemptions", params(PathId),
    request_body = AmountRedemption,
    responses((status = 201, body = Redemption),
        (status = 200, description = "A replayed idempotency key: the first answer.", body = Redemption),
        Rejected, NotFound, Conflict, Insufficient))]
async fn redeem_amount(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(participant): PathId,
    Valid(body): Valid<AmountRedemption>,
) -> Result<impl IntoResponse> {
    Ok(created(
        redemptions::redeem_amount(&s.pool, &actor, participant, body).await?,
    ))
}

/// E50: an ACTIVE reward inside its window, within its caps.
#[utoipa::path(post, path = "/participants/{id}/redemptions/items", tag = "redemptions", params(PathId),
    request_body = ItemRedemption,
    responses((status = 201, body = Redemption),
        (status = 200, description = "A replayed idempotency key: the first answer.", body = Redemption),
        Rejected, NotFound, Conflict, Insufficient))]
async fn redeem_item(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(participant): PathId,
    Valid(body): Valid<ItemRedemption>,
) -> Result<impl IntoResponse> {
    Ok(created(
        redemptions::redeem_item(&s.pool, &actor, participant, body).await?,
    ))
}

/// E51: newest first.
#[utoipa::path(get, path = "/participants/{id}/redemptions", tag = "redemptions",
    params(PathId, PageParams, RedemptionFilter),
    responses((status = 200, body = Page<Redemption>), Rejected, NotFound))]
async fn list_redemptions(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(participant): PathId,
    ValidQuery(filter): ValidQuery<RedemptionFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        redemptions::list(&s.pool, &actor, participant, filter).await?,
    ))
}

#[utoipa::path(get, path = "/redemptions/{id}", tag = "redemptions", params(PathId),
    responses((status = 200, body = Redemption), Rejected, NotFound))]
async fn get_redemption(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(redemptions::get(&s.pool, &actor, id).await?))
}

/// E53: in full, or in parts up to what was redeemed; LOT assets get the consumed lots back, the last first.
#[utoipa::path(post, path = "/redemptions/{id}/reverse", tag = "redemptions", params(PathId),
    request_body = ReversalRequest,
    responses((status = 201, body = RedemptionReversal),
        (status = 200, description = "A replayed idempotency key: the first answer.", body = RedemptionReversal),
        Rejected, NotFound, Conflict))]
async fn reverse(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<ReversalRequest>,
) -> Result<impl IntoResponse> {
    Ok(created(
        redemptions::reverse(&s.pool, &actor, id, body).await?,
    ))
}

/// E54: oldest first.
#[utoipa::path(get, path = "/redemptions/{id}/reversals", tag = "redemptions", params(PathId, PageParams),
    responses((status = 200, body = Page<RedemptionReversal>), Rejected, NotFound))]
async fn list_reversals(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(page): ValidQuery<PageParams>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        redemptions::reversals(&s.pool, &actor, id, page).await?,
    ))
}
