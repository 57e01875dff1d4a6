//! Rules (E89–E92).

use super::AppState;
use super::error::{Conflict, NotFound, Rejected};
use super::extract::{Auth, JsonBody, OneAsset, PathId, Valid, ValidQuery};
use crate::backtest::{self, Report};
use crate::error::Result;
use crate::events::EventType;
use crate::ledger::Bucket;
use crate::money::PositiveAmount;
use crate::pagination::{Cursor, Page, PageParams};
use crate::rules::budgets::{BudgetSpec, BudgetView, Schedule};
use crate::rules::{
    self, Action, ActionType, AttributeAction, BroadcastAction, Candidate, CounterAction,
    CreditAction, DebitAction, ForfeitAction, HistoryEntry, HistoryFilter, HoldAction,
    ModuleLimits, ModulePatch, ModuleRef, NewRule, Rule, RuleFilter, RulePatch, RuleSort,
    RuleStatus, SampleLevel, SampleState, ScheduleAction, Simulation, TagAction, Target,
    TargetType, TierAction, Validity, VoidHoldAction,
};
use crate::validation::{Fields, Patch, Request, SORT_DIRS, Validator};
use crate::wasm::Limits;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(validate))
        .routes(routes!(backtest))
        .routes(routes!(get_one, update))
        .routes(routes!(history))
        .routes(routes!(simulate))
        .routes(routes!(reset_budget))
}

crate::api_enum!(NewRuleStatus = NEW_RULE_STATUSES ["ACTIVE", "SUSPENDED"]);
crate::api_enum!(ScheduleType = SCHEDULE_TYPES ["CRON", "INTERVAL"]);

/// A budget as a rule's request names it.
#[derive(ToSchema)]
struct BudgetInput {
    asset_id: Uuid,
    /// Positive: the most the rule may issue of the asset per period.
    #[schema(value_type = PositiveAmount)]
    limit: Decimal,
    /// Absent: one budget for the rule's lifetime.
    #[schema(value_type = Option<ScheduleType>)]
    schedule_type: Option<&'static str>,
    /// CRON budgets: when the period rolls over, e.g. `0 0 1 * *`.
    #[schema(min_length = 1, max_length = 255)]
    cron_expression: Option<String>,
    /// INTERVAL budgets: a duration such as `720h`.
    #[schema(min_length = 1, max_length = 64)]
    interval: Option<String>,
}

/// Which budget field is wrong: its name, what it should be, and why.
type Wrong = (&'static str, &'static str, String);

impl BudgetInput {
    /// The schedule the three schedule fields describe.
    fn schedule(&self) -> Result<Schedule, Wrong> {
        const CRON: &str = "cron expression such as 0 0 1 * *";
        match self.schedule_type {
            Some("CRON") => match self.cron_expression.as_deref().map(Schedule::cron) {
                Some(Ok(schedule)) => Ok(schedule),
                Some(Err(message)) => Err(("cron_expression", CRON, message)),
                None => Err((
                    "cron_expression",
                    CRON,
                    "CRON budgets need a cron_expression".into(),
                )),
            },
            Some(_) => {
                let text = self.interval.as_deref().unwrap_or_default();
                match crate::duration::parse(text) {
                    Some(length) => Ok(Schedule::Interval {
                        text: text.to_owned(),
                        millis: length.num_milliseconds().max(1),
                    }),
                    None => Err((
                        "interval",
                        "Go duration such as 720h",
                        "INTERVAL budgets need an interval such as \"720h\", at most 876000h"
                            .into(),
                    )),
                }
            }
            None if self.cron_expression.is_some() || self.interval.is_some() => Err((
                "schedule_type",
                "CRON|INTERVAL",
                "schedule_type is required with cron_expression or interval".into(),
            )),
            None => Ok(Schedule::Lifetime),
        }
    }

    fn spec(self) -> Option<BudgetSpec> {
        Some(BudgetSpec {
            schedule: self.schedule().ok()?,
            asset_id: self.asset_id,
            limit: self.limit,
        })
    }
}

fn specs(budgets: Vec<BudgetInput>) -> Vec<BudgetSpec> {
    budgets.into_iter().filter_map(BudgetInput::spec).collect()
}

/// A CEL rule has `condition` and `actions`; a wasm rule has `module_id` (and optionally `config`,
/// `limits`, and a `condition` that pre-filters).
#[derive(ToSchema)]
#[schema(as = NewRule, example = json!({"program_id": "550e8400-e29b-41d4-a716-446655440000", "name": "Purchase points",
    "condition": "event.type == 'purchase'",
    "actions": [{"type": "CREDIT", "asset_id": "550e8400-e29b-41d4-a716-446655440001",
                 "amount": "event.amount * 10"}]}))]
