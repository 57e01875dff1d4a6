//! Extractors whose failures are spec-shaped errors naming the offending field.

use crate::error::{Error, FieldError};
use crate::organizations::Actor;
use crate::validation::{self, Request as ReadRequest, Validator};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::{Map, Value};
use std::collections::HashMap;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{KnownFormat, ObjectBuilder, Required, SchemaFormat, Type};
use uuid::Uuid;

/// The authenticated caller, from `Authorization: Bearer sk_…` or `X-API-Key: sk_…`, as the gate resolved it.
pub struct Auth(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        parts
            .extensions
            .get::<Actor>()
            .copied()
            .map(Auth)
            .ok_or(Error::MissingKey)
    }
}

/// The body as bytes. One larger than the route accepts is a 413; one that cannot be read otherwise (it
/// broke off, or came too slowly) is a 400 naming `body`.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    Error::TooLarge(format!("the body is too large: {e}"))
                }
                _ => Error::invalid(FieldError::invalid(
                    "body",
                    "a complete body",
                    None,
                    format!("cannot read the body: {e}"),
                )),
            })
    }
}

/// A JSON body, kept as a value so validation can name each bad field itself.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid(FieldError::invalid(
                "body",
                "JSON object",
                None,
                format!("malformed JSON: {e}"),
            ))
        })?;
        match nul_in(&value) {
            Some(field) => Err(nul_error(if field.is_empty() {
                "body".into()
            } else {
                field
            })),
            None => Ok(JsonBody(value)),
        }
    }
}

/// A JSON body read into its typed request; one 400 names every bad field.
pub struct Valid<T>(pub T);

impl<S: Send + Sync, T: ReadRequest + Send> FromRequest<S> for Valid<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let JsonBody(body) = JsonBody::from_request(req, state).await?;
        read_body(&body).map(Valid)
    }
}

/// A JSON body read into its typed request: every bad field named in one error.
pub fn read_body<T: ReadRequest>(body: &Value) -> Result<T, Error> {
    let v = Validator::new();
    let request = T::read(&v.body(body)?);
    v.finish()?;
    Ok(request)
}

/// Query parameters read into their typed request: every bad parameter named in one error.
pub fn read_query<T: ReadRequest>(map: &Map<String, Value>) -> Result<T, Error> {
    let v = Validator::new();
    let request = T::read(&v.query(map));
    v.finish()?;
    Ok(request)
}

/// The query string read into its typed request; one 400 names every bad parameter.
pub struct ValidQuery<T>(pub T);

impl<S: Send + Sync, T: ReadRequest + Send> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let QueryParams(map) = QueryParams::from_request_parts(parts, state).await?;
        read_query(&map).map(ValidQuery)
    }
}

/// Where in `value` a string or key holds U+0000, which Postgres text and jsonb cannot store.
fn nul_in(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(String::new),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_in(item).map(|below| format!("[{i}]{}", dotted(&below)))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(key.replace('\0', "\\u0000"));
            }
            nul_in(item).map(|below| format!("{key}{}", dotted(&below)))
        }),
        _ => None,
    }
}

fn dotted(below: &str) -> String {
    match below {
        "" => String::new(),
        index if index.starts_with('[') => index.to_owned(),
        field => format!(".{field}"),
    }
}

fn nul_error(field: String) -> Error {
    Error::invalid(FieldError::invalid(
        field.clone(),
        "text without U+0000",
        None,
        format!("{field} must not contain the NUL character (U+0000)"),
    ))
}

/// Query parameters as a map of strings, read through `validation::Fields`.
pub struct QueryParams(pub Map<String, Value>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let Query(pairs) =
            Query::<HashMap<String, String>>::try_from_uri(&parts.uri).map_err(|e| {
                Error::invalid(FieldError::invalid(
                    "query",
                    "URL-encoded parameters",
                    None,
                    e.body_text(),
                ))
            })?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(nul_error(name.replace('\0', "\\u0000")));
        }
        Ok(QueryParams(validation::query_map(pairs)))
    }
}

/// A resource id in the path; anything but a UUID is a 400 naming `id`.
pub struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(path_error)?;
        Ok(PathId(parse_id(raw)?))
    }
}

/// A resource id and a key below it (`/participants/{id}/state/tags/{tag}`).
pub struct PathIdKey(pub Uuid, pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathIdKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let Path((raw, key)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(path_error)?;
        if key.contains('\0') {
            return Err(nul_error("key".into()));
        }
        Ok(PathIdKey(parse_id(raw)?, key))
    }
}

/// Two resource ids (`/programs/{id}/assets/{asset_id}/fund`).
pub struct PathIds(pub Uuid, pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathIds {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let PathIdKey(id, other) = PathIdKey::from_request_parts(parts, state).await?;
        Ok(PathIds(id, parse_id(other)?))
    }
}

impl utoipa::IntoParams for PathId {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
                ))
                .build(),
        ]
    }
}

fn parse_id(raw: String) -> Result<Uuid, Error> {
    Uuid::parse_str(&raw).map_err(|_| {
        Error::invalid(FieldError::invalid(
            "id",
            "uuid",
            Some(raw),
            "id must be a UUID",
        ))
    })
}

fn path_error(e: axum::extract::rejection::PathRejection) -> Error {
    Error::invalid(FieldError::invalid("id", "uuid", None, e.body_text()))
}

/// `asset_id`, when a list may be narrowed to one asset.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssetQuery {
    pub asset_id: Option<Uuid>,
}

impl ReadRequest for AssetQuery {
    fn read(q: &validation::Fields<'_>) -> Self {
        AssetQuery {
            asset_id: q.opt_uuid("asset_id"),
        }
    }
}

/// `asset_id`, when what is asked for is of one asset.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OneAsset {
    pub asset_id: Uuid,
}

impl ReadRequest for OneAsset {
    fn read(q: &validation::Fields<'_>) -> Self {
        OneAsset {
            asset_id: q.req_uuid("asset_id"),
        }
    }
}
