//! Webhooks over real HTTP: endpoints, signed deliveries checked by the reference verifier of another
//! language, retries with backoff, disabling, retry and resend, rotation, and delivery after a crash.

use crate::common::{TestApp, assert_error, id, test_pipeline, test_webhooks};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How a [`Receiver`] answers one request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Status(u16),
    /// Never answers.
    Hang,
}

/// One request a receiver got, as it came.
#[derive(Debug, Clone)]
struct Received {
    headers: BTreeMap<String, String>,
    body: String,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    got: Mutex<Vec<Received>>,
}

/// A webhook receiver on loopback: records every request and answers as scripted, then 200.
struct Receiver {
    url: String,
    script: Arc<Script>,
}

impl Receiver {
    async fn start(answers: &[Answer]) -> Receiver {
        let script = Arc::new(Script {
            answers: Mutex::new(answers.iter().copied().collect()),
            got: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, script }
    }

    fn got(&self) -> Vec<Received> {
        self.script.got.lock().expect("lock").clone()
    }

    /// Waits until it has received `count` requests.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        until(&format!("{count} requests"), async || {
            let got = self.got();
            (got.len() >= count).then_some(got)
        })
        .await
    }
}

async fn receive(State(script): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let headers = headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default().to_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    let body = String::from_utf8(body.to_vec()).expect("a UTF-8 body");
    script
        .got
        .lock()
        .expect("lock")
        .push(Received { headers, body });
    let answer = script.answers.lock().expect("lock").pop_front();
    match answer.unwrap_or(Answer::Status(200)) {
        Answer::Status(status) => StatusCode::from_u16(status).expect("status"),
        Answer::Hang => std::future::pending().await,
    }
}

/// Polls `check` until it gives something, for at most 30 seconds.
async fn until<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "waited in vain for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the Standard Webhooks reference verifier (Python, from PyPI) on the deliveries; returns the types it
/// verified, or `Err` with what it said.
fn verify_with_reference(secret: &str, deliveries: &[Received]) -> Result<Vec<String>, String> {
    use std::io::Write;
    let python = std::env::var("SCRIP_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/webhooks/verify.py");
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .arg(secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("{python} runs: {err}"));
    let mut input = String::new();
    for d in deliveries {
        input.push_str(&json!({"headers": d.headers, "body": d.body}).to_string());
        input.push('\n');
    }
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("written");
    let out = child.wait_with_output().expect("verifier ran");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the verifier needs `pip install standardwebhooks` (tests/run.sh installs it): {stderr}"
    );
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()),
        false => Err(stderr),
    }
}

/// An endpoint subscribed to `events` at `url`; returns its id and secret.
async fn endpoint(app: &TestApp, url: &str, events: Value) -> (String, String) {
    let created = app
        .created(
            "/webhook-endpoints",
            json!({"url": url, "enabled_events": events}),
        )
        .await;
    let secret = created["secret"].as_str().expect("secret").to_owned();
    (id(&created), secret)
}

/// The endpoint's deliveries, newest first.
async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let r = app
        .get(&format!(
            "/webhook-endpoints/{endpoint}/deliveries?limit=100"
        ))
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    r.body["data"].as_array().cloned().unwrap_or_default()
}

/// Waits until the delivery is DELIVERED or FAILED, and returns its detail.
async fn settled(app: &TestApp, delivery: &str) -> Value {
    until("the delivery to settle", async || {
        let r = app.get(&format!("/webhook-deliveries/{delivery}")).await;
        let done = matches!(r.body["status"].as_str(), Some("DELIVERED" | "FAILED"));
        done.then_some(r.body)
    })
    .await
}

