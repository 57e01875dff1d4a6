use super::delivery::{Attempted, Due};
use super::{
    Delivery, DeliveryDetail, DeliveryFilter, Endpoint, EndpointFilter, EndpointStatus,
    MAX_ATTEMPTS, NewEndpoint, Notice,
};
use crate::pagination::Order;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

/// The secret is never read back for an answer: create and rotate show the one they made.
const ENDPOINT: &str = "id, url, description, enabled_events, metadata, status, NULL::text AS secret, \
                        created_at, updated_at";
const DELIVERY: &str = "id, webhook_endpoint_id, webhook_event_id, event_type, status, attempt_count, \
                        max_attempts, next_attempt_at, last_attempt_at, delivered_at, last_response_status, \
                        error_code, resend_seq, created_at, updated_at";

pub async fn emit(conn: &mut PgConnection, notices: &[Notice]) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = notices.iter().map(|_| Uuid::now_v7()).collect();
    let organizations: Vec<Uuid> = notices.iter().map(|n| n.organization_id).collect();
    let kinds: Vec<&str> = notices.iter().map(|n| n.kind.as_str()).collect();
    let data: Vec<&serde_json::Value> = notices.iter().map(|n| &n.data).collect();
    // The deliveries refer to events inserted by the same statement: foreign keys are checked at its end.
    sqlx::query(
        "WITH notice AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[])
                 AS n (id, organization_id, type, data)),
         target AS (
             SELECT n.id AS event_id, n.organization_id, n.type, e.id AS endpoint_id
               FROM notice n
               JOIN webhook_endpoints e
                 ON e.organization_id = n.organization_id AND e.status = 'ACTIVE'
                AND e.enabled_events && ARRAY['*', n.type]),
         written AS (
             INSERT INTO webhook_events (id, organization_id, type, data)
             SELECT id, organization_id, type, data FROM notice
              WHERE id IN (SELECT event_id FROM target))
         INSERT INTO webhook_deliveries
             (id, organization_id, webhook_endpoint_id, webhook_event_id, event_type, max_attempts, next_attempt_at)
         SELECT gen_random_uuid(), organization_id, endpoint_id, event_id, type, $5, now() FROM target",
    )
    .bind(&ids)
    .bind(&organizations)
    .bind(&kinds)
    .bind(&data)
    .bind(MAX_ATTEMPTS)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn subscriptions(
    conn: &mut PgConnection,
    organizations: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, Vec<String>)>> {
    sqlx::query_as(
        "SELECT organization_id, enabled_events FROM webhook_endpoints
          WHERE organization_id = ANY($1) AND status = 'ACTIVE'",
    )
    .bind(organizations)
    .fetch_all(conn)
    .await
}

pub async fn insert(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
    new: &NewEndpoint,
    secret: &str,
) -> sqlx::Result<Endpoint> {
    sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (id, organization_id, url, description, enabled_events, metadata, secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ENDPOINT}"
    ))
    .bind(id)
    .bind(organization_id)
    .bind(&new.url)
    .bind(&new.description)
    .bind(&new.enabled_events)
    .bind(new.metadata.as_ref().map(sqlx::types::Json))
    .bind(secret)
    .fetch_one(pool)
    .await
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    f: &EndpointFilter,
) -> sqlx::Result<Vec<Endpoint>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {ENDPOINT} FROM webhook_endpoints WHERE status <> 'ARCHIVED' AND organization_id = "
    ));
    q.push_bind(organization_id);
    if let Some(status) = f.status {
        q.push(" AND status = ").push_bind(status);
    }
    Order::NEWEST_FIRST.push(&mut q, "id", f.cursor.clone(), f.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn find(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT} FROM webhook_endpoints WHERE id = $1 AND organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn lock(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT} FROM webhook_endpoints WHERE id = $1 AND organization_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await
}

