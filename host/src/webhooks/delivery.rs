//! The delivery pass: every server process runs one. It claims due deliveries with SKIP LOCKED (so
//! processes never send the same attempt twice at once), marks them SENDING under a lease, and sends up to
//! `concurrency` at a time, each with its own timeout, off the event workers' path: a slow or dead receiver
//! holds a sender slot, nothing else. An attempt's outcome is recorded only if the delivery is still the one
//! claimed; a lease that runs out (the process died mid-send) puts the delivery back, so it is sent at least
//! once. Failed attempts are retried with exponential backoff and jitter; a delivery out of attempts is
//! FAILED, and an endpoint whose deliveries fail [`DISABLE_AFTER`] times in a row is DISABLED.

use super::url::{PublicResolver, UrlPolicy};
use super::{API_VERSION, DeliveryErrorCode, DeliveryStatus, Envelope, WebhookEventType, repo};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

/// How often an idle pass looks for due deliveries.
const POLL: Duration = Duration::from_millis(500);
/// How long past its timeout a claimed attempt stays claimed.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Deliveries out of attempts in a row, with no success between, that disable their endpoint.
pub const DISABLE_AFTER: i32 = 5;
/// How much of a response body is kept.
const BODY_LIMIT: usize = 4096;
/// The longest wait between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8 * 3600);

#[derive(Debug, Clone)]
pub struct Settings {
    /// `SCRIP_WEBHOOK_ALLOW_LOOPBACK`
    pub policy: UrlPolicy,
    /// `SCRIP_WEBHOOK_TIMEOUT_MS`: the most one attempt may take, answer included.
    pub timeout: Duration,
    /// `SCRIP_WEBHOOK_RETRY_BASE_MS`: the wait after the first failed attempt; each next wait is three
    /// times longer (1 min, 3, 9, 27 min, 1.4 h, 4 h, 8 h by default: about 14 hours in all).
    pub retry_base: Duration,
    /// `SCRIP_WEBHOOK_CONCURRENCY`: attempts in flight per process; 0 sends nothing from this process.
    pub concurrency: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            policy: UrlPolicy::default(),
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(60),
            concurrency: 16,
        }
    }
}

/// A claimed attempt: the delivery, where it goes and what it carries.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct Due {
    pub id: Uuid,
    pub attempt_count: i32,
    pub max_attempts: i32,
    pub url: String,
    pub secret: String,
    pub event_id: Uuid,
    pub event_type: WebhookEventType,
    pub organization_id: Uuid,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// How an attempt ended, as the delivery records it.
#[derive(Debug)]
pub(super) struct Attempted {
    pub status: DeliveryStatus,
    /// PENDING: when to try again.
    pub retry_in: Option<Duration>,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub code: Option<DeliveryErrorCode>,
}

/// Runs the pass until `stopped`. Attempts still in flight then are dropped; their leases run out and a
/// pass sends them again.
pub async fn run(pool: PgPool, settings: Settings, mut stopped: watch::Receiver<bool>) {
    if settings.concurrency == 0 {
        return;
    }
    let client = match client(&settings) {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(error = %err, "webhook deliveries cannot start: no HTTP client");
            return;
        }
    };
    let settings = Arc::new(settings);
    let lease = settings.timeout + LEASE_MARGIN;
    let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    let mut sending = JoinSet::new();
    // Cut-off attempts are looked for once a poll, not at every claim.
    let mut reclaimed_at: Option<tokio::time::Instant> = None;
    while !*stopped.borrow() {
        while sending.try_join_next().is_some() {}
        let free = settings.concurrency.saturating_sub(sending.len());
        let mut claimed = 0;
        if free > 0 {
            if reclaimed_at.is_none_or(|at| at.elapsed() >= POLL) {
                if let Err(err) = repo::reclaim_expired(&pool).await {
                    tracing::warn!(error = %err, "cannot reclaim cut-off webhook attempts");
                }
                reclaimed_at = Some(tokio::time::Instant::now());
            }
            let limit = i64::try_from(free).unwrap_or(i64::MAX);
            match repo::claim(&pool, limit, lease_ms).await {
                Ok(due) => {
                    claimed = due.len();
                    for due in due {
                        let (pool, client, settings) =
                            (pool.clone(), client.clone(), settings.clone());
                        sending.spawn(async move {
                            let outcome = attempt(&client, &settings, &due).await;
                            crate::metrics::webhook_attempted(match outcome.status {
                                DeliveryStatus::Delivered => "delivered",
                                DeliveryStatus::Failed => "failed",
                                _ => "retried",
                            });
                            if let Err(err) = repo::finish(&pool, &due, &outcome).await {
                                tracing::warn!(delivery_id = %due.id, error = %err, "webhook attempt not recorded; its lease will run out");
                            }
                        });
                    }
                }
                Err(err) => tracing::warn!(error = %err, "cannot claim webhook deliveries"),
            }
        }
        if claimed > 0 && claimed == free {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            Some(_) = sending.join_next(), if !sending.is_empty() => {}
            _ = stopped.wait_for(|stop| *stop) => {}
        }
    }
    sending.shutdown().await;
}

