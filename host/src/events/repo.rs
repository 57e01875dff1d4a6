use super::{Evaluation, Event, EventFilter, NewEvent, Party};
use crate::organizations::Actor;
use crate::pagination::Order;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const COLUMNS: &str = "id, program_id, participant_id, external_id, recipient_id, recipient_external_id,
    idempotency_key, event_type, event_data, event_timestamp, status, error_message, received_at, created_at,
    updated_at, processed_at";

fn split(identity: &Party) -> (Option<Uuid>, Option<String>) {
    match identity {
        Party::Id(id) => (Some(*id), None),
        Party::External(external_id) => (None, Some(external_id.clone())),
    }
}

/// Inserts `(id, by, event)`s in one statement, so they cost one commit. An event is left out of the rows
/// returned when its key is taken (by a stored event or an earlier one of the same statement), or when its
/// program, or a participant it names by id, is not its organization's.
pub async fn insert_many(
    pool: &PgPool,
    events: &[(Uuid, &Actor, &NewEvent)],
) -> sqlx::Result<Vec<Event>> {
    let mut columns = BatchColumns::default();
    for (id, actor, e) in events {
        let (participant_id, external_id) = split(&e.participant);
        let (recipient_id, recipient_external_id) =
            e.recipient.as_ref().map(split).unwrap_or_default();
        columns.ids.push(*id);
        columns.organizations.push(actor.organization_id);
        columns.api_keys.push(actor.api_key_id);
        columns.programs.push(e.program_id);
        columns.participant_ids.push(participant_id);
        columns.external_ids.push(external_id);
        columns.recipient_ids.push(recipient_id);
        columns.recipient_external_ids.push(recipient_external_id);
        columns.keys.push(e.idempotency_key.clone());
        columns.data.push(Value::Object(e.event_data.clone()));
        columns.timestamps.push(e.event_timestamp);
    }
    sqlx::query_as(&format!(
        "WITH stored AS (
         INSERT INTO events (id, organization_id, program_id, participant_id, external_id, recipient_id,
                             recipient_external_id, idempotency_key, event_data, event_timestamp, status,
                             created_by_api_key_id)
         SELECT t.id, t.org, t.program_id,
                COALESCE(t.participant_id, (SELECT p.id FROM participants p
                                             WHERE p.organization_id = t.org AND p.external_id = t.external_id)),
                t.external_id, t.recipient_id, t.recipient_external_id, t.key, t.data, COALESCE(t.at, now()),
                'PENDING', t.api_key
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::uuid[],
                       $8::text[], $9::text[], $10::jsonb[], $11::timestamptz[])
                AS t(id, org, api_key, program_id, participant_id, external_id, recipient_id, recipient_external_id,
                     key, data, at)
          WHERE EXISTS (SELECT 1 FROM programs g WHERE g.id = t.program_id AND g.organization_id = t.org)
            AND (t.participant_id IS NULL OR EXISTS (SELECT 1 FROM participants p
                                                      WHERE p.id = t.participant_id AND p.organization_id = t.org))
            AND (t.recipient_id IS NULL OR EXISTS (SELECT 1 FROM participants p
                                                    WHERE p.id = t.recipient_id AND p.organization_id = t.org))
         ON CONFLICT ON CONSTRAINT events_idempotency_unique DO NOTHING
         RETURNING {COLUMNS}, organization_id),
         queued AS (INSERT INTO event_queue (next_attempt_at, event_id, organization_id)
                    SELECT received_at, id, organization_id FROM stored)
         SELECT {COLUMNS} FROM stored"
    ))
    .bind(&columns.ids)
    .bind(&columns.organizations)
    .bind(&columns.api_keys)
    .bind(&columns.programs)
    .bind(&columns.participant_ids)
    .bind(&columns.external_ids)
    .bind(&columns.recipient_ids)
    .bind(&columns.recipient_external_ids)
    .bind(&columns.keys)
    .bind(&columns.data)
    .bind(&columns.timestamps)
    .fetch_all(pool)
    .await
}

