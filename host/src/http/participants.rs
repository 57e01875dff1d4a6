//! Participants (E17–E19) and balances (E38).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, JsonBody, PathId, QueryParams};
use crate::error::Result;
use crate::pagination::{Page, PageParams};
use crate::participants::{
    self, BalanceRow, Detail, Participant, ParticipantFilter, Profile, ProfilePatch, Upsert,
};
use crate::validation::{Fields, Validator};
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

/// Request bodies and query strings as the document shows them; the handlers read them with `Validator`.
#[allow(dead_code)]
mod doc {
    use crate::participants::ParticipantStatus;
    use std::collections::HashMap;
    use uuid::Uuid;

    /// Creates the participant, or updates the one with this `external_id`.
    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"external_id": "user_123", "email": "ada@example.com",
        "program_id": "550e8400-e29b-41d4-a716-446655440000", "tags": ["vip"]}))]
    pub struct UpsertParticipant {
        #[schema(min_length = 1, max_length = 255)]
        external_id: String,
        /// Enrolls the participant in this program.
        program_id: Option<Uuid>,
        status: Option<ParticipantStatus>,
        #[schema(min_length = 1, max_length = 255, format = "email")]
        email: Option<String>,
        #[schema(min_length = 1, max_length = 50)]
        phone: Option<String>,
        #[schema(min_length = 1, max_length = 255)]
        first_name: Option<String>,
        #[schema(min_length = 1, max_length = 255)]
        last_name: Option<String>,
        #[schema(min_length = 1, max_length = 255)]
        display_name: Option<String>,
        /// String values of at most 1000 characters.
        attributes: Option<HashMap<String, String>>,
        /// Replaces the tags; each at most 255 characters.
        tags: Option<Vec<String>>,
    }

    /// Only the fields given change; an empty string clears a profile field. Status has its own endpoint.
    #[derive(utoipa::ToSchema)]
    pub struct UpdateParticipant {
        #[schema(min_length = 1, max_length = 255)]
        external_id: Option<String>,
        #[schema(max_length = 255)]
        email: Option<String>,
        #[schema(max_length = 50)]
        phone: Option<String>,
        #[schema(max_length = 255)]
        first_name: Option<String>,
        #[schema(max_length = 255)]
        last_name: Option<String>,
        #[schema(max_length = 255)]
        display_name: Option<String>,
        attributes: Option<HashMap<String, String>>,
        tags: Option<Vec<String>>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct ParticipantQuery {
        #[param(min_length = 1, max_length = 255)]
        external_id: Option<String>,
        program_id: Option<Uuid>,
        #[param(inline)]
        status: Option<ParticipantStatus>,
        /// Part of the external id, email or a name, case-insensitive.
        #[param(min_length = 1, max_length = 255)]
        search: Option<String>,
        /// Created at or after; requires `to`.
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Created at or before; requires `from`.
        to: Option<chrono::DateTime<chrono::Utc>>,
        #[param(inline)]
        sort_by: Option<crate::participants::ParticipantSort>,
        #[param(inline)]
        sort_dir: Option<crate::validation::SortDir>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct AssetQuery {
        asset_id: Option<Uuid>,
    }
}

#[utoipa::path(post, path = "/participants", tag = "participants", request_body = doc::UpsertParticipant,
    responses((status = 201, description = "Created.", body = Participant),
        (status = 200, description = "The participant with this external_id, updated.", body = Participant),
        Rejected, NotFound))]
async fn upsert(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let email = f.opt_str("email", 1, 255);
    if let Some(problem) = email
        .as_deref()
        .and_then(|e| participants::check_email("email", e).err())
    {
        v.push(problem);
    }
    let input = Upsert {
        external_id: f.req_str("external_id", 1, 255),
        program_id: f.opt_uuid("program_id"),
        status: f
            .opt_enum("status", participants::STATUSES)
            .and_then(participants::ParticipantStatus::parse),
        profile: Profile {
            email,
            phone: f.opt_str("phone", 1, 50),
            first_name: f.opt_str("first_name", 1, 255),
            last_name: f.opt_str("last_name", 1, 255),
            display_name: f.opt_str("display_name", 1, 255),
        },
        attributes: f.opt_string_map("attributes", 1000).unwrap_or_default(),
        tags: f.opt_string_list("tags", 255),
    };
    v.finish()?;
    let (participant, created) = participants::upsert(&s.pool, &actor, input).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(participant)))
}

#[utoipa::path(get, path = "/participants", tag = "participants", operation_id = "list_participants",
    params(PageParams, doc::ParticipantQuery), responses((status = 200, body = Page<Participant>), Rejected))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let filter = ParticipantFilter {
        external_id: q.opt_str("external_id", 1, 255),
        program_id: q.opt_uuid("program_id"),
        status: q.opt_enum("status", participants::STATUSES),
        search: q.opt_str("search", 1, 255),
        created: q.window(),
        sort_by: q
            .opt_enum("sort_by", participants::SORT_KEYS)
            .unwrap_or("created_at"),
        ascending: q.ascending(),
        cursor,
        limit,
    };
    v.finish()?;
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
    params(PathId, PageParams, doc::AssetQuery), responses((status = 200, body = Page<BalanceRow>), Rejected, NotFound))]
async fn balances(
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
        participants::balances(&s.pool, &actor, id, asset_id, cursor, limit).await?,
    ))
}

/// E20's body.
fn parse_profile_patch(f: &Fields<'_>) -> ProfilePatch {
    let optional = |key: &str, max: usize| f.opt_str(key, 0, max);
    let patch = ProfilePatch {
        external_id: f.opt_str("external_id", 1, 255),
        profile: participants::Profile {
            email: optional("email", 255),
            phone: optional("phone", 50),
            first_name: optional("first_name", 255),
            last_name: optional("last_name", 255),
            display_name: optional("display_name", 255),
        },
        attributes: f.opt_string_map("attributes", 1000).unwrap_or_default(),
        tags: f.opt_string_list("tags", 255),
    };
    if let Some(email) = patch.profile.email.as_deref().filter(|e| !e.is_empty())
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

#[utoipa::path(patch, path = "/participants/{id}", tag = "participants", operation_id = "update_participant",
    params(PathId), request_body = doc::UpdateParticipant,
    responses((status = 200, body = Participant), Rejected, NotFound, Conflict))]
async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let patch = parse_profile_patch(&v.body(&body)?);
    v.finish()?;
    Ok(Json(
        participants::update(&s.pool, &actor, id, patch).await?,
    ))
}