pub(super) struct CreateRule {
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
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    order: Option<i32>,
    stop_after_match: Option<bool>,
    active_from: Option<DateTime<Utc>>,
    active_to: Option<DateTime<Utc>>,
    /// Default ACTIVE.
    #[schema(value_type = Option<NewRuleStatus>)]
    status: Option<RuleStatus>,
    budgets: Option<Vec<BudgetInput>>,
    /// An uploaded module (POST /v1/modules): makes this a wasm rule.
    module_id: Option<Uuid>,
    /// Any JSON object, handed to the module.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    limits: Option<ModuleLimits>,
}

impl CreateRule {
    /// Reads the body; a wasm rule's limits may not exceed the operator's `ceiling`.
    fn read(f: &Fields<'_>, ceiling: Limits) -> Self {
        let module = parse_module(f, ceiling);
        let is_module_rule = module.id.is_some();
        if let Some(problem) = module.conflict(is_module_rule, f.contains("actions")) {
            f.push(problem);
        }
        let rule = CreateRule {
            program_id: f.req_uuid("program_id"),
            name: f.req_str("name", 1, 255),
            description: f.opt_str("description", 0, 1000),
            condition: match is_module_rule {
                true => f.opt_str("condition", 1, rules::cel::MAX_LENGTH),
                false => Some(f.req_str("condition", 1, rules::cel::MAX_LENGTH)),
            },
            actions: match is_module_rule {
                true => None,
                false => parse_actions(f, true),
            },
            order: read_order(f),
            stop_after_match: f.opt_bool("stop_after_match"),
            active_from: f.opt_time("active_from"),
            active_to: f.opt_time("active_to"),
            status: f
                .opt_enum("status", NEW_RULE_STATUSES)
                .and_then(RuleStatus::parse),
            budgets: parse_budgets(f),
            module_id: module.id,
            config: module.config,
            limits: module.limits,
        };
        if let (Some(from), Some(to)) = (rule.active_from, rule.active_to)
            && from > to
        {
            f.reject(
                "active_to",
                "timestamp after active_from",
                "active_to must not be before active_from",
            );
        }
        rule
    }

    /// The rule a body describes, every bad field named; a wasm rule's limits may not exceed `ceiling`.
    pub(super) fn from_body(body: &Value, ceiling: Limits) -> Result<NewRule> {
        let v = Validator::new();
        let rule = CreateRule::read(&v.body(body)?, ceiling);
        v.finish()?;
        Ok(rule.into_new())
    }

    fn into_new(self) -> NewRule {
        NewRule {
            program_id: self.program_id,
            name: self.name,
            description: self.description,
            // A wasm rule decides inside its module; its condition only pre-filters and defaults to always.
            condition: self.condition.unwrap_or_else(|| "true".into()),
            actions: self.actions.unwrap_or_default(),
            order: self.order,
            stop_after_match: self.stop_after_match.unwrap_or(false),
            active_from: self.active_from,
            active_to: self.active_to,
            status: self.status.unwrap_or(RuleStatus::Active),
            budgets: specs(self.budgets.unwrap_or_default()),
            module: self.module_id.map(|id| ModuleRef {
                id,
                config: self.config.unwrap_or_else(|| serde_json::json!({})),
                limits: self.limits.unwrap_or_default(),
            }),
        }
    }
}

fn read_order(f: &Fields<'_>) -> Option<i32> {
    f.opt_int("order", 1, i64::from(i32::MAX))
        .and_then(|o| i32::try_from(o).ok())
}

/// Only the fields given change; at least one is required.
#[derive(ToSchema)]
#[schema(as = RulePatch)]
pub(super) struct UpdateRule {
    #[schema(min_length = 1, max_length = 255)]
    name: Option<String>,
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Patch<String>,
    #[schema(min_length = 1)]
    condition: Option<String>,
    #[schema(min_items = 1)]
    actions: Option<Vec<Action>>,
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 2147483647)]
    order: Option<i32>,
    stop_after_match: Option<bool>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    active_from: Patch<DateTime<Utc>>,
    #[schema(value_type = Option<DateTime<Utc>>)]
    active_to: Patch<DateTime<Utc>>,
    status: Option<RuleStatus>,
    budgets: Option<Vec<BudgetInput>>,
    module_id: Option<Uuid>,
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
    limits: Option<ModuleLimits>,
}

