//! Event processing: rule order, stop_after_match, CEL amounts, failures and their atomicity, reads.

use crate::common::{TestApp, id};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn statuses(event: &Value) -> Vec<(String, String)> {
    event["rule_evaluations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["rule_name"].as_str().unwrap_or("").to_owned(),
                e["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

async fn entries_of(app: &TestApp, event_id: &str) -> Vec<Value> {
    app.get(&format!("/journal-entries?event_id={event_id}"))
        .await
        .body["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn rules_run_in_order_and_stop_after_match_skips_the_rest(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Ordered", "PTS").await;
    let credit = |amount: &str| json!([{"type": "CREDIT", "asset_id": points, "amount": amount}]);
    // Created out of order: evaluation follows `order`, not creation.
    let all3 = app.created("/rules", json!({"program_id": program, "name": "three", "condition": "true", "order": 30, "actions": credit("3")})).await;
    let big = app.created("/rules", json!({"program_id": program, "name": "big spender", "condition": "event.amount > 100.0",
        "order": 10, "stop_after_match": true, "actions": credit("1")})).await;
    app.created("/rules", json!({"program_id": program, "name": "two", "condition": "true", "order": 20, "actions": credit("2")})).await;
    let default_order = app.created("/rules", json!({"program_id": program, "name": "last", "condition": "false", "actions": credit("9")})).await;
    app.created(
        "/rules",
        json!({"program_id": program, "name": "expired promo", "condition": "true", "order": 5,
        "active_to": "2020-01-01T00:00:00Z", "actions": credit("100")}),
    )
    .await;
    assert_eq!(
        default_order["order"], 40,
        "omitted order is the highest + 10"
    );
    assert_eq!(all3["order"], 30);

    let stopped = app
        .processed(
            &app.event(&program, "ada", "e-big", json!({"amount": 150.0}))
                .await,
        )
        .await;
    assert_eq!(stopped["status"], "COMPLETED");
    assert_eq!(
        stopped["rule_evaluations"][0]["reason"],
        "OUTSIDE_TIME_WINDOW"
    );
    assert_eq!(
        statuses(&stopped),
        pairs(&[
            ("expired promo", "SKIPPED"),
            ("big spender", "SUCCESS"),
            ("two", "SKIPPED"),
            ("three", "SKIPPED"),
            ("last", "SKIPPED")
        ])
    );
    for skipped in &stopped["rule_evaluations"]
        .as_array()
        .cloned()
        .unwrap_or_default()[2..]
    {
        assert_eq!(skipped["reason"], "STOPPED_BY_RULE");
        assert_eq!(skipped["stopped_by_rule_id"], big["id"]);
    }
    let ada = app.participant_id("ada").await;
    assert_eq!(app.available(&ada, &points).await, "1");

    let flowed = app
        .processed(
            &app.event(&program, "ada", "e-small", json!({"amount": 50}))
                .await,
        )
        .await;
    assert_eq!(
        statuses(&flowed),
        pairs(&[
            ("expired promo", "SKIPPED"),
            ("big spender", "NO_MATCH"),
            ("two", "SUCCESS"),
            ("three", "SUCCESS"),
            ("last", "NO_MATCH")
        ])
    );
    assert_eq!(app.available(&ada, &points).await, "6");
    assert_eq!(
        entries_of(&app, &id(&flowed)).await.len(),
        2,
        "one entry per executed action"
    );

    // A clash of `order` among active rules is a conflict; a suspended rule frees its slot.
    let two_id = id(&app.get(&format!("/rules?program_id={program}")).await.body["data"][2]);
    assert_eq!(
        app.patch(&format!("/rules/{two_id}"), json!({"order": 10}))
            .await
            .status
            .as_u16(),
        409
    );
    let suspended = app
        .patch(
            &format!("/rules/{}", id(&big)),
            json!({"status": "SUSPENDED"}),
        )
        .await;
    assert_eq!(suspended.body["status"], "SUSPENDED");
    let moved = app
        .patch(&format!("/rules/{two_id}"), json!({"order": 10}))
        .await;
    assert_eq!(moved.body["order"], 10, "{}", moved.body);
    let listed: Vec<_> = app.get(&format!("/rules?program_id={program}")).await.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["name"].clone(), r["order"].clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (json!("expired promo"), json!(5)),
            (json!("big spender"), json!(10)),
            (json!("two"), json!(10)),
            (json!("three"), json!(30)),
            (json!("last"), json!(40))
        ]
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_failing_action_fails_the_whole_event_and_leaves_no_trace(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Atomic", "PTS").await;
    app.rule(
        &program,
        "welcome",
        "true",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "10"}]),
    )
    .await;
    app.rule(
        &program,
        "per unit",
        "has(event.units)",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "event.units * 2.0"}]),
    )
    .await;

    let failed = app
        .processed(
            &app.event(&program, "bob", "e1", json!({"units": 1.25}))
                .await,
        )
        .await;
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(
        failed["error_message"],
        "action CREDIT failed: amount exceeds asset scale"
    );
    assert_eq!(
        statuses(&failed),
        pairs(&[("welcome", "SUCCESS"), ("per unit", "FAILED")])
    );
    assert_eq!(
        failed["rule_evaluations"][0]["results"][0]["journal_entry_id"],
        Value::Null,
        "no link to a rolled-back entry"
    );
    assert_eq!(failed["rule_evaluations"][0]["results"][0]["amount"], "10");
    assert!(
        entries_of(&app, &id(&failed)).await.is_empty(),
        "the first rule's credit was rolled back"
    );
    let nobody = app.get("/participants?external_id=bob").await;
    assert_eq!(
        nobody.body["data"],
        json!([]),
        "not even the participant was created"
    );

    let completed = app
        .processed(
            &app.event(&program, "bob", "e2", json!({"units": 2.5}))
                .await,
        )
        .await;
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!(
        completed["rule_evaluations"][1]["results"][0]["amount"],
        "5"
    );
    let bob = app.participant_id("bob").await;
    assert_eq!(app.available(&bob, &points).await, "15");
    assert_eq!(completed["participant_id"], bob.as_str());

    // A missing field makes a condition false, not an error; the event completes.
    let missing = app
        .processed(
            &app.event(&program, "bob", "e3", json!({"other": true}))
                .await,
        )
        .await;
    assert_eq!(
        statuses(&missing),
        pairs(&[("welcome", "SUCCESS"), ("per unit", "NO_MATCH")])
    );
    assert_eq!(app.available(&bob, &points).await, "25");
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn debits_need_balance_unless_overdraft_is_allowed(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Spend", "PTS").await;
    app.rule(
        &program,
        "earn",
        "event.type == 'earn'",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "10"}]),
    )
    .await;
    app.rule(
        &program,
        "spend",
        "event.type == 'spend'",
        json!([{"type": "DEBIT", "asset_id": points, "amount": "event.points"}]),
    )
    .await;
    app.rule(
        &program,
        "clawback",
        "event.type == 'claw'",
        json!([{"type": "DEBIT", "asset_id": points, "amount": "100", "allow_negative": true}]),
    )
    .await;

    app.processed(
        &app.event(&program, "cy", "earn", json!({"type": "earn"}))
            .await,
    )
    .await;
    let spent = app
        .processed(
            &app.event(
                &program,
                "cy",
                "spend-4",
                json!({"type": "spend", "points": 4}),
            )
            .await,
        )
        .await;
    assert_eq!(spent["status"], "COMPLETED");
    let cy = app.participant_id("cy").await;
    assert_eq!(app.available(&cy, &points).await, "6");
    let entry = &entries_of(&app, &id(&spent)).await[0];
    assert_eq!(entry["action_type"], "DEBIT");
    let postings: Vec<_> = entry["postings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["entity_type"].clone(), p["amount"].clone()))
        .collect();
    assert_eq!(
        postings,
        [
            (json!("PARTICIPANT"), json!("-4")),
            (json!("SYSTEM_ISSUANCE"), json!("4"))
        ]
    );

    let refused = app
        .processed(
            &app.event(
                &program,
                "cy",
                "spend-7",
                json!({"type": "spend", "points": 7}),
            )
            .await,
        )
        .await;
    assert_eq!(refused["status"], "FAILED");
    assert_eq!(
        refused["error_message"],
        "action DEBIT failed: insufficient balance"
    );
    assert_eq!(app.available(&cy, &points).await, "6");

    let clawed = app
        .processed(
            &app.event(&program, "cy", "claw", json!({"type": "claw"}))
                .await,
        )
        .await;
    assert_eq!(clawed["status"], "COMPLETED");
    assert_eq!(app.available(&cy, &points).await, "-94");
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn participants_recipients_and_program_policies(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let program = id(&app
        .created(
            "/programs",
            json!({"name": "Invite only", "on_unknown_participant": "REJECT"}),
        )
        .await);
    let points = id(&app.created("/assets", json!({"program_id": program, "name": "Points", "symbol": "PTS",
        "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0, "max_transaction_amount": "50"})).await);
    app.rule(
        &program,
        "earn",
        "true",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "event.points"}]),
    )
    .await;

    let rejected = app
        .processed(
            &app.event(&program, "stranger", "r1", json!({"points": 5}))
                .await,
        )
        .await;
    assert_eq!(rejected["status"], "FAILED");
    assert!(
        rejected["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("stranger") && m.contains("rejects")),
        "{rejected}"
    );
    assert_eq!(
        app.get("/participants?external_id=stranger").await.body["data"],
        json!([])
    );

    // Created first, the participant earns; an upsert with the same external_id updates it (200).
    let created = app
        .post(
            "/participants",
            json!({"external_id": "dee", "email": "dee@example.com", "tags": ["VIP", "vip"],
        "attributes": {"region": "eu"}}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.body);
    assert_eq!(created.body["tags"], json!(["vip"]));
    let updated = app
        .post(
            "/participants",
            json!({"external_id": "dee", "first_name": "Dee", "attributes": {"plan": "gold"}}),
        )
        .await;
    assert_eq!(updated.status.as_u16(), 200);
    assert_eq!(updated.body["id"], created.body["id"]);
    assert_eq!(updated.body["email"], "dee@example.com");
    assert_eq!(
        updated.body["attributes"],
        json!({"region": "eu", "plan": "gold"})
    );
    let dee = id(&created.body);
    let by_id = json!({"program_id": program, "participant_id": dee, "idempotency_key": "r2", "event_data": {"points": 5}});
    let earned = app
        .processed(&id(&app.post("/events", by_id).await.body))
        .await;
    assert_eq!(earned["status"], "COMPLETED");

    // Rewards go to the recipient when one is named; the recipient must exist under REJECT.
    let gift = json!({"program_id": program, "external_id": "dee", "recipient_external_id": "eve", "idempotency_key": "r3",
                      "event_data": {"points": 7}});
    let no_recipient = app
        .processed(&id(&app.post("/events", gift).await.body))
        .await;
    assert_eq!(no_recipient["status"], "FAILED");
    let eve = id(&app
        .created("/participants", json!({"external_id": "eve"}))
        .await);
    let gift = json!({"program_id": program, "external_id": "dee", "recipient_id": eve, "idempotency_key": "r4",
                      "event_data": {"points": 7}});
    assert_eq!(
        app.processed(&id(&app.post("/events", gift).await.body))
            .await["status"],
        "COMPLETED"
    );
    assert_eq!(app.available(&dee, &points).await, "5");
    assert_eq!(app.available(&eve, &points).await, "7");
    let detail = app.get(&format!("/participants/{eve}")).await.body;
    assert_eq!(
        detail["program_ids"],
        json!([program]),
        "the event enrolled the recipient"
    );
    assert_eq!(detail["balances"][0]["available"], "7");

    // max_transaction_amount caps one movement.
    let too_big = app
        .processed(
            &app.event(&program, "dee", "r5", json!({"points": 51}))
                .await,
        )
        .await;
    assert_eq!(too_big["status"], "FAILED");
    assert!(
        too_big["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("max_transaction_amount"))
    );

    // A suspended program fails new events; PREFUNDED credits fail on an empty wallet.
    let wallet_asset = id(&app
        .created(
            "/assets",
            json!({"program_id": program, "name": "Funded", "symbol": "FND",
        "inventory_mode": "SIMPLE", "issuance_policy": "PREFUNDED", "scale": 0}),
        )
        .await);
    app.rule(
        &program,
        "funded",
        "event.funded == true",
        json!([{"type": "CREDIT", "asset_id": wallet_asset, "amount": "1"}]),
    )
    .await;
    let unfunded = app
        .processed(
            &app.event(&program, "dee", "r6", json!({"points": 1, "funded": true}))
                .await,
        )
        .await;
    assert_eq!(
        unfunded["error_message"],
        "action CREDIT failed: insufficient program wallet balance"
    );
    app.patch(
        &format!("/programs/{program}"),
        json!({"status": "SUSPENDED"}),
    )
    .await;
    let suspended = app
        .processed(&app.event(&program, "dee", "r7", json!({"points": 1})).await)
        .await;
    assert_eq!(suspended["error_message"], "program is SUSPENDED");
    assert_eq!(app.available(&dee, &points).await, "5");
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn events_and_journal_can_be_read_and_filtered(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Reads", "PTS").await;
    let earn = app
        .rule(
            &program,
            "earn",
            "event.type == 'buy'",
            json!([{"type": "CREDIT", "asset_id": points, "amount": "event.qty"}]),
        )
        .await;
    app.rule(
        &program,
        "broken",
        "int(event.code) > 1",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "1"}]),
    )
    .await;
    let mut ids = Vec::new();
    for (n, (user, qty)) in [("fay", 1), ("gus", 2), ("fay", 3), ("gus", 4), ("fay", 5)]
        .iter()
        .enumerate()
    {
        let body = json!({"program_id": program, "external_id": user, "idempotency_key": format!("buy-{n}"),
                          "event_timestamp": format!("2024-01-0{}T10:00:00Z", n + 1), "event_data": {"type": "buy", "qty": qty, "code": "x"}});
        ids.push(id(&app.post("/events", body).await.body));
    }
    for event in &ids {
        app.processed(event).await;
    }

    // Evaluations that errored are hidden unless asked for.
    let plain = app.get(&format!("/events/{}", ids[0])).await.body;
    assert_eq!(statuses(&plain), pairs(&[("earn", "SUCCESS")]));
    let full = app
        .get(&format!("/events/{}?include_skipped=true", ids[0]))
        .await
        .body;
    assert_eq!(
        statuses(&full),
        pairs(&[("earn", "SUCCESS"), ("broken", "SKIPPED_ERROR")])
    );
    assert!(
        full["rule_evaluations"][1]["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(full["rule_evaluations"][0]["rule_history_id"].is_string());
    let by_key = app
        .get(&format!(
            "/events/by-key?program_id={program}&idempotency_key=buy-2"
        ))
        .await
        .body;
    assert_eq!(by_key["id"], ids[2].as_str());
    assert_eq!(by_key["event_timestamp"], "2024-01-03T10:00:00Z");
    assert_eq!(
        app.get(&format!(
            "/events/by-key?program_id={program}&idempotency_key=nope"
        ))
        .await
        .status
        .as_u16(),
        404
    );

    // Lists: filters AND together; pages follow the cursor.
    let names = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["idempotency_key"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let fay = app
        .get("/events?external_id=fay&sort_by=event_timestamp&sort_dir=asc")
        .await
        .body;
    assert_eq!(names(&fay), ["buy-0", "buy-2", "buy-4"]);
    let window = app.get("/events?event_from=2024-01-02T00:00:00Z&event_to=2024-01-04T23:00:00Z&sort_by=event_timestamp").await.body;
    assert_eq!(names(&window), ["buy-3", "buy-2", "buy-1"]);
    assert_eq!(
        names(
            &app.get(&format!(
                "/events?rule_id={earn}&status=COMPLETED&limit=200"
            ))
            .await
            .body
        )
        .len(),
        5
    );
    assert!(names(&app.get("/events?status=FAILED").await.body).is_empty());
    let mut walked = Vec::new();
    let mut path = "/events?limit=2&sort_by=event_timestamp&sort_dir=asc".to_string();
    loop {
        let page = app.get(&path).await.body;
        walked.extend(names(&page));
        match page["pagination"]["next_cursor"].as_str() {
            Some(cursor) => {
                path =
                    format!("/events?limit=2&sort_by=event_timestamp&sort_dir=asc&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(walked, ["buy-0", "buy-1", "buy-2", "buy-3", "buy-4"]);

    // Journal filters.
    let fay_id = app.participant_id("fay").await;
    let count = |body: Value| body["data"].as_array().map_or(0, Vec::len);
    assert_eq!(
        count(
            app.get(&format!("/journal-entries?participant_id={fay_id}"))
                .await
                .body
        ),
        3
    );
    assert_eq!(
        count(app.get("/journal-entries?external_id=gus").await.body),
        2
    );
    assert_eq!(
        count(app.get("/journal-entries?min_amount=3").await.body),
        3,
        "signed posting amounts 3, 4, 5"
    );
    assert_eq!(
        count(app.get("/journal-entries?max_amount=-4").await.body),
        2,
        "issuance postings -4 and -5"
    );
    assert_eq!(count(app.get(&format!("/journal-entries?rule_id={earn}&action_type=CREDIT&bucket=AVAILABLE&asset_id={points}")).await.body), 5);
    assert_eq!(
        count(app.get("/journal-entries?action_type=DEBIT").await.body),
        0
    );
    let first = app
        .get(&format!("/journal-entries?event_id={}", ids[1]))
        .await
        .body["data"][0]
        .clone();
    let one = app
        .get(&format!("/journal-entries/{}", id(&first)))
        .await
        .body;
    assert_eq!(one, first);
    assert_eq!(one["program_name"], "Reads");
    assert_eq!(one["rule_id"], earn.as_str());

    // A new rule version is recorded on later evaluations.
    app.patch(
        &format!("/rules/{earn}"),
        json!({"condition": "event.type == 'buy' && event.qty > 0.0"}),
    )
    .await;
    let later = app
        .processed(
            &app.event(
                &program,
                "fay",
                "buy-later",
                json!({"type": "buy", "qty": 1, "code": "x"}),
            )
            .await,
        )
        .await;
    assert_ne!(
        later["rule_evaluations"][0]["rule_history_id"],
        plain["rule_evaluations"][0]["rule_history_id"]
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn failed_attempts_are_retried_then_failed_events_can_be_retried_by_hand(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let program = id(&app
        .created(
            "/programs",
            json!({"name": "Strict", "on_unknown_participant": "REJECT"}),
        )
        .await);
    let points = id(&app
        .created(
            "/assets",
            json!({"program_id": program, "name": "Points", "symbol": "PTS",
        "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0}),
        )
        .await);
    app.rule(
        &program,
        "earn",
        "true",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "10"}]),
    )
    .await;

    let event = app.event(&program, "late", "l1", json!({})).await;
    let failed = app.processed(&event).await;
    assert_eq!(failed["status"], "FAILED");
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM events")
        .fetch_one(&app.pool)
        .await
        .expect("attempts");
    assert_eq!(attempts, 6, "the first attempt and five automatic retries");
    assert!(failed["processed_at"].is_string());

    // Once the cause is fixed, a manual retry processes it; nothing else can be retried.
    app.created("/participants", json!({"external_id": "late"}))
        .await;
    let retried = app.post(&format!("/events/{event}/retry"), json!({})).await;
    assert_eq!(retried.status.as_u16(), 200, "{}", retried.body);
    assert_eq!(retried.body["status"], "PENDING");
    assert_eq!(retried.body["previous_status"], "FAILED");
    assert_eq!(retried.body["message"], "Event queued for retry");
    assert!(
        retried.body["previous_error"]
            .as_str()
            .is_some_and(|e| e.contains("late"))
    );
    let completed = app.processed(&event).await;
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!(
        completed["rule_evaluations"].as_array().map(Vec::len),
        Some(1),
        "only the latest attempt's evaluations"
    );
    let late = app.participant_id("late").await;
    assert_eq!(app.available(&late, &points).await, "10");
    let again = app.post(&format!("/events/{event}/retry"), json!({})).await;
    assert_eq!(
        (again.status.as_u16(), again.body["code"].clone()),
        (409, json!("conflict"))
    );
    assert_eq!(
        app.post(
            &format!("/events/{}/retry", uuid::Uuid::now_v7()),
            json!({})
        )
        .await
        .status
        .as_u16(),
        404
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn impact_shows_what_an_event_caused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Impact", "PTS").await;
    let rule = app
        .rule(
            &program,
            "earn",
            "true",
            json!([
        {"type": "CREDIT", "asset_id": points, "amount": "10"},
        {"type": "DEBIT", "asset_id": points, "amount": "3"},
        {"type": "TAG", "tag": "active"},
        {"type": "COUNTER", "key": "events"}]),
        )
        .await;
    let event = app.event(&program, "ivy", "i1", json!({})).await;
    app.processed(&event).await;
    let ivy = app.participant_id("ivy").await;
    let impact = app.get(&format!("/events/{event}/impact")).await.body;
    assert_eq!(impact["id"], event.as_str());
    assert_eq!(impact["rule_evaluations"][0]["status"], "SUCCESS");
    assert_eq!(impact["journal_entries"].as_array().map(Vec::len), Some(2));
    let changes: Vec<_> = impact["state_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["state_type"].clone(),
                c["operation"].clone(),
                c["rule_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            (json!("tag"), json!("add"), json!(rule)),
            (json!("counter"), json!("set"), json!(rule))
        ]
    );
    assert_eq!(
        impact["balance_impact"],
        json!([
            {"entity_type": "PARTICIPANT", "entity_id": ivy, "asset_symbol": "PTS", "bucket": "AVAILABLE", "amount": "7"},
            {"entity_type": "SYSTEM_ISSUANCE", "entity_id": null, "asset_symbol": "PTS", "bucket": "AVAILABLE", "amount": "-7"},
        ])
    );
    assert_eq!(
        app.get(&format!("/events/{}/impact", uuid::Uuid::now_v7()))
            .await
            .status
            .as_u16(),
        404
    );
    app.stop().await;
}
