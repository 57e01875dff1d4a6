//! Organizations are isolated: one organization's key never reads or writes another's data.

use crate::common::{AuthHeader, TestApp, id};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn another_organizations_key_gets_404_on_every_resource(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program_id, asset_id) = app.program_with_points("Private", "PTS").await;
    let rule_id = app
        .rule(
            &program_id,
            "ten",
            "true",
            json!([{"type": "CREDIT", "asset_id": asset_id, "amount": "10"}]),
        )
        .await;
    let event_id = app
        .event(&program_id, "alice", "evt-1", json!({"type": "purchase"}))
        .await;
    app.processed(&event_id).await;
    let participant_id = app.participant_id("alice").await;
    let entry_id = id(&app.get("/journal-entries").await.body["data"][0]);

    let intruder = app.key_for("intruder").await;
    let before = app.row_counts().await;
    let as_intruder = |method: Method, path: String, body: Option<Value>| {
        let key = intruder.clone();
        let app = &app;
        async move {
            app.call_as(&key, AuthHeader::XApiKey, method, &path, body)
                .await
        }
    };
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/programs/{program_id}"), None),
        (
            Method::PATCH,
            format!("/programs/{program_id}"),
            Some(json!({"name": "mine now"})),
        ),
        (Method::GET, format!("/programs/{program_id}/assets"), None),
        (
            Method::POST,
            format!("/programs/{program_id}/assets"),
            Some(json!({"asset_id": asset_id})),
        ),
        (Method::GET, format!("/assets/{asset_id}"), None),
        (
            Method::PATCH,
            format!("/assets/{asset_id}"),
            Some(json!({"name": "mine"})),
        ),
        (
            Method::POST,
            "/assets".into(),
            Some(json!({"program_id": program_id, "name": "X", "symbol": "X",
            "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0})),
        ),
        (Method::GET, format!("/rules/{rule_id}"), None),
        (
            Method::PATCH,
            format!("/rules/{rule_id}"),
            Some(json!({"status": "SUSPENDED"})),
        ),
        (
            Method::POST,
            "/rules".into(),
            Some(
                json!({"program_id": program_id, "name": "steal", "condition": "true",
            "actions": [{"type": "CREDIT", "asset_id": asset_id, "amount": "1"}]}),
            ),
        ),
        (Method::GET, format!("/participants/{participant_id}"), None),
        (
            Method::GET,
            format!("/participants/{participant_id}/balances"),
            None,
        ),
        (
            Method::POST,
            "/participants".into(),
            Some(json!({"external_id": "x", "program_id": program_id})),
        ),
        (
            Method::POST,
            "/events".into(),
            Some(json!({"program_id": program_id, "external_id": "alice",
            "idempotency_key": "evt-2", "event_data": {}})),
        ),
        (
            Method::POST,
            "/events".into(),
            Some(
                json!({"program_id": program_id, "participant_id": participant_id,
            "idempotency_key": "evt-3", "event_data": {}}),
            ),
        ),
        (Method::GET, format!("/events/{event_id}"), None),
        (
            Method::GET,
            format!("/events/by-key?program_id={program_id}&idempotency_key=evt-1"),
            None,
        ),
        (Method::GET, format!("/journal-entries/{entry_id}"), None),
    ];
    for (method, path, body) in cases {
        let r = as_intruder(method.clone(), path.clone(), body).await;
        assert_eq!(
            r.status.as_u16(),
            404,
            "{method} {path} answered {} {}",
            r.status,
            r.body
        );
        assert_eq!(r.body["code"], "not_found");
    }
    // A batch into another organization's program accepts nothing.
    let batch = as_intruder(
        Method::POST,
        "/events/batch".into(),
        Some(json!({"events": [{"program_id": program_id,
        "external_id": "alice", "idempotency_key": "evt-4", "event_data": {}}]})),
    )
    .await;
    assert_eq!(batch.body["error_count"], 1, "{}", batch.body);

    // Lists and reports show nothing of the other organization.
    for path in [
        "/programs?include_archived=true".to_string(),
        "/assets".into(),
        format!("/assets?program_id={program_id}"),
        "/participants".into(),
        "/participants?external_id=alice".into(),
        format!("/participants?program_id={program_id}"),
        "/events".into(),
        format!("/events?program_id={program_id}"),
        format!("/rules?program_id={program_id}"),
        "/rules".into(),
        "/journal-entries".into(),
        format!("/journal-entries?participant_id={participant_id}"),
        "/journal-entries?external_id=alice".into(),
        "/reports/program-activity".into(),
    ] {
        let r = as_intruder(Method::GET, path.clone(), None).await;
        assert_eq!(r.status.as_u16(), 200, "{path}: {}", r.body);
        assert_eq!(r.body["data"], json!([]), "{path} leaked: {}", r.body);
    }
    assert_eq!(
        app.row_counts().await,
        before,
        "the intruder changed nothing"
    );

    // The owner still sees everything unchanged.
    assert_eq!(
        app.get(&format!("/programs/{program_id}")).await.body["name"],
        "Private"
    );
    assert_eq!(
        app.get(&format!("/rules/{rule_id}")).await.body["status"],
        "ACTIVE"
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn requests_without_a_valid_key_are_unauthorized(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let client = reqwest::Client::new();
    let url = format!("{}/programs", app.base);
    // A missing key and a wrong one are both 401 `unauthorized`, with messages that tell them apart.
    let missing = "missing API key: send Authorization: Bearer sk_... or X-API-Key: sk_...";
    let invalid = "invalid or revoked API key";
    let attempts = [
        (client.get(&url), missing),
        (
            client
                .get(&url)
                .header("Authorization", "Bearer sk_not_a_key"),
            invalid,
        ),
        (client.get(&url).header("X-API-Key", "sk_wrong"), invalid),
        (
            client
                .get(&url)
                .header("Authorization", format!("Basic {}", app.key)),
            missing,
        ),
        (client.get(&url).header("Authorization", "Bearer "), missing),
        (
            client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(r#"{"name":"x"}"#),
            missing,
        ),
    ];
    for (attempt, message) in attempts {
        let r = attempt.send().await.expect("sent");
        assert_eq!(r.status().as_u16(), 401);
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["code"], "unauthorized");
        assert_eq!(body["message"], message);
    }
    // The scheme is matched case-insensitively.
    for scheme in ["bearer", "BEARER"] {
        let r = client
            .get(&url)
            .header("Authorization", format!("{scheme} {}", app.key))
            .send()
            .await
            .expect("sent");
        assert_eq!(r.status().as_u16(), 200, "{scheme}");
    }
    let programs: i64 = sqlx::query_scalar("SELECT count(*) FROM programs")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(programs, 0);
    app.stop().await;
}