pub async fn update(conn: &mut PgConnection, e: &Endpoint) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoints
            SET url = $2, description = $3, enabled_events = $4, metadata = $5, status = $6,
                consecutive_failures = CASE WHEN $6 = 'ACTIVE' AND status <> 'ACTIVE' THEN 0
                                            ELSE consecutive_failures END,
                updated_at = now()
          WHERE id = $1",
    )
    .bind(e.id)
    .bind(&e.url)
    .bind(&e.description)
    .bind(&e.enabled_events)
    .bind(&e.metadata)
    .bind(e.status)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: EndpointStatus,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE webhook_endpoints SET status = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_secret(conn: &mut PgConnection, id: Uuid, secret: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE webhook_endpoints SET secret = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(secret)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn deliveries(
    pool: &PgPool,
    endpoint_id: Uuid,
    f: &DeliveryFilter,
) -> sqlx::Result<Vec<Delivery>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {DELIVERY} FROM webhook_deliveries WHERE webhook_endpoint_id = "
    ));
    q.push_bind(endpoint_id);
    if let Some(status) = f.status {
        q.push(" AND status = ").push_bind(status);
    }
    Order::NEWEST_FIRST.push(&mut q, "id", f.cursor.clone(), f.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn delivery(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<DeliveryDetail>> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY}, last_response_body, last_error FROM webhook_deliveries
          WHERE id = $1 AND organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn lock_delivery(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<DeliveryDetail>> {
    sqlx::query_as(&format!(
        "SELECT {DELIVERY}, last_response_body, last_error FROM webhook_deliveries
          WHERE id = $1 AND organization_id = $2 FOR UPDATE"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(conn)
    .await
}

/// FAILED → PENDING with a fresh budget, due now; `false` when the delivery is not FAILED.
pub async fn retry(pool: &PgPool, organization_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries
            SET status = 'PENDING', attempt_count = 0, max_attempts = $3, next_attempt_at = now(),
                updated_at = now()
          WHERE id = $1 AND organization_id = $2 AND status = 'FAILED'",
    )
    .bind(id)
    .bind(organization_id)
    .bind(MAX_ATTEMPTS)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A new delivery of the source's event to its endpoint, numbered after the last resend.
pub async fn resend(conn: &mut PgConnection, source: &Delivery, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhook_deliveries
             (id, organization_id, webhook_endpoint_id, webhook_event_id, event_type, max_attempts,
              next_attempt_at, resend_seq)
         SELECT $1, organization_id, webhook_endpoint_id, webhook_event_id, event_type, $3, now(),
                (SELECT max(resend_seq) + 1 FROM webhook_deliveries
                  WHERE webhook_event_id = s.webhook_event_id AND webhook_endpoint_id = s.webhook_endpoint_id)
           FROM webhook_deliveries s WHERE s.id = $2",
    )
    .bind(id)
    .bind(source.id)
    .bind(MAX_ATTEMPTS)
    .execute(conn)
    .await?;
    Ok(())
}

/// SENDING deliveries whose lease ran out (their process stopped mid-attempt) are due again, or FAILED
/// when that was their last attempt, which counts toward their endpoint's run of failures as any other.
pub async fn reclaim_expired(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query(
        "WITH cut AS (
             UPDATE webhook_deliveries
                SET status = CASE WHEN attempt_count >= max_attempts THEN 'FAILED' ELSE 'PENDING' END,
                    next_attempt_at = CASE WHEN attempt_count >= max_attempts THEN NULL ELSE now() END,
                    lease_until = NULL,
                    last_error = 'the attempt did not finish: its server process stopped',
                    updated_at = now()
              WHERE status = 'SENDING' AND lease_until < now()
          RETURNING webhook_endpoint_id, status),
         failed AS (
             SELECT webhook_endpoint_id, count(*)::integer AS n FROM cut
              WHERE status = 'FAILED' GROUP BY webhook_endpoint_id)
         UPDATE webhook_endpoints e
            SET consecutive_failures = e.consecutive_failures + failed.n,
                status = CASE WHEN e.status = 'ACTIVE' AND e.consecutive_failures + failed.n >= $1
                              THEN 'DISABLED' ELSE e.status END,
                updated_at = now()
           FROM failed
          WHERE e.id = failed.webhook_endpoint_id",
    )
    .bind(super::delivery::DISABLE_AFTER)
    .execute(pool)
    .await?;
    Ok(())
}

/// Claims up to `limit` due deliveries of ACTIVE endpoints, oldest due first, as SENDING under a lease of
/// `lease_ms`; each claim is an attempt.
pub(super) async fn claim(pool: &PgPool, limit: i64, lease_ms: i64) -> sqlx::Result<Vec<Due>> {
    sqlx::query_as(
        "UPDATE webhook_deliveries d
            SET status = 'SENDING', attempt_count = d.attempt_count + 1, last_attempt_at = now(),
                lease_until = now() + $2 * interval '1 millisecond', updated_at = now()
           FROM (SELECT d2.id FROM webhook_deliveries d2
                   JOIN webhook_endpoints e2 ON e2.id = d2.webhook_endpoint_id AND e2.status = 'ACTIVE'
                  WHERE d2.status = 'PENDING' AND d2.next_attempt_at <= now()
                  ORDER BY d2.next_attempt_at
                  LIMIT $1
                    FOR UPDATE OF d2 SKIP LOCKED) due,
                webhook_endpoints e, webhook_events ev
          WHERE d.id = due.id AND e.id = d.webhook_endpoint_id AND ev.id = d.webhook_event_id
      RETURNING d.id, d.attempt_count, d.max_attempts, e.url, e.secret, ev.id AS event_id,
                ev.type AS event_type, ev.organization_id, ev.data, ev.created_at",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(pool)
    .await
}

/// Records how the claimed attempt ended, unless the delivery has moved on since (its lease ran out).
/// A delivery out of attempts adds to its endpoint's run of failures, which may disable it; a delivered one
/// ends the run.
pub(super) async fn finish(pool: &PgPool, due: &Due, a: &Attempted) -> sqlx::Result<()> {
    let retry_ms = a
        .retry_in
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    sqlx::query(
        "WITH done AS (
             UPDATE webhook_deliveries
                SET status = $3,
                    delivered_at = CASE WHEN $3 = 'DELIVERED' THEN now() END,
                    next_attempt_at = now() + $4 * interval '1 millisecond',
                    last_response_status = $5, last_response_body = $6, last_error = $7, error_code = $8,
                    lease_until = NULL, updated_at = now()
              WHERE id = $1 AND status = 'SENDING' AND attempt_count = $2
          RETURNING webhook_endpoint_id, status)
         UPDATE webhook_endpoints e
            SET consecutive_failures = CASE WHEN done.status = 'DELIVERED' THEN 0
                                            ELSE e.consecutive_failures + 1 END,
                status = CASE WHEN done.status = 'FAILED' AND e.status = 'ACTIVE'
                                   AND e.consecutive_failures + 1 >= $9 THEN 'DISABLED'
                              ELSE e.status END,
                updated_at = now()
           FROM done
          WHERE e.id = done.webhook_endpoint_id
            AND (done.status = 'FAILED' OR (done.status = 'DELIVERED' AND e.consecutive_failures > 0))",
    )
    .bind(due.id)
    .bind(due.attempt_count)
    .bind(a.status)
    .bind(retry_ms)
    .bind(a.response_status)
    .bind(&a.response_body)
    .bind(&a.error)
    .bind(a.code)
    .bind(super::delivery::DISABLE_AFTER)
    .execute(pool)
    .await?;
    Ok(())
}
