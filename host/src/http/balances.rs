//! Program wallets (E8–E12), participant balance operations (E40–E43), history and statement (E45, E48),
//! and transfers (E106).

use super::AppState;
use super::extract::{Auth, JsonBody, PathId, PathIds, QueryParams};
use crate::balances::{self, Adjustment, Operation, OperationRequest, Transfer};
use crate::error::Result;
use crate::ledger::lots::Selector;
use crate::ledger::{self, ActivityFilter};
use crate::participants::Party;
use crate::validation::{Fields, Validator};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Map, Value};
use uuid::Uuid;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/programs/{id}/assets/{asset_id}/fund", post(fund))
        .route("/programs/{id}/assets/{asset_id}/burn", post(burn))
        .route("/programs/{id}/balance", get(wallet_balance))
        .route("/programs/{id}/history", get(wallet_history))
        .route("/programs/{id}/statement", get(wallet_statement))
        .route("/participants/{id}/balances/lots", get(lots))
        .route("/participants/{id}/balances/adjust", post(adjust))
        .route("/participants/{id}/balances/hold", post(hold))
        .route("/participants/{id}/balances/release", post(release))
        .route("/participants/{id}/balances/forfeit", post(forfeit))
        .route("/participants/{id}/balances/void-hold", post(void_hold))
        .route(
            "/participants/{id}/activity/history",
            get(participant_history),
        )
        .route("/participants/{id}/statement", get(participant_statement))
        .route("/transfers", post(transfer))
}

async fn fund(
    s: State<AppState>,
    auth: Auth,
    ids: PathIds,
    body: JsonBody,
) -> Result<impl IntoResponse> {
    move_wallet(s, auth, ids, body, true).await
}

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
) -> Result<Json<Value>> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let amount = f.opt_positive_decimal("amount");
    if f.raw("amount").is_none() {
        f.reject("amount", "positive decimal string", "amount is required");
    }
    let description = f.opt_str("description", 0, 500);
    v.finish()?;
    let amount = amount.unwrap_or_default();
    Ok(Json(
        crate::programs::move_wallet(
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
        crate::programs::wallet_balances(&s.pool, &actor, id, asset_id, cursor, limit).await?,
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

async fn wallet_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    Ok(Json(
        crate::programs::wallet_history(&s.pool, &actor, id, history_filter(&q)?).await?,
    ))
}

async fn wallet_statement(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let (asset_id, filter) = statement_filter(&q)?;
    Ok(Json(
        crate::programs::wallet_statement(&s.pool, &actor, id, asset_id, filter).await?,
    ))
}

async fn participant_history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    Ok(Json(
        crate::participants::history(&s.pool, &actor, id, history_filter(&q)?).await?,
    ))
}

async fn participant_statement(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let (asset_id, filter) = statement_filter(&q)?;
    Ok(Json(
        crate::participants::statement(&s.pool, &actor, id, asset_id, filter).await?,
    ))
}

async fn adjust(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let kind = f.req_enum("type", &["CREDIT", "DEBIT"]);
    let amount = f.opt_positive_decimal("amount");
    if f.raw("amount").is_none() {
        f.reject("amount", "positive decimal string", "amount is required");
    }
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
            .opt_enum("bucket", &["AVAILABLE", "HELD"])
            .unwrap_or("AVAILABLE"),
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
) -> Result<Json<Value>> {
    let v = Validator::new();
    let f = v.body(body)?;
    let request = operation_request(&f);
    let op = op(&f);
    v.finish()?;
    let (response, _) = balances::operate(&s.pool, actor, id, op, request).await?;
    Ok(Json(response))
}

async fn hold(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    operate(&s, &actor, id, &body, |_| Operation::Hold).await
}

async fn release(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    operate(&s, &actor, id, &body, |_| Operation::Release).await
}

async fn forfeit(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    operate(&s, &actor, id, &body, |f| Operation::Forfeit {
        bucket: f.req_enum("bucket", &["AVAILABLE", "HELD"]),
    })
    .await
}

/// `external_id` or `participant_id` (with `prefix`); groups are not supported yet.
fn party(f: &Fields<'_>, prefix: &str) -> Option<Party> {
    let (external_key, id_key, group_key) = (
        format!("{prefix}external_id"),
        format!("{prefix}participant_id"),
        format!("{prefix}group_id"),
    );
    if f.contains(&group_key) {
        f.reject(&group_key, "absent", "groups are not supported yet");
    }
    match (f.opt_str(&external_key, 1, 255), f.opt_uuid(&id_key)) {
        (Some(external_id), None) => Some(Party::External(external_id)),
        (None, Some(id)) => Some(Party::Id(id)),
        _ => {
            f.reject(
                &id_key,
                &format!("exactly one of {external_key}, {id_key}"),
                format!("name the participant by exactly one of {external_key} and {id_key}"),
            );
            None
        }
    }
}

async fn transfer(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let source = party(&f, "source_");
    let mut recipients = Vec::new();
    match f.opt_array("recipients") {
        Some(items) if (1..=100).contains(&items.len()) => {
            for (i, item) in items.iter().enumerate() {
                let Some(map) = item.as_object() else {
                    f.reject(
                        "recipients",
                        "array of objects",
                        format!("recipients[{i}] must be an object"),
                    );
                    continue;
                };
                let r = f.nested(map, format!("recipients[{i}]"));
                let amount = r.opt_positive_decimal("amount");
                if r.raw("amount").is_none() {
                    r.reject("amount", "positive decimal string", "amount is required");
                }
                if let (Some(party), Some(amount)) = (party(&r, ""), amount) {
                    recipients.push((party, amount));
                }
            }
        }
        _ => f.reject(
            "recipients",
            "array of 1 to 100 recipients",
            "a transfer has 1 to 100 recipients",
        ),
    }
    let program_id = f.req_uuid("program_id");
    let asset_id = f.req_uuid("asset_id");
    let description = f.req_str("description", 1, 500);
    let idempotency_key = f.opt_str("idempotency_key", 1, 255);
    v.finish()?;
    let Some(source) = source else {
        return Err(crate::error::Error::Internal(
            "validated source missing".into(),
        ));
    };
    let transfer = Transfer {
        program_id,
        asset_id,
        description,
        source,
        recipients,
        idempotency_key,
    };
    let (response, replayed) = balances::transfer(&s.pool, &actor, transfer).await?;
    Ok((
        if replayed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(response),
    ))
}

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
        status: q.opt_enum(
            "status",
            &["AVAILABLE", "HELD", "DEFERRED", "CONSUMED", "EXPIRED"],
        ),
        expires: (q.opt_time("expires_before"), q.opt_time("expires_after")),
        reference_id: q.opt_str("reference_id", 1, 255),
        after: cursor.map(|c| c.id),
        limit,
    };
    v.finish()?;
    Ok(Json(
        crate::participants::lots(&s.pool, &actor, id, asset_id, filter).await?,
    ))
}

/// E44: the whole provisional accrual of a reference; amount and lot selectors do not apply.
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
