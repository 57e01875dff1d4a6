//! Program wallets (E8–E12), participant balance operations (E40–E43), history and statement (E45, E48).

use super::AppState;
use super::error::{Conflict, Insufficient, NotFound, Rejected};
use super::extract::{Auth, JsonBody, PathId, PathIds, QueryParams};
use crate::balances::wallet::{WalletBalance, WalletMoved};
use crate::balances::{
    self, ADJUSTMENT_TYPES, Adjusted, Adjustment, OPERABLE_BUCKETS, Operated, OperationRequest,
};
use crate::error::Result;
use crate::ledger::lots::{LotStatus, LotView, Selector};
use crate::ledger::{self, ActivityFilter, ActivityRow, Bucket, Statement};
use crate::movement::Operation;
use crate::pagination::{Page, PageParams};
use crate::validation::{Fields, Validator};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(fund))
        .routes(routes!(burn))
        .routes(routes!(wallet_balance))
        .routes(routes!(wallet_history))
        .routes(routes!(wallet_statement))
        .routes(routes!(lots))
        .routes(routes!(adjust))
        .routes(routes!(hold))
        .routes(routes!(release))
        .routes(routes!(forfeit))
        .routes(routes!(void_hold))
        .routes(routes!(participant_history))
        .routes(routes!(participant_statement))
}

/// Request bodies and query strings as the document shows them; the handlers read them with `Validator`.
#[allow(dead_code)]
mod doc {
    use crate::balances::{AdjustmentType, OperableBucket};
    use crate::money::PositiveAmount;
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"amount": "10000", "description": "Q3 budget"}))]
    pub struct WalletMove {
        /// Positive, within the asset's scale.
        amount: PositiveAmount,
        #[schema(max_length = 500)]
        description: Option<String>,
    }

    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000",
        "asset_id": "550e8400-e29b-41d4-a716-446655440001", "type": "CREDIT", "amount": "100",
        "description": "Goodwill credit"}))]
    pub struct Adjust {
        program_id: Uuid,
        asset_id: Uuid,
        #[schema(rename = "type")]
        kind: AdjustmentType,
        /// Positive, within the asset's scale.
        amount: PositiveAmount,
        #[schema(min_length = 1, max_length = 500)]
        description: String,
        /// Default AVAILABLE.
        bucket: Option<OperableBucket>,
        /// DEBIT only: let the balance go below zero.
        allow_negative: Option<bool>,
    }

    /// Hold, release and forfeit. On LOT assets the lots can be chosen by reference, ids or earning window.
    #[derive(utoipa::ToSchema)]
    pub struct Operate {
        program_id: Uuid,
        asset_id: Uuid,
        #[schema(min_length = 1, max_length = 500)]
        description: String,
        /// Default: all that is selected.
        amount: Option<PositiveAmount>,
        /// Letters, digits and `._:@-`.
        #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:@-]+$")]
        reference_id: Option<String>,
        lot_ids: Option<Vec<Uuid>>,
        earned_from: Option<DateTime<Utc>>,
        earned_to: Option<DateTime<Utc>>,
        /// A repeat with the same key and body returns the first answer.
        #[schema(min_length = 1, max_length = 255)]
        idempotency_key: Option<String>,
        /// Forfeit only, and required there: the bucket to forfeit from.
        bucket: Option<OperableBucket>,
    }

    /// Cancels the whole provisional accrual of `reference_id`.
    #[derive(utoipa::ToSchema)]
    pub struct VoidHold {
        program_id: Uuid,
        asset_id: Uuid,
        #[schema(min_length = 1, max_length = 500)]
        description: String,
        #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9._:@-]+$")]
        reference_id: String,
        #[schema(min_length = 1, max_length = 255)]
        idempotency_key: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct AssetQuery {
        asset_id: Option<Uuid>,
    }

    /// The filters history and statements share (`activity_filter`).
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ActivityQuery {
        #[param(inline)]
        bucket: Option<crate::ledger::Bucket>,
        /// Posted at or after; requires `to`.
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        /// The originating event happened at or after; requires `event_to`.
        event_from: Option<DateTime<Utc>>,
        event_to: Option<DateTime<Utc>>,
    }

    /// A statement is of one asset.
    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct StatementAsset {
        asset_id: Uuid,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct LotQuery {
        asset_id: Uuid,
        program_id: Option<Uuid>,
        #[param(inline)]
        status: Option<crate::ledger::lots::LotStatus>,
        expires_before: Option<DateTime<Utc>>,
        expires_after: Option<DateTime<Utc>>,
        #[param(min_length = 1, max_length = 255)]
        reference_id: Option<String>,
    }
}

#[utoipa::path(post, path = "/programs/{id}/assets/{asset_id}/fund", tag = "programs", params(("id" = Uuid, Path, description = "Program id"), ("asset_id" = Uuid, Path)), request_body = doc::WalletMove,
    responses((status = 200, body = WalletMoved), Rejected, NotFound))]
