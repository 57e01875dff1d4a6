use super::{
    Automation, AutomationFilter, Scope, Source, StateScheduleType, Subscription,
    SubscriptionFilter, SubscriptionStatus, TriggerType,
};
use crate::pagination::Order;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

const COLUMNS: &str = "id, organization_id, program_id, name, description, event_name, payload, scope, trigger_type,
    cron_expression, timezone, trigger_at, schedule_type, schedule_config, participant_filter, guard_condition,
    filter_hints, participant_id, status, source, next_run_at, last_run_at, last_error, error_message,
    processed_at, last_evaluated_at, execution_status, execution_started_at, execution_completed_at,
    execution_error, participants_processed, participants_total, execution_fire_at, execution_cursor, created_at,
    updated_at";

pub struct NewRow {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub program_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub event_name: String,
    pub payload: Value,
    pub scope: Scope,
    pub trigger_type: TriggerType,
    pub cron_expression: Option<String>,
    pub timezone: String,
    pub trigger_at: Option<DateTime<Utc>>,
    pub schedule_type: Option<StateScheduleType>,
    pub schedule_config: Option<Value>,
    pub participant_filter: Option<String>,
    pub guard_condition: Option<String>,
    pub filter_hints: Value,
    pub participant_id: Option<Uuid>,
    pub source: Source,
    pub source_event_id: Option<Uuid>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

pub async fn insert(conn: &mut PgConnection, r: &NewRow) -> sqlx::Result<Automation> {
    sqlx::query_as(&format!(
        "INSERT INTO automations (id, organization_id, program_id, name, description, event_name, payload, scope,
                                  trigger_type, cron_expression, timezone, trigger_at, schedule_type,
                                  schedule_config, participant_filter, guard_condition, filter_hints,
                                  participant_id, source, source_event_id, next_run_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                 $22, $22)
         RETURNING {COLUMNS}"
    ))
    .bind(r.id)
    .bind(r.organization_id)
    .bind(r.program_id)
    .bind(&r.name)
    .bind(&r.description)
    .bind(&r.event_name)
    .bind(&r.payload)
    .bind(r.scope)
    .bind(r.trigger_type)
    .bind(&r.cron_expression)
    .bind(&r.timezone)
    .bind(r.trigger_at)
    .bind(r.schedule_type)
    .bind(&r.schedule_config)
    .bind(&r.participant_filter)
    .bind(&r.guard_condition)
    .bind(&r.filter_hints)
    .bind(r.participant_id)
    .bind(r.source)
    .bind(r.source_event_id)
    .bind(r.next_run_at)
    .bind(r.now)
    .fetch_one(conn)
    .await
}

pub async fn list(
    pool: &PgPool,
    organization_id: Uuid,
    program_id: Uuid,
    f: &AutomationFilter,
) -> sqlx::Result<Vec<Automation>> {
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "SELECT {COLUMNS} FROM automations WHERE organization_id = "
    ));
    q.push_bind(organization_id);
    q.push(" AND program_id = ").push_bind(program_id);
    if let Some(search) = &f.search {
        q.push(" AND name ILIKE ")
            .push_bind(crate::search::like_pattern(search));
    }
    if let Some(kind) = f.trigger_type {
        q.push(" AND trigger_type = ").push_bind(kind);
    }
    if let Some(scope) = f.scope {
        q.push(" AND scope = ").push_bind(scope);
    }
    if let Some(status) = f.status {
        q.push(" AND status = ").push_bind(status);
    }
    if let Some(source) = f.source {
        q.push(" AND source = ").push_bind(source);
    }
    Order::NEWEST_FIRST.push(&mut q, "id", f.cursor.clone(), f.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn find(
    pool: &PgPool,
    organization_id: Uuid,
    program_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Automation>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM automations WHERE id = $1 AND organization_id = $2 AND program_id = $3"
    ))
    .bind(id)
    .bind(organization_id)
    .bind(program_id)
    .fetch_optional(pool)
    .await
}

pub async fn find_many(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Automation>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM automations WHERE id = ANY($1)"
    ))
    .bind(ids)
    .fetch_all(conn)
    .await
}