/// The client of every attempt: no redirects followed (a redirect could lead anywhere), names resolved to
/// public addresses only, the per-attempt timeout.
fn client(settings: &Settings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(PublicResolver(settings.policy)))
        .user_agent(concat!("scrip-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// One attempt: the envelope, signed, posted; never an error, always an outcome.
async fn attempt(client: &reqwest::Client, settings: &Settings, due: &Due) -> Attempted {
    let failed = |code, error: String, response_status, response_body| {
        let last = due.attempt_count >= due.max_attempts;
        Attempted {
            status: match last {
                true => DeliveryStatus::Failed,
                false => DeliveryStatus::Pending,
            },
            retry_in: (!last).then(|| backoff(settings.retry_base, due.attempt_count)),
            response_status,
            response_body,
            error: Some(error),
            code: Some(code),
        }
    };
    let url = match settings.policy.check_static(&due.url) {
        Ok(url) => url,
        Err(reason) => return failed(DeliveryErrorCode::EndpointUrlRefused, reason, None, None),
    };
    let envelope = Envelope {
        id: due.event_id,
        kind: due.event_type,
        api_version: API_VERSION,
        created_at: due.created_at,
        organization_id: due.organization_id,
        data: due.data.clone(),
    };
    let body = match serde_json::to_vec(&envelope) {
        Ok(body) => body,
        Err(err) => {
            let error = format!("the envelope cannot be written: {err}");
            return failed(
                DeliveryErrorCode::ConsumerConnectionFailed,
                error,
                None,
                None,
            );
        }
    };
    let timestamp = Utc::now().timestamp();
    let message_id = due.event_id.to_string();
    let signature = standardwebhooks::Webhook::new(&due.secret)
        .and_then(|signer| signer.sign(&message_id, timestamp, &body));
    let signature = match signature {
        Ok(signature) => signature,
        Err(err) => {
            let error = format!("the endpoint's secret cannot sign: {err}");
            return failed(
                DeliveryErrorCode::ConsumerConnectionFailed,
                error,
                None,
                None,
            );
        }
    };
    let sent = client
        .post(url)
        .header("content-type", "application/json")
        .header(standardwebhooks::HEADER_WEBHOOK_ID, &message_id)
        .header(
            standardwebhooks::HEADER_WEBHOOK_TIMESTAMP,
            timestamp.to_string(),
        )
        .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(err) => {
            let code = match err.is_timeout() {
                true => DeliveryErrorCode::ConsumerResponseTimeout,
                false => DeliveryErrorCode::ConsumerConnectionFailed,
            };
            return failed(code, error_chain(&err), None, None);
        }
    };
    let status = i32::from(response.status().as_u16());
    let mut kept: Vec<u8> = Vec::new();
    let mut read_error = None;
    while kept.len() < BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(err) => {
                read_error = Some(err);
                break;
            }
        }
    }
    kept.truncate(BODY_LIMIT);
    let body = String::from_utf8_lossy(&kept).into_owned();
    if response.status().is_success() {
        return Attempted {
            status: DeliveryStatus::Delivered,
            retry_in: None,
            response_status: Some(status),
            response_body: Some(body),
            error: None,
            code: None,
        };
    }
    let error = match read_error {
        Some(err) if err.is_timeout() => {
            let error = format!("answered {status}, then timed out sending the body");
            return failed(
                DeliveryErrorCode::ConsumerResponseTimeout,
                error,
                Some(status),
                Some(body),
            );
        }
        _ => format!("the receiver answered {status}"),
    };
    failed(
        DeliveryErrorCode::ConsumerErrorStatus,
        error,
        Some(status),
        Some(body),
    )
}

/// The wait after failed attempt `attempt` (1 for the first): `base` × 3^(attempt − 1), at most
/// [`MAX_BACKOFF`], spread by ±20% so that deliveries that failed together do not return together.
fn backoff(base: Duration, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let wait = base
        .saturating_mul(3u32.saturating_pow(exponent))
        .min(MAX_BACKOFF);
    let mut byte = [0u8; 1];
    let spread = match getrandom::fill(&mut byte) {
        Ok(()) => 0.8 + 0.4 * f64::from(byte[0]) / 255.0,
        Err(_) => 1.0,
    };
    wait.mul_f64(spread)
}

/// The error and its causes, which say what actually failed (refused, reset, certificate).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_threefold_with_jitter_and_a_ceiling() {
        let base = Duration::from_secs(60);
        for (attempt, nominal) in [(1, 60.0), (2, 180.0), (3, 540.0), (7, 28_800.0)] {
            let wait = backoff(base, attempt).as_secs_f64();
            assert!(
                (nominal * 0.8..=nominal * 1.2).contains(&wait),
                "attempt {attempt}: {wait}s"
            );
        }
    }
}
