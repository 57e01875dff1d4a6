//! Wasm rules: modules uploaded over HTTP, run per event in the sandbox, contained when hostile.
//! The components are the examples in `rules-examples/`, built by `rules-examples/build.sh`.

use crate::common::{TestApp, assert_error, id};
use scrip::wasm::{Ceiling, Limits};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

pub(crate) fn component(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../rules-examples/dist/{name}.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run rules-examples/build.sh)"))
}

impl TestApp {
    pub(crate) async fn upload(&self, bytes: Vec<u8>) -> crate::common::Response {
        let response = self
            .client
            .post(format!("{}/modules", self.base))
            .header("Authorization", format!("Bearer {}", self.key))
            .header("Content-Type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        crate::common::Response { status, body }
    }

    /// Uploads an example and creates a wasm rule running it with `config`.
    pub(crate) async fn wasm_rule(
        &self,
        program: &str,
        example: &str,
        config: Value,
        limits: Value,
    ) -> String {
        let module = self.upload(component(example)).await;
        assert!(module.status.is_success(), "{}", module.body);
        let body = json!({"program_id": program, "name": example, "module_id": id(&module.body),
                          "config": config, "limits": limits});
        id(&self.created("/rules", body).await)
    }
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn uploaded_modules_are_checked_and_stored_once(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let bytes = component("purchase-points");
    let first = app.upload(bytes.clone()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.body["interface"], "scrip:rules/evaluator@0.4.0");
    assert_eq!(first.body["size"], bytes.len());
    let again = app.upload(bytes).await;
    assert_eq!(
        (again.status.as_u16(), id(&again.body)),
        (200, id(&first.body)),
        "same bytes, same module"
    );
    let fetched = app.get(&format!("/modules/{}", id(&first.body))).await;
    assert_eq!(fetched.body["sha256"], first.body["sha256"]);

    let not_wasm = app.upload(b"\0asm not really".to_vec()).await;
    assert_error("garbage", &not_wasm, 400, "bad_request", Some("body"));
    let core_module = app.upload(b"\0asm\x01\0\0\0".to_vec()).await;
    assert_error(
        "core module",
        &core_module,
        400,
        "bad_request",
        Some("body"),
    );
    // Built against an earlier draft of the interface: the right export name, the wrong signature.
    let stale = app.upload(component("stale-interface")).await;
    assert_error("stale interface", &stale, 400, "bad_request", Some("body"));
    assert!(
        stale
            .body
            .to_string()
            .contains("does not match scrip:rules/evaluator@0.1.0"),
        "says why: {}",
        stale.body
    );
    let other = app.key_for("other-org").await;
    let foreign = app
        .call_as(
            &other,
            crate::common::AuthHeader::Bearer,
            reqwest::Method::GET,
            &format!("/modules/{}", id(&first.body)),
            None,
        )
        .await;
    assert_eq!(
        foreign.status, 404,
        "modules are private to their organization"
    );

    let (program, _) = app.program_with_points("Modules", "PTS").await;
    let missing = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "x", "module_id": uuid::Uuid::now_v7()}),
        )
        .await;
    assert_error(
        "unknown module",
        &missing,
        400,
        "bad_request",
        Some("module_id"),
    );
    let both = app
        .post("/rules", json!({"program_id": program, "name": "x", "module_id": id(&first.body), "actions": []}))
        .await;
    assert_error(
        "actions with a module",
        &both,
        400,
        "bad_request",
        Some("actions"),
    );
    let too_hungry = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "x", "module_id": id(&first.body),
                               "limits": {"fuel": 1_000_000_000_000u64}}),
        )
        .await;
    assert_error(
        "fuel above the ceiling",
        &too_hungry,
        400,
        "bad_request",
        Some("limits.fuel"),
    );
    let cel_config = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "x", "condition": "true", "config": {},
                               "actions": [{"type": "TAG", "tag": "t"}]}),
        )
        .await;
    assert_error(
        "config on a CEL rule",
        &cel_config,
        400,
        "bad_request",
        Some("config"),
    );
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn example_rules_earn_what_they_promise(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Wasm", "PTS").await;
    let cash = id(&app
        .created(
            "/assets",
            json!({"program_id": program, "name": "Cashback", "symbol": "USD", "inventory_mode": "SIMPLE",
                   "issuance_policy": "UNLIMITED", "scale": 2}),
        )
        .await);
    let rule = app
        .wasm_rule(
            &program,
            "purchase-points",
            json!({"asset_id": points, "points": "25"}),
            json!({}),
        )
        .await;
    app.wasm_rule(
        &program,
        "tiered-cashback",
        json!({"asset_id": cash}),
        json!({}),
    )
    .await;
    app.wasm_rule(
        &program,
        "referral-bonus",
        json!({"asset_id": points}),
        json!({}),
    )
    .await;
    let shown = app.get(&format!("/rules/{rule}")).await.body;
    assert_eq!(shown["config"], json!({"asset_id": points, "points": "25"}));
    assert_eq!(shown["limits"]["fuel"], 10_000_000);
    // Simulation runs the module for real on the sample, and writes nothing.
    let before = app.row_counts().await;
    let simulated = app
        .post(
            &format!("/rules/{rule}/simulate"),
            json!({"event": {"type": "purchase"}, "participant_state": {"tags": ["vip"]}}),
        )
        .await;
    assert_eq!(simulated.status, 200, "{}", simulated.body);
    let evaluation = &simulated.body["evaluation"];
    assert_eq!(
        (&evaluation["matched"], &evaluation["status"]),
        (&json!(true), &json!("evaluated")),
        "{evaluation}"
    );
    assert_eq!(
        evaluation["results"],
        json!([{"action": {"type": "CREDIT", "asset_id": points, "amount": "25"},
                "result": {"amount": "25", "asset_symbol": "PTS",
                           "description": "Credit 25 PTS to participant"}}])
    );
    assert!(
        evaluation["fuel_consumed"].as_u64().is_some_and(|f| f > 0),
        "{evaluation}"
    );
    let visit = app
        .post(
            &format!("/rules/{rule}/simulate"),
            json!({"event": {"type": "visit"}}),
        )
        .await;
    assert_eq!(
        visit.body["evaluation"]["results"],
        json!([]),
        "{}",
        visit.body
    );
    assert_eq!(app.row_counts().await, before, "simulating wrote nothing");

    let purchase = app
        .event(
            &program,
            "ann",
            "p1",
            json!({"type": "purchase", "amount": "149.99"}),
        )
        .await;
    let done = app.processed(&purchase).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let evaluation = &done["rule_evaluations"][0];
    assert_eq!(evaluation["status"], "SUCCESS");
    assert!(
        evaluation["fuel_consumed"].as_i64().is_some_and(|f| f > 0),
        "{evaluation}"
    );
    let ann = app.participant_id("ann").await;
    assert_eq!(app.available(&ann, &points).await, "25");
    // 1.5 % of 100.00 + 3 % of 49.99 = 1.50 + 1.4997 → 3.00
    assert_eq!(app.available(&ann, &cash).await, "3.00");

    let signup = app
        .event(
            &program,
            "bob",
            "s1",
            json!({"type": "signup", "referrer_id": "ann"}),
        )
        .await;
    assert_eq!(app.processed(&signup).await["status"], "COMPLETED");
    let bob = app.participant_id("bob").await;
    assert_eq!(app.available(&bob, &points).await, "100");
    assert_eq!(
        app.available(&ann, &points).await,
        "525",
        "the referrer earns by external id"
    );

    // A new module version, swapped in by PATCH, applies to later events.
    let vip = app.upload(component("vip-multiplier")).await;
    let swapped = app
        .patch(
            &format!("/rules/{rule}"),
            json!({"module_id": id(&vip.body), "config": {"asset_id": points}}),
        )
        .await;
    assert_eq!(swapped.status, 200, "{}", swapped.body);
    for n in 0..6 {
        let e = app
            .event(
                &program,
                "cy",
                &format!("v{n}"),
                json!({"type": "visit", "amount": "10"}),
            )
            .await;
        assert_eq!(app.processed(&e).await["status"], "COMPLETED");
    }
    let cy = app.participant_id("cy").await;
    // Five purchases at 10, then the sixth doubled once the fifth made cy a VIP.
    assert_eq!(app.available(&cy, &points).await, "70");
    let detail = app.get(&format!("/participants/{cy}")).await.body;
    assert_eq!(detail["tags"], json!(["vip"]));
    assert_eq!(detail["counters"]["purchases"], "6");
    app.assert_ledger_consistent().await;
    app.stop().await;
}

