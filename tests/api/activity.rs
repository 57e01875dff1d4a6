//! Program activity (E119) against hand-computed values.

use crate::common::{TestApp, assert_error, id};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn rows(body: &Value) -> Vec<Value> {
    body["data"].as_array().cloned().unwrap_or_default()
}

fn metrics(row: &Value) -> Value {
    json!({
        "program_name": row["program_name"], "event_count": row["event_count"], "journal_count": row["journal_count"],
        "total_issued": row["total_issued"], "total_redeemed": row["total_redeemed"],
        "unique_participants": row["unique_participants"], "asset_count": row["asset_count"],
        "rule_count": row["rule_count"], "tier_count": row["tier_count"], "reward_count": row["reward_count"],
    })
}

fn at(text: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text.as_str().unwrap_or_default())
        .expect("timestamp")
        .with_timezone(&Utc)
}

fn query_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn program_activity_counts_and_sums(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (active, points) = app.program_with_points("Active", "PTS").await;
    app.rule(
        &active,
        "earn",
        "event.type == 'purchase'",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "10"}]),
    )
    .await;
    app.rule(
        &active,
        "spend",
        "event.type == 'redeem'",
        json!([{"type": "DEBIT", "asset_id": points, "amount": "3"}]),
    )
    .await;
    let cash_program = id(&app.created("/programs", json!({"name": "Cash"})).await);
    let usd = id(&app
        .created("/assets", json!({"program_id": cash_program, "name": "Dollars", "symbol": "USD",
                                   "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 2}))
        .await);
    app.rule(
        &cash_program,
        "cashback",
        "true",
        json!([{"type": "CREDIT", "asset_id": usd, "amount": "2.50"}]),
    )
    .await;
    let dormant = id(&app.created("/programs", json!({"name": "Dormant"})).await);

    // Phase A: 5 events in Active (3 purchases, 1 redemption, 1 that matches nothing), 2 in Cash.
    let mut phase_a = Vec::new();
    for (user, kind) in [
        ("u1", "purchase"),
        ("u2", "purchase"),
        ("u1", "purchase"),
        ("u1", "redeem"),
        ("u2", "view"),
    ] {
        phase_a.push(
            app.event(
                &active,
                user,
                &format!("a-{}", phase_a.len()),
                json!({"type": kind}),
            )
            .await,
        );
    }
    for user in ["u4", "u5"] {
        phase_a.push(
            app.event(
                &cash_program,
                user,
                &format!("a-{user}"),
                json!({"type": "purchase"}),
            )
            .await,
        );
    }
    for event in &phase_a {
        assert_eq!(app.processed(event).await["status"], "COMPLETED");
    }
    let latest_a = at(&app.get("/journal-entries?limit=1").await.body["data"][0]["created_at"]);

    // Phase B: two more purchases in Active by a new participant.
    let mut phase_b = Vec::new();
    for n in 0..2 {
        phase_b.push(
            app.event(
                &active,
                "u3",
                &format!("b-{n}"),
                json!({"type": "purchase"}),
            )
            .await,
        );
    }
    for event in &phase_b {
        assert_eq!(app.processed(event).await["status"], "COMPLETED");
    }

    let all = app.get("/reports/program-activity").await;
    assert_eq!(all.status.as_u16(), 200, "{}", all.body);
    let all = rows(&all.body);
    assert_eq!(
        all.iter().map(metrics).collect::<Vec<_>>(),
        vec![
            json!({"program_name": "Active", "event_count": 7, "journal_count": 6, "total_issued": "50",
               "total_redeemed": "3", "unique_participants": 3, "asset_count": 1, "rule_count": 2,
               "tier_count": 0, "reward_count": 0}),
            json!({"program_name": "Cash", "event_count": 2, "journal_count": 2, "total_issued": "5.00",
               "total_redeemed": "0.00", "unique_participants": 2, "asset_count": 1, "rule_count": 1,
               "tier_count": 0, "reward_count": 0}),
            json!({"program_name": "Dormant", "event_count": 0, "journal_count": 0, "total_issued": "0",
               "total_redeemed": "0", "unique_participants": 0, "asset_count": 0, "rule_count": 0,
               "tier_count": 0, "reward_count": 0}),
        ]
    );
    assert_eq!(all[0]["program_id"], active.as_str());
    assert_eq!(all[2]["program_id"], dormant.as_str());
    assert_eq!(all[2]["last_activity_at"], Value::Null);
    let active_entries = app
        .get(&format!("/journal-entries?program_id={active}&limit=1"))
        .await
        .body;
    assert_eq!(
        all[0]["last_activity_at"],
        active_entries["data"][0]["created_at"]
    );
    assert!(at(&all[1]["last_activity_at"]) <= latest_a);

    // `since` keeps only programs active after it, and does not scope the metrics.
    let since = app
        .get(&format!(
            "/reports/program-activity?since={}",
            query_time(latest_a)
        ))
        .await;
    let since = rows(&since.body);
    assert_eq!(since.len(), 1, "{since:?}");
    assert_eq!(since[0]["program_name"], "Active");
    assert_eq!(since[0]["event_count"], 7);
    assert_eq!(since[0]["total_issued"], "50");

    // `from`/`to` scope event_count, total_issued and total_redeemed, and drop programs idle in the window.
    let window = format!(
        "from={}&to=2100-01-01T00:00:00Z",
        query_time(latest_a + Duration::microseconds(1))
    );
    let scoped = rows(
        &app.get(&format!("/reports/program-activity?{window}"))
            .await
            .body,
    );
    assert_eq!(
        scoped.iter().map(metrics).collect::<Vec<_>>(),
        vec![json!({
        "program_name": "Active", "event_count": 2, "journal_count": 6, "total_issued": "20", "total_redeemed": "0",
        "unique_participants": 3, "asset_count": 1, "rule_count": 2, "tier_count": 0, "reward_count": 0})]
    );
    let everything = rows(
        &app.get("/reports/program-activity?from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z")
            .await
            .body,
    );
    let names: Vec<_> = everything
        .iter()
        .map(|r| r["program_name"].clone())
        .collect();
    assert_eq!(names, [json!("Active"), json!("Cash")]);
    assert_eq!(everything[0]["total_redeemed"], "3");

    // One bound alone is a 400 naming the missing one.
    let only_from = app
        .get("/reports/program-activity?from=2000-01-01T00:00:00Z")
        .await;
    assert_error("only from", &only_from, 400, "bad_request", Some("to"));

    // Pagination walks the programs in creation order, one page at a time.
    let mut seen = Vec::new();
    let mut path = "/reports/program-activity?limit=1".to_string();
    loop {
        let page = app.get(&path).await.body;
        let data = rows(&page);
        assert_eq!(data.len(), 1, "{page}");
        seen.push(data[0]["program_name"].clone());
        if page["pagination"]["has_more"] == json!(false) {
            assert_eq!(page["pagination"]["next_cursor"], Value::Null);
            break;
        }
        let cursor = page["pagination"]["next_cursor"]
            .as_str()
            .expect("cursor")
            .to_owned();
        path = format!("/reports/program-activity?limit=1&cursor={cursor}");
    }
    assert_eq!(seen, [json!("Active"), json!("Cash"), json!("Dormant")]);
    let first_two = app.get("/reports/program-activity?limit=2").await.body;
    assert_eq!(rows(&first_two).len(), 2);
    let cursor = first_two["pagination"]["next_cursor"]
        .as_str()
        .expect("cursor");
    let last = app
        .get(&format!(
            "/reports/program-activity?limit=2&cursor={cursor}"
        ))
        .await
        .body;
    assert_eq!(
        rows(&last)
            .iter()
            .map(|r| r["program_name"].clone())
            .collect::<Vec<_>>(),
        [json!("Dormant")]
    );
    assert_eq!(last["pagination"]["has_more"], false);

    app.assert_ledger_consistent().await;
    app.stop().await;
}