pub async fn insert_system(
    conn: &mut PgConnection,
    events: &[super::SystemEvent],
) -> sqlx::Result<usize> {
    let mut c = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for e in events {
        c.0.push(Uuid::now_v7());
        c.1.push(e.organization_id);
        c.2.push(e.program_id);
        c.3.push(e.participant_id);
        c.4.push(e.idempotency_key.clone());
        c.5.push(Value::Object(e.event_data.clone()));
        c.6.push(e.event_timestamp);
    }
    let stored: i64 = sqlx::query_scalar(
        "WITH stored AS (
         INSERT INTO events (id, organization_id, program_id, participant_id, idempotency_key, event_type,
                             event_data, event_timestamp, status)
         SELECT t.id, t.org, t.program_id, t.participant_id, t.key, 'SYSTEM', t.data, t.at, 'PENDING'
           FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::jsonb[], $7::timestamptz[])
                AS t(id, org, program_id, participant_id, key, data, at)
         ON CONFLICT ON CONSTRAINT events_idempotency_unique DO NOTHING
         RETURNING id, organization_id, received_at),
         queued AS (INSERT INTO event_queue (next_attempt_at, event_id, organization_id, lane)
                    SELECT received_at, id, organization_id, 1 FROM stored RETURNING 1)
         SELECT count(*) FROM queued",
    )
    .bind(&c.0)
    .bind(&c.1)
    .bind(&c.2)
    .bind(&c.3)
    .bind(&c.4)
    .bind(&c.5)
    .bind(&c.6)
    .fetch_one(conn)
    .await?;
    Ok(usize::try_from(stored).unwrap_or(0))
}

#[derive(Default)]
struct BatchColumns {
    ids: Vec<Uuid>,
    organizations: Vec<Uuid>,
    api_keys: Vec<Uuid>,
    programs: Vec<Uuid>,
    participant_ids: Vec<Option<Uuid>>,
    external_ids: Vec<Option<String>>,
    recipient_ids: Vec<Option<Uuid>>,
    recipient_external_ids: Vec<Option<String>>,
    keys: Vec<String>,
    data: Vec<Value>,
    timestamps: Vec<Option<DateTime<Utc>>>,
}

/// The events stored under these (program, idempotency key) pairs.
pub async fn find_by_keys(
    pool: &PgPool,
    organization_id: Uuid,
    keys: &[(Uuid, String)],
) -> sqlx::Result<Vec<Event>> {
    let (programs, keys): (Vec<Uuid>, Vec<String>) = keys.iter().cloned().unzip();
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events
          WHERE organization_id = $1 AND (program_id, idempotency_key) IN
                (SELECT * FROM unnest($2::uuid[], $3::text[]))"
    ))
    .bind(organization_id)
    .bind(&programs)
    .bind(&keys)
    .fetch_all(pool)
    .await
}

/// What event references name: programs, or participants by id.
#[derive(Clone, Copy)]
pub enum Referenced {
    Programs,
    Participants,
}

/// Which of these ids exist in the organization.
pub async fn existing(
    pool: &PgPool,
    kind: Referenced,
    organization_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    let query = match kind {
        Referenced::Programs => {
            "SELECT id FROM programs WHERE organization_id = $1 AND id = ANY($2)"
        }
        Referenced::Participants => {
            "SELECT id FROM participants WHERE organization_id = $1 AND id = ANY($2)"
        }
    };
    sqlx::query_scalar(query)
        .bind(organization_id)
        .bind(ids)
        .fetch_all(pool)
        .await
}

pub async fn participant_exists(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM participants WHERE id = $1 AND organization_id = $2)",
    )
    .bind(id)
    .bind(organization_id)
    .fetch_one(pool)
    .await
}

pub async fn find(pool: &PgPool, organization_id: Uuid, id: Uuid) -> sqlx::Result<Option<Event>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events WHERE id = $1 AND organization_id = $2"
    ))
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn find_by_key(
    pool: &PgPool,
    organization_id: Uuid,
    program_id: Uuid,
    key: &str,
) -> sqlx::Result<Option<Event>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM events WHERE program_id = $1 AND idempotency_key = $2 AND organization_id = $3"
    ))
    .bind(program_id)
    .bind(key)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

