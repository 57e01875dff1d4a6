//! Automations (E107–E115): schedules that create SYSTEM events, which then go through the rules like any
//! other. An automation is a trigger (when: `cron`, `one_time`, `immediate`, `participant_state`) times a
//! scope (who: the `program`, one event, or its `participants`, one event each). Rule actions create them
//! too: SCHEDULE_EVENT a one-time program automation for the event's participant, BROADCAST an immediate
//! fan-out (`source: rule_action`).
//!
//! This module keeps automations and their subscriptions; the `scheduler` fires them.

mod repo;
pub mod schedule;

use crate::clock::Clock;
use crate::error::{Error, FieldError, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page};
use crate::validation::Patch;
use chrono::{DateTime, Utc};
use schedule::{CronSchedule, StateSchedule};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use repo::{Due, FanOut, SubscriptionDue, SubscriptionUpdate};

crate::vocabulary!(
    /// Who an automation's firing is for: the program (one event) or each of its participants.
    pub enum Scope {
        Program = "program",
        Participants = "participants",
    }
);
crate::vocabulary!(
    pub enum TriggerType {
        /// Recurring, by a cron expression in `timezone`.
        Cron = "cron",
        /// Once, at `trigger_at`.
        OneTime = "one_time",
        /// Once, as soon as it is created.
        Immediate = "immediate",
        /// Per participant, by `schedule_type` and `schedule_config`.
        ParticipantState = "participant_state",
    }
);
crate::vocabulary!(
    /// `archived` is for good: deleted automations never fire again but stay readable.
    pub enum AutomationStatus {
        Active = "active",
        Paused = "paused",
        Archived = "archived",
    }
);
crate::vocabulary!(
    pub enum Source {
        Api = "api",
        /// Created by a SCHEDULE_EVENT or BROADCAST action.
        RuleAction = "rule_action",
    }
);
crate::vocabulary!(
    /// Where the participants fan-out is: pending (due to start), executing, then completed or failed
    /// (cancelled); idle before the first.
    pub enum ExecutionStatus {
        Idle = "idle",
        Pending = "pending",
        Executing = "executing",
        Completed = "completed",
        Failed = "failed",
    }
);
crate::vocabulary!(
    /// What a participant_state automation's subscriptions are scheduled by.
    pub enum StateScheduleType {
        AttributeDate = "ATTRIBUTE_DATE",
        Interval = "INTERVAL",
        Cron = "CRON",
        Threshold = "THRESHOLD",
    }
);
crate::vocabulary!(
    /// `completed`: a THRESHOLD subscription that fired. `failed`: the participant's attribute holds no date.
    pub enum SubscriptionStatus {
        Active = "active",
        Completed = "completed",
        Failed = "failed",
    }
);