async fn fund(
    s: State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody,
) -> Result<impl IntoResponse> {
    move_wallet(s, auth, ids, body, true).await
}

#[utoipa::path(post, path = "/programs/{id}/assets/{asset_id}/burn", tag = "programs", params(("id" = Uuid, Path, description = "Program id"), ("asset_id" = Uuid, Path)), request_body = doc::WalletMove,
    responses((status = 200, body = WalletMoved), Rejected, NotFound, Insufficient))]
async fn burn(
    s: State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody,
) -> Result<impl IntoResponse> {
    move_wallet(s, auth, ids, body, false).await
}

async fn move_wallet(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, asset_id): PathIds,
    JsonBody(body): JsonBody,
    fund: bool,
) -> Result<Json<WalletMoved>> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let amount = f.req_positive_decimal("amount");
    let description = f.opt_str("description", 0, 500);
    v.finish()?;
    let amount = amount.unwrap_or_default();
    Ok(Json(
        crate::balances::wallet::move_wallet(
            &s.pool,
            &actor,
            program_id,
            asset_id,
            amount,
            description,
            fund,
        )
        .await?,
    ))
}

#[utoipa::path(get, path = "/programs/{id}/balance", tag = "programs", params(PathId, PageParams, doc::AssetQuery),
    responses((status = 200, body = Page<WalletBalance>), Rejected, NotFound))]
async fn wallet_balance(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let asset_id = q.opt_uuid("asset_id");
    v.finish()?;
    Ok(Json(
        crate::balances::wallet::wallet_balances(&s.pool, &actor, id, asset_id, cursor, limit)
            .await?,
    ))
}

/// Filters shared by the history and statement endpoints.
fn activity_filter(q: &Fields<'_>) -> ActivityFilter {
    let (cursor, limit) = q.page();
    ActivityFilter {
        asset_id: q.opt_uuid("asset_id"),
        bucket: q.opt_enum("bucket", ledger::BUCKETS),
        created: q.window(),
        happened: q.pair("event_from", "event_to"),
        cursor,
        limit,
    }
}

fn history_filter(q: &Map<String, Value>) -> Result<ActivityFilter> {
    let v = Validator::new();
    let filter = activity_filter(&v.query(q));
    v.finish()?;
    Ok(filter)
}

/// `asset_id` (required) and the filters of a statement.
fn statement_filter(q: &Map<String, Value>) -> Result<(Uuid, ActivityFilter)> {
    let v = Validator::new();
    let fields = v.query(q);
    let asset_id = fields.req_uuid("asset_id");
    let filter = activity_filter(&fields);
    v.finish()?;
    Ok((asset_id, filter))
}

#[utoipa::path(get, path = "/programs/{id}/history", tag = "programs", params(PathId, PageParams, doc::AssetQuery, doc::ActivityQuery),
    responses((status = 200, body = Page<ActivityRow>), Rejected, NotFound))]
async fn wallet_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    Ok(Json(
        crate::balances::wallet::wallet_history(&s.pool, &actor, id, history_filter(&q)?).await?,
    ))
}

#[utoipa::path(get, path = "/programs/{id}/statement", tag = "programs", params(PathId, PageParams, doc::StatementAsset, doc::ActivityQuery),
    responses((status = 200, body = Statement), Rejected, NotFound))]
async fn wallet_statement(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let (asset_id, filter) = statement_filter(&q)?;
    Ok(Json(
        crate::balances::wallet::wallet_statement(&s.pool, &actor, id, asset_id, filter).await?,
    ))
}

#[utoipa::path(get, path = "/participants/{id}/activity/history", tag = "balances", params(PathId, PageParams, doc::AssetQuery, doc::ActivityQuery),
    responses((status = 200, body = Page<ActivityRow>), Rejected, NotFound))]
async fn participant_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    Ok(Json(
        crate::balances::history(&s.pool, &actor, id, history_filter(&q)?).await?,
    ))
}

#[utoipa::path(get, path = "/participants/{id}/statement", tag = "balances", params(PathId, PageParams, doc::StatementAsset, doc::ActivityQuery),
    responses((status = 200, body = Statement), Rejected, NotFound))]
async fn participant_statement(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let (asset_id, filter) = statement_filter(&q)?;
    Ok(Json(
        crate::balances::statement(&s.pool, &actor, id, asset_id, filter).await?,
    ))
}

#[utoipa::path(post, path = "/participants/{id}/balances/adjust", tag = "balances", params(PathId), request_body = doc::Adjust,
    responses((status = 200, body = Adjusted), Rejected, NotFound, Conflict, Insufficient))]
