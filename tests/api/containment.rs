//! Containment: no event, expression, module or organization stops or slows processing for the others, and
//! nothing one organization sends reveals another's.

use crate::common::{Response, TestApp, assert_error, id};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};
use std::time::{Duration, Instant};

/// The largest amount accepted: 18 nines.
const LARGEST: &str = "999999999999999999";

/// A participant of a fresh points program with 100 points, and the program and asset.
async fn funded_participant(app: &TestApp, external_id: &str) -> (String, String, String) {
    let (program, points) = app.program_with_points("Funded", "PTS").await;
    let participant = id(&app
        .created(
            "/participants",
            json!({"external_id": external_id, "program_id": program}),
        )
        .await);
    let adjusted = app
        .post(
            &format!("/participants/{participant}/balances/adjust"),
            json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": "100",
                   "description": "seed"}),
        )
        .await;
    assert_eq!(adjusted.status, StatusCode::OK, "{}", adjusted.body);
    (program, points, participant)
}

/// Sets the participant's `visits` counter.
async fn set_visits(app: &TestApp, participant: &str, body: Value) -> Response {
    let path = format!("/participants/{participant}/state/counters/visits");
    app.call(reqwest::Method::PUT, &path, Some(body)).await
}

/// Another organization, new on the server, sends one event to a program crediting 10 points: the event as
/// processed.
async fn another_organizations_event(app: &TestApp, organization: &str) -> Value {
    let other = app.as_organization(organization).await;
    let (program, points) = other.program_with_points("Theirs", "PTS").await;
    other.credit_rule(&program, "true", &points, "10").await;
    let event = other.event(&program, "them", "theirs", json!({})).await;
    other.processed(&event).await
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_amount_beyond_the_bound_fails_its_event_and_other_organizations_are_still_processed(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Poison", "PTS").await;
    let twice = json!([{"type": "CREDIT", "asset_id": points, "amount": "event.n"},
                       {"type": "CREDIT", "asset_id": points, "amount": "event.n"}]);
    app.rule(&program, "twice n", "has(event.n)", twice).await;

    let poisoned = app
        .processed(&app.event(&program, "p", "poison", json!({"n": 5e28})).await)
        .await;
    assert_eq!(poisoned["status"], "FAILED", "{poisoned}");
    let reason = poisoned["error_message"].as_str().unwrap_or_default();
    assert!(
        reason.contains("too large (at most 18 digits before the decimal point)"),
        "{reason}"
    );

    // Another organization's events are processed after it, and so are this one's.
    let theirs = another_organizations_event(&app, "bystander").await;
    assert_eq!(theirs["status"], "COMPLETED", "{theirs}");

    // The largest amount, twice, is a balance of 19 digits: sums of bounded amounts do not overflow.
    app.rule(
        &program,
        "largest literal",
        "event.exact == true",
        json!([{"type": "CREDIT", "asset_id": points, "amount": LARGEST},
               {"type": "CREDIT", "asset_id": points, "amount": LARGEST}]),
    )
    .await;
    let credited = app
        .processed(
            &app.event(&program, "rich", "exact", json!({"exact": true}))
                .await,
        )
        .await;
    assert_eq!(credited["status"], "COMPLETED", "{credited}");
    let rich = app.participant_id("rich").await;
    assert_eq!(app.available(&rich, &points).await, "1999999999999999998");
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn amounts_and_counters_beyond_the_bound_are_refused_and_change_nothing(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points, participant) = funded_participant(&app, "holder").await;
    let adjust = |amount: &str| {
        json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": amount,
               "description": "big"})
    };
    let path = format!("/participants/{participant}/balances/adjust");
    let before = app.row_counts().await;
    for too_large in [
        "79228162514264337593543950335",
        "1000000000000000000",
        "-1000000000000000000.5",
    ] {
        let refused = app.post(&path, adjust(too_large)).await;
        assert_error(too_large, &refused, 400, "bad_request", Some("amount"));
        assert!(
            refused.body.to_string().contains("too large"),
            "{}",
            refused.body
        );
    }
    let counter = set_visits(
        &app,
        &participant,
        json!({"value": "10000000000000000000000"}),
    )
    .await;
    assert_error("counter", &counter, 400, "bad_request", Some("value"));
    assert!(
        counter.body.to_string().contains("too large"),
        "{}",
        counter.body
    );
    let rule = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "huge", "condition": "true",
                   "actions": [{"type": "CREDIT", "asset_id": points, "amount": "79228162514264337593543950335"}]}),
        )
        .await;
    assert_error("rule amount", &rule, 400, "bad_request", None);
    assert_eq!(app.row_counts().await, before, "refusals wrote nothing");

    for _ in 0..2 {
        let added = app.post(&path, adjust(LARGEST)).await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    }
    assert_eq!(
        app.available(&participant, &points).await,
        "2000000000000000098"
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn durations_beyond_a_hundred_years_are_refused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points, participant) = funded_participant(&app, "timer").await;
    let before = app.row_counts().await;
    for too_long in [
        "100000000000000000000h",
        "876001h",
        "79228162514264337593543950335s",
    ] {
        let counter = set_visits(
            &app,
            &participant,
            json!({"value": "1", "reset_after": too_long}),
        )
        .await;
        assert_error(too_long, &counter, 400, "bad_request", Some("reset_after"));
        let budget = app
            .post(
                "/rules",
                json!({"program_id": program, "name": "budgeted", "condition": "true",
                       "actions": [{"type": "CREDIT", "asset_id": points, "amount": "1"}],
                       "budgets": [{"asset_id": points, "limit": "10", "schedule_type": "INTERVAL",
                                    "interval": too_long}]}),
            )
            .await;
        assert_error(too_long, &budget, 400, "bad_request", None);
        let window = app
            .post(
                "/rules",
                json!({"program_id": program, "name": "windowed", "condition": "true",
                       "actions": [{"type": "COUNTER", "key": "visits", "reset_after": too_long}]}),
            )
            .await;
        assert_error(too_long, &window, 400, "bad_request", None);
        for refused in [&counter, &budget, &window] {
            assert!(
                refused.body.to_string().contains("876000h"),
                "{}",
                refused.body
            );
        }
    }
    assert_eq!(app.row_counts().await, before, "refusals wrote nothing");
    let longest = set_visits(
        &app,
        &participant,
        json!({"value": "1", "reset_after": "876000h"}),
    )
    .await;
    assert_eq!(longest.status, StatusCode::OK, "{}", longest.body);
    app.stop().await;
}

