//! Tiers over time: automatic qualification in the event's own transaction, levels in rules, and the lifecycle
//! pass (manual expiry, inactivity, period ends, pending downgrades), run here at chosen instants.

use crate::common::{TestApp, id};
use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// silver: spend ≥ 100 or 3 orders; gold: spend ≥ 1000 and 2 orders; platinum only by hand.
fn status_tier(lifecycle: Value) -> Value {
    json!({"key": "status", "lifecycle": lifecycle, "levels": [
        {"key": "silver", "rank": 1, "benefits": {"points_multiplier": 1.5},
         "qualification": {"mode": "ANY", "criteria": [
             {"counter": "spend", "operator": ">=", "threshold": 100},
             {"counter": "orders", "operator": ">=", "threshold": 3}]}},
        {"key": "gold", "rank": 2, "benefits": {"points_multiplier": 2},
         "qualification": {"mode": "ALL", "criteria": [
             {"counter": "spend", "operator": ">=", "threshold": 1000},
             {"counter": "orders", "operator": ">=", "threshold": 2}]}},
        {"key": "platinum", "rank": 3, "benefits": {"points_multiplier": 3}}]})
}

/// A program with the status tier, whose purchases count spend and orders and earn points times the member's
/// multiplier as the event began.
async fn club(app: &TestApp, lifecycle: Value) -> (String, String) {
    let (program, points) = app.program_with_points("Club", "PTS").await;
    let tier = app
        .post(
            &format!("/programs/{program}/tiers"),
            status_tier(lifecycle),
        )
        .await;
    assert_eq!(tier.status, StatusCode::CREATED, "{}", tier.body);
    app.rule(
        &program,
        "purchases",
        "event.type == 'purchase'",
        json!([
            {"type": "CREDIT", "asset_id": points,
             "amount": "event.amount * ('status' in participant.tiers ? participant.tiers.status.benefits.points_multiplier : 1.0)"},
            {"type": "COUNTER", "key": "spend", "value": "event.amount"},
            {"type": "COUNTER", "key": "orders"}]),
    )
    .await;
    (program, points)
}

async fn purchase(app: &TestApp, program: &str, who: &str, key: &str, amount: i64) -> Value {
    let event = app
        .event(
            program,
            who,
            key,
            json!({"type": "purchase", "amount": amount}),
        )
        .await;
    let done = app.processed(&event).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    done
}

/// The member's level key in the status tier, or null at the base.
async fn level(app: &TestApp, member: &str, program: &str) -> Value {
    let r = app
        .get(&format!(
            "/participants/{member}/state/tiers/status?program_id={program}"
        ))
        .await;
    match r.status {
        StatusCode::NOT_FOUND => Value::Null,
        _ => r.body["level"].clone(),
    }
}

