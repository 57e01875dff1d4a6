//! Idempotency of ingestion per (program_id, idempotency_key), including racing requests.

use crate::common::{TestApp, id};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn the_same_key_sent_20_times_concurrently_gives_one_event_and_one_credit(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program_id, asset_id) = app.program_with_points("Race", "PTS").await;
    app.rule(
        &program_id,
        "ten",
        "event.type == 'purchase'",
        json!([{"type": "CREDIT", "asset_id": asset_id, "amount": "10"}]),
    )
    .await;

    let body = json!({"program_id": program_id, "external_id": "racer", "idempotency_key": "order-1-completed",
                      "event_data": {"type": "purchase"}});
    let responses = join_all((0..20).map(|_| app.post("/events", body.clone()))).await;
    let ids: Vec<String> = responses
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            id(&r.body)
        })
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "every response names the first event: {ids:?}"
    );

    let processed = app.processed(&ids[0]).await;
    assert_eq!(processed["status"], "COMPLETED");
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(events, 1);
    let participant = app.participant_id("racer").await;
    assert_eq!(app.available(&participant, &asset_id).await, "10");
    let entries = app
        .get(&format!("/journal-entries?participant_id={participant}"))
        .await;
    assert_eq!(entries.body["data"].as_array().map(Vec::len), Some(1));
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_repeated_key_returns_the_first_event_even_with_another_payload(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program_id, asset_id) = app.program_with_points("Dedupe", "PTS").await;
    app.rule(
        &program_id,
        "amount",
        "true",
        json!([{"type": "CREDIT", "asset_id": asset_id, "amount": "event.points"}]),
    )
    .await;
    let first = app
        .event(&program_id, "u1", "k1", json!({"points": 5}))
        .await;
    let second = app
        .event(&program_id, "u1", "k1", json!({"points": 500}))
        .await;
    assert_eq!(first, second, "first write wins");
    // The same key in another program is another event.
    let (other_program, other_asset) = app.program_with_points("Other", "OTH").await;
    let other = app
        .event(&other_program, "u1", "k1", json!({"points": 7}))
        .await;
    assert_ne!(other, first);

    assert_eq!(
        app.processed(&first).await["event_data"],
        json!({"points": 5})
    );
    app.processed(&other).await;
    let participant = app.participant_id("u1").await;
    assert_eq!(app.available(&participant, &asset_id).await, "5");
    assert_eq!(
        app.available(&participant, &other_asset).await,
        "none",
        "no rule in the other program"
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_batch_reports_each_item(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program_id, asset_id) = app.program_with_points("Batch", "PTS").await;
    app.rule(
        &program_id,
        "one",
        "true",
        json!([{"type": "CREDIT", "asset_id": asset_id, "amount": "1"}]),
    )
    .await;
    let item = |external_id: &str, key: &str, n: i64| json!({"program_id": program_id, "external_id": external_id, "idempotency_key": key, "event_data": {"n": n}});
    let r = app
        .post("/events/batch", json!({"events": [
            item("a", "b-1", 1),
            {"program_id": program_id, "external_id": "b"},
            item("a", "b-1", 1),
            item("a", "b-1", 2),
            item("c", "b-2", 1),
            {"program_id": uuid::Uuid::now_v7(), "external_id": "d", "idempotency_key": "x", "event_data": {}},
            {"program_id": program_id, "participant_id": uuid::Uuid::now_v7(), "idempotency_key": "y", "event_data": {}}
        ]}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["total"], 7);
    assert_eq!(r.body["success_count"], 3);
    assert_eq!(r.body["error_count"], 4);
    let results = r.body["results"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<_> = results
        .iter()
        .map(|x| (x["index"].as_i64(), x["status"].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            (Some(0), Some("accepted")),
            (Some(1), Some("error")),
            (Some(2), Some("accepted")),
            (Some(3), Some("error")),
            (Some(4), Some("accepted")),
            (Some(5), Some("error")),
            (Some(6), Some("error"))
        ]
    );
    assert!(
        results[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("idempotency_key") && e.contains("event_data"))
    );
    assert_eq!(
        results[2]["event"]["id"], results[0]["event"]["id"],
        "identical duplicate is the original"
    );
    assert!(
        results[3]["error"]
            .as_str()
            .is_some_and(|e| e.contains("different event"))
    );
    assert!(
        results[5]["error"]
            .as_str()
            .is_some_and(|e| e.contains("program_id"))
    );
    assert_eq!(
        results[6]["error"], "invalid participant_id: not found",
        "checked by the shared insert, named by the follow-up"
    );
    for accepted in [&results[0], &results[4]] {
        assert_eq!(
            app.processed(&id(&accepted["event"])).await["status"],
            "COMPLETED"
        );
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(events, 2);
    app.assert_ledger_consistent().await;
    app.stop().await;
}
