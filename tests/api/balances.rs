//! Program wallets (E8–E12), balance operations (E40–E43), history and statements (E45, E48), transfers (E106).

use crate::common::{TestApp, assert_error, id};
use futures::future::join_all;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn amounts(rows: &Value, field: &str) -> Vec<Value> {
    rows["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r[field].clone())
        .collect()
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_program_wallet_funds_prefunded_credits(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let program = id(&app.created("/programs", json!({"name": "Funded"})).await);
    let usd = id(&app
        .created(
            "/assets",
            json!({"program_id": program, "name": "Dollars", "symbol": "USD",
        "inventory_mode": "SIMPLE", "issuance_policy": "PREFUNDED", "scale": 2}),
        )
        .await);
    let pts = id(&app
        .created(
            "/assets",
            json!({"program_id": program, "name": "Points", "symbol": "PTS",
        "inventory_mode": "SIMPLE", "issuance_policy": "UNLIMITED", "scale": 0}),
        )
        .await);
    app.rule(
        &program,
        "cashback",
        "true",
        json!([{"type": "CREDIT", "asset_id": usd, "amount": "25.50"}]),
    )
    .await;

    let funded = app
        .post(
            &format!("/programs/{program}/assets/{usd}/fund"),
            json!({"amount": "100", "description": "Q1 budget"}),
        )
        .await;
    assert_eq!(funded.status.as_u16(), 200, "{}", funded.body);
    assert_eq!(
        (
            funded.body["available"].clone(),
            funded.body["message"].clone()
        ),
        (json!("100.00"), json!("Program funded successfully"))
    );
    for n in 0..3 {
        assert_eq!(
            app.processed(&app.event(&program, "w", &format!("w{n}"), json!({})).await)
                .await["status"],
            "COMPLETED"
        );
    }
    let dry = app
        .processed(&app.event(&program, "w", "w3", json!({})).await)
        .await;
    assert_eq!(
        dry["error_message"],
        "action CREDIT failed: insufficient program wallet balance"
    );
    let burned = app
        .post(
            &format!("/programs/{program}/assets/{usd}/burn"),
            json!({"amount": "20.00"}),
        )
        .await;
    assert_eq!(burned.body["available"], "3.50");
    assert_eq!(
        burned.body["message"],
        "Program balance burned successfully"
    );
    let too_much = app
        .post(
            &format!("/programs/{program}/assets/{usd}/burn"),
            json!({"amount": "10"}),
        )
        .await;
    assert_error(
        "burn beyond the wallet",
        &too_much,
        422,
        "insufficient_balance",
        None,
    );
    // The message names what fell short: the wallet, for a burn as for a rule's credit.
    assert_eq!(
        too_much.body["message"],
        "insufficient program wallet balance"
    );
    // Funding or burning an UNLIMITED asset has no effect, as Scrip documents: nothing is posted.
    let entries_of_pts = format!("/journal-entries?program_id={program}&asset_id={pts}");
    let before = app.get(&entries_of_pts).await.body["data"].clone();
    for verb in ["fund", "burn"] {
        let unlimited = app
            .post(
                &format!("/programs/{program}/assets/{pts}/{verb}"),
                json!({"amount": "10"}),
            )
            .await;
        assert_eq!(
            unlimited.status, 200,
            "{verb} an UNLIMITED asset: {unlimited:?}"
        );
        assert_eq!(unlimited.body["journal_entry_id"], Value::Null);
        assert_eq!(unlimited.body["available"], "0");
        assert!(
            unlimited.body["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("no effect")),
            "{unlimited:?}"
        );
    }
    assert_eq!(
        app.get(&entries_of_pts).await.body["data"],
        before,
        "nothing was posted in the UNLIMITED asset"
    );
    assert_error(
        "fund scale",
        &app.post(
            &format!("/programs/{program}/assets/{usd}/fund"),
            json!({"amount": "1.001"}),
        )
        .await,
        400,
        "invalid_scale",
        Some("amount"),
    );

    let balance = app.get(&format!("/programs/{program}/balance")).await.body;
    assert_eq!(
        balance["data"],
        json!([{"asset_id": usd, "available": "3.50", "held": "0.00", "deferred": "0.00", "issuance_policy": "PREFUNDED"}])
    );
    let history = app
        .get(&format!("/programs/{program}/history?asset_id={usd}"))
        .await
        .body;
    assert_eq!(
        amounts(&history, "action_type"),
        [
            json!("BURN"),
            json!("CREDIT"),
            json!("CREDIT"),
            json!("CREDIT"),
            json!("FUND")
        ]
    );
    assert_eq!(
        amounts(&history, "amount"),
        [
            json!("-20.00"),
            json!("-25.50"),
            json!("-25.50"),
            json!("-25.50"),
            json!("100.00")
        ]
    );
    assert!(
        history["data"][1]["event_id"].is_string()
            && history["data"][1]["event_timestamp"].is_string()
    );
    let statement = app
        .get(&format!("/programs/{program}/statement?asset_id={usd}"))
        .await
        .body;
    assert_eq!(
        (
            statement["opening_balance"].clone(),
            statement["closing_balance"].clone()
        ),
        (json!("0.00"), json!("3.50"))
    );
    assert_eq!(
        amounts(&statement, "running_balance"),
        [
            json!("100.00"),
            json!("74.50"),
            json!("49.00"),
            json!("23.50"),
            json!("3.50")
        ]
    );
    assert_eq!(
        app.get(&format!("/programs/{program}/statement"))
            .await
            .status
            .as_u16(),
        400,
        "asset_id is required"
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn balance_operations_hold_release_forfeit_and_adjust(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Ops", "PTS").await;
    let pid = id(&app
        .created(
            "/participants",
            json!({"external_id": "ops", "program_id": program}),
        )
        .await);
    let base = format!("/participants/{pid}/balances");
    let op = |extra: Value| {
        let mut body = json!({"program_id": program, "asset_id": points, "description": "test"});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        body
    };

    let credited = app
        .post(
            &format!("{base}/adjust"),
            op(json!({"type": "CREDIT", "amount": "100"})),
        )
        .await;
    assert_eq!(credited.status.as_u16(), 200, "{}", credited.body);
    assert_eq!(
        credited.body["balance"],
        json!({"available": "100", "held": "0", "deferred": "0"})
    );
    assert_eq!(credited.body["message"], "Balance adjusted successfully");

    // Ten identical holds racing with one key make one hold.
    let hold = op(json!({"amount": "30", "idempotency_key": "order-7-auth"}));
    let hold_path = format!("{base}/hold");
    let raced = join_all((0..10).map(|_| app.post(&hold_path, hold.clone()))).await;
    assert!(
        raced.iter().all(|r| r.status.as_u16() == 200
            && r.body["journal_entry_id"] == raced[0].body["journal_entry_id"]),
        "{:?}",
        raced.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert_eq!(raced[0].body["operation"], "HOLD");
    assert_eq!(raced[0].body["amount_processed"], "30");
    assert_eq!(raced[0].body["message"], "Processed 30");
    let conflict = app
        .post(
            &format!("{base}/hold"),
            op(json!({"amount": "31", "idempotency_key": "order-7-auth"})),
        )
        .await;
    assert_error(
        "same key, other amount",
        &conflict,
        409,
        "idempotency_conflict",
        None,
    );
    let same_meaning = app
        .post(
            &format!("{base}/hold"),
            op(json!({"amount": "30.000", "idempotency_key": "order-7-auth"})),
        )
        .await;
    assert_eq!(
        same_meaning.body["journal_entry_id"], raced[0].body["journal_entry_id"],
        "trailing zeros do not make another request"
    );
    // Keys are scoped per program, not per operation: the hold's key cannot release.
    assert_error(
        "same key, other operation",
        &app.post(
            &format!("{base}/release"),
            op(json!({"amount": "30", "idempotency_key": "order-7-auth"})),
        )
        .await,
        409,
        "idempotency_conflict",
        None,
    );
    let detail = app.get(&format!("/participants/{pid}")).await.body;
    assert_eq!(
        detail["balances"][0],
        json!({"asset_id": points, "available": "70", "held": "30", "deferred": "0"})
    );

    let released = app.post(&format!("{base}/release"), op(json!({}))).await;
    assert_eq!(
        (
            released.body["amount_processed"].clone(),
            released.body["balance"]["held"].clone()
        ),
        (json!("30"), json!("0"))
    );
    assert_error(
        "nothing held",
        &app.post(&format!("{base}/release"), op(json!({}))).await,
        422,
        "insufficient_balance",
        None,
    );
    let forfeited = app
        .post(
            &format!("{base}/forfeit"),
            op(json!({"bucket": "AVAILABLE", "amount": "10"})),
        )
        .await;
    assert_eq!(forfeited.body["balance"]["available"], "90");
    let entry = app
        .get(&format!(
            "/journal-entries/{}",
            forfeited.body["journal_entry_id"].as_str().unwrap_or("")
        ))
        .await
        .body;
    let postings: Vec<_> = entry["postings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["entity_type"].clone(), p["amount"].clone()))
        .collect();
    assert_eq!(
        postings,
        [
            (json!("PARTICIPANT"), json!("-10")),
            (json!("SYSTEM_BREAKAGE"), json!("10"))
        ]
    );
    assert_error(
        "forfeit needs a bucket",
        &app.post(&format!("{base}/forfeit"), op(json!({}))).await,
        400,
        "bad_request",
        Some("bucket"),
    );
    assert_error(
        "LOT fields",
        &app.post(&format!("{base}/hold"), op(json!({"reference_id": "x"})))
            .await,
        400,
        "bad_request",
        Some("reference_id"),
    );

    assert_error(
        "overdraw",
        &app.post(
            &format!("{base}/adjust"),
            op(json!({"type": "DEBIT", "amount": "200"})),
        )
        .await,
        422,
        "insufficient_balance",
        None,
    );
    let clawback = app
        .post(
            &format!("{base}/adjust"),
            op(json!({"type": "DEBIT", "amount": "200", "allow_negative": true})),
        )
        .await;
    assert_eq!(clawback.body["balance"]["available"], "-110");
    assert_error(
        "scale",
        &app.post(
            &format!("{base}/adjust"),
            op(json!({"type": "CREDIT", "amount": "1.5"})),
        )
        .await,
        400,
        "invalid_scale",
        Some("amount"),
    );

    // Inactive participants can still forfeit; nothing else moves.
    app.patch(
        &format!("/participants/{pid}/status"),
        json!({"status": "CLOSED"}),
    )
    .await;
    assert_error(
        "closed hold",
        &app.post(&format!("{base}/hold"), op(json!({"amount": "1"})))
            .await,
        409,
        "participant_inactive",
        None,
    );
    app.post(
        &format!("{base}/adjust"),
        op(json!({"type": "CREDIT", "amount": "1"})),
    )
    .await;
    let history = app
        .get(&format!(
            "/participants/{pid}/activity/history?bucket=AVAILABLE"
        ))
        .await
        .body;
    assert_eq!(
        amounts(&history, "action_type"),
        [
            json!("DEBIT"),
            json!("FORFEIT"),
            json!("RELEASE"),
            json!("HOLD"),
            json!("CREDIT")
        ]
    );
    let statement = app
        .get(&format!(
            "/participants/{pid}/statement?asset_id={points}&bucket=HELD"
        ))
        .await
        .body;
    assert_eq!(
        (
            statement["bucket"].clone(),
            statement["closing_balance"].clone()
        ),
        (json!("HELD"), json!("0"))
    );
    assert_eq!(
        amounts(&statement, "running_balance"),
        [json!("30"), json!("0")]
    );
    assert_eq!(
        app.get(&format!(
            "/participants/{}/statement?asset_id={points}",
            uuid::Uuid::now_v7()
        ))
        .await
        .status
        .as_u16(),
        404
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn transfers_move_value_atomically(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Gifts", "PTS").await;
    let mut ids = Vec::new();
    for name in ["giver", "r1", "r2"] {
        ids.push(id(&app
            .created("/participants", json!({"external_id": name}))
            .await));
    }
    app.post(
        &format!("/participants/{}/balances/adjust", ids[0]),
        json!({"program_id": program, "asset_id": points,
        "type": "CREDIT", "amount": "100", "description": "seed"}),
    )
    .await;
    let transfer = |recipients: Value, key: &str| {
        json!({"program_id": program, "asset_id": points, "description": "gift",
        "source_external_id": "giver", "recipients": recipients, "idempotency_key": key})
    };

    let sent = app.post("/transfers", transfer(json!([{"external_id": "r1", "amount": "30"}, {"participant_id": ids[2], "amount": "20"}]), "t1")).await;
    assert_eq!(sent.status.as_u16(), 201, "{}", sent.body);
    assert_eq!(
        (
            sent.body["total_amount"].clone(),
            sent.body["recipient_count"].clone(),
            sent.body["source_id"].clone()
        ),
        (json!("50"), json!(2), json!(ids[0]))
    );
    let replay = app.post("/transfers", transfer(json!([{"external_id": "r1", "amount": "30"}, {"participant_id": ids[2], "amount": "20"}]), "t1")).await;
    assert_eq!(
        (
            replay.status.as_u16(),
            replay.body["journal_entry_id"].clone()
        ),
        (200, sent.body["journal_entry_id"].clone())
    );
    let balances = || async {
        [
            app.available(&ids[0], &points).await,
            app.available(&ids[1], &points).await,
            app.available(&ids[2], &points).await,
        ]
    };
    assert_eq!(balances().await, ["50", "30", "20"]);

    assert_error("overdraw", &app.post("/transfers", transfer(json!([{"external_id": "r1", "amount": "40"}, {"external_id": "r2", "amount": "11"}]), "t2")).await, 422, "insufficient_balance", None);
    assert_error(
        "self",
        &app.post(
            "/transfers",
            transfer(json!([{"external_id": "giver", "amount": "1"}]), "t3"),
        )
        .await,
        400,
        "self_transfer",
        Some("recipients[0]"),
    );
    assert_error(
        "unknown",
        &app.post(
            "/transfers",
            transfer(json!([{"external_id": "nobody", "amount": "1"}]), "t4"),
        )
        .await,
        404,
        "not_found",
        None,
    );
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"external_id": "r1", "amount": "1"}))
        .collect();
    assert_error(
        "101 recipients",
        &app.post("/transfers", transfer(json!(many), "t5")).await,
        400,
        "bad_request",
        Some("recipients"),
    );
    app.patch(
        &format!("/participants/{}/status", ids[2]),
        json!({"status": "SUSPENDED"}),
    )
    .await;
    assert_error(
        "suspended leg",
        &app.post(
            "/transfers",
            transfer(
                json!([{"external_id": "r1", "amount": "5"}, {"external_id": "r2", "amount": "5"}]),
                "t6",
            ),
        )
        .await,
        409,
        "participant_inactive",
        None,
    );
    assert_eq!(
        balances().await,
        ["50", "30", "20"],
        "failed transfers moved nothing"
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}
