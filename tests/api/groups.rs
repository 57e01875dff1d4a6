//! Groups: households and teams pooling value in a shared wallet, their membership rules, their state, and
//! rules and transfers that move value into and out of the wallet.

use crate::common::{TestApp, assert_error, id};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn participant(app: &TestApp, external_id: &str) -> String {
    id(&app
        .created("/participants", json!({"external_id": external_id}))
        .await)
}

/// A group of these participants; the first is its ADMIN.
async fn group_of(app: &TestApp, name: &str, members: &[&str]) -> String {
    let members: Vec<Value> = members
        .iter()
        .enumerate()
        .map(|(i, p)| json!({"participant_id": p, "role": if i == 0 { "ADMIN" } else { "MEMBER" }}))
        .collect();
    let r = app
        .post("/groups", json!({"name": name, "members": members}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    id(&r.body)
}

/// The group's balance of one asset (all buckets), as E64 shows it.
async fn group_balance(app: &TestApp, group: &str, asset: &str) -> Value {
    let r = app.get(&format!("/groups/{group}/balances")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|b| b["asset_id"] == asset))
        .cloned()
        .unwrap_or(Value::Null)
}

async fn adjust_group(app: &TestApp, group: &str, body: Value) -> crate::common::Response {
    app.post(&format!("/groups/{group}/balances/adjust"), body)
        .await
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_household_pools_earnings_by_rules_that_target_its_group_and_spends_them(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Family", "FAM").await;
    let [ann, bo, cy] = [
        participant(&app, "ann").await,
        participant(&app, "bo").await,
        participant(&app, "cy").await,
    ];
    let household = group_of(&app, "The Smiths", &[&ann, &bo, &cy]).await;
    let to_group = json!({"type": "GROUP"});
    app.rule(
        &program,
        "Pool purchases",
        "event.type == 'purchase'",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "event.amount", "target": to_group},
               {"type": "COUNTER", "key": "purchases", "target": to_group}]),
    )
    .await;
    // Reads the group's state as the event began: the third purchase sees two before it.
    app.rule(
        &program,
        "Household bonus",
        "event.type == 'purchase' && group.counters.purchases >= 2.0",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "50",
                "target": {"type": "GROUP", "id": household}}]),
    )
    .await;
    let mut events = Vec::new();
    for (i, who) in ["ann", "bo", "cy"].into_iter().enumerate() {
        let data = json!({"type": "purchase", "amount": 100});
        events.push(app.event(&program, who, &format!("p-{i}"), data).await);
        let done = app.processed(&events[i]).await;
        assert_eq!(done["status"], "COMPLETED", "{done}");
    }
    let last = app.processed(&events[2]).await;
    let credit = &last["rule_evaluations"][0]["results"][0];
    assert_eq!(credit["group_id"], household.as_str(), "{credit}");
    assert!(credit.get("participant_id").is_none(), "{credit}");
    assert_eq!(last["rule_evaluations"][1]["status"], "SUCCESS", "{last}");

    let detail = app.get(&format!("/groups/{household}")).await;
    assert_eq!(detail.body["balances"][&points], "350", "{}", detail.body);
    assert_eq!(
        group_balance(&app, &household, &points).await["balance"],
        "350"
    );
    for member in [&ann, &bo, &cy] {
        assert_eq!(app.available(member, &points).await, "none");
    }
    let counter = app
        .get(&format!("/groups/{household}/state/counters/purchases"))
        .await;
    assert_eq!(counter.body["value"], "3", "{}", counter.body);
    let history = app
        .get(&format!(
            "/groups/{household}/activity/state-history?state_type=counter"
        ))
        .await;
    assert_eq!(history.body["data"].as_array().map(Vec::len), Some(3));

    // The household spends: 200 to ann, who redeems it.
    let r = app
        .post(
            "/transfers",
            json!({"program_id": program, "asset_id": points, "source_group_id": household,
                   "recipients": [{"participant_id": ann, "amount": "200"}], "description": "Treat"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["source_id"], household.as_str());
    let r = app
        .post(
            &format!("/participants/{ann}/redemptions"),
            json!({"program_id": program, "asset_id": points, "amount": "200",
                   "description": "Cinema tickets"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        group_balance(&app, &household, &points).await["balance"],
        "150"
    );
    assert_eq!(app.available(&ann, &points).await, "0");
    let journal = app
        .get(&format!("/journal-entries?group_id={household}"))
        .await;
    assert_eq!(journal.status, StatusCode::OK, "{}", journal.body);
    assert_eq!(journal.body["data"].as_array().map(Vec::len), Some(5));
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_group_needs_an_admin_and_keeps_its_last_one(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let [ann, bo] = [
        participant(&app, "ann").await,
        participant(&app, "bo").await,
    ];
    let r = app
        .post(
            "/groups",
            json!({"name": "Team", "members": [{"participant_id": ann}, {"participant_id": bo}]}),
        )
        .await;
    assert_error("no ADMIN", &r, 400, "bad_request", Some("members"));
    let stranger = "550e8400-e29b-41d4-a716-446655440000";
    let r = app
        .post(
            "/groups",
            json!({"name": "Team", "members": [{"participant_id": stranger, "role": "ADMIN"}]}),
        )
        .await;
    assert_error("unknown member", &r, 404, "not_found", None);

    let team = group_of(&app, "Team", &[&ann, &bo]).await;
    let member = |p: &str| format!("/groups/{team}/members/{p}");
    let r = app.patch(&member(&ann), json!({"role": "MEMBER"})).await;
    assert_error("demote the last ADMIN", &r, 409, "last_admin", None);
    let r = app.call(Method::DELETE, &member(&ann), None).await;
    assert_error("remove the last ADMIN", &r, 409, "last_admin", None);
    let r = app
        .post(
            &format!("/groups/{team}/members"),
            json!({"participant_id": bo}),
        )
        .await;
    assert_error("add an active member", &r, 409, "already_member", None);

    let r = app.patch(&member(&bo), json!({"role": "ADMIN"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["role"], "ADMIN");
    let r = app.patch(&member(&ann), json!({"role": "MEMBER"})).await;
    assert_eq!(r.status, StatusCode::OK, "with another ADMIN: {}", r.body);
    let members = app.get(&format!("/groups/{team}/members")).await;
    let roles: Vec<(Value, Value)> = members.body["data"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|m| (m["external_id"].clone(), m["role"].clone()))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        roles.contains(&(json!("ann"), json!("MEMBER"))),
        "{roles:?}"
    );
    assert!(roles.contains(&(json!("bo"), json!("ADMIN"))), "{roles:?}");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_member_who_left_is_no_longer_named_by_the_group_and_the_balance_stays(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Team", "TM").await;
    let [ann, bo] = [
        participant(&app, "ann").await,
        participant(&app, "bo").await,
    ];
    let team = group_of(&app, "Team", &[&ann, &bo]).await;
    let r = adjust_group(
        &app,
        &team,
        json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": "500",
               "description": "Starting pot"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["message"], "Group balance adjusted successfully");

    let r = app
        .call(
            Method::DELETE,
            &format!("/groups/{team}/members/{bo}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .patch(
            &format!("/groups/{team}/members/{bo}"),
            json!({"role": "ADMIN"}),
        )
        .await;
    assert_error("role of a former member", &r, 404, "not_found", None);
    let r = app
        .call(
            Method::DELETE,
            &format!("/groups/{team}/members/{bo}"),
            None,
        )
        .await;
    assert_error("remove a former member", &r, 404, "not_found", None);
    assert_eq!(group_balance(&app, &team, &points).await["balance"], "500");

    let active = app.get(&format!("/groups/{team}/members")).await;
    assert_eq!(active.body["data"].as_array().map(Vec::len), Some(1));
    let all = app
        .get(&format!("/groups/{team}/members?include_former=true"))
        .await;
    let bo_row = all.body["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|m| m["participant_id"] == bo.as_str()))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(bo_row["status"], "LEFT", "{}", all.body);
    assert!(bo_row["left_at"].is_string(), "{bo_row}");
    let groups = app.get(&format!("/participants/{bo}/groups")).await;
    assert_eq!(groups.body["data"].as_array().map(Vec::len), Some(0));

    let r = app
        .post(
            &format!("/groups/{team}/members"),
            json!({"members": [{"participant_id": bo, "role": "ADMIN"}]}),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "re-adding a former member: {}",
        r.body
    );
    let groups = app.get(&format!("/participants/{bo}/groups")).await;
    assert_eq!(groups.body["data"][0]["role"], "ADMIN", "{}", groups.body);
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn concurrent_transfers_between_a_group_and_its_members_never_overdraw(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_asset("Pot", "POT", "LOT", 0).await;
    let members = [
        participant(&app, "m1").await,
        participant(&app, "m2").await,
        participant(&app, "m3").await,
    ];
    let pot = group_of(&app, "Pot", &[&members[0], &members[1], &members[2]]).await;
    let r = adjust_group(
        &app,
        &pot,
        json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": "100",
               "description": "Pot"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let transfer = |i: usize| {
        let member = &members[i % 3];
        // Out of the pot, and back in from members who may not have been paid yet.
        let body = match i % 4 {
            3 => json!({"program_id": program, "asset_id": points, "source_participant_id": member,
                        "recipients": [{"group_id": pot, "amount": "10"}], "description": "Back"}),
            _ => json!({"program_id": program, "asset_id": points, "source_group_id": pot,
                        "recipients": [{"participant_id": member, "amount": "10"}], "description": "Out"}),
        };
        app.post("/transfers", body)
    };
    let answers = join_all((0..40).map(transfer)).await;
    let mut net_out = 0;
    for r in &answers {
        match r.status {
            StatusCode::CREATED if r.body["source_id"] == pot.as_str() => net_out += 10,
            StatusCode::CREATED => net_out -= 10,
            _ => assert_error("a refused transfer", r, 422, "insufficient_balance", None),
        }
    }
    let pot_balance = group_balance(&app, &pot, &points).await;
    assert_eq!(pot_balance["balance"], (100 - net_out).to_string());
    let mut held_by_members = 0;
    for member in &members {
        let available: i64 = app.available(member, &points).await.parse().unwrap_or(-1);
        assert!(available >= 0, "{member} overdrawn: {available}");
        held_by_members += available;
    }
    assert_eq!(held_by_members, net_out);
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn group_state_works_like_participant_state_and_an_archived_group_is_read_only(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_asset("Club", "CLB", "LOT", 2).await;
    let ann = participant(&app, "ann").await;
    let club = group_of(&app, "Club", &[&ann]).await;
    let path = |rest: &str| format!("/groups/{club}{rest}");
    let r = app
        .call(
            Method::PUT,
            &path("/state/tags"),
            Some(json!({"tags": ["Gold", "b2b"]})),
        )
        .await;
    assert_eq!(r.body["tags"], json!(["b2b", "gold"]), "{}", r.body);
    let r = app.call(Method::PUT, &path("/state/tags/gold"), None).await;
    assert_eq!(r.status, StatusCode::OK, "an existing tag: {}", r.body);
    let r = app
        .patch(
            &path("/state/attributes"),
            json!({"attributes": {"plan": "family"}}),
        )
        .await;
    assert_eq!(r.body["attributes"]["plan"], "family", "{}", r.body);
    let r = app
        .call(
            Method::PUT,
            &path("/state/counters/visits"),
            Some(json!({"value": "4", "reset_after": "720h"})),
        )
        .await;
    assert_eq!(r.body["value"], "4", "{}", r.body);
    let r = app.get(&path("/activity/state-history")).await;
    assert_eq!(
        r.body["data"].as_array().map(Vec::len),
        Some(4),
        "{}",
        r.body
    );

    // LOT value in a group: hold, release and forfeit work on its lots.
    let credit = json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": "80.50",
                        "description": "Dues"});
    assert_eq!(
        adjust_group(&app, &club, credit).await.status,
        StatusCode::OK
    );
    let op = |amount: &str| json!({"program_id": program, "asset_id": points, "amount": amount, "description": "Op"});
    let r = app.post(&path("/balances/hold"), op("30")).await;
    assert_eq!(r.body["balance"]["held"], "30.00", "{}", r.body);
    let r = app.post(&path("/balances/release"), op("10")).await;
    assert_eq!(r.body["balance"]["held"], "20.00", "{}", r.body);
    let mut forfeit = op("20");
    forfeit["bucket"] = json!("HELD");
    let r = app.post(&path("/balances/forfeit"), forfeit).await;
    assert_eq!(r.body["balance"]["held"], "0.00", "{}", r.body);
    let lots = app
        .get(&path(&format!("/balances/lots?asset_id={points}")))
        .await;
    assert_eq!(lots.status, StatusCode::OK, "{}", lots.body);
    assert_eq!(
        group_balance(&app, &club, &points).await["balance"],
        "60.50"
    );

    let r = app.call(Method::DELETE, &path(""), None).await;
    assert_eq!(r.body["status"], "ARCHIVED", "{}", r.body);
    assert!(r.body["deleted_at"].is_string(), "{}", r.body);
    let r = app.patch(&path(""), json!({"name": "Renamed"})).await;
    assert_error("rename an archived group", &r, 409, "group_archived", None);
    let r = app.call(Method::PUT, &path("/state/tags/new"), None).await;
    assert_error("tag an archived group", &r, 409, "group_archived", None);
    let r = app.post(&path("/balances/hold"), op("1")).await;
    assert_error("hold in an archived group", &r, 409, "group_archived", None);
    let r = app.get(&path("/state/tags")).await;
    assert_eq!(
        r.body["data"].as_array().map(Vec::len),
        Some(2),
        "still readable"
    );
    let listed = app.get("/groups").await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(0));
    let listed = app.get("/groups?include_archived=true").await;
    assert_eq!(listed.body["data"][0]["id"], club.as_str());
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn no_organization_sees_another_organizations_groups(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Own", "OWN").await;
    let ann = participant(&app, "ann").await;
    let mine = group_of(&app, "Mine", &[&ann]).await;
    let other = app.as_organization("Other Co").await;
    let (their_program, their_points) = other.program_with_points("Theirs", "THR").await;
    let theirs = participant(&other, "zed").await;

    for path in [
        format!("/groups/{mine}"),
        format!("/groups/{mine}/members"),
        format!("/groups/{mine}/balances"),
        format!("/groups/{mine}/state/tags"),
        format!("/groups/{mine}/activity/state-history"),
    ] {
        assert_error(&path, &other.get(&path).await, 404, "not_found", None);
    }
    let r = other
        .post(
            &format!("/groups/{mine}/members"),
            json!({"participant_id": theirs}),
        )
        .await;
    assert_error("join another's group", &r, 404, "not_found", None);
    let r = other
        .post(
            "/transfers",
            json!({"program_id": their_program, "asset_id": their_points, "source_participant_id": theirs,
                   "recipients": [{"group_id": mine, "amount": "1"}], "description": "x"}),
        )
        .await;
    assert_error("pay another's group", &r, 404, "not_found", None);
    let r = app
        .post(
            "/groups",
            json!({"name": "Mixed", "members": [{"participant_id": theirs, "role": "ADMIN"}]}),
        )
        .await;
    assert_error("another's participant", &r, 404, "not_found", None);
    assert_eq!(other.get("/groups").await.body["data"], json!([]));
    let r = adjust_group(
        &other,
        &mine,
        json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": "5",
               "description": "x"}),
    )
    .await;
    assert_error("adjust another's group", &r, 404, "not_found", None);
}

/// A household tier: `gold` by qualification on the group's `spend` counter, `silver` set by hand.
fn household_tier() -> Value {
    json!({"key": "household", "display_name": "Household",
           "levels": [
               {"key": "silver", "rank": 1},
               {"key": "gold", "rank": 2, "benefits": {"bonus": 25},
                "qualification": {"mode": "ALL", "criteria": [{"counter": "spend", "operator": ">=", "threshold": 300}]}}]})
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_group_holds_levels_set_by_the_api_and_by_rules_and_earned_by_its_counters(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Family", "FAM").await;
    app.created(&format!("/programs/{program}/tiers"), household_tier())
        .await;
    let [ann, bo] = [
        participant(&app, "ann").await,
        participant(&app, "bo").await,
    ];
    let household = group_of(&app, "The Smiths", &[&ann, &bo]).await;
    let tiers = format!("/groups/{household}/state/tiers");

    // By the API, with an expiry the lifecycle pass applies.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let r = app
        .call(
            Method::PUT,
            &format!("{tiers}/household?program_id={program}"),
            Some(json!({"level": "silver", "expires_at": soon})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["level"], "silver");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    scrip::tiers::lifecycle::run_once(&app.pool, chrono::Utc::now(), 100)
        .await
        .expect("lifecycle pass");
    let r = app
        .get(&format!("{tiers}/household?program_id={program}"))
        .await;
    assert_error("an expired level", &r, 404, "not_found", None);

    // By qualification: the rules count the household's spend, and the benefit pays from the next event on.
    app.rule(
        &program,
        "Household spend",
        "event.type == 'purchase'",
        json!([{"type": "COUNTER", "key": "spend", "value": "event.amount", "target": {"type": "GROUP"}}]),
    )
    .await;
    app.rule(
        &program,
        "Gold household bonus",
        "event.type == 'purchase' && group.tiers.household.level == 'gold'",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "group.tiers.household.benefits.bonus",
                "target": {"type": "GROUP"}}]),
    )
    .await;
    for (i, who) in ["ann", "bo", "ann"].into_iter().enumerate() {
        let data = json!({"type": "purchase", "amount": 150});
        let event = app.event(&program, who, &format!("p-{i}"), data).await;
        assert_eq!(app.processed(&event).await["status"], "COMPLETED");
    }
    let r = app.get(&format!("{tiers}?program_id={program}")).await;
    assert_eq!(r.body["data"][0]["level"], "gold", "{}", r.body);
    assert_eq!(
        group_balance(&app, &household, &points).await["balance"],
        "25"
    );

    // By a rule: SET_TIER on the group.
    app.rule(
        &program,
        "Demote",
        "event.type == 'demote'",
        json!([{"type": "SET_TIER", "tier": "household", "level": "silver", "target": {"type": "GROUP", "id": household}}]),
    )
    .await;
    let event = app
        .event(&program, "bo", "d-1", json!({"type": "demote"}))
        .await;
    assert_eq!(app.processed(&event).await["status"], "COMPLETED");
    let r = app.get(&format!("{tiers}?program_id={program}")).await;
    assert_eq!(r.body["data"][0]["level"], "silver", "{}", r.body);
    let history = app
        .get(&format!(
            "/groups/{household}/activity/state-history?state_type=tier"
        ))
        .await;
    let changes: Vec<(Value, Value)> = history.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| (h["old_value"].clone(), h["new_value"].clone()))
        .collect();
    assert_eq!(
        changes,
        [
            (json!("gold"), json!("silver")),
            (Value::Null, json!("gold")),
            (json!("silver"), Value::Null),
            (Value::Null, json!("silver")),
        ],
        "newest first"
    );
    let r = app
        .call(
            Method::DELETE,
            &format!("{tiers}/household?program_id={program}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn members_earning_at_once_credit_the_group_wallet_exactly_once_each(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_asset("Team", "TM", "LOT", 0).await;
    let mut members = Vec::new();
    for i in 0..6 {
        members.push(participant(&app, &format!("m{i}")).await);
    }
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let team = group_of(&app, "Team", &refs).await;
    app.rule(
        &program,
        "Pool",
        "true",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "3", "target": {"type": "GROUP"}},
               {"type": "CREDIT", "asset_id": points, "amount": "1"}]),
    )
    .await;
    // Both workers take batches of several members' events, each batch crediting the one group.
    let sends = (0..4).map(|round| {
        let events: Vec<Value> = (0..60)
            .map(|n| {
                json!({"program_id": program, "external_id": format!("m{}", n % 6),
                       "idempotency_key": format!("e-{round}-{n}"), "event_data": {}})
            })
            .collect();
        app.post("/events/batch", json!({"events": events}))
    });
    let answers = join_all(sends).await;
    let mut ids = Vec::new();
    for r in &answers {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        let results = r.body["results"].as_array().into_iter().flatten();
        ids.extend(results.map(|item| id(&item["event"])));
    }
    assert_eq!(ids.len(), 240);
    for event in &ids {
        assert_eq!(app.processed(event).await["status"], "COMPLETED");
    }
    assert_eq!(group_balance(&app, &team, &points).await["balance"], "720");
    for member in &members {
        assert_eq!(app.available(member, &points).await, "40");
    }
    app.assert_ledger_consistent().await;
}