impl UpdateRule {
    /// Reads the body; a wasm rule's limits may not exceed the operator's `ceiling`.
    fn read(f: &Fields<'_>, ceiling: Limits) -> Self {
        f.require_any();
        let module = parse_module(f, ceiling);
        UpdateRule {
            name: f.opt_str("name", 1, 255),
            description: f.patch("description", |f, k| f.opt_str(k, 0, 1000)),
            condition: f.opt_str("condition", 1, rules::cel::MAX_LENGTH),
            actions: parse_actions(f, false),
            order: read_order(f),
            stop_after_match: f.opt_bool("stop_after_match"),
            active_from: f.patch("active_from", |f, k| f.opt_time(k)),
            active_to: f.patch("active_to", |f, k| f.opt_time(k)),
            status: f.opt_word("status"),
            budgets: parse_budgets(f),
            module_id: module.id,
            config: module.config,
            limits: module.limits,
        }
    }

    /// The change a body asks for, every bad field named; a wasm rule's limits may not exceed `ceiling`.
    pub(super) fn from_body(body: &Value, ceiling: Limits) -> Result<RulePatch> {
        let v = Validator::new();
        let patch = UpdateRule::read(&v.body(body)?, ceiling);
        v.finish()?;
        Ok(patch.into_patch())
    }

    fn into_patch(self) -> RulePatch {
        RulePatch {
            name: self.name,
            description: self.description,
            condition: self.condition,
            actions: self.actions,
            order: self.order,
            stop_after_match: self.stop_after_match,
            active_from: self.active_from,
            active_to: self.active_to,
            status: self.status,
            budgets: self.budgets.map(specs),
            module: ModulePatch {
                id: self.module_id,
                config: self.config,
                limits: self.limits,
            },
        }
    }
}

#[derive(ToSchema)]
#[schema(example = json!({"event": {"type": "purchase", "amount": 49.99}}))]
pub(super) struct Simulate {
    /// A sample `event_data`.
    #[schema(value_type = Object)]
    pub(super) event: Map<String, Value>,
    pub(super) participant_state: Option<SampleState>,
}

impl Request for Simulate {
    fn read(f: &Fields<'_>) -> Self {
        let event = f.req_object("event").cloned().unwrap_or_default();
        if let Some(problem) = crate::events::oversized(&event) {
            f.reject(
                "event",
                "object within the size bounds",
                problem.replace("event_data", "event"),
            );
        }
        let participant_state = f.opt_object("participant_state").map(|object| {
            let p = f.nested(object, f.path("participant_state"));
            let tiers = p.opt_object("tiers").map(|tiers| {
                let t = p.nested(tiers, p.path("tiers"));
                tiers
                    .keys()
                    .filter_map(|key| {
                        let level = t.nested(t.req_object(key)?, t.path(key));
                        let sample = SampleLevel {
                            level: level.req_str("level", 1, 100),
                            rank: i32::try_from(level.req_int("rank", 0, i64::from(i32::MAX)))
                                .unwrap_or_default(),
                            benefits: level.opt_object("benefits").cloned().unwrap_or_default(),
                        };
                        Some((key.clone(), sample))
                    })
                    .collect()
            });
            SampleState {
                tags: p.opt_string_list("tags", 255).unwrap_or_default(),
                counters: p.opt_object("counters").cloned().unwrap_or_default(),
                attributes: p.opt_object("attributes").cloned().unwrap_or_default(),
                tiers: tiers.unwrap_or_default(),
            }
        });
        Simulate {
            event,
            participant_state,
        }
    }
}

/// A rule to try on a window of processed events: a new rule as `POST /rules` takes it, or a saved rule's id,
/// with changes as `PATCH /rules/{id}` takes them or as it is.
#[derive(ToSchema)]
#[schema(as = BacktestRequest, example = json!({"rule_id": "550e8400-e29b-41d4-a716-446655440002",
    "changes": {"actions": [{"type": "CREDIT", "asset_id": "550e8400-e29b-41d4-a716-446655440001",
                             "amount": "event.amount * 20"}]},
    "from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}))]