pub async fn lock(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Automation>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM automations
          WHERE id = $1 AND organization_id = $2 AND program_id = $3 FOR UPDATE"
    ))
    .bind(id)
    .bind(organization_id)
    .bind(program_id)
    .fetch_optional(conn)
    .await
}

/// Writes every field E110 may change.
pub async fn update(
    conn: &mut PgConnection,
    a: &Automation,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE automations
            SET name = $2, description = $3, event_name = $4, payload = $5, status = $6, cron_expression = $7,
                timezone = $8, trigger_at = $9, schedule_config = $10, participant_filter = $11,
                guard_condition = $12, filter_hints = $13, next_run_at = $14, updated_at = $15
          WHERE id = $1",
    )
    .bind(a.id)
    .bind(&a.name)
    .bind(&a.description)
    .bind(&a.event_name)
    .bind(&a.payload)
    .bind(a.status)
    .bind(&a.cron_expression)
    .bind(&a.timezone)
    .bind(a.trigger_at)
    .bind(&a.schedule_config)
    .bind(&a.participant_filter)
    .bind(&a.guard_condition)
    .bind(&a.filter_hints)
    .bind(a.next_run_at)
    .bind(now)
    .execute(conn)
    .await
    .map(drop)
}

/// Archives it; a fan-out pending or running stops (failed, as a cancel).
pub async fn archive(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE automations
            SET status = 'archived', next_run_at = NULL, updated_at = $2,
                execution_status = CASE WHEN execution_status IN ('pending', 'executing') THEN 'failed'
                                        ELSE execution_status END,
                execution_error = CASE WHEN execution_status IN ('pending', 'executing') THEN 'archived'
                                       ELSE execution_error END,
                execution_completed_at = CASE WHEN execution_status IN ('pending', 'executing') THEN $2
                                              ELSE execution_completed_at END
          WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await
    .map(drop)
}

pub async fn set_next_run(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE automations SET next_run_at = $2, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(conn)
        .await
        .map(drop)
}

/// A fan-out of the fire at `at` becomes pending: the first page starts from the first participant.
pub async fn start_fan_out(
    conn: &mut PgConnection,
    id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let due = Due {
        id,
        next_run_at: None,
        keep_next_run: true,
        last_run_at: at,
        processed: false,
        fan_out: Some(at),
        last_error: None,
    };
    fired(conn, &[due]).await
}

/// Ends a fan-out: completed, or failed with `error`.
pub async fn finish_fan_out(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE automations
            SET execution_status = CASE WHEN $3::text IS NULL THEN 'completed' ELSE 'failed' END,
                execution_error = $3, execution_completed_at = $2, updated_at = $2
          WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(error)
    .execute(conn)
    .await
    .map(drop)
}

/// Removes the subscriptions of an automation that have not fired for good.
pub async fn drop_subscriptions(conn: &mut PgConnection, automation_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM automation_subscriptions WHERE automation_id = $1 AND status <> 'completed'",
    )
    .bind(automation_id)
    .execute(conn)
    .await
    .map(drop)
}

pub async fn subscriptions(
    pool: &PgPool,
    organization_id: Uuid,
    automation_id: Uuid,
    f: &SubscriptionFilter,
) -> sqlx::Result<Vec<Subscription>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT id, automation_id, participant_id, status, next_trigger_at, last_triggered_at, trigger_count,
                retry_count, last_error, created_at
           FROM automation_subscriptions WHERE organization_id = ",
    );
    q.push_bind(organization_id);
    q.push(" AND automation_id = ").push_bind(automation_id);
    if let Some(status) = f.status {
        q.push(" AND status = ").push_bind(status);
    }
    Order::NEWEST_FIRST.push(&mut q, "id", f.cursor.clone(), f.limit);
    q.build_query_as().fetch_all(pool).await
}

pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Automation>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM automations
          WHERE status = 'active' AND next_run_at <= $1
          ORDER BY next_run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// One fire of an automation, as recorded.
