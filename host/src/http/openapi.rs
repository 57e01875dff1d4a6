//! The OpenAPI 3.1 document: its frame (info, security schemes, shared schemas), and the two routes that
//! publish it. The paths themselves come from each handler's `#[utoipa::path]` via `utoipa_axum::routes!`.

use super::AppState;
use super::error::ErrorBody;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Scrip",
        description = "A self-hostable rewards engine that speaks the Scrip REST API. Send an API key \
                       (`sk_…`) as `Authorization: Bearer sk_…` or as `X-API-Key: sk_…`; create one with \
                       `scrip api-key create --org NAME`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    security(("bearer" = []), ("api_key" = [])),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody, crate::webhooks::Envelope)),
)]
pub struct ApiDoc;

struct SecuritySchemes;

/// Every operation that takes a body may answer 413 when the body is larger than the route accepts
/// (1 MiB; `SCRIP_WASM_MAX_MODULE_BYTES` for module uploads). Applied once the paths are in the document.
pub struct BodyLimit;

impl Modify for BodyLimit {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let too_large = super::error::error_response(
            "The body is larger than this route accepts (1 MiB; module uploads: the operator's limit).",
        );
        for item in openapi.paths.paths.values_mut() {
            for operation in [item.post.as_mut(), item.put.as_mut(), item.patch.as_mut()]
                .into_iter()
                .flatten()
                .filter(|operation| operation.request_body.is_some())
            {
                operation
                    .responses
                    .responses
                    .insert("413".into(), too_large.clone());
            }
        }
    }
}

/// Every operation that takes a key may answer 429 once the organization's rate limit is spent.
pub struct RateLimit;

impl Modify for RateLimit {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let limited = super::error::error_response(
            "The organization's rate limit is spent; retry after `Retry-After` seconds.",
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            for operation in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .insert("429".into(), limited.clone());
            }
        }
    }
}

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("sk_…")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// `GET /openapi.json`: the document, serialized once at start-up.
pub fn json<S: Clone + Send + Sync + 'static>(
    document: &utoipa::openapi::OpenApi,
) -> MethodRouter<S> {
    let body = Bytes::from(document.to_json().unwrap_or_else(|err| {
        tracing::error!(error = %err, "cannot serialize the OpenAPI document");
        "{}".into()
    }));
    get(move || {
        let body = body.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], body) }
    })
}

/// `GET /docs`: a browsable reference rendered from /openapi.json by Scalar, loaded from its CDN.
pub async fn docs() -> Html<&'static str> {
    Html(
        r##"<!doctype html>
<html lang="en">
<head>
  <title>Scrip API reference</title>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <link rel="stylesheet" href="/docs/swagger-ui.css" />
</head>
<body>
  <div id="reference"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>SwaggerUIBundle({ url: "/openapi.json", dom_id: "#reference", deepLinking: true });</script>
</body>
</html>
"##,
    )
}

/// Swagger UI (swagger-ui-dist, vendored under `host/static/swagger-ui`), served from the binary so the
/// reference works without internet.
pub async fn docs_asset(Path(asset): Path<String>) -> Response {
    let (content_type, bytes): (&str, &'static [u8]) = match asset.as_str() {
        "swagger-ui-bundle.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../static/swagger-ui/swagger-ui-bundle.js"),
        ),
        "swagger-ui.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../static/swagger-ui/swagger-ui.css"),
        ),
        _ => return crate::error::Error::NotFound("route").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        bytes,
    )
        .into_response()
}

/// The health check's answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`; `degraded` when one of this process's event workers is down (it is being restarted) or the
    /// event queue could not be read within half a second.
    #[schema(example = "ok")]
    status: &'static str,
    workers: WorkerHealth,
    /// Seconds since the oldest due event became due: 0 when none waits, growing while processing falls
    /// behind or stalls; null when the database did not answer in time.
    #[schema(example = 0.0)]
    queue_lag_seconds: Option<f64>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct WorkerHealth {
    /// Event workers this process runs (`SCRIP_WORKERS`).
    configured: usize,
    /// Of those, how many are running now.
    running: usize,
}

/// How long the health check waits for the queue's lag.
const QUEUE_LAG_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Liveness and progress: the server answers, its workers run, and how far behind the event queue is. No
/// key needed; it answers 200 while the process lives, whatever the database does (see `/health/ready`).
#[utoipa::path(get, path = "/health", tag = "meta", security(()),
    responses((status = 200, description = "The server is up; `status` says whether processing is.", body = Health)))]
pub async fn health(State(s): State<AppState>) -> Json<Health> {
    let lag =
        tokio::time::timeout(QUEUE_LAG_TIMEOUT, crate::events::queue_lag_seconds(&s.pool)).await;
    let queue_lag_seconds = match lag {
        Ok(Ok(seconds)) => Some(seconds),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "health check cannot read the event queue");
            None
        }
        Err(_) => None,
    };
    let workers = WorkerHealth {
        configured: s.workers.configured(),
        running: s.workers.running(),
    };
    let healthy = workers.running >= workers.configured && queue_lag_seconds.is_some();
    Json(Health {
        status: if healthy { "ok" } else { "degraded" },
        workers,
        queue_lag_seconds,
    })
}

/// Readiness: whether this process can serve requests now.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    #[schema(example = "ready")]
    status: &'static str,
}

/// Readiness: 200 while the database answers within half a second, else 503 with `Retry-After`, so a load
/// balancer sends requests elsewhere meanwhile. No key needed.
#[utoipa::path(get, path = "/health/ready", tag = "meta", security(()),
    responses((status = 200, description = "The database answers.", body = Ready),
        (status = 503, description = "The database does not answer; retry after `Retry-After` seconds.", body = ErrorBody)))]
pub async fn ready(State(s): State<AppState>) -> crate::error::Result<Json<Ready>> {
    let ping = sqlx::query("SELECT 1").execute(&s.pool);
    match tokio::time::timeout(QUEUE_LAG_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(Json(Ready { status: "ready" })),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => Err(sqlx::Error::PoolTimedOut.into()),
    }
}
