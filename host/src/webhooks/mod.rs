//! Webhooks (E125–E134): an organization's endpoints, the events they subscribe to, and every delivery.
//!
//! A change that has something to report writes a [`Notice`] with [`emit`] in its own transaction: the
//! webhook event and one PENDING delivery per subscribed endpoint (an outbox), so a crash can neither lose a
//! notice nor send one for a change that rolled back. The `delivery` pass of any server process then claims
//! due deliveries, signs them by the Standard Webhooks specification and sends them, at least once.
//! Domain modules build their own payloads; this module knows no domain.

pub mod delivery;
mod repo;
pub mod url;

use crate::error::{Error, FieldError, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page};
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use url::UrlPolicy;
use uuid::Uuid;

/// The envelope's `api_version`.
pub const API_VERSION: &str = "2026-03-01";
/// Attempts a delivery gets, and again after a retry.
pub const MAX_ATTEMPTS: i32 = 8;
/// What a subscription to every type is written as.
pub const ALL_EVENTS: &str = "*";

crate::vocabulary!(
    /// What a webhook event reports.
    pub enum WebhookEventType {
        /// Value credited to a holder: a rule action or an API credit.
        BalanceCredited = "balance.credited",
        /// Value taken from a holder: a rule or API debit, a forfeit, a voided hold.
        BalanceDebited = "balance.debited",
        /// Lots expired and were forfeited.
        BalanceExpired = "balance.expired",
        BalanceHeld = "balance.held",
        BalanceReleased = "balance.released",
        RedemptionCompleted = "redemption.completed",
        RedemptionReversed = "redemption.reversed",
        TransferCompleted = "transfer.completed",
        /// Every rule evaluated.
        EventCompleted = "event.completed",
        /// Processing failed for good (no automatic retry left).
        EventFailed = "event.failed",
        ParticipantCreated = "participant.created",
        /// An upgrade, a downgrade or a removal.
        ParticipantTierChanged = "participant.tier_changed",
        ProgramFunded = "program.funded",
        ProgramBurned = "program.burned",
    }
);
crate::vocabulary!(
    /// ARCHIVED is for good and never listed; a DISABLED endpoint gets nothing until it is ACTIVE again.
    pub enum EndpointStatus {
        Active = "ACTIVE",
        Disabled = "DISABLED",
        Archived = "ARCHIVED",
    }
);
crate::vocabulary!(
    pub enum DeliveryStatus {
        Pending = "PENDING",
        Sending = "SENDING",
        Delivered = "DELIVERED",
        Failed = "FAILED",
    }
);
crate::vocabulary!(
    /// Why the last attempt failed, for machines; `last_error` says it for people.
    pub enum DeliveryErrorCode {
        /// No answer within the per-attempt timeout.
        ConsumerResponseTimeout = "consumer_response_timeout",
        /// The connection failed (refused, reset, TLS).
        ConsumerConnectionFailed = "consumer_connection_failed",
        /// The receiver answered with a status other than 2xx.
        ConsumerErrorStatus = "consumer_error_status",
        /// The URL now leads to an address webhooks may not reach.
        EndpointUrlRefused = "endpoint_url_refused",
    }
);

/// One webhook event to write: what happened in `organization_id`, as `data` of the envelope.
#[derive(Debug, Clone)]
pub struct Notice {
    pub organization_id: Uuid,
    pub kind: WebhookEventType,
    pub data: Value,
}

impl Notice {
    pub fn new(organization_id: Uuid, kind: WebhookEventType, data: &impl Serialize) -> Notice {
        Notice {
            organization_id,
            kind,
            data: serde_json::to_value(data).unwrap_or(Value::Null),
        }
    }
}

/// Writes the notices and a delivery for every ACTIVE endpoint subscribed to each, in the caller's
/// transaction and one statement; a notice nobody subscribes to writes nothing.
pub async fn emit(conn: &mut PgConnection, notices: &[Notice]) -> sqlx::Result<()> {
    if notices.is_empty() {
        return Ok(());
    }
    repo::emit(conn, notices).await
}

/// The types each organization's ACTIVE endpoints subscribe to, read once for a batch of work so that
/// notices nobody wants are never built.
#[derive(Debug, Default)]
pub struct Subscriptions(HashMap<Uuid, Vec<String>>);

impl Subscriptions {
    pub async fn load(conn: &mut PgConnection, organizations: &[Uuid]) -> sqlx::Result<Self> {
        let mut by_org: HashMap<Uuid, Vec<String>> = HashMap::new();
        for (organization_id, events) in repo::subscriptions(conn, organizations).await? {
            by_org.entry(organization_id).or_default().extend(events);
        }
        Ok(Subscriptions(by_org))
    }

    pub fn wants(&self, organization_id: Uuid, kind: WebhookEventType) -> bool {
        self.0
            .get(&organization_id)
            .is_some_and(|events| events.iter().any(|e| e == ALL_EVENTS || e == kind.as_str()))
    }
}

