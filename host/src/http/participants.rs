//! Participants (E17–E19) and balances (E38).

use super::AppState;
use super::extract::{Auth, JsonBody, PathId, QueryParams};
use crate::error::Result;
use crate::participants::{self, ParticipantFilter, Profile, ProfilePatch, Upsert};
use crate::validation::{Fields, Validator};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/participants", get(list).post(upsert))
        .route("/participants/{id}", get(get_one).patch(update))
        .route("/participants/{id}/balances", get(balances))
}

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
        status: f.opt_enum("status", participants::STATUSES),
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

async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(participants::get(&s.pool, &actor, id).await?))
}

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
