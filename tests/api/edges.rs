//! Input at the edges of what the API accepts: refused with a 400 naming the field, and nothing changed.

use crate::common::{TestApp, assert_error, id};
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn participant(app: &TestApp) -> String {
    let (program, _) = app.program_with_points("Edges", "PTS").await;
    id(&app
        .created(
            "/participants",
            json!({"external_id": "eve", "program_id": program}),
        )
        .await)
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_tag_in_the_path_is_at_most_255_characters(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let eve = participant(&app).await;
    let long = "t".repeat(256);
    let r = app
        .call(
            reqwest::Method::PUT,
            &format!("/participants/{eve}/state/tags/{long}"),
            None,
        )
        .await;
    assert_error("256-character tag", &r, 400, "bad_request", Some("tag"));
    let ok = app
        .call(
            reqwest::Method::PUT,
            &format!("/participants/{eve}/state/tags/{}", "t".repeat(255)),
            None,
        )
        .await;
    assert_eq!(ok.status, 201, "{ok:?}");
    let tags = app
        .get(&format!("/participants/{eve}/state/tags"))
        .await
        .body;
    assert_eq!(tags["data"].as_array().map(Vec::len), Some(1));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn one_request_sets_at_most_100_attributes_or_tags(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let eve = participant(&app).await;
    let attributes = |n: usize| -> Map<String, Value> {
        (0..n).map(|i| (format!("k{i}"), json!("v"))).collect()
    };
    let too_many = app
        .patch(
            &format!("/participants/{eve}/state/attributes"),
            json!({"attributes": attributes(101)}),
        )
        .await;
    assert_error(
        "101 attributes",
        &too_many,
        400,
        "bad_request",
        Some("attributes"),
    );
    let none = app
        .get(&format!("/participants/{eve}/state/attributes"))
        .await
        .body;
    assert_eq!(none["data"], json!([]), "nothing was set");
    let hundred = app
        .patch(
            &format!("/participants/{eve}/state/attributes"),
            json!({"attributes": attributes(100)}),
        )
        .await;
    assert_eq!(hundred.status, 200, "{hundred:?}");

    let tags: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let r = app
        .call(
            reqwest::Method::PUT,
            &format!("/participants/{eve}/state/tags"),
            Some(json!({"tags": tags})),
        )
        .await;
    assert_error("101 tags", &r, 400, "bad_request", Some("tags"));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_cron_budget_that_never_resets_is_refused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Never", "PTS").await;
    let r = app
        .post(
            "/rules",
            json!({"program_id": program, "name": "feb 30", "condition": "true",
                   "actions": [{"type": "CREDIT", "asset_id": points, "amount": "1"}],
                   "budgets": [{"asset_id": points, "limit": "10", "schedule_type": "CRON",
                                "cron_expression": "0 0 30 2 *"}]}),
        )
        .await;
    assert_error(
        "February 30th",
        &r,
        400,
        "bad_request",
        Some("budgets[0].cron_expression"),
    );
    let rules = app.get(&format!("/rules?program_id={program}")).await.body;
    assert_eq!(rules["data"], json!([]));
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_unreachable_database_is_a_503_with_retry_after(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    app.pool.close().await;
    let r = app
        .client
        .get(format!("{}/programs", app.base))
        .bearer_auth(&app.key)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["code"], "service_unavailable", "{body}");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn bad_keys_are_refused_without_a_query_once_known_or_when_malformed(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let status = |key: String| {
        let app = &app;
        async move {
            app.client
                .get(format!("{}/programs", app.base))
                .bearer_auth(key)
                .send()
                .await
                .expect("answered")
                .status()
                .as_u16()
        }
    };
    let unknown = format!("sk_{}", "ab".repeat(24));
    assert_eq!(status(unknown.clone()).await, 401);
    assert_eq!(status(app.key.clone()).await, 200);
    // With the database gone, what the cache knows is still answered: the refused key, the good key and
    // anything not shaped like a key; only a new well-formed key needs the database.
    app.pool.close().await;
    assert_eq!(status(unknown).await, 401);
    assert_eq!(
        status(app.key.clone()).await,
        503,
        "the key is known, the programs are not"
    );
    assert_eq!(status("sk_not_a_key".into()).await, 401);
    assert_eq!(status(format!("sk_{}", "cd".repeat(24))).await, 503);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn readiness_follows_the_database_and_liveness_does_not(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let ready = format!("{}/health/ready", app.base.trim_end_matches("/v1"));
    let r = app.client.get(&ready).send().await.expect("answered");
    assert_eq!(r.status().as_u16(), 200);
    app.pool.close().await;
    let r = app.client.get(&ready).send().await.expect("answered");
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        app.health().await["status"],
        "degraded",
        "alive, not processing"
    );
}

/// Reads until the server closes the connection, or gives up after `within`; returns what was read.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut read = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => read.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    closed
        .ok()
        .map(|()| String::from_utf8_lossy(&read).into_owned())
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn slow_and_idle_connections_are_closed_after_the_header_timeout(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn(connect).await;
    let addr = app
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_owned();
    let limit = scrip::http::server::HEADER_TIMEOUT + std::time::Duration::from_secs(3);
    // A slowloris: headers started and never finished.
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connects");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: scrip\r\n")
        .await
        .expect("writes");
    // A keep-alive connection that goes quiet after one request.
    let mut idle = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connects");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: scrip\r\n\r\n")
        .await
        .expect("writes");
    let (slow, idle) = tokio::join!(
        read_until_closed(&mut slow, limit),
        read_until_closed(&mut idle, limit)
    );
    assert!(slow.is_some(), "the slow client's connection is closed");
    let idle = idle.expect("the idle connection is closed");
    assert!(
        idle.starts_with("HTTP/1.1 200"),
        "it was answered first: {idle}"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_body_over_the_limit_is_a_413_in_the_error_body(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, _) = app.program_with_points("Big", "PTS").await;
    let padding = "x".repeat(1024 * 1024);
    let r = app
        .post(
            "/events",
            json!({"program_id": program, "external_id": "big", "idempotency_key": "big",
                   "event_data": {"padding": padding}}),
        )
        .await;
    assert_error("a 1 MiB body", &r, 413, "payload_too_large", None);
    let events = app.get("/events").await.body;
    assert_eq!(events["data"], json!([]), "nothing was stored");
}

/// Sends `request` on a new connection and returns the whole answer, which must come within 15 s.
async fn raw_answer(app: &TestApp, request: &[u8]) -> String {
    use tokio::io::AsyncWriteExt;
    let addr = app
        .base
        .trim_start_matches("http://")
        .trim_end_matches("/v1");
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream.write_all(request).await.expect("writes");
    read_until_closed(&mut stream, std::time::Duration::from_secs(15))
        .await
        .expect("the server answers and closes")
}

/// The JSON body after an answer's head.
fn body_of(answer: &str) -> serde_json::Value {
    let (_, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {answer}"))
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn requests_the_http_layer_refuses_are_answered_in_the_error_body(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let long_uri = [
        b"GET /v1/programs?search=".as_slice(),
        &vec![b'a'; 100_000],
        b" HTTP/1.1\r\nHost: scrip\r\n\r\n",
    ]
    .concat();
    let answer = raw_answer(&app, &long_uri).await;
    assert!(
        answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
        "{answer}"
    );
    assert!(
        answer.contains("content-type: application/json\r\n"),
        "{answer}"
    );
    assert_eq!(body_of(&answer)["code"], "uri_too_long");

    let answer = raw_answer(&app, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert_eq!(body_of(&answer)["code"], "bad_request");

    let health = raw_answer(
        &app,
        b"GET /health HTTP/1.1\r\nHost: scrip\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        health.starts_with("HTTP/1.1 200 "),
        "other answers pass untouched: {health}"
    );
}

/// Every answer names its request in `X-Request-Id`, and an error body names it too, so a client can quote
/// the one that failed; no two requests share an id.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn every_answer_carries_its_request_id_and_errors_repeat_it(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let send = |path: &str, key: &str| {
        app.client
            .get(format!("{}{path}", app.base))
            .header("Authorization", format!("Bearer {key}"))
            .send()
    };
    let mut seen = std::collections::HashSet::new();
    for (path, key, status) in [
        ("/programs", app.key.as_str(), 200),
        ("/programs/not-a-uuid", app.key.as_str(), 400),
        (
            "/groups/550e8400-e29b-41d4-a716-446655440000",
            app.key.as_str(),
            404,
        ),
        ("/programs", "sk_wrong", 401),
        ("/no/such/route", app.key.as_str(), 404),
    ] {
        let answer = send(path, key).await.expect("request sent");
        assert_eq!(answer.status().as_u16(), status, "{path}");
        let header = answer
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(
            header.starts_with("req_") && header.len() > 20,
            "{path}: {header:?}"
        );
        assert!(seen.insert(header.clone()), "{path}: {header} used twice");
        let body: Value = answer.json().await.expect("JSON body");
        if status >= 400 {
            assert_eq!(body["request_id"], header.as_str(), "{path}: {body}");
        }
    }
}
