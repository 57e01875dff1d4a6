//! Rule budgets: never overspent under concurrency, periodic roll-over, reset (E94), validation.

use crate::common::{TestApp, assert_error, id, test_options};
use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_budget_is_never_overspent_by_concurrent_events(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect.clone()).await;
    // Two more servers on the same database: six workers race for the budget.
    let mut others = Vec::new();
    for _ in 0..2 {
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .connect_with(connect.clone())
            .await
            .expect("pool");
        others.push(
            scrip::start(pool, "127.0.0.1:0".parse().expect("addr"), test_options(2))
                .await
                .expect("server"),
        );
    }
    let (program, points) = app.program_with_points("Capped", "PTS").await;
    let rule = app
        .created(
            "/rules",
            json!({"program_id": program, "name": "capped", "condition": "true",
            "actions": [{"type": "CREDIT", "asset_id": points, "amount": "10"}],
            "budgets": [{"asset_id": points, "limit": "200"}]}),
        )
        .await;
    assert_eq!(
        rule["budgets"],
        json!([{"asset_id": points, "limit": "200", "consumed": "0", "schedule_type": null,
        "cron_expression": null, "interval": null, "next_reset_at": null}])
    );
    let rule = id(&rule);

    let posts = (0..50).map(|n| {
        app.post(
            "/events",
            json!({"program_id": program, "external_id": format!("u{n}"),
            "idempotency_key": format!("e{n}"), "event_data": {}}),
        )
    });
    let events: Vec<String> = join_all(posts).await.iter().map(|r| id(&r.body)).collect();
    let mut credited = 0;
    let mut suppressed = 0;
    for event in &events {
        let done = app.processed(event).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
        let evaluation = &done["rule_evaluations"][0];
        match (evaluation["status"].as_str(), evaluation["reason"].as_str()) {
            (Some("SUCCESS"), None) => credited += 1,
            (Some("SKIPPED"), Some("BUDGET_EXCEEDED")) => suppressed += 1,
            other => panic!("unexpected evaluation {other:?}: {evaluation}"),
        }
    }
    assert_eq!((credited, suppressed), (20, 30));
    let issued: rust_decimal::Decimal =
        sqlx::query_scalar("SELECT sum(balance) FROM accounts WHERE entity_type = 'PARTICIPANT'")
            .fetch_one(&app.pool)
            .await
            .expect("sum");
    assert_eq!(issued, rust_decimal::Decimal::from(200));
    assert_eq!(
        app.get(&format!("/rules/{rule}")).await.body["budgets"][0]["consumed"],
        "200"
    );

    // A reset refills the budget.
    let reset = app
        .post(
            &format!("/rules/{rule}/reset-budget?asset_id={points}"),
            json!({}),
        )
        .await;
    assert_eq!(reset.status.as_u16(), 200, "{}", reset.body);
    assert_eq!(
        (reset.body["consumed"].clone(), reset.body["limit"].clone()),
        (json!("0"), json!("200"))
    );
    let after = app
        .processed(&app.event(&program, "late", "after-reset", json!({})).await)
        .await;
    assert_eq!(after["rule_evaluations"][0]["status"], "SUCCESS");
    let missing = app
        .post(
            &format!(
                "/rules/{rule}/reset-budget?asset_id={}",
                uuid::Uuid::now_v7()
            ),
            json!({}),
        )
        .await;
    assert_eq!(missing.status.as_u16(), 404);
    for other in others {
        other.stop().await;
    }
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn periodic_budgets_roll_over_and_budgets_are_validated(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Periodic", "PTS").await;
    let rule = id(&app
        .created("/rules", json!({"program_id": program, "name": "per period", "condition": "true",
            "actions": [{"type": "CREDIT", "asset_id": points, "amount": "10"}, {"type": "TAG", "tag": "seen"}],
            "budgets": [{"asset_id": points, "limit": "10", "schedule_type": "INTERVAL", "interval": "2s"}]}))
        .await);
    let statuses = |event: &Value| {
        (
            event["rule_evaluations"][0]["status"].clone(),
            event["rule_evaluations"][0]["reason"].clone(),
        )
    };
    let first = app
        .processed(&app.event(&program, "pam", "p1", json!({})).await)
        .await;
    assert_eq!(statuses(&first), (json!("SUCCESS"), Value::Null));
    let second = app
        .processed(&app.event(&program, "pam", "p2", json!({})).await)
        .await;
    assert_eq!(
        statuses(&second),
        (json!("SUCCESS"), json!("BUDGET_EXCEEDED")),
        "the tag still ran, the credit did not"
    );
    let budget = app.get(&format!("/rules/{rule}")).await.body["budgets"][0].clone();
    assert_eq!(
        (
            budget["consumed"].clone(),
            budget["schedule_type"].clone(),
            budget["interval"].clone()
        ),
        (json!("10"), json!("INTERVAL"), json!("2s"))
    );
    assert!(budget["next_reset_at"].is_string());
    // A period long enough that each step below runs inside one, even on a loaded machine.
    tokio::time::sleep(Duration::from_millis(2050)).await;
    assert_eq!(
        app.get(&format!("/rules/{rule}")).await.body["budgets"][0]["consumed"],
        "0",
        "the period ended"
    );
    let third = app
        .processed(&app.event(&program, "pam", "p3", json!({})).await)
        .await;
    assert_eq!(statuses(&third), (json!("SUCCESS"), Value::Null));
    let pam = app.participant_id("pam").await;
    assert_eq!(app.available(&pam, &points).await, "20");

    // PATCH replaces budgets: a monthly cron budget, then none.
    let monthly = app
        .patch(
            &format!("/rules/{rule}"),
            json!({"budgets": [{"asset_id": points, "limit": "500",
        "schedule_type": "CRON", "cron_expression": "0 0 1 * *"}]}),
        )
        .await;
    assert_eq!(monthly.status.as_u16(), 200, "{}", monthly.body);
    let next = monthly.body["budgets"][0]["next_reset_at"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        next.contains("-01T00:00:00"),
        "next reset on the first of a month, got {next}"
    );
    assert_eq!(
        monthly.body["budgets"][0]["consumed"], "10",
        "consumption carries over when a budget is replaced"
    );
    let none = app
        .patch(&format!("/rules/{rule}"), json!({"budgets": []}))
        .await;
    assert_eq!(none.body["budgets"], json!([]));

    let other = app.created("/assets", json!({"program_id": id(&app.created("/programs", json!({"name": "Other"})).await),
        "name": "Other", "symbol": "OTH", "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0})).await;
    let budget = |b: Value| json!({"budgets": [b]});
    for (body, field) in [
        (
            budget(
                json!({"asset_id": points, "limit": "5", "schedule_type": "CRON", "cron_expression": "every day"}),
            ),
            "budgets[0].cron_expression",
        ),
        (
            budget(
                json!({"asset_id": points, "limit": "5", "schedule_type": "CRON", "cron_expression": "CRON_TZ=UTC 0 0 * * *"}),
            ),
            "budgets[0].cron_expression",
        ),
        (
            budget(json!({"asset_id": points, "limit": "5", "schedule_type": "INTERVAL"})),
            "budgets[0].interval",
        ),
        (
            budget(json!({"asset_id": points, "limit": "5", "interval": "24h"})),
            "budgets[0].schedule_type",
        ),
        (
            budget(json!({"asset_id": points, "limit": "0"})),
            "budgets[0].limit",
        ),
        (budget(json!({"asset_id": points})), "budgets[0].limit"),
        (
            budget(json!({"asset_id": other["id"], "limit": "5"})),
            "budgets[0].asset_id",
        ),
        (
            json!({"budgets": [{"asset_id": points, "limit": "5"}, {"asset_id": points, "limit": "6"}]}),
            "budgets[1].asset_id",
        ),
    ] {
        let r = app.patch(&format!("/rules/{rule}"), body.clone()).await;
        assert_error(&body.to_string(), &r, 400, "bad_request", Some(field));
    }
    let scale = app
        .patch(
            &format!("/rules/{rule}"),
            budget(json!({"asset_id": points, "limit": "5.5"})),
        )
        .await;
    assert_error(
        "limit scale",
        &scale,
        400,
        "invalid_scale",
        Some("budgets[0].limit"),
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}
