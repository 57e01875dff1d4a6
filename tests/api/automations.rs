//! Automations (E107–E115), SCHEDULE_EVENT and BROADCAST: SYSTEM events created on schedule, over HTTP, with
//! time driven by the server's clock setting.

use crate::common::{TestApp, assert_error, id, test_options};
use crate::process::{SCRIP, free_port, signal};
use chrono::{DateTime, Duration as Span, Utc};
use reqwest::{Method, StatusCode};
use scrip::clock::Clock;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;

fn at(text: &str) -> DateTime<Utc> {
    text.parse().expect("time")
}

/// A server with workers whose scheduler reads `clock`.
async fn app_with_clock(connect: PgConnectOptions, clock: &Clock) -> TestApp {
    let options = scrip::Options {
        clock: clock.clone(),
        ..test_options(2)
    };
    TestApp::spawn_with_options(connect, options).await
}

/// Waits (up to 30 s) until `check` returns `Some`.
async fn eventually<T, F: Future<Output = Option<T>>>(what: &str, check: impl Fn() -> F) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The program's SYSTEM events, oldest first (at most 100).
async fn system_events(app: &TestApp, program: &str) -> Vec<Value> {
    let r = app
        .get(&format!(
            "/events?program_id={program}&event_type=SYSTEM&limit=100&sort_dir=asc"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

async fn system_event_count(app: &TestApp, program: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE program_id = $1::uuid AND event_type = 'SYSTEM'",
    )
    .bind(program)
    .fetch_one(&app.pool)
    .await
    .expect("count")
}

/// `n` participants `{prefix}-{i}` enrolled in the program (by an event each), once those events are done.
async fn members(app: &TestApp, program: &str, prefix: &str, n: usize) -> Vec<String> {
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|i| {
                json!({"program_id": program, "external_id": format!("{prefix}-{i}"),
                       "idempotency_key": format!("join-{prefix}-{i}"), "event_data": {"type": "join"}})
            })
            .collect();
        let r = app.post("/events/batch", json!({"events": events})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    let pool = app.pool.clone();
    eventually("members enrolled", || {
        let pool = pool.clone();
        async move {
            let pending: i64 =
                sqlx::query_scalar("SELECT count(*) FROM events WHERE status = 'PENDING'")
                    .fetch_one(&pool)
                    .await
                    .expect("count");
            (pending == 0).then_some(())
        }
    })
    .await;
    let mut ids = Vec::with_capacity(n);
    if n <= 20 {
        for i in 0..n {
            ids.push(app.participant_id(&format!("{prefix}-{i}")).await);
        }
    }
    ids
}

async fn automation(app: &TestApp, program: &str, body: Value) -> Value {
    let r = app
        .post(&format!("/programs/{program}/automations"), body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn get_automation(app: &TestApp, program: &str, automation: &str) -> Value {
    let r = app
        .get(&format!("/programs/{program}/automations/{automation}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_birthday_fires_once_on_the_members_date_in_the_automations_timezone(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let clock = Clock::starting_at(at("2030-06-01T00:00:00Z"));
    let app = app_with_clock(connect, &clock).await;
    let (program, asset) = app.program_with_points("Birthdays", "PTS").await;
    app.credit_rule(&program, "event.type == \"birthday\"", &asset, "100")
        .await;
    let ids = members(&app, &program, "member", 3).await;
    let birthdays = [Some("06-15"), Some("1990-09-01"), None];
    for (id, birthday) in ids.iter().zip(birthdays) {
        if let Some(date) = birthday {
            let r = app
                .patch(
                    &format!("/participants/{id}/state/attributes"),
                    json!({"attributes": {"birthday": date}}),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
    let created = automation(
        &app,
        &program,
        json!({"name": "Birthday bonus", "event_name": "birthday", "scope": "participants",
               "payload": {"gift": "cake"},
               "trigger": {"type": "participant_state", "schedule_type": "ATTRIBUTE_DATE",
                           "schedule_config": {"attribute": "birthday"}, "timezone": "Asia/Tokyo"}}),
    )
    .await;
    let automation_id = id(&created);
    assert_eq!(created["source"], "api");
    assert_eq!(created["status"], "active");
    let subscriptions = format!("/programs/{program}/automations/{automation_id}/subscriptions");
    let listed = eventually("three subscriptions", || async {
        let r = app.get(&subscriptions).await;
        let data = r.body["data"].as_array().cloned().unwrap_or_default();
        (data.len() == 3).then_some(data)
    })
    .await;
    let of = |participant: &str| {
        listed
            .iter()
            .find(|s| s["participant_id"] == participant)
            .cloned()
            .expect("subscribed")
    };
    // Midnight of June 15 in Tokyo is 15:00 UTC the day before.
    assert_eq!(of(&ids[0])["next_trigger_at"], "2030-06-14T15:00:00Z");
    assert_eq!(of(&ids[0])["status"], "active");
    assert_eq!(of(&ids[1])["next_trigger_at"], "2030-08-31T15:00:00Z");
    assert_eq!(of(&ids[2])["status"], "failed");
    assert!(of(&ids[2])["last_error"].as_str().is_some());
    let failed = app.get(&format!("{subscriptions}?status=failed")).await;
    assert_eq!(failed.body["data"].as_array().map(Vec::len), Some(1));

    // A minute before, nothing.
    clock.set(at("2030-06-14T14:59:00Z"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(system_events(&app, &program).await.is_empty());

    clock.set(at("2030-06-14T15:00:01Z"));
    let event = eventually("the birthday event", || async {
        system_events(&app, &program).await.into_iter().next()
    })
    .await;
    assert_eq!(event["participant_id"], ids[0].as_str());
    assert_eq!(event["event_type"], "SYSTEM");
    assert_eq!(
        event["event_data"],
        json!({"type": "birthday", "gift": "cake"})
    );
    assert_eq!(event["event_timestamp"], "2030-06-14T15:00:00Z");
    let done = app.processed(&id(&event)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(app.available(&ids[0], &asset).await, "100");
    let theirs = app
        .get(&format!(
            "/participants/{}/activity/events?event_type=SYSTEM",
            ids[0]
        ))
        .await;
    assert_eq!(theirs.body["data"][0]["id"], event["id"]);

    // Later the same day, and again after a refresh, it has fired once.
    clock.set(at("2030-06-15T09:00:00Z"));
    let r = app
        .post(
            &format!("/programs/{program}/automations/{automation_id}/refresh-subscriptions"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body, json!({}));
    eventually("the refresh", || async {
        let a = get_automation(&app, &program, &automation_id).await;
        (a["execution_status"] == "completed"
            && a["last_evaluated_at"].as_str() > Some("2030-06-15"))
        .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(system_events(&app, &program).await.len(), 1);
    let r = app.get(&subscriptions).await;
    let mine = r.body["data"]
        .as_array()
        .and_then(|d| {
            d.iter()
                .find(|s| s["participant_id"] == ids[0].as_str())
                .cloned()
        })
        .expect("subscription");
    assert_eq!(mine["trigger_count"], 1);
    assert_eq!(mine["last_triggered_at"], "2030-06-14T15:00:00Z");
    assert_eq!(mine["next_trigger_at"], "2031-06-14T15:00:00Z");

    // A new time of day: the subscriptions are made again under it (09:00 in Tokyo is midnight UTC).
    let r = app
        .patch(
            &format!("/programs/{program}/automations/{automation_id}"),
            json!({"schedule_config": {"attribute": "birthday", "time": "09:00"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let remade = eventually("subscriptions under the new time", || async {
        let data = app.get(&subscriptions).await.body["data"].clone();
        let alice = data
            .as_array()?
            .iter()
            .find(|s| s["participant_id"] == ids[0].as_str())?
            .clone();
        (alice["next_trigger_at"] == "2031-06-15T00:00:00Z").then_some(data)
    })
    .await;
    assert_eq!(remade.as_array().map(Vec::len), Some(3));
    assert_eq!(system_events(&app, &program).await.len(), 1);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_cron_program_automation_fires_on_schedule_and_a_manual_trigger_sets_next_run_at(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let clock = Clock::starting_at(at("2030-01-01T08:59:00Z"));
    let app = app_with_clock(connect, &clock).await;
    let (program, _) = app.program_with_points("Draws", "PTS").await;
    app.rule(
        &program,
        "mark the draw",
        "event.type == \"daily_draw\"",
        json!([{"type": "TAG", "tag": "drawn", "target": {"type": "PROGRAM"}}]),
    )
    .await;
    let created = automation(
        &app,
        &program,
        json!({"name": "Daily draw", "event_name": "daily_draw", "scope": "program",
               "trigger": {"type": "cron", "cron_expression": "0 9 * * *", "timezone": "Europe/Paris"}}),
    )
    .await;
    let automation_id = id(&created);
    // 09:00 in Paris is 08:00 UTC in winter.
    assert_eq!(created["next_run_at"], "2030-01-02T08:00:00Z");
    assert_eq!(created["execution_status"], "idle");

    clock.set(at("2030-01-02T08:00:02Z"));
    let event = eventually("the 09:00 event", || async {
        system_events(&app, &program).await.into_iter().next()
    })
    .await;
    assert_eq!(event["participant_id"], Value::Null);
    assert_eq!(event["event_timestamp"], "2030-01-02T08:00:00Z");
    let done = app.processed(&id(&event)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let tags = app.get(&format!("/programs/{program}/state/tags")).await;
    assert_eq!(tags.body["data"][0]["tag"], "drawn", "{}", tags.body);
    let fired = get_automation(&app, &program, &automation_id).await;
    assert_eq!(fired["next_run_at"], "2030-01-03T08:00:00Z");
    assert!(
        fired["last_run_at"]
            .as_str()
            .is_some_and(|t| t >= "2030-01-02T08:00:02")
    );

    // Triggered by hand: due now, fired once more, then back on schedule.
    let r = app
        .post(
            &format!("/programs/{program}/automations/{automation_id}/trigger"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let next = r.body["next_run_at"]
        .as_str()
        .expect("next_run_at")
        .to_owned();
    assert!(next.as_str() < "2030-01-02T08:01", "{next}");
    eventually("the manual fire", || async {
        (system_events(&app, &program).await.len() == 2).then_some(())
    })
    .await;
    let after = get_automation(&app, &program, &automation_id).await;
    assert_eq!(after["next_run_at"], "2030-01-03T08:00:00Z");

    // Paused, it does not fire; resumed, it is scheduled from now.
    let paused = app
        .patch(
            &format!("/programs/{program}/automations/{automation_id}"),
            json!({"status": "paused"}),
        )
        .await;
    assert_eq!(paused.body["status"], "paused");
    clock.set(at("2030-01-04T12:00:00Z"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(system_events(&app, &program).await.len(), 2);
    let resumed = app
        .patch(
            &format!("/programs/{program}/automations/{automation_id}"),
            json!({"status": "active"}),
        )
        .await;
    assert_eq!(resumed.body["next_run_at"], "2030-01-05T08:00:00Z");

    // Three days pass with no fire (a server down): the fire that fell due happens once, late, stamped with
    // its due time, and the next is the first after now.
    clock.set(at("2030-01-08T12:00:00Z"));
    let late = eventually("the missed fire", || async {
        let events = system_events(&app, &program).await;
        (events.len() == 3).then(|| events[2].clone())
    })
    .await;
    assert_eq!(late["event_timestamp"], "2030-01-05T08:00:00Z");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(system_events(&app, &program).await.len(), 3);
    let caught_up = get_automation(&app, &program, &automation_id).await;
    assert_eq!(caught_up["next_run_at"], "2030-01-09T08:00:00Z");
    let refused = app
        .post(
            &format!("/programs/{program}/automations/{automation_id}/refresh-subscriptions"),
            json!({}),
        )
        .await;
    assert_error(
        "refresh of a cron automation",
        &refused,
        400,
        "bad_request",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_participants_fan_out_creates_an_event_for_each_that_passes_its_filter_and_guard(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with_options(connect, test_options(2)).await;
    let (program, asset) = app.program_with_points("Win-back", "PTS").await;
    app.credit_rule(
        &program,
        "event.type == \"win_back\"",
        &asset,
        "event.bonus",
    )
    .await;
    let ids = members(&app, &program, "m", 5).await;
    for (i, id) in ids.iter().enumerate() {
        let mut attributes = json!({"segment": if i < 3 { "lapsed" } else { "active" }});
        if i != 1 {
            attributes["opted_in"] = json!("yes");
        }
        let r = app
            .patch(
                &format!("/participants/{id}/state/attributes"),
                json!({"attributes": attributes}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let created = automation(
        &app,
        &program,
        json!({"name": "Win back", "event_name": "win_back", "scope": "participants",
               "payload": {"bonus": 25},
               "participant_filter": "participant.attributes.segment == \"lapsed\"",
               "guard_condition": "participant.attributes.opted_in == \"yes\" && event.bonus > 0",
               "trigger": {"type": "immediate"}}),
    )
    .await;
    let automation_id = id(&created);
    let done = eventually("the fan-out", || async {
        let a = get_automation(&app, &program, &automation_id).await;
        (a["execution_status"] == "completed").then_some(a)
    })
    .await;
    assert_eq!(done["participants_processed"], 5);
    assert_eq!(done["participants_total"], 5);
    assert!(done["execution_completed_at"].as_str().is_some());
    let events = system_events(&app, &program).await;
    let mut reached: Vec<&str> = events
        .iter()
        .filter_map(|e| e["participant_id"].as_str())
        .collect();
    reached.sort();
    let mut expected = vec![ids[0].as_str(), ids[2].as_str()];
    expected.sort();
    assert_eq!(reached, expected);
    for event in &events {
        assert_eq!(app.processed(&id(event)).await["status"], "COMPLETED");
    }
    assert_eq!(app.available(&ids[0], &asset).await, "25");
    assert_eq!(app.available(&ids[1], &asset).await, "none");

    // Triggered again, a new fire: every lapsed, opted-in member gets a second event.
    let r = app
        .post(
            &format!("/programs/{program}/automations/{automation_id}/trigger"),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    eventually("the second fan-out", || async {
        (system_events(&app, &program).await.len() == 4).then_some(())
    })
    .await;
    let listed = app
        .get(&format!(
            "/programs/{program}/automations?trigger_type=immediate&scope=participants&search=win"
        ))
        .await;
    assert_eq!(listed.body["data"][0]["id"], automation_id.as_str());
    let none = app
        .get(&format!(
            "/programs/{program}/automations?source=rule_action"
        ))
        .await;
    assert_eq!(none.body["data"], json!([]));
    let subscriptions = app
        .get(&format!(
            "/programs/{program}/automations/{automation_id}/subscriptions"
        ))
        .await;
    assert_eq!(subscriptions.body["data"], json!([]));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn invalid_automations_are_refused_and_change_nothing(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with_options(connect, test_options(0)).await;
    let (program, _) = app.program_with_points("Refusals", "PTS").await;
    let path = format!("/programs/{program}/automations");
    let base = |trigger: Value, scope: &str| json!({"name": "A", "event_name": "e", "scope": scope, "trigger": trigger});
    let cases = [
        (
            "immediate for the program",
            base(json!({"type": "immediate"}), "program"),
            "scope",
        ),
        (
            "participant_state for the program",
            base(
                json!({"type": "participant_state", "schedule_type": "INTERVAL",
                       "schedule_config": {"interval": "720h"}}),
                "program",
            ),
            "scope",
        ),
        (
            "cron without expression",
            base(json!({"type": "cron"}), "program"),
            "trigger.cron_expression",
        ),
        (
            "a timezone prefix",
            base(
                json!({"type": "cron", "cron_expression": "CRON_TZ=UTC 0 9 * * *"}),
                "program",
            ),
            "trigger.cron_expression",
        ),
        (
            "an unknown timezone",
            base(
                json!({"type": "cron", "cron_expression": "0 9 * * *", "timezone": "Mars/Base"}),
                "program",
            ),
            "trigger.timezone",
        ),
        (
            "a past trigger_at",
            base(
                json!({"type": "one_time", "trigger_at": "2001-01-01T00:00:00Z"}),
                "program",
            ),
            "trigger.trigger_at",
        ),
        (
            "an attribute date without its attribute",
            base(
                json!({"type": "participant_state", "schedule_type": "ATTRIBUTE_DATE", "schedule_config": {}}),
                "participants",
            ),
            "trigger.schedule_config.attribute",
        ),
        (
            "an unknown trigger",
            base(json!({"type": "hourly"}), "program"),
            "trigger.type",
        ),
        (
            "a filter on the program",
            json!({"name": "A", "event_name": "e", "scope": "program", "participant_filter": "true",
                   "trigger": {"type": "cron", "cron_expression": "0 9 * * *"}}),
            "participant_filter",
        ),
        (
            "a filter that is not CEL",
            json!({"name": "A", "event_name": "e", "scope": "participants", "participant_filter": "((",
                   "trigger": {"type": "immediate"}}),
            "participant_filter",
        ),
    ];
    for (what, body, field) in cases {
        let r = app.post(&path, body).await;
        assert_error(what, &r, 400, "bad_request", Some(field));
    }
    assert_eq!(app.get(&path).await.body["data"], json!([]));

    let one_time = automation(
        &app,
        &program,
        json!({"name": "Later", "event_name": "later", "scope": "program",
               "trigger": {"type": "one_time", "trigger_at": "2099-01-01T00:00:00Z"}}),
    )
    .await;
    assert_eq!(one_time["next_run_at"], "2099-01-01T00:00:00Z");
    let again = app
        .post(
            &path,
            json!({"name": "Later", "event_name": "x", "scope": "program",
                   "trigger": {"type": "one_time", "trigger_at": "2099-01-01T00:00:00Z"}}),
        )
        .await;
    assert_error("a name taken", &again, 409, "conflict", None);
    let one = format!("{path}/{}", id(&one_time));
    let trigger = app.post(&format!("{one}/trigger"), json!({})).await;
    assert_error(
        "trigger of a one_time program automation",
        &trigger,
        400,
        "bad_request",
        None,
    );
    let cancel = app.post(&format!("{one}/cancel"), json!({})).await;
    assert_error(
        "cancel with nothing running",
        &cancel,
        409,
        "no_execution",
        None,
    );
    let patch = app
        .patch(&one, json!({"cron_expression": "0 9 * * *"}))
        .await;
    assert_error(
        "a cron expression on a one_time",
        &patch,
        400,
        "bad_request",
        Some("cron_expression"),
    );
    let archived = app.call(Method::DELETE, &one, None).await;
    assert_eq!(archived.status, StatusCode::OK, "{}", archived.body);
    assert_eq!(archived.body["status"], "archived");
    assert_eq!(archived.body["next_run_at"], Value::Null);
    let after = app.patch(&one, json!({"status": "active"})).await;
    assert_error(
        "an archived automation",
        &after,
        409,
        "automation_archived",
        None,
    );
    assert_eq!(app.get(&one).await.body["status"], "archived");
    let other = app.as_organization("other").await;
    let hidden = other.get(&one).await;
    assert_error("another organization's", &hidden, 404, "not_found", None);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn schedule_event_arrives_after_its_delay_and_earns_through_a_rule(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let clock = Clock::starting_at(at("2030-03-01T10:00:00Z"));
    let app = app_with_clock(connect, &clock).await;
    let (program, asset) = app.program_with_points("Welcome", "PTS").await;
    app.rule(
        &program,
        "welcome later",
        "event.type == \"signup\"",
        json!([{"type": "SCHEDULE_EVENT", "event_name": "welcome_bonus", "delay": "72h",
                "payload": {"bonus": 50}}]),
    )
    .await;
    app.credit_rule(
        &program,
        "event.type == \"welcome_bonus\"",
        &asset,
        "event.bonus",
    )
    .await;
    let body = json!({"program_id": program, "external_id": "newbie", "idempotency_key": "signup-1",
                      "event_timestamp": "2030-03-01T10:00:00Z", "event_data": {"type": "signup"}});
    let r = app.post("/events", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let signup = app.processed(&id(&r.body)).await;
    assert_eq!(signup["status"], "COMPLETED", "{signup}");
    let result = &signup["rule_evaluations"][0]["results"][0];
    assert_eq!(result["type"], "SCHEDULE_EVENT");
    assert_eq!(result["scheduled_at"], "2030-03-04T10:00:00Z");
    let participant = app.participant_id("newbie").await;
    let scheduled = get_automation(
        &app,
        &program,
        result["automation_id"].as_str().expect("id"),
    )
    .await;
    assert_eq!(scheduled["source"], "rule_action");
    assert_eq!(scheduled["trigger_type"], "one_time");
    assert_eq!(scheduled["scope"], "program");
    assert_eq!(scheduled["participant_id"], participant.as_str());
    assert_eq!(scheduled["trigger_at"], "2030-03-04T10:00:00Z");
    let listed = app
        .get(&format!(
            "/programs/{program}/automations?source=rule_action"
        ))
        .await;
    assert_eq!(listed.body["data"][0]["id"], scheduled["id"]);

    clock.set(at("2030-03-04T09:59:00Z"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(system_events(&app, &program).await.is_empty());
    assert_eq!(app.available(&participant, &asset).await, "none");

    clock.set(at("2030-03-04T10:00:01Z"));
    let event = eventually("the welcome bonus", || async {
        system_events(&app, &program).await.into_iter().next()
    })
    .await;
    assert_eq!(event["participant_id"], participant.as_str());
    assert_eq!(
        event["event_data"],
        json!({"type": "welcome_bonus", "bonus": 50})
    );
    assert_eq!(app.processed(&id(&event)).await["status"], "COMPLETED");
    assert_eq!(app.available(&participant, &asset).await, "50");
    let fired = get_automation(&app, &program, &id(&scheduled)).await;
    assert!(fired["processed_at"].as_str().is_some());
    assert_eq!(fired["next_run_at"], Value::Null);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn broadcast_sends_an_event_to_every_participant_of_the_program(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_with_options(connect, test_options(2)).await;
    let (program, asset) = app.program_with_points("Launch", "PTS").await;
    app.rule(
        &program,
        "announce",
        "event.type == \"launch\"",
        json!([{"type": "BROADCAST", "event_name": "double_points", "payload": {"factor": 2}}]),
    )
    .await;
    app.credit_rule(&program, "event.type == \"double_points\"", &asset, "5")
        .await;
    let ids = members(&app, &program, "fan", 4).await;
    let launch = app
        .event(&program, "fan-0", "launch-1", json!({"type": "launch"}))
        .await;
    assert_eq!(app.processed(&launch).await["status"], "COMPLETED");
    eventually("every member credited", || async {
        for id in &ids {
            if app.available(id, &asset).await != "5" {
                return None;
            }
        }
        Some(())
    })
    .await;
    assert_eq!(system_event_count(&app, &program).await, 4);
    let refused = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "bad", "condition": "true",
                   "actions": [{"type": "BROADCAST", "event_name": "x", "target": {"external_id": "a"}}]}),
        )
        .await;
    assert_error(
        "a BROADCAST with a target",
        &refused,
        400,
        "bad_request",
        None,
    );
    let refused = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "bad", "condition": "true",
                   "actions": [{"type": "SCHEDULE_EVENT", "event_name": "x", "delay": "soon"}]}),
        )
        .await;
    assert_error(
        "a SCHEDULE_EVENT without a duration",
        &refused,
        400,
        "bad_request",
        None,
    );
}

/// Locks a participant as a worker does, so its events wait in the queue while the lock is held.
async fn hold_participant(app: &TestApp, id: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = app.pool.begin().await.expect("tx");
    sqlx::query("SELECT id FROM participants WHERE id = $1::uuid FOR NO KEY UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("lock");
    tx
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_cancelled_fan_out_keeps_what_it_created_and_stops(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // A page of one participant, and a pause while the organization has an event queued.
    let options = scrip::Options {
        fan_outs: scrip::scheduler::Settings { page: 1, room: 1 },
        ..test_options(2)
    };
    let app = TestApp::spawn_with_options(connect, options).await;
    let (program, _) = app.program_with_points("Cancel", "PTS").await;
    let mut ids = members(&app, &program, "c", 6).await;
    ids.sort();
    // The first member's event cannot be processed while the lock is held: the fan-out waits after it.
    let held = hold_participant(&app, &ids[0]).await;
    let created = automation(
        &app,
        &program,
        json!({"name": "Everyone", "event_name": "hello", "scope": "participants",
               "trigger": {"type": "immediate"}}),
    )
    .await;
    let automation_id = id(&created);
    let one = format!("/programs/{program}/automations/{automation_id}");
    eventually("the first page", || async {
        let a = get_automation(&app, &program, &automation_id).await;
        (a["participants_processed"] == 1).then_some(())
    })
    .await;
    let trigger = app.post(&format!("{one}/trigger"), json!({})).await;
    assert_error(
        "a trigger while running",
        &trigger,
        400,
        "bad_request",
        None,
    );
    let cancelled = app.post(&format!("{one}/cancel"), json!({})).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["execution_status"], "failed");
    assert_eq!(cancelled.body["status"], "active");
    assert_eq!(cancelled.body["participants_processed"], 1);
    assert_eq!(cancelled.body["participants_total"], 6);
    held.rollback().await.expect("released");
    let events = eventually("the one event", || async {
        let events = system_events(&app, &program).await;
        (events.len() == 1).then_some(events)
    })
    .await;
    assert_eq!(events[0]["participant_id"], ids[0].as_str());
    assert_eq!(app.processed(&id(&events[0])).await["status"], "COMPLETED");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(system_event_count(&app, &program).await, 1);
    let after = get_automation(&app, &program, &automation_id).await;
    assert_eq!(after["execution_status"], "failed");
    assert_eq!(after["execution_error"], "cancelled");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn two_servers_never_fire_the_same_thing_twice(_: PgPoolOptions, connect: PgConnectOptions) {
    let clock = Clock::starting_at(at("2030-05-01T00:00:00Z"));
    let first = app_with_clock(connect.clone(), &clock).await;
    let options = scrip::Options {
        clock: clock.clone(),
        fan_outs: scrip::scheduler::Settings {
            page: 7,
            room: 5000,
        },
        ..test_options(2)
    };
    let second = TestApp::spawn_with_options(connect, options).await;
    let (program, _) = first.program_with_points("Twice", "PTS").await;
    members(&first, &program, "t", 60).await;
    let fan_out = json!({"name": "Every minute", "event_name": "tick", "scope": "participants",
                         "trigger": {"type": "cron", "cron_expression": "* * * * *"}});
    automation(&first, &program, fan_out).await;
    for n in 0..10 {
        let at = (clock.now() + Span::minutes(3)).to_rfc3339();
        automation(
            &first,
            &program,
            json!({"name": format!("once {n}"), "event_name": "once", "scope": "program",
                   "trigger": {"type": "one_time", "trigger_at": at}}),
        )
        .await;
    }
    // Three minute boundaries pass, one at a time.
    let start = clock.now();
    for minute in 1..=3 {
        clock.set(start + Span::minutes(minute) + Span::seconds(1));
        let expected = 60 * minute;
        let pool = second.pool.clone();
        eventually("the minute's fan-out", || {
            let pool = pool.clone();
            async move {
                let ticks: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM events WHERE event_type = 'SYSTEM' AND event_data->>'type' = 'tick'",
                )
                .fetch_one(&pool)
                .await
                .expect("count");
                (ticks >= expected).then_some(())
            }
        })
        .await;
    }
    clock.set(start + Span::minutes(3) + Span::seconds(30));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Per type: events, and distinct firings (one-time: the automation, named by the event's key; ticks: the
    // member and the minute).
    let counts: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT event_data->>'type', count(*),
                count(DISTINCT CASE WHEN participant_id IS NULL THEN split_part(idempotency_key, ':', 2)
                                    ELSE participant_id::text || event_timestamp::text END)
           FROM events WHERE event_type = 'SYSTEM' GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&first.pool)
    .await
    .expect("counts");
    assert_eq!(
        counts,
        vec![("once".to_owned(), 10, 10), ("tick".to_owned(), 180, 180)]
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_server_killed_mid_fan_out_resumes_without_duplicates(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    const MEMBERS: i64 = 1500;
    let setup = TestApp::spawn_with_options(connect.clone(), test_options(2)).await;
    let (program, _) = setup.program_with_points("Resume", "PTS").await;
    members(&setup, &program, "r", MEMBERS as usize).await;
    setup.stop().await;
    // From here this API serves requests only: no workers, no scheduler.
    let app = TestApp::spawn_without_workers(connect.clone()).await;
    // A real `scrip serve` starts the fan-out in small pages, each waiting for the queue to drain a little.
    let mut doomed = Command::new(SCRIP)
        .arg("serve")
        .env("DATABASE_URL", crate::common::database_url(&connect))
        .env("SCRIP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("SCRIP_WORKERS", "1")
        .env("SCRIP_FAN_OUT_PAGE", "20")
        .env("SCRIP_FAN_OUT_ROOM", "40")
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("scrip serve starts");
    let created = automation(
        &app,
        &program,
        json!({"name": "All", "event_name": "resume", "scope": "participants", "trigger": {"type": "immediate"}}),
    )
    .await;
    let automation_id = id(&created);
    let processed = || async {
        let a = get_automation(&app, &program, &automation_id).await;
        a["participants_processed"].as_i64().unwrap_or(0)
    };
    eventually("a few pages", || async {
        (processed().await >= 100).then_some(())
    })
    .await;
    signal(&doomed, "-KILL").await;
    let _ = doomed.wait().await;
    let at_kill = processed().await;
    assert!(
        at_kill < MEMBERS,
        "the fan-out finished before the kill; the test proved nothing"
    );

    let finisher = TestApp::spawn_with_options(connect, test_options(2)).await;
    let done = eventually("the fan-out to finish", || async {
        let a = get_automation(&app, &program, &automation_id).await;
        (a["execution_status"] == "completed").then_some(a)
    })
    .await;
    assert_eq!(done["participants_processed"], MEMBERS);
    let (all, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT participant_id) FROM events
          WHERE program_id = $1::uuid AND event_type = 'SYSTEM'",
    )
    .bind(&program)
    .fetch_one(&finisher.pool)
    .await
    .expect("counts");
    assert_eq!((all, distinct), (MEMBERS, MEMBERS));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn interval_and_threshold_subscriptions_fire_on_their_schedule(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let clock = Clock::starting_at(at("2030-02-01T00:00:00Z"));
    let app = app_with_clock(connect, &clock).await;
    let (program, _) = app.program_with_points("Schedules", "PTS").await;
    let ids = members(&app, &program, "s", 2).await;
    let counter = format!("/participants/{}/state/counters/purchases", ids[0]);
    let r = app
        .call(Method::PUT, &counter, Some(json!({"value": "1"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let state = |schedule_type: &str, config: Value| {
        json!({"name": schedule_type, "event_name": schedule_type.to_lowercase(), "scope": "participants",
               "participant_filter": format!("participant.external_id == \"s-0\""),
               "trigger": {"type": "participant_state", "schedule_type": schedule_type,
                           "schedule_config": config}})
    };
    let interval = automation(
        &app,
        &program,
        state("INTERVAL", json!({"interval": "24h"})),
    )
    .await;
    let threshold = automation(
        &app,
        &program,
        state(
            "THRESHOLD",
            json!({"counter": "purchases", "threshold": 3, "check_every": "1m"}),
        ),
    )
    .await;
    let of = |automation: &Value| {
        format!(
            "/programs/{program}/automations/{}/subscriptions",
            id(automation)
        )
    };
    for automation in [&interval, &threshold] {
        let listed = eventually("one subscription", || async {
            let data = app.get(&of(automation)).await.body["data"].clone();
            (data.as_array().map(Vec::len) == Some(1)).then_some(data)
        })
        .await;
        assert_eq!(listed[0]["participant_id"], ids[0].as_str());
    }
    let typed = |kind: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM events WHERE event_type = 'SYSTEM' AND event_data->>'type' = $1",
            )
            .bind(kind)
            .fetch_one(&pool)
            .await
            .expect("count")
        }
    };
    // The counter is below the threshold: a look finds nothing to fire.
    clock.set(at("2030-02-01T00:01:30Z"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(typed("threshold").await, 0);
    assert_eq!(typed("interval").await, 0);

    let r = app
        .call(Method::PUT, &counter, Some(json!({"value": "3"})))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    clock.set(at("2030-02-01T00:03:00Z"));
    eventually("the threshold event", || async {
        (typed("threshold").await == 1).then_some(())
    })
    .await;
    let done = app.get(&of(&threshold)).await.body["data"][0].clone();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["trigger_count"], 1);

    // A day after subscribing, the interval fires; the completed threshold never again.
    clock.set(at("2030-02-02T00:00:30Z"));
    eventually("the interval event", || async {
        (typed("interval").await == 1).then_some(())
    })
    .await;
    clock.set(at("2030-02-02T12:00:00Z"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!((typed("interval").await, typed("threshold").await), (1, 1));
    let next = app.get(&of(&interval)).await.body["data"][0]["next_trigger_at"].clone();
    assert!(
        next.as_str()
            .is_some_and(|t| t.starts_with("2030-02-03T00:00")),
        "{next}"
    );
}

/// Behind a fan-out's queued events, the organization's live events are claimed in turn with them (their own
/// lane), not after them: the first batch takes a live event sent after 500 SYSTEM events.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_fan_out_does_not_hold_its_organizations_live_events_behind_it(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_without_workers(connect).await;
    let (program, points) = app.program_with_points("Lanes", "PTS").await;
    app.credit_rule(&program, "event.type == \"live\"", &points, "1")
        .await;
    let program_id: uuid::Uuid = program.parse().expect("program id");
    let organization_id: uuid::Uuid =
        sqlx::query_scalar("SELECT organization_id FROM programs WHERE id = $1")
            .bind(program_id)
            .fetch_one(&app.pool)
            .await
            .expect("organization");
    let fan_out: Vec<scrip::events::SystemEvent> = (0..500)
        .map(|n| scrip::events::SystemEvent {
            organization_id,
            program_id,
            participant_id: None,
            idempotency_key: format!("automation:fan-out:{n}"),
            event_data: json!({"type": "broadcast"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            event_timestamp: Utc::now(),
        })
        .collect();
    let mut conn = app.pool.acquire().await.expect("connection");
    let queued = scrip::events::store_system(&mut conn, &fan_out)
        .await
        .expect("queued");
    assert_eq!(queued, 500);
    drop(conn);
    let live = app
        .event(&program, "live_member", "live-1", json!({"type": "live"}))
        .await;

    app.process_batch().await;
    let statuses: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT event_type, status, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&app.pool)
    .await
    .expect("statuses");
    let live_status = app.get(&format!("/events/{live}")).await.body["status"].clone();
    assert_eq!(live_status, "COMPLETED", "{statuses:?}");
    let system_pending = statuses
        .iter()
        .find(|(kind, status, _)| kind == "SYSTEM" && status == "PENDING")
        .map_or(0, |(_, _, n)| *n);
    assert!(
        system_pending >= 400,
        "one batch, not the whole fan-out: {statuses:?}"
    );
}
