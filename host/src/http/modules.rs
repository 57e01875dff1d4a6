//! Rule modules: WebAssembly components uploaded as `application/wasm`, then named by wasm rules' `module_id`.

use super::AppState;
use super::extract::{Auth, PathId, RawBody};
use crate::error::Result;
use crate::modules;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

/// `component_bytes`: the largest component the operator accepts.
pub fn routes(component_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/modules",
            post(upload).layer(DefaultBodyLimit::max(component_bytes)),
        )
        .route("/modules/{id}", get(get_one))
}

/// 201 with the new module; 200 with the stored one when the same bytes were uploaded before.
async fn upload(
    State(s): State<AppState>,
    Auth(actor): Auth,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse> {
    let (module, created) =
        modules::upload(&s.pool, s.runtime.clone(), &actor, body.to_vec()).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(module)))
}

async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(modules::get(&s.pool, &actor, id).await?))
}