async fn adjust(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let kind = f.req_enum("type", ADJUSTMENT_TYPES);
    let amount = f.req_positive_decimal("amount");
    let allow_negative = f.opt_bool("allow_negative").unwrap_or(false);
    if allow_negative && kind == "CREDIT" {
        f.reject(
            "allow_negative",
            "false for CREDIT",
            "allow_negative applies to DEBIT adjustments only",
        );
    }
    let adjustment = Adjustment {
        program_id: f.req_uuid("program_id"),
        asset_id: f.req_uuid("asset_id"),
        debit: kind == "DEBIT",
        amount: amount.unwrap_or_default(),
        description: f.req_str("description", 1, 500),
        bucket: f
            .opt_enum("bucket", OPERABLE_BUCKETS)
            .and_then(Bucket::parse)
            .unwrap_or(Bucket::Available),
        allow_negative,
    };
    v.finish()?;
    Ok(Json(
        balances::adjust(&s.pool, &actor, id, adjustment).await?,
    ))
}

/// The common body of hold, release and forfeit (BalanceOperationRequest).
fn operation_request(f: &Fields<'_>) -> OperationRequest {
    let reference_id = f.opt_str("reference_id", 1, 255);
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._:@-".contains(c);
    if reference_id
        .as_deref()
        .is_some_and(|r| !r.chars().all(allowed))
    {
        f.reject(
            "reference_id",
            "letters, digits and ._:@-",
            "reference_id may contain letters, digits and ._:@- only",
        );
    }
    let lot_ids = f.opt_array("lot_ids").map(|ids| {
        let parsed: Vec<Option<Uuid>> = ids
            .iter()
            .map(|id| id.as_str().and_then(|s| Uuid::parse_str(s).ok()))
            .collect();
        if parsed.iter().any(Option::is_none) {
            f.reject(
                "lot_ids",
                "array of UUIDs",
                "lot_ids must hold lot ids (UUIDs)",
            );
        }
        parsed.into_iter().flatten().collect()
    });
    OperationRequest {
        program_id: f.req_uuid("program_id"),
        asset_id: f.req_uuid("asset_id"),
        description: f.req_str("description", 1, 500),
        amount: f.opt_positive_decimal("amount"),
        lots: Selector {
            reference_id,
            lot_ids,
            earned: f.pair("earned_from", "earned_to"),
            provisional_only: false,
        },
        idempotency_key: f.opt_str("idempotency_key", 1, 255),
    }
}

async fn operate(
    s: &AppState,
    actor: &crate::organizations::Actor,
    id: Uuid,
    body: &Value,
    op: impl FnOnce(&Fields<'_>) -> Operation,
) -> Result<Json<Operated>> {
    let v = Validator::new();
    let f = v.body(body)?;
    let request = operation_request(&f);
    let op = op(&f);
    v.finish()?;
    let (response, _) = balances::operate(&s.pool, actor, id, op, request).await?;
    Ok(Json(response))
}

#[utoipa::path(post, path = "/participants/{id}/balances/hold", tag = "balances", params(PathId), request_body = doc::Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn hold(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    operate(&s, &actor, id, &body, |_| Operation::Hold).await
}

#[utoipa::path(post, path = "/participants/{id}/balances/release", tag = "balances", params(PathId), request_body = doc::Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn release(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    operate(&s, &actor, id, &body, |_| Operation::Release).await
}

#[utoipa::path(post, path = "/participants/{id}/balances/forfeit", tag = "balances", params(PathId), request_body = doc::Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn forfeit(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    operate(&s, &actor, id, &body, |f| Operation::Forfeit {
        bucket: Bucket::parse(f.req_enum("bucket", OPERABLE_BUCKETS)).unwrap_or(Bucket::Available),
    })
    .await
}

#[utoipa::path(get, path = "/participants/{id}/balances/lots", tag = "balances", params(PathId, PageParams, doc::LotQuery),
    responses((status = 200, body = Page<LotView>), Rejected, NotFound))]
async fn lots(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let asset_id = q.req_uuid("asset_id");
    let filter = crate::ledger::lots::LotFilter {
        program_id: q.opt_uuid("program_id"),
        status: q
            .opt_enum("status", LotStatus::NAMES)
            .and_then(LotStatus::parse),
        expires: (q.opt_time("expires_before"), q.opt_time("expires_after")),
        reference_id: q.opt_str("reference_id", 1, 255),
        after: cursor.map(|c| c.id),
        limit,
    };
    v.finish()?;
    Ok(Json(
        crate::balances::lots(&s.pool, &actor, id, asset_id, filter).await?,
    ))
}

/// E44: the whole provisional accrual of a reference; amount and lot selectors do not apply.
#[utoipa::path(post, path = "/participants/{id}/balances/void-hold", tag = "balances", params(PathId), request_body = doc::VoidHold,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn void_hold(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    operate(&s, &actor, id, &body, |f| {
        for field in ["amount", "lot_ids", "earned_from", "earned_to"] {
            if f.contains(field) {
                f.reject(
                    field,
                    "absent",
                    format!(
                        "void-hold cancels the whole accrual of a reference; {field} does not apply"
                    ),
                );
            }
        }
        if f.raw("reference_id").is_none() {
            f.reject(
                "reference_id",
                "reference of a provisional accrual",
                "reference_id is required",
            );
        }
        Operation::VoidHold
    })
    .await
}
