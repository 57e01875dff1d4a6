//! The REST API. Handlers parse the request, call one service function and map its result; nothing else.

mod balances;
mod error;
mod events;
mod extract;
mod ledger;
mod modules;
mod participants;
mod programs;
mod rules;
mod state;

use crate::error::Error;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;
use tower_http::trace::TraceLayer;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub runtime: std::sync::Arc<crate::rules::wasm::Runtime>,
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(programs::routes())
        .merge(balances::routes())
        .merge(participants::routes())
        .merge(state::routes())
        .merge(events::routes())
        .merge(rules::routes())
        .merge(ledger::routes())
        .merge(modules::routes(state.runtime.ceiling().component_bytes));
    Router::new()
        .nest("/v1", api)
        .route("/health", get(|| async { Json(json!({"status": "ok"})) }))
        .fallback(|| async { Error::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                Json(json!({"code": "method_not_allowed", "message": "method not allowed"})),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
