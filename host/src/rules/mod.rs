//! Rules: a CEL condition and actions, evaluated per event in ascending `order`. Every version of a rule is
//! a `rule_history` row; evaluations record the version they ran with.

mod action;
pub mod budgets;
pub mod cel;
mod compiled;
pub mod evaluation;
mod lru;
mod repo;
mod simulate;

use crate::error::{Error, FieldError, OnConstraint, Result};
use crate::money;
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page, PageParams};
use crate::validation::{Patch, SortDir};
use crate::wasm;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub use action::{
    Action, ActionType, AttributeAction, BroadcastAction, CREDIT_BUCKETS, CounterAction,
    CreditAction, DebitAction, ForfeitAction, HoldAction, ScheduleAction, TagAction, Target,
    TargetType, TierAction, VoidHoldAction, When,
};
pub use compiled::{
    Amount, CompiledAction, CompiledModule, CompiledRule, LotFields, ModuleRun, RuleCache, Skipped,
    Step, TargetRef,
};
pub use simulate::{SampleLevel, SampleState, Simulation};

crate::vocabulary!(
    /// Only ACTIVE rules run; an ARCHIVED rule is frozen.
    pub enum RuleStatus {
        Active = "ACTIVE",
        Suspended = "SUSPENDED",
        Archived = "ARCHIVED",
    }
);
pub const STATUSES: &[&str] = RuleStatus::NAMES;

#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct Rule {
    pub id: Uuid,
    pub program_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub condition: String,
    /// Empty for wasm rules.
    #[schema(value_type = Vec<Action>)]
    pub actions: sqlx::types::Json<Vec<Action>>,
    pub order: i32,
    pub stop_after_match: bool,
    pub active_from: Option<DateTime<Utc>>,
    pub active_to: Option<DateTime<Utc>>,
    pub status: RuleStatus,
    #[schema(ignore)]
    pub history_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    // A wasm rule's module, its `config` (passed to the module as JSON) and its `limits`.
    pub module_id: Option<Uuid>,
    #[schema(rename = "config", value_type = Option<Object>)]
    pub module_config: Option<sqlx::types::Json<Value>>,
    /// The limits in force for a wasm rule.
    #[schema(rename = "limits", value_type = Option<ModuleLimits>)]
    pub module_limits: Option<sqlx::types::Json<ModuleLimits>>,
    #[sqlx(skip)]
    #[schema(value_type = Vec<budgets::BudgetView>)]
    pub budgets: Vec<budgets::Budget>,
}

/// What one evaluation of a wasm rule may use; omitted fields take the defaults of `wasm::Limits`.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ModuleLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_actions: Option<u64>,
}

impl ModuleLimits {
    /// The limits in force, as the API shows them.
    fn resolve_json(&self) -> Value {
        let l = self.resolve();
        json!({"fuel": l.fuel, "memory_bytes": l.memory_bytes, "max_actions": l.max_actions})
    }

    pub fn resolve(&self) -> wasm::Limits {
        let d = wasm::Limits::DEFAULT;
        wasm::Limits {
            fuel: self.fuel.unwrap_or(d.fuel),
            memory_bytes: self
                .memory_bytes
                .and_then(|m| usize::try_from(m).ok())
                .unwrap_or(d.memory_bytes),
            max_actions: self
                .max_actions
                .and_then(|m| usize::try_from(m).ok())
                .unwrap_or(d.max_actions),
        }
    }
}

/// A wasm rule's module with its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleRef {
    pub id: Uuid,
    pub config: Value,
    pub limits: ModuleLimits,
}

impl Rule {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "program_id": self.program_id,
            "name": self.name,
            "description": self.description,
            "condition": self.condition,
            "actions": self.actions.0,
            "order": self.order,
            "stop_after_match": self.stop_after_match,
            "active_from": self.active_from,
            "active_to": self.active_to,
            "budgets": self.budgets,
            "module_id": self.module_id,
            "config": self.module_config.as_ref().map(|c| &c.0),
            "limits": self.module_limits.as_ref().map(|l| l.0.resolve_json()),
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted_at": self.deleted_at,
        })
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