/// What the body of every delivery is: the webhook event in its envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Envelope {
    /// The webhook event's id, the same for every endpoint that gets it: deduplicate by it.
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: WebhookEventType,
    #[schema(example = "2026-03-01")]
    pub api_version: &'static str,
    pub created_at: DateTime<Utc>,
    pub organization_id: Uuid,
    /// What the event is about; balance events name exactly one of `participant_id` and `group_id`.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Endpoint {
    pub id: Uuid,
    #[schema(example = "https://example.com/webhooks/scrip")]
    pub url: String,
    pub description: Option<String>,
    /// Event types, or `*` for all.
    #[schema(example = json!(["balance.credited", "event.completed"]))]
    pub enabled_events: Vec<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub metadata: Option<sqlx::types::Json<Value>>,
    pub status: EndpointStatus,
    /// The signing secret (`whsec_…`): in the answers of create and rotate-secret only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// E125's body.
#[derive(Debug, utoipa::ToSchema)]
#[schema(example = json!({"url": "https://example.com/webhooks/scrip", "enabled_events": ["*"]}))]
pub struct NewEndpoint {
    /// HTTPS, to a host that resolves to public addresses only.
    #[schema(max_length = 2048)]
    pub url: String,
    /// 1 to 20 event types, or `["*"]`.
    #[schema(min_items = 1, max_items = 20)]
    pub enabled_events: Vec<String>,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub metadata: Option<Value>,
}

/// E128's body: what is given changes; `enabled_events` and `metadata` are replaced whole.
#[derive(Debug, utoipa::ToSchema)]
pub struct EndpointPatch {
    #[schema(value_type = Option<String>, max_length = 2048)]
    pub url: Option<String>,
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub description: Patch<String>,
    #[schema(value_type = Option<Vec<String>>, min_items = 1, max_items = 20)]
    pub enabled_events: Option<Vec<String>>,
    /// ACTIVE or DISABLED; archiving is DELETE.
    #[schema(value_type = Option<EndpointStatus>)]
    pub status: Option<EndpointStatus>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub metadata: Patch<Value>,
}

#[derive(Debug, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndpointFilter {
    /// ACTIVE or DISABLED; archived endpoints are never listed.
    #[param(value_type = Option<EndpointStatus>)]
    pub status: Option<EndpointStatus>,
    /// Pages hold 20 by default, at most 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: i64,
    #[param(value_type = Option<String>, min_length = 1, max_length = 1000)]
    pub cursor: Option<Cursor>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_endpoint_id: Uuid,
    pub webhook_event_id: Uuid,
    pub event_type: WebhookEventType,
    pub status: DeliveryStatus,
    pub attempt_count: i32,
    pub max_attempts: i32,
    /// When a PENDING delivery is tried next.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub last_response_status: Option<i32>,
    pub error_code: Option<DeliveryErrorCode>,
    /// 0 for the original delivery; each resend of the same event to the endpoint counts up.
    pub resend_seq: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// E132: a delivery with what the last attempt got back.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    #[sqlx(flatten)]
    pub delivery: Delivery,
    /// The first 4 KB of the last response's body.
    pub last_response_body: Option<String>,
    /// What went wrong on the last attempt: the network error, the timeout, the status.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    #[param(value_type = Option<DeliveryStatus>)]
    pub status: Option<DeliveryStatus>,
    /// Pages hold 20 by default, at most 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: i64,
    #[param(value_type = Option<String>, min_length = 1, max_length = 1000)]
    pub cursor: Option<Cursor>,
}

/// A new signing secret: `whsec_` and 64 hex digits (32 random bytes). The Standard Webhooks libraries read
/// the part after the prefix as base64, which hex digits also are, so every verifier derives the same key.
fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|err| Error::Internal(format!("no randomness: {err}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("whsec_{hex}"))
}

/// The URL, if webhooks may reach it; the error names the field.
async fn check_url(policy: &UrlPolicy, url: &str) -> Result<()> {
    policy.check(url).await.map_err(|reason| {
        Error::invalid(FieldError::invalid(
            "url",
            "an HTTPS URL of a public host",
            Some(url.to_owned()),
            reason,
        ))
    })
}

/// E125.
pub async fn create(
    pool: &PgPool,
    policy: &UrlPolicy,
    actor: &Actor,
    new: NewEndpoint,
) -> Result<Endpoint> {
    check_url(policy, &new.url).await?;
    let secret = new_secret()?;
    let mut endpoint =
        repo::insert(pool, actor.organization_id, Uuid::now_v7(), &new, &secret).await?;
    endpoint.secret = Some(secret);
    Ok(endpoint)
}

/// E126: newest first.
pub async fn list(pool: &PgPool, actor: &Actor, filter: EndpointFilter) -> Result<Page<Endpoint>> {
    let rows = repo::list(pool, actor.organization_id, &filter).await?;
    Ok(Page::from_rows(rows, filter.limit, |e| {
        Cursor::new(crate::pagination::time_key(e.created_at), e.id)
    }))
}

/// E127; an archived endpoint is still found by its id.
pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Endpoint> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))
}

