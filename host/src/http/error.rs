//! The error body of the spec: `{code, message, details}`, where `details` names the first bad field and
//! `details.fields` lists all of them. Internal errors are logged and never shown to the client.

use crate::error::Error;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Error::Invalid(fields) => {
                // Some reasons are codes of their own in the spec; otherwise it is a plain bad request.
                let code = fields
                    .iter()
                    .map(|f| f.reason)
                    .find(|reason| matches!(*reason, "invalid_scale" | "self_transfer"))
                    .unwrap_or("bad_request");
                let message = match fields.as_slice() {
                    [only] => format!("{}: {}", only.field, only.message),
                    _ => "Invalid request parameters".to_string(),
                };
                let first = fields.first().cloned();
                let mut details = serde_json::to_value(first).unwrap_or_default();
                if let Some(object) = details.as_object_mut() {
                    object.insert("fields".into(), json!(fields));
                }
                (
                    StatusCode::BAD_REQUEST,
                    json!({"code": code, "message": message, "details": details}),
                )
            }
            Error::NotFound(what) => (
                StatusCode::NOT_FOUND,
                json!({"code": "not_found", "message": format!("{what} not found")}),
            ),
            Error::Insufficient(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"code": "insufficient_balance", "message": message}),
            ),
            Error::Conflict { code, message } => (
                StatusCode::CONFLICT,
                json!({"code": code, "message": message}),
            ),
            Error::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"code": "unauthorized", "message": "invalid or revoked API key"}),
            ),
            Error::Database(err) => {
                tracing::error!(error = %err, "database error");
                internal()
            }
            Error::Internal(message) => {
                tracing::error!(error = %message, "internal error");
                internal()
            }
        };
        (status, Json(body)).into_response()
    }
}

fn internal() -> (StatusCode, serde_json::Value) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"code": "internal_error", "message": "internal server error"}),
    )
}
