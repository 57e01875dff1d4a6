//! Rules (E89–E92).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, JsonBody, PathId, QueryParams};
use crate::error::Result;
use crate::ledger::Bucket;
use crate::pagination::{Page, PageParams};
use crate::rules::budgets::{BudgetSpec, Schedule};
use crate::rules::{
    self, Action, ActionType, AttributeAction, CounterAction, CreditAction, DebitAction,
    ForfeitAction, HistoryEntry, HoldAction, ModuleLimits, ModulePatch, ModuleRef, NewRule,
    RuleFilter, RulePatch, RuleStatus, TagAction, Target, TargetType, VoidHoldAction,
};
use crate::validation::{Fields, Validator};
use crate::wasm::Limits;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(validate))
        .routes(routes!(get_one, update))
        .routes(routes!(history))
        .routes(routes!(simulate))
        .routes(routes!(reset_budget))
}

crate::api_enum!(NewRuleStatus = NEW_RULE_STATUSES ["ACTIVE", "SUSPENDED"]);
crate::api_enum!(ScheduleType = SCHEDULE_TYPES ["CRON", "INTERVAL"]);

/// Request bodies, query strings and answers as the document shows them; the handlers read requests with
/// `Validator` and the services build the answers.
#[allow(dead_code)]
mod doc {
    use crate::rules::{Action, ModuleLimits, RuleStatus};
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    #[derive(utoipa::ToSchema)]
    pub struct BudgetInput {
        asset_id: Uuid,
        /// Positive: the most the rule may issue of the asset per period.
        limit: crate::money::PositiveAmount,
        /// Absent: one budget for the rule's lifetime.
        schedule_type: Option<super::ScheduleType>,
        /// CRON budgets: when the period rolls over, e.g. `0 0 1 * *`.
        #[schema(min_length = 1, max_length = 255)]
        cron_expression: Option<String>,
        /// INTERVAL budgets: a duration such as `720h`.
        #[schema(min_length = 1, max_length = 64)]
        interval: Option<String>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Budget {
        asset_id: Uuid,
        limit: String,
        /// Issued in the current period.
        consumed: String,
        schedule_type: Option<String>,
        cron_expression: Option<String>,
        interval: Option<String>,
        next_reset_at: Option<DateTime<Utc>>,
    }

