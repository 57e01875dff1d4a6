//! Participant state: rule actions on tags, counters and attributes, targets, blocking, windows, and the
//! state endpoints (E20–E33, E46–E47).

use crate::common::{TestApp, id};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::Duration;

fn data(body: &Value) -> Vec<Value> {
    body["data"].as_array().cloned().unwrap_or_default()
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn rules_change_tags_counters_and_attributes(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Stateful", "PTS").await;
    app.rule(
        &program,
        "welcome",
        "!('welcomed' in participant.tags)",
        json!([
        {"type": "TAG", "tag": "Welcomed"},
        {"type": "CREDIT", "asset_id": points, "amount": "50"}]),
    )
    .await;
    let count = app
        .rule(
            &program,
            "count",
            "event.type == 'purchase'",
            json!([
        {"type": "COUNTER", "key": "purchases"},
        {"type": "COUNTER", "key": "spend", "value": "event.amount"},
        {"type": "SET_ATTRIBUTE", "key": "last_sku", "value": "event.sku"},
        {"type": "SET_ATTRIBUTE", "key": "segment", "value": "premium"}]),
        )
        .await;
    app.rule(
        &program,
        "vip",
        "get(participant.counters, 'purchases', 0) >= 2",
        json!([{"type": "TAG", "tag": "vip"}]),
    )
    .await;
    app.rule(
        &program,
        "downgrade",
        "event.type == 'downgrade'",
        json!([{"type": "UNTAG", "tag": "vip"}]),
    )
    .await;

    for (n, (amount, sku)) in [(49.99, "a"), (10.01, "b"), (5.0, "c")].iter().enumerate() {
        let event = app
            .event(
                &program,
                "sam",
                &format!("p{n}"),
                json!({"type": "purchase", "amount": amount, "sku": sku}),
            )
            .await;
        assert_eq!(app.processed(&event).await["status"], "COMPLETED");
    }
    let sam = app.participant_id("sam").await;
    let detail = app.get(&format!("/participants/{sam}")).await.body;
    assert_eq!(
        detail["tags"],
        json!(["vip", "welcomed"]),
        "vip only from the third purchase: rules see state as the event began"
    );
    assert_eq!(detail["counters"], json!({"purchases": "3", "spend": "65"}));
    assert_eq!(
        detail["attributes"],
        json!({"last_sku": "c", "segment": "premium"})
    );
    assert_eq!(
        detail["balances"][0]["available"], "50",
        "the welcome gate fired once"
    );

    let history = app
        .get(&format!(
            "/participants/{sam}/activity/state-history?state_type=counter&key=purchases"
        ))
        .await
        .body;
    let steps: Vec<_> = data(&history)
        .iter()
        .map(|h| {
            (
                h["operation"].clone(),
                h["old_value"].clone(),
                h["new_value"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (json!("set"), json!("2"), json!("3")),
            (json!("set"), json!("1"), json!("2")),
            (json!("set"), Value::Null, json!("1"))
        ]
    );
    assert!(
        data(&history)
            .iter()
            .all(|h| h["rule_id"] == count.as_str() && h["event_id"].is_string())
    );

    let downgrade = app
        .processed(
            &app.event(&program, "sam", "d1", json!({"type": "downgrade"}))
                .await,
        )
        .await;
    assert_eq!(downgrade["rule_evaluations"][2]["status"], "SUCCESS");
    let untagged = app
        .get(&format!(
            "/participants/{sam}/activity/state-history?operation=remove"
        ))
        .await
        .body;
    assert_eq!(data(&untagged).len(), 1);
    assert_eq!(data(&untagged)[0]["key"], "vip");
    assert_eq!(
        app.get(&format!("/participants/{sam}/state/tags"))
            .await
            .body["data"],
        json!([{"tag": "welcomed"}])
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn targets_and_inactive_participants(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Referrals", "PTS").await;
    app.rule(&program, "referral", "event.type == 'signup' && has(event.referrer)", json!([
        {"type": "CREDIT", "asset_id": points, "amount": "100", "target": {"external_id": "event.referrer"}},
        {"type": "TAG", "tag": "referred"}])).await;
    app.rule(
        &program,
        "visit",
        "event.type == 'visit'",
        json!([{"type": "COUNTER", "key": "visits"}]),
    )
    .await;
    app.rule(
        &program,
        "flag",
        "event.type == 'flag'",
        json!([{"type": "TAG", "tag": "flagged"}]),
    )
    .await;

    let signup = app
        .processed(
            &app.event(
                &program,
                "newbie",
                "s1",
                json!({"type": "signup", "referrer": "ref-1"}),
            )
            .await,
        )
        .await;
    assert_eq!(signup["status"], "COMPLETED", "{signup}");
    let referrer = app.participant_id("ref-1").await;
    let newbie = app.participant_id("newbie").await;
    assert_eq!(
        app.available(&referrer, &points).await,
        "100",
        "the referrer was created and credited"
    );
    assert_eq!(app.available(&newbie, &points).await, "none");
    assert_eq!(
        app.get(&format!("/participants/{newbie}/state/tags"))
            .await
            .body["data"],
        json!([{"tag": "referred"}])
    );
    assert_eq!(
        app.get(&format!("/participants/{referrer}")).await.body["program_ids"],
        json!([program])
    );

    // A suspended participant gets no value and no counters, but can still be tagged.
    let suspended = app
        .patch(
            &format!("/participants/{referrer}/status"),
            json!({"status": "SUSPENDED"}),
        )
        .await;
    assert_eq!(suspended.body["status"], "SUSPENDED");
    let blocked = app
        .processed(
            &app.event(
                &program,
                "other",
                "s2",
                json!({"type": "signup", "referrer": "ref-1"}),
            )
            .await,
        )
        .await;
    assert_eq!(blocked["status"], "FAILED");
    assert_eq!(
        blocked["error_message"],
        "action CREDIT failed: participant is SUSPENDED"
    );
    let counted = app
        .processed(
            &app.event(&program, "ref-1", "v1", json!({"type": "visit"}))
                .await,
        )
        .await;
    assert_eq!(
        counted["error_message"],
        "action COUNTER failed: participant is SUSPENDED"
    );
    let flagged = app
        .processed(
            &app.event(&program, "ref-1", "f1", json!({"type": "flag"}))
                .await,
        )
        .await;
    assert_eq!(flagged["status"], "COMPLETED");
    assert_eq!(app.available(&referrer, &points).await, "100");
    let closed = app
        .patch(
            &format!("/participants/{referrer}/status"),
            json!({"status": "CLOSED"}),
        )
        .await;
    assert_eq!(closed.body["status"], "CLOSED");
    let reopened = app
        .patch(
            &format!("/participants/{referrer}/status"),
            json!({"status": "ACTIVE"}),
        )
        .await;
    assert_eq!(reopened.body["status"], "ACTIVE");
    let visit = app
        .processed(
            &app.event(&program, "ref-1", "v2", json!({"type": "visit"}))
                .await,
        )
        .await;
    assert_eq!(visit["status"], "COMPLETED");
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn counter_windows_reset_lazily(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = app.program_with_points("Windows", "PTS").await;
    app.rule(
        &program,
        "visit",
        "true",
        json!([{"type": "COUNTER", "key": "visits", "value": "2", "reset_after": "2s"}]),
    )
    .await;
    let first = app
        .processed(&app.event(&program, "win", "w1", json!({})).await)
        .await;
    assert_eq!(first["rule_evaluations"][0]["results"][0]["value"], "2");
    let win = app.participant_id("win").await;
    let path = format!("/participants/{win}/state/counters/visits");
    let counter = app.get(&path).await.body;
    assert_eq!(
        (counter["value"].clone(), counter["reset_after"].clone()),
        (json!("2"), json!("2s"))
    );

    // A window long enough that the reads around it fall inside one, even on a loaded machine.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        app.get(&path).await.body["value"],
        "0",
        "the window passed: the effective value is 0 before any write"
    );
    let second = app
        .processed(&app.event(&program, "win", "w2", json!({})).await)
        .await;
    assert_eq!(second["rule_evaluations"][0]["results"][0]["previous"], "0");
    assert_eq!(app.get(&path).await.body["value"], "2");
    let resets = app
        .get(&format!(
            "/participants/{win}/activity/state-history?operation=auto_reset"
        ))
        .await
        .body;
    let reset = &data(&resets)[0];
    assert_eq!(
        (reset["old_value"].clone(), reset["new_value"].clone()),
        (json!("2"), json!("0"))
    );
    assert_eq!(reset["event_id"], second["id"]);
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn participant_profile_and_state_endpoints(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = app.program_with_points("Profiles", "PTS").await;
    let pid = id(&app
        .created(
            "/participants",
            json!({"external_id": "pat", "email": "pat@example.com", "program_id": program}),
        )
        .await);
    let base = format!("/participants/{pid}");

    // E20: partial profile update; "" clears; attributes merge; tags replace; status is not changed here.
    let updated = app.patch(&base, json!({"first_name": "Pat", "email": "", "attributes": {"plan": "gold"}, "tags": ["A", "b"]})).await;
    assert_eq!(updated.status.as_u16(), 200, "{}", updated.body);
    assert_eq!(
        (
            updated.body["first_name"].clone(),
            updated.body["email"].clone()
        ),
        (json!("Pat"), Value::Null)
    );
    assert_eq!(updated.body["tags"], json!(["a", "b"]));
    assert_eq!(
        app.patch(&base, json!({"status": "CLOSED"}))
            .await
            .status
            .as_u16(),
        400
    );
    assert_eq!(
        app.patch(&base, json!({"email": "nope"}))
            .await
            .status
            .as_u16(),
        400
    );
    assert_eq!(
        app.patch(&format!("{base}/status"), json!({"status": "GONE"}))
            .await
            .status
            .as_u16(),
        400
    );

    // Tags (E22–E25).
    let replaced = app
        .call(
            reqwest::Method::PUT,
            &format!("{base}/state/tags"),
            Some(json!({"tags": ["x", "Y"]})),
        )
        .await;
    assert_eq!(replaced.body, json!({"tags": ["x", "y"]}));
    let added = app
        .call(
            reqwest::Method::PUT,
            &format!("{base}/state/tags/VIP"),
            None,
        )
        .await;
    assert_eq!(
        (added.status.as_u16(), added.body.clone()),
        (201, json!({"tag": "vip"}))
    );
    assert_eq!(
        app.call(
            reqwest::Method::PUT,
            &format!("{base}/state/tags/vip"),
            None
        )
        .await
        .status
        .as_u16(),
        200
    );
    assert_eq!(
        app.call(
            reqwest::Method::DELETE,
            &format!("{base}/state/tags/x"),
            None
        )
        .await
        .status
        .as_u16(),
        204
    );
    assert_eq!(
        app.call(
            reqwest::Method::DELETE,
            &format!("{base}/state/tags/absent"),
            None
        )
        .await
        .status
        .as_u16(),
        204
    );
    let page = app.get(&format!("{base}/state/tags?limit=1")).await.body;
    assert_eq!(page["data"], json!([{"tag": "vip"}]));
    let cursor = page["pagination"]["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let rest = app
        .get(&format!("{base}/state/tags?limit=1&cursor={cursor}"))
        .await
        .body;
    assert_eq!(
        (rest["data"].clone(), rest["pagination"]["has_more"].clone()),
        (json!([{"tag": "y"}]), json!(false))
    );

    // Attributes (E26–E29).
    let merged = app
        .patch(
            &format!("{base}/state/attributes"),
            json!({"attributes": {"region": "eu"}}),
        )
        .await;
    assert_eq!(
        merged.body,
        json!({"attributes": {"plan": "gold", "region": "eu"}})
    );
    let set = app
        .call(
            reqwest::Method::PUT,
            &format!("{base}/state/attributes/plan"),
            Some(json!({"value": "silver"})),
        )
        .await;
    assert_eq!(set.body, json!({"key": "plan", "value": "silver"}));
    assert_eq!(
        app.call(
            reqwest::Method::PUT,
            &format!("{base}/state/attributes/plan"),
            Some(json!({"value": ""}))
        )
        .await
        .status
        .as_u16(),
        400
    );
    assert_eq!(
        app.call(
            reqwest::Method::DELETE,
            &format!("{base}/state/attributes/region"),
            None
        )
        .await
        .status
        .as_u16(),
        204
    );
    assert_eq!(
        app.get(&format!("{base}/state/attributes")).await.body["data"],
        json!([{"key": "plan", "value": "silver"}])
    );

    // Counters (E30–E33).
    let counter = app
        .call(
            reqwest::Method::PUT,
            &format!("{base}/state/counters/points_earned"),
            Some(json!({"value": "1500.50", "reset_after": "720h"})),
        )
        .await;
    assert_eq!(
        (
            counter.body["value"].clone(),
            counter.body["reset_after"].clone()
        ),
        (json!("1500.5"), json!("720h"))
    );
    assert!(counter.body["last_reset_at"].is_string());
    let cleared = app
        .call(
            reqwest::Method::PUT,
            &format!("{base}/state/counters/points_earned"),
            Some(json!({"value": "2", "reset_after": ""})),
        )
        .await;
    assert_eq!(cleared.body["reset_after"], Value::Null);
    assert_eq!(
        app.call(
            reqwest::Method::PUT,
            &format!("{base}/state/counters/x"),
            Some(json!({"value": "ten"}))
        )
        .await
        .status
        .as_u16(),
        400
    );
    assert_eq!(
        app.get(&format!("{base}/state/counters")).await.body["data"][0]["value"],
        "2"
    );
    assert_eq!(
        app.call(
            reqwest::Method::DELETE,
            &format!("{base}/state/counters/points_earned"),
            None
        )
        .await
        .status
        .as_u16(),
        204
    );
    assert_eq!(
        app.get(&format!("{base}/state/counters/points_earned"))
            .await
            .status
            .as_u16(),
        404
    );

    // Search spans external_id and profile fields; filters AND together.
    app.created(
        "/participants",
        json!({"external_id": "quinn", "last_name": "Patterson"}),
    )
    .await;
    let names = |body: Value| -> Vec<Value> {
        data(&body)
            .iter()
            .map(|p| p["external_id"].clone())
            .collect()
    };
    let found = names(
        app.get("/participants?search=pat&sort_by=external_id&sort_dir=asc")
            .await
            .body,
    );
    assert_eq!(found, [json!("pat"), json!("quinn")]);
    assert_eq!(
        names(
            app.get(&format!("/participants?search=pat&program_id={program}"))
                .await
                .body
        ),
        [json!("pat")]
    );
    assert_eq!(
        names(app.get("/participants?status=CLOSED").await.body),
        Vec::<Value>::new()
    );

    // History records API changes with the key that made them; E46 lists the participant's events.
    let history = data(
        &app.get(&format!("{base}/activity/state-history?limit=100"))
            .await
            .body,
    );
    assert!(history.len() >= 10, "{history:?}");
    assert!(
        history
            .iter()
            .all(|h| h["changed_by_api_key_id"].is_string() && h["event_id"].is_null())
    );
    app.event(&program, "pat", "e1", json!({})).await;
    app.event(&program, "someone-else", "e2", json!({})).await;
    assert_eq!(
        data(&app.get(&format!("{base}/activity/events")).await.body).len(),
        1
    );
    app.stop().await;
}
