//! Signing in and out. The session cookie holds the API key itself (HttpOnly, SameSite=Strict, path
//! `/console`), checked on every request like the API's `Authorization` header, so revoking the key ends the
//! session. Forms carry a CSRF token: for a signed-in page, a hash of the key (which a page of another site
//! cannot read); for the sign-in form, a random value also set as a short-lived cookie (double submit).

use super::{Shown, layout};
use crate::error::Error;
use crate::http::AppState;
use crate::organizations::{Actor, hex};
use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const SESSION_COOKIE: &str = "scrip_console";
const SIGN_IN_COOKIE: &str = "scrip_console_sign_in";
const CSRF_FIELD: &str = "csrf";
/// The header the console's script sends the token in, where there is no form.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A signed-in organization, as the cookie's key resolved.
pub struct Session {
    pub actor: Actor,
    csrf: String,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let Some(key) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        match s.keys.authenticate(&s.pool, key).await {
            Ok(actor) => Ok(Session {
                actor,
                csrf: csrf_token(key),
            }),
            Err(Error::Unauthorized) => Err(signed_out(&parts.headers)),
            Err(other) => Err(Shown::from(other).into_response()),
        }
    }
}

impl Session {
    /// The hidden field every form of a signed-in page carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(CSRF_FIELD) value=(self.csrf); }
    }

    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Refuses a form that does not carry this session's token.
    pub fn check(&self, form: &HashMap<String, String>) -> super::Result<()> {
        self.check_token(form.get(CSRF_FIELD).map(String::as_str))
    }

    /// Refuses a request whose token (from a form or [`CSRF_HEADER`]) is not this session's.
    pub fn check_token(&self, presented: Option<&str>) -> super::Result<()> {
        match presented {
            Some(token) if same(token, &self.csrf) => Ok(()),
            _ => Err(forbidden()),
        }
    }
}

fn forbidden() -> Shown {
    Shown {
        status: StatusCode::FORBIDDEN,
        message:
            "This form has expired or did not come from the console. Reload the page and try again."
                .into(),
    }
}

fn csrf_token(key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"scrip console csrf\0");
    hasher.update(key.as_bytes());
    hex(&hasher.finalize())
}

/// Compares without stopping at the first difference, so timing does not tell how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

/// `Secure` when the console is reached over TLS (directly or through a proxy that says so), so a plain
/// `http://localhost` set-up still signs in.
fn cookie_attributes(headers: &HeaderMap, max_age: Option<u32>) -> String {
    let tls = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let mut attributes = "; Path=/console; HttpOnly; SameSite=Strict".to_owned();
    if let Some(seconds) = max_age {
        attributes.push_str(&format!("; Max-Age={seconds}"));
    }
    if tls {
        attributes.push_str("; Secure");
    }
    attributes
}

fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Back to the sign-in form, with the session cookie cleared.
fn signed_out(headers: &HeaderMap) -> Response {
    let mut response = Redirect::to("/console/sign-in").into_response();
    set_cookie(
        &mut response,
        format!("{SESSION_COOKIE}={}", cookie_attributes(headers, Some(0))),
    );
    response
}

pub async fn sign_in_form(headers: HeaderMap) -> Response {
    sign_in_page(&headers, StatusCode::OK, None)
}

fn sign_in_page(headers: &HeaderMap, status: StatusCode, problem: Option<&str>) -> Response {
    let token = hex(&random_bytes());
    let page = layout::bare(
        "Sign in",
        html! {
            p { "Sign in with one of your organization's API keys (" code { "sk_…" } "). The console sees what the key sees." }
            @if let Some(problem) = problem {
                p role="alert" class="error" { (problem) }
            }
            form method="post" action="/console/sign-in" class="stacked" {
                input type="hidden" name=(CSRF_FIELD) value=(token);
                label for="key" { "API key" }
                input type="password" id="key" name="key" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
        },
    );
    let mut response = (status, page).into_response();
    set_cookie(
        &mut response,
        format!(
            "{SIGN_IN_COOKIE}={token}{}",
            cookie_attributes(headers, Some(600))
        ),
    );
    response
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    // Without randomness the token is all zeros and the cookie comparison still binds form to browser.
    if getrandom::fill(&mut bytes).is_err() {
        tracing::warn!("no randomness for the console's sign-in token");
    }
    bytes
}

pub async fn sign_in(
    State(s): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let expected = cookie(&headers, SIGN_IN_COOKIE);
    let presented = form.get(CSRF_FIELD).map(String::as_str);
    if !matches!((expected, presented), (Some(a), Some(b)) if same(a, b)) {
        return sign_in_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some("The sign-in form expired. Try again."),
        );
    }
    let key = form.get("key").map(|k| k.trim()).unwrap_or_default();
    match s.keys.authenticate(&s.pool, key).await {
        Ok(_) => {
            let mut response = Redirect::to("/console").into_response();
            set_cookie(
                &mut response,
                format!(
                    "{SESSION_COOKIE}={key}{}",
                    cookie_attributes(&headers, None)
                ),
            );
            set_cookie(
                &mut response,
                format!("{SIGN_IN_COOKIE}={}", cookie_attributes(&headers, Some(0))),
            );
            response
        }
        Err(Error::Unauthorized) => sign_in_page(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That key was not accepted: it is unknown or revoked."),
        ),
        Err(other) => Shown::from(other).into_response(),
    }
}

pub async fn sign_out(
    session: Session,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    match session.check(&form) {
        Ok(()) => signed_out(&headers),
        Err(refused) => refused.into_response(),
    }
}