    /// A CEL rule has `condition` and `actions`; a wasm rule has `module_id` (and optionally `config`,
    /// `limits`, and a `condition` that pre-filters).
    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000", "name": "Purchase points",
        "condition": "event.type == 'purchase'",
        "actions": [{"type": "CREDIT", "asset_id": "550e8400-e29b-41d4-a716-446655440001",
                     "amount": "event.amount * 10"}]}))]
    pub struct NewRule {
        program_id: Uuid,
        #[schema(min_length = 1, max_length = 255)]
        name: String,
        #[schema(max_length = 1000)]
        description: Option<String>,
        /// CEL; required unless `module_id` is given.
        #[schema(min_length = 1)]
        condition: Option<String>,
        /// Required unless `module_id` is given.
        #[schema(min_items = 1)]
        actions: Option<Vec<Action>>,
        /// Evaluation order within the program; unique among active rules.
        #[schema(minimum = 1, maximum = 2147483647)]
        order: Option<i64>,
        stop_after_match: Option<bool>,
        active_from: Option<DateTime<Utc>>,
        active_to: Option<DateTime<Utc>>,
        /// Default ACTIVE.
        status: Option<super::NewRuleStatus>,
        budgets: Option<Vec<BudgetInput>>,
        /// An uploaded module (POST /v1/modules): makes this a wasm rule.
        module_id: Option<Uuid>,
        /// Any JSON object, handed to the module.
        #[schema(value_type = Option<Object>)]
        config: Option<serde_json::Value>,
        limits: Option<ModuleLimits>,
    }

    /// Only the fields given change; at least one is required.
    #[derive(utoipa::ToSchema)]
    pub struct RulePatch {
        #[schema(min_length = 1, max_length = 255)]
        name: Option<String>,
        #[schema(max_length = 1000)]
        description: Option<String>,
        #[schema(min_length = 1)]
        condition: Option<String>,
        #[schema(min_items = 1)]
        actions: Option<Vec<Action>>,
        #[schema(minimum = 1, maximum = 2147483647)]
        order: Option<i64>,
        stop_after_match: Option<bool>,
        active_from: Option<DateTime<Utc>>,
        active_to: Option<DateTime<Utc>>,
        status: Option<RuleStatus>,
        budgets: Option<Vec<BudgetInput>>,
        module_id: Option<Uuid>,
        #[schema(value_type = Option<Object>)]
        config: Option<serde_json::Value>,
        limits: Option<ModuleLimits>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Rule {
        id: Uuid,
        program_id: Uuid,
        name: String,
        description: Option<String>,
        condition: String,
        /// Empty for wasm rules.
        actions: Vec<Action>,
        order: i32,
        stop_after_match: bool,
        active_from: Option<DateTime<Utc>>,
        active_to: Option<DateTime<Utc>>,
        budgets: Vec<Budget>,
        module_id: Option<Uuid>,
        #[schema(value_type = Option<Object>)]
        config: Option<serde_json::Value>,
        /// The limits in force for a wasm rule.
        limits: Option<ModuleLimits>,
        status: RuleStatus,
        created_at: DateTime<Utc>,
        updated_at: DateTime<Utc>,
        deleted_at: Option<DateTime<Utc>>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct SampleState {
        tags: Option<Vec<String>>,
        #[schema(value_type = Option<Object>)]
        counters: Option<serde_json::Value>,
        #[schema(value_type = Option<Object>)]
        attributes: Option<serde_json::Value>,
    }

    #[derive(utoipa::ToSchema)]
    #[schema(example = json!({"event": {"type": "purchase", "amount": 49.99}}))]
    pub struct Simulate {
        /// A sample `event_data`.
        #[schema(value_type = Object)]
        event: serde_json::Value,
        participant_state: Option<SampleState>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct RuleSummary {
        id: Uuid,
        name: String,
        condition: String,
        order: i32,
        stop_after_match: bool,
    }

    #[derive(utoipa::ToSchema)]
    pub struct SimulatedEvaluation {
        matched: bool,
        /// `evaluated`, `condition_failed` or `module_failed`.
        status: String,
        reason: Option<String>,
        /// Wasm rules that failed: why they were stopped.
        error_code: Option<String>,
        /// What each action would do.
        #[schema(value_type = Option<Vec<Object>>)]
        results: Option<Vec<serde_json::Value>>,
        /// Wasm rules only.
        fuel_consumed: Option<u64>,
        logs: Option<String>,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Simulation {
        rule: RuleSummary,
        evaluation: SimulatedEvaluation,
    }

    #[derive(utoipa::ToSchema)]
    pub struct Condition {
        #[schema(min_length = 1)]
        condition: String,
    }

    /// An invalid condition is an answer (`valid: false`), not an error.
    #[derive(utoipa::ToSchema)]
    pub struct Validity {
        valid: bool,
        message: String,
        note: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct RuleQuery {
        program_id: Option<Uuid>,
        include_archived: Option<bool>,
        #[param(inline)]
        status: Option<RuleStatus>,
        #[param(min_length = 1, max_length = 255)]
        search: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct HistoryQuery {
        #[param(inline)]
        change_type: Option<crate::rules::ChangeType>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        /// Rule history pages hold 20 by default, at most 100.
        #[param(minimum = 1, maximum = 100)]
        limit: Option<i64>,
        #[param(min_length = 1, max_length = 1000)]
        cursor: Option<String>,
    }

    #[derive(utoipa::IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct BudgetQuery {
        asset_id: Uuid,
    }
}

/// Action types of the spec's catalogue this server does not run yet: refused as such, not as unknown.
const NOT_YET: &[&str] = &["SET_TIER", "SCHEDULE_EVENT", "BROADCAST"];

fn parse_actions(f: &Fields<'_>, required: bool) -> Option<Vec<Action>> {
    let Some(items) = f.opt_array("actions") else {
        if required && f.raw("actions").is_none() {
            f.reject(
                "actions",
                "non-empty array of actions",
                "actions is required",
            );
        }
        return None;
    };
    if items.is_empty() {
        f.reject(
            "actions",
            "non-empty array of actions",
            "a rule needs at least one action",
        );
        return None;
    }
    let mut actions = Vec::with_capacity(items.len());
    for (a, map) in f.objects("actions", items) {
        let written = a.raw("type").and_then(|t| t.as_str());
        let kind = match written.filter(|t| NOT_YET.contains(t)) {
            Some(unsupported) => {
                a.reject(
                    "type",
                    &ActionType::NAMES.join("|"),
                    format!("action type {unsupported} is not supported yet"),
                );
                None
            }
            None => ActionType::parse(a.req_enum("type", ActionType::NAMES)),
        };
        let Some(kind) = kind else {
            continue;
        };
        let allowed = kind.fields();
        for key in map.keys().filter(|k| {
            k.as_str() != "type" && k.as_str() != "target" && !allowed.contains(&k.as_str())
        }) {
            a.reject(
                key,
                "absent",
                format!("{key} is not supported on {kind} actions"),
            );
        }
        let expression = |name: &str| a.req_str(name, 1, rules::cel::MAX_LENGTH);
        // Operations on balances take everything selected when they name no amount.
        let optional_amount = || a.opt_str("amount", 1, rules::cel::MAX_LENGTH);
        let description = || a.opt_str("description", 1, 500);
        let reference_id = || a.opt_str("reference_id", 1, rules::cel::MAX_LENGTH);
        let bucket = || {
            a.opt_enum("bucket", rules::CREDIT_BUCKETS)
                .and_then(Bucket::parse)
        };
        let target = parse_target(&a, map);
        let hold = || HoldAction {
            asset_id: a.req_uuid("asset_id"),
            amount: optional_amount(),
            description: description(),
            reference_id: reference_id(),
            target: target.clone(),
        };
        let tag = || TagAction {
            tag: a.req_str("tag", 1, 255),
            target: target.clone(),
        };
        let action = match kind {
            ActionType::Credit => Action::Credit(CreditAction {
                asset_id: a.req_uuid("asset_id"),
                amount: expression("amount"),
                description: description(),
                bucket: bucket(),
                expires_at: when(&a, "expires_at"),
                matures_at: when(&a, "matures_at"),
                reference_id: reference_id(),
                target,
            }),
            ActionType::Debit => Action::Debit(DebitAction {
                asset_id: a.req_uuid("asset_id"),
                amount: expression("amount"),
                description: description(),
                allow_negative: a.opt_bool("allow_negative").unwrap_or(false),
                target,
            }),
            ActionType::Hold => Action::Hold(hold()),
            ActionType::Release => Action::Release(hold()),
            ActionType::Forfeit => Action::Forfeit(ForfeitAction {
                asset_id: a.req_uuid("asset_id"),
                amount: optional_amount(),
                description: description(),
                bucket: bucket().unwrap_or_else(|| {
                    if a.raw("bucket").is_none() {
                        a.reject(
                            "bucket",
                            "AVAILABLE|HELD",
                            "FORFEIT actions need the bucket to forfeit from",
                        );
                    }
                    Bucket::Available
                }),
                target,
            }),
            ActionType::VoidHold => Action::VoidHold(VoidHoldAction {
                asset_id: a.req_uuid("asset_id"),
                description: description(),
                reference_id: reference_id().unwrap_or_else(|| {
                    if a.raw("reference_id").is_none() {
                        a.reject(
                            "reference_id",
                            "reference of a provisional accrual",
                            "VOID_HOLD actions need a reference_id",
                        );
                    }
                    String::new()
                }),
                target,
            }),
            ActionType::Tag => Action::Tag(tag()),
            ActionType::Untag => Action::Untag(tag()),
            ActionType::Counter => {
                let reset_after = a.opt_str("reset_after", 1, 64);
                if let Some(window) = reset_after.as_deref()
                    && crate::duration::parse(window).is_none()
                {
                    a.reject(
                        "reset_after",
                        "Go duration such as 24h",
                        "reset_after must be a duration such as \"720h\", at most 876000h",
                    );
                }
                Action::Counter(CounterAction {
                    key: a.req_str("key", 1, 255),
                    value: a.opt_str("value", 1, rules::cel::MAX_LENGTH),
                    reset_after,
                    target,
                })
            }
            ActionType::SetAttribute => Action::SetAttribute(AttributeAction {
                key: a.req_str("key", 1, 255),
                value: expression("value"),
                target,
            }),
        };
        actions.push(action);
    }
    Some(actions)
}

/// A lot date: a Go duration from the event's time, or a timestamp.
fn when(a: &Fields<'_>, name: &str) -> Option<String> {
    let text = a.opt_str(name, 1, 64)?;
    if rules::When::parse(&text).is_none() {
        a.reject(
            name,
            "Go duration such as 8760h, or RFC 3339 timestamp",
            format!("{name} must be a duration such as \"8760h\" (at most 876000h) or a timestamp"),
        );
    }
    Some(text)
}

/// `{type?: PARTICIPANT, id | participant_id | external_id}`; one way of naming the participant.
fn parse_target(
    a: &Fields<'_>,
    map: &serde_json::Map<String, serde_json::Value>,
) -> Option<Target> {
    let object = a.opt_object("target")?;
    let t = a.nested(object, a.path("target"));
    for key in object
        .keys()
        .filter(|k| !["type", "id", "participant_id", "external_id"].contains(&k.as_str()))
    {
        t.reject(key, "absent", format!("{key} is not a target field"));
    }
    let target = Target {
        kind: t
            .opt_enum("type", TargetType::NAMES)
            .and_then(TargetType::parse),
        id: t.opt_uuid("id"),
        participant_id: t.opt_str("participant_id", 1, rules::cel::MAX_LENGTH),
        external_id: t.opt_str("external_id", 1, rules::cel::MAX_LENGTH),
    };
    let named = [
        target.id.is_some(),
        target.participant_id.is_some(),
        target.external_id.is_some(),
    ];
    if named.iter().filter(|n| **n).count() != 1 && map.contains_key("target") {
        t.reject(
            "id",
            "exactly one of id, participant_id, external_id",
            "a target names its participant in exactly one way",
        );
    }
    Some(target)
}

/// `budgets`: `[{asset_id, limit, schedule_type?: CRON|INTERVAL, cron_expression?, interval?}]`.
fn parse_budgets(f: &Fields<'_>) -> Option<Vec<BudgetSpec>> {
    let items = f.opt_array("budgets")?;
    let mut specs = Vec::with_capacity(items.len());
    for (b, _) in f.objects("budgets", items) {
        let asset_id = b.req_uuid("asset_id");
        let limit = b.req_positive_decimal("limit");
        let cron = b.opt_str("cron_expression", 1, 255);
        let interval = b.opt_str("interval", 1, 64);
        let schedule = match b.opt_enum("schedule_type", SCHEDULE_TYPES) {
            Some("CRON") => match cron.as_deref().map(Schedule::cron) {
                Some(Ok(schedule)) => Some(schedule),
                Some(Err(message)) => {
                    b.reject(
                        "cron_expression",
                        "cron expression such as 0 0 1 * *",
                        message,
                    );
                    None
                }
                None => {
                    b.reject(
                        "cron_expression",
                        "cron expression such as 0 0 1 * *",
                        "CRON budgets need a cron_expression",
                    );
                    None
                }
            },
            Some(_) => match interval
                .as_deref()
                .map(|text| (text, crate::duration::parse(text)))
            {
                Some((text, Some(length))) => Some(Schedule::Interval {
                    text: text.to_owned(),
                    millis: length.num_milliseconds().max(1),
                }),
                _ => {
                    b.reject(
                        "interval",
                        "Go duration such as 720h",
                        "INTERVAL budgets need an interval such as \"720h\", at most 876000h",
                    );
                    None
                }
            },
            None if cron.is_some() || interval.is_some() => {
                b.reject(
                    "schedule_type",
                    "CRON|INTERVAL",
                    "schedule_type is required with cron_expression or interval",
                );
                None
            }
            None => Some(Schedule::Lifetime),
        };
        if let (Some(limit), Some(schedule)) = (limit, schedule) {
            specs.push(BudgetSpec {
                asset_id,
                limit,
                schedule,
            });
        }
    }
    Some(specs)
}

/// A wasm rule's `module_id`, `config` (any JSON object, handed to the module) and `limits`, each bounded
/// by the operator's ceiling.
fn parse_module(f: &Fields<'_>, ceiling: Limits) -> ModulePatch {
    let limits = f.opt_object("limits").map(|object| {
        let l = f.nested(object, f.path("limits"));
        let int = |key: &str, min: i64, max: u64| {
            l.opt_int(key, min, i64::try_from(max).unwrap_or(i64::MAX))
                .and_then(|n| u64::try_from(n).ok())
        };
        let max = ceiling;
        ModuleLimits {
            fuel: int("fuel", 1, max.fuel),
            memory_bytes: int("memory_bytes", 1 << 16, max.memory_bytes as u64),
            max_actions: int("max_actions", 1, max.max_actions as u64),
        }
    });
    ModulePatch {
        id: f.opt_uuid("module_id"),
        config: f
            .opt_object("config")
            .cloned()
            .map(serde_json::Value::Object),
        limits,
    }
}

#[utoipa::path(post, path = "/rules", tag = "rules", operation_id = "create_rule", request_body = doc::NewRule,
    responses((status = 201, body = doc::Rule), Rejected, NotFound, Conflict))]
async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let module = parse_module(&f, s.runtime.ceiling().limits);
    let is_module_rule = module.id.is_some();
    if let Some(problem) = module.conflict(is_module_rule, f.contains("actions")) {
        v.push(problem);
    }
    let new = NewRule {
        program_id: f.req_uuid("program_id"),
        name: f.req_str("name", 1, 255),
        description: f.opt_str("description", 0, 1000),
        // A wasm rule decides inside its module; its condition only pre-filters and defaults to always.
        condition: match is_module_rule {
            true => f
                .opt_str("condition", 1, rules::cel::MAX_LENGTH)
                .unwrap_or_else(|| "true".into()),
            false => f.req_str("condition", 1, rules::cel::MAX_LENGTH),
        },
        actions: match is_module_rule {
            true => Vec::new(),
            false => parse_actions(&f, true).unwrap_or_default(),
        },
        order: f
            .opt_int("order", 1, i64::from(i32::MAX))
            .and_then(|o| i32::try_from(o).ok()),
        stop_after_match: f.opt_bool("stop_after_match").unwrap_or(false),
        active_from: f.opt_time("active_from"),
        active_to: f.opt_time("active_to"),
        status: f
            .opt_enum("status", NEW_RULE_STATUSES)
            .and_then(RuleStatus::parse)
            .unwrap_or(RuleStatus::Active),
        budgets: parse_budgets(&f).unwrap_or_default(),
        module: module.id.map(|id| ModuleRef {
            id,
            config: module.config.unwrap_or_else(|| serde_json::json!({})),
            limits: module.limits.unwrap_or_default(),
        }),
    };
    if let (Some(from), Some(to)) = (new.active_from, new.active_to)
        && from > to
    {
        f.reject(
            "active_to",
            "timestamp after active_from",
            "active_to must not be before active_from",
        );
    }
    v.finish()?;
    Ok((
        StatusCode::CREATED,
        Json(rules::create(&s.pool, &actor, new).await?),
    ))
}

#[utoipa::path(get, path = "/rules", tag = "rules", operation_id = "list_rules", params(PageParams, doc::RuleQuery),
    responses((status = 200, body = Page<doc::Rule>), Rejected))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    let (cursor, limit) = q.page();
    let filter = RuleFilter {
        program_id: q.opt_uuid("program_id"),
        include_archived: q.opt_bool("include_archived").unwrap_or(false),
        status: q.opt_enum("status", rules::STATUSES),
        search: q.opt_str("search", 1, 255),
        cursor,
        limit,
    };
    v.finish()?;
    Ok(Json(rules::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/rules/{id}", tag = "rules", operation_id = "get_rule", params(PathId),
    responses((status = 200, body = doc::Rule), Rejected, NotFound))]