/// The operator's ceiling (SCRIP_WASM_MAX_* in production) bounds what rules may ask for and what may be
/// uploaded.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn the_operator_sets_the_ceiling(_: PgPoolOptions, connect: PgConnectOptions) {
    let (small, large) = (component("referral-bonus"), component("hostile"));
    assert!(large.len() > small.len(), "the examples differ in size");
    let ceiling = Ceiling {
        limits: Limits {
            fuel: 20_000_000,
            ..Ceiling::DEFAULT.limits
        },
        component_bytes: small.len(),
        ..Ceiling::DEFAULT
    };
    let app = TestApp::spawn_with(connect, ceiling).await;
    let too_large = app.upload(large).await;
    assert_error("over the size", &too_large, 413, "payload_too_large", None);
    let module = app.upload(small).await;
    assert_eq!(module.status, 201, "{}", module.body);

    let (program, _) = app.program_with_points("Ceiling", "PTS").await;
    let rule = |fuel: u64| {
        json!({"program_id": program, "name": "r", "module_id": id(&module.body),
               "config": {}, "limits": {"fuel": fuel}})
    };
    let before = app.row_counts().await;
    let hungry = app.post("/rules", rule(20_000_001)).await;
    assert_error(
        "over the fuel",
        &hungry,
        400,
        "bad_request",
        Some("limits.fuel"),
    );
    assert_eq!(
        app.row_counts().await,
        before,
        "a refused rule writes nothing"
    );
    let at_ceiling = app.created("/rules", rule(20_000_000)).await;
    assert_eq!(at_ceiling["limits"]["fuel"], 20_000_000);
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn hostile_rules_are_contained(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Hostile", "PTS").await;
    let cases = [
        ("loop", "SKIPPED_TIMEOUT", "FUEL_EXHAUSTED"),
        ("memory", "SKIPPED_ERROR", "MODULE_ERROR"),
        ("recursion", "SKIPPED_ERROR", "MODULE_ERROR"),
        ("panic", "SKIPPED_ERROR", "MODULE_ERROR"),
        ("flood", "SKIPPED_ERROR", "MODULE_ERROR"),
        // Sleeping forever in a host call: time stands still for rules, so the sleeps burn fuel instead.
        ("sleep", "SKIPPED_TIMEOUT", "FUEL_EXHAUSTED"),
    ];
    let mut rules = Vec::new();
    for (attack, _, _) in cases {
        // The hoarder and the flooder get fuel to spare, so the memory and output caps are what stop them.
        let limits = match attack {
            "memory" => json!({"fuel": 100_000_000, "memory_bytes": 4 << 20}),
            "flood" => json!({"fuel": 100_000_000}),
            _ => json!({"fuel": 5_000_000}),
        };
        rules.push(
            app.wasm_rule(&program, "hostile", json!({"attack": attack}), limits)
                .await,
        );
    }
    // An honest rule after them still earns: one hostile rule never takes the event, or the server, down.
    app.rule(
        &program,
        "honest",
        "true",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "7"}]),
    )
    .await;
    let event = app
        .event(&program, "eve", "h1", json!({"type": "purchase"}))
        .await;
    let done = app.processed(&event).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let evaluations = done["rule_evaluations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for ((attack, status, reason), rule) in cases.iter().zip(&rules) {
        let e = evaluations
            .iter()
            .find(|e| e["rule_id"] == json!(rule))
            .unwrap_or_else(|| panic!("{attack}: {done}"));
        assert_eq!(
            (e["status"].as_str(), e["reason"].as_str()),
            (Some(*status), Some(*reason)),
            "{attack}: {e}"
        );
        assert!(e["error_message"].is_string(), "{attack}: {e}");
    }
    let panicked = evaluations
        .iter()
        .find(|e| e["rule_id"] == json!(rules[3]))
        .cloned()
        .unwrap_or_default();
    assert!(
        panicked["logs"]
            .as_str()
            .is_some_and(|l| l.contains("panicked on purpose")),
        "{panicked}"
    );
    let simulated = app
        .post(
            &format!("/rules/{}/simulate", rules[0]),
            json!({"event": {}}),
        )
        .await;
    let evaluation = &simulated.body["evaluation"];
    assert_eq!(
        (&evaluation["status"], &evaluation["error_code"]),
        (&json!("module_failed"), &json!("FUEL_EXHAUSTED")),
        "a simulated loop is stopped as an event's is: {evaluation}"
    );
    let eve = app.participant_id("eve").await;
    assert_eq!(app.available(&eve, &points).await, "7");
    assert_eq!(
        app.get(&format!("/participants/{eve}")).await.body["tags"],
        json!([]),
        "the flood applied nothing"
    );

    // Nothing ambient: no files, environment, arguments or network; the clock is the event's, not the host's.
    app.wasm_rule(&program, "hostile", json!({"attack": "ambient"}), json!({}))
        .await;
    app.wasm_rule(&program, "hostile", json!({"attack": "entropy"}), json!({}))
        .await;
    for rule in rules {
        app.patch(&format!("/rules/{rule}"), json!({"status": "SUSPENDED"}))
            .await;
    }
    let body = json!({"program_id": program, "external_id": "fay", "idempotency_key": "h2",
                      "event_timestamp": "2025-03-01T12:00:00Z", "event_data": {"type": "visit"}});
    let event = id(&app.created("/events", body).await);
    let done = app.processed(&event).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let fay = app.participant_id("fay").await;
    let detail = app.get(&format!("/participants/{fay}")).await.body;
    assert_eq!(detail["tags"], json!([]), "the probe reached nothing");
    let entropy = detail["attributes"]["entropy"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(entropy.starts_with("1740830400000000000-"), "{entropy}");
    assert_eq!(
        app.get("/programs").await.status,
        200,
        "the server still serves"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn scrip_rules_push_uploads_and_creates_or_moves_a_rule(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Pushed", "PTS").await;
    let file = format!(
        "{}/../rules-examples/dist/purchase-points.wasm",
        env!("CARGO_MANIFEST_DIR")
    );
    let push = |args: Vec<String>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_scrip"));
        command
            .args(["rules", "push", &file])
            .args(args)
            .env("SCRIP_URL", app.base.trim_end_matches("/v1"))
            .env("SCRIP_API_KEY", &app.key);
        async move { command.output().await.expect("scrip runs") }
    };
    let config = json!({"asset_id": points, "points": "3"}).to_string();
    let created = push(vec![
        "--program".into(),
        program.clone(),
        "--config".into(),
        config,
    ])
    .await;
    let stdout = String::from_utf8_lossy(&created.stdout).into_owned();
    assert!(
        created.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let rule = stdout.lines().last().unwrap_or_default().to_owned();
    let shown = app.get(&format!("/rules/{rule}")).await.body;
    assert_eq!(shown["name"], "purchase-points", "named after the file");

    let e = app
        .event(&program, "gus", "e1", json!({"type": "purchase"}))
        .await;
    assert_eq!(app.processed(&e).await["status"], "COMPLETED");
    let gus = app.participant_id("gus").await;
    assert_eq!(app.available(&gus, &points).await, "3");

    // The module sees the participant's balances: from max_balance on it credits nothing more.
    let config = json!({"asset_id": points, "points": "40", "max_balance": "40"}).to_string();
    let moved = push(vec![
        "--rule".into(),
        rule.clone(),
        "--config".into(),
        config,
    ])
    .await;
    assert!(
        moved.status.success(),
        "{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    let e = app
        .event(&program, "gus", "e2", json!({"type": "purchase"}))
        .await;
    assert_eq!(app.processed(&e).await["status"], "COMPLETED");
    assert_eq!(
        app.available(&gus, &points).await,
        "43",
        "the updated rule applies to later events"
    );
    let e = app
        .event(&program, "gus", "e3", json!({"type": "purchase"}))
        .await;
    assert_eq!(app.processed(&e).await["status"], "COMPLETED");
    assert_eq!(
        app.available(&gus, &points).await,
        "43",
        "capped by the balance the module saw"
    );

    let refused = push(vec![
        "--program".into(),
        program.clone(),
        "--config".into(),
        "[1]".into(),
    ])
    .await;
    assert!(!refused.status.success(), "config must be an object");
    let unauthorized = tokio::process::Command::new(env!("CARGO_BIN_EXE_scrip"))
        .args(["rules", "push", &file, "--program", &program])
        .env("SCRIP_URL", app.base.trim_end_matches("/v1"))
        .env("SCRIP_API_KEY", "sk_wrong")
        .output()
        .await
        .expect("scrip runs");
    assert!(!unauthorized.status.success());
    assert!(
        String::from_utf8_lossy(&unauthorized.stderr).contains("401"),
        "{unauthorized:?}"
    );
    app.stop().await;
}

/// The events of one worker batch see one another's credits before the batch writes them, and never the credit
/// of an event that failed.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_module_sees_the_credits_of_earlier_events_in_its_batch(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_without_workers(connect).await;
    let (program, points) = app.program_with_points("Capped", "PTS").await;
    let config = json!({"asset_id": points, "points": "10", "max_balance": "30"});
    app.wasm_rule(&program, "purchase-points", config, json!({}))
        .await;
    // Runs after the module; fails the event, so the module's credit in it is undone.
    app.rule(
        &program,
        "broken",
        "event.fail",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "event.missing"}]),
    )
    .await;
    let purchase = |fail: bool| json!({"type": "purchase", "fail": fail});
    // gus holds points before the batch that matters begins.
    app.event(&program, "gus", "e0", purchase(false)).await;
    assert_eq!(app.process_batch().await.finished, 1);
    let gus = app.participant_id("gus").await;
    assert_eq!(app.available(&gus, &points).await, "10");

    let mut events = Vec::new();
    for (key, fail) in [
        ("e1", false),
        ("e2", true),
        ("e3", false),
        ("e4", false),
        ("e5", false),
    ] {
        events.push(app.event(&program, "gus", key, purchase(fail)).await);
    }
    let batch = app.process_batch().await;
    assert_eq!((batch.claimed, batch.finished), (5, 5), "one batch");
    // e1 saw 10 and credited; e2 failed; e3 saw 20 (not 30: e2's credit is gone) and credited; e4 and e5 saw
    // 30, the cap.
    assert_eq!(app.available(&gus, &points).await, "30");
    let mut credited = Vec::new();
    for event in &events {
        let entries = app.get(&format!("/journal-entries?event_id={event}")).await;
        credited.push(entries.body["data"].as_array().map_or(0, Vec::len));
    }
    assert_eq!(credited, [1, 0, 1, 0, 0]);
    app.assert_ledger_consistent().await;
    app.stop().await;
}

