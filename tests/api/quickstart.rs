//! The seed quickstart (shared/seeds/quickstart.txt), call for call, against localhost.

use crate::common::{AuthHeader, TestApp, id};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};

async fn quickstart(app: &TestApp, auth: AuthHeader) {
    let call = |method, path: &'static str, body| app.call_as(&app.key, auth, method, path, body);

    // 2. Create your Program & Asset
    let program = call(
        Method::POST,
        "/programs",
        Some(json!({"name": "Customer Loyalty"})),
    )
    .await;
    assert_eq!(program.status, StatusCode::CREATED, "{}", program.body);
    assert_eq!(program.body["status"], "ACTIVE");
    let program_id = id(&program.body);
    let asset = app
        .call_as(
            &app.key,
            auth,
            Method::POST,
            "/assets",
            Some(json!({
                "program_id": program_id,
                "name": "Points",
                "symbol": "PTS",
                "inventory_mode": "SIMPLE",
                "issuance_policy": "UNLIMITED",
                "scale": 0
            })),
        )
        .await;
    assert_eq!(asset.status, StatusCode::CREATED, "{}", asset.body);
    assert_eq!(asset.body["program_ids"], json!([program_id]));
    let asset_id = id(&asset.body);

    // 3. Define a Rule
    let rule = app
        .call_as(
            &app.key,
            auth,
            Method::POST,
            "/rules",
            Some(json!({
                "program_id": program_id,
                "name": "10 Points per Purchase",
                "condition": "event.type == \"purchase\"",
                "actions": [{"type": "CREDIT", "asset_id": asset_id, "amount": "10"}]
            })),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.body);
    assert_eq!(rule.body["order"], 10);

    // 4. Send an Event (no event_timestamp, as in the quickstart: it defaults to the time of receipt)
    let event_body = json!({
        "program_id": program_id,
        "external_id": "user_123",
        "idempotency_key": "first-purchase-001",
        "event_data": {"type": "purchase", "amount": 49.99}
    });
    let event = app
        .call_as(
            &app.key,
            auth,
            Method::POST,
            "/events",
            Some(event_body.clone()),
        )
        .await;
    assert_eq!(event.status, StatusCode::ACCEPTED, "{}", event.body);
    assert_eq!(event.body["status"], "PENDING");
    assert_eq!(event.body["external_id"], "user_123");

    // Retrying with the same key returns the original event instead of crediting again.
    let retry = app
        .call_as(&app.key, auth, Method::POST, "/events", Some(event_body))
        .await;
    assert_eq!(retry.status, StatusCode::ACCEPTED);
    assert_eq!(retry.body["id"], event.body["id"]);

    // 5. Verify the Balance: "events process asynchronously, so give it a moment"
    let deadline = Instant::now() + Duration::from_secs(20);
    let balances = loop {
        let found = call(Method::GET, "/participants?external_id=user_123", None).await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.body);
        if let Some(participant) = found.body["data"].get(0) {
            let path = format!("/participants/{}/balances", id(participant));
            let balances = app.call_as(&app.key, auth, Method::GET, &path, None).await;
            assert_eq!(balances.status, StatusCode::OK);
            if balances.body["data"]
                .as_array()
                .is_some_and(|d| !d.is_empty())
            {
                break balances.body;
            }
        }
        assert!(Instant::now() < deadline, "balance never appeared");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(
        balances["data"],
        json!([{"asset_id": asset_id, "available": "10", "held": "0", "deferred": "0"}]),
        "You should see 10 points"
    );
    let processed = app.processed(&id(&event.body)).await;
    assert_eq!(processed["status"], "COMPLETED");
    assert_eq!(processed["rule_evaluations"][0]["status"], "SUCCESS");
    assert_eq!(
        processed["rule_evaluations"][0]["rule_name"],
        "10 Points per Purchase"
    );

    // "recorded the transaction in the ledger"
    let journal = call(Method::GET, "/journal-entries", None).await;
    assert_eq!(journal.status, StatusCode::OK);
    let entries = journal.body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "{}", journal.body);
    assert_eq!(entries[0]["action_type"], "CREDIT");
    assert_eq!(entries[0]["event_id"], event.body["id"]);
    let amounts: Vec<_> = entries[0]["postings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["entity_type"].clone(), p["amount"].clone()))
        .collect();
    assert_eq!(
        amounts,
        [
            (json!("SYSTEM_ISSUANCE"), json!("-10")),
            (json!("PARTICIPANT"), json!("10"))
        ]
    );
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn quickstart_with_bearer_token(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    quickstart(&app, AuthHeader::Bearer).await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn quickstart_with_x_api_key(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    quickstart(&app, AuthHeader::XApiKey).await;
    app.stop().await;
}
