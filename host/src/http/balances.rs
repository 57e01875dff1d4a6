//! Program wallets (E8–E12), balance operations on participants (E40–E44) and groups (E64–E68), and their
//! lots, history and statement (E39, E45, E48, and the same for groups).

use super::AppState;
use super::error::{Conflict, Insufficient, NotFound, Rejected};
use super::extract::{AssetQuery, Auth, OneAsset, PathId, PathIds, Valid, ValidQuery};
use crate::balances::wallet::{self, WalletBalance, WalletMoved};
use crate::balances::{
    self, Adjusted, Adjustment, AdjustmentType, OPERABLE_BUCKETS, OperableBucket, Operated,
    OperationRequest,
};
use crate::error::Result;
use crate::groups::GroupBalance;
use crate::holders::Holder;
use crate::ledger::lots::{LotFilter, LotView, Selector};
use crate::ledger::{ActivityFilter, ActivityRow, Bucket, Statement};
use crate::money::PositiveAmount;
use crate::movement::Operation;
use crate::pagination::{Page, PageParams};
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
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
        .routes(routes!(group_balances))
        .routes(routes!(group_adjust))
        .routes(routes!(group_hold))
        .routes(routes!(group_release))
        .routes(routes!(group_forfeit))
        .routes(routes!(group_lots))
        .routes(routes!(group_history))
        .routes(routes!(group_statement))
}

/// Fund or burn: value into or out of a program wallet.
#[derive(utoipa::ToSchema)]
#[schema(as = WalletMove, example = json!({"amount": "10000", "description": "Q3 budget"}))]
pub struct WalletMove {
    /// Positive, within the asset's scale.
    #[schema(value_type = PositiveAmount)]
    amount: Decimal,
    #[schema(max_length = 500)]
    description: Option<String>,
}

impl Request for WalletMove {
    fn read(f: &Fields<'_>) -> Self {
        WalletMove {
            amount: f.req_positive_decimal("amount").unwrap_or_default(),
            description: f.opt_str("description", 0, 500),
        }
    }
}

impl Request for ActivityFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (from, to) = q.range("from", "to");
        let (event_from, event_to) = q.range("event_from", "event_to");
        ActivityFilter {
            bucket: q.opt_word("bucket"),
            from,
            to,
            event_from,
            event_to,
            page: PageParams::read(q),
        }
    }
}

impl Request for LotFilter {
    fn read(q: &Fields<'_>) -> Self {
        LotFilter {
            program_id: q.opt_uuid("program_id"),
            status: q.opt_word("status"),
            expires_before: q.opt_time("expires_before"),
            expires_after: q.opt_time("expires_after"),
            reference_id: q.opt_str("reference_id", 1, 255),
            page: PageParams::read(q),
        }
    }
}

fn operable_bucket(f: &Fields<'_>) -> Option<Bucket> {
    f.opt_enum("bucket", OPERABLE_BUCKETS)
        .and_then(Bucket::parse)
}

impl Request for Adjustment {
    fn read(f: &Fields<'_>) -> Self {
        let kind = f.req_word("type");
        let amount = f.req_positive_decimal("amount");
        let allow_negative = f.opt_bool("allow_negative").unwrap_or(false);
        if allow_negative && kind == AdjustmentType::Credit {
            f.reject(
                "allow_negative",
                "false for CREDIT",
                "allow_negative applies to DEBIT adjustments only",
            );
        }
        Adjustment {
            program_id: f.req_uuid("program_id"),
            asset_id: f.req_uuid("asset_id"),
            kind,
            amount: amount.unwrap_or_default(),
            description: f.req_str("description", 1, 500),
            bucket: operable_bucket(f).unwrap_or(Bucket::Available),
            allow_negative,
        }
    }
}

/// A `reference_id` of letters, digits and `._:@-`.
fn reference_id(f: &Fields<'_>) -> Option<String> {
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
    reference_id
}

/// Hold, release and forfeit. On LOT assets the lots can be chosen by reference, ids or earning window.
#[derive(utoipa::ToSchema)]
pub struct Operate {
    program_id: Uuid,
    asset_id: Uuid,
    #[schema(min_length = 1, max_length = 500)]
    description: String,
    /// Default: all that is selected.
    #[schema(value_type = Option<PositiveAmount>)]
    amount: Option<Decimal>,
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
    #[schema(value_type = Option<OperableBucket>)]
    bucket: Option<Bucket>,
}

