//! What every API request passes on its way to a handler: its key is resolved once (handlers read the
//! [`Actor`] it leaves), the organization's rate limit is taken (429 before anything is applied), the
//! `X-RateLimit-*` headers are set, and the request is logged with its answer. Requests without a key go
//! straight to the handler, which refuses them.

use super::AppState;
use super::error::current_request_id;
use crate::error::Error;
use crate::organizations::Actor;
use crate::rate_limits::Decision;
use crate::request_logs::{self, AuthType, Entry};
use axum::body::HttpBody as _;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// The API key a request presents, from `X-API-Key` or `Authorization: Bearer`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    header("x-api-key")
        .or_else(|| header("authorization").and_then(bearer_key))
        .filter(|key| !key.is_empty())
}

/// The key of an `Authorization: Bearer` header; the scheme is case-insensitive (RFC 9110).
fn bearer_key(value: &str) -> Option<&str> {
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
}

pub async fn admit(State(s): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let Some(key) = presented_key(request.headers()) else {
        return next.run(request).await;
    };
    let actor = match s.keys.authenticate(&s.pool, key).await {
        Ok(actor) => actor,
        Err(err) => return err.into_response(),
    };
    let decision = s.limits.check(actor.organization_id);
    let mut seen = Seen::of(&request, actor);
    let mut response = match decision {
        Some(Decision {
            allowed: false,
            retry_after,
            ..
        }) => {
            crate::metrics::rate_limited();
            let mut refused = Error::RateLimited.into_response();
            if let Some(seconds) = retry_after {
                refused
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            refused
        }
        _ => {
            request.extensions_mut().insert(actor);
            if s.logs.enabled() {
                let (parts, body) = request.into_parts();
                let (body, bytes) = read_small(&parts.headers, body).await;
                seen.request_body = bytes;
                request = Request::from_parts(parts, body);
            }
            next.run(request).await
        }
    };
    if let Some(decision) = decision {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(decision.limit));
        headers.insert(
            "x-ratelimit-remaining",
            HeaderValue::from(decision.remaining),
        );
        headers.insert("x-ratelimit-reset", HeaderValue::from(decision.reset));
    }
    if !s.logs.enabled() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let (body, bytes) = read_small(&parts.headers, body).await;
    let response = Response::from_parts(parts, body);
    let status = response.status().as_u16();
    let error_code = match status >= 400 {
        true => bytes.as_deref().and_then(error_code),
        false => None,
    };
    s.logs.record(Entry {
        organization_id: seen.actor.organization_id,
        request_id: current_request_id().unwrap_or_default(),
        method: seen.method,
        path: seen.path,
        route_pattern: seen.route_pattern,
        status_code: i32::from(status),
        duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
        auth_type: AuthType::ApiKey,
        error_code,
        ip_address: seen.ip_address,
        user_agent: seen.user_agent,
        request_body: seen.request_body,
        response_body: bytes,
        created_at: chrono::Utc::now(),
    });
    response
}

/// What the log needs of the request, read before the handler takes it.
struct Seen {
    actor: Actor,
    method: String,
    path: String,
    route_pattern: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    request_body: Option<Bytes>,
}

impl Seen {
    fn of(request: &Request, actor: Actor) -> Seen {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let peer = request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip().to_string());
        Seen {
            actor,
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            route_pattern: request
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned()),
            ip_address: peer,
            user_agent: header(header::USER_AGENT),
            request_body: None,
        }
    }
}

/// The `code` of an error body.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Coded {
        code: String,
    }
    serde_json::from_slice::<Coded>(body).ok().map(|c| c.code)
}

/// The body to pass on, with its bytes when it says up front (by its size or `Content-Length`) that it is no
/// larger than a log keeps; a larger or open-ended body passes on as it came, unread. Reading is bounded by
/// the server's body timeout.
async fn read_small(headers: &HeaderMap, body: Body) -> (Body, Option<Bytes>) {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let small = body
        .size_hint()
        .upper()
        .or(declared)
        .is_some_and(|n| n <= request_logs::BODY_CAP as u64);
    if !small {
        return (body, None);
    }
    match axum::body::to_bytes(body, request_logs::BODY_CAP).await {
        Ok(bytes) => (Body::from(bytes.clone()), Some(bytes)),
        // It broke off or came too slowly: the handler meets the same end of it.
        Err(_) => (Body::empty(), None),
    }
}
