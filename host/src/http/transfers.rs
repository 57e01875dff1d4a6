//! Transfers (E106): one atomic entry from a source to 1–100 recipients.

use super::AppState;
use super::error::{Conflict, Insufficient, NotFound, Rejected};
use super::extract::{Auth, JsonBody};
use crate::balances::{self, Transfer, Transferred};
use crate::error::Result;
use crate::participants::Party;
use crate::validation::{Fields, Validator};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(transfer))
}

/// Request bodies as the document shows them; the handler reads them with `Validator`.
#[allow(dead_code)]
mod doc {
    use crate::money::PositiveAmount;
    use uuid::Uuid;

    /// One party, by `external_id` or `participant_id`.
    #[derive(utoipa::ToSchema)]
    pub struct Recipient {
        #[schema(min_length = 1, max_length = 255)]
        external_id: Option<String>,
        participant_id: Option<Uuid>,
        amount: PositiveAmount,
    }

    /// The source is named by `source_external_id` or `source_participant_id`.
    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000",
        "asset_id": "550e8400-e29b-41d4-a716-446655440001", "source_external_id": "user_123",
        "recipients": [{"external_id": "user_456", "amount": "25"}], "description": "Gift"}))]
    pub struct NewTransfer {
        program_id: Uuid,
        asset_id: Uuid,
        #[schema(min_length = 1, max_length = 500)]
        description: String,
        #[schema(min_length = 1, max_length = 255)]
        source_external_id: Option<String>,
        source_participant_id: Option<Uuid>,
        #[schema(min_items = 1, max_items = 100)]
        recipients: Vec<Recipient>,
        #[schema(min_length = 1, max_length = 255)]
        idempotency_key: Option<String>,
    }
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

#[utoipa::path(post, path = "/transfers", tag = "balances", request_body = doc::NewTransfer,
    responses((status = 201, body = Transferred),
        (status = 200, description = "A replayed idempotency key: the first answer.", body = Transferred),
        Rejected, NotFound, Conflict, Insufficient))]
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
            for (r, _) in f.objects("recipients", items) {
                let amount = r.req_positive_decimal("amount");
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