/// How often a participant_state automation looks again at who matches its filter, besides on request (E114).
pub const REFRESH_EVERY: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Automation {
    pub id: Uuid,
    #[serde(skip)]
    pub organization_id: Uuid,
    pub program_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// The created events' `event_data.type`.
    pub event_name: String,
    /// Merged into the created events' `event_data`.
    #[schema(value_type = Object)]
    pub payload: Json<Value>,
    pub scope: Scope,
    pub trigger_type: TriggerType,
    pub cron_expression: Option<String>,
    #[schema(example = "Europe/Paris")]
    pub timezone: String,
    pub trigger_at: Option<DateTime<Utc>>,
    pub schedule_type: Option<StateScheduleType>,
    #[schema(value_type = Option<Object>)]
    pub schedule_config: Option<Json<Value>>,
    pub participant_filter: Option<String>,
    pub guard_condition: Option<String>,
    #[schema(value_type = Vec<Object>)]
    pub filter_hints: Json<Value>,
    pub participant_id: Option<Uuid>,
    pub status: AutomationStatus,
    pub source: Source,
    /// When it fires next (for participant_state: when its subscriptions are next refreshed).
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    /// Why the last fire did not happen (a fan-out still running, say); cleared by the next that does.
    pub last_error: Option<String>,
    /// one_time: why it could not fire.
    pub error_message: Option<String>,
    /// one_time: when it fired.
    pub processed_at: Option<DateTime<Utc>>,
    /// participant_state: when its filter was last applied to every participant.
    pub last_evaluated_at: Option<DateTime<Utc>>,
    pub execution_status: ExecutionStatus,
    pub execution_started_at: Option<DateTime<Utc>>,
    pub execution_completed_at: Option<DateTime<Utc>>,
    pub execution_error: Option<String>,
    pub participants_processed: i32,
    pub participants_total: i32,
    /// The fire time a fan-out's events are keyed by, and the last participant it reached.
    #[serde(skip)]
    pub execution_fire_at: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub execution_cursor: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// E107's `trigger`.
#[derive(Debug, Clone, utoipa::ToSchema)]
pub struct TriggerSpec {
    #[schema(rename = "type")]
    pub kind: TriggerType,
    /// cron: five fields (or six, with seconds); no `CRON_TZ=`/`TZ=` prefix.
    pub cron_expression: Option<String>,
    /// IANA name; UTC unless given.
    pub timezone: Option<String>,
    /// one_time: when it fires.
    pub trigger_at: Option<DateTime<Utc>>,
    /// participant_state only.
    pub schedule_type: Option<StateScheduleType>,
    /// participant_state: ATTRIBUTE_DATE `{attribute, time?: "HH:MM"}`, INTERVAL `{interval}` (Go duration),
    /// CRON `{cron_expression}`, THRESHOLD `{counter, threshold, check_every?}`.
    #[schema(value_type = Option<Object>)]
    pub schedule_config: Option<Map<String, Value>>,
}

/// E107's body.
#[derive(Debug, Clone, utoipa::ToSchema)]
#[schema(example = json!({"name": "Birthday bonus", "event_name": "birthday", "scope": "participants",
    "trigger": {"type": "participant_state", "schedule_type": "ATTRIBUTE_DATE",
                "schedule_config": {"attribute": "birthday"}, "timezone": "Europe/Paris"}}))]
pub struct NewAutomation {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(min_length = 1, max_length = 255)]
    pub event_name: String,
    pub scope: Scope,
    pub trigger: TriggerSpec,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
    /// CEL over `participant`: which participants it is for (participants scope).
    pub participant_filter: Option<String>,
    /// CEL over `participant`, `event` (the payload) and `now`, at fire time: false skips the participant.
    pub guard_condition: Option<String>,
    /// Kept and returned; the filter runs in batches and needs no hints.
    #[schema(value_type = Option<Vec<Object>>)]
    pub filter_hints: Option<Vec<Value>>,
    /// program scope with a one_time trigger: the participant the event is about.
    pub participant_id: Option<Uuid>,
}

/// E110's body: what is given changes. Trigger type and scope never do.
#[derive(Debug, utoipa::ToSchema)]
pub struct AutomationPatch {
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    #[schema(value_type = Option<String>, min_length = 1, max_length = 255)]
    pub event_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub payload: Option<Map<String, Value>>,
    /// active or paused; archiving is DELETE.
    #[schema(value_type = Option<AutomationStatus>)]
    pub status: Option<AutomationStatus>,
    #[schema(value_type = Option<String>)]
    pub cron_expression: Option<String>,
    #[schema(value_type = Option<String>)]
    pub timezone: Option<String>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub trigger_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<Object>)]
    pub schedule_config: Option<Map<String, Value>>,
    #[schema(value_type = Option<String>)]
    pub participant_filter: Patch<String>,
    #[schema(value_type = Option<String>)]
    pub guard_condition: Patch<String>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub filter_hints: Option<Vec<Value>>,
}