async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(rules::get(&s.pool, &actor, id).await?))
}

#[utoipa::path(patch, path = "/rules/{id}", tag = "rules", operation_id = "update_rule", params(PathId), request_body = doc::RulePatch,
    responses((status = 200, body = doc::Rule), Rejected, NotFound, Conflict))]
async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    f.require_any();
    let patch = RulePatch {
        name: f.opt_str("name", 1, 255),
        description: f.patch("description", |f, k| f.opt_str(k, 0, 1000)),
        condition: f.opt_str("condition", 1, rules::cel::MAX_LENGTH),
        actions: parse_actions(&f, false),
        order: f
            .opt_int("order", 1, i64::from(i32::MAX))
            .and_then(|o| i32::try_from(o).ok()),
        stop_after_match: f.opt_bool("stop_after_match"),
        active_from: f.patch("active_from", |f, k| f.opt_time(k)),
        active_to: f.patch("active_to", |f, k| f.opt_time(k)),
        status: f
            .opt_enum("status", rules::STATUSES)
            .and_then(RuleStatus::parse),
        budgets: parse_budgets(&f),
        module: parse_module(&f, s.runtime.ceiling().limits),
    };
    v.finish()?;
    Ok(Json(rules::update(&s.pool, &actor, id, patch).await?))
}

