//! The published contract: /openapi.json is the document the code generates, every documented operation is
//! served, and /docs renders it.

use crate::common::TestApp;
use crate::contract::contract;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn root(app: &TestApp) -> String {
    app.base.trim_end_matches("/v1").to_owned()
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn contract_is_the_served_document(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    // No key needed.
    let r = app
        .client
        .get(format!("{}/openapi.json", root(&app)))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    let served: Value = r.json().await.expect("JSON");
    assert_eq!(&served, contract().document());
    assert_eq!(served["openapi"], "3.1.0");
    let schemes = &served["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["in"], "header");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    app.stop().await;
}

/// Each documented operation is routed: without a key it is refused as unauthorized (the health check
/// answers), never 404 or 405. Routes cannot exist undocumented: the router is built from the same lists.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn every_documented_operation_is_served(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let document = contract().document();
    let paths = document["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (template, item) in paths {
        let path = template
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "00000000-0000-0000-0000-000000000000"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().expect("path item") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let r = app
                .client
                .request(method.clone(), format!("{}{path}", root(&app)))
                .send()
                .await
                .expect("sent");
            let open = operation["security"].as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|o| o.is_empty()))
            });
            let expected = if open {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(r.status(), expected, "{method} {template}");
            assert!(
                operation["responses"].get(expected.as_str()).is_some(),
                "{method} {template} does not document {expected}"
            );
            operations += 1;
        }
    }
    assert!(operations >= 60, "only {operations} operations documented");
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn docs_page_renders_the_document(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let r = app
        .client
        .get(format!("{}/docs", root(&app)))
        .send()
        .await
        .expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.expect("text");
    assert!(page.contains("url: \"/openapi.json\""), "{page}");
    app.stop().await;
}
