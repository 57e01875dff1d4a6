//! The service layer's error. Repositories return `sqlx::Error`; services turn what a caller can act on into
//! the variants below, and `http::error` maps each variant to the spec's `{code, message, details}` body.

use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more request fields are missing or invalid; every offending field is listed.
    #[error("invalid request parameters")]
    Invalid(Vec<FieldError>),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("invalid or revoked API key")]
    Unauthorized,
    /// No API key was sent the ways the API accepts (`Authorization: Bearer` or `X-API-Key`).
    #[error("missing API key")]
    MissingKey,
    /// The request's body is larger than the route accepts (413 `payload_too_large`).
    #[error("{0}")]
    TooLarge(String),
    /// The organization's rate limit is spent (429 `too_many_requests`).
    #[error("rate limit exceeded; retry after the time Retry-After gives")]
    RateLimited,
    /// The balance cannot cover the operation (422 `insufficient_balance`).
    #[error("{0}")]
    Insufficient(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            code: "conflict",
            message: message.into(),
        }
    }

    pub fn invalid(error: FieldError) -> Self {
        Error::Invalid(vec![error])
    }

    /// The same error for fields read inside the object at `path`: each invalid field is named `path.field`.
    pub fn within(self, path: &str) -> Self {
        match self {
            Error::Invalid(fields) => Error::Invalid(
                fields
                    .into_iter()
                    .map(|f| FieldError {
                        field: format!("{path}.{}", f.field),
                        ..f
                    })
                    .collect(),
            ),
            other => other,
        }
    }
}

/// One invalid field, in the shape of the spec's `details` object.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct FieldError {
    #[schema(example = "asset_id")]
    pub field: String,
    /// `required`, `invalid`, `invalid_scale`, `out_of_range`, …
    #[schema(value_type = String, example = "invalid")]
    pub reason: &'static str,
    pub expected: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: "required",
            expected: "present".into(),
            received: None,
            message: "This field is required".into(),
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        expected: impl Into<String>,
        received: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.into(),
            reason: "invalid",
            expected: expected.into(),
            received,
            message: message.into(),
        }
    }

    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = reason;
        self
    }
}

/// Maps a unique or foreign-key violation on `constraint` to `to`; other errors pass through.
pub trait OnConstraint<T> {
    fn on_constraint(self, constraint: &str, to: impl FnOnce() -> Error) -> Result<T>;
}

impl<T> OnConstraint<T> for std::result::Result<T, sqlx::Error> {
    fn on_constraint(self, constraint: &str, to: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|err| match &err {
            sqlx::Error::Database(db) if db.constraint() == Some(constraint) => to(),
            _ => Error::Database(err),
        })
    }
}

impl<T> OnConstraint<T> for Result<T> {
    fn on_constraint(self, constraint: &str, to: impl FnOnce() -> Error) -> Result<T> {
        self.map_err(|err| match &err {
            Error::Database(sqlx::Error::Database(db)) if db.constraint() == Some(constraint) => {
                to()
            }
            _ => err,
        })
    }
}