#[derive(Debug, Clone)]
pub struct Due {
    pub id: Uuid,
    pub next_run_at: Option<DateTime<Utc>>,
    /// A manual start of a fan-out leaves the schedule as it is.
    pub keep_next_run: bool,
    pub last_run_at: DateTime<Utc>,
    /// A one_time automation has fired for good.
    pub processed: bool,
    /// A fan-out starts, keyed by this fire time.
    pub fan_out: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

pub async fn fired(conn: &mut PgConnection, due: &[Due]) -> sqlx::Result<()> {
    let mut columns = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for d in due {
        columns.0.push(d.id);
        columns.1.push(d.next_run_at);
        columns.2.push(d.keep_next_run);
        columns.3.push(d.last_run_at);
        columns.4.push(d.processed);
        columns.5.push(d.fan_out);
        columns.6.push(d.last_error.clone());
    }
    sqlx::query(
        "UPDATE automations a
            SET next_run_at = CASE WHEN d.keep THEN a.next_run_at ELSE d.next_run_at END,
                last_run_at = d.last_run_at,
                processed_at = CASE WHEN d.processed THEN d.last_run_at ELSE a.processed_at END,
                last_error = d.last_error,
                error_message = CASE WHEN a.trigger_type = 'one_time' THEN d.last_error ELSE a.error_message END,
                execution_status = CASE WHEN d.fan_out IS NULL THEN a.execution_status ELSE 'pending' END,
                execution_fire_at = COALESCE(d.fan_out, a.execution_fire_at),
                execution_cursor = CASE WHEN d.fan_out IS NULL THEN a.execution_cursor END,
                execution_started_at = CASE WHEN d.fan_out IS NULL THEN a.execution_started_at
                                            ELSE d.last_run_at END,
                execution_completed_at = CASE WHEN d.fan_out IS NULL THEN a.execution_completed_at END,
                execution_error = CASE WHEN d.fan_out IS NULL THEN a.execution_error END,
                participants_processed = CASE WHEN d.fan_out IS NULL THEN a.participants_processed ELSE 0 END,
                participants_total = CASE WHEN d.fan_out IS NULL THEN a.participants_total
                    ELSE (SELECT count(*) FROM participant_programs m WHERE m.program_id = a.program_id) END,
                updated_at = now()
           FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[], $4::timestamptz[], $5::bool[],
                       $6::timestamptz[], $7::text[])
                AS d(id, next_run_at, keep, last_run_at, processed, fan_out, last_error)
          WHERE a.id = d.id",
    )
    .bind(&columns.0)
    .bind(&columns.1)
    .bind(&columns.2)
    .bind(&columns.3)
    .bind(&columns.4)
    .bind(&columns.5)
    .bind(&columns.6)
    .execute(conn)
    .await
    .map(drop)
}

pub async fn claim_fan_out(conn: &mut PgConnection, room: i64) -> sqlx::Result<Option<Automation>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM automations a
          WHERE execution_status IN ('pending', 'executing')
            AND (SELECT count(*) FROM (SELECT 1 FROM event_queue q WHERE q.organization_id = a.organization_id
                                        LIMIT $1) queued) < $1
          ORDER BY execution_started_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    ))
    .bind(room)
    .fetch_optional(conn)
    .await
}

/// A fan-out after a page: the last participant it reached.
#[derive(Debug, Clone)]
pub struct FanOut {
    pub id: Uuid,
    pub cursor: Option<Uuid>,
    /// Participants looked at by this page.
    pub processed: i32,
    pub done: bool,
    pub now: DateTime<Utc>,
}

pub async fn advanced(conn: &mut PgConnection, f: &FanOut) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE automations
            SET execution_cursor = COALESCE($2, execution_cursor),
                participants_processed = participants_processed + $3,
                execution_status = CASE WHEN $4 THEN 'completed' ELSE 'executing' END,
                execution_completed_at = CASE WHEN $4 THEN $5 END,
                last_evaluated_at = CASE WHEN $4 AND trigger_type = 'participant_state' THEN $5
                                         ELSE last_evaluated_at END,
                updated_at = $5
          WHERE id = $1",
    )
    .bind(f.id)
    .bind(f.cursor)
    .bind(f.processed)
    .bind(f.done)
    .bind(f.now)
    .execute(conn)
    .await
    .map(drop)
}

/// What becomes of one participant's subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionUpdate {
    pub automation_id: Uuid,
    pub participant_id: Uuid,
    pub status: SubscriptionStatus,
    pub next_trigger_at: Option<DateTime<Utc>>,
    /// It fired at this time.
    pub triggered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

