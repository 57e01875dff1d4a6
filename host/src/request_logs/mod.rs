//! Request logs (E122, E123) and API usage (E124). The HTTP gate hands each authenticated request to a
//! [`Recorder`]; a writer task inserts them in batches, so a request never waits on a log insert, and deletes
//! what is older than the operator's retention. Bodies are kept up to [`BODY_CAP`], with secrets and keys
//! redacted. A log still in the writer's buffer when the process dies is lost: logs are for debugging,
//! the ledger is the record.

mod repo;

use crate::error::{Error, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page};
use crate::validation::SortDir;
use axum::body::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

/// The largest request or response body a log keeps; a larger one is logged as `{"omitted": <bytes>}`.
pub const BODY_CAP: usize = 16 * 1024;
/// Logs waiting for the writer; past this, new ones are dropped (and counted) rather than slow requests.
/// With two bodies of at most [`BODY_CAP`] each, the queue holds at most 64 MiB.
const BUFFER: usize = 2_000;
/// The most rows one insert writes, and the longest a log waits for others to join it.
const BATCH: usize = 500;
const LINGER: Duration = Duration::from_millis(200);
/// How often, and in how large steps, logs past retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const PRUNE_BATCH: i64 = 10_000;
/// Object keys whose values never reach a log.
const REDACTED: &[&str] = &[
    "secret",
    "api_key",
    "password",
    "token",
    "access_token",
    "authorization",
];

crate::vocabulary!(
    /// How the request authenticated; this server has API keys only.
    pub enum AuthType {
        ApiKey = "api_key",
        Jwt = "jwt",
    }
);
crate::vocabulary!(
    pub enum LogSort {
        CreatedAt = "created_at",
        DurationMs = "duration_ms",
        StatusCode = "status_code",
    }
);

/// `SCRIP_REQUEST_LOG_RETENTION_DAYS`: how long logs are kept (30 days by default; 0 keeps none).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub retention_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { retention_days: 30 }
    }
}

/// One request as it is logged.
#[derive(Debug, Clone)]
pub struct Entry {
    pub organization_id: Uuid,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub route_pattern: Option<String>,
    pub status_code: i32,
    pub duration_ms: i32,
    pub auth_type: AuthType,
    pub error_code: Option<String>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// The bodies as they were sent, when no larger than [`BODY_CAP`]: the writer reads them (see
    /// [`body_for_log`]), off the request's path.
    pub request_body: Option<Bytes>,
    pub response_body: Option<Bytes>,
    pub created_at: DateTime<Utc>,
}

/// E122's items.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RequestLog {
    pub id: Uuid,
    #[schema(example = "req_0193c0de5e7a7c2b9d3e4f5a6b7c8d9e")]
    pub request_id: String,
    #[schema(example = "POST")]
    pub method: String,
    #[schema(example = "/v1/participants/550e8400-e29b-41d4-a716-446655440000")]
    pub path: String,
    #[schema(example = "/v1/participants/{id}")]
    pub route_pattern: Option<String>,
    pub status_code: i32,
    pub duration_ms: i32,
    pub auth_type: Option<AuthType>,
    /// The error body's `code`, for answers of 400 and above.
    pub error_code: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// E123: the log with who sent it and both bodies.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RequestLogDetail {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub log: RequestLog,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    /// As sent, secrets redacted; `{"omitted": <bytes>}` when larger than 16 KiB or not JSON.
    #[schema(value_type = Option<serde_json::Value>)]
    pub request_body: Option<sqlx::types::Json<Value>>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub response_body: Option<sqlx::types::Json<Value>>,
}

#[derive(Debug, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogFilter {
    #[param(value_type = Option<String>, example = "POST")]
    pub method: Option<String>,
    /// The templated route, as `route_pattern` shows it.
    #[param(value_type = Option<String>, example = "/v1/participants/{id}")]
    pub route_pattern: Option<String>,
    /// With or without the `req_` prefix.
    #[param(value_type = Option<String>)]
    pub request_id: Option<String>,
    #[param(value_type = Option<AuthType>)]
    pub auth_type: Option<AuthType>,
    #[param(value_type = Option<i64>, minimum = 100, maximum = 599)]
    pub status_min: Option<i64>,
    #[param(value_type = Option<i64>, minimum = 100, maximum = 599)]
    pub status_max: Option<i64>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Default `created_at`.
    #[param(value_type = Option<LogSort>)]
    pub sort_by: LogSort,
    /// `asc` or `desc` (the default).
    #[param(rename = "sort_dir", value_type = Option<SortDir>, inline)]
    pub ascending: bool,
    /// Pages hold 50 by default, at most 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: i64,
    #[param(value_type = Option<String>, min_length = 1, max_length = 1000)]
    pub cursor: Option<Cursor>,
}

/// E124: one day's requests.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DailyUsage {
    pub date: NaiveDate,
    pub request_count: i64,
    /// Answers of 400 and above.
    pub error_count: i64,
    /// The mean time to answer, in whole milliseconds.
    pub avg_latency_ms: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Usage {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Days with requests, oldest first.
    pub data: Vec<DailyUsage>,
}