/// A request body for an amount and an idempotency key.
type RequestWith<'a> = Box<dyn Fn(&str, &str) -> Value + 'a>;

/// Every idempotent operation replayed by another organization with the first one's key: the same body, a
/// different body and an unused key all get the same 404, and nothing changes.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn another_organizations_idempotency_keys_are_unknown_keys(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points, participant) = funded_participant(&app, "owner").await;
    app.created("/participants", json!({"external_id": "friend"}))
        .await;
    let operation = |amount: &str, key: &str| {
        json!({"program_id": program, "asset_id": points, "amount": amount, "description": "op",
               "idempotency_key": key})
    };
    let base = format!("/participants/{participant}/balances");
    let transfer = |amount: &str, key: &str| {
        json!({"program_id": program, "asset_id": points, "description": "gift", "source_external_id": "owner",
               "recipients": [{"external_id": "friend", "amount": amount}], "idempotency_key": key})
    };
    let cases: Vec<(String, RequestWith)> = vec![
        (format!("{base}/hold"), Box::new(operation)),
        (format!("{base}/release"), Box::new(operation)),
        (
            format!("{base}/forfeit"),
            Box::new(move |amount, key| {
                let mut body = operation(amount, key);
                body["bucket"] = json!("AVAILABLE");
                body
            }),
        ),
        ("/transfers".into(), Box::new(transfer)),
    ];
    for (n, (path, body)) in cases.iter().enumerate() {
        let first = app.post(path, body("5", &format!("key-{n}"))).await;
        assert!(first.status.is_success(), "{path}: {}", first.body);
    }

    let intruder = app.as_organization("intruder").await;
    let before = app.row_counts().await;
    for (n, (path, body)) in cases.iter().enumerate() {
        let key = format!("key-{n}");
        for (what, request) in [
            ("the same request", body("5", &key)),
            ("another request", body("6", &key)),
            ("an unused key", body("5", "never-used")),
        ] {
            let answer = intruder.post(path, request).await;
            assert_error(&format!("{path}, {what}"), &answer, 404, "not_found", None);
            assert!(
                answer.body.get("journal_entry_id").is_none(),
                "{path}: {}",
                answer.body
            );
        }
    }
    assert_eq!(
        app.row_counts().await,
        before,
        "the intruder changed nothing"
    );
    assert_eq!(app.available(&participant, &points).await, "90");
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn health_reports_the_workers_and_how_far_behind_the_queue_is(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let working = TestApp::spawn(connect.clone()).await;
    let shown = working.health().await;
    assert_eq!(
        (shown["status"].clone(), shown["workers"].clone()),
        (json!("ok"), json!({"configured": 2, "running": 2})),
        "{shown}"
    );
    assert_eq!(shown["queue_lag_seconds"], json!(0.0), "{shown}");
    working.stop().await;

    // A process without workers: events wait, and the lag shows it.
    let idle = TestApp::spawn_without_workers(connect).await;
    let (program, points) = idle.program_with_points("Waiting", "PTS").await;
    idle.credit_rule(&program, "true", &points, "1").await;
    idle.event(&program, "w", "waits", json!({})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shown = idle.health().await;
    assert_eq!(shown["workers"], json!({"configured": 0, "running": 0}));
    let lag = shown["queue_lag_seconds"].as_f64().unwrap_or_default();
    assert!(lag >= 0.3, "the waiting event is {lag} s behind: {shown}");
    idle.stop().await;
}

/// A transaction left open in another database on the same Postgres server cannot write this journal, so it
/// does not hold sealing back.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn entries_are_sealed_while_another_database_holds_a_transaction_open(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let mut elsewhere = connect
        .clone()
        .database("postgres")
        .connect()
        .await
        .expect("the server's postgres database");
    let mut open = elsewhere.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *open)
        .await
        .expect("a transaction id, as a writer has");

    let app = TestApp::spawn(connect).await;
    let (_, _, participant) = funded_participant(&app, "sealed").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entries = app
            .get(&format!("/journal-entries?participant_id={participant}"))
            .await
            .body;
        if entries["data"][0]["entry_hash"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the entry was not sealed: {entries}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    open.rollback().await.expect("rollback");
    app.stop().await;
}