impl Request for Operate {
    fn read(f: &Fields<'_>) -> Self {
        let reference_id = reference_id(f);
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
        let earned = f.pair("earned_from", "earned_to");
        Operate {
            program_id: f.req_uuid("program_id"),
            asset_id: f.req_uuid("asset_id"),
            description: f.req_str("description", 1, 500),
            amount: f.opt_positive_decimal("amount"),
            reference_id,
            lot_ids,
            earned_from: earned.map(|(from, _)| from),
            earned_to: earned.map(|(_, to)| to),
            idempotency_key: f.opt_str("idempotency_key", 1, 255),
            bucket: operable_bucket(f),
        }
    }
}

impl From<Operate> for OperationRequest {
    fn from(o: Operate) -> Self {
        OperationRequest {
            program_id: o.program_id,
            asset_id: o.asset_id,
            description: o.description,
            amount: o.amount,
            lots: Selector {
                reference_id: o.reference_id,
                lot_ids: o.lot_ids,
                earned: o.earned_from.zip(o.earned_to),
                provisional_only: false,
            },
            idempotency_key: o.idempotency_key,
        }
    }
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

impl Request for VoidHold {
    fn read(f: &Fields<'_>) -> Self {
        let reference = reference_id(f);
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
        VoidHold {
            program_id: f.req_uuid("program_id"),
            asset_id: f.req_uuid("asset_id"),
            description: f.req_str("description", 1, 500),
            reference_id: reference.unwrap_or_default(),
            idempotency_key: f.opt_str("idempotency_key", 1, 255),
        }
    }
}

impl From<VoidHold> for OperationRequest {
    fn from(v: VoidHold) -> Self {
        OperationRequest {
            program_id: v.program_id,
            asset_id: v.asset_id,
            description: v.description,
            amount: None,
            lots: Selector {
                reference_id: Some(v.reference_id),
                ..Selector::default()
            },
            idempotency_key: v.idempotency_key,
        }
    }
}

#[utoipa::path(post, path = "/programs/{id}/assets/{asset_id}/fund", tag = "programs", params(("id" = Uuid, Path, description = "Program id"), ("asset_id" = Uuid, Path)), request_body = WalletMove,
    responses((status = 200, body = WalletMoved), Rejected, NotFound))]
async fn fund(
    s: State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: Valid<WalletMove>,
) -> Result<Json<WalletMoved>> {
    move_wallet(s, auth, ids, body, true).await
}

#[utoipa::path(post, path = "/programs/{id}/assets/{asset_id}/burn", tag = "programs", params(("id" = Uuid, Path, description = "Program id"), ("asset_id" = Uuid, Path)), request_body = WalletMove,
    responses((status = 200, body = WalletMoved), Rejected, NotFound, Insufficient))]
async fn burn(
    s: State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: Valid<WalletMove>,
) -> Result<Json<WalletMoved>> {
    move_wallet(s, auth, ids, body, false).await
}

/// Fund (E8) or burn (E9).
async fn move_wallet(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathIds(program_id, asset_id): PathIds,
    Valid(body): Valid<WalletMove>,
    fund: bool,
) -> Result<Json<WalletMoved>> {
    let moved = wallet::move_wallet(
        &s.pool,
        &actor,
        program_id,
        asset_id,
        body.amount,
        body.description,
        fund,
    );
    Ok(Json(moved.await?))
}

#[utoipa::path(get, path = "/programs/{id}/balance", tag = "programs", params(PathId, PageParams, AssetQuery),
    responses((status = 200, body = Page<WalletBalance>), Rejected, NotFound))]
async fn wallet_balance(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((page, q)): ValidQuery<(PageParams, AssetQuery)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        wallet::wallet_balances(&s.pool, &actor, id, q.asset_id, page.cursor, page.limit).await?,
    ))
}