#[utoipa::path(get, path = "/rules/{id}/history", tag = "rules", operation_id = "rule_history", params(PathId, doc::HistoryQuery),
    responses((status = 200, body = Page<HistoryEntry>), Rejected, NotFound))]
async fn history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let q = v.query(&q);
    // Rule history pages hold 20 by default, 100 at most.
    let (cursor, limit) = q.page_within(20, 100);
    let filter = rules::HistoryFilter {
        change_type: q.opt_enum("change_type", rules::CHANGE_TYPES),
        changed: q.window(),
        cursor,
        limit,
    };
    v.finish()?;
    Ok(Json(rules::history(&s.pool, &actor, id, filter).await?))
}

#[utoipa::path(post, path = "/rules/{id}/simulate", tag = "rules", params(PathId), request_body = doc::Simulate,
    responses((status = 200, description = "What the rule would do; nothing is written.", body = doc::Simulation), Rejected, NotFound))]
async fn simulate(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let f = v.body(&body)?;
    let event = f.req_object("event").cloned().unwrap_or_default();
    if let Some(problem) = crate::events::oversized(&event) {
        f.reject(
            "event",
            "object within the size bounds",
            problem.replace("event_data", "event"),
        );
    }
    let state = match f.opt_object("participant_state") {
        None => rules::SampleState::default(),
        Some(object) => {
            let p = f.nested(object, f.path("participant_state"));
            rules::SampleState {
                tags: p.opt_string_list("tags", 255).unwrap_or_default(),
                counters: p.opt_object("counters").cloned().unwrap_or_default(),
                attributes: p.opt_object("attributes").cloned().unwrap_or_default(),
            }
        }
    };
    v.finish()?;
    Ok(Json(
        rules::simulate(
            &s.pool,
            &s.runtime,
            &actor,
            id,
            serde_json::Value::Object(event),
            state,
        )
        .await?,
    ))
}

#[utoipa::path(post, path = "/rules/validate", tag = "rules", request_body = doc::Condition,
    responses((status = 200, body = doc::Validity), Rejected))]
async fn validate(_auth: Auth, JsonBody(body): JsonBody) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let condition = v.body(&body)?.req_str("condition", 1, usize::MAX);
    v.finish()?;
    Ok(Json(rules::validate(&condition)))
}

#[utoipa::path(post, path = "/rules/{id}/reset-budget", tag = "rules", params(PathId, doc::BudgetQuery),
    responses((status = 200, description = "The budget, restarted.", body = doc::Budget), Rejected, NotFound))]
async fn reset_budget(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    QueryParams(q): QueryParams,
) -> Result<impl IntoResponse> {
    let v = Validator::new();
    let asset_id = v.query(&q).req_uuid("asset_id");
    v.finish()?;
    Ok(Json(
        rules::reset_budget(&s.pool, &actor, id, asset_id).await?,
    ))
}
