//! Participants (E17–E19) and balances (E38).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{AssetQuery, Auth, PathId, Valid, ValidQuery};
use crate::error::Result;
use crate::ledger::BalanceRow;
use crate::pagination::{Page, PageParams};
use crate::participants::{
    self, Detail, Participant, ParticipantFilter, ParticipantSort, ProfilePatch, Upsert,
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
        .routes(routes!(list, upsert))
        .routes(routes!(get_one, update))
        .routes(routes!(balances))
}

impl Request for Upsert {
    fn read(f: &Fields<'_>) -> Self {
        let email = f.opt_str("email", 1, 255);
        if let Some(problem) = email
            .as_deref()
            .and_then(|e| participants::check_email("email", e).err())
        {
            f.reject("email", &problem.expected, problem.message);
        }
        Upsert {
            external_id: f.req_str("external_id", 1, 255),
            program_id: f.opt_uuid("program_id"),
            status: f.opt_word("status"),
            email,
            phone: f.opt_str("phone", 1, 50),
            first_name: f.opt_str("first_name", 1, 255),
            last_name: f.opt_str("last_name", 1, 255),
            display_name: f.opt_str("display_name", 1, 255),
            attributes: f.opt_string_map("attributes", 1000).unwrap_or_default(),
            tags: f.opt_string_list("tags", 255),
        }
    }
}

impl Request for ParticipantFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (from, to) = q.range("from", "to");
        ParticipantFilter {
            external_id: q.opt_str("external_id", 1, 255),
            program_id: q.opt_uuid("program_id"),
            status: q.opt_word("status"),
            search: q.opt_str("search", 1, 255),
            from,
            to,
            sort_by: q.opt_word("sort_by").unwrap_or(ParticipantSort::CreatedAt),
            ascending: q.ascending(),
            page: PageParams::read(q),
        }
    }
}

/// E20's body.
impl Request for ProfilePatch {
    fn read(f: &Fields<'_>) -> Self {
        let optional = |key: &str, max: usize| f.opt_str(key, 0, max);
        let patch = ProfilePatch {
            external_id: f.opt_str("external_id", 1, 255),
            email: optional("email", 255),
            phone: optional("phone", 50),
            first_name: optional("first_name", 255),
            last_name: optional("last_name", 255),
            display_name: optional("display_name", 255),
            attributes: f.opt_string_map("attributes", 1000).unwrap_or_default(),
            tags: f.opt_string_list("tags", 255),
        };
        if let Some(email) = patch.email.as_deref().filter(|e| !e.is_empty())
            && let Err(problem) = participants::check_email("email", email)
        {
            f.reject("email", &problem.expected, problem.message);
        }
        if f.contains("status") {
            f.reject(
                "status",
                "absent",
                "change status with PATCH /v1/participants/{id}/status",
            );
        }
        f.require_any();
        patch
    }
}

#[utoipa::path(post, path = "/participants", tag = "participants", request_body = Upsert,
    responses((status = 201, description = "Created.", body = Participant),
        (status = 200, description = "The participant with this external_id, updated.", body = Participant),
        Rejected, NotFound))]
async fn upsert(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Valid(input): Valid<Upsert>,
) -> Result<impl IntoResponse> {
    let (participant, created) = participants::upsert(&s.pool, &actor, input).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(participant)))
}

#[utoipa::path(get, path = "/participants", tag = "participants", operation_id = "list_participants",
    params(PageParams, ParticipantFilter), responses((status = 200, body = Page<Participant>), Rejected))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<ParticipantFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(participants::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/participants/{id}", tag = "participants", operation_id = "get_participant", params(PathId),
    responses((status = 200, description = "Profile, state, balances and programs.", body = Detail), Rejected, NotFound))]
async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(participants::get(&s.pool, &actor, id).await?))
}

#[utoipa::path(get, path = "/participants/{id}/balances", tag = "balances", operation_id = "participant_balances",
    params(PathId, PageParams, AssetQuery), responses((status = 200, body = Page<BalanceRow>), Rejected, NotFound))]
async fn balances(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery((page, q)): ValidQuery<(PageParams, AssetQuery)>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        participants::balances(&s.pool, &actor, id, q.asset_id, page).await?,
    ))
}

#[utoipa::path(patch, path = "/participants/{id}", tag = "participants", operation_id = "update_participant",
    params(PathId), request_body = ProfilePatch,
    responses((status = 200, body = Participant), Rejected, NotFound, Conflict))]
async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(patch): Valid<ProfilePatch>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        participants::update(&s.pool, &actor, id, patch).await?,
    ))
}
