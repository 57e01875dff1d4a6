//! The books: the ledger summary, liability at an instant, the rollforward between two instants, the
//! expiration schedule and program activity, each reconciled against the others after real activity.

use crate::common::{TestApp, assert_error, id};
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::{Duration, Instant};

fn dec(value: &Value) -> Decimal {
    Decimal::from_str(value.as_str().unwrap_or("missing"))
        .unwrap_or_else(|_| panic!("{value} is no decimal"))
}

/// An instant between two steps of a test, with time on both sides so no entry shares it.
async fn instant() -> String {
    tokio::time::sleep(Duration::from_millis(30)).await;
    let t = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    tokio::time::sleep(Duration::from_millis(30)).await;
    t
}

fn encode(t: &str) -> String {
    t.replace('+', "%2B")
}

/// A program with a scale-2 LOT asset and rules for each kind of event the tests send.
async fn card_program(app: &TestApp) -> (String, String) {
    let (program, cash) = app.program_with_asset("Card", "CB", "LOT", 2).await;
    let on = |kind: &str| format!("event.kind == '{kind}'");
    let credit = |extra: Value| {
        let mut action = json!({"type": "CREDIT", "asset_id": cash, "amount": "event.amount"});
        if let (Some(a), Some(e)) = (action.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        json!([action])
    };
    for (kind, actions) in [
        ("buy", credit(json!({}))),
        ("short", credit(json!({"expires_at": "500ms"}))),
        (
            "auth",
            credit(json!({"bucket": "HELD", "reference_id": "event.auth_id"})),
        ),
        ("settle", credit(json!({"reference_id": "event.auth_id"}))),
        (
            "void",
            json!([{"type": "VOID_HOLD", "asset_id": cash, "reference_id": "event.auth_id"}]),
        ),
        (
            "spend",
            json!([{"type": "DEBIT", "asset_id": cash, "amount": "event.amount"}]),
        ),
    ] {
        app.rule(&program, kind, &on(kind), actions).await;
    }
    (program, cash)
}

async fn send(app: &TestApp, program: &str, who: &str, n: &mut u32, kind: &str, data: Value) {
    *n += 1;
    let mut data = data;
    data["kind"] = json!(kind);
    let event = app.event(program, who, &format!("b{n}"), data).await;
    let done = app.processed(&event).await;
    assert_eq!(done["status"], "COMPLETED", "{kind}: {done}");
}

/// The one row of a report for the program's asset.
fn row(body: &Value) -> Value {
    let rows = body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(rows.len(), 1, "{body}");
    rows[0].clone()
}

async fn liability_at(app: &TestApp, program: &str, at: &str) -> Value {
    let path = format!(
        "/reports/liability?as_of={}&program_id={program}",
        encode(at)
    );
    row(&app.get(&path).await.body)
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn the_books_reconcile_to_the_cent_over_a_month_of_activity(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, cash) = card_program(&app).await;
    let mut n = 0;
    // Earning: a purchase, a provisional accrual settled for more, one voided, value that expires.
    for (who, kind, data) in [
        ("ann", "buy", json!({"amount": 100.25})),
        ("ann", "auth", json!({"auth_id": "A1", "amount": 10})),
        ("ann", "settle", json!({"auth_id": "A1", "amount": 12.5})),
        ("ann", "auth", json!({"auth_id": "A2", "amount": 5})),
        ("ann", "void", json!({"auth_id": "A2"})),
        ("ann", "short", json!({"amount": 3})),
        ("bo", "buy", json!({"amount": 1})),
    ] {
        send(&app, &program, who, &mut n, kind, data).await;
    }
    let ann = app.participant_id("ann").await;
    let bo = app.participant_id("bo").await;
    app.created(
        &format!("/participants/{ann}/balances/adjust"),
        json!({"program_id": program, "asset_id": cash, "type": "CREDIT", "amount": "7",
               "description": "Goodwill"}),
    )
    .await;
    app.created(
        "/transfers",
        json!({"program_id": program, "asset_id": cash, "source_participant_id": ann,
               "recipients": [{"participant_id": bo, "amount": "10"}], "description": "Gift"}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.available(&ann, &cash).await != "109.75" {
        assert!(Instant::now() < deadline, "the short lot did not expire");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let t1 = instant().await;

    // Spending: a redemption partly reversed, a forfeit, a hold, a debit by a rule.
    let redemption = app
        .created(
            &format!("/participants/{ann}/redemptions"),
            json!({"program_id": program, "asset_id": cash, "amount": "40.10", "description": "Statement credit"}),
        )
        .await;
    app.created(
        &format!("/redemptions/{}/reverse", id(&redemption)),
        json!({"reason": "Partial refund", "amount": "15.05"}),
    )
    .await;
    for (op, body) in [
        ("forfeit", json!({"amount": "2", "bucket": "AVAILABLE"})),
        ("hold", json!({"amount": "5"})),
    ] {
        let mut body = body;
        body["program_id"] = json!(program);
        body["asset_id"] = json!(cash);
        body["description"] = json!(op);
        app.created(&format!("/participants/{ann}/balances/{op}"), body)
            .await;
    }
    send(&app, &program, "ann", &mut n, "spend", json!({"amount": 1})).await;
    let t2 = instant().await;

    let (l1, l2) = (
        liability_at(&app, &program, &t1).await,
        liability_at(&app, &program, &t2).await,
    );
    assert_eq!(l1["balance"], "120.75");
    assert_eq!(l2["balance"], "92.70");
    let by_bucket = app
        .get(&format!(
            "/reports/liability?program_id={program}&by_bucket=true"
        ))
        .await
        .body;
    let buckets: Vec<(Value, Value)> = by_bucket["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (r["bucket"].clone(), r["balance"].clone()))
        .collect();
    assert!(
        buckets.contains(&(json!("HELD"), json!("5.00"))),
        "{by_bucket}"
    );
    assert!(
        buckets.contains(&(json!("AVAILABLE"), json!("87.70"))),
        "{by_bucket}"
    );

    let forward = app
        .get(&format!(
            "/reports/liability-rollforward?from={}&to={}",
            encode(&t1),
            encode(&t2)
        ))
        .await;
    assert_eq!(forward.status, 200, "{}", forward.body);
    let month = row(&forward.body);
    assert_eq!(
        month["opening_balance"], l1["balance"],
        "opening = liability at from"
    );
    assert_eq!(
        month["closing_balance"], l2["balance"],
        "closing = liability at to"
    );
    let lines = [
        "issued",
        "redeemed",
        "debited",
        "expired",
        "forfeited",
        "holds_voided",
        "issuance_returns",
        "redemption_receipts",
        "redemption_reversals",
        "reversal_clawbacks",
        "transfers_net",
        "bucket_movements_net",
        "adjustments_net",
    ];
    let sum: Decimal = lines.iter().map(|line| dec(&month[*line])).sum();
    assert_eq!(
        dec(&month["opening_balance"]) + sum,
        dec(&month["closing_balance"])
    );
    assert_eq!(
        [
            &month["redeemed"],
            &month["redemption_reversals"],
            &month["forfeited"],
            &month["debited"],
            &month["bucket_movements_net"],
            &month["issued"]
        ],
        [
            &json!("-40.10"),
            &json!("15.05"),
            &json!("-2.00"),
            &json!("-1.00"),
            &json!("0.00"),
            &json!("0.00")
        ]
    );

    let start = app
        .get(&format!(
            "/reports/liability-rollforward?from=2020-01-01T00:00:00Z&to={}",
            encode(&t1)
        ))
        .await;
    let earning = row(&start.body);
    assert_eq!(
        [
            &earning["opening_balance"],
            &earning["issued"],
            &earning["issuance_returns"],
            &earning["holds_voided"],
            &earning["expired"],
            &earning["adjustments_net"],
            &earning["transfers_net"],
            &earning["closing_balance"]
        ],
        [
            &json!("0.00"),
            &json!("131.75"),
            &json!("-10.00"),
            &json!("-5.00"),
            &json!("-3.00"),
            &json!("7.00"),
            &json!("0.00"),
            &json!("120.75")
        ]
    );

    // The summary's totals and its window agree with the liability.
    let summary = row(&app.get("/reports/ledger-summary").await.body);
    assert_eq!(
        [
            &summary["total_issued"],
            &summary["total_redeemed"],
            &summary["total_expired"],
            &summary["total_forfeited"],
            &summary["current_balance"]
        ],
        [
            &json!("123.75"),
            &json!("26.05"),
            &json!("3.00"),
            &json!("2.00"),
            &json!("92.70")
        ]
    );
    assert_eq!(summary["participant_count"], 2);
    assert!(
        summary.get("opening_balance").is_none(),
        "no window, no period figures"
    );
    let window = row(&app
        .get(&format!(
            "/reports/ledger-summary?from={}&to={}",
            encode(&t1),
            encode(&t2)
        ))
        .await
        .body);
    assert_eq!(window["opening_balance"], l1["balance"]);
    assert_eq!(window["closing_balance"], l2["balance"]);
    let moved = dec(&window["period_issued"])
        - dec(&window["period_redeemed"])
        - dec(&window["period_expired"])
        - dec(&window["period_forfeited"])
        + dec(&window["other_adjustments_net"]);
    assert_eq!(
        dec(&window["opening_balance"]) + moved,
        dec(&window["closing_balance"])
    );
    assert_eq!(
        window["period_redeemed"], "41.10",
        "redemptions and debits, before reversals"
    );

    // Program activity counts a settled accrual once and a voided one not at all.
    let activity = row(&app.get("/reports/program-activity").await.body);
    assert_eq!(activity["total_issued"], "123.75");
    assert_eq!(activity["total_redeemed"], "26.05");
    assert_error(
        "a rollforward needs its window",
        &app.get(&format!(
            "/reports/liability-rollforward?from={}",
            encode(&t1)
        ))
        .await,
        400,
        "bad_request",
        Some("to"),
    );
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_program_whose_rules_only_tag_is_active_and_rewards_are_counted(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Tags", "TG").await;
    app.rule(
        &program,
        "tag",
        "true",
        json!([{"type": "TAG", "tag": "seen"}]),
    )
    .await;
    app.created(
        &format!("/programs/{program}/rewards"),
        json!({"name": "Pin", "redemption_type": "UNIT_BASED", "asset_id": points, "unit_cost": "1",
               "status": "ACTIVE"}),
    )
    .await;
    let before = instant().await;
    let event = app.event(&program, "cy", "t1", json!({})).await;
    assert_eq!(app.processed(&event).await["status"], "COMPLETED");
    let since = app
        .get(&format!(
            "/reports/program-activity?since={}",
            encode(&before)
        ))
        .await
        .body;
    let active = row(&since);
    assert_eq!(active["program_id"], json!(program), "an event is activity");
    assert!(active["last_activity_at"].is_string());
    assert_eq!(
        (
            active["event_count"].clone(),
            active["journal_count"].clone()
        ),
        (json!(1), json!(0))
    );
    assert_eq!(active["reward_count"], 1);
    let later = instant().await;
    let dormant = app
        .get(&format!(
            "/reports/program-activity?since={}",
            encode(&later)
        ))
        .await
        .body;
    assert_eq!(dormant["data"], json!([]));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn the_expiration_schedule_splits_outstanding_lots_by_when_they_expire(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, miles) = app.program_with_asset("Air", "MI", "LOT", 0).await;
    for (kind, expiry) in [
        ("month", Some("720h")),
        ("two", Some("1440h")),
        ("year", Some("8760h")),
        ("ever", None),
    ] {
        let mut credit = json!({"type": "CREDIT", "asset_id": miles, "amount": "event.amount"});
        if let Some(expiry) = expiry {
            credit["expires_at"] = json!(expiry);
        }
        app.rule(
            &program,
            kind,
            &format!("event.kind == '{kind}'"),
            json!([credit]),
        )
        .await;
    }
    let mut n = 0;
    for (kind, amount) in [
        ("month", 10),
        ("two", 20),
        ("year", 40),
        ("ever", 80),
        ("month", 5),
    ] {
        send(
            &app,
            &program,
            "dee",
            &mut n,
            kind,
            json!({"amount": amount}),
        )
        .await;
    }
    let now: DateTime<Utc> = Utc::now();
    let from = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let to = (now + chrono::Duration::days(90)).to_rfc3339_opts(SecondsFormat::Secs, true);
    let path = format!(
        "/reports/expiration-schedule?from={}&to={}&granularity=day",
        encode(&from),
        encode(&to)
    );
    let r = app.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let schedule = row(&r.body);
    assert_eq!(
        [
            &schedule["total_outstanding"],
            &schedule["never_expiring"],
            &schedule["expiring_before_window"],
            &schedule["expiring_after_window"]
        ],
        [&json!("155"), &json!("80"), &json!("0"), &json!("40")]
    );
    let buckets = schedule["buckets"].as_array().cloned().unwrap_or_default();
    assert_eq!(buckets.len(), 91, "every day the window touches");
    let filled: Vec<(Value, Value)> = buckets
        .iter()
        .filter(|b| b["lot_count"] != 0)
        .map(|b| (b["amount"].clone(), b["lot_count"].clone()))
        .collect();
    assert_eq!(filled, [(json!("15"), json!(2)), (json!("20"), json!(1))]);

    let (_, simple) = app.program_with_points("Simple", "SP").await;
    assert_error(
        "a SIMPLE asset has no lots",
        &app.get(&format!("{path}&asset_id={simple}")).await,
        400,
        "bad_request",
        Some("asset_id"),
    );
    let too_long = "/reports/expiration-schedule?from=2020-01-01T00:00:00Z&to=2030-01-01T00:00:00Z&granularity=day";
    assert_error(
        "too many buckets",
        &app.get(too_long).await,
        400,
        "bad_request",
        Some("to"),
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_rollforward_refuses_activity_that_fits_no_line(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Odd", "OD").await;
    let member = id(&app
        .created("/participants", json!({"external_id": "ed"}))
        .await);
    app.created(
        &format!("/participants/{member}/balances/adjust"),
        json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": "5", "description": "x"}),
    )
    .await;
    let from = instant().await;
    // A FUND entry that reaches a participant's account: nothing in the engine writes one.
    sqlx::query(
        "WITH entry AS (
             INSERT INTO journal_entries (id, organization_id, program_id, action_type)
             SELECT gen_random_uuid(), organization_id, id, 'FUND' FROM programs WHERE id = $1::uuid RETURNING *)
         INSERT INTO postings (id, journal_entry_id, organization_id, account_id, program_id, asset_id,
                               entity_type, entity_id, bucket, amount)
         SELECT gen_random_uuid(), entry.id, entry.organization_id, a.id, entry.program_id, a.asset_id,
                a.entity_type, a.entity_id, a.bucket,
                CASE WHEN a.entity_type = 'PARTICIPANT' THEN 1 ELSE -1 END
           FROM entry, accounts a
          WHERE a.asset_id = $2::uuid AND a.bucket = 'AVAILABLE'
            AND (a.entity_id = $3::uuid OR a.entity_type = 'SYSTEM_ISSUANCE')",
    )
    .bind(&program)
    .bind(&points)
    .bind(&member)
    .execute(&app.pool)
    .await
    .expect("a hand-written entry");
    let to = instant().await;
    let r = app
        .get(&format!(
            "/reports/liability-rollforward?from={}&to={}",
            encode(&from),
            encode(&to)
        ))
        .await;
    assert_error(
        "unclassifiable activity",
        &r,
        409,
        "unclassified_activity",
        None,
    );
}