/// One organization's slow wasm rules (loops and memory hoarders at the highest limits) on a backlog of
/// events: another organization's event is still processed at once.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn one_organizations_slow_rules_do_not_hold_up_another(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (slow_program, _) = app.program_with_points("Slow", "PTS").await;
    for attack in ["memory", "loop", "memory", "loop"] {
        app.wasm_rule(
            &slow_program,
            "hostile",
            json!({"attack": attack}),
            json!({"fuel": 100_000_000, "memory_bytes": 64 << 20}),
        )
        .await;
    }
    for round in 0..5 {
        let backlog: Vec<Value> = (0..100)
            .map(|n| {
                json!({"program_id": slow_program, "external_id": format!("s{round}-{n}"),
                       "idempotency_key": format!("slow-{round}-{n}"), "event_data": {}})
            })
            .collect();
        let sent = app.post("/events/batch", json!({"events": backlog})).await;
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    }
    // The workers are busy with the backlog.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Not a timing: the order. In queue order the neighbour's event would be claimed behind all 500 slow
    // ones, so at most the other worker's batch (100) could still be pending when it completes.
    let done = another_organizations_event(&app, "neighbour").await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let pending = app
        .get(&format!(
            "/events?program_id={slow_program}&status=PENDING&limit=200"
        ))
        .await;
    assert_eq!(
        pending.body["data"].as_array().map(Vec::len),
        Some(200),
        "the neighbour waited its turn: fewer than 200 slow events were still pending"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn loops_that_copy_the_event_on_every_step_and_oversized_events_are_refused(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Cel", "PTS").await;
    let before = app.row_counts().await;
    let quadratic = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "quadratic",
                   "condition": "event.l.map(x, event.l + event.l).size() > 0",
                   "actions": [{"type": "CREDIT", "asset_id": points, "amount": "1"}]}),
        )
        .await;
    assert_error(
        "quadratic",
        &quadratic,
        400,
        "bad_request",
        Some("condition"),
    );
    assert!(
        quadratic
            .body
            .to_string()
            .contains("copy that data on every step"),
        "{}",
        quadratic.body
    );

    let zeros = vec![0; 10_000];
    let long_list = json!({"program_id": program, "external_id": "z", "idempotency_key": "zeros",
                           "event_data": {"l": zeros}});
    let refused = app.post("/events", long_list).await;
    assert_error(
        "10,000 items",
        &refused,
        400,
        "bad_request",
        Some("event_data"),
    );
    let huge = json!({"program_id": program, "external_id": "z", "idempotency_key": "huge",
                      "event_data": {"s": "x".repeat(70_000)}});
    let refused = app.post("/events", huge).await;
    assert_error("70 kB", &refused, 400, "bad_request", Some("event_data"));
    assert_eq!(app.row_counts().await, before, "refusals wrote nothing");

    // A loop over the largest list accepted runs, and the event completes.
    let linear = app
        .rule(
            &program,
            "linear",
            "event.l.exists(x, x == 999.0 && x in event.l)",
            json!([{"type": "CREDIT", "asset_id": points, "amount": "1"}]),
        )
        .await;
    assert!(!linear.is_empty());
    let largest: Vec<u32> = (0..1000).collect();
    let done = app
        .processed(
            &app.event(&program, "z", "largest", json!({"l": largest}))
                .await,
        )
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["rule_evaluations"][0]["status"], "SUCCESS", "{done}");
    app.stop().await;
}