#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AutomationFilter {
    /// Part of the name, any case.
    pub search: Option<String>,
    #[param(inline)]
    pub trigger_type: Option<TriggerType>,
    #[param(inline)]
    pub scope: Option<Scope>,
    #[param(inline)]
    pub status: Option<AutomationStatus>,
    #[param(inline)]
    pub source: Option<Source>,
    #[param(value_type = Option<String>)]
    pub cursor: Option<Cursor>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: i64,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Subscription {
    pub id: Uuid,
    pub automation_id: Uuid,
    pub participant_id: Uuid,
    pub status: SubscriptionStatus,
    pub next_trigger_at: Option<DateTime<Utc>>,
    pub last_triggered_at: Option<DateTime<Utc>>,
    pub trigger_count: i32,
    pub retry_count: i32,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionFilter {
    #[param(inline)]
    pub status: Option<SubscriptionStatus>,
    #[param(value_type = Option<String>)]
    pub cursor: Option<Cursor>,
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: i64,
}

/// When an automation fires, as checked from what was written.
#[derive(Debug, Clone)]
pub enum Timing {
    Cron(CronSchedule),
    Once(DateTime<Utc>),
    Immediate,
    PerParticipant(StateSchedule),
}

impl Timing {
    /// The checked trigger, or every field at fault.
    fn check(
        kind: TriggerType,
        cron_expression: Option<&str>,
        timezone: &str,
        trigger_at: Option<DateTime<Utc>>,
        schedule: Option<(StateScheduleType, &Map<String, Value>)>,
    ) -> std::result::Result<Timing, Vec<FieldError>> {
        let bad = |field: &str, expected: &str, message: String| {
            vec![FieldError::invalid(
                format!("trigger.{field}"),
                expected,
                None,
                message,
            )]
        };
        let tz = schedule::timezone(timezone).map_err(|m| bad("timezone", "IANA timezone", m))?;
        match kind {
            TriggerType::Cron => {
                let expression = cron_expression
                    .ok_or_else(|| vec![FieldError::required("trigger.cron_expression")])?;
                CronSchedule::parse(expression, tz)
                    .map(Timing::Cron)
                    .map_err(|m| bad("cron_expression", "cron expression", m))
            }
            TriggerType::OneTime => trigger_at
                .map(Timing::Once)
                .ok_or_else(|| vec![FieldError::required("trigger.trigger_at")]),
            TriggerType::Immediate => Ok(Timing::Immediate),
            TriggerType::ParticipantState => {
                let (kind, config) =
                    schedule.ok_or_else(|| vec![FieldError::required("trigger.schedule_type")])?;
                StateSchedule::parse(kind, config, tz)
                    .map(Timing::PerParticipant)
                    .map_err(|(field, message)| {
                        bad(
                            &format!("schedule_config.{field}"),
                            schedule::CONFIG_FIELDS,
                            message,
                        )
                    })
            }
        }
    }

    /// The first fire at or after `now` for a new or resumed automation.
    fn first_run(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Timing::Cron(cron) => cron.next_after(now),
            Timing::Once(at) => Some(*at),
            // Subscriptions are made by a first pass over the participants, at once.
            Timing::Immediate | Timing::PerParticipant(_) => Some(now),
        }
    }
}

impl Automation {
    /// Whether a fan-out is pending or running.
    pub fn fanning_out(&self) -> bool {
        matches!(
            self.execution_status,
            ExecutionStatus::Pending | ExecutionStatus::Executing
        )
    }

