//! Test harness: a real server on an ephemeral port against a fresh, migrated Postgres database per test
//! (`#[sqlx::test]`), driven over HTTP with reqwest.

use reqwest::{Method, StatusCode};
use scrip::events::worker::Pipeline;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};

pub struct TestApp {
    pub pool: PgPool,
    pub base: String,
    pub key: String,
    pub client: reqwest::Client,
    running: Option<scrip::Running>,
}

/// How a request authenticates.
#[derive(Clone, Copy, PartialEq)]
pub enum AuthHeader {
    Bearer,
    XApiKey,
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Value,
}

impl TestApp {
    pub async fn spawn(connect: PgConnectOptions) -> TestApp {
        TestApp::spawn_with(connect, scrip::wasm::Ceiling::DEFAULT).await
    }

    /// A server whose operator set `ceiling` for wasm rules.
    pub async fn spawn_with(connect: PgConnectOptions, ceiling: scrip::wasm::Ceiling) -> TestApp {
        let pipeline = Pipeline {
            wasm: ceiling,
            ..test_pipeline(2)
        };
        TestApp::spawn_with_pipeline(connect, pipeline).await
    }

    /// A server without workers: events wait until the test processes them with [`TestApp::process_batch`].
    pub async fn spawn_without_workers(connect: PgConnectOptions) -> TestApp {
        TestApp::spawn_with_pipeline(connect, test_pipeline(0)).await
    }

    async fn spawn_with_pipeline(connect: PgConnectOptions, pipeline: Pipeline) -> TestApp {
        let options = scrip::Options {
            pipeline,
            ..test_options(0)
        };
        TestApp::spawn_with_options(connect, options).await
    }

    /// A server started with these options.
    pub async fn spawn_with_options(connect: PgConnectOptions, options: scrip::Options) -> TestApp {
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .connect_with(connect)
            .await
            .expect("test database");
        let running = scrip::start(pool.clone(), "127.0.0.1:0".parse().expect("addr"), options)
            .await
            .expect("server starts");
        let key = scrip::organizations::create_api_key(&pool, "test-org")
            .await
            .expect("api key")
            .key;
        TestApp {
            base: format!("http://{}/v1", running.addr),
            pool,
            key,
            client: reqwest::Client::new(),
            running: Some(running),
        }
    }

    /// The same server, called with a key of another organization (created on first use): every helper
    /// then acts as that organization.
    pub async fn as_organization(&self, organization: &str) -> TestApp {
        TestApp {
            base: self.base.clone(),
            pool: self.pool.clone(),
            key: self.key_for(organization).await,
            client: self.client.clone(),
            running: None,
        }
    }

    /// `GET /health` (outside `/v1`, no key), which answers 200.
    pub async fn health(&self) -> Value {
        let url = format!("{}/health", self.base.trim_end_matches("/v1"));
        let answer = self.client.get(url).send().await.expect("health answers");
        assert_eq!(answer.status(), StatusCode::OK);
        answer.json().await.expect("health body")
    }

    /// A key for another organization on the same server.
    pub async fn key_for(&self, organization: &str) -> String {
        scrip::organizations::create_api_key(&self.pool, organization)
            .await
            .expect("api key")
            .key
    }

    /// Claims and processes one batch of queued events, as a worker does.
    pub async fn process_batch(&self) -> scrip::events::worker::Progress {
        self.try_process_batch().await.expect("batch processed")
    }

    /// One batch, as a worker runs it: `Err` when it rolled back, to be retried.
    pub async fn try_process_batch(&self) -> sqlx::Result<scrip::events::worker::Progress> {
        let pipeline = test_pipeline(1);
        let runtime = scrip::wasm::Runtime::new(pipeline.wasm).expect("wasm runtime");
        let cache = scrip::rules::RuleCache::new(std::sync::Arc::new(runtime));
        scrip::events::worker::process_batch(&self.pool, &cache, pipeline.retry_backoff).await
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.call_as(&self.key, AuthHeader::Bearer, method, path, body)
            .await
    }