pub async fn evaluations(
    pool: &PgPool,
    event_id: Uuid,
    include_skipped: bool,
) -> sqlx::Result<Vec<Evaluation>> {
    sqlx::query_as(
        "SELECT v.id, v.rule_id, h.snapshot->>'name' AS rule_name, v.rule_history_id, v.status, v.reason,
                v.stopped_by_rule_id, v.error_message, v.results, v.fuel_consumed, v.logs, v.created_at
           FROM rule_evaluations v JOIN rule_history h ON h.id = v.rule_history_id
          WHERE v.event_id = $1 AND ($2 OR v.status <> ALL($3))
          ORDER BY v.created_at, v.id",
    )
    .bind(event_id)
    .bind(include_skipped)
    .bind(super::HIDDEN_EVALUATIONS)
    .fetch_all(pool)
    .await
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    f: &EventFilter,
    order: Order,
) -> sqlx::Result<Vec<Event>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM events WHERE organization_id = "
    ));
    q.push_bind(organization_id);
    if let Some(program_id) = f.program_id {
        q.push(" AND program_id = ").push_bind(program_id);
    }
    if let Some(status) = f.status {
        q.push(" AND status = ").push_bind(status);
    }
    if let Some(event_type) = f.event_type {
        q.push(" AND event_type = ").push_bind(event_type);
    }
    if let Some(participant_id) = f.participant_id {
        q.push(" AND participant_id = ").push_bind(participant_id);
    }
    if let Some(external_id) = &f.external_id {
        q.push(" AND external_id = ").push_bind(external_id.clone());
    }
    if let Some(rule_id) = f.rule_id {
        q.push(" AND EXISTS (SELECT 1 FROM rule_evaluations v WHERE v.event_id = events.id AND v.status = 'SUCCESS'");
        q.push(" AND v.rule_id = ").push_bind(rule_id).push(")");
    }
    crate::search::push_range(&mut q, "created_at", f.from, f.to);
    crate::search::push_range(&mut q, "event_timestamp", f.event_from, f.event_to);
    order.push(&mut q, "id", f.page.cursor.clone(), f.page.limit);
    q.build_query_as().fetch_all(pool).await
}

/// Puts a FAILED event back in the queue; `None` when it is not FAILED (or not this organization's).
/// Returns the error of its last attempt.
pub async fn requeue_failed(
    pool: &PgPool,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Option<String>>> {
    sqlx::query_scalar(
        "WITH requeued AS (
             UPDATE events SET status = 'PENDING', attempts = 0, processed_at = NULL, state_as_of = NULL, updated_at = now()
              WHERE id = $1 AND organization_id = $2 AND status = 'FAILED'
             RETURNING id, organization_id, error_message, event_type),
         queued AS (INSERT INTO event_queue (next_attempt_at, event_id, organization_id, lane)
                    SELECT now(), id, organization_id, CASE WHEN event_type = 'SYSTEM' THEN 1 ELSE 0 END
                      FROM requeued)
         SELECT error_message FROM requeued",
    )
    .bind(id)
    .bind(organization_id)
    .fetch_optional(pool)
    .await
}

/// Seconds since the oldest due event became due: how far behind processing is (0 when nothing is due).
pub async fn queue_lag_seconds(pool: &PgPool) -> sqlx::Result<f64> {
    sqlx::query_scalar(
        "SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at)), 0)::float8
           FROM event_queue WHERE next_attempt_at <= now()",
    )
    .fetch_one(pool)
    .await
}

/// Events in the queue: waiting, due or not, and retrying.
pub async fn queue_depth(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM event_queue")
        .fetch_one(pool)
        .await
}

/// One organization's queued events and the seconds since the oldest due one became due.
pub async fn organization_queue(pool: &PgPool, organization_id: Uuid) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as(
        "SELECT count(*),
                COALESCE(EXTRACT(EPOCH FROM now() - min(next_attempt_at) FILTER (WHERE next_attempt_at <= now())), 0)::float8
           FROM event_queue WHERE organization_id = $1",
    )
    .bind(organization_id)
    .fetch_one(pool)
    .await
}

