//! The frame every page shares, the small pieces pages are made of, and the console's stylesheet and script.

use super::session::Session;
use crate::pagination::Pagination;
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use serde::Serialize;

const SECTIONS: [(&str, &str); 6] = [
    ("/console", "Overview"),
    ("/console/events", "Events"),
    ("/console/participants", "Members"),
    ("/console/journal", "Journal"),
    ("/console/reports", "Reports"),
    ("/docs", "API reference"),
];

/// A signed-in page: the navigation, a sign-out button and `body` under the page's one `h1`.
pub fn page(session: &Session, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                a class="skip" href="#main" { "Skip to content" }
                header {
                    nav aria-label="Console" {
                        span class="brand" { "Scrip" }
                        @for (href, label) in SECTIONS {
                            a href=(href) { (label) }
                        }
                    }
                    form method="post" action="/console/sign-out" {
                        (session.csrf_field())
                        button type="submit" class="quiet" { "Sign out" }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page outside a session: sign-in and errors.
pub fn bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main id="main" class="narrow" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Scrip console" }
            link rel="stylesheet" href="/console/static/console.css";
            script src="/console/static/console.js" defer {}
        }
    }
}

pub fn time(at: DateTime<Utc>) -> Markup {
    html! { time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

pub fn maybe_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { "—" },
    }
}

/// A value as the API would show it, for what the user wrote or a rule returned (event data, action results).
pub fn json(value: &impl Serialize) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    html! { pre class="json" { (text) } }
}

/// "Next page" for a keyset-paged list, keeping the page's filters.
pub fn next_page(base: &str, filters: &[(&str, String)], pagination: &Pagination) -> Markup {
    let Some(cursor) = &pagination.next_cursor else {
        return html! {};
    };
    let mut query: Vec<(&str, &str)> = filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, v.as_str()))
        .collect();
    query.push(("cursor", cursor));
    let href = format!("{base}?{}", encode(&query));
    html! { p { a href=(href) rel="next" { "Next page →" } } }
}

/// `application/x-www-form-urlencoded`, as a link's query.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const STYLESHEET: &str = include_str!("../../../static/console/console.css");
const SCRIPT: &str = include_str!("../../../static/console/console.js");

pub async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

pub async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn links_encode_what_a_query_cannot_hold() {
        assert_eq!(
            super::encode(&[("search", "a b&c"), ("cursor", "x=1")]),
            "search=a%20b%26c&cursor=x%3D1"
        );
    }
}