pub(super) struct Backtest {
    /// A new rule; give this or `rule_id`.
    rule: Option<CreateRule>,
    rule_id: Option<Uuid>,
    /// With `rule_id`: the changes to try; without, the rule as it is.
    changes: Option<UpdateRule>,
    /// Events received from this time (inclusive)...
    from: DateTime<Utc>,
    /// ...to this one (exclusive).
    to: DateTime<Utc>,
    /// Only events of this type.
    event_type: Option<EventType>,
    /// The most events to run it on in this call (default 10,000).
    #[schema(minimum = 1, maximum = 1000000)]
    limit: Option<i64>,
    /// A previous answer's `next_cursor`: go on after the events it evaluated.
    #[schema(value_type = Option<String>)]
    after: Option<Cursor>,
    /// The most changed events to list (default 20).
    #[schema(minimum = 0, maximum = 100)]
    changes_limit: Option<i64>,
    /// A previous answer's `changes.next_cursor`.
    #[schema(value_type = Option<String>)]
    changes_after: Option<Cursor>,
}

impl Backtest {
    fn read(f: &Fields<'_>, ceiling: Limits) -> Self {
        let nested = |key: &str| {
            f.opt_object(key)
                .map(|object| f.nested(object, f.path(key)))
        };
        let backtest = Backtest {
            rule: nested("rule").map(|rule| CreateRule::read(&rule, ceiling)),
            rule_id: f.opt_uuid("rule_id"),
            changes: nested("changes").map(|changes| UpdateRule::read(&changes, ceiling)),
            from: f.req_time("from").unwrap_or_default(),
            to: f.req_time("to").unwrap_or_default(),
            event_type: f.opt_word("event_type"),
            limit: f.opt_int("limit", 1, backtest::MAX_EVENTS),
            after: f.opt_cursor(
                "after",
                "cursor from a backtest's next_cursor",
                "after is not a backtest cursor",
            ),
            changes_limit: f.opt_int("changes_limit", 0, backtest::MAX_CHANGES as i64),
            changes_after: f.opt_cursor(
                "changes_after",
                "cursor from a backtest's changes.next_cursor",
                "changes_after is not a backtest cursor",
            ),
        };
        if backtest.from >= backtest.to && f.raw("from").is_some() && f.raw("to").is_some() {
            f.reject("to", "timestamp after from", "to must be after from");
        }
        match (&backtest.rule, backtest.rule_id, &backtest.changes) {
            (Some(_), Some(_), _) => f.reject(
                "rule_id",
                "absent with rule",
                "give rule or rule_id, not both",
            ),
            (Some(_), None, Some(_)) => {
                f.reject("changes", "absent with rule", "changes go with rule_id")
            }
            (None, None, _) => f.reject("rule", "object", "rule or rule_id is required"),
            _ => {}
        }
        backtest
    }

    /// The backtest a body asks for, every bad field named; a wasm rule's limits may not exceed `ceiling`.
    pub(super) fn from_body(body: &Value, ceiling: Limits) -> Result<backtest::Request> {
        let v = Validator::new();
        let backtest = Backtest::read(&v.body(body)?, ceiling);
        v.finish()?;
        let candidate = match (backtest.rule, backtest.rule_id) {
            (Some(rule), _) => Candidate::New(rule.into_new()),
            (None, id) => Candidate::Saved {
                id: id.unwrap_or_default(),
                patch: backtest.changes.map(UpdateRule::into_patch),
            },
        };
        Ok(backtest::Request {
            candidate,
            window: backtest::Window {
                from: backtest.from,
                to: backtest.to,
                event_type: backtest.event_type,
                limit: backtest.limit.unwrap_or(backtest::DEFAULT_EVENTS),
                after: backtest.after,
                changes_limit: backtest
                    .changes_limit
                    .map_or(20, |n| usize::try_from(n).unwrap_or(20)),
                changes_after: backtest.changes_after,
            },
        })
    }
}

#[derive(ToSchema)]
struct Condition {
    #[schema(min_length = 1)]
    condition: String,
}

impl Request for Condition {
    fn read(f: &Fields<'_>) -> Self {
        Condition {
            condition: f.req_str("condition", 1, usize::MAX),
        }
    }
}

impl Request for RuleFilter {
    fn read(q: &Fields<'_>) -> Self {
        RuleFilter {
            program_id: q.opt_uuid("program_id"),
            include_archived: q.opt_bool("include_archived").unwrap_or(false),
            status: q.opt_word("status"),
            search: q.opt_str("search", 1, 255),
            sort_by: q.opt_word("sort_by").unwrap_or(RuleSort::Order),
            ascending: q.opt_enum("sort_dir", SORT_DIRS) != Some("desc"),
            page: PageParams::read(q),
        }
    }
}