#[utoipa::path(get, path = "/programs/{id}/history", tag = "programs", params(PathId, PageParams, AssetQuery, ActivityFilter),
    responses((status = 200, body = Page<ActivityRow>), Rejected, NotFound))]
async fn wallet_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, filter)): ValidQuery<(AssetQuery, ActivityFilter)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        wallet::wallet_history(&s.pool, &actor, id, q.asset_id, filter).await?,
    ))
}

#[utoipa::path(get, path = "/programs/{id}/statement", tag = "programs", params(PathId, PageParams, OneAsset, ActivityFilter),
    responses((status = 200, body = Statement), Rejected, NotFound))]
async fn wallet_statement(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, filter)): ValidQuery<(OneAsset, ActivityFilter)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        wallet::wallet_statement(&s.pool, &actor, id, q.asset_id, filter).await?,
    ))
}

#[utoipa::path(get, path = "/participants/{id}/activity/history", tag = "balances", params(PathId, PageParams, AssetQuery, ActivityFilter),
    responses((status = 200, body = Page<ActivityRow>), Rejected, NotFound))]
async fn participant_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, filter)): ValidQuery<(AssetQuery, ActivityFilter)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::history(&s.pool, &actor, Holder::Participant(id), q.asset_id, filter).await?,
    ))
}

#[utoipa::path(get, path = "/participants/{id}/statement", tag = "balances", params(PathId, PageParams, OneAsset, ActivityFilter),
    responses((status = 200, body = Statement), Rejected, NotFound))]
async fn participant_statement(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, filter)): ValidQuery<(OneAsset, ActivityFilter)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::statement(&s.pool, &actor, Holder::Participant(id), q.asset_id, filter).await?,
    ))
}

#[utoipa::path(post, path = "/participants/{id}/balances/adjust", tag = "balances", params(PathId), request_body = Adjustment,
    responses((status = 200, body = Adjusted), Rejected, NotFound, Conflict, Insufficient))]
async fn adjust(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(adjustment): Valid<Adjustment>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::adjust(&s.pool, &actor, Holder::Participant(id), adjustment).await?,
    ))
}

async fn operate(
    s: &AppState,
    actor: &crate::organizations::Actor,
    holder: Holder,
    op: Operation,
    request: OperationRequest,
) -> Result<Json<Operated>> {
    let (response, _) = balances::operate(&s.pool, actor, holder, op, request).await?;
    Ok(Json(response))
}

#[utoipa::path(post, path = "/participants/{id}/balances/hold", tag = "balances", params(PathId), request_body = Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn hold(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<Operate>,
) -> Result<impl IntoResponse> {
    operate(
        &s,
        &actor,
        Holder::Participant(id),
        Operation::Hold,
        body.into(),
    )
    .await
}

#[utoipa::path(post, path = "/participants/{id}/balances/release", tag = "balances", params(PathId), request_body = Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn release(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<Operate>,
) -> Result<impl IntoResponse> {
    operate(
        &s,
        &actor,
        Holder::Participant(id),
        Operation::Release,
        body.into(),
    )
    .await
}

/// The bucket is required for forfeit; the document shows it on the shared body.
struct Forfeit(Operate);

impl Request for Forfeit {
    fn read(f: &Fields<'_>) -> Self {
        let operate = Operate::read(f);
        if f.raw("bucket").is_none() {
            f.req_enum("bucket", OPERABLE_BUCKETS);
        }
        Forfeit(operate)
    }
}

#[utoipa::path(post, path = "/participants/{id}/balances/forfeit", tag = "balances", params(PathId), request_body = Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn forfeit(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(Forfeit(body)): Valid<Forfeit>,
) -> Result<impl IntoResponse> {
    let bucket = body.bucket.unwrap_or(Bucket::Available);
    operate(
        &s,
        &actor,
        Holder::Participant(id),
        Operation::Forfeit { bucket },
        body.into(),
    )
    .await
}

#[utoipa::path(get, path = "/participants/{id}/balances/lots", tag = "balances", params(PathId, PageParams, OneAsset, LotFilter),
    responses((status = 200, body = Page<LotView>), Rejected, NotFound))]
async fn lots(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, filter)): ValidQuery<(OneAsset, LotFilter)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::lots(&s.pool, &actor, Holder::Participant(id), q.asset_id, filter).await?,
    ))
}

