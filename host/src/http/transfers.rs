//! Transfers (E106): one atomic entry from a source to 1–100 recipients, participants or groups.

use super::AppState;
use super::error::{Conflict, Insufficient, NotFound, Rejected};
use super::extract::{Auth, Valid};
use crate::balances::{self, Named, Transfer, Transferred};
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

/// One recipient: a participant by `external_id` or `participant_id`, or a group by `group_id`.
#[derive(utoipa::ToSchema)]
struct Recipient {
    #[schema(min_length = 1, max_length = 255)]
    external_id: Option<String>,
    participant_id: Option<Uuid>,
    group_id: Option<Uuid>,
    #[schema(value_type = PositiveAmount)]
    amount: Decimal,
}

/// The source is named by exactly one of `source_external_id`, `source_participant_id`, `source_group_id`.
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
    source_group_id: Option<Uuid>,
    #[schema(min_items = 1, max_items = 100)]
    recipients: Vec<Recipient>,
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
}

/// The party named by exactly one of an external id, a participant id and a group id.
fn named(external_id: Option<String>, id: Option<Uuid>, group_id: Option<Uuid>) -> Option<Named> {
    match (external_id, id, group_id) {
        (Some(external_id), None, None) => Some(Named::Participant(Party::External(external_id))),
        (None, Some(id), None) => Some(Named::Participant(Party::Id(id))),
        (None, None, Some(id)) => Some(Named::Group(id)),
        _ => None,
    }
}

/// `external_id`, `participant_id` and `group_id` (each with `prefix`), of which exactly one is given.
fn party(f: &Fields<'_>, prefix: &str) -> (Option<String>, Option<Uuid>, Option<Uuid>) {
    let (external_key, id_key, group_key) = (
        format!("{prefix}external_id"),
        format!("{prefix}participant_id"),
        format!("{prefix}group_id"),
    );
    let (external_id, id, group_id) = (
        f.opt_str(&external_key, 1, 255),
        f.opt_uuid(&id_key),
        f.opt_uuid(&group_key),
    );
    if named(external_id.clone(), id, group_id).is_none() {
        f.reject(
            &id_key,
            &format!("exactly one of {external_key}, {id_key}, {group_key}"),
            format!("name the party by exactly one of {external_key}, {id_key} and {group_key}"),
        );
    }
    (external_id, id, group_id)
}

impl Request for NewTransfer {
    fn read(f: &Fields<'_>) -> Self {
        let (source_external_id, source_participant_id, source_group_id) = party(f, "source_");
        let mut recipients = Vec::new();
        match f.opt_array("recipients") {
            Some(items) if (1..=100).contains(&items.len()) => {
                for (r, _) in f.objects("recipients", items) {
                    let amount = r.req_positive_decimal("amount");
                    let (external_id, participant_id, group_id) = party(&r, "");
                    recipients.push(Recipient {
                        external_id,
                        participant_id,
                        group_id,
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
            source_group_id,
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
                let party = named(r.external_id, r.participant_id, r.group_id);
                Ok((party.ok_or_else(unnamed)?, r.amount))
            })
            .collect::<Result<_>>()?;
        Ok(Transfer {
            program_id: self.program_id,
            asset_id: self.asset_id,
            description: self.description,
            source: named(
                self.source_external_id,
                self.source_participant_id,
                self.source_group_id,
            )
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
