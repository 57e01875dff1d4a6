//! What the pipeline's batching must not change: concurrent single POSTs share one INSERT yet each is checked
//! against its own organization; batches of events share writes yet a failed event leaves nothing behind; and
//! several servers' workers split one participant's events between them without losing or doubling any.

use crate::common::{AuthHeader, TestApp, id, test_pipeline};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn concurrent_single_posts_of_two_organizations_are_each_checked_against_their_own(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let other = app.key_for("other-org").await;
    let as_other = |method, path: String, body| {
        let (app, other) = (&app, other.clone());
        async move {
            app.call_as(&other, AuthHeader::Bearer, method, &path, body)
                .await
        }
    };
    let (ours, _) = app.program_with_points("Ours", "OUR").await;
    let theirs = id(&as_other(
        Method::POST,
        "/programs".into(),
        Some(json!({"name": "Theirs"})),
    )
    .await
    .body);
    let their_member = as_other(
        Method::POST,
        "/participants".into(),
        Some(json!({"external_id": "theirs-1"})),
    )
    .await;
    assert!(their_member.status.is_success(), "{}", their_member.body);
    let their_member = id(&their_member.body);

    let event = |program: &str, key: String| {
        json!({"program_id": program, "external_id": format!("p-{key}"), "idempotency_key": key,
               "event_data": {"type": "purchase"}})
    };
    // Sent all at once, so most share an INSERT with events of the other organization.
    let our_posts = (0..20).map(|n| app.post("/events", event(&ours, format!("ours-{n}"))));
    let their_posts = (0..20).map(|n| {
        as_other(
            Method::POST,
            "/events".into(),
            Some(event(&theirs, format!("theirs-{n}"))),
        )
    });
    let into_ours = (0..10).map(|n| {
        as_other(
            Method::POST,
            "/events".into(),
            Some(event(&ours, format!("sneak-{n}"))),
        )
    });
    let naming_theirs = (0..5).map(|n| {
        app.post(
            "/events",
            json!({"program_id": ours, "participant_id": their_member, "idempotency_key": format!("x-{n}"),
                   "event_data": {}}),
        )
    });
    let (our_answers, their_answers, sneaked, named) = futures::join!(
        join_all(our_posts),
        join_all(their_posts),
        join_all(into_ours),
        join_all(naming_theirs)
    );
    for r in our_answers.iter().chain(&their_answers) {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    }
    for r in sneaked.iter().chain(&named) {
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }

    let ids = |answers: &[crate::common::Response]| {
        let mut ids: Vec<String> = answers.iter().map(|r| id(&r.body)).collect();
        ids.sort();
        ids
    };
    let listed = |body: &Value| {
        let mut ids: Vec<String> = body["data"]
            .as_array()
            .map(|events| events.iter().map(id).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    };
    assert_eq!(
        listed(&app.get("/events?limit=100").await.body),
        ids(&our_answers)
    );
    assert_eq!(
        listed(
            &as_other(Method::GET, "/events?limit=100".into(), None)
                .await
                .body
        ),
        ids(&their_answers)
    );
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_failed_event_in_a_batch_leaves_nothing_while_the_others_keep_their_writes(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Shared batch", "PTS").await;
    app.credit_rule(&program, "true", &points, "10").await;
    app.rule(
        &program,
        "tagged",
        "has(event.tag)",
        json!([{"type": "TAG", "tag": "tagged"}]),
    )
    .await;
    app.rule(
        &program,
        "per unit",
        "has(event.units)",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "event.units * 2.0"}]),
    )
    .await;
    // One request, so the events are stored together and most likely processed in one batch: the failing
    // one credits and tags before its third rule fails, between events whose credits are written later.
    let events = json!({"events": [
        {"program_id": program, "external_id": "ann", "idempotency_key": "a1", "event_data": {}},
        {"program_id": program, "external_id": "bob", "idempotency_key": "b1",
         "event_data": {"tag": true, "units": 1.25}},
        {"program_id": program, "external_id": "ann", "idempotency_key": "a2", "event_data": {"tag": true}},
        {"program_id": program, "external_id": "cat", "idempotency_key": "c1", "event_data": {"units": 2}},
    ]});
    let answer = app.post("/events/batch", events).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let ids: Vec<String> = answer.body["results"]
        .as_array()
        .map(|results| results.iter().map(|r| id(&r["event"])).collect())
        .unwrap_or_default();
    assert_eq!(ids.len(), 4, "{}", answer.body);
    let mut statuses = Vec::new();
    for event in &ids {
        statuses.push(app.processed(event).await["status"].clone());
    }
    assert_eq!(
        statuses,
        [
            json!("COMPLETED"),
            json!("FAILED"),
            json!("COMPLETED"),
            json!("COMPLETED")
        ]
    );

    let nobody = app.get("/participants?external_id=bob").await;
    assert_eq!(
        nobody.body["data"],
        json!([]),
        "the failed event created no one"
    );
    let ann = app.participant_id("ann").await;
    assert_eq!(app.available(&ann, &points).await, "20");
    let ann_tags = app.get(&format!("/participants/{ann}/state/tags")).await;
    assert_eq!(ann_tags.body["data"], json!([{"tag": "tagged"}]));
    let cat = app.participant_id("cat").await;
    assert_eq!(app.available(&cat, &points).await, "14");
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(entries, 4, "ann 2, cat 2, bob none");
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn workers_of_several_servers_share_participants_without_losing_or_doubling_an_event(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect.clone()).await;
    // A second server on the same database: four workers claim batches that name the same few participants.
    let pool = PgPoolOptions::new()
        .max_connections(6)
        .connect_with(connect)
        .await
        .expect("pool");
    let other = scrip::start(pool, "127.0.0.1:0".parse().expect("addr"), test_pipeline(2))
        .await
        .expect("server");
    let (program, points) = app.program_with_points("Contended", "PTS").await;
    app.credit_rule(&program, "true", &points, "10").await;
    app.rule(
        &program,
        "count",
        "true",
        json!([{"type": "COUNTER", "key": "visits", "value": "1"}]),
    )
    .await;
    let batches = (0..6).map(|b| {
        let events: Vec<Value> = (0..48)
            .map(|n| {
                json!({"program_id": program, "external_id": format!("u{}", n % 4),
                       "idempotency_key": format!("e{b}-{n}"), "event_data": {}})
            })
            .collect();
        app.post("/events/batch", json!({"events": events}))
    });
    let mut ids = Vec::new();
    for answer in join_all(batches).await {
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
        if let Some(results) = answer.body["results"].as_array() {
            ids.extend(results.iter().map(|r| id(&r["event"])));
        }
    }
    assert_eq!(ids.len(), 288);
    for event in &ids {
        assert_eq!(app.processed(event).await["status"], "COMPLETED");
    }
    for n in 0..4 {
        let participant = app.participant_id(&format!("u{n}")).await;
        assert_eq!(
            app.available(&participant, &points).await,
            "720",
            "u{n}: 72 events"
        );
        let visits = app
            .get(&format!(
                "/participants/{participant}/state/counters/visits"
            ))
            .await;
        assert_eq!(visits.body["value"], "72", "{}", visits.body);
    }
    app.assert_ledger_consistent().await;
    other.stop().await;
    app.stop().await;
}
