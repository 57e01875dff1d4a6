//! Bad input: every case gets a 4xx with the spec's error body naming the field, and writes nothing.

use crate::common::{TestApp, assert_error};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

fn case(
    method: Method,
    path: impl Into<String>,
    body: Option<Value>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        method,
        path: path.into(),
        body,
        status,
        code,
        field,
    }
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn bad_inputs_get_a_4xx_with_the_spec_error_body_and_write_nothing(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    use Method as M;
    let app = TestApp::spawn(connect).await;
    let (program, asset) = app.program_with_points("Validated", "PTS").await;
    let rule = app
        .rule(
            &program,
            "ten",
            "true",
            json!([{"type": "CREDIT", "asset_id": asset, "amount": "10"}]),
        )
        .await;
    let cash = app
        .created("/assets", json!({"program_id": program, "name": "Cash", "symbol": "USD", "inventory_mode": "SIMPLE",
                                   "issuance_policy": "UNLIMITED", "scale": 2}))
        .await;
    let cash = cash["id"].as_str().unwrap_or_default().to_owned();
    let unknown = Uuid::now_v7();
    let new_asset = |extra: Value| {
        let mut body = json!({"program_id": program, "name": "Stars", "symbol": "STAR", "inventory_mode": "SIMPLE",
                              "issuance_policy": "UNLIMITED", "scale": 0});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        Some(body)
    };
    let new_rule = |extra: Value| {
        let mut body = json!({"program_id": program, "name": "r", "condition": "true",
                              "actions": [{"type": "CREDIT", "asset_id": asset, "amount": "1"}]});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        Some(body)
    };
    let new_event = |extra: Value| {
        let mut body = json!({"program_id": program, "external_id": "u", "idempotency_key": "k", "event_data": {}});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        Some(body)
    };
    let many = (0..101).map(|i| json!({"program_id": program, "external_id": "u", "idempotency_key": format!("k{i}"), "event_data": {}})).collect::<Vec<_>>();

    #[rustfmt::skip]
    let cases = vec![
        // Programs
        case(M::POST, "/programs", Some(json!({})), 400, "bad_request", Some("name")),
        case(M::POST, "/programs", Some(json!({"name": ""})), 400, "bad_request", Some("name")),
        case(M::POST, "/programs", Some(json!({"name": 42})), 400, "bad_request", Some("name")),
        case(M::POST, "/programs", Some(json!({"name": "x".repeat(256)})), 400, "bad_request", Some("name")),
        case(M::POST, "/programs", Some(json!({"name": "x", "on_unknown_participant": "MAYBE"})), 400, "bad_request", Some("on_unknown_participant")),
        case(M::POST, "/programs", Some(json!([1, 2])), 400, "bad_request", Some("body")),
        // Postgres cannot store U+0000: refused wherever it appears, naming where (found by schemathesis).
        case(M::POST, "/programs", Some(json!({"name": "a\u{0}b"})), 400, "bad_request", Some("name")),
        case(M::GET, "/assets?search=%00", None, 400, "bad_request", Some("search")),
        case(M::POST, "/events", Some(json!({"program_id": program, "external_id": "nul", "idempotency_key": "nul",
                                             "event_data": {"items": [{"sku": "\u{0}"}]}})),
             400, "bad_request", Some("event_data.items[0].sku")),
        case(M::PATCH, format!("/programs/{program}"), Some(json!({})), 400, "bad_request", Some("body")),
        case(M::PATCH, format!("/programs/{program}"), Some(json!({"status": "DELETED"})), 400, "bad_request", Some("status")),
        case(M::PATCH, format!("/programs/{program}"), Some(json!({"redemption_target_type": "LEDGER_ENTITY"})), 400, "bad_request", Some("redemption_target_entity_id")),
        case(M::GET, "/programs/not-a-uuid", None, 400, "bad_request", Some("id")),
        case(M::GET, format!("/programs/{unknown}"), None, 404, "not_found", None),
        case(M::GET, "/programs?sort_by=popularity", None, 400, "bad_request", Some("sort_by")),
        case(M::POST, format!("/programs/{program}/assets"), Some(json!({"asset_id": asset})), 409, "conflict", None),
        // Assets
        case(M::POST, "/assets", Some(json!({"program_id": program, "name": "Stars", "symbol": "STAR"})), 400, "bad_request", Some("inventory_mode")),
        case(M::POST, "/assets", new_asset(json!({"scale": 19})), 400, "bad_request", Some("scale")),
        case(M::POST, "/assets", new_asset(json!({"scale": "2"})), 400, "bad_request", Some("scale")),
        case(M::POST, "/assets", new_asset(json!({"symbol": "ST-R"})), 400, "bad_request", Some("symbol")),
        case(M::POST, "/assets", new_asset(json!({"inventory_mode": "simple"})), 400, "bad_request", Some("inventory_mode")),
        case(M::POST, "/assets", new_asset(json!({"scale": 2, "max_transaction_amount": "1.005"})), 400, "invalid_scale", Some("max_transaction_amount")),
        case(M::POST, "/assets", new_asset(json!({"max_transaction_amount": 100})), 400, "bad_request", Some("max_transaction_amount")),
        case(M::POST, "/assets", new_asset(json!({"max_transaction_amount": "-5"})), 400, "bad_request", Some("max_transaction_amount")),
        case(M::POST, "/assets", new_asset(json!({"program_id": unknown})), 404, "not_found", None),
        case(M::POST, "/assets", new_asset(json!({"symbol": "PTS"})), 409, "conflict", None),
        case(M::PATCH, format!("/assets/{asset}"), Some(json!({"scale": 2})), 400, "bad_request", Some("scale")),
        case(M::PATCH, format!("/assets/{asset}"), Some(json!({"status": "ACTIVE"})), 400, "bad_request", Some("status")),
        case(M::PATCH, format!("/assets/{cash}"), Some(json!({"max_transaction_amount": "0.001"})), 400, "invalid_scale", Some("max_transaction_amount")),
        // Participants
        case(M::POST, "/participants", Some(json!({})), 400, "bad_request", Some("external_id")),
        case(M::POST, "/participants", Some(json!({"external_id": "u", "email": "not-an-email"})), 400, "bad_request", Some("email")),
        case(M::POST, "/participants", Some(json!({"external_id": "u", "tags": "vip"})), 400, "bad_request", Some("tags")),
        case(M::POST, "/participants", Some(json!({"external_id": "u", "attributes": {"age": 42}})), 400, "bad_request", Some("attributes.age")),
        case(M::POST, "/participants", Some(json!({"external_id": "u", "status": "GONE"})), 400, "bad_request", Some("status")),
        case(M::POST, "/participants", Some(json!({"external_id": "u", "program_id": unknown})), 404, "not_found", None),
        case(M::GET, format!("/participants/{unknown}/balances"), None, 404, "not_found", None),
        // Rules
        case(M::POST, "/rules", new_rule(json!({"condition": "event.type = 'purchase'"})), 400, "bad_request", Some("condition")),
        case(M::POST, "/rules", new_rule(json!({"condition": "x".repeat(10_000)})), 400, "bad_request", Some("condition")),
        case(M::POST, "/rules", new_rule(json!({"condition": format!("{}true{}", "(".repeat(1000), ")".repeat(1000))})), 400, "bad_request", Some("condition")),
        case(M::POST, "/rules", new_rule(json!({"actions": []})), 400, "bad_request", Some("actions")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "TELEPORT", "asset_id": asset, "amount": "1"}]})), 400, "bad_request", Some("actions[0].type")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "BROADCAST", "event_type": "promo"}]})), 400, "bad_request", Some("actions[0].event_name")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "SCHEDULE_EVENT", "event_name": "later", "delay": "-1h"}]})), 400, "bad_request", Some("actions[0].delay")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "SET_TIER", "tier": "loyalty"}]})), 400, "bad_request", Some("actions[0].level")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "SET_TIER", "tier": "loyalty", "level": "gold", "expires_at": "soon"}]})), 400, "bad_request", Some("actions[0].expires_at")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "CREDIT", "asset_id": asset, "amount": "1.5"}]})), 400, "invalid_scale", Some("actions[0].amount")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "CREDIT", "asset_id": cash, "amount": "0.005"}]})), 400, "invalid_scale", Some("actions[0].amount")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "CREDIT", "asset_id": unknown, "amount": "1"}]})), 400, "bad_request", Some("actions[0].asset_id")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "CREDIT", "asset_id": asset, "amount": "event.amount *"}]})), 400, "bad_request", Some("actions[0].amount")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "CREDIT", "asset_id": asset}]})), 400, "bad_request", Some("actions[0].amount")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "CREDIT", "asset_id": asset, "amount": "1", "target": {"type": "GROUP", "external_id": "event.ref"}}]})), 400, "bad_request", Some("actions[0].target.external_id")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "CREDIT", "asset_id": asset, "amount": "1", "target": {"id": unknown, "external_id": "x"}}]})), 400, "bad_request", Some("actions[0].target.id")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "TAG"}]})), 400, "bad_request", Some("actions[0].tag")),
        case(M::POST, "/rules", new_rule(json!({"actions": ["CREDIT"]})), 400, "bad_request", Some("actions")),
        case(M::POST, "/transfers", Some(json!({"program_id": program, "asset_id": asset, "description": "gift",
            "source_external_id": "a", "recipients": [{"external_id": "b"}]})), 400, "bad_request", Some("recipients[0].amount")),
        case(M::POST, "/transfers", Some(json!({"program_id": program, "asset_id": asset, "description": "gift",
            "source_external_id": "a", "recipients": [7]})), 400, "bad_request", Some("recipients")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "TAG", "tag": "vip", "amount": "1"}]})), 400, "bad_request", Some("actions[0].amount")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "COUNTER", "key": "visits", "reset_after": "1 month"}]})), 400, "bad_request", Some("actions[0].reset_after")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "COUNTER", "key": "visits", "value": "event.n +"}]})), 400, "bad_request", Some("actions[0].value")),
        case(M::POST, "/rules", new_rule(json!({"actions": [{"type": "SET_ATTRIBUTE", "key": "plan"}]})), 400, "bad_request", Some("actions[0].value")),
        case(M::POST, "/rules", new_rule(json!({"order": 0})), 400, "bad_request", Some("order")),
        case(M::POST, "/rules", new_rule(json!({"order": 10})), 409, "conflict", None),
        case(M::POST, "/rules", new_rule(json!({"program_id": unknown})), 404, "not_found", None),
        case(M::PATCH, format!("/rules/{rule}"), Some(json!({})), 400, "bad_request", Some("body")),
        case(M::PATCH, format!("/rules/{rule}"), Some(json!({"actions": []})), 400, "bad_request", Some("actions")),
        // Events
        case(M::POST, "/events", Some(json!({"program_id": program, "external_id": "u"})), 400, "bad_request", Some("idempotency_key")),
        case(M::POST, "/events", new_event(json!({"participant_id": unknown})), 400, "bad_request", Some("participant_id")),
        case(M::POST, "/events", Some(json!({"program_id": program, "idempotency_key": "k", "event_data": {}})), 400, "bad_request", Some("external_id")),
        case(M::POST, "/events", new_event(json!({"event_data": "purchase"})), 400, "bad_request", Some("event_data")),
        case(M::POST, "/events", new_event(json!({"event_timestamp": "yesterday"})), 400, "bad_request", Some("event_timestamp")),
        case(M::POST, "/events", new_event(json!({"idempotency_key": "k".repeat(256)})), 400, "bad_request", Some("idempotency_key")),
        case(M::POST, "/events", new_event(json!({"program_id": unknown})), 404, "not_found", None),
        case(M::POST, "/events/batch", Some(json!({"events": []})), 400, "bad_request", Some("events")),
        case(M::POST, "/events/batch", Some(json!({"events": many})), 400, "bad_request", Some("events")),
        case(M::GET, "/events?limit=0", None, 400, "bad_request", Some("limit")),
        case(M::GET, "/events?limit=201", None, 400, "bad_request", Some("limit")),
        case(M::GET, "/events?limit=ten", None, 400, "bad_request", Some("limit")),
        case(M::GET, "/events?cursor=not-a-cursor", None, 400, "bad_request", Some("cursor")),
        case(M::GET, "/events?status=DONE", None, 400, "bad_request", Some("status")),
        case(M::GET, format!("/events/by-key?program_id={program}"), None, 400, "bad_request", Some("idempotency_key")),
        // Ledger and reports
        case(M::GET, "/reports/program-activity?from=2024-01-01T00:00:00Z", None, 400, "bad_request", Some("to")),
        case(M::GET, "/reports/program-activity?to=2024-01-01T00:00:00Z", None, 400, "bad_request", Some("from")),
        case(M::GET, "/reports/program-activity?since=last-week", None, 400, "bad_request", Some("since")),
        case(M::GET, format!("/journal-entries?participant_id={unknown}&external_id=u"), None, 400, "bad_request", Some("participant_id")),
        case(M::GET, "/journal-entries?min_amount=lots", None, 400, "bad_request", Some("min_amount")),
        case(M::GET, format!("/journal-entries/{unknown}"), None, 404, "not_found", None),
    ];
    assert!(cases.len() >= 30);
    let before = app.row_counts().await;
    for c in &cases {
        let r = app.call(c.method.clone(), &c.path, c.body.clone()).await;
        let body = c
            .body
            .as_ref()
            .map(|b| b.to_string().chars().take(120).collect::<String>())
            .unwrap_or_default();
        let context = format!(
            "{} {} {body}",
            c.method,
            c.path.chars().take(80).collect::<String>()
        );
        assert_error(&context, &r, c.status, c.code, c.field);
    }
    // A body that is not JSON at all.
    let raw = app
        .client
        .post(format!("{}/programs", app.base))
        .bearer_auth(&app.key)
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(raw.status().as_u16(), 400);
    assert_eq!(
        raw.json::<Value>().await.expect("json")["details"]["field"],
        "body"
    );

    assert_eq!(
        app.row_counts().await,
        before,
        "a rejected request wrote something"
    );
    app.stop().await;
}