/// Components built against the first interface, 0.1.0, keep working unchanged: uploaded, stored with the
/// interface they export, and run.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn components_built_against_interface_0_1_0_keep_working(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Old", "PTS").await;
    let module = app.upload(component("interface-0-1")).await;
    assert_eq!(module.status.as_u16(), 201, "{}", module.body);
    assert_eq!(module.body["interface"], "scrip:rules/evaluator@0.1.0");
    let body = json!({"program_id": program, "name": "old", "module_id": id(&module.body),
                      "config": {"asset_id": points, "points": "7"}});
    app.created("/rules", body).await;
    let done = app
        .processed(
            &app.event(&program, "old", "o1", json!({"type": "purchase"}))
                .await,
        )
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(done["rule_evaluations"][0]["status"], "SUCCESS", "{done}");
    let participant = app.participant_id("old").await;
    assert_eq!(app.available(&participant, &points).await, "7");
    let tags = app
        .get(&format!("/participants/{participant}/state/tags"))
        .await;
    assert!(
        tags.body.to_string().contains("interface-0-1"),
        "{}",
        tags.body
    );
    app.stop().await;
}

/// Components built against 0.2.0 keep working unchanged: their credits into HELD still land there, and they
/// see a level as 0.2.0 gives it (level key per tier key).
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn components_built_against_interface_0_2_0_keep_working(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let levels = json!([{"key": "gold", "rank": 1}]);
    let old = purchase_by_fixture(&app, "interface-0-2", "0.2.0", levels, "gold").await;
    let tags = app
        .get(&format!("/participants/{}/state/tags", old.participant))
        .await;
    assert!(
        tags.body.to_string().contains("level-gold"),
        "{}",
        tags.body
    );
    app.stop().await;
}