    pub async fn call_as(
        &self,
        key: &str,
        auth: AuthHeader,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method.clone(), format!("{}{path}", self.base));
        request = match auth {
            AuthHeader::Bearer => request.header("Authorization", format!("Bearer {key}")),
            AuthHeader::XApiKey => request.header("X-API-Key", key),
        };
        if let Some(body) = &body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body");
        let answer = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        crate::contract::contract().check(
            &method,
            &format!("/v1{path}"),
            body.as_ref(),
            status,
            &answer,
        );
        Response {
            status,
            body: answer,
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// POSTs and asserts the status, returning the body.
    pub async fn created(&self, path: &str, body: Value) -> Value {
        let r = self.post(path, body).await;
        assert!(
            r.status.is_success(),
            "POST {path} failed: {} {}",
            r.status,
            r.body
        );
        r.body
    }

    /// A program with a scale-0 UNLIMITED points asset, as in the quickstart.
    pub async fn program_with_points(&self, name: &str, symbol: &str) -> (String, String) {
        self.program_with_asset(name, symbol, "SIMPLE", 0).await
    }

    /// A program with one UNLIMITED asset of this inventory mode and scale.
    pub async fn program_with_asset(
        &self,
        name: &str,
        symbol: &str,
        inventory_mode: &str,
        scale: i64,
    ) -> (String, String) {
        let program = self.created("/programs", json!({"name": name})).await;
        let program_id = id(&program);
        let asset = self
            .created(
                "/assets",
                json!({"program_id": program_id, "name": "Points", "symbol": symbol,
                       "inventory_mode": inventory_mode, "issuance_policy": "UNLIMITED", "scale": scale}),
            )
            .await;
        (program_id, id(&asset))
    }

    pub async fn rule(
        &self,
        program_id: &str,
        name: &str,
        condition: &str,
        actions: Value,
    ) -> String {
        let body = json!({"program_id": program_id, "name": name, "condition": condition, "actions": actions});
        id(&self.created("/rules", body).await)
    }

    /// A rule that credits a fixed `amount` of `asset_id` when `condition` holds.
    pub async fn credit_rule(
        &self,
        program_id: &str,
        condition: &str,
        asset_id: &str,
        amount: &str,
    ) -> String {
        let credit = json!([{"type": "CREDIT", "asset_id": asset_id, "amount": amount}]);
        self.rule(
            program_id,
            &format!("{amount} when {condition}"),
            condition,
            credit,
        )
        .await
    }

    /// Ingests an event for `external_id` and returns its id.
    pub async fn event(
        &self,
        program_id: &str,
        external_id: &str,
        key: &str,
        data: Value,
    ) -> String {
        let body = json!({"program_id": program_id, "external_id": external_id, "idempotency_key": key, "event_data": data});
        let r = self.post("/events", body).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
        id(&r.body)
    }

    /// Waits until the event is COMPLETED or FAILED and returns it (with all evaluations).
    pub async fn processed(&self, event_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .get(&format!("/events/{event_id}?include_skipped=true"))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            if matches!(r.body["status"].as_str(), Some("COMPLETED" | "FAILED")) {
                return r.body;
            }
            assert!(
                Instant::now() < deadline,
                "event {event_id} not processed in time: {}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn participant_id(&self, external_id: &str) -> String {
        let r = self
            .get(&format!("/participants?external_id={external_id}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        id(&r.body["data"][0])
    }

    /// The AVAILABLE balance of a participant in an asset, as the API renders it.
    pub async fn available(&self, participant_id: &str, asset_id: &str) -> String {
        let r = self
            .get(&format!(
                "/participants/{participant_id}/balances?asset_id={asset_id}"
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body["data"][0]["available"]
            .as_str()
            .unwrap_or("none")
            .to_owned()
    }

    /// AVAILABLE and HELD of a participant's first (or only) asset, as the API renders them.
    pub async fn available_and_held(&self, participant_id: &str) -> (Value, Value) {
        let r = self
            .get(&format!("/participants/{participant_id}/balances"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let row = &r.body["data"][0];
        (row["available"].clone(), row["held"].clone())
    }

    /// Every journal entry sums to zero per asset, and every materialised balance equals its postings.
    pub async fn assert_ledger_consistent(&self) {
        let found = scrip::verify::check_invariants(&self.pool)
            .await
            .expect("invariant queries");
        assert!(found.is_empty(), "ledger inconsistent: {found:?}");
    }

    /// Row counts of every table but the request logs (where every request goes, refused ones too), to show a
    /// rejected request wrote nothing. Taken once every journal entry is
    /// sealed, so the sealer's own inserts, which follow earlier requests, do not count against later ones.
    pub async fn row_counts(&self) -> Vec<(String, i64)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM journal_entries j
                             WHERE NOT EXISTS (SELECT 1 FROM journal_seals s WHERE s.journal_entry_id = j.id))",
        )
        .fetch_one(&self.pool)
        .await
        .expect("unsealed entries")
        {
            assert!(Instant::now() < deadline, "entries were not sealed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
              WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name NOT LIKE '\\_sqlx%'
                AND table_name <> 'request_logs'
              ORDER BY table_name",
        )
        .fetch_all(&self.pool)
        .await
        .expect("tables");
        let mut counts = Vec::new();
        for table in tables {
            let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&self.pool)
                .await
                .expect("count");
            counts.push((table, count));
        }
        counts
    }
}

/// Workers as in production, but retrying failed attempts after 10, 20, 40, 80 and 160 ms.
pub fn test_pipeline(workers: usize) -> Pipeline {
    Pipeline {
        workers,
        retry_backoff: Duration::from_millis(10),
        ..Pipeline::default()
    }
}

/// A server for tests: `workers` as [`test_pipeline`] makes them, webhooks as [`test_webhooks`], and no rate
/// limit (tests send bursts of their own; the rate limit's test sets one).
pub fn test_options(workers: usize) -> scrip::Options {
    scrip::Options {
        pipeline: test_pipeline(workers),
        webhooks: test_webhooks(),
        rate_limits: scrip::rate_limits::Settings {
            per_second: 0,
            burst: 0,
        },
        ..Default::default()
    }
}

/// Webhooks as in production, but allowed to reach receivers on loopback over http, retried after 1, 3,
/// 9 … ms, and given 2 seconds an attempt.
pub fn test_webhooks() -> scrip::webhooks::delivery::Settings {
    scrip::webhooks::delivery::Settings {
        policy: scrip::webhooks::url::UrlPolicy {
            allow_loopback: true,
        },
        timeout: Duration::from_secs(2),
        retry_base: Duration::from_millis(1),
        ..Default::default()
    }
}

pub fn id(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

/// Asserts the spec's error body: status, `code`, a message, and (when given) the field named in `details`.
pub fn assert_error(context: &str, r: &Response, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(
        r.status.as_u16(),
        status,
        "{context}: unexpected status, body {}",
        r.body
    );
    assert_eq!(
        r.body["code"], code,
        "{context}: unexpected code in {}",
        r.body
    );
    assert!(
        r.body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{context}: no message in {}",
        r.body
    );
    if let Some(field) = field {
        let fields = r.body["details"]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let named =
            r.body["details"]["field"] == field || fields.iter().any(|f| f["field"] == field);
        assert!(named, "{context}: details do not name {field}: {}", r.body);
    }
}

/// Connect options for a database name, for tests that start the `scrip` binary.
pub fn database_url(connect: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        connect.get_username(),
        connect.get_host(),
        connect.get_port(),
        connect.get_database().unwrap_or("postgres")
    )
}
