//! `GET /metrics`: Prometheus metrics for the operator (see `crate::metrics`). No key: like the health
//! check, it tells nothing about any organization; keep it off the public network where that matters.

use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let depth = crate::events::queue_depth(&s.pool).await;
    let lag = crate::events::queue_lag_seconds(&s.pool).await;
    if let Err(err) = depth.as_ref().map(|_| ()).and(lag.as_ref().map(|_| ())) {
        tracing::warn!(error = %err, "metrics cannot read the event queue");
    }
    let text = crate::metrics::render(depth.unwrap_or(-1), lag.unwrap_or(-1.0));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