async fn set_level(app: &TestApp, member: &str, program: &str, body: Value) {
    let r = app
        .call(
            Method::PUT,
            &format!("/participants/{member}/state/tiers/status?program_id={program}"),
            Some(body),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn counter(app: &TestApp, member: &str, key: &str) -> Value {
    app.get(&format!("/participants/{member}/state/counters/{key}"))
        .await
        .body["value"]
        .clone()
}

async fn set_counter(app: &TestApp, member: &str, key: &str, value: &str) {
    let r = app
        .call(
            Method::PUT,
            &format!("/participants/{member}/state/counters/{key}"),
            Some(json!({"value": value})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn member(app: &TestApp, external_id: &str) -> String {
    id(&app
        .created("/participants", json!({"external_id": external_id}))
        .await)
}

/// The tier and counter changes in the member's state history, oldest first: (type, key, old, new, event).
async fn changes(app: &TestApp, member: &str) -> Vec<(String, Value, Value, Value)> {
    let history = app
        .get(&format!(
            "/participants/{member}/activity/state-history?limit=100"
        ))
        .await
        .body;
    let mut changes: Vec<(String, Value, Value, Value)> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["state_type"] == "tier" || c["operation"] == "auto_reset")
        .map(|c| {
            (
                format!(
                    "{} {}",
                    c["state_type"].as_str().unwrap_or(""),
                    c["key"].as_str().unwrap_or("")
                ),
                c["old_value"].clone(),
                c["new_value"].clone(),
                c["event_id"].clone(),
            )
        })
        .collect();
    changes.reverse();
    changes
}

/// Runs the lifecycle pass as of `at` until nothing is due, a batch of `batch` at a time.
async fn pass(app: &TestApp, at: DateTime<Utc>, batch: i64) {
    for _ in 0..1000 {
        let done = scrip::tiers::lifecycle::run_once(&app.pool, at, batch)
            .await
            .expect("lifecycle pass");
        if done == 0 {
            return;
        }
    }
    panic!("the lifecycle pass did not finish");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_member_crossing_a_threshold_holds_the_new_level_when_the_event_completes(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = club(&app, Value::Null).await;

    purchase(&app, &program, "ann", "p1", 50).await;
    let ann = app.participant_id("ann").await;
    assert_eq!(
        level(&app, &ann, &program).await,
        Value::Null,
        "50 qualifies for nothing"
    );

    let second = purchase(&app, &program, "ann", "p2", 60).await;
    assert_eq!(
        level(&app, &ann, &program).await,
        "silver",
        "ANY: spend 110 is enough without 3 orders"
    );
    assert_eq!(
        changes(&app, &ann).await,
        [(
            "tier status".into(),
            Value::Null,
            json!("silver"),
            second["id"].clone()
        )],
        "the upgrade is the event's own change"
    );

    purchase(&app, &program, "ann", "p3", 1000).await;
    assert_eq!(
        level(&app, &ann, &program).await,
        "gold",
        "ALL: spend 1110 and 3 orders"
    );
    purchase(&app, &program, "ann", "p4", 100).await;
    assert_eq!(
        app.available(&ann, &points).await,
        // 50 and 60 at the base, 1000 as silver (×1.5), 100 as gold (×2).
        "1810"
    );

    purchase(&app, &program, "bo", "b1", 2000).await;
    let bo = app.participant_id("bo").await;
    assert_eq!(
        level(&app, &bo, &program).await,
        "silver",
        "ALL: gold needs 2 orders however much is spent"
    );

    set_level(&app, &bo, &program, json!({"level": "platinum"})).await;
    purchase(&app, &program, "bo", "b2", 10).await;
    assert_eq!(
        level(&app, &bo, &program).await,
        "platinum",
        "qualification only moves up"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_set_tier_in_the_event_decides_that_tier_over_qualification(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = club(&app, Value::Null).await;
    app.rule(
        &program,
        "probation",
        "event.type == 'purchase' && event.amount > 5000",
        json!([{"type": "SET_TIER", "tier": "status", "level": "silver"}]),
    )
    .await;

    purchase(&app, &program, "cy", "c1", 100).await;
    purchase(&app, &program, "cy", "c2", 6000).await;
    let cy = app.participant_id("cy").await;
    assert_eq!(
        level(&app, &cy, &program).await,
        "silver",
        "the rule's level stands for the event though the counters qualify for gold"
    );
    purchase(&app, &program, "cy", "c3", 2).await;
    assert_eq!(
        level(&app, &cy, &program).await,
        "gold",
        "the next event qualifies"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_level_set_until_a_time_is_removed_by_the_pass_once_it_passes(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_without_workers(connect).await;
    let (program, _) = app.program_with_points("Club", "PTS").await;
    app.created(
        &format!("/programs/{program}/tiers"),
        status_tier(Value::Null),
    )
    .await;
    let dee = member(&app, "dee").await;
    let until = Utc::now() + Duration::days(30);
    set_level(
        &app,
        &dee,
        &program,
        json!({"level": "gold", "expires_at": until.to_rfc3339()}),
    )
    .await;

    pass(&app, until - Duration::seconds(1), 100).await;
    assert_eq!(level(&app, &dee, &program).await, "gold");
    pass(&app, until, 100).await;
    pass(&app, until + Duration::days(1), 100).await;
    assert_eq!(level(&app, &dee, &program).await, Value::Null);
    assert_eq!(
        changes(&app, &dee).await,
        [
            (
                "tier status".into(),
                Value::Null,
                json!("gold"),
                Value::Null
            ),
            (
                "tier status".into(),
                json!("gold"),
                Value::Null,
                Value::Null
            ),
        ],
        "removed once, when its time came"
    );
}

/// The member's level key in each of these tiers (null at the base).
async fn levels_in(app: &TestApp, member: &str, program: &str, keys: [&str; 3]) -> [Value; 3] {
    let held = app
        .get(&format!(
            "/participants/{member}/state/tiers?program_id={program}"
        ))
        .await
        .body;
    keys.map(|key| {
        held["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["key"] == key)
            .map_or(Value::Null, |t| t["level"].clone())
    })
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn inactive_holders_drop_by_their_tiers_policy_after_the_grace_days(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_without_workers(connect).await;
    let (program, _) = app.program_with_points("Club", "PTS").await;
    let lifecycle = |policy: Value| json!({"retention": {"mode": "ACTIVITY_REFRESH", "duration": "720h"}, "downgrade_policy": policy});
    let tiers = format!("/programs/{program}/tiers");
    let keys = ["drop_one", "to_qualifying", "hold"];
    for (key, policy) in keys.iter().zip([
        json!({"mode": "DROP_ONE", "grace_days": 10, "min_level": "silver"}),
        json!({"mode": "DROP_TO_QUALIFYING", "grace_days": 10}),
        json!({"mode": "HOLD"}),
    ]) {
        let mut tier = status_tier(lifecycle(policy));
        tier["key"] = json!(key);
        app.created(&tiers, tier).await;
    }
    let eve = member(&app, "eve").await;
    set_counter(&app, &eve, "spend", "150").await;
    for key in keys {
        let r = app
            .call(
                Method::PUT,
                &format!("/participants/{eve}/state/tiers/{key}?program_id={program}"),
                Some(json!({"level": "platinum"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let levels = || levels_in(&app, &eve, &program, keys);
    let now = Utc::now();

    pass(&app, now + Duration::days(35), 100).await;
    assert_eq!(
        levels().await,
        [json!("platinum"), json!("platinum"), json!("platinum")],
        "30 days without activity, within the 10 grace days"
    );
    let first = now + Duration::days(41);
    pass(&app, first, 100).await;
    assert_eq!(
        levels().await,
        [json!("gold"), json!("silver"), json!("platinum")],
        "DROP_ONE goes one rank down, DROP_TO_QUALIFYING to what spend 150 qualifies for, HOLD keeps it"
    );
    pass(&app, first, 100).await;
    assert_eq!(
        levels().await,
        [json!("gold"), json!("silver"), json!("platinum")],
        "a rerun at the same instant changes nothing"
    );
    let second = first + Duration::days(41);
    pass(&app, second, 100).await;
    assert_eq!(
        levels().await,
        [json!("silver"), json!("silver"), json!("platinum")]
    );
    pass(&app, second + Duration::days(41), 100).await;
    assert_eq!(
        levels().await,
        [json!("silver"), json!("silver"), json!("platinum")],
        "min_level is a floor, and a member who still qualifies keeps the level"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_event_restarts_the_inactivity_timer(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = club(
        &app,
        json!({"retention": {"mode": "ACTIVITY_REFRESH", "duration": "720h"},
               "downgrade_policy": {"mode": "DROP_ONE"}}),
    )
    .await;
    let (fay, gus) = (member(&app, "fay").await, member(&app, "gus").await);
    for who in [&fay, &gus] {
        set_level(&app, who, &program, json!({"level": "platinum"})).await;
    }
    // Both have held platinum for 25 days; then gus buys something.
    sqlx::query(
        "UPDATE holder_tiers SET acquired_at = acquired_at - interval '25 days', active_at = NULL",
    )
    .execute(&app.pool)
    .await
    .expect("backdate");
    purchase(&app, &program, "gus", "g1", 1).await;

    pass(&app, Utc::now() + Duration::days(10), 100).await;
    assert_eq!(
        level(&app, &fay, &program).await,
        "gold",
        "35 days without activity"
    );
    assert_eq!(
        level(&app, &gus, &program).await,
        "platinum",
        "active 10 days ago"
    );
}

/// The next 1 February at midnight UTC after now.
fn next_february() -> DateTime<Utc> {
    let now = Utc::now();
    [now.year(), now.year() + 1]
        .into_iter()
        .filter_map(|y| Utc.with_ymd_and_hms(y, 2, 1, 0, 0, 0).single())
        .find(|end| *end > now)
        .expect("a February ahead")
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_fixed_year_ends_with_excess_rolled_over_and_downgrades_for_who_no_longer_qualifies(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = club(
        &app,
        json!({"retention": {"mode": "PERIOD_BASED"},
               "qualification_period": {"type": "FIXED_YEAR", "start_month": 2, "start_day": 1},
               "status_validity": {"extend_months": 1},
               "downgrade_policy": {"mode": "DROP_TO_QUALIFYING"},
               "counters": {"qualifying": ["spend"], "rollover": "EXCESS"}}),
    )
    .await;
    purchase(&app, &program, "hal", "h1", 700).await;
    purchase(&app, &program, "hal", "h2", 600).await;
    purchase(&app, &program, "ivy", "i1", 150).await;
    purchase(&app, &program, "jon", "j1", 50).await;
    let (hal, ivy, jon) = (
        app.participant_id("hal").await,
        app.participant_id("ivy").await,
        app.participant_id("jon").await,
    );
    set_level(&app, &ivy, &program, json!({"level": "gold"})).await;
    assert_eq!(level(&app, &hal, &program).await, "gold");

    let end = next_february();
    pass(&app, end - Duration::seconds(1), 1).await;
    assert_eq!(
        counter(&app, &hal, "spend").await,
        "1300",
        "the period has not ended"
    );

    // One member per batch: the review keeps its place between batches.
    pass(&app, end + Duration::hours(1), 1).await;
    assert_eq!(
        counter(&app, &hal, "spend").await,
        "300",
        "what exceeds gold's 1000"
    );
    assert_eq!(
        counter(&app, &ivy, "spend").await,
        "0",
        "nothing exceeds gold's 1000"
    );
    assert_eq!(
        counter(&app, &jon, "spend").await,
        "50",
        "the base has no threshold"
    );
    assert_eq!(
        counter(&app, &hal, "orders").await,
        "2",
        "not a qualifying counter"
    );
    assert_eq!(
        level(&app, &ivy, &program).await,
        "gold",
        "status stays valid for extend_months past the period end"
    );
    pass(&app, end + Duration::days(31), 1).await;
    assert_eq!(
        level(&app, &hal, &program).await,
        "gold",
        "hal qualified for gold"
    );
    assert_eq!(
        level(&app, &ivy, &program).await,
        "silver",
        "ivy's spend of 150 qualified for silver only"
    );
    assert_eq!(level(&app, &jon, &program).await, Value::Null);

    let before = (
        changes(&app, &hal).await,
        changes(&app, &ivy).await,
        changes(&app, &jon).await,
    );
    pass(&app, end + Duration::days(31), 1).await;
    pass(&app, end + Duration::days(40), 2).await;
    assert_eq!(
        (
            changes(&app, &hal).await,
            changes(&app, &ivy).await,
            changes(&app, &jon).await
        ),
        before,
        "a rerun finds the period reviewed and nothing due"
    );
    assert_eq!(
        before.1.last(),
        Some(&(
            "tier status".into(),
            json!("gold"),
            json!("silver"),
            Value::Null
        ))
    );
    assert_eq!(
        before.0.iter().filter(|c| c.0 == "counter spend").count(),
        1,
        "hal's spend rolled over once: {:?}",
        before.0
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn qualifying_again_before_a_downgrade_falls_due_cancels_it(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = club(
        &app,
        json!({"qualification_period": {"type": "CALENDAR_YEAR"},
               "status_validity": {"extend_months": 3},
               "counters": {"qualifying": ["spend"], "rollover": "NONE"}}),
    )
    .await;
    let mut members = Vec::new();
    for who in ["kit", "lou"] {
        purchase(&app, &program, who, &format!("{who}1"), 150).await;
        let id = app.participant_id(who).await;
        set_level(&app, &id, &program, json!({"level": "gold"})).await;
        members.push(id);
    }
    let year_end = Utc
        .with_ymd_and_hms(Utc::now().year() + 1, 1, 1, 0, 0, 0)
        .single()
        .expect("new year");
    pass(&app, year_end + Duration::hours(1), 100).await;
    assert_eq!(
        counter(&app, &members[0], "spend").await,
        "0",
        "NONE resets"
    );
    assert_eq!(
        level(&app, &members[0], &program).await,
        "gold",
        "spend 150 qualified for silver only, but gold stays valid three more months"
    );

    purchase(&app, &program, "kit", "kit2", 1000).await;
    pass(&app, year_end + Duration::days(100), 100).await;
    assert_eq!(
        level(&app, &members[0], &program).await,
        "gold",
        "kit qualified for gold again in the new period: the downgrade was cancelled"
    );
    assert_eq!(level(&app, &members[1], &program).await, "silver");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_wasm_rule_reads_the_participants_level_and_sets_one(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Club", "PTS").await;
    app.created(
        &format!("/programs/{program}/tiers"),
        status_tier(Value::Null),
    )
    .await;
    app.wasm_rule(
        &program,
        "vip-multiplier",
        json!({"asset_id": points}),
        json!({}),
    )
    .await;
    app.wasm_rule(
        &program,
        "scripted",
        json!({"on": {"promote": [
            {"type": "set-tier", "tier": "status", "level": "platinum", "expires_at": "720h"}]}}),
        json!({}),
    )
    .await;
    let (mo, ned) = (member(&app, "mo").await, member(&app, "ned").await);
    set_level(&app, &mo, &program, json!({"level": "gold"})).await;
    set_level(&app, &ned, &program, json!({"level": "silver"})).await;
    for who in ["mo", "ned"] {
        purchase(&app, &program, who, who, 10).await;
    }
    assert_eq!(
        app.available(&mo, &points).await,
        "20",
        "gold's multiplier is 2"
    );
    assert_eq!(app.available(&ned, &points).await, "15", "silver's is 1.5");

    let promoted = app
        .processed(
            &app.event(&program, "ned", "up", json!({"type": "promote"}))
                .await,
        )
        .await;
    assert_eq!(promoted["status"], "COMPLETED", "{promoted}");
    let held = app
        .get(&format!(
            "/participants/{ned}/state/tiers/status?program_id={program}"
        ))
        .await
        .body;
    assert_eq!(held["level"], "platinum");
    assert!(held["expires_at"].is_string(), "{held}");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_simulation_assumes_the_levels_it_is_given(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = club(&app, Value::Null).await;
    let rules = app.get(&format!("/rules?program_id={program}")).await.body;
    let rule = id(&rules["data"][0]);
    let path = format!("/rules/{rule}/simulate");
    let simulate = |state: Value| {
        app.post(
            &path,
            json!({"event": {"type": "purchase", "amount": 100}, "participant_state": state}),
        )
    };
    let gold = simulate(json!({"tiers": {"status": {"level": "gold", "rank": 2,
                                                     "benefits": {"points_multiplier": 2}}}}))
    .await;
    assert_eq!(gold.status, StatusCode::OK, "{}", gold.body);
    assert_eq!(
        gold.body["evaluation"]["results"][0]["result"]["amount"],
        "200"
    );
    let base = simulate(json!({})).await;
    assert_eq!(
        base.body["evaluation"]["results"][0]["result"]["amount"],
        "100"
    );
    crate::common::assert_error(
        "a level without its key",
        &simulate(json!({"tiers": {"status": {"rank": 2}}})).await,
        400,
        "bad_request",
        Some("participant_state.tiers.status.level"),
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn passes_running_at_once_review_each_member_once(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_without_workers(connect).await;
    let (program, _) = app.program_with_points("Club", "PTS").await;
    app.created(
        &format!("/programs/{program}/tiers"),
        status_tier(json!({"qualification_period": {"type": "CALENDAR_YEAR"},
                           "counters": {"qualifying": ["spend"], "rollover": "EXCESS"}})),
    )
    .await;
    let mut members = Vec::new();
    for n in 0..9 {
        let who = member(&app, &format!("m{n}")).await;
        set_counter(&app, &who, "spend", "1250").await;
        set_counter(&app, &who, "orders", "2").await;
        set_level(&app, &who, &program, json!({"level": "gold"})).await;
        members.push(who);
    }
    let year_end = Utc
        .with_ymd_and_hms(Utc::now().year() + 1, 1, 1, 0, 0, 0)
        .single()
        .expect("new year");
    let at = year_end + Duration::hours(1);
    // Three passes, as three server processes would run them, two members a batch.
    tokio::join!(pass(&app, at, 2), pass(&app, at, 2), pass(&app, at, 2));
    for who in &members {
        assert_eq!(counter(&app, who, "spend").await, "250", "rolled over once");
        let rollovers = changes(&app, who)
            .await
            .into_iter()
            .filter(|c| c.0 == "counter spend")
            .count();
        assert_eq!(rollovers, 1);
        assert_eq!(level(&app, who, &program).await, "gold");
    }
}