/// Where an old fixture's rule processed a purchase: the program and the participant.
struct FixtureRun {
    program: String,
    participant: String,
}

/// Uploads the fixture (which must export interface `version`) into a program of a LOT asset and a `status`
/// tier of these `levels`, gives a participant `level`, and processes one purchase by them: the fixture's
/// credit of 7 into HELD is checked here, the rest by the caller.
async fn purchase_by_fixture(
    app: &TestApp,
    fixture: &str,
    version: &str,
    levels: Value,
    level: &str,
) -> FixtureRun {
    let (program, miles) = app.program_with_asset("Old", "MI", "LOT", 0).await;
    app.created(
        &format!("/programs/{program}/tiers"),
        json!({"key": "status", "levels": levels}),
    )
    .await;
    let module = app.upload(component(fixture)).await;
    assert_eq!(module.status.as_u16(), 201, "{}", module.body);
    assert_eq!(
        module.body["interface"],
        format!("scrip:rules/evaluator@{version}")
    );
    let body = json!({"program_id": program, "name": "old", "module_id": id(&module.body),
                      "config": {"asset_id": miles, "points": "7"}});
    app.created("/rules", body).await;
    let participant = id(&app
        .created("/participants", json!({"external_id": "old"}))
        .await);
    let set = app
        .call(
            reqwest::Method::PUT,
            &format!("/participants/{participant}/state/tiers/status?program_id={program}"),
            Some(json!({"level": level})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let done = app
        .processed(
            &app.event(&program, "old", "o1", json!({"type": "purchase"}))
                .await,
        )
        .await;
    assert_eq!(done["rule_evaluations"][0]["status"], "SUCCESS", "{done}");
    assert_eq!(
        app.available_and_held(&participant).await,
        (json!("0"), json!("7"))
    );
    FixtureRun {
        program,
        participant,
    }
}

/// A rule built against 0.3.0 sees each level with its rank and sets levels as it did.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn components_built_against_interface_0_3_0_keep_working(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let levels = json!([{"key": "silver", "rank": 1}, {"key": "gold", "rank": 2}]);
    let old = purchase_by_fixture(&app, "interface-0-3", "0.3.0", levels, "silver").await;
    let tags = app
        .get(&format!("/participants/{}/state/tags", old.participant))
        .await;
    assert_eq!(
        tags.body["data"][0]["tag"], "level-silver-1",
        "{}",
        tags.body
    );
    let held = app
        .get(&format!(
            "/participants/{}/state/tiers?program_id={}",
            old.participant, old.program
        ))
        .await;
    assert_eq!(held.body["data"][0]["level"], "gold", "{}", held.body);
    app.stop().await;
}

/// A wasm rule targets a group as a CEL rule does: the participant's own, or one named by id.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn wasm_rules_target_the_participants_group_or_a_named_one(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Family", "FAM").await;
    let member = id(&app
        .created("/participants", json!({"external_id": "kid"}))
        .await);
    let group = |name: &str| {
        app.created(
            "/groups",
            json!({"name": name, "members": [{"participant_id": member, "role": "ADMIN"}]}),
        )
    };
    let home = id(&group("Home").await);
    let club = id(&group("Club").await);
    let script = json!({"buy": [
        {"type": "credit", "asset_id": points, "amount": "5", "group": null},
        {"type": "credit", "asset_id": points, "amount": "2", "group": club},
    ]});
    app.wasm_rule(&program, "scripted", json!({"on": script}), json!({}))
        .await;
    let done = app
        .processed(
            &app.event(&program, "kid", "b1", json!({"type": "buy"}))
                .await,
        )
        .await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    let results = &done["rule_evaluations"][0]["results"];
    assert_eq!(results[0]["group_id"], home.as_str(), "{done}");
    assert_eq!(results[1]["group_id"], club.as_str(), "{done}");
    for (group, total) in [(&home, "5"), (&club, "2")] {
        let detail = app.get(&format!("/groups/{group}")).await;
        assert_eq!(detail.body["balances"][&points], total, "{}", detail.body);
    }
    assert_eq!(app.available(&member, &points).await, "none");
    app.assert_ledger_consistent().await;
    app.stop().await;
}