impl Request for HistoryFilter {
    fn read(q: &Fields<'_>) -> Self {
        let (cursor, limit) = q.page_within(20, 100);
        let (from, to) = q.range("from", "to");
        HistoryFilter {
            change_type: q.opt_enum("change_type", rules::CHANGE_TYPES),
            from,
            to,
            limit,
            cursor,
        }
    }
}

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
        let Some(kind) = ActionType::parse(a.req_enum("type", ActionType::NAMES)) else {
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
        let target = parse_target(&a, map, kind);
        let hold = || HoldAction {
            asset_id: a.req_uuid("asset_id"),
            amount: optional_amount(),
            description: description(),
            reference_id: reference_id(),
            target: target.clone(),
        };
        let tag = || TagAction {
            tag: a.req_str("tag", 1, 255),
            description: description(),
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
                    description: description(),
                    target,
                })
            }
            ActionType::SetAttribute => Action::SetAttribute(AttributeAction {
                key: a.req_str("key", 1, 255),
                value: expression("value"),
                description: description(),
                target,
            }),
            ActionType::SetTier => Action::SetTier(TierAction {
                tier: a.req_str("tier", 1, 100),
                level: a.req_str("level", 1, 100),
                expires_at: when(&a, "expires_at"),
                description: description(),
                target,
            }),
            ActionType::ScheduleEvent => {
                if target.as_ref().and_then(|t| t.kind) == Some(TargetType::Group) {
                    a.reject(
                        "target",
                        "a participant",
                        "SCHEDULE_EVENT schedules an event about a participant, not a group",
                    );
                }
                let delay = a.req_str("delay", 1, 64);
                if !delay.is_empty() && crate::duration::parse(&delay).is_none() {
                    a.reject(
                        "delay",
                        "Go duration such as 24h",
                        "delay must be a duration such as \"24h\", at most 876000h",
                    );
                }
                Action::ScheduleEvent(ScheduleAction {
                    event_name: a.req_str("event_name", 1, 255),
                    delay,
                    payload: action_payload(&a),
                    description: description(),
                    target,
                })
            }
            ActionType::Broadcast => {
                if target.is_some() {
                    a.reject(
                        "target",
                        "absent",
                        "BROADCAST reaches every participant of the program and takes no target",
                    );
                }
                Action::Broadcast(BroadcastAction {
                    event_name: a.req_str("event_name", 1, 255),
                    payload: action_payload(&a),
                    description: description(),
                })
            }
        };
        actions.push(action);
    }
    Some(actions)
}

/// The payload of an event an action creates: an object no larger than an event's data may be.
fn action_payload(a: &Fields<'_>) -> Option<serde_json::Map<String, serde_json::Value>> {
    let payload = a.opt_object("payload")?.clone();
    if let Some(message) = crate::events::oversized(&payload) {
        a.reject("payload", "object", message);
    }
    Some(payload)
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

/// `{type?: PARTICIPANT, id | participant_id | external_id}`: one way of naming the participant;
/// `{type: GROUP, id?}`: a group, or the participant's; `{type: PROGRAM}`: the event's program.
fn parse_target(
    a: &Fields<'_>,
    map: &serde_json::Map<String, serde_json::Value>,
    kind: ActionType,
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
    let named = named.iter().filter(|n| **n).count();
    if target.kind == Some(TargetType::Group) {
        let named = [
            ("participant_id", target.participant_id.is_some()),
            ("external_id", target.external_id.is_some()),
        ];
        for (field, _) in named.iter().filter(|(_, given)| *given) {
            t.reject(
                field,
                "absent",
                "a GROUP target names its group by id, or nothing for the participant's group",
            );
        }
    } else if target.kind == Some(TargetType::Program) {
        if !matches!(kind, ActionType::Tag | ActionType::Untag) {
            t.reject(
                "type",
                "PARTICIPANT",
                format!("only TAG and UNTAG can target the program, not {kind}"),
            );
        }
        if named > 0 {
            t.reject(
                "id",
                "absent",
                "a PROGRAM target is the event's program and names nothing else",
            );
        }
    } else if named != 1 && map.contains_key("target") {
        t.reject(
            "id",
            "exactly one of id, participant_id, external_id",
            "a target names its participant in exactly one way",
        );
    }
    Some(target)
}

/// `budgets`: `[{asset_id, limit, schedule_type?: CRON|INTERVAL, cron_expression?, interval?}]`.
fn parse_budgets(f: &Fields<'_>) -> Option<Vec<BudgetInput>> {
    let items = f.opt_array("budgets")?;
    let mut budgets = Vec::with_capacity(items.len());
    for (b, _) in f.objects("budgets", items) {
        let budget = BudgetInput {
            asset_id: b.req_uuid("asset_id"),
            limit: b.req_positive_decimal("limit").unwrap_or_default(),
            cron_expression: b.opt_str("cron_expression", 1, 255),
            interval: b.opt_str("interval", 1, 64),
            schedule_type: b.opt_enum("schedule_type", SCHEDULE_TYPES),
        };
        if let Err((field, expected, message)) = budget.schedule() {
            b.reject(field, expected, message);
        }
        budgets.push(budget);
    }
    Some(budgets)
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

#[utoipa::path(post, path = "/rules", tag = "rules", operation_id = "create_rule", request_body = CreateRule,
    responses((status = 201, body = Rule), Rejected, NotFound, Conflict))]
