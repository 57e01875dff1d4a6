//! The error body of the spec: `{code, message, details, request_id}`, where `details` names the first bad
//! field and `details.fields` lists all of them. Internal errors are logged and never shown to the client.
//! Every request gets an id (`req_…`), returned in `X-Request-Id`, named in its error body and in its logs.

use crate::error::{Error, FieldError};
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
use utoipa::{IntoResponses, ToSchema};

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "code": "bad_request",
    "message": "asset_id: asset_id must be a UUID",
    "details": {"field": "asset_id", "reason": "invalid", "expected": "uuid", "received": "abc",
                "message": "asset_id must be a UUID",
                "fields": [{"field": "asset_id", "reason": "invalid", "expected": "uuid", "received": "abc",
                            "message": "asset_id must be a UUID"}]}
}))]
pub struct ErrorBody {
    /// `bad_request`, `invalid_scale`, `self_transfer`, `unauthorized`, `not_found`, `insufficient_balance`,
    /// `idempotency_conflict`, `conflict`, `method_not_allowed`, `payload_too_large`, `service_unavailable`,
    /// `internal_error`, …
    code: String,
    message: String,
    /// Present on 400s: the first invalid field, and all of them in `fields`.
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<ErrorDetails>,
    /// The request's id, as its `X-Request-Id` header gives it; absent only when the server could not read a
    /// request at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "req_0192f5a3c4b87c3e9a1d2b3c4d5e6f70")]
    request_id: Option<String>,
}

tokio::task_local! {
    /// The id of the request being answered.
    static REQUEST_ID: String;
}

/// Gives every request an id, `req_` and a UUID v7: it answers in the `X-Request-Id` header, in the error
/// body, and in the logs of the request.
pub async fn with_request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tracing::Instrument;
    let id = format!("req_{}", uuid::Uuid::now_v7().simple());
    let span = tracing::info_span!("request", request_id = %id);
    let answer = REQUEST_ID.scope(id.clone(), next.run(request).instrument(span));
    let mut response = answer.await;
    if let Ok(value) = header::HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the request being answered, inside [`with_request_id`].
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetails {
    #[serde(flatten)]
    first: FieldError,
    fields: Vec<FieldError>,
}

impl ErrorBody {
    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.into(),
            message: message.into(),
            details: None,
            request_id: current_request_id(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = self.answer();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let retry = [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)];
            return (status, retry, Json(body)).into_response();
        }
        (status, Json(body)).into_response()
    }
}

impl Error {
    /// The status and body this error is answered with, by the API and the console alike. Internal causes are
    /// logged here and never shown.
    pub fn answer(self) -> (StatusCode, ErrorBody) {
        match self {
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
                let details = fields.first().cloned().map(|first| ErrorDetails {
                    first,
                    fields: fields.clone(),
                });
                (
                    StatusCode::BAD_REQUEST,
                    ErrorBody {
                        details,
                        ..ErrorBody::new(code, message)
                    },
                )
            }
            Error::NotFound(what) => (
                StatusCode::NOT_FOUND,
                ErrorBody::new("not_found", format!("{what} not found")),
            ),
            Error::TooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new("payload_too_large", message),
            ),
            Error::Insufficient(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorBody::new("insufficient_balance", message),
            ),
            Error::Conflict { code, message } => {
                (StatusCode::CONFLICT, ErrorBody::new(code, message))
            }
            Error::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                ErrorBody::new(
                    "too_many_requests",
                    "rate limit exceeded: retry after the seconds Retry-After gives",
                ),
            ),
            Error::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorBody::new("unauthorized", "invalid or revoked API key"),
            ),
            Error::MissingKey => (
                StatusCode::UNAUTHORIZED,
                ErrorBody::new(
                    "unauthorized",
                    "missing API key: send Authorization: Bearer sk_... or X-API-Key: sk_...",
                ),
            ),
            Error::Database(err) if unavailable(&err) => {
                tracing::warn!(error = %err, "database unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorBody::new(
                        "service_unavailable",
                        "the database is unavailable; retry shortly",
                    ),
                )
            }
            Error::Database(err) => {
                tracing::error!(error = %err, "database error");
                internal()
            }
            Error::Internal(message) => {
                tracing::error!(error = %message, "internal error");
                internal()
            }
        }
    }
}

fn internal() -> (StatusCode, ErrorBody) {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        ErrorBody::new("internal_error", "internal server error"),
    )
}

/// Error answers as OpenAPI responses, each with the `ErrorBody` schema.
fn error_responses(statuses: &[(u16, &str)]) -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
    statuses
        .iter()
        .map(|(status, description)| (status.to_string(), error_response(description)))
        .collect()
}

/// A documented error answer: the error body, with `description`.
pub fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    let response = ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    RefOr::T(response)
}

/// What any authenticated operation may answer: a bad parameter, field or body, or a bad key.
pub struct Rejected;

/// What a client is told to wait before retrying while the database is unreachable.
const RETRY_AFTER_SECONDS: &str = "5";

/// Whether the database could not be reached, as opposed to refusing what was asked: the pool gave up
/// waiting or is closed, the connection broke, or the server is shutting down, starting up or full
/// (SQLSTATE class 08, 57P01-57P03, 53300). Such a request may succeed if retried.
fn unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

impl IntoResponses for Rejected {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(&[
            (
                400,
                "A path, query or body parameter is invalid; `details` names it.",
            ),
            (401, "The API key is missing, invalid or revoked."),
            (
                503,
                "The database could not be reached: retry after `Retry-After` seconds (an idempotency key makes \
                 a retried write safe).",
            ),
        ])
    }
}

/// An operation on a resource named in the path, which may not exist in the caller's organization.
pub struct NotFound;

impl IntoResponses for NotFound {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(&[(404, "A resource named in the request does not exist.")])
    }
}

/// A write that the resource's current state refuses.
pub struct Conflict;

impl IntoResponses for Conflict {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(&[(409, "The resource's state does not allow this.")])
    }
}

/// A debit larger than the available balance.
pub struct Insufficient;

impl IntoResponses for Insufficient {
    fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
        error_responses(&[(422, "The available balance is too small.")])
    }
}
