//! What operators and integrators see of requests themselves: request logs found by their `req_` id, usage
//! per day, rate limits with their headers, and the Prometheus metrics.

use crate::common::{TestApp, assert_error, id, test_pipeline};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};

/// A POST whose headers the test reads: status, headers and JSON body.
async fn post_raw(
    app: &TestApp,
    path: &str,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let r = app
        .client
        .post(format!("{}{path}", app.base))
        .bearer_auth(&app.key)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let (status, headers) = (r.status(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

/// The logs `query` finds, once there are at least `count` (logs are written a moment after each answer).
async fn logs(app: &TestApp, query: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = app.get(&format!("/logs?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let found = r.body["data"].as_array().cloned().unwrap_or_default();
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "no {count} logs for {query}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn header<'h>(headers: &'h reqwest::header::HeaderMap, name: &str) -> &'h str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no {name} header"))
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_failed_request_is_found_in_the_logs_by_its_request_id(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let sent = json!({"name": "", "description": "no name"});
    let (status, headers, body) = post_raw(&app, "/programs", sent.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let request_id = header(&headers, "x-request-id").to_owned();
    assert_eq!(body["request_id"], request_id.as_str());

    let found = logs(&app, &format!("request_id={request_id}"), 1).await;
    assert_eq!(found.len(), 1);
    let log = &found[0];
    assert_eq!(log["request_id"], request_id.as_str());
    assert_eq!(log["method"], "POST");
    assert_eq!(log["path"], "/v1/programs");
    assert_eq!(log["route_pattern"], "/v1/programs");
    assert_eq!(log["status_code"], 400);
    assert_eq!(log["error_code"], "bad_request");
    assert_eq!(log["auth_type"], "api_key");
    let bare = request_id.trim_start_matches("req_");
    let by_bare = logs(&app, &format!("request_id={bare}"), 1).await;
    assert_eq!(by_bare[0]["id"], log["id"], "the req_ prefix is optional");

    let detail = app.get(&format!("/logs/{}", id(log))).await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    assert_eq!(detail.body["request_body"], sent);
    assert_eq!(detail.body["response_body"]["code"], "bad_request");
    assert_eq!(detail.body["ip_address"], "127.0.0.1");

    let other = app.as_organization("other").await;
    assert_eq!(
        other
            .get(&format!("/logs?request_id={request_id}"))
            .await
            .body["data"],
        json!([]),
        "another organization's logs are not seen"
    );
    assert_error(
        "nor found by id",
        &other.get(&format!("/logs/{}", id(log))).await,
        404,
        "not_found",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn logs_keep_no_secrets(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (status, headers, body) = post_raw(
        &app,
        "/webhook-endpoints",
        json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(
        body["secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_"))
    );
    let request_id = header(&headers, "x-request-id");
    let log = &logs(&app, &format!("request_id={request_id}"), 1).await[0];
    let detail = app.get(&format!("/logs/{}", id(log))).await;
    assert_eq!(detail.body["response_body"]["secret"], "[REDACTED]");
    assert_eq!(
        detail.body["response_body"]["url"],
        "http://127.0.0.1:9/hook"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn logs_filter_by_status_and_route_and_sort_by_status(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    app.created("/programs", json!({"name": "One"})).await;
    app.post("/programs", json!({})).await;
    app.get(&format!("/programs/{}", uuid::Uuid::now_v7()))
        .await;
    logs(&app, "route_pattern=/v1/programs/{id}", 1).await;
    let errors = logs(&app, "status_min=400&route_pattern=/v1/programs", 1).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["status_code"], 400);
    let by_status = logs(&app, "method=post&sort_by=status_code&sort_dir=asc", 2).await;
    let statuses: Vec<&Value> = by_status.iter().map(|l| &l["status_code"]).collect();
    assert_eq!(statuses, [&json!(201), &json!(400)]);
    assert_error(
        "status_min above status_max",
        &app.get("/logs?status_min=500&status_max=400").await,
        400,
        "bad_request",
        Some("status_max"),
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn usage_counts_requests_and_errors_per_day(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    app.created("/programs", json!({"name": "One"})).await;
    app.post("/programs", json!({})).await;
    logs(&app, "", 2).await;
    let usage = app.get("/usage").await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    let days = usage.body["data"].as_array().expect("days");
    assert_eq!(days.len(), 1, "{days:?}");
    let today = chrono::Utc::now().date_naive().to_string();
    assert_eq!(days[0]["date"], today.as_str());
    // The two POSTs and the GETs that waited for their logs; of those, one error.
    assert!(days[0]["request_count"].as_i64().is_some_and(|n| n >= 2));
    assert_eq!(days[0]["error_count"], 1);
    let empty = app
        .get("/usage?from=2020-01-01T00:00:00Z&to=2020-01-31T00:00:00Z")
        .await;
    assert_eq!(empty.body["data"], json!([]));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_burst_over_the_rate_limit_gets_429s_and_nothing_past_the_limit_is_applied(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let options = scrip::Options {
        pipeline: test_pipeline(0),
        rate_limits: scrip::rate_limits::Settings {
            per_second: 1,
            burst: 5,
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with_options(connect, options).await;
    let mut answers = Vec::new();
    for n in 0..8 {
        answers.push(
            post_raw(
                &app,
                "/participants",
                json!({"external_id": format!("p{n}")}),
            )
            .await,
        );
    }
    let statuses: Vec<u16> = answers.iter().map(|(s, _, _)| s.as_u16()).collect();
    assert_eq!(statuses, [201, 201, 201, 201, 201, 429, 429, 429]);
    let remaining: Vec<&str> = answers
        .iter()
        .map(|(_, h, _)| header(h, "x-ratelimit-remaining"))
        .collect();
    assert_eq!(remaining, ["4", "3", "2", "1", "0", "0", "0", "0"]);
    for (status, headers, body) in &answers {
        assert_eq!(header(headers, "x-ratelimit-limit"), "5");
        let reset: u64 = header(headers, "x-ratelimit-reset")
            .parse()
            .expect("unix seconds");
        assert!(reset >= chrono::Utc::now().timestamp() as u64);
        if *status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["code"], "too_many_requests");
            assert!(body["request_id"].as_str().is_some());
            let wait: u64 = header(headers, "retry-after").parse().expect("seconds");
            assert!((1..=2).contains(&wait), "retry after {wait}");
        } else {
            assert!(headers.get("retry-after").is_none());
        }
    }
    let created: i64 = sqlx::query_scalar("SELECT count(*) FROM participants")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(created, 5, "refused requests applied nothing");

    let other = app.as_organization("other").await;
    let (status, _, _) = post_raw(&other, "/participants", json!({"external_id": "q"})).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "another organization has its own bucket"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn metrics_count_events_and_show_the_queue(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    app.credit_rule(&program, "true", &points, "5").await;
    let event = app.event(&program, "ann", "order-1", json!({})).await;
    app.processed(&event).await;
    let url = format!("{}/metrics", app.base.trim_end_matches("/v1"));
    let r = app.client.get(url).send().await.expect("sent");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        header(r.headers(), "content-type").starts_with("text/plain"),
        "the Prometheus text format"
    );
    let text = r.text().await.expect("text");
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    // Other tests share the process's counters: at least this test's.
    assert!(value("scrip_events_accepted_total") >= 1.0);
    assert!(value("scrip_events_processed_total{outcome=\"completed\"}") >= 1.0);
    assert!(value("scrip_rule_evaluation_seconds_count") >= 1.0);
    assert_eq!(value("scrip_event_queue_depth"), 0.0);
    assert!(value("scrip_event_queue_lag_seconds") >= 0.0);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn logs_older_than_the_retention_are_deleted(_: PgPoolOptions, connect: PgConnectOptions) {
    let first = TestApp::spawn(connect.clone()).await;
    let (_, headers, _) = post_raw(&first, "/programs", json!({"name": "Kept"})).await;
    let kept = header(&headers, "x-request-id").to_owned();
    logs(&first, &format!("request_id={kept}"), 1).await;
    let aged = sqlx::query(
        "INSERT INTO request_logs (id, organization_id, request_id, method, path, status_code, duration_ms,
                                   auth_type, created_at)
         SELECT $1, organization_id, 'req_old', method, path, status_code, duration_ms, auth_type,
                now() - interval '8 days'
           FROM request_logs WHERE request_id = $2",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(&kept)
    .execute(&first.pool)
    .await
    .expect("an old log");
    assert_eq!(aged.rows_affected(), 1);
    first.stop().await;

    // A server keeping a week of logs deletes the old one when it starts, and keeps the other.
    let options = scrip::Options {
        request_logs: scrip::request_logs::Settings { retention_days: 7 },
        ..crate::common::test_options(0)
    };
    let app = TestApp::spawn_with_options(connect, options).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT request_id FROM request_logs WHERE request_id IN ('req_old', $1)",
        )
        .bind(&kept)
        .fetch_all(&app.pool)
        .await
        .expect("logs");
        if ids == [kept.clone()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old log was not deleted: {ids:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
