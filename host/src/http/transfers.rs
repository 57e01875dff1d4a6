//! Transfers (E106): one atomic entry from a source to 1–100 recipients.

use super::AppState;
use super::error::{Conflict, Insufficient, NotFound, Rejected};
use super::extract::{Auth, Valid};
use crate::balances::{self, Transfer, Transferred};
use crate::error::{Error, Result};
use crate::money::PositiveAmount;
use crate::participants::Party;
use crate::validation::{Fields, Request};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use rust_decimal::Decimal;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(transfer))
}

/// One party, by `external_id` or `participant_id`.
#[derive(utoipa::ToSchema)]
struct Recipient {
    #[schema(min_length = 1, max_length = 255)]
    external_id: Option<String>,
    participant_id: Option<Uuid>,
    #[schema(value_type = PositiveAmount)]
    amount: Decimal,
}

/// The source is named by `source_external_id` or `source_participant_id`.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000",
    "asset_id": "550e8400-e29b-41d4-a716-446655440001", "source_external_id": "user_123",
    "recipients": [{"external_id": "user_456", "amount": "25"}], "description": "Gift"}))]
struct NewTransfer {
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

/// `external_id` or `participant_id` (with `prefix`), exactly one; groups are not supported yet.
fn party(f: &Fields<'_>, prefix: &str) -> (Option<String>, Option<Uuid>) {
    let (external_key, id_key, group_key) = (
        format!("{prefix}external_id"),
        format!("{prefix}participant_id"),
        format!("{prefix}group_id"),
    );
    if f.contains(&group_key) {
        f.reject(&group_key, "absent", "groups are not supported yet");
    }
    let (external_id, id) = (f.opt_str(&external_key, 1, 255), f.opt_uuid(&id_key));
    if external_id.is_some() == id.is_some() {
        f.reject(
            &id_key,
            &format!("exactly one of {external_key}, {id_key}"),
            format!("name the participant by exactly one of {external_key} and {id_key}"),
        );
    }
    (external_id, id)
}

impl Request for NewTransfer {
    fn read(f: &Fields<'_>) -> Self {
        let (source_external_id, source_participant_id) = party(f, "source_");
        let mut recipients = Vec::new();
        match f.opt_array("recipients") {
            Some(items) if (1..=100).contains(&items.len()) => {
                for (r, _) in f.objects("recipients", items) {
                    let amount = r.req_positive_decimal("amount");
                    let (external_id, participant_id) = party(&r, "");
                    recipients.push(Recipient {
                        external_id,
                        participant_id,
                        amount: amount.unwrap_or_default(),
                    });
                }
            }
            _ => f.reject(
                "recipients",
                "array of 1 to 100 recipients",
                "a transfer has 1 to 100 recipients",
            ),
        }
        NewTransfer {
            program_id: f.req_uuid("program_id"),
            asset_id: f.req_uuid("asset_id"),
            description: f.req_str("description", 1, 500),
            source_external_id,
            source_participant_id,
            recipients,
            idempotency_key: f.opt_str("idempotency_key", 1, 255),
        }
    }
}

impl NewTransfer {
    /// The transfer, once `read` found nothing wrong: every party is then named exactly once.
    fn into_transfer(self) -> Result<Transfer> {
        let unnamed = || Error::Internal("validated transfer has an unnamed party".into());
        let recipients = self
            .recipients
            .into_iter()
            .map(|r| {
                Ok((
                    Party::named(r.external_id, r.participant_id).ok_or_else(unnamed)?,
                    r.amount,
                ))
            })
            .collect::<Result<_>>()?;
        Ok(Transfer {
            program_id: self.program_id,
            asset_id: self.asset_id,
            description: self.description,
            source: Party::named(self.source_external_id, self.source_participant_id)
                .ok_or_else(unnamed)?,
            recipients,
            idempotency_key: self.idempotency_key,
        })
    }
}

#[utoipa::path(post, path = "/transfers", tag = "balances", request_body = NewTransfer,
    responses((status = 201, body = Transferred),
        (status = 200, description = "A replayed idempotency key: the first answer.", body = Transferred),
        Rejected, NotFound, Conflict, Insufficient))]
async fn transfer(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Valid(body): Valid<NewTransfer>,
) -> Result<impl IntoResponse> {
    let (response, replayed) = balances::transfer(&s.pool, &actor, body.into_transfer()?).await?;
    Ok((
        if replayed {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        },
        Json(response),
    ))
}