async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let rule = CreateRule::from_body(&body, s.runtime.ceiling().limits)?;
    Ok((
        StatusCode::CREATED,
        Json(rules::create(&s.pool, &actor, rule).await?),
    ))
}

#[utoipa::path(get, path = "/rules", tag = "rules", operation_id = "list_rules", params(PageParams, RuleFilter),
    responses((status = 200, body = Page<Rule>), Rejected))]
async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ValidQuery(filter): ValidQuery<RuleFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(rules::list(&s.pool, &actor, filter).await?))
}

#[utoipa::path(get, path = "/rules/{id}", tag = "rules", operation_id = "get_rule", params(PathId),
    responses((status = 200, body = Rule), Rejected, NotFound))]
async fn get_one(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
) -> Result<impl IntoResponse> {
    Ok(Json(rules::get(&s.pool, &actor, id).await?))
}

#[utoipa::path(patch, path = "/rules/{id}", tag = "rules", operation_id = "update_rule", params(PathId), request_body = UpdateRule,
    responses((status = 200, body = Rule), Rejected, NotFound, Conflict))]
async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let patch = UpdateRule::from_body(&body, s.runtime.ceiling().limits)?;
    Ok(Json(rules::update(&s.pool, &actor, id, patch).await?))
}

#[utoipa::path(get, path = "/rules/{id}/history", tag = "rules", operation_id = "rule_history", params(PathId, HistoryFilter),
    responses((status = 200, body = Page<HistoryEntry>), Rejected, NotFound))]
async fn history(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(filter): ValidQuery<HistoryFilter>,
) -> Result<impl IntoResponse> {
    Ok(Json(rules::history(&s.pool, &actor, id, filter).await?))
}

#[utoipa::path(post, path = "/rules/{id}/simulate", tag = "rules", params(PathId), request_body = Simulate,
    responses((status = 200, description = "What the rule would do; nothing is written.", body = Simulation), Rejected, NotFound))]
async fn simulate(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    Valid(body): Valid<Simulate>,
) -> Result<impl IntoResponse> {
    let event = Value::Object(body.event);
    let state = body.participant_state.unwrap_or_default();
    let simulation = rules::simulate(&s.pool, &s.runtime, &actor, id, event, state);
    Ok(Json(simulation.await?))
}

#[utoipa::path(post, path = "/rules/backtest", tag = "rules", request_body = Backtest,
    responses((status = 200, description = "What the rule would have done; nothing is written.", body = Report),
              Rejected, NotFound, Conflict))]
async fn backtest(
    State(s): State<AppState>,
    Auth(actor): Auth,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse> {
    let request = Backtest::from_body(&body, s.runtime.ceiling().limits)?;
    let report = backtest::backtest(&s.pool, &s.runtime, &s.backtests, &actor, request);
    Ok(Json(report.await?))
}

#[utoipa::path(post, path = "/rules/validate", tag = "rules", request_body = Condition,
    responses((status = 200, body = Validity), Rejected))]
async fn validate(_auth: Auth, Valid(body): Valid<Condition>) -> Result<impl IntoResponse> {
    Ok(Json(rules::validate(&body.condition)))
}

#[utoipa::path(post, path = "/rules/{id}/reset-budget", tag = "rules", params(PathId, OneAsset),
    responses((status = 200, description = "The budget, restarted.", body = BudgetView), Rejected, NotFound))]
async fn reset_budget(
    State(s): State<AppState>,
    Auth(actor): Auth,
    PathId(id): PathId,
    ValidQuery(q): ValidQuery<OneAsset>,
) -> Result<impl IntoResponse> {
    Ok(Json(
        rules::reset_budget(&s.pool, &actor, id, q.asset_id).await?,
    ))
}
