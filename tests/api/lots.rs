//! LOT assets: lots created by credits, spent oldest first, expiring and maturing, held and released by
//! reference, transferred as fresh lots, and overdrafts repaid by the next credit.

use crate::common::{TestApp, assert_error, id};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};

fn lots(body: &Value) -> Vec<(Value, Value, Value)> {
    body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["amount"].clone(),
                l["remaining"].clone(),
                l["status"].clone(),
            )
        })
        .collect()
}

/// The action types of the organization's journal entries, newest first.
async fn entry_kinds(app: &TestApp) -> Vec<Value> {
    app.get("/journal-entries").await.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["action_type"].clone())
        .collect()
}

/// A program with an UNLIMITED, scale-0 LOT asset.
async fn program_with_miles(app: &TestApp) -> (String, String) {
    let program = id(&app.created("/programs", json!({"name": "Miles"})).await);
    let miles = id(&app
        .created(
            "/assets",
            json!({"program_id": program, "name": "Miles", "symbol": "MI",
        "inventory_mode": "LOT", "issuance_policy": "UNLIMITED", "scale": 0}),
        )
        .await);
    (program, miles)
}

async fn send(app: &TestApp, program: &str, key: &str, kind: &str, points: i64) -> Value {
    let event = app
        .event(program, "lou", key, json!({"kind": kind, "points": points}))
        .await;
    app.processed(&event).await
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn lots_are_spent_oldest_first_expire_and_mature(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, miles) = program_with_miles(&app).await;
    let credit = |extra: Value| {
        let mut action = json!({"type": "CREDIT", "asset_id": miles, "amount": "event.points"});
        if let (Some(a), Some(e)) = (action.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        json!([action])
    };
    app.rule(&program, "long", "event.kind == 'long'", credit(json!({})))
        .await;
    app.rule(
        &program,
        "short",
        "event.kind == 'short'",
        credit(json!({"expires_at": "700ms"})),
    )
    .await;
    app.rule(
        &program,
        "vesting",
        "event.kind == 'vest'",
        credit(json!({"matures_at": "700ms"})),
    )
    .await;
    app.rule(
        &program,
        "spend",
        "event.kind == 'spend'",
        json!([{"type": "DEBIT", "asset_id": miles, "amount": "event.points"}]),
    )
    .await;
    for (n, (kind, points)) in [("long", 50), ("short", 30), ("vest", 20), ("spend", 40)]
        .into_iter()
        .enumerate()
    {
        let done = send(&app, &program, &format!("e{n}"), kind, points).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }
    let lou = app.participant_id("lou").await;
    let lots_path = format!("/participants/{lou}/balances/lots?asset_id={miles}");
    assert_eq!(
        lots(&app.get(&lots_path).await.body),
        [
            (json!("50"), json!("10"), json!("AVAILABLE")),
            (json!("30"), json!("30"), json!("AVAILABLE")),
            (json!("20"), json!("20"), json!("DEFERRED")),
        ],
        "the spend took the oldest lot first"
    );
    let balance = |body: Value| body["data"][0].clone();
    assert_eq!(
        balance(app.get(&format!("/participants/{lou}/balances")).await.body),
        json!({"asset_id": miles, "available": "40", "held": "0", "deferred": "20"})
    );

    // The background job expires the short lot and matures the vesting one.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = balance(app.get(&format!("/participants/{lou}/balances")).await.body);
        if now["available"] == "30" && now["deferred"] == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "lots did not expire and mature: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        lots(&app.get(&lots_path).await.body)[1],
        (json!("30"), json!("0"), json!("EXPIRED"))
    );
    let kinds = entry_kinds(&app).await;
    assert!(
        kinds.contains(&json!("EXPIRATION")) && kinds.contains(&json!("MATURITY")),
        "{kinds:?}"
    );
    assert_eq!(
        scrip::movement::due::run_once(&app.pool)
            .await
            .expect("rerun"),
        0,
        "a rerun finds nothing left to do"
    );
    let refused = send(&app, &program, "e-late-spend", "spend", 35).await;
    assert_eq!(
        refused["error_message"], "action DEBIT failed: insufficient balance",
        "expired value is never spent"
    );

    // A hold splits what it needs from the oldest lots and stamps them; a release by reference returns them.
    let base = format!("/participants/{lou}/balances");
    let op = |extra: Value| {
        let mut body = json!({"program_id": program, "asset_id": miles, "description": "test"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };
    let held = app
        .post(
            &format!("{base}/hold"),
            op(json!({"amount": "25", "reference_id": "order-9"})),
        )
        .await;
    assert_eq!(held.status.as_u16(), 200, "{}", held.body);
    let processed: Vec<Value> = held.body["lots_processed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["amount"].clone())
        .collect();
    assert_eq!(processed, [json!("10"), json!("15")]);
    assert_eq!(
        held.body["balance"],
        json!({"available": "5", "held": "25", "deferred": "0"})
    );
    let stamped = app
        .get(&format!("{lots_path}&reference_id=order-9&status=HELD"))
        .await
        .body;
    assert_eq!(stamped["data"].as_array().map(Vec::len), Some(2));
    let released = app
        .post(
            &format!("{base}/release"),
            op(json!({"reference_id": "order-9"})),
        )
        .await;
    assert_eq!(
        (
            released.body["amount_processed"].clone(),
            released.body["balance"]["available"].clone()
        ),
        (json!("25"), json!("30"))
    );
    assert_error(
        "release more than held",
        &app.post(&format!("{base}/release"), op(json!({"amount": "1"})))
            .await,
        422,
        "insufficient_balance",
        None,
    );
    // Lots can be picked by id or by when they were earned.
    let available: Vec<Value> =
        app.get(&format!("{lots_path}&status=AVAILABLE")).await.body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
    let newest = available.last().cloned().unwrap_or_default();
    let picked = app
        .post(
            &format!("{base}/hold"),
            op(json!({"lot_ids": [newest["id"]], "idempotency_key": "pick-1"})),
        )
        .await;
    assert_eq!(
        picked.body["lots_processed"],
        json!([{"id": newest["id"], "amount": newest["remaining"]}]),
        "{}",
        picked.body
    );
    let none_earned = app
        .post(
            &format!("{base}/release"),
            op(json!({"earned_from": "2000-01-01T00:00:00Z", "earned_to": "2000-12-31T00:00:00Z"})),
        )
        .await;
    assert_error(
        "nothing earned in 2000",
        &none_earned,
        422,
        "insufficient_balance",
        None,
    );
    let all_earned = app
        .post(
            &format!("{base}/release"),
            op(json!({"earned_from": "2000-01-01T00:00:00Z", "earned_to": "2100-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(all_earned.body["amount_processed"], newest["remaining"]);
    let forfeited = app
        .post(
            &format!("{base}/forfeit"),
            op(json!({"bucket": "AVAILABLE", "amount": "5"})),
        )
        .await;
    assert_eq!(forfeited.body["balance"]["available"], "25");

    // A transfer spends the sender's lots and mints a fresh lot for the recipient.
    app.created("/participants", json!({"external_id": "kim"}))
        .await;
    let sent = app
        .post(
            "/transfers",
            json!({"program_id": program, "asset_id": miles, "description": "gift",
        "source_external_id": "lou", "recipients": [{"external_id": "kim", "amount": "10"}]}),
        )
        .await;
    assert_eq!(sent.status.as_u16(), 201, "{}", sent.body);
    let kim = app.participant_id("kim").await;
    let kim_lots = app
        .get(&format!(
            "/participants/{kim}/balances/lots?asset_id={miles}"
        ))
        .await
        .body;
    assert_eq!(
        lots(&kim_lots),
        [(json!("10"), json!("10"), json!("AVAILABLE"))]
    );
    assert_eq!(kim_lots["data"][0]["expires_at"], Value::Null);

    // An overdraft consumes every lot; the next credit repays it before it makes a lot.
    let clawed = app
        .post(
            &format!("{base}/adjust"),
            op(json!({"type": "DEBIT", "amount": "100", "allow_negative": true})),
        )
        .await;
    assert_eq!(clawed.body["balance"]["available"], "-85");
    let repaid = send(&app, &program, "e-repay", "long", 90).await;
    assert_eq!(repaid["status"], "COMPLETED");
    let all = app.get(&format!("{lots_path}&limit=200")).await.body;
    assert_eq!(
        lots(&all).last(),
        Some(&(json!("90"), json!("5"), json!("AVAILABLE")))
    );
    assert_eq!(
        balance(app.get(&format!("/participants/{lou}/balances")).await.body)["available"],
        "5"
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn lot_fields_need_a_lot_asset(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Simple", "PTS").await;
    let rule = |action: Value| json!({"program_id": program, "name": "r", "condition": "true", "actions": [action]});
    let on_simple = app
        .post(
            "/rules",
            rule(json!({"type": "CREDIT", "asset_id": points, "amount": "1", "expires_at": "24h"})),
        )
        .await;
    assert_error(
        "expires_at on SIMPLE",
        &on_simple,
        400,
        "bad_request",
        Some("actions[0].asset_id"),
    );
    let bad_date = app.post("/rules", rule(json!({"type": "CREDIT", "asset_id": points, "amount": "1", "matures_at": "next week"}))).await;
    assert_error(
        "bad matures_at",
        &bad_date,
        400,
        "bad_request",
        Some("actions[0].matures_at"),
    );
    let pid = id(&app
        .created("/participants", json!({"external_id": "s"}))
        .await);
    let lots = app.get(&format!("/participants/{pid}/balances/lots")).await;
    assert_error(
        "lots need asset_id",
        &lots,
        400,
        "bad_request",
        Some("asset_id"),
    );
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn provisional_accruals_settle_or_void_and_rules_hold_release_and_forfeit(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, cash) = app.program_with_asset("Card", "CB", "LOT", 2).await;
    let on = |kind: &str| format!("event.kind == '{kind}'");
    app.rule(
        &program,
        "auth",
        &on("auth"),
        json!([{"type": "CREDIT", "asset_id": cash, "amount": "event.amount",
        "bucket": "HELD", "reference_id": "event.auth_id"}]),
    )
    .await;
    app.rule(
        &program,
        "settle",
        &on("settle"),
        json!([{"type": "CREDIT", "asset_id": cash, "amount": "event.amount",
        "reference_id": "event.auth_id"}]),
    )
    .await;
    app.rule(
        &program,
        "void",
        &on("void"),
        json!([{"type": "VOID_HOLD", "asset_id": cash, "reference_id": "event.auth_id"}]),
    )
    .await;
    app.rule(&program, "hold", &on("hold"), json!([{"type": "HOLD", "asset_id": cash, "amount": "event.amount", "reference_id": "event.order"}])).await;
    app.rule(
        &program,
        "release",
        &on("release"),
        json!([{"type": "RELEASE", "asset_id": cash, "reference_id": "event.order"}]),
    )
    .await;
    app.rule(&program, "forfeit", &on("forfeit"), json!([{"type": "FORFEIT", "asset_id": cash, "amount": "event.amount", "bucket": "AVAILABLE"}])).await;
    let mut n = 0;
    let mut events = Vec::new();
    for (kind, data) in [
        ("auth", json!({"auth_id": "A1", "amount": 10})),
        ("settle", json!({"auth_id": "A1", "amount": 12.5})),
        ("auth", json!({"auth_id": "A2", "amount": 5})),
        ("void", json!({"auth_id": "A2"})),
        ("hold", json!({"order": "O1", "amount": 2.5})),
        ("release", json!({"order": "O1"})),
        ("forfeit", json!({"amount": 1})),
        ("auth", json!({"auth_id": "A3", "amount": 3})),
    ] {
        n += 1;
        let mut data = data;
        data["kind"] = json!(kind);
        let done = app
            .processed(
                &app.event(&program, "cardholder", &format!("c{n}"), data)
                    .await,
            )
            .await;
        assert_eq!(done["status"], "COMPLETED", "{kind}: {done}");
        events.push(done);
    }
    let settle = &events[1]["rule_evaluations"][1]["results"][0];
    assert_eq!(
        settle["settle"],
        json!({"held_amount": "10.00", "delta": "2.50"})
    );
    let holder = app.participant_id("cardholder").await;
    assert_eq!(
        app.available_and_held(&holder).await,
        (json!("11.50"), json!("3.00"))
    );
    let impact = app
        .get(&format!(
            "/events/{}/impact",
            events[3]["id"].as_str().unwrap_or("")
        ))
        .await
        .body;
    assert_eq!(impact["journal_entries"][0]["action_type"], "VOID_HOLD");
    // Each entry a rule wrote about an accrual carries its reference: the accrual, its settlement, its void.
    let of_reference = |reference: &str| {
        let path = format!("/journal-entries?program_id={program}&reference_id={reference}");
        let app = &app;
        async move {
            let entries = app.get(&path).await.body;
            let mut types: Vec<String> = entries["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["action_type"].as_str().unwrap_or_default().to_owned())
                .collect();
            types.sort();
            types
        }
    };
    assert_eq!(of_reference("A1").await, ["CREDIT", "CREDIT"]);
    assert_eq!(of_reference("A2").await, ["CREDIT", "VOID_HOLD"]);
    assert_eq!(of_reference("O1").await, ["HOLD", "RELEASE"]);

    // The API voids the last provisional accrual; a hold of earned value is not provisional and is untouched.
    let base = format!("/participants/{holder}/balances");
    let body = |reference: &str| json!({"program_id": program, "asset_id": cash, "description": "merchant void", "reference_id": reference});
    let voided = app.post(&format!("{base}/void-hold"), body("A3")).await;
    assert_eq!(
        (
            voided.status.as_u16(),
            voided.body["amount_processed"].clone()
        ),
        (200, json!("3.00")),
        "{}",
        voided.body
    );
    app.post(
        &format!("{base}/hold"),
        json!({"program_id": program, "asset_id": cash, "description": "fraud review",
        "amount": "1.50", "reference_id": "R1"}),
    )
    .await;
    assert_error(
        "void a plain hold",
        &app.post(&format!("{base}/void-hold"), body("R1")).await,
        422,
        "insufficient_balance",
        None,
    );
    assert_error(
        "void-hold takes no amount",
        &app.post(
            &format!("{base}/void-hold"),
            json!({"program_id": program,
        "asset_id": cash, "description": "x", "reference_id": "R1", "amount": "1"}),
        )
        .await,
        400,
        "bad_request",
        Some("amount"),
    );

    let (simple_program, points) = app.program_with_points("Plain", "PTS").await;
    let rule = |action: Value| json!({"program_id": simple_program, "name": "r", "condition": "true", "actions": [action]});
    assert_error(
        "VOID_HOLD on SIMPLE",
        &app.post(
            "/rules",
            rule(json!({"type": "VOID_HOLD", "asset_id": points, "reference_id": "x"})),
        )
        .await,
        400,
        "bad_request",
        Some("actions[0].asset_id"),
    );
    assert_error(
        "FORFEIT needs a bucket",
        &app.post(
            "/rules",
            rule(json!({"type": "FORFEIT", "asset_id": points})),
        )
        .await,
        400,
        "bad_request",
        Some("actions[0].bucket"),
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

/// A server without workers and a program whose rule credits `event.points` miles in lots that expire after
/// `expiry`.
async fn earning_miles(connect: PgConnectOptions, expiry: &str) -> (TestApp, String, String) {
    let app = TestApp::spawn_without_workers(connect).await;
    let (program, miles) = program_with_miles(&app).await;
    app.rule(
        &program,
        "earn",
        "true",
        json!([{"type": "CREDIT", "asset_id": miles, "amount": "event.points", "expires_at": expiry}]),
    )
    .await;
    (app, program, miles)
}

/// A LOT credit to a holder with a lot already due is not deferred with the batch: the due lot expires first,
/// in the credit's own transaction, even where no background pass runs (a server without workers has none).
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_lot_credit_expires_its_holders_due_lot_before_crediting(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (app, program, miles) = earning_miles(connect, "1s").await;
    app.event(&program, "ann", "ann-0", json!({"points": 10}))
        .await;
    assert_eq!(app.process_batch().await.finished, 1);
    let ann = app.participant_id("ann").await;
    // Past the expiry by more than the background pass's poll, so one running would have expired it.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let path = format!("/participants/{ann}/balances/lots?asset_id={miles}");
    assert_eq!(
        lots(&app.get(&path).await.body),
        [(json!("10"), json!("10"), json!("AVAILABLE"))],
        "nothing expires the lot in the background"
    );

    app.event(&program, "ann", "ann-1", json!({"points": 20}))
        .await;
    assert_eq!(app.process_batch().await.finished, 1);
    assert_eq!(
        lots(&app.get(&path).await.body),
        [
            (json!("10"), json!("0"), json!("EXPIRED")),
            (json!("20"), json!("20"), json!("AVAILABLE")),
        ]
    );
    assert_eq!(app.available(&ann, &miles).await, "20");
    let kinds = entry_kinds(&app).await;
    assert_eq!(
        kinds,
        [json!("CREDIT"), json!("EXPIRATION"), json!("CREDIT")],
        "newest first"
    );
    let entries = &app.get("/journal-entries").await.body["data"];
    assert_eq!(
        entries[0]["created_at"], entries[1]["created_at"],
        "the expiry and the credit commit together: {entries}"
    );
    assert!(entries[0]["created_at"].is_string(), "{entries}");
    assert_ne!(
        entries[1]["created_at"], entries[2]["created_at"],
        "{entries}"
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

/// LOT credits in one worker batch: a holder with nothing to settle gets its lots with the batch's other
/// writes, an overdrawn holder's credit still repays the overdraft first, and a failed event leaves no lot.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn lot_credits_of_one_batch_repay_overdrafts_and_leave_nothing_when_they_fail(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let (app, program, miles) = earning_miles(connect, "24h").await;
    app.rule(
        &program,
        "broken",
        "event.fail",
        json!([{"type": "CREDIT", "asset_id": miles, "amount": "event.missing"}]),
    )
    .await;
    let earn = |points: i64, fail: bool| json!({"points": points, "fail": fail});
    for who in ["ann", "bob"] {
        app.event(&program, who, &format!("{who}-0"), earn(10, false))
            .await;
    }
    assert_eq!(app.process_batch().await.finished, 2);
    let (ann, bob) = (
        app.participant_id("ann").await,
        app.participant_id("bob").await,
    );
    let overdraw = json!({"program_id": program, "asset_id": miles, "description": "clawback", "type": "DEBIT",
                          "amount": "15", "allow_negative": true});
    let clawed = app
        .post(&format!("/participants/{bob}/balances/adjust"), overdraw)
        .await;
    assert_eq!(clawed.body["balance"]["available"], "-5", "{}", clawed.body);

    for (who, key, points, fail) in [
        ("ann", "ann-1", 20, false),
        ("bob", "bob-1", 20, false),
        ("ann", "ann-2", 40, true),
        ("ann", "ann-3", 30, false),
    ] {
        app.event(&program, who, key, earn(points, fail)).await;
    }
    let batch = app.process_batch().await;
    assert_eq!((batch.claimed, batch.finished), (4, 4), "one batch");
    let lots_of = |participant: &str| {
        let path = format!("/participants/{participant}/balances/lots?asset_id={miles}");
        let app = &app;
        async move { app.get(&path).await.body }
    };
    let ann_lots = lots_of(&ann).await;
    assert_eq!(
        lots(&ann_lots),
        [
            (json!("10"), json!("10"), json!("AVAILABLE")),
            (json!("20"), json!("20"), json!("AVAILABLE")),
            (json!("30"), json!("30"), json!("AVAILABLE")),
        ],
        "no lot of the failed event"
    );
    assert!(ann_lots["data"][2]["expires_at"].is_string(), "{ann_lots}");
    assert_eq!(
        lots(&lots_of(&bob).await).last(),
        Some(&(json!("20"), json!("15"), json!("AVAILABLE"))),
        "5 of the credit repaid the overdraft"
    );
    assert_eq!(app.available(&ann, &miles).await, "60");
    assert_eq!(app.available(&bob, &miles).await, "15");
    app.assert_ledger_consistent().await;
    app.stop().await;
}