/// Events finished (COMPLETED or FAILED) per minute since `since`, oldest minute first; minutes without any
/// are left out. Only events received at most ten minutes before `since` are counted, so the index on
/// (organization, created) bounds the scan to about the window's own events: one that waited longer (a
/// retry, a deep backlog) is left out of the chart.
pub async fn finished_per_minute(
    pool: &PgPool,
    organization_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<Vec<(DateTime<Utc>, i64)>> {
    sqlx::query_as(
        "SELECT date_trunc('minute', processed_at) AS minute, count(*)
           FROM events
          WHERE organization_id = $1 AND created_at >= $2 - interval '10 minutes' AND processed_at >= $2
            AND status IN ('COMPLETED', 'FAILED')
          GROUP BY minute ORDER BY minute",
    )
    .bind(organization_id)
    .bind(since)
    .fetch_all(pool)
    .await
}

// The event queue: what workers claim, and where they record what processing decided.

/// How long until the earliest pending event is due; `None` when there is none or the query fails.
pub(super) async fn next_retry_in(pool: &PgPool) -> Option<std::time::Duration> {
    let millis: Option<f64> = sqlx::query_scalar(
        "SELECT GREATEST(0, EXTRACT(EPOCH FROM min(next_attempt_at) - now()) * 1000)::float8
           FROM event_queue",
    )
    .fetch_one(pool)
    .await
    .ok()
    .flatten();
    millis.map(|ms| std::time::Duration::from_millis(ms as u64))
}

#[derive(Debug, sqlx::FromRow)]
pub(super) struct Claimed {
    pub(super) id: Uuid,
    pub(super) organization_id: Uuid,
    pub(super) program_id: Uuid,
    pub(super) participant_id: Option<Uuid>,
    pub(super) external_id: Option<String>,
    pub(super) recipient_id: Option<Uuid>,
    pub(super) recipient_external_id: Option<String>,
    pub(super) event_data: sqlx::types::Json<Value>,
    pub(super) event_timestamp: DateTime<Utc>,
    pub(super) attempts: i32,
    /// Its queue row's key, with `id`.
    pub(super) next_attempt_at: DateTime<Utc>,
}

impl Claimed {
    pub(super) fn key(&self) -> QueueKey {
        QueueKey {
            next_attempt_at: self.next_attempt_at,
            event_id: self.id,
        }
    }
}

/// An event's row in `event_queue`.
#[derive(Debug, Clone, Copy)]
pub(super) struct QueueKey {
    pub(super) next_attempt_at: DateTime<Utc>,
    pub(super) event_id: Uuid,
}

/// Which events a batch claims.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope {
    /// Due events, organizations in turn (migrations 0012, 0013 and 0015 say why the claim is a function).
    Queue,
    /// This queue row, if it is still there and free: an event of a batch that panicked, alone.
    One(QueueKey),
}

/// Claims events no other batch holds, each organization's oldest first; their queue rows stay locked until
/// the batch commits.
pub(super) async fn claim(
    conn: &mut PgConnection,
    scope: Scope,
    batch_size: usize,
) -> sqlx::Result<Vec<Claimed>> {
    match scope {
        Scope::Queue => {
            sqlx::query_as("SELECT * FROM claim_pending_events($1)")
                .bind(i32::try_from(batch_size).unwrap_or(i32::MAX))
                .fetch_all(conn)
                .await
        }
        Scope::One(key) => {
            sqlx::query_as(
                "SELECT e.id, e.organization_id, e.program_id, e.participant_id, e.external_id, e.recipient_id,
                        e.recipient_external_id, e.event_data, e.event_timestamp, e.attempts, q.next_attempt_at
                   FROM event_queue q JOIN events e ON e.id = q.event_id
                  WHERE q.next_attempt_at = $1 AND q.event_id = $2
                    FOR UPDATE OF q SKIP LOCKED",
            )
            .bind(key.next_attempt_at)
            .bind(key.event_id)
            .fetch_all(conn)
            .await
        }
    }
}

#[derive(Default)]
pub(super) struct EventColumns {
    pub(super) ids: Vec<Uuid>,
    pub(super) queued_at: Vec<DateTime<Utc>>,
    pub(super) statuses: Vec<super::EventStatus>,
    pub(super) errors: Vec<Option<String>>,
    pub(super) participants: Vec<Option<Uuid>>,
    pub(super) retry_in_ms: Vec<Option<i64>>,
    /// Where each event's processing began (`events.state_as_of`).
    pub(super) began: Vec<Uuid>,
}

#[derive(Default)]
pub(super) struct EvaluationColumns {
    pub(super) ids: Vec<Uuid>,
    pub(super) organizations: Vec<Uuid>,
    pub(super) events: Vec<Uuid>,
    pub(super) rule_ids: Vec<Uuid>,
    pub(super) history_ids: Vec<Uuid>,
    pub(super) statuses: Vec<crate::rules::evaluation::EvaluationStatus>,
    pub(super) reasons: Vec<Option<crate::rules::evaluation::EvaluationReason>>,
    pub(super) stoppers: Vec<Option<Uuid>>,
    pub(super) messages: Vec<Option<String>>,
    pub(super) results: Vec<Value>,
    pub(super) fuels: Vec<Option<i64>>,
    pub(super) logs: Vec<Option<String>>,
}