/// E44: the whole provisional accrual of a reference; amount and lot selectors do not apply.
#[utoipa::path(post, path = "/participants/{id}/balances/void-hold", tag = "balances", params(PathId), request_body = VoidHold,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn void_hold(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<VoidHold>,
) -> Result<impl IntoResponse> {
    operate(
        &s,
        &actor,
        Holder::Participant(id),
        Operation::VoidHold,
        body.into(),
    )
    .await
}

/// The assets linked to one program only.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ProgramQuery {
    program_id: Option<Uuid>,
}

impl Request for ProgramQuery {
    fn read(q: &Fields<'_>) -> Self {
        ProgramQuery {
            program_id: q.opt_uuid("program_id"),
        }
    }
}

/// E64: the group's balance of each asset: the total, and per bucket.
#[utoipa::path(get, path = "/groups/{id}/balances", tag = "groups", params(PathId, PageParams, ProgramQuery),
    responses((status = 200, body = Page<GroupBalance>), Rejected, NotFound))]
async fn group_balances(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, page)): ValidQuery<(ProgramQuery, PageParams)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::group_balances(&s.pool, &actor, id, q.program_id, page).await?,
    ))
}

#[utoipa::path(post, path = "/groups/{id}/balances/adjust", tag = "groups", params(PathId), request_body = Adjustment,
    responses((status = 200, body = Adjusted), Rejected, NotFound, Conflict, Insufficient))]
async fn group_adjust(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(adjustment): Valid<Adjustment>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::adjust(&s.pool, &actor, Holder::Group(id), adjustment).await?,
    ))
}

#[utoipa::path(post, path = "/groups/{id}/balances/hold", tag = "groups", params(PathId), request_body = Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn group_hold(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<Operate>,
) -> Result<impl IntoResponse> {
    operate(&s, &actor, Holder::Group(id), Operation::Hold, body.into()).await
}

#[utoipa::path(post, path = "/groups/{id}/balances/release", tag = "groups", params(PathId), request_body = Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn group_release(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<Operate>,
) -> Result<impl IntoResponse> {
    operate(
        &s,
        &actor,
        Holder::Group(id),
        Operation::Release,
        body.into(),
    )
    .await
}

#[utoipa::path(post, path = "/groups/{id}/balances/forfeit", tag = "groups", params(PathId), request_body = Operate,
    responses((status = 200, description = "Done; a replayed idempotency key returns the first answer.", body = Operated), Rejected, NotFound, Conflict, Insufficient))]
async fn group_forfeit(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(Forfeit(body)): Valid<Forfeit>,
) -> Result<impl IntoResponse> {
    let bucket = body.bucket.unwrap_or(Bucket::Available);
    operate(
        &s,
        &actor,
        Holder::Group(id),
        Operation::Forfeit { bucket },
        body.into(),
    )
    .await
}

#[utoipa::path(get, path = "/groups/{id}/balances/lots", tag = "groups", params(PathId, PageParams, OneAsset, LotFilter),
    responses((status = 200, body = Page<LotView>), Rejected, NotFound))]
async fn group_lots(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, filter)): ValidQuery<(OneAsset, LotFilter)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::lots(&s.pool, &actor, Holder::Group(id), q.asset_id, filter).await?,
    ))
}

#[utoipa::path(get, path = "/groups/{id}/activity/history", tag = "groups", params(PathId, PageParams, AssetQuery, ActivityFilter),
    responses((status = 200, body = Page<ActivityRow>), Rejected, NotFound))]
async fn group_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, filter)): ValidQuery<(AssetQuery, ActivityFilter)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::history(&s.pool, &actor, Holder::Group(id), q.asset_id, filter).await?,
    ))
}

#[utoipa::path(get, path = "/groups/{id}/statement", tag = "groups", params(PathId, PageParams, OneAsset, ActivityFilter),
    responses((status = 200, body = Statement), Rejected, NotFound))]
async fn group_statement(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((q, filter)): ValidQuery<(OneAsset, ActivityFilter)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        balances::statement(&s.pool, &actor, Holder::Group(id), q.asset_id, filter).await?,
    ))
}