/// Creates a participant over the API, which reports participant.created.
async fn participant(app: &TestApp, name: &str) -> String {
    id(&app
        .created("/participants", json!({"external_id": name}))
        .await)
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_endpoint_shows_its_secret_only_when_created_or_rotated(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let created = app
        .post(
            "/webhook-endpoints",
            json!({"url": "http://127.0.0.1:9/hook", "enabled_events": ["balance.credited", "*"],
                   "description": "Ops", "metadata": {"team": "loyalty"}}),
        )
        .await;
    assert_eq!(created.status.as_u16(), 201, "{}", created.body);
    let endpoint = id(&created.body);
    let secret = created.body["secret"].as_str().expect("secret");
    assert!(
        secret.len() == 70
            && secret.starts_with("whsec_")
            && secret[6..].chars().all(|c| c.is_ascii_hexdigit()),
        "secret {secret}"
    );
    assert_eq!(created.body["status"], "ACTIVE");
    assert_eq!(
        created.body["enabled_events"],
        json!(["*", "balance.credited"])
    );
    assert_eq!(created.body["metadata"], json!({"team": "loyalty"}));

    let got = app.get(&format!("/webhook-endpoints/{endpoint}")).await;
    assert!(got.body.get("secret").is_none(), "{}", got.body);
    let listed = app.get("/webhook-endpoints").await;
    assert_eq!(listed.body["data"][0]["id"], endpoint.as_str());
    assert!(listed.body["data"][0].get("secret").is_none());

    let rotated = app
        .post(
            &format!("/webhook-endpoints/{endpoint}/rotate-secret"),
            json!({}),
        )
        .await;
    assert_eq!(rotated.status.as_u16(), 200, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().expect("new secret");
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn endpoints_update_disable_and_archive(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let (first, _) = endpoint(&app, "http://127.0.0.1:9/a", json!(["*"])).await;
    let (second, _) = endpoint(&app, "http://127.0.0.1:9/b", json!(["*"])).await;
    let path = format!("/webhook-endpoints/{first}");
    let updated = app
        .patch(
            &path,
            json!({"enabled_events": ["event.failed"], "description": "failures", "status": "DISABLED"}),
        )
        .await;
    assert_eq!(updated.status.as_u16(), 200, "{}", updated.body);
    assert_eq!(updated.body["enabled_events"], json!(["event.failed"]));
    assert_eq!(updated.body["status"], "DISABLED");
    let disabled = app.get("/webhook-endpoints?status=DISABLED").await;
    let ids: Vec<&Value> = disabled.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(ids, vec![&json!(first)]);

    let archived = app.call(reqwest::Method::DELETE, &path, None).await;
    assert_eq!(archived.status.as_u16(), 200, "{}", archived.body);
    assert_eq!(archived.body["status"], "ARCHIVED");
    let listed = app.get("/webhook-endpoints").await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body["data"][0]["id"], second.as_str());
    assert_error(
        "an archived endpoint cannot change",
        &app.patch(&path, json!({"status": "ACTIVE"})).await,
        409,
        "endpoint_archived",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn endpoints_refuse_urls_that_are_not_https_to_public_hosts_and_unknown_event_types(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // As in production: loopback is refused too.
    let app = TestApp::spawn_with_options(connect, test_pipeline(0).into()).await;
    let before = app.row_counts().await;
    for url in [
        "http://example.com/hook",
        "https://10.0.0.8/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://printer.local/hook",
        "https://vault.internal/hook",
        "not a url",
    ] {
        assert_error(
            url,
            &app.post(
                "/webhook-endpoints",
                json!({"url": url, "enabled_events": ["*"]}),
            )
            .await,
            400,
            "bad_request",
            Some("url"),
        );
    }
    assert_error(
        "an unknown event type",
        &app.post(
            "/webhook-endpoints",
            json!({"url": "https://93.184.215.14/hook", "enabled_events": ["balance.stolen"]}),
        )
        .await,
        400,
        "bad_request",
        Some("enabled_events[0]"),
    );
    assert_error(
        "no event types",
        &app.post(
            "/webhook-endpoints",
            json!({"url": "https://93.184.215.14/hook", "enabled_events": []}),
        )
        .await,
        400,
        "bad_request",
        Some("enabled_events"),
    );
    assert_eq!(app.row_counts().await, before, "refusals write nothing");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn deliveries_are_signed_as_the_reference_verifier_expects(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let receiver = Receiver::start(&[]).await;
    let (_, secret) = endpoint(
        &app,
        &receiver.url,
        json!([
            "event.completed",
            "balance.credited",
            "redemption.completed"
        ]),
    )
    .await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    app.credit_rule(&program, "true", &points, "50").await;
    let event = app
        .event(&program, "ann", "order-1", json!({"amount": 10}))
        .await;
    app.processed(&event).await;
    let ann = app.participant_id("ann").await;
    app.created(
        &format!("/participants/{ann}/redemptions"),
        json!({"program_id": program, "asset_id": points, "amount": "20", "description": "Coffee"}),
    )
    .await;

    let got = receiver.wait_for(3).await;
    let mut types = verify_with_reference(&secret, &got).expect("every delivery verifies");
    types.sort();
    assert_eq!(
        types,
        [
            "balance.credited",
            "event.completed",
            "redemption.completed"
        ]
    );
    let by_type = |kind: &str| {
        got.iter()
            .map(Received::json)
            .find(|body| body["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
    };
    let credited = by_type("balance.credited");
    assert_eq!(credited["api_version"], "2026-03-01");
    assert_eq!(credited["data"]["participant_id"], ann.as_str());
    assert!(credited["data"].get("group_id").is_none());
    assert_eq!(credited["data"]["amount"], "50");
    assert_eq!(credited["data"]["asset_id"], points.as_str());
    assert_eq!(credited["data"]["event_id"], event.as_str());
    let completed = by_type("event.completed");
    assert_eq!(completed["data"]["event_id"], event.as_str());
    assert_eq!(completed["data"]["status"], "COMPLETED");
    let redeemed = by_type("redemption.completed");
    assert_eq!(redeemed["data"]["amount"], "20");
    assert_eq!(redeemed["data"]["participant_id"], ann.as_str());
    // The webhook-id header is the envelope's id, which receivers deduplicate by.
    for d in &got {
        assert_eq!(
            d.headers["webhook-id"],
            d.json()["id"].as_str().expect("id")
        );
    }

    let mut tampered = got[0].clone();
    tampered.body = tampered.body.replace("2026-03-01", "2026-03-02");
    assert!(
        verify_with_reference(&secret, &[tampered]).is_err(),
        "a changed body fails verification"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_failed_event_reports_event_failed_and_none_of_its_rolled_back_credits(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let receiver = Receiver::start(&[]).await;
    let (hook, _) = endpoint(&app, &receiver.url, json!(["*"])).await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    app.credit_rule(&program, "true", &points, "5").await;
    app.rule(
        &program,
        "overdraw",
        "true",
        json!([{"type": "DEBIT", "asset_id": points, "amount": "1000"}]),
    )
    .await;
    let event = app.event(&program, "bo", "order-1", json!({})).await;
    assert_eq!(app.processed(&event).await["status"], "FAILED");
    let types: Vec<Value> = deliveries(&app, &hook)
        .await
        .iter()
        .map(|d| d["event_type"].clone())
        .collect();
    assert!(types.contains(&json!("event.failed")), "{types:?}");
    for rolled_back in ["balance.credited", "balance.debited", "event.completed"] {
        assert!(!types.contains(&json!(rolled_back)), "{types:?}");
    }
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_receiver_failing_three_times_gets_one_delivery_after_four_attempts(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let receiver = Receiver::start(&[
        Answer::Status(500),
        Answer::Status(503),
        Answer::Status(500),
    ])
    .await;
    let (hook, _) = endpoint(&app, &receiver.url, json!(["participant.created"])).await;
    participant(&app, "cy").await;
    let delivery = until("a delivery", async || {
        deliveries(&app, &hook).await.first().cloned()
    })
    .await;
    let done = settled(&app, &id(&delivery)).await;
    assert_eq!(done["status"], "DELIVERED", "{done}");
    assert_eq!(done["attempt_count"], 4);
    assert_eq!(done["last_response_status"], 200);
    assert_eq!(deliveries(&app, &hook).await.len(), 1);
    let got = receiver.got();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter()
            .all(|d| d.headers["webhook-id"] == got[0].headers["webhook-id"]),
        "every attempt carries the same webhook-id"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_failed_delivery_is_retried_on_request_and_resent_as_a_new_delivery(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let receiver = Receiver::start(&[Answer::Status(500); 8]).await;
    let (hook, _) = endpoint(&app, &receiver.url, json!(["participant.created"])).await;
    participant(&app, "dee").await;
    let first = until("a delivery", async || {
        deliveries(&app, &hook).await.first().cloned()
    })
    .await;
    let delivery = id(&first);
    let failed = settled(&app, &delivery).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert_eq!(failed["attempt_count"], 8);
    assert_eq!(failed["max_attempts"], 8);
    assert_eq!(failed["last_response_status"], 500);
    assert_eq!(failed["error_code"], "consumer_error_status");
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500"))
    );

    let retried = app
        .post(&format!("/webhook-deliveries/{delivery}/retry"), json!({}))
        .await;
    assert_eq!(retried.status.as_u16(), 200, "{}", retried.body);
    let delivered = settled(&app, &delivery).await;
    assert_eq!(delivered["status"], "DELIVERED", "{delivered}");
    assert_eq!(
        delivered["attempt_count"], 1,
        "a retry starts a fresh budget"
    );
    assert_error(
        "only a FAILED delivery can be retried",
        &app.post(&format!("/webhook-deliveries/{delivery}/retry"), json!({}))
            .await,
        404,
        "not_found",
        None,
    );

    let resent = app
        .post(&format!("/webhook-deliveries/{delivery}/resend"), json!({}))
        .await;
    assert_eq!(resent.status.as_u16(), 201, "{}", resent.body);
    assert_ne!(id(&resent.body), delivery);
    assert_eq!(resent.body["resend_seq"], 1);
    assert_eq!(resent.body["webhook_event_id"], first["webhook_event_id"]);
    let again = settled(&app, &id(&resent.body)).await;
    assert_eq!(again["status"], "DELIVERED");
    let source = app.get(&format!("/webhook-deliveries/{delivery}")).await;
    assert_eq!(source.body["attempt_count"], 1, "the source is untouched");
    assert_eq!(deliveries(&app, &hook).await.len(), 2);

    app.patch(
        &format!("/webhook-endpoints/{hook}"),
        json!({"status": "DISABLED"}),
    )
    .await;
    assert_error(
        "an endpoint that is not ACTIVE gets no resends",
        &app.post(&format!("/webhook-deliveries/{delivery}/resend"), json!({}))
            .await,
        409,
        "endpoint_not_active",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_delivery_not_yet_sent_cannot_be_resent(_: PgPoolOptions, connect: PgConnectOptions) {
    let options = scrip::Options {
        pipeline: test_pipeline(2),
        webhooks: scrip::webhooks::delivery::Settings {
            concurrency: 0,
            ..test_webhooks()
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with_options(connect, options).await;
    let (hook, _) = endpoint(&app, "http://127.0.0.1:9/hook", json!(["*"])).await;
    participant(&app, "eve").await;
    let pending = deliveries(&app, &hook).await;
    assert_eq!(pending.len(), 1, "written with the participant");
    assert_eq!(pending[0]["status"], "PENDING");
    assert_error(
        "a PENDING delivery",
        &app.post(
            &format!("/webhook-deliveries/{}/resend", id(&pending[0])),
            json!({}),
        )
        .await,
        409,
        "not_resendable",
        None,
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_endpoint_whose_deliveries_keep_failing_is_disabled(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let receiver = Receiver::start(&[Answer::Status(500); 1000]).await;
    let (hook, _) = endpoint(&app, &receiver.url, json!(["participant.created"])).await;
    for name in ["p1", "p2", "p3", "p4", "p5"] {
        participant(&app, name).await;
    }
    let endpoint = until("the endpoint to be disabled", async || {
        let r = app.get(&format!("/webhook-endpoints/{hook}")).await;
        (r.body["status"] == "DISABLED").then_some(r.body)
    })
    .await;
    assert_eq!(endpoint["status"], "DISABLED");
    let all = deliveries(&app, &hook).await;
    assert_eq!(all.len(), 5);
    assert!(all.iter().all(|d| d["status"] == "FAILED"), "{all:?}");

    // A disabled endpoint is sent nothing new.
    let before = receiver.got().len();
    participant(&app, "p6").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.got().len(), before);
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_rotated_secret_signs_from_then_on_and_the_old_one_no_longer_verifies(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let receiver = Receiver::start(&[]).await;
    let (hook, old) = endpoint(&app, &receiver.url, json!(["participant.created"])).await;
    participant(&app, "fay").await;
    let before = receiver.wait_for(1).await;
    let rotated = app
        .post(
            &format!("/webhook-endpoints/{hook}/rotate-secret"),
            json!({}),
        )
        .await;
    let new = rotated.body["secret"].as_str().expect("secret").to_owned();
    participant(&app, "gus").await;
    let got = receiver.wait_for(2).await;
    let after = &got[1..];
    assert!(verify_with_reference(&old, &before).is_ok());
    assert!(
        verify_with_reference(&old, after).is_err(),
        "the old secret no longer verifies"
    );
    assert_eq!(
        verify_with_reference(&new, after).expect("the new secret verifies"),
        ["participant.created"]
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn balance_notices_name_the_group_whose_balance_moved(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let receiver = Receiver::start(&[]).await;
    endpoint(
        &app,
        &receiver.url,
        json!(["balance.credited", "balance.held"]),
    )
    .await;
    let (program, points) = app.program_with_points("Family", "PTS").await;
    let hal = participant(&app, "hal").await;
    let group = id(&app
        .created(
            "/groups",
            json!({"name": "Hals", "members": [{"participant_id": hal, "role": "ADMIN"}]}),
        )
        .await);
    app.created(
        &format!("/groups/{group}/balances/adjust"),
        json!({"program_id": program, "asset_id": points, "type": "CREDIT", "amount": "30",
               "description": "Welcome"}),
    )
    .await;
    app.created(
        &format!("/groups/{group}/balances/hold"),
        json!({"program_id": program, "asset_id": points, "amount": "10", "description": "Pending"}),
    )
    .await;
    let got: Vec<Value> = receiver
        .wait_for(2)
        .await
        .iter()
        .map(Received::json)
        .collect();
    for body in &got {
        assert_eq!(body["data"]["group_id"], group.as_str(), "{body}");
        assert!(body["data"].get("participant_id").is_none(), "{body}");
    }
    let amounts: Vec<(&Value, &Value)> = got
        .iter()
        .map(|b| (&b["type"], &b["data"]["amount"]))
        .collect();
    assert_eq!(
        amounts,
        [
            (&json!("balance.credited"), &json!("30")),
            (&json!("balance.held"), &json!("10"))
        ]
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_delivery_cut_off_by_a_killed_server_is_sent_again_after_restart(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    use crate::process::{SCRIP, free_port, signal};
    // The API server here sends nothing; the `scrip serve` process below does.
    let options = scrip::Options {
        pipeline: test_pipeline(0),
        webhooks: scrip::webhooks::delivery::Settings {
            concurrency: 0,
            ..test_webhooks()
        },
        ..Default::default()
    };
    let app = TestApp::spawn_with_options(connect.clone(), options).await;
    let receiver = Receiver::start(&[Answer::Hang]).await;
    let (hook, secret) = endpoint(&app, &receiver.url, json!(["participant.created"])).await;
    participant(&app, "ivy").await;

    let mut doomed = tokio::process::Command::new(SCRIP)
        .arg("serve")
        .env("DATABASE_URL", crate::common::database_url(&connect))
        .env("SCRIP_ADDR", format!("127.0.0.1:{}", free_port()))
        .env("SCRIP_WORKERS", "0")
        .env("SCRIP_WEBHOOK_ALLOW_LOOPBACK", "true")
        .env("SCRIP_WEBHOOK_TIMEOUT_MS", "1500")
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("scrip serve starts");
    receiver.wait_for(1).await;
    signal(&doomed, "-KILL").await;
    let _ = doomed.wait().await;
    let cut_off = &deliveries(&app, &hook).await[0];
    assert_eq!(
        cut_off["status"], "SENDING",
        "killed mid-attempt: {cut_off}"
    );

    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(connect)
        .await
        .expect("pool");
    let restarted = scrip::start(
        pool,
        "127.0.0.1:0".parse().expect("addr"),
        scrip::Options {
            pipeline: test_pipeline(0),
            webhooks: test_webhooks(),
            ..Default::default()
        },
    )
    .await
    .expect("server");
    let done = settled(&app, &id(cut_off)).await;
    restarted.stop().await;
    assert_eq!(done["status"], "DELIVERED", "{done}");
    assert_eq!(done["attempt_count"], 2);
    let got = receiver.got();
    assert_eq!(
        got.len(),
        2,
        "at least once: the cut-off attempt and its repeat"
    );
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert_eq!(
        verify_with_reference(&secret, &got[1..]).expect("verifies"),
        ["participant.created"]
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_receiver_that_never_answers_does_not_hold_up_events(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    // Attempts that may wait a minute each: were they on the events' path, no event would complete.
    let options = scrip::Options {
        webhooks: scrip::webhooks::delivery::Settings {
            timeout: Duration::from_secs(60),
            ..test_webhooks()
        },
        ..crate::common::test_options(2)
    };
    let app = TestApp::spawn_with_options(connect, options).await;
    let receiver = Receiver::start(&[Answer::Hang; 100]).await;
    let (hook, _) = endpoint(&app, &receiver.url, json!(["*"])).await;
    let (program, points) = app.program_with_points("Cafe", "PTS").await;
    app.credit_rule(&program, "true", &points, "5").await;
    let mut events = Vec::new();
    for n in 0..20 {
        events.push(
            app.event(&program, &format!("m{n}"), &format!("o{n}"), json!({}))
                .await,
        );
    }
    for event in &events {
        assert_eq!(app.processed(event).await["status"], "COMPLETED");
    }
    receiver.wait_for(1).await;
    let sending = deliveries(&app, &hook)
        .await
        .iter()
        .filter(|d| d["status"] == "SENDING")
        .count();
    assert!(sending > 0, "deliveries were still waiting on the receiver");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_last_attempt_cut_off_by_a_crash_fails_and_counts_toward_disabling(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let quiet = scrip::Options {
        webhooks: scrip::webhooks::delivery::Settings {
            concurrency: 0,
            ..test_webhooks()
        },
        ..crate::common::test_options(0)
    };
    let app = TestApp::spawn_with_options(connect.clone(), quiet).await;
    let (hook, _) = endpoint(&app, "http://127.0.0.1:9/hook", json!(["*"])).await;
    participant(&app, "jo").await;
    let delivery = id(&deliveries(&app, &hook).await[0]);
    // As a process leaves it when it dies during the last attempt, with four failed deliveries before.
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'SENDING', attempt_count = max_attempts,
                lease_until = now() - interval '1 second' WHERE id = $1::uuid",
    )
    .bind(&delivery)
    .execute(&app.pool)
    .await
    .expect("cut off");
    sqlx::query("UPDATE webhook_endpoints SET consecutive_failures = 4 WHERE id = $1::uuid")
        .bind(&hook)
        .execute(&app.pool)
        .await
        .expect("a run of failures");
    app.stop().await;

    let app = TestApp::spawn(connect).await;
    let failed = settled(&app, &delivery).await;
    assert_eq!(failed["status"], "FAILED", "{failed}");
    assert!(
        failed["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped"))
    );
    let endpoint = app.get(&format!("/webhook-endpoints/{hook}")).await;
    assert_eq!(
        endpoint.body["status"], "DISABLED",
        "the fifth failure in a row"
    );
}
