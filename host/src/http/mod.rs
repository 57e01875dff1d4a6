//! The REST API. Handlers parse the request, call one service function and map its result; nothing else.
//! Each handler carries its OpenAPI description, and the router is built from the same `routes!` lists as
//! the document, so the two cannot drift apart.

mod assets;
mod automations;
mod balances;
mod console;
mod error;
mod events;
mod extract;
mod gate;
mod groups;
mod ledger;
mod logs;
mod metrics;
mod modules;
mod openapi;
mod participants;
mod programs;
mod redemptions;
mod reports;
mod rewards;
mod rules;
pub mod server;
mod state;
mod tiers;
mod transfers;
mod webhooks;

use crate::error::Error;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use error::ErrorBody;
use sqlx::PgPool;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub runtime: std::sync::Arc<crate::wasm::Runtime>,
    pub doorbell: crate::events::Doorbell,
    pub intake: crate::events::Intake,
    pub keys: std::sync::Arc<crate::organizations::KeyCache>,
    pub workers: std::sync::Arc<crate::events::worker::Liveness>,
    /// Where webhook endpoints may point.
    pub webhook_urls: crate::webhooks::url::UrlPolicy,
    pub limits: std::sync::Arc<crate::rate_limits::Limits>,
    pub logs: crate::request_logs::Recorder,
    /// The time automations are scheduled by.
    pub clock: crate::clock::Clock,
    /// The backtest this server is running, if any.
    pub backtests: std::sync::Arc<crate::backtest::Running>,
}

/// The API's routes with their document. `component_bytes`: the largest rule module the operator accepts.
fn api(component_bytes: usize) -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .merge(programs::routes())
        .merge(assets::routes())
        .merge(balances::routes())
        .merge(transfers::routes())
        .merge(rewards::routes())
        .merge(redemptions::routes())
        .merge(tiers::routes())
        .merge(participants::routes())
        .merge(groups::routes())
        .merge(state::routes())
        .merge(events::routes())
        .merge(rules::routes())
        .merge(ledger::routes())
        .merge(reports::routes())
        .merge(automations::routes())
        .merge(webhooks::routes())
        .merge(logs::routes())
        .merge(modules::routes(component_bytes));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/v1", v1)
        .routes(routes!(openapi::health))
        .routes(routes!(openapi::ready))
}

/// The OpenAPI document this build serves (the body limit of module uploads does not show in it).
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, document) = routes_and_document(crate::wasm::Ceiling::DEFAULT.component_bytes);
    document
}

/// The router and its document, with what applies to every operation added.
fn routes_and_document(component_bytes: usize) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut document) = api(component_bytes).split_for_parts();
    utoipa::Modify::modify(&openapi::BodyLimit, &mut document);
    utoipa::Modify::modify(&openapi::RateLimit, &mut document);
    (routes, document)
}

pub fn router(state: AppState) -> Router {
    let (api, document) = routes_and_document(state.runtime.ceiling().component_bytes);
    let gate = axum::middleware::from_fn_with_state(state.clone(), gate::admit);
    api.route_layer(gate)
        .route("/openapi.json", openapi::json(&document))
        .route("/metrics", get(metrics::metrics))
        .route("/docs", get(openapi::docs))
        .route("/docs/{asset}", get(openapi::docs_asset))
        .nest("/console", console::routes())
        .fallback(|| async { Error::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(ErrorBody::new("method_not_allowed", "method not allowed")),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(error::with_request_id))
        .with_state(state)
}