/// Where the gate hands logs; cheap to clone.
#[derive(Debug, Clone)]
pub struct Recorder {
    sender: Option<mpsc::Sender<Entry>>,
}

impl Recorder {
    /// Starts the writer (and the retention pass) on `pool`; with a retention of 0 days nothing is logged.
    pub fn start(
        pool: PgPool,
        settings: Settings,
        stopped: watch::Receiver<bool>,
    ) -> (Recorder, Option<impl Future<Output = ()>>) {
        if settings.retention_days == 0 {
            return (Recorder { sender: None }, None);
        }
        let (sender, receiver) = mpsc::channel(BUFFER);
        let writer = write_batches(pool, settings, receiver, stopped);
        (
            Recorder {
                sender: Some(sender),
            },
            Some(writer),
        )
    }

    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Queues the log; when the writer is this far behind, the log is dropped instead.
    pub fn record(&self, entry: Entry) {
        if let Some(sender) = &self.sender
            && sender.try_send(entry).is_err()
        {
            crate::metrics::request_log_dropped();
        }
    }
}

async fn write_batches(
    pool: PgPool,
    settings: Settings,
    mut receiver: mpsc::Receiver<Entry>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut pruned_at: Option<tokio::time::Instant> = None;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            prune(&pool, settings.retention_days).await;
            pruned_at = Some(tokio::time::Instant::now());
        }
        let first = tokio::select! {
            entry = receiver.recv() => entry,
            _ = stopped.wait_for(|stop| *stop) => None,
            _ = tokio::time::sleep(PRUNE_EVERY) => continue,
        };
        let Some(first) = first else { break };
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(entry)) => batch.push(entry),
                _ => break,
            }
        }
        write(&pool, &mut batch).await;
    }
    // What the requests in flight at the stop left behind.
    receiver.close();
    while let Some(entry) = receiver.recv().await {
        batch.push(entry);
    }
    write(&pool, &mut batch).await;
}

async fn write(pool: &PgPool, batch: &mut Vec<Entry>) {
    if batch.is_empty() {
        return;
    }
    let bodies: Vec<[Option<Value>; 2]> = batch
        .iter()
        .map(|e| [&e.request_body, &e.response_body].map(|b| b.as_deref().and_then(body_for_log)))
        .collect();
    if let Err(err) = repo::insert(pool, batch, &bodies).await {
        tracing::warn!(error = %err, logs = batch.len(), "request logs not written");
    }
    batch.clear();
}

async fn prune(pool: &PgPool, retention_days: u32) {
    loop {
        match repo::delete_older(pool, retention_days, PRUNE_BATCH).await {
            Ok(deleted) if deleted == PRUNE_BATCH as u64 => continue,
            Ok(_) => break,
            Err(err) => {
                tracing::warn!(error = %err, "old request logs not deleted; will retry");
                break;
            }
        }
    }
}

/// A body as a log keeps it: JSON up to [`BODY_CAP`] with secrets redacted; `None` when empty.
fn body_for_log(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    if bytes.len() > BODY_CAP {
        return Some(serde_json::json!({ "omitted": bytes.len() }));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(mut value) => {
            redact(&mut value);
            Some(value)
        }
        Err(_) => Some(serde_json::json!({ "omitted": bytes.len() })),
    }
}

fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if REDACTED.contains(&key.to_ascii_lowercase().as_str()) {
                    *inner = Value::String("[REDACTED]".into());
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// E122.
pub async fn list(pool: &PgPool, actor: &Actor, filter: LogFilter) -> Result<Page<RequestLog>> {
    let rows = repo::list(pool, actor.organization_id, &filter).await?;
    Ok(Page::from_rows(rows, filter.limit, |log| {
        let key = match filter.sort_by {
            LogSort::CreatedAt => crate::pagination::time_key(log.created_at),
            LogSort::DurationMs => log.duration_ms.to_string(),
            LogSort::StatusCode => log.status_code.to_string(),
        };
        Cursor::new(key, log.id)
    }))
}

/// E123.
pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<RequestLogDetail> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("request log"))
}

/// E124: requests per day (UTC) from `from` to `to`, the last 30 days by default.
pub async fn usage(
    pool: &PgPool,
    actor: &Actor,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<Usage> {
    let to = to.unwrap_or_else(Utc::now);
    let from = from.unwrap_or(to - chrono::Duration::days(30));
    let data = repo::usage(pool, actor.organization_id, from, to).await?;
    Ok(Usage { from, to, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_bodies_lose_their_secrets_and_their_bulk() {
        let body =
            br#"{"url": "https://x.example", "secret": "whsec_1", "nested": [{"Password": "p"}],
                        "idempotency_key": "k-1"}"#;
        let logged = body_for_log(body).expect("kept");
        assert_eq!(logged["secret"], "[REDACTED]");
        assert_eq!(logged["nested"][0]["Password"], "[REDACTED]");
        assert_eq!(logged["idempotency_key"], "k-1");
        let big = vec![b' '; BODY_CAP + 1];
        assert_eq!(
            body_for_log(&big),
            Some(serde_json::json!({"omitted": BODY_CAP + 1}))
        );
        assert_eq!(body_for_log(b""), None);
    }
}