/// A bug that panics while processing one event (standing in for one: debug builds panic on request) fails
/// that event's attempts, never the workers: the events batched with it, and another organization's, complete.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_event_that_panics_fails_alone_and_the_workers_live_on(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Buggy", "PTS").await;
    app.credit_rule(&program, "true", &points, "10").await;
    let batch: Vec<Value> = (0..20)
        .map(|n| {
            let mut data = json!({"n": n});
            if n == 7 {
                data[scrip::events::worker::PANIC_FOR_TESTS] = json!(true);
            }
            json!({"program_id": program, "external_id": format!("b{n}"), "idempotency_key": format!("k{n}"),
                   "event_data": data})
        })
        .collect();
    let sent = app.post("/events/batch", json!({"events": batch})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let ids: Vec<String> = sent.body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| id(&r["event"]))
        .collect();
    assert_eq!(ids.len(), 20);
    for (n, event) in ids.iter().enumerate() {
        let done = app.processed(event).await;
        if n == 7 {
            assert_eq!(done["status"], "FAILED", "{done}");
            let reason = done["error_message"].as_str().unwrap_or_default();
            assert!(
                reason.starts_with("internal error: processing the event panicked"),
                "{reason}"
            );
        } else {
            assert_eq!(done["status"], "COMPLETED", "{done}");
        }
    }
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM events WHERE id = $1::uuid")
        .bind(&ids[7])
        .fetch_one(&app.pool)
        .await
        .expect("attempts");
    assert_eq!(
        attempts, 6,
        "failed like any other event: after six attempts"
    );

    let theirs = another_organizations_event(&app, "unaffected").await;
    assert_eq!(theirs["status"], "COMPLETED", "{theirs}");
    assert_eq!(
        app.health().await["workers"],
        json!({"configured": 2, "running": 2})
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}
