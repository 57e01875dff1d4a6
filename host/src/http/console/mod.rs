//! The web console at `/console`, for operators and support staff: pages rendered here from the same service
//! functions the API's handlers call (nothing below has SQL or business rules of its own), with one small
//! script for what a form cannot do (uploading a module). A session is an API key kept in an HttpOnly,
//! SameSite=Strict cookie; every form carries a token derived from that key ([`session`]).

mod chart;
mod events;
mod journal;
mod layout;
mod members;
mod programs;
mod reports;
mod rules;
mod session;

use super::AppState;
use super::extract::{PathId, read_query};
use crate::error::Error;
use crate::validation::Request as ReadRequest;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::html;
use serde_json::{Map, Value};
use std::collections::HashMap;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(programs::overview))
        .route(
            "/sign-in",
            get(session::sign_in_form).post(session::sign_in),
        )
        .route("/sign-out", post(session::sign_out))
        .route("/programs", post(programs::create))
        .route("/programs/{id}", get(programs::show))
        .route("/programs/{id}/assets", post(programs::create_asset))
        .route("/programs/{id}/rules", post(rules::create))
        .route("/rules/{id}", get(rules::show).post(rules::update))
        .route("/rules/{id}/validate", post(rules::validate))
        .route("/rules/{id}/simulate", post(rules::simulate))
        .route("/rules/{id}/backtest", post(rules::backtest))
        .route(
            "/modules",
            post(rules::upload_module).layer(DefaultBodyLimit::disable()),
        )
        .route("/events", get(events::stream))
        .route("/events/{id}", get(events::show))
        .route("/events/{id}/retry", post(events::retry))
        .route("/participants", get(members::list))
        .route("/participants/{id}", get(members::show))
        .route("/journal", get(journal::list))
        .route("/journal/verify", post(journal::verify))
        .route("/reports", get(reports::show))
        .route("/static/console.css", get(layout::stylesheet))
        .route("/static/console.js", get(layout::script))
        .fallback(|| async { Shown::from(Error::NotFound("page")) })
        .layer(axum::middleware::map_response(guarded))
}

/// What every console answer carries: not stored by caches, not framed by other sites, running only the
/// console's own script and style, and not telling other sites which page linked to them.
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An error shown as a page: the API's status and message for it (so the console and the API say the same).
pub struct Shown {
    status: StatusCode,
    message: String,
}

impl From<Error> for Shown {
    fn from(err: Error) -> Self {
        let (status, body) = err.answer();
        Shown {
            status,
            message: body.message().to_owned(),
        }
    }
}

impl IntoResponse for Shown {
    fn into_response(self) -> Response {
        let page = layout::bare(
            "Something went wrong",
            html! {
                p role="alert" class="error" { (self.message) }
                p { a href="/console" { "Back to the overview" } }
            },
        );
        (self.status, page).into_response()
    }
}

pub type Result<T> = std::result::Result<T, Shown>;

/// A page's id from its path, refused as a page (the API's [`PathId`] refuses in JSON).
pub struct PageId(pub uuid::Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PageId {
    type Rejection = Shown;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let PathId(id) = PathId::from_request_parts(parts, state).await?;
        Ok(PageId(id))
    }
}

/// A filter or form read by the API's own reader, from text pairs; empty values count as absent, as a form
/// sends every field.
fn read<T: ReadRequest>(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> crate::error::Result<T> {
    let map: Map<String, Value> = pairs
        .into_iter()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    read_query(&map)
}

/// A list page's query: the filters it keeps in its links (each present, empty when not given), and what to
/// read into the list's filter: those, the page size and the cursor.
struct ListQuery<'q> {
    kept: Vec<(&'q str, String)>,
    wanted: Vec<(String, String)>,
}

impl<'q> ListQuery<'q> {
    fn of(query: &HashMap<String, String>, filters: &[&'q str], limit: u16) -> ListQuery<'q> {
        let kept: Vec<(&str, String)> = filters
            .iter()
            .map(|key| (*key, query.get(*key).cloned().unwrap_or_default()))
            .collect();
        let mut wanted: Vec<(String, String)> = kept
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect();
        wanted.push(("limit".into(), limit.to_string()));
        if let Some(cursor) = query.get("cursor") {
            wanted.push(("cursor".into(), cursor.clone()));
        }
        ListQuery { kept, wanted }
    }
}

/// `pairs` as owned strings, for [`read`].
fn pairs<const N: usize>(pairs: [(&str, String); N]) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}