/// An endpoint that may still change: archived ones may not.
async fn changeable(conn: &mut PgConnection, actor: &Actor, id: Uuid) -> Result<Endpoint> {
    let endpoint = repo::lock(conn, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("webhook endpoint"))?;
    if endpoint.status == EndpointStatus::Archived {
        return Err(Error::Conflict {
            code: "endpoint_archived",
            message: format!("webhook endpoint {id} is archived"),
        });
    }
    Ok(endpoint)
}

/// E128. Making a DISABLED endpoint ACTIVE again forgets its run of failures.
pub async fn update(
    pool: &PgPool,
    policy: &UrlPolicy,
    actor: &Actor,
    id: Uuid,
    patch: EndpointPatch,
) -> Result<Endpoint> {
    if let Some(url) = &patch.url {
        check_url(policy, url).await?;
    }
    let mut tx = pool.begin().await?;
    let mut endpoint = changeable(&mut tx, actor, id).await?;
    if let Some(url) = patch.url {
        endpoint.url = url;
    }
    patch.description.apply(&mut endpoint.description);
    if let Some(events) = patch.enabled_events {
        endpoint.enabled_events = events;
    }
    let mut metadata = endpoint.metadata.take().map(|m| m.0);
    patch.metadata.apply(&mut metadata);
    endpoint.metadata = metadata.map(sqlx::types::Json);
    if let Some(status) = patch.status {
        endpoint.status = status;
    }
    repo::update(&mut tx, &endpoint).await?;
    tx.commit().await?;
    get(pool, actor, id).await
}

/// E129: archives the endpoint for good; what it has not been sent yet never is.
pub async fn archive(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Endpoint> {
    let mut tx = pool.begin().await?;
    changeable(&mut tx, actor, id).await?;
    repo::set_status(&mut tx, id, EndpointStatus::Archived).await?;
    tx.commit().await?;
    get(pool, actor, id).await
}

/// E130: the old secret stops working at once; deliveries not yet sent are signed with the new one.
pub async fn rotate_secret(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Endpoint> {
    let mut tx = pool.begin().await?;
    changeable(&mut tx, actor, id).await?;
    let secret = new_secret()?;
    repo::set_secret(&mut tx, id, &secret).await?;
    tx.commit().await?;
    let mut endpoint = get(pool, actor, id).await?;
    endpoint.secret = Some(secret);
    Ok(endpoint)
}

/// E131: newest first.
pub async fn deliveries(
    pool: &PgPool,
    actor: &Actor,
    endpoint_id: Uuid,
    filter: DeliveryFilter,
) -> Result<Page<Delivery>> {
    get(pool, actor, endpoint_id).await?;
    let rows = repo::deliveries(pool, endpoint_id, &filter).await?;
    Ok(Page::from_rows(rows, filter.limit, |d| {
        Cursor::new(crate::pagination::time_key(d.created_at), d.id)
    }))
}

/// E132.
pub async fn delivery(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<DeliveryDetail> {
    repo::delivery(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("webhook delivery"))
}

/// E133: a FAILED delivery gets a fresh budget of attempts, the first at once; any other is not found.
pub async fn retry(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<DeliveryDetail> {
    if !repo::retry(pool, actor.organization_id, id).await? {
        return Err(Error::NotFound("failed webhook delivery"));
    }
    delivery(pool, actor, id).await
}

/// E134: a new delivery of the same event to the same endpoint; the source stays as it was.
pub async fn resend(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<DeliveryDetail> {
    let mut tx = pool.begin().await?;
    let source = repo::lock_delivery(&mut tx, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("webhook delivery"))?;
    if !matches!(
        source.delivery.status,
        DeliveryStatus::Delivered | DeliveryStatus::Failed
    ) {
        return Err(Error::Conflict {
            code: "not_resendable",
            message: format!(
                "delivery {id} is {}; only DELIVERED and FAILED deliveries can be resent",
                source.delivery.status
            ),
        });
    }
    let endpoint = repo::lock(
        &mut tx,
        actor.organization_id,
        source.delivery.webhook_endpoint_id,
    )
    .await?
    .ok_or(Error::NotFound("webhook endpoint"))?;
    if endpoint.status != EndpointStatus::Active {
        return Err(Error::Conflict {
            code: "endpoint_not_active",
            message: format!("webhook endpoint {} is {}", endpoint.id, endpoint.status),
        });
    }
    let new_id = Uuid::now_v7();
    repo::resend(&mut tx, &source.delivery, new_id).await?;
    tx.commit().await?;
    delivery(pool, actor, new_id).await
}