/// Writes a batch's evaluations (replacing an earlier attempt's) and each event's new status, taking the
/// finished events out of the queue and queueing the rescheduled ones anew: one statement for the batch.
pub(super) async fn record(
    conn: &mut PgConnection,
    events: &EventColumns,
    evaluations: &EvaluationColumns,
) -> sqlx::Result<()> {
    let EvaluationColumns {
        ids,
        organizations,
        events: evaluated,
        rule_ids,
        history_ids,
        statuses,
        reasons,
        stoppers,
        messages,
        results,
        fuels,
        logs,
    } = evaluations;
    sqlx::query(
        "WITH earlier AS (DELETE FROM rule_evaluations WHERE event_id = ANY($1)),
         evaluations AS (
             INSERT INTO rule_evaluations (id, organization_id, event_id, rule_id, rule_history_id, status, reason,
                                           stopped_by_rule_id, error_message, results, fuel_consumed, logs)
             SELECT * FROM unnest($6::uuid[], $7::uuid[], $8::uuid[], $9::uuid[], $10::uuid[], $11::text[],
                                  $12::text[], $13::uuid[], $14::text[], $15::jsonb[], $16::bigint[], $17::text[])),
         outcomes AS (
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::bigint[], $18::timestamptz[],
                                  $19::uuid[])
                    AS u(id, status, error, participant_id, retry_ms, queued_at, began)),
         dequeued AS (
             DELETE FROM event_queue q USING outcomes u WHERE q.next_attempt_at = u.queued_at AND q.event_id = u.id),
         requeued AS (
             INSERT INTO event_queue (next_attempt_at, event_id, organization_id, lane)
             SELECT now() + u.retry_ms * interval '1 millisecond', u.id, e.organization_id,
                    CASE WHEN e.event_type = 'SYSTEM' THEN 1 ELSE 0 END
               FROM outcomes u JOIN events e ON e.id = u.id WHERE u.retry_ms IS NOT NULL)
         UPDATE events e SET status = u.status, error_message = u.error,
                participant_id = COALESCE(u.participant_id, e.participant_id),
                attempts = e.attempts + 1, updated_at = now(),
                processed_at = CASE WHEN u.status = 'PENDING' THEN NULL ELSE clock_timestamp() END,
                state_as_of = CASE WHEN u.status = 'PENDING' THEN NULL ELSE u.began END
           FROM outcomes u
          WHERE e.id = u.id",
    )
    .bind(&events.ids)
    .bind(&events.statuses)
    .bind(&events.errors)
    .bind(&events.participants)
    .bind(&events.retry_in_ms)
    .bind(ids)
    .bind(organizations)
    .bind(evaluated)
    .bind(rule_ids)
    .bind(history_ids)
    .bind(statuses)
    .bind(reasons)
    .bind(stoppers)
    .bind(messages)
    .bind(results)
    .bind(fuels)
    .bind(logs)
    .bind(&events.queued_at)
    .bind(&events.began)
    .execute(conn)
    .await?;
    Ok(())
}

/// A page of a program's processed events received in `[from, to)`, in the order received, after `after`.
pub async fn processed_in_window(
    conn: &mut PgConnection,
    window: &super::ProcessedWindow,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<super::PastEvent>> {
    sqlx::query_as(
        "SELECT id, participant_id, event_data, event_timestamp, created_at, processed_at, state_as_of
           FROM events
          WHERE program_id = $1 AND created_at >= $2 AND created_at < $3 AND status = 'COMPLETED'
            AND ($4::text IS NULL OR event_type = $4)
            AND ($5::timestamptz IS NULL OR (created_at, id) > ($5, $6))
          ORDER BY created_at, id
          LIMIT $7",
    )
    .bind(window.program_id)
    .bind(window.from)
    .bind(window.to)
    .bind(window.event_type)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// How `rule_id` evaluated each of these events, where it did.
pub async fn evaluations_of_rule(
    conn: &mut PgConnection,
    rule_id: Uuid,
    events: &[Uuid],
) -> sqlx::Result<Vec<super::RecordedEvaluation>> {
    sqlx::query_as(
        "SELECT event_id, status, reason FROM rule_evaluations
          WHERE event_id = ANY($1) AND rule_id = $2",
    )
    .bind(events)
    .bind(rule_id)
    .fetch_all(conn)
    .await
}
