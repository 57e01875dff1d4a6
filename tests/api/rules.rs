//! Rule history (E93), simulation (E95) and validation (E96).

use crate::common::TestApp;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn every_change_is_a_version_in_the_history(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Versions", "PTS").await;
    let rule = app
        .rule(
            &program,
            "first name",
            "true",
            json!([{"type": "CREDIT", "asset_id": points, "amount": "1"}]),
        )
        .await;
    let path = format!("/rules/{rule}");
    app.patch(&path, json!({"name": "second name"})).await;
    app.patch(&path, json!({"status": "SUSPENDED"})).await;
    app.patch(
        &path,
        json!({"status": "ACTIVE", "active_from": "2024-01-01T00:00:00Z"}),
    )
    .await;
    app.patch(&path, json!({"active_from": null})).await;
    let archived = app.patch(&path, json!({"status": "ARCHIVED"})).await;
    assert!(archived.body["deleted_at"].is_string());
    let frozen = app.patch(&path, json!({"name": "third"})).await;
    assert_eq!(
        (frozen.status.as_u16(), frozen.body["code"].clone()),
        (409, json!("conflict"))
    );

    let history = app.get(&format!("{path}/history")).await.body;
    let kinds: Vec<_> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["change_type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            json!("archived"),
            json!("updated"),
            json!("activated"),
            json!("suspended"),
            json!("updated"),
            json!("created")
        ]
    );
    let renamed = &history["data"][4];
    assert_eq!(
        renamed["changes"],
        json!({"name": {"old": "first name", "new": "second name"}})
    );
    assert_eq!(renamed["snapshot"]["name"], "second name");
    assert!(renamed["changed_by_api_key_id"].is_string());
    assert_eq!(
        history["data"][1]["changes"]["active_from"]["new"],
        serde_json::Value::Null
    );

    let updates = app
        .get(&format!("{path}/history?change_type=updated"))
        .await
        .body;
    assert_eq!(updates["data"].as_array().map(Vec::len), Some(2));
    let first_page = app.get(&format!("{path}/history?limit=4")).await.body;
    let cursor = first_page["pagination"]["next_cursor"]
        .as_str()
        .expect("cursor");
    let second_page = app
        .get(&format!("{path}/history?limit=4&cursor={cursor}"))
        .await
        .body;
    assert_eq!(second_page["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        app.get(&format!("{path}/history?limit=101"))
            .await
            .status
            .as_u16(),
        400
    );
    assert_eq!(
        app.get(&format!("/rules/{rule}")).await.body["status"],
        "ARCHIVED"
    );
    let listed = app.get(&format!("/rules?program_id={program}")).await.body;
    assert_eq!(
        listed["data"],
        json!([]),
        "archived rules are hidden by default"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn simulate_evaluates_without_writing_and_validate_only_compiles(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Sandbox", "PTS").await;
    let rule = app
        .rule(
            &program,
            "big spender",
            "event.amount > 10",
            json!([
        {"type": "CREDIT", "asset_id": points, "amount": "event.amount * 10"},
        {"type": "COUNTER", "key": "purchases"},
        {"type": "TAG", "tag": "vip"},
        {"type": "SET_ATTRIBUTE", "key": "plan", "value": "premium"},
        {"type": "UNTAG", "tag": "old"}]),
        )
        .await;
    let broken = app
        .rule(
            &program,
            "broken",
            "int(event.code) > 1",
            json!([{"type": "TAG", "tag": "x"}]),
        )
        .await;
    let before = app.row_counts().await;

    let state =
        json!({"tags": ["old"], "counters": {"purchases": 7}, "attributes": {"plan": "basic"}});
    let matched = app
        .post(
            &format!("/rules/{rule}/simulate"),
            json!({"event": {"amount": 75}, "participant_state": state}),
        )
        .await;
    assert_eq!(matched.status.as_u16(), 200, "{}", matched.body);
    assert_eq!(
        matched.body["rule"],
        json!({"id": rule, "name": "big spender", "condition": "event.amount > 10", "order": 10, "stop_after_match": false})
    );
    let evaluation = &matched.body["evaluation"];
    assert_eq!(
        (evaluation["matched"].clone(), evaluation["status"].clone()),
        (json!(true), json!("evaluated"))
    );
    let results: Vec<_> = evaluation["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["result"].clone())
        .collect();
    assert_eq!(
        results[0],
        json!({"amount": "750", "asset_symbol": "PTS", "description": "Credit 750 PTS to participant"})
    );
    assert_eq!(
        (
            results[1]["current_value"].clone(),
            results[1]["projected_value"].clone()
        ),
        (json!("7"), json!("8"))
    );
    assert_eq!(
        (
            results[2]["current_tags"].clone(),
            results[2]["would_add"].clone()
        ),
        (json!(["old"]), json!(true))
    );
    assert_eq!(
        (
            results[3]["current_value"].clone(),
            results[3]["would_change"].clone()
        ),
        (json!("basic"), json!(true))
    );
    assert_eq!(results[4]["would_remove"], true);
    assert_eq!(
        evaluation["results"][0]["action"]["amount"],
        "event.amount * 10"
    );

    let unmatched = app
        .post(
            &format!("/rules/{rule}/simulate"),
            json!({"event": {"amount": 5}}),
        )
        .await
        .body;
    assert_eq!(
        unmatched["evaluation"],
        json!({"matched": false, "status": "evaluated"})
    );
    let missing = app
        .post(
            &format!("/rules/{rule}/simulate"),
            json!({"event": {"other": 1}}),
        )
        .await
        .body;
    assert_eq!(
        missing["evaluation"]["status"], "evaluated",
        "a missing field is false, not an error"
    );
    let failed = app
        .post(
            &format!("/rules/{broken}/simulate"),
            json!({"event": {"code": "abc"}}),
        )
        .await
        .body;
    assert_eq!(
        (
            failed["evaluation"]["status"].clone(),
            failed["evaluation"]["matched"].clone()
        ),
        (json!("condition_failed"), json!(false))
    );
    assert!(
        failed["evaluation"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(
        app.post(&format!("/rules/{rule}/simulate"), json!({}))
            .await
            .status
            .as_u16(),
        400
    );
    assert_eq!(
        app.post(
            &format!("/rules/{}/simulate", uuid::Uuid::now_v7()),
            json!({"event": {}})
        )
        .await
        .status
        .as_u16(),
        404
    );

    let valid = app
        .post(
            "/rules/validate",
            json!({"condition": "event.type == 'purchase' && event.amount > 50"}),
        )
        .await;
    assert_eq!(valid.status.as_u16(), 200);
    assert_eq!(
        (valid.body["valid"].clone(), valid.body["message"].clone()),
        (json!(true), json!("CEL condition is valid"))
    );
    assert!(valid.body["note"].is_string());
    let invalid = app
        .post(
            "/rules/validate",
            json!({"condition": "event.type = 'purchase'"}),
        )
        .await;
    assert_eq!(
        (invalid.status.as_u16(), invalid.body["valid"].clone()),
        (200, json!(false))
    );
    assert!(
        invalid.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        app.post("/rules/validate", json!({})).await.status.as_u16(),
        400
    );

    assert_eq!(
        app.row_counts().await,
        before,
        "simulate and validate wrote nothing"
    );
    app.stop().await;
}

/// Simulating a rule decides what processing the same event decides: the same actions, with the same
/// amounts and effects, for a CEL rule and for a wasm rule.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn simulate_and_processing_agree_action_by_action(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, cash) = app.program_with_asset("Same", "CASH", "SIMPLE", 2).await;
    let cel = app
        .rule(
            &program,
            "cel",
            "event.type == 'purchase'",
            json!([{"type": "CREDIT", "asset_id": cash, "amount": "round(event.amount * 0.05, 2)"},
                   {"type": "TAG", "tag": "buyer"},
                   {"type": "COUNTER", "key": "purchases", "value": "2"}]),
        )
        .await;
    let wasm = app
        .wasm_rule(
            &program,
            "purchase-points",
            json!({"asset_id": cash, "points": "0.25"}),
            json!({}),
        )
        .await;
    let event = json!({"type": "purchase", "amount": 49.99});
    let processed = app
        .processed(&app.event(&program, "same", "same-1", event.clone()).await)
        .await;
    assert_eq!(processed["status"], "COMPLETED", "{processed}");
    let evaluations = processed["rule_evaluations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ran = |rule: &str| {
        evaluations
            .iter()
            .find(|e| e["rule_id"] == rule)
            .map(|e| e["results"].clone())
            .unwrap_or_default()
    };
    let simulated = |rule: &str| {
        let app = &app;
        let path = format!("/rules/{rule}/simulate");
        let event = event.clone();
        async move {
            let r = app.post(&path, json!({"event": event})).await;
            assert_eq!(r.status.as_u16(), 200, "{}", r.body);
            assert_eq!(r.body["evaluation"]["status"], "evaluated", "{}", r.body);
            r.body["evaluation"]["results"].clone()
        }
    };

    let (ran_cel, simulated_cel) = (ran(&cel), simulated(&cel).await);
    assert_eq!(
        (ran_cel[0]["type"].clone(), ran_cel[0]["amount"].clone()),
        (
            json!("CREDIT"),
            simulated_cel[0]["result"]["amount"].clone()
        ),
        "credit: {ran_cel} / {simulated_cel}"
    );
    assert_eq!(ran_cel[0]["amount"], "2.50");
    assert_eq!(
        (ran_cel[1]["tag"].clone(), ran_cel[1]["changed"].clone()),
        (
            json!("buyer"),
            simulated_cel[1]["result"]["would_add"].clone()
        ),
        "tag: {ran_cel} / {simulated_cel}"
    );
    assert_eq!(
        ran_cel[2]["value"], simulated_cel[2]["result"]["projected_value"],
        "counter: {ran_cel} / {simulated_cel}"
    );

    let (ran_wasm, simulated_wasm) = (ran(&wasm), simulated(&wasm).await);
    assert_eq!(
        (
            ran_wasm.as_array().map(Vec::len),
            simulated_wasm.as_array().map(Vec::len)
        ),
        (Some(1), Some(1)),
        "{ran_wasm} / {simulated_wasm}"
    );
    assert_eq!(
        (
            ran_wasm[0]["amount"].clone(),
            simulated_wasm[0]["action"]["type"].clone()
        ),
        (
            simulated_wasm[0]["result"]["amount"].clone(),
            json!("CREDIT")
        ),
        "{ran_wasm} / {simulated_wasm}"
    );
    assert_eq!(ran_wasm[0]["amount"], "0.25");
    app.stop().await;
}
