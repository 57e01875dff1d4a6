//! Spending: the rewards catalog, redemptions of amounts and of rewards, their reversals, and the stock a
//! reward has under concurrent redemptions.

use crate::common::{TestApp, assert_error, id};
use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A participant of `program` holding `amount` of `asset`, credited by hand.
async fn member_with(
    app: &TestApp,
    program: &str,
    asset: &str,
    name: &str,
    amount: &str,
) -> String {
    let member = id(&app
        .created("/participants", json!({"external_id": name}))
        .await);
    app.created(
        &format!("/participants/{member}/balances/adjust"),
        json!({"program_id": program, "asset_id": asset, "type": "CREDIT", "amount": amount,
               "description": "Opening balance"}),
    )
    .await;
    member
}

async fn reward(app: &TestApp, program: &str, body: Value) -> Value {
    app.created(&format!("/programs/{program}/rewards"), body)
        .await
}

async fn redeem_item(app: &TestApp, member: &str, body: Value) -> crate::common::Response {
    app.post(&format!("/participants/{member}/redemptions/items"), body)
        .await
}

fn action_types(entries: &Value) -> Vec<Value> {
    entries["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["action_type"].clone())
        .collect()
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_unit_reward_is_redeemed_to_its_stock_and_reversed_in_parts(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    let ann = member_with(&app, &program, &points, "ann", "1000").await;
    let mug = reward(
        &app,
        &program,
        json!({"name": "Mug", "redemption_type": "UNIT_BASED", "asset_id": points, "unit_cost": "100",
               "status": "ACTIVE", "max_total": 3}),
    )
    .await;
    let mug_id = id(&mug);
    assert_eq!(mug["redeemed_count"], 0);

    let order = json!({"program_id": program, "reward_id": mug_id, "quantity": 2, "idempotency_key": "o-1"});
    let first = redeem_item(&app, &ann, order.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["amount"], "200");
    assert_eq!(first.body["unit_cost"], "100");
    assert_eq!(first.body["quantity"], 2);
    assert_eq!(first.body["description"], "Redeemed: Mug");
    assert_eq!(first.body["status"], "COMPLETED");
    assert_eq!(app.available(&ann, &points).await, "800");
    let replay = redeem_item(&app, &ann, order).await;
    assert_eq!(replay.status, StatusCode::OK, "a replayed key answers 200");
    assert_eq!(replay.body["id"], first.body["id"]);
    let changed = json!({"program_id": program, "reward_id": mug_id, "quantity": 1, "idempotency_key": "o-1"});
    assert_error(
        "same key, other request",
        &redeem_item(&app, &ann, changed).await,
        409,
        "idempotency_conflict",
        None,
    );
    assert_eq!(app.available(&ann, &points).await, "800");

    let two = json!({"program_id": program, "reward_id": mug_id, "quantity": 2});
    assert_error(
        "more than the stock left",
        &redeem_item(&app, &ann, two).await,
        409,
        "out_of_stock",
        None,
    );
    let one = json!({"program_id": program, "reward_id": mug_id});
    assert_eq!(
        redeem_item(&app, &ann, one.clone()).await.status,
        StatusCode::CREATED
    );
    let sold_out = app
        .get(&format!("/programs/{program}/rewards/{mug_id}"))
        .await;
    assert_eq!(sold_out.body["status"], "OUT_OF_STOCK");
    assert_eq!(sold_out.body["redeemed_count"], 3);
    assert_error(
        "sold out",
        &redeem_item(&app, &ann, one).await,
        409,
        "out_of_stock",
        None,
    );

    // Reversals: by quantity, bounded by what is left, each one giving its units back to the stock.
    let redemption = id(&first.body);
    let reverse = format!("/redemptions/{redemption}/reverse");
    assert_error(
        "a UNIT_BASED redemption is reversed by quantity",
        &app.post(&reverse, json!({"reason": "Broken", "amount": "100"}))
            .await,
        400,
        "bad_request",
        Some("amount"),
    );
    let before = app.row_counts().await;
    assert_error(
        "more than was redeemed",
        &app.post(&reverse, json!({"reason": "Broken", "quantity": 3}))
            .await,
        409,
        "reversal_exceeds_redemption",
        None,
    );
    assert_eq!(
        app.row_counts().await,
        before,
        "a refused reversal writes nothing"
    );
    let part = app
        .post(&reverse, json!({"reason": "Broken", "quantity": 1}))
        .await;
    assert_eq!(part.status, StatusCode::CREATED, "{}", part.body);
    assert_eq!(part.body["amount"], "100");
    assert_eq!(part.body["quantity"], 1);
    let restocked = app
        .get(&format!("/programs/{program}/rewards/{mug_id}"))
        .await;
    assert_eq!(
        restocked.body["status"], "ACTIVE",
        "a reversal brings stock back"
    );
    assert_eq!(restocked.body["redeemed_count"], 2);
    let after_part = app.get(&format!("/redemptions/{redemption}")).await.body;
    assert_eq!(after_part["status"], "PARTIALLY_REVERSED");
    assert_eq!(after_part["reversed_amount"], "100");
    assert_eq!(after_part["reversed_quantity"], 1);

    let rest = app
        .post(&reverse, json!({"reason": "Refund the rest"}))
        .await;
    assert_eq!(rest.status, StatusCode::CREATED, "{}", rest.body);
    assert_eq!(
        rest.body["quantity"], 1,
        "a full reversal takes what is left"
    );
    assert_eq!(
        app.get(&format!("/redemptions/{redemption}")).await.body["status"],
        "FULLY_REVERSED"
    );
    assert_error(
        "nothing is left to reverse",
        &app.post(&reverse, json!({"reason": "Again"})).await,
        409,
        "already_reversed",
        None,
    );
    assert_eq!(app.available(&ann, &points).await, "900");

    let reversals = app
        .get(&format!("/redemptions/{redemption}/reversals"))
        .await
        .body;
    let reasons: Vec<&Value> = reversals["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| &r["reason"])
        .collect();
    assert_eq!(
        reasons,
        [&json!("Broken"), &json!("Refund the rest")],
        "oldest first"
    );
    let listed = app
        .get(&format!(
            "/participants/{ann}/redemptions?status=FULLY_REVERSED"
        ))
        .await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body["data"][0]["id"], json!(redemption));
    let by_reward = app
        .get(&format!(
            "/participants/{ann}/redemptions?reward_catalog_item_id={mug_id}"
        ))
        .await;
    assert_eq!(by_reward.body["data"].as_array().map(Vec::len), Some(2));
    let entries = app
        .get(&format!("/journal-entries?participant_id={ann}"))
        .await
        .body;
    assert_eq!(
        action_types(&entries),
        ["REVERSAL", "REVERSAL", "REDEMPTION", "REDEMPTION", "CREDIT"]
    );
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_redemption_needs_the_balance_an_active_member_and_an_active_program(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    let bo = member_with(&app, &program, &points, "bo", "50").await;
    let redeem = format!("/participants/{bo}/redemptions");
    let body = |amount: &str| json!({"program_id": program, "asset_id": points, "amount": amount, "description": "Donation"});
    let before = app.row_counts().await;
    assert_error(
        "over the balance",
        &app.post(&redeem, body("51")).await,
        422,
        "insufficient_balance",
        None,
    );
    assert_eq!(
        app.row_counts().await,
        before,
        "a refused redemption writes nothing"
    );
    assert_error(
        "no description",
        &app.post(
            &redeem,
            json!({"program_id": program, "asset_id": points, "amount": "5"}),
        )
        .await,
        400,
        "bad_request",
        Some("description"),
    );

    let done = app.post(&redeem, body("20")).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
    assert_eq!(done.body["reward_id"], Value::Null);
    assert_eq!(app.available(&bo, &points).await, "30");
    let entry = app
        .get(&format!(
            "/journal-entries/{}",
            done.body["journal_entry_id"].as_str().unwrap_or("")
        ))
        .await
        .body;
    let mut postings: Vec<(Value, Value)> = entry["postings"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["entity_type"].clone(), p["amount"].clone()))
        .collect();
    postings.sort_by_key(|(kind, _)| kind.to_string());
    assert_eq!(
        postings,
        [
            (json!("PARTICIPANT"), json!("-20")),
            (json!("SYSTEM_REDEMPTION"), json!("20"))
        ],
        "the value goes to the program's redemption target"
    );

    let other = id(&app.created("/programs", json!({"name": "Other"})).await);
    assert_error(
        "an asset the program does not use",
        &app.post(
            &redeem,
            json!({"program_id": other, "asset_id": points, "amount": "1",
                                  "description": "x"}),
        )
        .await,
        404,
        "not_found",
        None,
    );
    app.patch(
        &format!("/participants/{bo}/status"),
        json!({"status": "SUSPENDED"}),
    )
    .await;
    assert_error(
        "suspended member",
        &app.post(&redeem, body("1")).await,
        409,
        "participant_inactive",
        None,
    );
    app.patch(
        &format!("/participants/{bo}/status"),
        json!({"status": "ACTIVE"}),
    )
    .await;
    app.patch(
        &format!("/programs/{program}"),
        json!({"status": "SUSPENDED"}),
    )
    .await;
    assert_error(
        "suspended program",
        &app.post(&redeem, body("1")).await,
        409,
        "program_inactive",
        None,
    );
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn reversals_restore_the_consumed_lots_the_last_one_first(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, miles) = app.program_with_asset("Air", "MI", "LOT", 0).await;
    let cy = member_with(&app, &program, &miles, "cy", "10").await;
    for amount in ["20", "30"] {
        app.created(
            &format!("/participants/{cy}/balances/adjust"),
            json!({"program_id": program, "asset_id": miles, "type": "CREDIT", "amount": amount,
                   "description": "Flight"}),
        )
        .await;
    }
    let lots_path = format!("/participants/{cy}/balances/lots?asset_id={miles}");
    let lots = |body: Value| -> Vec<(Value, Value)> {
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| (l["remaining"].clone(), l["status"].clone()))
            .collect()
    };
    let redemption = app
        .created(
            &format!("/participants/{cy}/redemptions"),
            json!({"program_id": program, "asset_id": miles, "amount": "55", "description": "Upgrade"}),
        )
        .await;
    assert_eq!(
        lots(app.get(&lots_path).await.body),
        [
            (json!("0"), json!("CONSUMED")),
            (json!("0"), json!("CONSUMED")),
            (json!("5"), json!("AVAILABLE")),
        ],
        "the redemption spent the oldest lots first"
    );
    let reverse = format!("/redemptions/{}/reverse", id(&redemption));
    let first = app
        .post(
            &reverse,
            json!({"reason": "Partly refunded", "amount": "30"}),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(
        lots(app.get(&lots_path).await.body),
        [
            (json!("0"), json!("CONSUMED")),
            (json!("5"), json!("AVAILABLE")),
            (json!("30"), json!("AVAILABLE")),
        ],
        "the last lot taken comes back first"
    );
    let second = app
        .post(&reverse, json!({"reason": "Refunded", "amount": "25"}))
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(
        lots(app.get(&lots_path).await.body),
        [
            (json!("10"), json!("AVAILABLE")),
            (json!("20"), json!("AVAILABLE")),
            (json!("30"), json!("AVAILABLE")),
        ]
    );
    assert_eq!(app.available(&cy, &miles).await, "60");
    assert_error(
        "nothing is left",
        &app.post(&reverse, json!({"reason": "Again", "amount": "1"}))
            .await,
        409,
        "already_reversed",
        None,
    );
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn concurrent_redemptions_never_take_more_than_the_stock_or_the_member_cap(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Drop", "PTS").await;
    let mut members = Vec::new();
    for n in 0..20 {
        members.push(member_with(&app, &program, &points, &format!("m{n}"), "100").await);
    }
    let sneaker = id(&reward(
        &app,
        &program,
        json!({"name": "Sneaker", "redemption_type": "UNIT_BASED", "asset_id": points, "unit_cost": "5",
               "status": "ACTIVE", "max_total": 10}),
    )
    .await);
    let order = json!({"program_id": program, "reward_id": sneaker});
    let raced =
        join_all((0..200).map(|n| redeem_item(&app, &members[n % members.len()], order.clone())))
            .await;
    let won = raced
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(won, 10, "exactly the stock is sold");
    for lost in raced.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_error("sold out", lost, 409, "out_of_stock", None);
    }
    let sold = app
        .get(&format!("/programs/{program}/rewards/{sneaker}"))
        .await
        .body;
    assert_eq!(
        (sold["redeemed_count"].clone(), sold["status"].clone()),
        (json!(10), json!("OUT_OF_STOCK"))
    );

    let cap = id(&reward(
        &app,
        &program,
        json!({"name": "Sticker", "redemption_type": "UNIT_BASED", "asset_id": points, "unit_cost": "1",
               "status": "ACTIVE", "max_per_participant": 2}),
    )
    .await);
    let sticker = json!({"program_id": program, "reward_id": cap});
    let fan = member_with(&app, &program, &points, "fan", "100").await;
    let raced = join_all((0..30).map(|_| redeem_item(&app, &fan, sticker.clone()))).await;
    assert_eq!(
        raced
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count(),
        2
    );
    for lost in raced.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_error(
            "over the member cap",
            lost,
            409,
            "redemption_limit_exceeded",
            None,
        );
    }
    assert_eq!(app.available(&fan, &points).await, "98");
    app.assert_ledger_consistent().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn only_an_active_reward_inside_its_window_is_redeemable(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    let di = member_with(&app, &program, &points, "di", "500").await;
    let card = reward(
        &app,
        &program,
        json!({"name": "Gift card", "redemption_type": "AMOUNT_BASED", "asset_id": points, "unit_cost": "50",
               "status": "DRAFT", "available_from": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let card_id = id(&card);
    let order =
        |amount: &str| json!({"program_id": program, "reward_id": card_id, "amount": amount});
    assert_error(
        "a draft",
        &redeem_item(&app, &di, order("60")).await,
        409,
        "reward_not_active",
        None,
    );
    let path = format!("/programs/{program}/rewards/{card_id}");
    app.patch(
        &path,
        json!({"status": "ACTIVE", "available_until": "2021-01-01T00:00:00Z"}),
    )
    .await;
    assert_error(
        "after its window",
        &redeem_item(&app, &di, order("60")).await,
        409,
        "reward_not_available",
        None,
    );
    let reopened = app.patch(&path, json!({"available_until": null})).await;
    assert_eq!(reopened.body["available_until"], Value::Null);
    assert_error(
        "below the minimum",
        &redeem_item(&app, &di, order("49")).await,
        400,
        "bad_request",
        Some("amount"),
    );
    assert_error(
        "an amount-based reward takes no quantity",
        &redeem_item(
            &app,
            &di,
            json!({"program_id": program, "reward_id": card_id, "quantity": 1}),
        )
        .await,
        400,
        "bad_request",
        Some("quantity"),
    );
    let bought = redeem_item(&app, &di, order("75.0")).await;
    assert_eq!(bought.status, StatusCode::CREATED, "{}", bought.body);
    assert_eq!(
        (
            bought.body["amount"].clone(),
            bought.body["quantity"].clone()
        ),
        (json!("75"), json!(1))
    );
    let partial = app
        .post(
            &format!("/redemptions/{}/reverse", id(&bought.body)),
            json!({"reason": "x", "amount": "25"}),
        )
        .await;
    assert_eq!(partial.status, StatusCode::CREATED, "{}", partial.body);
    assert_eq!(partial.body["quantity"], Value::Null);
    assert_eq!(app.available(&di, &points).await, "450");
    app.patch(&path, json!({"status": "ARCHIVED"})).await;
    assert_error(
        "archived",
        &redeem_item(&app, &di, order("60")).await,
        409,
        "reward_not_active",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn the_catalog_is_listed_filtered_and_kept_consistent(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    let rewards = format!("/programs/{program}/rewards");
    let new = |name: &str, status: &str| {
        json!({"name": name, "redemption_type": "UNIT_BASED", "asset_id": points, "unit_cost": "10",
               "status": status, "category": "drinks", "metadata": {"sku": name}})
    };
    for (name, status) in [("Latte", "ACTIVE"), ("Mocha", "DRAFT"), ("Tea", "ARCHIVED")] {
        reward(&app, &program, new(name, status)).await;
    }
    assert_error(
        "a second Latte",
        &app.post(&rewards, new("Latte", "DRAFT")).await,
        409,
        "conflict",
        None,
    );
    assert_error(
        "caps on an amount-based reward",
        &app.post(&rewards, json!({"name": "Card", "redemption_type": "AMOUNT_BASED", "asset_id": points,
                                   "unit_cost": "10", "status": "ACTIVE", "max_per_participant": 1})).await,
        400,
        "bad_request",
        Some("max_per_participant"),
    );
    let (_, elsewhere) = app.program_with_points("Other", "OTH").await;
    assert_error(
        "an asset the program does not use",
        &app.post(
            &rewards,
            json!({"name": "Foreign", "redemption_type": "UNIT_BASED", "asset_id": elsewhere,
                                   "unit_cost": "10", "status": "ACTIVE"}),
        )
        .await,
        400,
        "bad_request",
        Some("asset_id"),
    );
    let names = |body: Value| -> Vec<Value> {
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["name"].clone())
            .collect()
    };
    assert_eq!(
        names(
            app.get(&format!("{rewards}?sort_by=name&sort_dir=asc"))
                .await
                .body
        ),
        ["Latte", "Mocha"]
    );
    assert_eq!(
        names(
            app.get(&format!(
                "{rewards}?include_archived=true&sort_by=name&sort_dir=desc"
            ))
            .await
            .body
        ),
        ["Tea", "Mocha", "Latte"]
    );
    assert_eq!(
        names(app.get(&format!("{rewards}?status=ARCHIVED")).await.body),
        ["Tea"]
    );
    assert_eq!(
        names(app.get(&format!("{rewards}?search=OCH")).await.body),
        ["Mocha"]
    );
    let paged = app
        .get(&format!("{rewards}?limit=1&sort_by=name&sort_dir=asc"))
        .await
        .body;
    let cursor = paged["pagination"]["next_cursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        names(
            app.get(&format!(
                "{rewards}?limit=1&sort_by=name&sort_dir=asc&cursor={cursor}"
            ))
            .await
            .body
        ),
        ["Mocha"]
    );

    let latte = app.get(&format!("{rewards}?search=Latte")).await.body["data"][0].clone();
    let path = format!("{rewards}/{}", id(&latte));
    assert_error(
        "the type is fixed",
        &app.patch(&path, json!({"redemption_type": "AMOUNT_BASED"}))
            .await,
        400,
        "bad_request",
        Some("redemption_type"),
    );
    assert_error(
        "a taken name",
        &app.patch(&path, json!({"name": "Mocha"})).await,
        409,
        "conflict",
        None,
    );
    let patched = app
        .patch(
            &path,
            json!({"unit_cost": "12.0", "category": null, "max_total": 5, "metadata": {}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(
        (
            patched.body["unit_cost"].clone(),
            patched.body["category"].clone(),
            patched.body["max_total"].clone()
        ),
        (json!("12"), Value::Null, json!(5))
    );
    assert_eq!(patched.body["metadata"], json!({}));
    assert_eq!(
        patched.body["name"], "Latte",
        "what the patch leaves out stays"
    );
    assert_error(
        "an unknown reward",
        &app.get(&format!("{rewards}/0192f5a0-0000-7000-8000-000000000000"))
            .await,
        404,
        "not_found",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn verify_flags_a_redemption_that_disagrees_with_its_reversals(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    let eve = member_with(&app, &program, &points, "eve", "10").await;
    let redemption = app
        .created(
            &format!("/participants/{eve}/redemptions"),
            json!({"program_id": program, "asset_id": points, "amount": "4", "description": "x"}),
        )
        .await;
    app.assert_ledger_consistent().await;
    sqlx::query("UPDATE redemptions SET reversed_amount = 1, status = 'PARTIALLY_REVERSED' WHERE id = $1::uuid")
        .bind(id(&redemption))
        .execute(&app.pool)
        .await
        .expect("a tampered redemption");
    let found = scrip::verify::check_invariants(&app.pool)
        .await
        .expect("invariant queries");
    assert_eq!(
        found.misstated_redemptions,
        [format!("redemption {}", id(&redemption))]
    );
}