    /// The stored trigger, checked again. It was checked when written; a failure here means the timezone
    /// database or cron reading changed under it.
    pub fn timing(&self) -> std::result::Result<Timing, String> {
        let config = self.schedule_config.as_ref().and_then(|c| c.0.as_object());
        let empty = Map::new();
        Timing::check(
            self.trigger_type,
            self.cron_expression.as_deref(),
            &self.timezone,
            self.trigger_at,
            self.schedule_type.map(|t| (t, config.unwrap_or(&empty))),
        )
        .map_err(|errors| {
            errors
                .into_iter()
                .map(|e| e.message)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// Which trigger types a scope may have.
fn valid_combination(kind: TriggerType, scope: Scope) -> bool {
    match kind {
        TriggerType::Cron | TriggerType::OneTime => true,
        TriggerType::Immediate | TriggerType::ParticipantState => scope == Scope::Participants,
    }
}

fn invalid(field: &str, expected: &str, message: impl Into<String>) -> FieldError {
    FieldError::invalid(field, expected, None, message)
}

/// CEL that must compile as a condition.
fn check_condition(errors: &mut Vec<FieldError>, field: &str, source: Option<&str>) {
    if let Some(Err(message)) = source.map(crate::rules::cel::compile_condition) {
        errors.push(invalid(field, "CEL condition", message));
    }
}

fn payload_of(payload: Option<Map<String, Value>>) -> Value {
    Value::Object(payload.unwrap_or_default())
}

/// E107.
pub async fn create(
    pool: &PgPool,
    clock: &Clock,
    actor: &Actor,
    program_id: Uuid,
    new: NewAutomation,
) -> Result<Automation> {
    crate::programs::get(pool, actor, program_id).await?;
    let mut errors = Vec::new();
    let kind = new.trigger.kind;
    if !valid_combination(kind, new.scope) {
        errors.push(invalid(
            "scope",
            "program for cron and one_time; participants for any trigger",
            format!("a {kind} trigger cannot have scope {}", new.scope),
        ));
    }
    if new.scope == Scope::Program {
        for (field, given) in [
            ("participant_filter", new.participant_filter.is_some()),
            ("guard_condition", new.guard_condition.is_some()),
        ] {
            if given {
                errors.push(invalid(
                    field,
                    "absent",
                    format!("{field} is for scope participants"),
                ));
            }
        }
    }
    if new.participant_id.is_some() && (new.scope, kind) != (Scope::Program, TriggerType::OneTime) {
        errors.push(invalid(
            "participant_id",
            "absent",
            "participant_id is for scope program with a one_time trigger",
        ));
    }
    let trigger = &new.trigger;
    let stray = [
        (
            "cron_expression",
            trigger.cron_expression.is_some(),
            TriggerType::Cron,
        ),
        (
            "trigger_at",
            trigger.trigger_at.is_some(),
            TriggerType::OneTime,
        ),
        (
            "schedule_type",
            trigger.schedule_type.is_some(),
            TriggerType::ParticipantState,
        ),
        (
            "schedule_config",
            trigger.schedule_config.is_some(),
            TriggerType::ParticipantState,
        ),
    ];
    for (field, given, only) in stray {
        if given && kind != only {
            errors.push(invalid(
                &format!("trigger.{field}"),
                "absent",
                format!("trigger.{field} is for {only} triggers"),
            ));
        }
    }
    let now = clock.now();
    if let (TriggerType::OneTime, Some(at)) = (kind, trigger.trigger_at)
        && at <= now
    {
        errors.push(invalid(
            "trigger.trigger_at",
            "a time in the future",
            "trigger_at must be in the future",
        ));
    }
    check_condition(
        &mut errors,
        "participant_filter",
        new.participant_filter.as_deref(),
    );
    check_condition(
        &mut errors,
        "guard_condition",
        new.guard_condition.as_deref(),
    );
    let timezone = trigger.timezone.clone().unwrap_or_else(|| "UTC".into());
    let empty = Map::new();
    let timing = Timing::check(
        kind,
        trigger.cron_expression.as_deref(),
        &timezone,
        trigger.trigger_at,
        trigger
            .schedule_type
            .map(|t| (t, trigger.schedule_config.as_ref().unwrap_or(&empty))),
    );
    let timing = match timing {
        Ok(timing) => Some(timing),
        Err(more) => {
            errors.extend(more);
            None
        }
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    if let Some(participant) = new.participant_id {
        crate::participants::require(pool, actor, participant).await?;
    }
    let mut tx = pool.begin().await?;
    let row = repo::NewRow {
        id: Uuid::now_v7(),
        organization_id: actor.organization_id,
        program_id,
        name: new.name,
        description: new.description,
        event_name: new.event_name,
        payload: payload_of(new.payload),
        scope: new.scope,
        trigger_type: kind,
        cron_expression: trigger.cron_expression.clone(),
        timezone,
        trigger_at: trigger.trigger_at,
        schedule_type: trigger.schedule_type,
        schedule_config: trigger.schedule_config.clone().map(Value::Object),
        participant_filter: new.participant_filter,
        guard_condition: new.guard_condition,
        filter_hints: Value::Array(new.filter_hints.unwrap_or_default()),
        participant_id: new.participant_id,
        source: Source::Api,
        source_event_id: None,
        next_run_at: timing.and_then(|t| t.first_run(now)),
        now,
    };
    let automation = repo::insert(&mut tx, &row).await.map_err(name_taken)?;
    tx.commit().await?;
    Ok(automation)
}

fn name_taken(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::Database(db) if db.constraint() == Some("automations_name_unique") => {
            Error::Conflict {
                code: "conflict",
                message: "an automation of this program already has that name".into(),
            }
        }
        _ => Error::Database(err),
    }
}

/// What a SCHEDULE_EVENT or BROADCAST action asks for, written in its event's transaction.
#[derive(Debug, Clone)]
pub struct FromRule {
    pub organization_id: Uuid,
    pub program_id: Uuid,
    pub event_id: Uuid,
    pub event_name: String,
    pub payload: Map<String, Value>,
    pub kind: RuleSchedule,
}

#[derive(Debug, Clone, Copy)]
pub enum RuleSchedule {
    /// SCHEDULE_EVENT: one event about `participant` at `at`.
    Later {
        participant: Option<Uuid>,
        at: DateTime<Utc>,
    },
    /// BROADCAST: one event for each participant of the program, at `at`.
    Broadcast { at: DateTime<Utc> },
}

/// Writes the automation a rule action asks for, in the event's transaction; returns its id.
pub async fn create_from_rule(conn: &mut PgConnection, from: FromRule) -> sqlx::Result<Uuid> {
    let (scope, trigger_type, participant_id, trigger_at, next_run_at, verb) = match from.kind {
        RuleSchedule::Later { participant, at } => (
            Scope::Program,
            TriggerType::OneTime,
            participant,
            Some(at),
            at,
            "Scheduled",
        ),
        RuleSchedule::Broadcast { at } => (
            Scope::Participants,
            TriggerType::Immediate,
            None,
            None,
            at,
            "Broadcast",
        ),
    };
    let id = Uuid::now_v7();
    let row = repo::NewRow {
        id,
        organization_id: from.organization_id,
        program_id: from.program_id,
        // Unique, as names are: a rule may schedule the same event twice.
        name: format!(
            "{verb} {} by event {} ({id})",
            from.event_name, from.event_id
        ),
        description: None,
        event_name: from.event_name,
        payload: Value::Object(from.payload),
        scope,
        trigger_type,
        cron_expression: None,
        timezone: "UTC".into(),
        trigger_at,
        schedule_type: None,
        schedule_config: None,
        participant_filter: None,
        guard_condition: None,
        filter_hints: Value::Array(Vec::new()),
        participant_id,
        source: Source::RuleAction,
        source_event_id: Some(from.event_id),
        next_run_at: Some(next_run_at),
        now: Utc::now(),
    };
    Ok(repo::insert(conn, &row).await?.id)
}

/// E108: newest first.
pub async fn list(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    filter: AutomationFilter,
) -> Result<Page<Automation>> {
    crate::programs::get(pool, actor, program_id).await?;
    let rows = repo::list(pool, actor.organization_id, program_id, &filter).await?;
    Ok(Page::from_rows(rows, filter.limit, |a| {
        Cursor::at(a.created_at, a.id)
    }))
}

/// E109: archived automations too.
pub async fn get(pool: &PgPool, actor: &Actor, program_id: Uuid, id: Uuid) -> Result<Automation> {
    repo::find(pool, actor.organization_id, program_id, id)
        .await?
        .ok_or(Error::NotFound("automation"))
}

/// The automation, locked, unless it is archived (409 `automation_archived`).
async fn changeable(
    conn: &mut PgConnection,
    actor: &Actor,
    program_id: Uuid,
    id: Uuid,
) -> Result<Automation> {
    let automation = repo::lock(conn, actor.organization_id, program_id, id)
        .await?
        .ok_or(Error::NotFound("automation"))?;
    if automation.status == AutomationStatus::Archived {
        return Err(Error::Conflict {
            code: "automation_archived",
            message: format!("automation {id} is archived"),
        });
    }
    Ok(automation)
}

/// E110. A pause stops future fires, not a fan-out already running; resuming a cron automation schedules its
/// next fire from now (fires missed while paused are not made up).
pub async fn update(
    pool: &PgPool,
    clock: &Clock,
    actor: &Actor,
    program_id: Uuid,
    id: Uuid,
    patch: AutomationPatch,
) -> Result<Automation> {
    let mut tx = pool.begin().await?;
    let mut a = changeable(&mut tx, actor, program_id, id).await?;
    let mut errors = Vec::new();
    let only = |errors: &mut Vec<FieldError>, field: &str, given: bool, kind: TriggerType| {
        if given && a.trigger_type != kind {
            errors.push(invalid(
                field,
                "absent",
                format!("{field} is for {kind} triggers"),
            ));
        }
    };
    only(
        &mut errors,
        "cron_expression",
        patch.cron_expression.is_some(),
        TriggerType::Cron,
    );
    only(
        &mut errors,
        "trigger_at",
        patch.trigger_at.is_some(),
        TriggerType::OneTime,
    );
    only(
        &mut errors,
        "schedule_config",
        patch.schedule_config.is_some(),
        TriggerType::ParticipantState,
    );
    if a.scope == Scope::Program
        && (!patch.participant_filter.is_absent() || !patch.guard_condition.is_absent())
    {
        errors.push(invalid(
            "participant_filter",
            "absent",
            "participant_filter and guard_condition are for scope participants",
        ));
    }
    let now = clock.now();
    if let Some(at) = patch.trigger_at {
        if at <= now {
            errors.push(invalid(
                "trigger_at",
                "a time in the future",
                "trigger_at must be in the future",
            ));
        }
        if a.processed_at.is_some() {
            errors.push(invalid(
                "trigger_at",
                "absent",
                "this automation has already fired",
            ));
        }
    }
    let filter = match &patch.participant_filter {
        Patch::Set(source) => Some(source.as_str()),
        _ => None,
    };
    check_condition(&mut errors, "participant_filter", filter);
    let guard = match &patch.guard_condition {
        Patch::Set(source) => Some(source.as_str()),
        _ => None,
    };
    check_condition(&mut errors, "guard_condition", guard);
    let schedule_changed = patch.cron_expression.is_some()
        || patch.timezone.is_some()
        || patch.trigger_at.is_some()
        || patch.schedule_config.is_some();
    let resumed =
        a.status == AutomationStatus::Paused && patch.status == Some(AutomationStatus::Active);
    let filter_changed = !patch.participant_filter.is_absent();
    if let Some(name) = patch.name {
        a.name = name;
    }
    patch.description.apply(&mut a.description);
    if let Some(event_name) = patch.event_name {
        a.event_name = event_name;
    }
    if let Some(payload) = patch.payload {
        a.payload = Json(Value::Object(payload));
    }
    if let Some(status) = patch.status {
        a.status = status;
    }
    if let Some(expression) = patch.cron_expression {
        a.cron_expression = Some(expression);
    }
    if let Some(timezone) = patch.timezone {
        a.timezone = timezone;
    }
    if let Some(at) = patch.trigger_at {
        a.trigger_at = Some(at);
    }
    if let Some(config) = patch.schedule_config {
        a.schedule_config = Some(Json(Value::Object(config)));
    }
    patch.participant_filter.apply(&mut a.participant_filter);
    patch.guard_condition.apply(&mut a.guard_condition);
    if let Some(hints) = patch.filter_hints {
        a.filter_hints = Json(Value::Array(hints));
    }
    let timing = match a.timing() {
        Ok(timing) => Some(timing),
        Err(message) => {
            errors.push(invalid("trigger", "a valid trigger", message));
            None
        }
    };
    if !errors.is_empty() {
        return Err(Error::Invalid(errors));
    }
    if let (Some(Timing::Cron(cron)), true) = (&timing, schedule_changed || resumed) {
        a.next_run_at = cron.next_after(now);
    }
    if let (Some(Timing::Once(at)), true) = (&timing, patch.trigger_at.is_some()) {
        a.next_run_at = Some(*at);
    }
    repo::update(&mut tx, &a, now).await.map_err(name_taken)?;
    // Subscriptions follow a new schedule or filter at once: those made under the old schedule go (completed
    // ones stay, having fired for good), and a refresh pass starts over from the first member.
    if let (Some(Timing::PerParticipant(_)), true) = (&timing, schedule_changed || filter_changed) {
        if schedule_changed {
            repo::drop_subscriptions(&mut tx, id).await?;
        }
        repo::start_fan_out(&mut tx, id, now).await?;
    }
    tx.commit().await?;
    get(pool, actor, program_id, id).await
}

/// E111: archived for good; a fan-out running stops where it is.
pub async fn archive(
    pool: &PgPool,
    clock: &Clock,
    actor: &Actor,
    program_id: Uuid,
    id: Uuid,
) -> Result<Automation> {
    let mut tx = pool.begin().await?;
    changeable(&mut tx, actor, program_id, id).await?;
    repo::archive(&mut tx, id, clock.now()).await?;
    tx.commit().await?;
    get(pool, actor, program_id, id).await
}

/// E112: an active automation fires now. A participants fan-out must be idle (or finished); a program-scoped
/// one must be cron (its `next_run_at` becomes now). one_time program automations fire only at
/// `trigger_at`, participant_state ones are refreshed with E114.
pub async fn trigger(
    pool: &PgPool,
    clock: &Clock,
    actor: &Actor,
    program_id: Uuid,
    id: Uuid,
) -> Result<Automation> {
    let mut tx = pool.begin().await?;
    let a = changeable(&mut tx, actor, program_id, id).await?;
    let running = a.fanning_out();
    let allowed = a.status == AutomationStatus::Active
        && match (a.trigger_type, a.scope) {
            (TriggerType::Cron, Scope::Program) => true,
            (TriggerType::ParticipantState, _) | (_, Scope::Program) => false,
            (_, Scope::Participants) => !running,
        };
    if !allowed {
        return Err(Error::invalid(FieldError::invalid(
            "automation_id",
            "an active automation: cron with program scope, or participants scope with no fan-out running",
            Some(format!(
                "{} {} {} ({})",
                a.status, a.trigger_type, a.scope, a.execution_status
            )),
            "Automation cannot be triggered (must be active and idle or cron+program)",
        )));
    }
    let now = clock.now();
    match a.scope {
        Scope::Program => repo::set_next_run(&mut tx, id, now).await?,
        Scope::Participants => repo::start_fan_out(&mut tx, id, now).await?,
    }
    tx.commit().await?;
    get(pool, actor, program_id, id).await
}

/// E113: a fan-out pending or running stops: `failed`; what it created stays. Nothing running: 409.
pub async fn cancel(
    pool: &PgPool,
    clock: &Clock,
    actor: &Actor,
    program_id: Uuid,
    id: Uuid,
) -> Result<Automation> {
    let mut tx = pool.begin().await?;
    let a = changeable(&mut tx, actor, program_id, id).await?;
    if !a.fanning_out() {
        return Err(Error::Conflict {
            code: "no_execution",
            message: format!("automation {id} has no fan-out pending or running"),
        });
    }
    repo::finish_fan_out(&mut tx, id, clock.now(), Some("cancelled")).await?;
    tx.commit().await?;
    get(pool, actor, program_id, id).await
}

/// E114: the participant_state automation looks at who matches its filter again, soon (202).
pub async fn refresh(
    pool: &PgPool,
    clock: &Clock,
    actor: &Actor,
    program_id: Uuid,
    id: Uuid,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let a = changeable(&mut tx, actor, program_id, id).await?;
    if a.trigger_type != TriggerType::ParticipantState || a.status != AutomationStatus::Active {
        return Err(Error::invalid(FieldError::invalid(
            "automation_id",
            "an active participant_state automation",
            Some(format!("{} {}", a.status, a.trigger_type)),
            "only active participant_state automations have subscriptions to refresh",
        )));
    }
    repo::set_next_run(&mut tx, id, clock.now()).await?;
    tx.commit().await?;
    Ok(())
}

/// E115: newest first; other trigger types have none.
pub async fn subscriptions(
    pool: &PgPool,
    actor: &Actor,
    program_id: Uuid,
    id: Uuid,
    filter: SubscriptionFilter,
) -> Result<Page<Subscription>> {
    get(pool, actor, program_id, id).await?;
    let rows = repo::subscriptions(pool, actor.organization_id, id, &filter).await?;
    Ok(Page::from_rows(rows, filter.limit, |s| {
        Cursor::at(s.created_at, s.id)
    }))
}

// What the scheduler asks of the store, kept behind this module's repository.

/// Up to `limit` active automations due by `now`, locked (skipping those another process holds).
pub async fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Automation>> {
    repo::claim_due(conn, now, limit).await
}

/// Records a fire: the next one, and whether a fan-out starts now.
pub async fn fired(conn: &mut PgConnection, due: &[Due]) -> sqlx::Result<()> {
    repo::fired(conn, due).await
}

/// One fan-out to advance, locked, whose organization's queue has room for more: a fan-out waits while
/// `room` events of its organization are already queued, so live events are never far behind it.
pub async fn claim_fan_out(conn: &mut PgConnection, room: i64) -> sqlx::Result<Option<Automation>> {
    repo::claim_fan_out(conn, room).await
}

/// Ends a fan-out that cannot go on, with why.
pub async fn finish(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
    error: Option<&str>,
) -> sqlx::Result<()> {
    repo::finish_fan_out(conn, id, now, error).await
}

/// Records a fan-out's progress after a page.
pub async fn advanced(conn: &mut PgConnection, fan_out: &FanOut) -> sqlx::Result<()> {
    repo::advanced(conn, fan_out).await
}

/// Makes subscriptions for `(participant, next_trigger_at, status, error)` and removes the others among
/// `seen`: a refresh pass's page.
pub async fn subscribe(
    conn: &mut PgConnection,
    automation: &Automation,
    seen: &[Uuid],
    matching: &[SubscriptionUpdate],
    recompute: bool,
) -> sqlx::Result<()> {
    repo::subscribe(conn, automation, seen, matching, recompute).await
}

/// The automations of these ids.
pub async fn find_many(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<Automation>> {
    repo::find_many(conn, ids).await
}

/// Up to `limit` due subscriptions of active automations, locked.
pub async fn claim_subscriptions(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<SubscriptionDue>> {
    repo::claim_subscriptions(conn, now, limit).await
}

/// Records what became of due subscriptions.
pub async fn triggered(
    conn: &mut PgConnection,
    updates: &[SubscriptionUpdate],
) -> sqlx::Result<()> {
    repo::triggered(conn, updates).await
}