pub struct NewRule {
    pub program_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub condition: String,
    pub actions: Vec<Action>,
    pub order: Option<i32>,
    pub stop_after_match: bool,
    pub active_from: Option<DateTime<Utc>>,
    pub active_to: Option<DateTime<Utc>>,
    pub status: RuleStatus,
    pub budgets: Vec<budgets::BudgetSpec>,
    pub module: Option<ModuleRef>,
}

pub struct RulePatch {
    pub name: Option<String>,
    pub description: Patch<String>,
    pub condition: Option<String>,
    pub actions: Option<Vec<Action>>,
    pub order: Option<i32>,
    pub stop_after_match: Option<bool>,
    pub active_from: Patch<DateTime<Utc>>,
    pub active_to: Patch<DateTime<Utc>>,
    pub status: Option<RuleStatus>,
    /// Replaces every budget when present; `[]` removes them.
    pub budgets: Option<Vec<budgets::BudgetSpec>>,
    /// Points the rule at another module (a new version, say) or changes its config or limits.
    pub module: ModulePatch,
}

#[derive(Default)]
pub struct ModulePatch {
    pub id: Option<Uuid>,
    pub config: Option<Value>,
    pub limits: Option<ModuleLimits>,
}

impl ModulePatch {
    /// A rule runs either its module or its actions, and config and limits belong to modules: the field
    /// that breaks this, if any.
    pub fn conflict(&self, is_module_rule: bool, has_actions: bool) -> Option<FieldError> {
        let (field, message) = match (is_module_rule, &self.config, &self.limits) {
            (true, _, _) if has_actions => ("actions", "a wasm rule's module returns its actions"),
            (false, Some(_), _) => ("config", "config applies to wasm rules (module_id)"),
            (false, _, Some(_)) => ("limits", "limits apply to wasm rules (module_id)"),
            _ => return None,
        };
        let expected = if is_module_rule {
            "absent on wasm rules"
        } else {
            "absent on CEL rules"
        };
        Some(FieldError::invalid(field, expected, None, message))
    }
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RuleFilter {
    pub program_id: Option<Uuid>,
    #[param(value_type = Option<bool>)]
    pub include_archived: bool,
    #[param(inline)]
    pub status: Option<RuleStatus>,
    #[param(min_length = 1, max_length = 255)]
    pub search: Option<String>,
    /// Default `order`, the order rules run in.
    #[param(value_type = Option<RuleSort>, inline)]
    pub sort_by: RuleSort,
    /// Default `asc`.
    #[param(rename = "sort_dir", value_type = Option<SortDir>, inline)]
    pub ascending: bool,
    #[param(ignore)]
    pub page: PageParams,
}

crate::vocabulary!(
    /// The orders a rule list can be in.
    pub enum RuleSort {
        Order = "order",
        CreatedAt = "created_at",
        Name = "name",
    }
);

pub async fn create(pool: &PgPool, actor: &Actor, new: NewRule) -> Result<Rule> {
    let mut tx = pool.begin().await?;
    let program = crate::programs::lock_for_update(&mut tx, actor.organization_id, new.program_id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    if program.status == crate::programs::ProgramStatus::Archived {
        return Err(Error::conflict(
            "rules cannot be added to an archived program",
        ));
    }
    check_expressions(&mut tx, actor, new.program_id, &new.condition, &new.actions).await?;
    if let Some(module) = &new.module {
        check_module(&mut tx, actor, module.id).await?;
    }
    let order = match new.order {
        Some(order) => order,
        None => repo::highest_order(&mut tx, new.program_id).await? + 10,
    };
    let budgets = check_budgets(&mut tx, actor, new.program_id, &new.budgets).await?;
    let rule = unsaved(new, order);
    let mut rule = repo::insert(&mut tx, actor.organization_id, &rule)
        .await
        .on_constraint("rules_active_order_unique", || order_taken(order))?;
    budgets::replace(&mut tx, actor.organization_id, rule.id, &budgets).await?;
    rule.budgets = budgets::of_rules(&mut tx, &[rule.id]).await?;
    repo::insert_history(&mut tx, actor, &rule, "created", json!({})).await?;
    tx.commit().await?;
    Ok(rule)
}

/// The rule a create body describes, before it is saved: a new id and version, no budgets.
fn unsaved(new: NewRule, order: i32) -> Rule {
    Rule {
        id: Uuid::now_v7(),
        program_id: new.program_id,
        name: new.name,
        description: new.description,
        condition: new.condition,
        actions: sqlx::types::Json(new.actions),
        order,
        stop_after_match: new.stop_after_match,
        active_from: new.active_from,
        active_to: new.active_to,
        status: new.status,
        history_id: Uuid::now_v7(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        deleted_at: None,
        module_id: new.module.as_ref().map(|m| m.id),
        module_config: new
            .module
            .as_ref()
            .map(|m| sqlx::types::Json(m.config.clone())),
        module_limits: new.module.as_ref().map(|m| sqlx::types::Json(m.limits)),
        budgets: Vec::new(),
    }
}

/// A rule a backtest runs without saving it: a create body, or a saved rule as it is or with a patch applied.
pub enum Candidate {
    New(NewRule),
    Saved { id: Uuid, patch: Option<RulePatch> },
}

/// A candidate checked and compiled: its rule, the saved rule it stands for (none for a new one), and the
/// form it runs in.
pub struct Tried {
    pub rule: Rule,
    pub saved: Option<Uuid>,
    pub compiled: CompiledRule,
}

/// The rule a candidate describes, refused as create and update refuse it, compiled with its module; nothing
/// is written.
pub async fn try_candidate(
    pool: &PgPool,
    runtime: &std::sync::Arc<wasm::Runtime>,
    actor: &Actor,
    candidate: Candidate,
) -> Result<Tried> {
    let (rule, saved) = candidate_rule(pool, actor, candidate).await?;
    let module = match rule.module_id {
        None => None,
        Some(module_id) => {
            let mut conn = pool.acquire().await?;
            prepare_modules(&mut conn, runtime, &[module_id])
                .await?
                .remove(&module_id)
        }
    };
    let compiled = CompiledRule::compile(rule.clone(), module);
    Ok(Tried {
        rule,
        saved,
        compiled,
    })
}

/// The rule a candidate describes, and the id of the saved rule it stands for.
async fn candidate_rule(
    pool: &PgPool,
    actor: &Actor,
    candidate: Candidate,
) -> Result<(Rule, Option<Uuid>)> {
    let mut conn = pool.acquire().await?;
    match candidate {
        Candidate::New(new) => {
            crate::programs::get(pool, actor, new.program_id).await?;
            check_expressions(
                &mut conn,
                actor,
                new.program_id,
                &new.condition,
                &new.actions,
            )
            .await?;
            if let Some(module) = &new.module {
                check_module(&mut conn, actor, module.id).await?;
            }
            let order = new.order.unwrap_or(i32::MAX);
            Ok((unsaved(new, order), None))
        }
        Candidate::Saved { id, patch } => {
            let mut rule = get(pool, actor, id).await?;
            if let Some(patch) = patch {
                check_patched_module(&mut conn, actor, &rule, &patch).await?;
                apply(&mut rule, patch);
                check_expressions(
                    &mut conn,
                    actor,
                    rule.program_id,
                    &rule.condition,
                    &rule.actions,
                )
                .await?;
            }
            Ok((rule, Some(id)))
        }
    }
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Rule> {
    let rule = repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("rule"))?;
    with_budgets(pool, vec![rule])
        .await?
        .into_iter()
        .next()
        .ok_or(Error::NotFound("rule"))
}

pub async fn list(pool: &PgPool, actor: &Actor, filter: RuleFilter) -> Result<Page<Rule>> {
    let (column, sql_type) = match filter.sort_by {
        RuleSort::Order => ("\"order\"", "integer"),
        RuleSort::CreatedAt => ("created_at", "timestamptz"),
        RuleSort::Name => ("name", "text"),
    };
    let order = Order {
        column,
        sql_type,
        descending: !filter.ascending,
    };
    let rows = with_budgets(
        pool,
        repo::list(pool, actor.organization_id, &filter, order).await?,
    )
    .await?;
    let sort_by = filter.sort_by;
    Ok(Page::from_rows(
        rows,
        filter.page.limit,
        |r| match sort_by {
            RuleSort::Order => Cursor::new(r.order, r.id),
            RuleSort::CreatedAt => Cursor::at(r.created_at, r.id),
            RuleSort::Name => Cursor::new(&r.name, r.id),
        },
    ))
}

pub async fn update(pool: &PgPool, actor: &Actor, id: Uuid, patch: RulePatch) -> Result<Rule> {
    let mut tx = pool.begin().await?;
    let mut before = repo::lock(&mut tx, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("rule"))?;
    before.budgets = budgets::of_rules(&mut tx, &[id]).await?;
    if before.status == RuleStatus::Archived {
        return Err(Error::conflict("archived rules cannot be modified"));
    }
    let program =
        crate::programs::lock_for_update(&mut tx, actor.organization_id, before.program_id)
            .await?
            .ok_or(Error::NotFound("program"))?;
    if program.status == crate::programs::ProgramStatus::Archived {
        return Err(Error::conflict(
            "rules of an archived program cannot be modified",
        ));
    }
    check_patched_module(&mut tx, actor, &before, &patch).await?;
    let new_budgets = match &patch.budgets {
        Some(specs) => Some(check_budgets(&mut tx, actor, before.program_id, specs).await?),
        None => None,
    };
    let mut rule = before.clone();
    apply(&mut rule, patch);
    if let Some(specs) = &new_budgets {
        budgets::replace(&mut tx, actor.organization_id, id, specs).await?;
        rule.budgets = budgets::of_rules(&mut tx, &[id]).await?;
    }
    if rule.condition != before.condition || rule.actions != before.actions {
        check_expressions(
            &mut tx,
            actor,
            rule.program_id,
            &rule.condition,
            &rule.actions,
        )
        .await?;
    }
    rule.deleted_at = if rule.status == RuleStatus::Archived {
        Some(Utc::now())
    } else {
        None
    };
    rule.history_id = Uuid::now_v7();
    let change_type = match (before.status, rule.status) {
        (old, RuleStatus::Archived) if old != RuleStatus::Archived => "archived",
        (RuleStatus::Active, RuleStatus::Suspended) => "suspended",
        (RuleStatus::Suspended, RuleStatus::Active) => "activated",
        _ => "updated",
    };
    let changes = diff(&before.to_json(), &rule.to_json());
    let order = rule.order;
    let budgets = std::mem::take(&mut rule.budgets);
    let mut rule = repo::save(&mut tx, &rule)
        .await
        .on_constraint("rules_active_order_unique", || order_taken(order))?;
    rule.budgets = budgets;
    repo::insert_history(&mut tx, actor, &rule, change_type, changes).await?;
    tx.commit().await?;
    Ok(rule)
}

/// A wasm rule may only run a module of its own organization.
async fn check_module(conn: &mut PgConnection, actor: &Actor, id: Uuid) -> Result<()> {
    if crate::modules::exists(conn, actor.organization_id, id).await? {
        return Ok(());
    }
    Err(Error::invalid(FieldError::invalid(
        "module_id",
        "id of an uploaded module",
        Some(id.to_string()),
        "module not found",
    )))
}

/// A patch's module must be one of the organization's, and a rule that runs one (now or after the patch)
/// takes no actions of its own.
async fn check_patched_module(
    conn: &mut PgConnection,
    actor: &Actor,
    before: &Rule,
    patch: &RulePatch,
) -> Result<()> {
    if let Some(id) = patch.module.id {
        check_module(conn, actor, id).await?;
    }
    let is_module_rule = patch.module.id.or(before.module_id).is_some();
    match patch
        .module
        .conflict(is_module_rule, patch.actions.is_some())
    {
        Some(problem) => Err(Error::invalid(problem)),
        None => Ok(()),
    }
}

/// Each budget's asset must be linked to the program and its limit within the asset's scale; one budget
/// per asset. Returns the specs with their asset's scale.
async fn check_budgets(
    conn: &mut PgConnection,
    actor: &Actor,
    program_id: Uuid,
    specs: &[budgets::BudgetSpec],
) -> Result<Vec<(budgets::BudgetSpec, i16)>> {
    let mut errors = Vec::new();
    let mut checked = Vec::with_capacity(specs.len());
    for (i, spec) in specs.iter().enumerate() {
        let field = |name: &str| format!("budgets[{i}].{name}");
        if specs[..i]
            .iter()
            .any(|earlier| earlier.asset_id == spec.asset_id)
        {
            errors.push(FieldError::invalid(
                field("asset_id"),
                "one budget per asset",
                Some(spec.asset_id.to_string()),
                "this asset already has a budget in this rule",
            ));
            continue;
        }
        match crate::assets::find_linked(conn, actor.organization_id, program_id, spec.asset_id)
            .await?
        {
            None => errors.push(FieldError::invalid(
                field("asset_id"),
                "asset linked to the rule's program",
                Some(spec.asset_id.to_string()),
                "asset not found or not linked to this program",
            )),
            Some(asset) if !money::fits_scale(spec.limit, asset.scale) => errors.push(
                FieldError::invalid(
                    field("limit"),
                    format!("at most {} decimal places", asset.scale),
                    Some(spec.limit.to_string()),
                    "limit exceeds the asset's scale",
                )
                .with_reason("invalid_scale"),
            ),
            Some(asset) => checked.push((spec.clone(), asset.scale)),
        }
    }
    if errors.is_empty() {
        Ok(checked)
    } else {
        Err(Error::Invalid(errors))
    }
}

/// E94: refills one budget of the rule and starts its next period.
pub async fn reset_budget(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Uuid,
) -> Result<budgets::BudgetView> {
    get(pool, actor, id).await?;
    let mut tx = pool.begin().await?;
    let budget = budgets::reset(&mut tx, id, asset_id)
        .await?
        .ok_or(Error::NotFound("budget"))?;
    tx.commit().await?;
    Ok(budget.view())
}

/// Fills in the budgets of rules read from the database.
async fn with_budgets(pool: &PgPool, mut rules: Vec<Rule>) -> Result<Vec<Rule>> {
    let ids: Vec<Uuid> = rules.iter().map(|r| r.id).collect();
    let mut conn = pool.acquire().await?;
    let mut all = budgets::of_rules(&mut conn, &ids).await?;
    for rule in &mut rules {
        let (mine, rest) = all.into_iter().partition(|b| b.rule_id == rule.id);
        rule.budgets = mine;
        all = rest;
    }
    Ok(rules)
}

fn apply(rule: &mut Rule, patch: RulePatch) {
    if let Some(id) = patch.module.id {
        rule.module_id = Some(id);
        rule.actions = sqlx::types::Json(Vec::new());
        rule.module_config
            .get_or_insert_with(|| sqlx::types::Json(json!({})));
        rule.module_limits.get_or_insert_with(Default::default);
    }
    if let Some(config) = patch.module.config {
        rule.module_config = Some(sqlx::types::Json(config));
    }
    if let Some(limits) = patch.module.limits {
        rule.module_limits = Some(sqlx::types::Json(limits));
    }
    patch.active_from.apply(&mut rule.active_from);
    patch.active_to.apply(&mut rule.active_to);
    patch.description.apply(&mut rule.description);
    if let Some(name) = patch.name {
        rule.name = name;
    }
    if let Some(condition) = patch.condition {
        rule.condition = condition;
    }
    if let Some(actions) = patch.actions {
        rule.actions = sqlx::types::Json(actions);
    }
    if let Some(order) = patch.order {
        rule.order = order;
    }
    if let Some(stop) = patch.stop_after_match {
        rule.stop_after_match = stop;
    }
    if let Some(status) = patch.status {
        rule.status = status;
    }
}

/// `{field: {old, new}}` for every top-level field that changed.
fn diff(before: &Value, after: &Value) -> Value {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return json!({});
    };
    let changed = after
        .iter()
        .filter(|(k, v)| {
            !matches!(k.as_str(), "updated_at" | "deleted_at") && before.get(*k) != Some(*v)
        })
        .map(|(k, v)| (k.clone(), json!({"old": before.get(k), "new": v})));
    Value::Object(changed.collect())
}

fn order_taken(order: i32) -> Error {
    Error::conflict(format!(
        "order {order} is already used by another active rule in this program"
    ))
}

/// Compiles the condition and every expression of the actions, and checks each money action's asset and
/// literal amount against that asset.
async fn check_expressions(
    conn: &mut PgConnection,
    actor: &Actor,
    program_id: Uuid,
    condition: &str,
    actions: &[Action],
) -> Result<()> {
    let mut errors = Vec::new();
    if let Err(message) = cel::compile_condition(condition) {
        errors.push(FieldError::invalid(
            "condition",
            "CEL expression",
            Some(condition.into()),
            message,
        ));
    }
    for (i, action) in actions.iter().enumerate() {
        let field = |name: &str| format!("actions[{i}].{name}");
        // A literal beyond the amount bound is refused as such, not compiled as an expression.
        let expression = |name: &str, source: &str| {
            let message = match money::parse_amount(source) {
                Err(money::Invalid::TooLarge) => {
                    Some(format!("{name} is {}", money::Invalid::TooLarge))
                }
                _ => cel::compile(source).err(),
            };
            message.map(|message| {
                FieldError::invalid(
                    field(name),
                    "decimal string or CEL expression",
                    Some(source.into()),
                    message,
                )
            })
        };
        if let Some((asset_id, amount)) = action.money() {
            match crate::assets::find_linked(conn, actor.organization_id, program_id, asset_id)
                .await?
            {
                None => errors.push(FieldError::invalid(
                    field("asset_id"),
                    "asset linked to the rule's program",
                    Some(asset_id.to_string()),
                    "asset not found or not linked to this program",
                )),
                Some(asset) if asset.status == crate::assets::AssetStatus::Archived => {
                    errors.push(FieldError::invalid(
                        field("asset_id"),
                        "active asset",
                        None,
                        "the asset is archived",
                    ));
                }
                Some(asset) if !asset.has_lots() && action.needs_lots() => errors.push(FieldError::invalid(
                    field("asset_id"),
                    "LOT asset",
                    Some(asset_id.to_string()),
                    "this action works on lots (reference_id, expires_at, matures_at, bucket HELD, VOID_HOLD), which only LOT assets have",
                )),
                Some(asset) => match amount.map(|amount| (amount, money::parse(amount))) {
                    None => {}
                    Some((_, Some(literal))) => errors.extend(asset.check_amount(&field("amount"), literal).err()),
                    Some((amount, None)) => errors.extend(expression("amount", amount)),
                },
            }
        }
        if let Action::Counter(CounterAction {
            value: Some(value), ..
        }) = action
            && money::parse(value).is_none()
        {
            errors.extend(expression("value", value));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(errors))
    }
}

/// The active rules of these programs, compiled, in evaluation order per program. Rule versions not seen
/// before are compiled here, wasm modules loaded and prepared once.
pub async fn active_rules(
    conn: &mut PgConnection,
    cache: &RuleCache,
    program_ids: &[Uuid],
) -> Result<Vec<std::sync::Arc<CompiledRule>>> {
    let rows = repo::active(conn, program_ids).await?;
    let missing_modules: Vec<Uuid> = rows
        .iter()
        .filter(|rule| cache.get(rule.history_id).is_none())
        .filter_map(|rule| rule.module_id)
        .collect();
    let modules = prepare_modules(conn, cache.runtime(), &missing_modules).await?;
    Ok(rows
        .into_iter()
        .map(|rule| match cache.get(rule.history_id) {
            Some(compiled) => compiled,
            None => {
                let module = rule.module_id.and_then(|id| modules.get(&id).cloned());
                cache.compile(rule, module)
            }
        })
        .collect())
}

/// Modules by id, compiled and linked (`Err` says why one cannot be used).
async fn prepare_modules(
    conn: &mut PgConnection,
    runtime: &std::sync::Arc<wasm::Runtime>,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, std::result::Result<wasm::Prepared, String>>> {
    if ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let bytes = crate::modules::bytes_of(conn, ids).await?;
    // Compiling a component takes a while: off the async workers (a no-op for content already prepared).
    let runtime = runtime.clone();
    tokio::task::spawn_blocking(move || {
        bytes
            .into_iter()
            .map(|(id, bytes)| (id, runtime.prepare(&bytes)))
            .collect()
    })
    .await
    .map_err(|e| Error::Internal(format!("preparing modules: {e}")))
}

/// E95: the rule run against a sample event and state; nothing is written. A wasm rule's module runs as it
/// would for an event, in its sandbox with its limits.
pub async fn simulate(
    pool: &PgPool,
    runtime: &std::sync::Arc<wasm::Runtime>,
    actor: &Actor,
    id: Uuid,
    event: Value,
    state: SampleState,
) -> Result<Simulation> {
    let rule = get(pool, actor, id).await?;
    let module = match rule.module_id {
        None => None,
        Some(module_id) => {
            let mut conn = pool.acquire().await?;
            let mut modules = prepare_modules(&mut conn, runtime, &[module_id]).await?;
            modules.remove(&module_id)
        }
    };
    simulate::simulate(pool, runtime, actor, rule, module, event, state).await
}

/// Whether a condition compiles. An invalid condition is an answer (`valid: false`), not an error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Validity {
    pub valid: bool,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

pub fn validate(condition: &str) -> Validity {
    match cel::compile_condition(condition) {
        Ok(_) => Validity {
            valid: true,
            message: "CEL condition is valid".into(),
            note: Some(
                "Only syntax was checked; field references are resolved against each event at run time."
                    .into(),
            ),
        },
        Err(message) => Validity {
            valid: false,
            message,
            note: None,
        },
    }
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
#[schema(as = RuleChange)]
pub struct HistoryEntry {
    pub id: Uuid,
    pub rule_id: Uuid,
    pub program_id: Uuid,
    #[schema(value_type = ChangeType)]
    pub change_type: String,
    pub changed_at: DateTime<Utc>,
    pub changed_by_api_key_id: Option<Uuid>,
    /// Changes made from the dashboard would carry a user; this server has API keys only.
    pub changed_by_user_id: Option<Uuid>,
    /// `{field: {old, new}}` of an update.
    #[schema(value_type = Object)]
    pub changes: sqlx::types::Json<Value>,
    /// The rule as it was after the change.
    #[schema(value_type = Object)]
    pub snapshot: sqlx::types::Json<Value>,
}

/// Which changes E92 lists; pages hold 20 by default, at most 100.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryFilter {
    #[param(value_type = Option<ChangeType>, inline)]
    pub change_type: Option<&'static str>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Rule history pages hold 20 by default, at most 100.
    #[param(value_type = Option<i64>, minimum = 1, maximum = 100)]
    pub limit: i64,
    #[param(value_type = Option<String>, min_length = 1, max_length = 1000)]
    pub cursor: Option<Cursor>,
}

crate::api_enum!(pub ChangeType = CHANGE_TYPES ["created", "updated", "archived", "suspended", "activated"]);

/// E93, newest first.
pub async fn history(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    filter: HistoryFilter,
) -> Result<Page<HistoryEntry>> {
    get(pool, actor, id).await?;
    let rows = repo::history(pool, id, &filter).await?;
    Ok(Page::from_rows(rows, filter.limit, |h| {
        Cursor::at(h.changed_at, h.id)
    }))
}
