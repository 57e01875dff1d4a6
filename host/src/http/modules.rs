//! Rule modules: WebAssembly components uploaded as `application/wasm`, then named by wasm rules' `module_id`.

use super::AppState;
use super::error::{NotFound, Rejected};
use super::extract::{Auth, PathId, RawBody};
use crate::error::Result;
use crate::modules::{self, Module};
use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// `component_bytes`: the largest component the operator accepts.
pub fn routes(component_bytes: usize) -> OpenApiRouter<AppState> {
    let (schemas, paths, upload) = routes!(upload);
    OpenApiRouter::new()
        .routes((
            schemas,
            paths,
            upload.layer(DefaultBodyLimit::max(component_bytes)),
        ))
        .routes(routes!(get_one))
}

/// 201 with the new module; 200 with the stored one when the same bytes were uploaded before.
#[utoipa::path(post, path = "/modules", tag = "modules",
    request_body(description = "A WebAssembly component exporting `scrip:rules/evaluator@0.4.0` or an earlier version; the content type is not checked.",
        content((Vec<u8> = "application/wasm"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 201, description = "Checked, compiled and stored.", body = Module),
        (status = 200, description = "The same bytes were uploaded before.", body = Module), Rejected))]
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

#[utoipa::path(get, path = "/modules/{id}", tag = "modules", operation_id = "get_module", params(PathId),
    responses((status = 200, body = Module), Rejected, NotFound))]
async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(modules::get(&s.pool, &actor, id).await?))
}