#[derive(Default)]
struct UpdateColumns {
    automations: Vec<Uuid>,
    participants: Vec<Uuid>,
    statuses: Vec<SubscriptionStatus>,
    next: Vec<Option<DateTime<Utc>>>,
    triggered: Vec<Option<DateTime<Utc>>>,
    errors: Vec<Option<String>>,
}

impl UpdateColumns {
    fn of(updates: &[SubscriptionUpdate]) -> Self {
        let mut c = UpdateColumns::default();
        for u in updates {
            c.automations.push(u.automation_id);
            c.participants.push(u.participant_id);
            c.statuses.push(u.status);
            c.next.push(u.next_trigger_at);
            c.triggered.push(u.triggered_at);
            c.errors.push(u.last_error.clone());
        }
        c
    }
}

pub async fn subscribe(
    conn: &mut PgConnection,
    automation: &Automation,
    seen: &[Uuid],
    matching: &[SubscriptionUpdate],
    recompute: bool,
) -> sqlx::Result<()> {
    let keep: Vec<Uuid> = matching.iter().map(|m| m.participant_id).collect();
    sqlx::query(
        "DELETE FROM automation_subscriptions
          WHERE automation_id = $1 AND participant_id = ANY($2) AND NOT participant_id = ANY($3)
            AND status <> 'completed'",
    )
    .bind(automation.id)
    .bind(seen)
    .bind(&keep)
    .execute(&mut *conn)
    .await?;
    if matching.is_empty() {
        return Ok(());
    }
    let c = UpdateColumns::of(matching);
    let ids: Vec<Uuid> = matching.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO automation_subscriptions (id, organization_id, automation_id, participant_id, status,
                                               next_trigger_at, last_error)
         SELECT t.id, $1, t.automation_id, t.participant_id, t.status, t.next, t.error
           FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::timestamptz[], $7::text[])
                AS t(id, automation_id, participant_id, status, next, error)
         ON CONFLICT ON CONSTRAINT automation_subscriptions_unique DO UPDATE
            SET status = EXCLUDED.status, next_trigger_at = EXCLUDED.next_trigger_at,
                last_error = EXCLUDED.last_error, updated_at = now()
          WHERE automation_subscriptions.status <> 'completed'
            AND ($8 OR automation_subscriptions.status = 'failed')",
    )
    .bind(automation.organization_id)
    .bind(&ids)
    .bind(&c.automations)
    .bind(&c.participants)
    .bind(&c.statuses)
    .bind(&c.next)
    .bind(&c.errors)
    .bind(recompute)
    .execute(conn)
    .await
    .map(drop)
}

/// A subscription that is due.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SubscriptionDue {
    pub automation_id: Uuid,
    pub participant_id: Uuid,
    pub next_trigger_at: DateTime<Utc>,
}

pub async fn claim_subscriptions(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<SubscriptionDue>> {
    sqlx::query_as(
        "SELECT s.automation_id, s.participant_id, s.next_trigger_at
           FROM automation_subscriptions s JOIN automations a ON a.id = s.automation_id
          WHERE s.status = 'active' AND s.next_trigger_at <= $1 AND a.status = 'active'
          ORDER BY s.next_trigger_at, s.id LIMIT $2 FOR UPDATE OF s SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn triggered(
    conn: &mut PgConnection,
    updates: &[SubscriptionUpdate],
) -> sqlx::Result<()> {
    let c = UpdateColumns::of(updates);
    sqlx::query(
        "UPDATE automation_subscriptions s
            SET status = t.status, next_trigger_at = t.next, last_error = t.error,
                last_triggered_at = COALESCE(t.triggered, s.last_triggered_at),
                trigger_count = s.trigger_count + CASE WHEN t.triggered IS NULL THEN 0 ELSE 1 END,
                retry_count = s.retry_count + CASE WHEN t.status = 'failed' THEN 1 ELSE 0 END,
                updated_at = now()
           FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::text[])
                AS t(automation_id, participant_id, status, next, triggered, error)
          WHERE s.automation_id = t.automation_id AND s.participant_id = t.participant_id",
    )
    .bind(&c.automations)
    .bind(&c.participants)
    .bind(&c.statuses)
    .bind(&c.next)
    .bind(&c.triggered)
    .bind(&c.errors)
    .execute(conn)
    .await
    .map(drop)
}
