//! What the pipeline's batching must not change: concurrent single POSTs share one INSERT yet each is checked
//! against its own organization; batches of events share writes yet a failed event leaves nothing behind; and
//! several servers' workers split one participant's events between them without losing or doubling any.

use crate::common::{AuthHeader, TestApp, id, test_options};
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
    let other = scrip::start(pool, "127.0.0.1:0".parse().expect("addr"), test_options(2))
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

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_batch_creates_each_new_participant_once_and_none_for_a_failed_event(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_without_workers(connect).await;
    let (welcome, points) = app.program_with_points("Welcome", "PTS").await;
    app.credit_rule(&welcome, "true", &points, "10").await;
    app.rule(
        &welcome,
        "friend",
        "has(event.friend)",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "5", "target": {"external_id": "event.friend"}}]),
    )
    .await;
    let (units, unit_asset) = app.program_with_points("Units", "UNI").await;
    app.rule(
        &units,
        "per unit",
        "has(event.units)",
        json!([{"type": "CREDIT", "asset_id": unit_asset, "amount": "event.units * 2.0"}]),
    )
    .await;
    let mut events = Vec::new();
    for (program, who, key, data) in [
        (&welcome, "dan", "d1", json!({})),
        // Fails (1.25 units is 2.5, below the asset's scale): dan stays out of Units.
        (&units, "dan", "d2", json!({"units": 1.25})),
        (&welcome, "dan", "d3", json!({})),
        (&units, "eve", "e1", json!({"units": 1.25})),
        (&units, "eve", "e2", json!({"units": 2})),
        // Creates fay as the target of a credit, before fay's own first event.
        (&welcome, "ann", "a1", json!({"friend": "fay"})),
        (&welcome, "fay", "f1", json!({})),
    ] {
        events.push(app.event(program, who, key, data).await);
    }
    let batch = app.process_batch().await;
    assert_eq!((batch.claimed, batch.finished), (7, 7), "one batch");
    let mut processed = Vec::new();
    for event in &events {
        processed.push(app.get(&format!("/events/{event}")).await.body);
    }
    // The failed attempts wait for their retry.
    let statuses: Vec<&Value> = processed.iter().map(|e| &e["status"]).collect();
    assert_eq!(
        statuses,
        [
            "COMPLETED",
            "PENDING",
            "COMPLETED",
            "PENDING",
            "COMPLETED",
            "COMPLETED",
            "COMPLETED"
        ]
    );
    assert_eq!(
        processed[1]["error_message"],
        "action CREDIT failed: amount exceeds asset scale"
    );

    let dan = app.participant_id("dan").await;
    assert_eq!(processed[0]["participant_id"], dan.as_str());
    assert_eq!(processed[2]["participant_id"], dan.as_str());
    assert_eq!(app.available(&dan, &points).await, "20");
    let eve = app.participant_id("eve").await;
    assert_eq!(processed[3]["participant_id"], Value::Null);
    assert_eq!(processed[4]["participant_id"], eve.as_str());
    assert_eq!(app.available(&eve, &unit_asset).await, "4");
    let (ann, fay) = (
        app.participant_id("ann").await,
        app.participant_id("fay").await,
    );
    assert_eq!(app.available(&ann, &points).await, "10");
    assert_eq!(
        app.available(&fay, &points).await,
        "15",
        "5 as a friend, 10 of its own"
    );
    let people: i64 = sqlx::query_scalar("SELECT count(*) FROM participants")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(people, 4, "dan, eve, ann and fay, each once");
    let dan_programs: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT program_id FROM participant_programs WHERE participant_id = $1::uuid",
    )
    .bind(&dan)
    .fetch_all(&app.pool)
    .await
    .expect("enrollments");
    assert_eq!(
        dan_programs.len(),
        1,
        "enrolled in Welcome only: {dan_programs:?}"
    );
    app.assert_ledger_consistent().await;
    app.stop().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_participant_created_elsewhere_while_its_first_event_is_processed_is_credited_once(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn_without_workers(connect).await;
    let (program, points) = app.program_with_points("Race", "PTS").await;
    app.credit_rule(&program, "true", &points, "10").await;
    let event = app.event(&program, "zed", "z1", json!({})).await;
    let organization: uuid::Uuid = sqlx::query_scalar("SELECT organization_id FROM programs")
        .fetch_one(&app.pool)
        .await
        .expect("organization");
    // Another transaction creates zed after the batch found no such participant and before it commits its
    // own: the batch waits on that insert, then starts over.
    let mut elsewhere = app.pool.begin().await.expect("transaction");
    let zed = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO participants (id, organization_id, external_id) VALUES ($1, $2, 'zed')",
    )
    .bind(zed)
    .bind(organization)
    .execute(&mut *elsewhere)
    .await
    .expect("zed");
    let (first, ()) = tokio::join!(app.try_process_batch(), async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        elsewhere.commit().await.expect("commit");
    });
    let conflict = first.expect_err("the batch cannot create zed");
    let constraint = conflict
        .as_database_error()
        .and_then(|db| db.constraint().map(str::to_owned));
    assert_eq!(
        constraint.as_deref(),
        Some("participants_external_id_unique"),
        "{conflict}"
    );
    let entries: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(entries, 0, "the rolled-back batch wrote nothing");

    let again = app.process_batch().await;
    assert_eq!((again.claimed, again.finished), (1, 1));
    let processed = app.processed(&event).await;
    assert_eq!(processed["status"], "COMPLETED");
    assert_eq!(processed["participant_id"], zed.to_string());
    assert_eq!(app.available(&zed.to_string(), &points).await, "10");
    app.assert_ledger_consistent().await;
    app.stop().await;
}
