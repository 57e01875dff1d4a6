//! Backtests (POST /v1/rules/backtest): a rule run over stored events, each seen with its participant's state
//! and balances as they were when it was processed, writing nothing.

use crate::common::{TestApp, assert_error};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A window around everything a test sent.
fn window() -> Value {
    let now = chrono::Utc::now();
    json!({"from": (now - chrono::Duration::hours(1)).to_rfc3339(),
           "to": (now + chrono::Duration::hours(1)).to_rfc3339()})
}

impl TestApp {
    /// POST /rules/backtest with the window around the test's events and `body`'s fields.
    async fn backtest(&self, body: Value) -> crate::common::Response {
        let mut request = window();
        for (key, value) in body.as_object().expect("an object") {
            request[key] = value.clone();
        }
        self.post("/rules/backtest", request).await
    }

    /// A backtest that must succeed.
    async fn backtested(&self, body: Value) -> Value {
        let r = self.backtest(body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
    }

    /// Sends purchases for `who`, one at a time, each processed before the next is sent.
    async fn purchases(&self, program: &str, who: &str, count: usize) {
        for n in 0..count {
            let key = format!("{who}-purchase-{n}");
            let event = self
                .event(
                    program,
                    who,
                    &key,
                    json!({"type": "purchase", "amount": 10}),
                )
                .await;
            assert_eq!(self.processed(&event).await["status"], "COMPLETED");
        }
    }
}

/// A program that counts purchases, and a rule that pays 5 points from a participant's third purchase on:
/// its condition reads the counter as the event began.
async fn loyal_program(app: &TestApp) -> (String, String, String) {
    let (program, points) = app.program_with_points("Loyalty", "PTS").await;
    app.rule(
        &program,
        "count purchases",
        "event.type == 'purchase'",
        json!([{"type": "COUNTER", "key": "purchases", "value": "1"}]),
    )
    .await;
    let loyal = app
        .credit_rule(
            &program,
            "has(participant.counters.purchases) && participant.counters.purchases >= 2",
            &points,
            "5",
        )
        .await;
    (program, points, loyal)
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_unchanged_rule_backtests_to_what_it_did_with_the_state_each_event_saw(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points, loyal) = loyal_program(&app).await;
    app.purchases(&program, "alice", 4).await;
    app.purchases(&program, "bob", 1).await;
    // Today alice's counter is 4: read today, every one of her events would match.
    let report = app.backtested(json!({"rule_id": loyal})).await;
    assert_eq!(report["events_evaluated"], 5);
    assert_eq!(report["matched"], 2, "{report}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["assets"][0]["asset_id"], points.as_str());
    assert_eq!(report["assets"][0]["credited"], "10");
    assert_eq!(report["assets"][0]["participants"]["count"], 1);
    assert_eq!(report["assets"][0]["participants"]["max"], "10");
    let comparison = &report["comparison"];
    assert_eq!(comparison["rule_id"], loyal.as_str());
    assert_eq!(comparison["matched_then"], 2);
    assert_eq!(
        (
            &comparison["newly_matched"],
            &comparison["no_longer_matched"],
            &comparison["amounts_changed"]
        ),
        (&json!(0), &json!(0), &json!(0))
    );
    assert_eq!(comparison["assets"][0]["credited_then"], "10");
    assert_eq!(comparison["assets"][0]["credited_now"], "10");
    assert_eq!(report["changes"]["data"], json!([]));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn changes_to_a_rule_are_compared_with_what_it_did_event_by_event(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points, loyal) = loyal_program(&app).await;
    app.purchases(&program, "alice", 4).await;
    let alice = app.participant_id("alice").await;
    // From the fourth purchase on, and twice as much.
    let changes = json!({
        "condition": "has(participant.counters.purchases) && participant.counters.purchases >= 3",
        "actions": [{"type": "CREDIT", "asset_id": points, "amount": "event.amount"}]});
    let report = app
        .backtested(json!({"rule_id": loyal, "changes": changes}))
        .await;
    assert_eq!(report["matched"], 1);
    let comparison = &report["comparison"];
    assert_eq!(comparison["matched_then"], 2);
    assert_eq!(comparison["no_longer_matched"], 1);
    assert_eq!(comparison["amounts_changed"], 1);
    assert_eq!(comparison["newly_matched"], 0);
    assert_eq!(comparison["assets"][0]["credited_then"], "10");
    assert_eq!(comparison["assets"][0]["credited_now"], "10");
    let changed = report["changes"]["data"].as_array().expect("changes");
    assert_eq!(changed.len(), 2, "{report}");
    assert_eq!(changed[0]["participant_id"], alice.as_str());
    assert_eq!(
        (&changed[0]["matched_then"], &changed[0]["matched_now"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(changed[0]["then"][0]["credited"], "5");
    assert_eq!(changed[0]["now"], json!([]));
    assert_eq!(changed[1]["then"][0]["credited"], "5");
    assert_eq!(changed[1]["now"][0]["credited"], "10");
    // The saved rule is as it was.
    let saved = app.get(&format!("/rules/{loyal}")).await.body;
    assert_eq!(saved["actions"][0]["amount"], "5");

    // The changed events a page at a time.
    let first = app
        .backtested(json!({"rule_id": loyal, "changes": changes, "changes_limit": 1}))
        .await;
    assert_eq!(first["changes"]["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(first["changes"]["has_more"], true);
    let cursor = first["changes"]["next_cursor"].clone();
    let second = app
        .backtested(
            json!({"rule_id": loyal, "changes": changes, "changes_limit": 1,
                           "changes_after": cursor}),
        )
        .await;
    assert_eq!(second["changes"]["data"][0], changed[1]);
    assert_eq!(second["changes"]["has_more"], false);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_new_rule_is_backtested_without_a_comparison(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points, _) = loyal_program(&app).await;
    app.purchases(&program, "alice", 2).await;
    app.purchases(&program, "bob", 3).await;
    let rule = json!({"program_id": program, "name": "double", "condition": "event.amount >= 10",
                      "actions": [{"type": "CREDIT", "asset_id": points, "amount": "event.amount * 2"}]});
    let report = app.backtested(json!({"rule": rule})).await;
    assert_eq!(report["rule"]["id"], Value::Null);
    assert_eq!(report["comparison"], Value::Null);
    assert_eq!(report["matched"], 5);
    let outcome = &report["assets"][0];
    assert_eq!(outcome["credited"], "100");
    let spread = &outcome["participants"];
    assert_eq!(
        (
            &spread["count"],
            &spread["sum"],
            &spread["p50"],
            &spread["max"]
        ),
        (&json!(2), &json!("100"), &json!("40"), &json!("60"))
    );
    // No rule was created.
    let rules = app.get(&format!("/rules?program_id={program}")).await.body;
    assert_eq!(rules["data"].as_array().map(Vec::len), Some(2));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_wasm_rule_sees_each_events_balances_as_they_were(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Capped", "PTS").await;
    // 10 points a purchase until the participant holds 30.
    let capped = app
        .wasm_rule(
            &program,
            "purchase-points",
            json!({"asset_id": points, "max_balance": "30"}),
            json!({}),
        )
        .await;
    app.purchases(&program, "alice", 5).await;
    let alice = app.participant_id("alice").await;
    assert_eq!(app.available(&alice, &points).await, "30");
    // Read today, her balance of 30 would stop every purchase: the module pays only with each event's own.
    let report = app.backtested(json!({"rule_id": capped})).await;
    assert!(report["fuel_consumed"].as_u64().unwrap_or(0) > 0);
    assert_eq!(report["assets"][0]["credited"], "30", "{report}");
    assert_eq!(report["comparison"]["amounts_changed"], 0, "{report}");
    assert_eq!(report["changes"]["data"], json!([]));
    // A higher cap would have paid the last two purchases too.
    let raised = app
        .backtested(json!({"rule_id": capped,
                           "changes": {"config": {"asset_id": points, "max_balance": "50"}}}))
        .await;
    assert_eq!(raised["comparison"]["amounts_changed"], 2, "{raised}");
    assert_eq!(raised["comparison"]["assets"][0]["credited_then"], "30");
    assert_eq!(raised["comparison"]["assets"][0]["credited_now"], "50");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_backtest_writes_nothing(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points, loyal) = loyal_program(&app).await;
    app.purchases(&program, "alice", 3).await;
    let before = app.row_counts().await;
    let changes = json!({"actions": [
        {"type": "CREDIT", "asset_id": points, "amount": "7"},
        {"type": "TAG", "tag": "backtested"},
        {"type": "COUNTER", "key": "backtests", "value": "1"}]});
    app.backtested(json!({"rule_id": loyal, "changes": changes}))
        .await;
    assert_eq!(app.row_counts().await, before);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_long_window_is_evaluated_a_call_at_a_time(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, _, loyal) = loyal_program(&app).await;
    app.purchases(&program, "alice", 5).await;
    let first = app.backtested(json!({"rule_id": loyal, "limit": 3})).await;
    assert_eq!(
        (&first["events_evaluated"], &first["complete"]),
        (&json!(3), &json!(false))
    );
    assert_eq!(first["matched"], 1);
    let rest = app
        .backtested(json!({"rule_id": loyal, "limit": 3, "after": first["next_cursor"]}))
        .await;
    assert_eq!(
        (
            &rest["events_evaluated"],
            &rest["complete"],
            &rest["next_cursor"]
        ),
        (&json!(2), &json!(true), &Value::Null)
    );
    assert_eq!(rest["matched"], 2);
    let external = app
        .backtested(json!({"rule_id": loyal, "event_type": "SYSTEM"}))
        .await;
    assert_eq!(external["events_evaluated"], 0);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn bad_backtests_are_refused_with_the_field_named(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points, loyal) = loyal_program(&app).await;
    let r = app
        .post(
            "/rules/backtest",
            json!({"rule_id": loyal, "to": "2026-12-01T00:00:00Z"}),
        )
        .await;
    assert_error("no from", &r, 400, "bad_request", Some("from"));
    let backwards =
        json!({"rule_id": loyal, "from": "2026-12-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"});
    let r = app.post("/rules/backtest", backwards).await;
    assert_error("to before from", &r, 400, "bad_request", Some("to"));
    let rule = json!({"program_id": program, "name": "n", "condition": "true",
                      "actions": [{"type": "CREDIT", "asset_id": points, "amount": "1"}]});
    let r = app.backtest(json!({"rule": rule, "rule_id": loyal})).await;
    assert_error("both", &r, 400, "bad_request", Some("rule_id"));
    let r = app.backtest(json!({})).await;
    assert_error("neither", &r, 400, "bad_request", Some("rule"));
    let r = app
        .backtest(json!({"rule": {"program_id": program, "name": "n", "condition": "event.(",
                                   "actions": [{"type": "CREDIT", "asset_id": points, "amount": "1"}]}}))
        .await;
    assert_error(
        "bad condition",
        &r,
        400,
        "bad_request",
        Some("rule.condition"),
    );
    let r = app
        .backtest(json!({"rule_id": loyal, "changes": {"actions": [{"type": "CREDIT", "asset_id": uuid::Uuid::now_v7(), "amount": "1"}]}}))
        .await;
    assert_error(
        "unknown asset",
        &r,
        400,
        "bad_request",
        Some("changes.actions[0].asset_id"),
    );
    let r = app
        .backtest(json!({"rule_id": loyal, "after": "not-a-cursor"}))
        .await;
    assert_error("bad cursor", &r, 400, "bad_request", Some("after"));
    let r = app
        .backtest(json!({"rule_id": loyal, "limit": 1_000_001}))
        .await;
    assert_error("limit", &r, 400, "bad_request", Some("limit"));
    let r = app.backtest(json!({"rule_id": uuid::Uuid::now_v7()})).await;
    assert_error("unknown rule", &r, 404, "not_found", None);
    let other = app.as_organization("other").await;
    let r = other.backtest(json!({"rule_id": loyal})).await;
    assert_error("another organization's rule", &r, 404, "not_found", None);
    let r = other
        .backtest(
            json!({"rule": {"program_id": program, "name": "n", "condition": "true",
                                   "actions": [{"type": "TAG", "tag": "x"}]}}),
        )
        .await;
    assert_error("another organization's program", &r, 404, "not_found", None);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn scrip_rules_backtest_prints_the_report(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points, loyal) = loyal_program(&app).await;
    app.purchases(&program, "alice", 3).await;
    let changes = std::env::temp_dir().join(format!("backtest-{loyal}.json"));
    let body = json!({"actions": [{"type": "CREDIT", "asset_id": points, "amount": "8"}]});
    std::fs::write(&changes, body.to_string()).expect("changes written");
    let range = window();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_scrip"))
        .args(["rules", "backtest", "--rule", &loyal, "--file"])
        .arg(&changes)
        .args(["--from", range["from"].as_str().unwrap_or_default()])
        .args(["--to", range["to"].as_str().unwrap_or_default()])
        .args(["--limit", "2"])
        .env("SCRIP_URL", app.base.trim_end_matches("/v1"))
        .env("SCRIP_API_KEY", &app.key)
        .output()
        .await
        .expect("scrip runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report["events_evaluated"], 2);
    assert_eq!(report["comparison"]["rule_id"], loyal.as_str());
    let cursor = report["next_cursor"].as_str().expect("more to go");
    assert!(stderr.contains(&format!("--after {cursor}")), "{stderr}");
    let _ = std::fs::remove_file(changes);
}
