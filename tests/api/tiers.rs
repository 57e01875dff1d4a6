//! Tier definitions: keys and ranks, levels upserted by key, lifecycle validated, archive one way.

use crate::common::{TestApp, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn status_tier() -> Value {
    json!({"key": "status", "display_name": "Status",
           "levels": [
               {"key": "silver", "rank": 1, "color": "#C0C0C0"},
               {"key": "gold", "rank": 2, "benefits": {"points_multiplier": 2},
                "qualification": {"mode": "ALL", "criteria": [{"counter": "spend", "operator": ">=", "threshold": 1000}]}}],
           "lifecycle": {"retention": {"mode": "ACTIVITY_REFRESH", "duration": "8760h"},
                         "downgrade_policy": {"mode": "DROP_ONE", "grace_days": 30, "min_level": "silver"},
                         "counters": {"qualifying": ["spend"], "rollover": "EXCESS"}}})
}

fn level_summary(tier: &Value) -> Vec<(Value, Value)> {
    tier["levels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| (l["key"].clone(), l["rank"].clone()))
        .collect()
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_tier_is_defined_changed_by_key_and_archived_for_good(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = app.program_with_points("Club", "PTS").await;
    let tiers = format!("/programs/{program}/tiers");
    let created = app.post(&tiers, status_tier()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["status"], "ACTIVE");
    assert_eq!(
        level_summary(&created.body),
        [(json!("silver"), json!(1)), (json!("gold"), json!(2))]
    );
    assert_eq!(
        created.body["levels"][1]["benefits"]["points_multiplier"],
        2
    );
    assert_eq!(
        created.body["lifecycle"]["downgrade_policy"]["min_level"],
        "silver"
    );
    assert!(created.body.get("archived_at").is_none());
    assert_error(
        "the same key again",
        &app.post(&tiers, status_tier()).await,
        409,
        "conflict",
        None,
    );

    let path = format!("{tiers}/status");
    let patched = app
        .patch(
            &path,
            json!({"levels": [{"key": "gold", "benefits": {"points_multiplier": 3}, "qualification": {}},
                              {"key": "platinum", "rank": 3}],
                   "display_name": null}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        level_summary(&patched.body),
        [
            (json!("silver"), json!(1)),
            (json!("gold"), json!(2)),
            (json!("platinum"), json!(3))
        ]
    );
    let gold = &patched.body["levels"][1];
    assert_eq!(gold["benefits"]["points_multiplier"], 3);
    assert_eq!(
        gold["qualification"],
        Value::Null,
        "{{}} removes the qualification"
    );
    assert_eq!(patched.body["display_name"], Value::Null);
    assert!(
        patched.body["lifecycle"]["retention"].is_object(),
        "a lifecycle left out is unchanged"
    );

    let swapped = app
        .patch(
            &path,
            json!({"levels": [{"key": "silver", "rank": 2}, {"key": "gold", "rank": 1}]}),
        )
        .await;
    assert_eq!(
        swapped.status,
        StatusCode::OK,
        "ranks may be swapped in one patch: {}",
        swapped.body
    );
    assert_error(
        "a rank another level holds",
        &app.patch(&path, json!({"levels": [{"key": "platinum", "rank": 1}]}))
            .await,
        409,
        "conflict",
        None,
    );
    assert_error(
        "a new level without a rank",
        &app.patch(&path, json!({"levels": [{"key": "diamond"}]}))
            .await,
        400,
        "bad_request",
        Some("levels[0].rank"),
    );
    let rules_only = app.patch(&path, json!({"lifecycle": {}})).await;
    assert_eq!(
        rules_only.body["lifecycle"],
        Value::Null,
        "{{}} makes the tier rules-only"
    );

    let listed = app.get(&tiers).await.body;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    let archive = format!("{path}/archive");
    let archived = app.post(&archive, json!({})).await;
    assert_eq!(archived.status, StatusCode::OK, "{}", archived.body);
    assert_eq!(archived.body["status"], "ARCHIVED");
    assert!(archived.body["archived_at"].is_string());
    assert_error(
        "archived twice",
        &app.post(&archive, json!({})).await,
        409,
        "tier_archived",
        None,
    );
    assert_error(
        "an archived tier is read-only",
        &app.patch(&path, json!({"display_name": "x"})).await,
        409,
        "tier_archived",
        None,
    );
    assert_eq!(
        app.get(&path).await.status,
        StatusCode::OK,
        "reads still work"
    );
    assert_error(
        "an unknown tier",
        &app.get(&format!("{tiers}/nope")).await,
        404,
        "not_found",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_tier_definition_is_validated_field_by_field(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = app.program_with_points("Club", "PTS").await;
    let tiers = format!("/programs/{program}/tiers");
    let bad = json!({"key": "Status", "levels": [
        {"key": "gold", "rank": 1, "color": "gold"},
        {"key": "gold", "rank": 2, "qualification": {"mode": "SOME", "criteria": [{"counter": "x", "operator": "=>", "threshold": "1"}]}}],
        "lifecycle": {"retention": {"mode": "ACTIVITY_REFRESH"}, "qualification_period": {"type": "FIXED_YEAR"}}});
    let r = app.post(&tiers, bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let mut fields: Vec<String> = r.body["details"]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["field"].as_str().map(str::to_owned))
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "key",
            "levels",
            "levels[0].color",
            "levels[1].qualification.criteria[0].operator",
            "levels[1].qualification.criteria[0].threshold",
            "levels[1].qualification.mode",
            "lifecycle.qualification_period.start_month",
            "lifecycle.retention.duration",
        ]
    );
    let mut floor = status_tier();
    floor["lifecycle"]["downgrade_policy"]["min_level"] = json!("bronze");
    assert_error(
        "a floor that is not a level",
        &app.post(&tiers, floor).await,
        400,
        "bad_request",
        Some("lifecycle.downgrade_policy.min_level"),
    );
    app.created(&tiers, status_tier()).await;
    let activity = app.get("/reports/program-activity").await.body;
    assert_eq!(activity["data"][0]["tier_count"], 1);
}

/// The tier changes in the participant's state history, oldest first: (operation, old, new).
async fn tier_history(app: &TestApp, participant: &str) -> Vec<(Value, Value, Value)> {
    let history = app
        .get(&format!(
            "/participants/{participant}/activity/state-history"
        ))
        .await
        .body;
    let mut changes: Vec<(Value, Value, Value)> = history["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["state_type"] == "tier")
        .map(|c| {
            (
                c["operation"].clone(),
                c["old_value"].clone(),
                c["new_value"].clone(),
            )
        })
        .collect();
    changes.reverse();
    changes
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_participant_tier_is_set_read_expired_and_removed_with_its_history(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = app.program_with_points("Club", "PTS").await;
    app.created(&format!("/programs/{program}/tiers"), status_tier())
        .await;
    let member = crate::common::id(
        &app.created("/participants", json!({"external_id": "ida"}))
            .await,
    );
    let tiers = format!("/participants/{member}/state/tiers");
    let status = format!("{tiers}/status?program_id={program}");
    assert_eq!(
        app.get(&format!("{tiers}?program_id={program}")).await.body["data"],
        json!([])
    );
    assert_error(
        "no level yet",
        &app.get(&status).await,
        404,
        "not_found",
        None,
    );

    let until = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let set = app
        .call(
            reqwest::Method::PUT,
            &status,
            Some(json!({"level": "gold", "expires_at": until})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(
        (
            set.body["key"].clone(),
            set.body["level"].clone(),
            set.body["rank"].clone()
        ),
        (json!("status"), json!("gold"), json!(2))
    );
    assert_eq!(set.body["benefits"]["points_multiplier"], 2);
    assert!(set.body["expires_at"].is_string());
    let put = |body: Value| app.call(reqwest::Method::PUT, &status, Some(body));
    assert_error(
        "an unknown level",
        &put(json!({"level": "bronze"})).await,
        400,
        "bad_request",
        Some("level"),
    );
    assert_error(
        "an expiry in the past",
        &put(json!({"level": "gold", "expires_at": "2020-01-01T00:00:00Z"})).await,
        400,
        "bad_request",
        Some("expires_at"),
    );
    assert_error(
        "no program",
        &app.call(
            reqwest::Method::PUT,
            &format!("{tiers}/status"),
            Some(json!({"level": "gold"})),
        )
        .await,
        400,
        "bad_request",
        Some("program_id"),
    );
    assert_eq!(
        put(json!({"level": "silver"})).await.body["expires_at"],
        Value::Null
    );
    assert_eq!(
        app.call(reqwest::Method::DELETE, &status, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_error("removed", &app.get(&status).await, 404, "not_found", None);
    assert_eq!(
        tier_history(&app, &member).await,
        [
            (json!("set"), Value::Null, json!("gold")),
            (json!("set"), json!("gold"), json!("silver")),
            (json!("remove"), json!("silver"), Value::Null),
        ]
    );

    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(600)).to_rfc3339();
    assert_eq!(
        put(json!({"level": "gold", "expires_at": soon}))
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_error(
        "past its expiry",
        &app.get(&status).await,
        404,
        "not_found",
        None,
    );

    put(json!({"level": "silver"})).await;
    app.patch(
        &format!("/participants/{member}/status"),
        json!({"status": "SUSPENDED"}),
    )
    .await;
    assert_error(
        "a suspended member",
        &put(json!({"level": "gold"})).await,
        409,
        "participant_inactive",
        None,
    );
    app.patch(
        &format!("/participants/{member}/status"),
        json!({"status": "ACTIVE"}),
    )
    .await;
    app.post(
        &format!("/programs/{program}/tiers/status/archive"),
        json!({}),
    )
    .await;
    assert_error(
        "an archived tier",
        &put(json!({"level": "gold"})).await,
        409,
        "tier_archived",
        None,
    );
    let kept = app.get(&format!("{tiers}?program_id={program}")).await.body;
    assert_eq!(
        kept["data"][0]["level"], "silver",
        "an archived tier's levels stay readable"
    );
}

/// The results of the event's actions, over every rule that matched.
fn action_results(event: &Value) -> Vec<Value> {
    event["rule_evaluations"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["results"].as_array().cloned().unwrap_or_default())
        .collect()
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_rule_sets_a_tier_and_skips_an_archived_one(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = app.program_with_points("Club", "PTS").await;
    app.created(&format!("/programs/{program}/tiers"), status_tier())
        .await;
    let set_tier = |level: &str| json!([{"type": "SET_TIER", "tier": "status", "level": level, "expires_at": "720h"}]);
    app.rule(&program, "vip", "event.kind == 'vip'", set_tier("gold"))
        .await;
    app.rule(
        &program,
        "typo",
        "event.kind == 'typo'",
        set_tier("diamond"),
    )
    .await;

    let done = app
        .processed(
            &app.event(&program, "jo", "t1", json!({"kind": "vip"}))
                .await,
        )
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let jo = app.participant_id("jo").await;
    assert_eq!(
        action_results(&done),
        [
            json!({"type": "SET_TIER", "participant_id": jo, "tier": "status", "level": "gold",
                "previous": null, "skipped": false})
        ]
    );
    let held = app
        .get(&format!(
            "/participants/{jo}/state/tiers/status?program_id={program}"
        ))
        .await;
    assert_eq!(held.body["level"], "gold");
    assert!(
        held.body["expires_at"].is_string(),
        "expires 720h after the event"
    );
    assert_eq!(
        tier_history(&app, &jo).await,
        [(json!("set"), Value::Null, json!("gold"))]
    );

    let failed = app
        .processed(
            &app.event(&program, "jo", "t2", json!({"kind": "typo"}))
                .await,
        )
        .await;
    assert_eq!(
        failed["status"], "FAILED",
        "a level the tier does not have fails the event: {failed}"
    );

    app.post(
        &format!("/programs/{program}/tiers/status/archive"),
        json!({}),
    )
    .await;
    let skipped = app
        .processed(
            &app.event(&program, "kim", "t3", json!({"kind": "vip"}))
                .await,
        )
        .await;
    assert_eq!(skipped["status"], "COMPLETED", "{skipped}");
    assert_eq!(action_results(&skipped)[0]["skipped"], true);
    let kim = app.participant_id("kim").await;
    assert_error(
        "an archived tier gives no level",
        &app.get(&format!(
            "/participants/{kim}/state/tiers/status?program_id={program}"
        ))
        .await,
        404,
        "not_found",
        None,
    );
}
