//! Details of Scrip's API a migrating client relies on: open-ended date windows, rule list ordering, the
//! event window of state history.

use crate::common::{TestApp, assert_error, id};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn rows(body: &Value) -> Vec<Value> {
    body["data"].as_array().cloned().unwrap_or_default()
}

fn amounts(body: &Value) -> Vec<Value> {
    rows(body).iter().map(|r| r["amount"].clone()).collect()
}

/// A participant credited 10 and then 25 points by hand; returns the participant, the asset and the two
/// postings' `created_at`, oldest first.
async fn two_credits(app: &TestApp) -> (String, String, String, String) {
    let (program, points) = app.program_with_points("Windows", "PTS").await;
    let participant = id(&app
        .created(
            "/participants",
            json!({"external_id": "wendy", "program_id": program}),
        )
        .await);
    for amount in ["10", "25"] {
        let r = app
            .post(
                &format!("/participants/{participant}/balances/adjust"),
                json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": amount,
                       "description": "by hand"}),
            )
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let history = app
        .get(&format!("/participants/{participant}/activity/history"))
        .await
        .body;
    assert_eq!(amounts(&history), [json!("25"), json!("10")]);
    let at = |i: usize| {
        rows(&history)[i]["created_at"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (participant, points, at(1), at(0))
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn history_and_statement_windows_may_be_open_at_either_end(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (participant, points, first, second) = two_credits(&app).await;
    let history = format!("/participants/{participant}/activity/history");
    let since_second = app.get(&format!("{history}?from={second}")).await;
    assert_eq!(
        amounts(&since_second.body),
        [json!("25")],
        "{since_second:?}"
    );
    let until_first = app.get(&format!("{history}?to={first}")).await;
    assert_eq!(amounts(&until_first.body), [json!("10")], "{until_first:?}");
    let event_window = app.get(&format!("{history}?event_to={first}")).await;
    assert_eq!(
        amounts(&event_window.body),
        [json!("10")],
        "an entry without an event happened when it was posted"
    );

    // E48: opening is the balance just before `from` (0 without it), closing the balance at `to` (the current
    // one without it).
    let statement = format!("/participants/{participant}/statement?asset_id={points}");
    let from_only = app.get(&format!("{statement}&from={second}")).await.body;
    assert_eq!(
        (&from_only["opening_balance"], &from_only["closing_balance"]),
        (&json!("10"), &json!("35"))
    );
    assert_eq!(amounts(&from_only), [json!("25")]);
    let to_only = app.get(&format!("{statement}&to={first}")).await.body;
    assert_eq!(
        (&to_only["opening_balance"], &to_only["closing_balance"]),
        (&json!("0"), &json!("10"))
    );
    assert_eq!(to_only["from"], Value::Null);
    assert_eq!(amounts(&to_only), [json!("10")]);

    // Both ends still may not cross.
    assert_error(
        "to before from",
        &app.get(&format!("{history}?from={second}&to={first}"))
            .await,
        400,
        "bad_request",
        Some("to"),
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn list_windows_may_be_open_at_either_end(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Lists", "PTS").await;
    app.credit_rule(&program, "true", &points, "1").await;
    let early = app.event(&program, "ann", "k1", json!({})).await;
    let early_event = app.processed(&early).await;
    let late = app.event(&program, "bob", "k2", json!({})).await;
    let late_event = app.processed(&late).await;
    let created = |e: &Value| e["created_at"].as_str().unwrap_or_default().to_owned();
    let ids = |body: &Value| -> Vec<Value> { rows(body).iter().map(|r| r["id"].clone()).collect() };

    let events_since = app
        .get(&format!("/events?from={}", created(&late_event)))
        .await;
    assert_eq!(ids(&events_since.body), [json!(late)], "{events_since:?}");
    let events_until = app
        .get(&format!(
            "/events?event_to={}",
            early_event["event_timestamp"].as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(ids(&events_until.body), [json!(early)], "{events_until:?}");

    let bob = app.participant_id("bob").await;
    let bob_created = app.get(&format!("/participants/{bob}")).await.body["created_at"].clone();
    let since_bob = app
        .get(&format!(
            "/participants?from={}",
            bob_created.as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(ids(&since_bob.body), [json!(bob)], "{since_bob:?}");
    let ann = app.participant_id("ann").await;
    let until_bob = app
        .get(&format!(
            "/participants?to={}",
            bob_created.as_str().unwrap_or_default()
        ))
        .await;
    assert_eq!(
        ids(&until_bob.body),
        [json!(bob), json!(ann)],
        "{until_bob:?}"
    );

    let of_bob = app
        .get(&format!(
            "/participants/{bob}/activity/events?to={}",
            created(&late_event)
        ))
        .await;
    assert_eq!(ids(&of_bob.body), [json!(late)], "{of_bob:?}");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn rules_are_listed_in_execution_order_unless_asked_otherwise(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Sorted", "PTS").await;
    for (name, order) in [("bravo", 1), ("alpha", 2), ("charlie", 3)] {
        app.created(
            "/rules",
            json!({"program_id": program, "name": name, "order": order, "condition": "true",
                   "actions": [{"type": "CREDIT", "asset_id": points, "amount": "1"}]}),
        )
        .await;
    }
    let names = |body: &Value| -> Vec<String> {
        rows(body)
            .iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let rules = format!("/rules?program_id={program}");
    assert_eq!(
        names(&app.get(&format!("{rules}&")).await.body),
        ["bravo", "alpha", "charlie"]
    );
    assert_eq!(
        names(&app.get(&format!("{rules}&sort_dir=desc")).await.body),
        ["charlie", "alpha", "bravo"]
    );
    assert_eq!(
        names(&app.get(&format!("{rules}&sort_by=name")).await.body),
        ["alpha", "bravo", "charlie"]
    );
    // Pages follow the requested order.
    let first = app
        .get(&format!("{rules}&sort_by=name&sort_dir=desc&limit=2"))
        .await
        .body;
    assert_eq!(names(&first), ["charlie", "bravo"]);
    let cursor = first["pagination"]["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let rest = app
        .get(&format!(
            "{rules}&sort_by=name&sort_dir=desc&limit=2&cursor={cursor}"
        ))
        .await;
    assert_eq!(names(&rest.body), ["alpha"]);
    assert_eq!(
        names(
            &app.get(&format!("{rules}&sort_by=created_at&sort_dir=desc"))
                .await
                .body
        ),
        ["charlie", "alpha", "bravo"]
    );
    assert_error(
        "unknown sort key",
        &app.get(&format!("{rules}&sort_by=priority")).await,
        400,
        "bad_request",
        Some("sort_by"),
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn state_history_filters_on_when_the_originating_event_happened(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = app.program_with_points("Tags", "PTS").await;
    app.rule(
        &program,
        "tag",
        "true",
        json!([{"type": "TAG", "tag": "early"}]),
    )
    .await;
    let body = json!({"program_id": program, "external_id": "tess", "idempotency_key": "old",
                      "event_timestamp": "2020-01-01T00:00:00Z", "event_data": {}});
    let r = app.post("/events", body).await;
    app.processed(&id(&r.body)).await;
    let tess = app.participant_id("tess").await;
    let added = app
        .call(
            reqwest::Method::PUT,
            &format!("/participants/{tess}/state/tags/late"),
            None,
        )
        .await;
    assert_eq!(added.status, 201, "{added:?}");

    let history = format!("/participants/{tess}/activity/state-history?state_type=tag");
    let keys =
        |body: &Value| -> Vec<Value> { rows(body).iter().map(|r| r["key"].clone()).collect() };
    let old = app
        .get(&format!("{history}&event_to=2021-01-01T00:00:00Z"))
        .await;
    assert_eq!(keys(&old.body), [json!("early")], "{old:?}");
    let recent = app
        .get(&format!("{history}&event_from=2021-01-01T00:00:00Z"))
        .await;
    assert_eq!(keys(&recent.body), [json!("late")], "{recent:?}");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_asset_is_unlinked_only_while_nothing_in_the_program_uses_it(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Home", "PTS").await;
    let (other, _) = app.program_with_points("Other", "OTH").await;
    let link = |program: &str| format!("/programs/{program}/assets");
    let unlink = |program: &str| {
        let path = format!("/programs/{program}/assets/{points}");
        let app = &app;
        async move { app.call(reqwest::Method::DELETE, &path, None).await }
    };
    let linked = app.post(&link(&other), json!({"asset_id": points})).await;
    assert_eq!(linked.status, 200, "{linked:?}");

    // A rule of the other program names the asset: it stays.
    let rule = app.credit_rule(&other, "true", &points, "5").await;
    let used = unlink(&other).await;
    assert_error("used by a rule", &used, 409, "conflict", None);
    assert!(
        used.body["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&rule),
        "{used:?}"
    );
    let archived = app
        .patch(&format!("/rules/{rule}"), json!({"status": "ARCHIVED"}))
        .await;
    assert_eq!(archived.status, 200, "{archived:?}");

    let gone = unlink(&other).await;
    assert_eq!(gone.status, 204, "{gone:?}");
    let asset = app.get(&format!("/assets/{points}")).await.body;
    assert_eq!(asset["program_ids"], json!([program]));
    assert_error("not linked", &unlink(&other).await, 404, "not_found", None);

    // Value has moved in it in its home program: it stays.
    let participant = id(&app
        .created(
            "/participants",
            json!({"external_id": "ula", "program_id": program}),
        )
        .await);
    let credited = app
        .post(
            &format!("/participants/{participant}/balances/adjust"),
            json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": "1",
                   "description": "one"}),
        )
        .await;
    assert_eq!(credited.status, 200, "{credited:?}");
    assert_error(
        "has entries",
        &unlink(&program).await,
        409,
        "conflict",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn every_action_type_takes_a_description(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Described", "PTS").await;
    let actions = json!([
        {"type": "CREDIT", "asset_id": points, "amount": "1", "description": "earned"},
        {"type": "TAG", "tag": "buyer", "description": "mark buyers"},
        {"type": "UNTAG", "tag": "lapsed", "description": "back again"},
        {"type": "COUNTER", "key": "purchases", "description": "count them"},
        {"type": "SET_ATTRIBUTE", "key": "last", "value": "'shop'", "description": "where"},
    ]);
    let rule = app
        .created(
            "/rules",
            json!({"program_id": program, "name": "all", "condition": "true", "actions": actions}),
        )
        .await;
    assert_eq!(
        rule["actions"], actions,
        "each description is kept with its action"
    );
    let done = app
        .processed(&app.event(&program, "dee", "d1", json!({})).await)
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");

    // A field the action type does not take is still refused.
    let r = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "bad", "condition": "true",
                   "actions": [{"type": "TAG", "tag": "x", "amount": "1"}]}),
        )
        .await;
    assert_error(
        "amount on TAG",
        &r,
        400,
        "bad_request",
        Some("actions[0].amount"),
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_condition_that_cannot_be_true_or_false_is_refused_when_written(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Conditions", "PTS").await;
    let rule = |condition: &str| {
        json!({"program_id": program, "name": "r", "condition": condition,
               "actions": [{"type": "CREDIT", "asset_id": points, "amount": "1"}]})
    };
    let refused = app.post("/rules", rule("event.amount * 10")).await;
    assert_error(
        "arithmetic",
        &refused,
        400,
        "bad_request",
        Some("condition"),
    );
    let validated = app
        .post("/rules/validate", json!({"condition": "'purchase'"}))
        .await;
    assert_eq!(validated.body["valid"], false, "{validated:?}");
    // What reads data may be a boolean at run time, so it is accepted.
    let accepted = app.post("/rules", rule("event.is_member")).await;
    assert_eq!(accepted.status, 201, "{accepted:?}");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn tag_and_untag_can_target_the_program(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Tagged", "PTS").await;
    let program_target = json!({"type": "PROGRAM"});
    app.rule(
        &program,
        "launch",
        "event.type == 'launch'",
        json!([{"type": "TAG", "tag": "launched", "target": program_target},
               {"type": "TAG", "tag": "early", "target": program_target}]),
    )
    .await;
    app.rule(
        &program,
        "settle",
        "event.type == 'settle'",
        json!([{"type": "UNTAG", "tag": "early", "target": program_target}]),
    )
    .await;
    let tags_of = |program: &str| format!("/programs/{program}/state/tags");
    let tags =
        |body: &Value| -> Vec<Value> { rows(body).iter().map(|r| r["tag"].clone()).collect() };

    let launched = app
        .processed(
            &app.event(&program, "pat", "l1", json!({"type": "launch"}))
                .await,
        )
        .await;
    assert_eq!(launched["status"], "COMPLETED", "{launched}");
    assert_eq!(
        launched["rule_evaluations"][0]["results"][0],
        json!({"type": "TAG", "program_id": program, "tag": "launched", "changed": true})
    );
    assert_eq!(
        tags(&app.get(&tags_of(&program)).await.body),
        [json!("early"), json!("launched")]
    );
    let pat = app.participant_id("pat").await;
    assert_eq!(
        app.get(&format!("/participants/{pat}/state/tags"))
            .await
            .body["data"],
        json!([]),
        "the participant is not tagged"
    );
    let settled = app
        .processed(
            &app.event(&program, "pat", "s1", json!({"type": "settle"}))
                .await,
        )
        .await;
    assert_eq!(settled["status"], "COMPLETED", "{settled}");
    assert_eq!(
        tags(&app.get(&tags_of(&program)).await.body),
        [json!("launched")]
    );

    // Only TAG and UNTAG target the program, and a PROGRAM target names nothing else.
    let rule = |action: Value| json!({"program_id": program, "name": "bad", "condition": "true", "actions": [action]});
    assert_error(
        "credit to the program",
        &app.post(
            "/rules",
            rule(json!({"type": "CREDIT", "asset_id": points, "amount": "1", "target": program_target})),
        )
        .await,
        400,
        "bad_request",
        Some("actions[0].target.type"),
    );
    assert_error(
        "program target with an id",
        &app.post(
            "/rules",
            rule(json!({"type": "TAG", "tag": "x", "target": {"type": "PROGRAM", "external_id": "pat"}})),
        )
        .await,
        400,
        "bad_request",
        Some("actions[0].target.id"),
    );
    let other = app.as_organization("other").await;
    assert_error(
        "another organization's program",
        &other.get(&tags_of(&program)).await,
        404,
        "not_found",
        None,
    );
}