/// A wasm rule has the actions a CEL rule has: the provisional accruals, settlement, void-hold, hold,
/// release and forfeit of `lots::provisional_accruals_settle_or_void_and_rules_hold_release_and_forfeit`,
/// driven through a component, end where the CEL rules end; a credit's expiry reaches its lot.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn wasm_rules_accrue_settle_void_hold_release_and_forfeit_as_cel_rules_do(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, cash) = app.program_with_asset("Card", "CB", "LOT", 2).await;
    let act = |kind: &str, extra: Value| {
        let mut action = json!({"type": kind, "asset_id": cash});
        if let (Some(a), Some(e)) = (action.as_object_mut(), extra.as_object()) {
            a.extend(e.clone());
        }
        json!([action])
    };
    let script = json!({
        "auth-1": act("credit", json!({"amount": "10", "bucket": "held", "reference_id": "A1"})),
        "settle-1": act("credit", json!({"amount": "12.5", "reference_id": "A1"})),
        "auth-2": act("credit", json!({"amount": "5", "bucket": "held", "reference_id": "A2"})),
        "void-2": act("void-hold", json!({"reference_id": "A2"})),
        "hold": act("hold", json!({"amount": "2.5", "reference_id": "O1"})),
        "release": act("release", json!({"reference_id": "O1"})),
        "forfeit": act("forfeit", json!({"amount": "1"})),
        "auth-3": act("credit", json!({"amount": "3", "bucket": "held", "reference_id": "A3",
                                        "expires_at": "2030-01-01T00:00:00Z"})),
    });
    app.wasm_rule(&program, "scripted", json!({"on": script}), json!({}))
        .await;
    let mut events = Vec::new();
    for kind in [
        "auth-1", "settle-1", "auth-2", "void-2", "hold", "release", "forfeit", "auth-3",
    ] {
        let done = app
            .processed(
                &app.event(&program, "cardholder", kind, json!({"type": kind}))
                    .await,
            )
            .await;
        assert_eq!(done["status"], "COMPLETED", "{kind}: {done}");
        assert_eq!(
            done["rule_evaluations"][0]["status"], "SUCCESS",
            "{kind}: {done}"
        );
        events.push(done);
    }
    assert_eq!(
        events[1]["rule_evaluations"][0]["results"][0]["settle"],
        json!({"held_amount": "10.00", "delta": "2.50"})
    );
    let holder = app.participant_id("cardholder").await;
    assert_eq!(
        app.available_and_held(&holder).await,
        (json!("11.50"), json!("3.00"))
    );
    // Money actions' results say their type; balance operations', their operation.
    let kinds: Vec<Value> = events
        .iter()
        .map(|e| &e["rule_evaluations"][0]["results"][0])
        .map(|r| r.get("type").unwrap_or(&r["operation"]).clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "CREDIT",
            "CREDIT",
            "CREDIT",
            "VOID_HOLD",
            "HOLD",
            "RELEASE",
            "FORFEIT",
            "CREDIT"
        ]
        .map(|k| json!(k))
    );
    let held = app
        .get(&format!(
            "/participants/{holder}/balances/lots?asset_id={cash}&reference_id=A3"
        ))
        .await;
    assert_eq!(
        held.body["data"][0]["expires_at"], "2030-01-01T00:00:00Z",
        "{}",
        held.body
    );
    assert_eq!(held.body["data"][0]["status"], "HELD", "{}", held.body);
    app.assert_ledger_consistent().await;
    app.stop().await;
}

/// A wasm credit that says something about its lot on an asset without lots fails its event, as the same
/// CEL rule is refused when written.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_wasm_credit_with_lot_fields_on_a_simple_asset_fails_its_event(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Simple", "PTS").await;
    let script = json!({"buy": [{"type": "credit", "asset_id": points, "amount": "1", "expires_at": "24h"}]});
    app.wasm_rule(&program, "scripted", json!({"on": script}), json!({}))
        .await;
    let done = app
        .processed(
            &app.event(&program, "s", "buy", json!({"type": "buy"}))
                .await,
        )
        .await;
    assert_eq!(done["status"], "FAILED", "{done}");
    assert!(
        done["error_message"]
            .as_str()
            .is_some_and(|m| m.contains("need a LOT asset")),
        "{done}"
    );
    app.stop().await;
}
