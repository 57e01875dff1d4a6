//! Rules as workers run them: expressions compiled once per rule version and shared across events.

use super::cel::{self, Expression, Template, Variables};
use super::lru::Lru;
use super::{Action, ActionType, Rule, Target, TargetType, When};
use crate::holders::state::Window;
use crate::ledger::Bucket;
use crate::movement::Operation;
use crate::wasm;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

#[derive(Debug)]
pub struct CompiledRule {
    pub id: Uuid,
    pub program_id: Uuid,
    pub history_id: Uuid,
    pub name: String,
    pub stop_after_match: bool,
    pub active_from: Option<DateTime<Utc>>,
    pub active_to: Option<DateTime<Utc>>,
    /// `Err` holds the compile error of a rule stored before a stricter compiler; it is skipped with that reason.
    pub condition: Result<Expression, String>,
    pub actions: Vec<CompiledAction>,
    /// A wasm rule's module; `Err` holds why it could not be prepared (the rule is then skipped with it).
    pub module: Option<CompiledModule>,
    /// Whether a CEL expression of the rule reads `group`, which the worker then binds for its events.
    pub reads_group: bool,
}

pub struct CompiledModule {
    pub prepared: Result<wasm::Prepared, String>,
    pub config: serde_json::Value,
    pub limits: wasm::Limits,
}

/// What running a wasm rule gave, with the fuel it burned and what it printed.
pub struct ModuleRun {
    pub fuel: u64,
    pub logs: String,
    /// Each action as the module returned it and compiled to run, or why the rule is skipped.
    pub result: Result<Vec<(wasm::Action, CompiledAction)>, Skipped>,
}

/// Why a wasm rule returned nothing to run: `status` and `reason` as evaluation records name them.
pub struct Skipped {
    pub status: super::evaluation::EvaluationStatus,
    pub reason: super::evaluation::EvaluationReason,
    pub message: String,
}

impl CompiledModule {
    /// Runs the module: SKIPPED_TIMEOUT when it ran out of fuel; SKIPPED_ERROR for a trap, panic, memory
    /// limit, rule error or invalid output.
    pub async fn run(&self, runtime: &Arc<wasm::Runtime>, input: wasm::Input) -> ModuleRun {
        let error = |message| Skipped {
            status: super::evaluation::EvaluationStatus::SkippedError,
            reason: super::evaluation::EvaluationReason::ModuleError,
            message,
        };
        let prepared = match &self.prepared {
            Ok(prepared) => prepared.clone(),
            Err(reason) => {
                return ModuleRun {
                    fuel: 0,
                    logs: String::new(),
                    result: Err(error(format!("module unavailable: {reason}"))),
                };
            }
        };
        let (result, fuel, logs) = match runtime.run(prepared, input, self.limits).await {
            wasm::Outcome::Actions {
                actions,
                fuel,
                logs,
            } => {
                let compiled = actions
                    .into_iter()
                    .map(|action| CompiledAction::from_wasm(&action).map(|c| (action, c)))
                    .collect::<Result<_, _>>()
                    .map_err(|reason| error(format!("invalid output: {reason}")));
                (compiled, fuel, logs)
            }
            wasm::Outcome::Timeout { fuel, logs } => {
                let message = format!(
                    "fuel exhausted: the rule used its {} units",
                    self.limits.fuel
                );
                let skipped = Skipped {
                    status: super::evaluation::EvaluationStatus::SkippedTimeout,
                    reason: super::evaluation::EvaluationReason::FuelExhausted,
                    message,
                };
                (Err(skipped), fuel, logs)
            }
            wasm::Outcome::Failed { reason, fuel, logs } => (Err(error(reason)), fuel, logs),
        };
        ModuleRun { fuel, logs, result }
    }
}

impl std::fmt::Debug for CompiledModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModule")
            .field("prepared", &self.prepared.as_ref().map(|_| "RulePre"))
            .field("config", &self.config)
            .field("limits", &self.limits)
            .finish()
    }
}

#[derive(Debug)]
pub struct CompiledAction {
    /// The action type, for results and messages.
    pub kind: ActionType,
    pub step: Step,
    pub target: TargetRef,
}

/// What an action does, with its expressions compiled.
#[derive(Debug)]
pub enum Step {
    Money {
        debit: bool,
        asset_id: Uuid,
        amount: Amount,
        description: Option<String>,
        allow_negative: bool,
        lot: LotFields,
    },
    /// HOLD, RELEASE, FORFEIT or VOID_HOLD on the target's balance.
    Operation {
        op: Operation,
        asset_id: Uuid,
        amount: Option<Amount>,
        description: Option<String>,
        reference: Option<Template>,
    },
    Tag {
        tag: String,
        add: bool,
    },
    Counter {
        key: String,
        delta: Amount,
        window: Option<Window>,
    },
    Attribute {
        key: String,
        value: Template,
    },
    /// A level of one of the program's tiers, lost at `expires` when given.
    Tier {
        tier: String,
        level: String,
        expires: Option<When>,
    },
    /// A SYSTEM event about the target, `delay` after the event's time.
    ScheduleEvent {
        event_name: String,
        delay: chrono::Duration,
        payload: serde_json::Map<String, serde_json::Value>,
    },
    /// A SYSTEM event for each participant of the program.
    Broadcast {
        event_name: String,
        payload: serde_json::Map<String, serde_json::Value>,
    },
}

/// What a CREDIT says about the lot it creates (LOT assets).
#[derive(Debug, Default)]
pub struct LotFields {
    pub held: bool,
    pub expires: Option<When>,
    pub matures: Option<When>,
    pub reference: Option<Template>,
}

impl LotFields {
    /// Whether the credit says anything about its lot.
    pub fn is_set(&self) -> bool {
        self.held || self.expires.is_some() || self.matures.is_some() || self.reference.is_some()
    }
}

#[derive(Debug)]
pub enum TargetRef {
    /// The event's recipient if it has one, else its participant.
    Event,
    /// The event's program (TAG and UNTAG).
    Program,
    /// A group, or the group of the event's participant (or recipient).
    Group(Option<Uuid>),
    Id(Uuid),
    ParticipantId(Template),
    ExternalId(Template),
}

/// A decimal literal or a CEL expression producing a number. A compile error is kept, not panicked on: it
/// fails the event with that reason.
#[derive(Debug)]
pub enum Amount {
    Literal(Decimal),
    Expression(Result<Expression, String>),
}

impl Amount {
    fn compile(source: &str) -> Amount {
        match crate::money::parse_amount(source) {
            Ok(literal) => Amount::Literal(literal),
            Err(crate::money::Invalid::TooLarge) => Amount::Expression(Err(format!(
                "{source} is {}",
                crate::money::Invalid::TooLarge
            ))),
            Err(crate::money::Invalid::NotDecimal) => Amount::Expression(cel::compile(source)),
        }
    }

    /// The number it gives for an event; `Err` says why not, to follow the field's name.
    pub fn value(&self, vars: &Variables) -> Result<Decimal, String> {
        match self {
            Amount::Literal(amount) => Ok(*amount),
            Amount::Expression(Ok(expression)) => expression
                .amount(vars)
                .map_err(|err| format!("expression failed: {err}")),
            Amount::Expression(Err(compile_error)) => {
                Err(format!("does not compile: {compile_error}"))
            }
        }
    }
}

/// Builds the executable form of an action the API already validated; a template that does not parse anyway
/// becomes an empty literal rather than a panic.
fn compile_action(action: Action) -> CompiledAction {
    let template =
        |text: &str| Template::parse(text).unwrap_or_else(|_| Template::Literal(String::new()));
    let target = match action.target() {
        None => TargetRef::Event,
        Some(Target {
            kind: Some(TargetType::Program),
            ..
        }) => TargetRef::Program,
        Some(Target {
            kind: Some(TargetType::Group),
            id,
            ..
        }) => TargetRef::Group(*id),
        Some(Target { id: Some(id), .. }) => TargetRef::Id(*id),
        Some(Target {
            participant_id: Some(p),
            ..
        }) => TargetRef::ParticipantId(template(p)),
        Some(Target {
            external_id: Some(x),
            ..
        }) => TargetRef::ExternalId(template(x)),
        Some(_) => TargetRef::Event,
    };
    let reference = |r: &Option<String>| r.as_deref().map(template);
    let operation =
        |op, asset_id, amount: &Option<String>, description: &Option<String>, r| Step::Operation {
            op,
            asset_id,
            amount: amount.as_deref().map(Amount::compile),
            description: description.clone(),
            reference: r,
        };
    let step = match &action {
        Action::Credit(c) => Step::Money {
            debit: false,
            asset_id: c.asset_id,
            amount: Amount::compile(&c.amount),
            description: c.description.clone(),
            allow_negative: false,
            lot: LotFields {
                held: c.bucket == Some(Bucket::Held),
                expires: c.expires_at.as_deref().and_then(When::parse),
                matures: c.matures_at.as_deref().and_then(When::parse),
                reference: reference(&c.reference_id),
            },
        },
        Action::Debit(d) => Step::Money {
            debit: true,
            asset_id: d.asset_id,
            amount: Amount::compile(&d.amount),
            description: d.description.clone(),
            allow_negative: d.allow_negative,
            lot: LotFields::default(),
        },
        Action::Hold(h) | Action::Release(h) => operation(
            match action {
                Action::Hold(_) => Operation::Hold,
                _ => Operation::Release,
            },
            h.asset_id,
            &h.amount,
            &h.description,
            reference(&h.reference_id),
        ),
        Action::Forfeit(f) => operation(
            Operation::Forfeit { bucket: f.bucket },
            f.asset_id,
            &f.amount,
            &f.description,
            None,
        ),
        Action::VoidHold(v) => operation(
            Operation::VoidHold,
            v.asset_id,
            &None,
            &v.description,
            Some(template(&v.reference_id)),
        ),
        Action::Tag(t) | Action::Untag(t) => Step::Tag {
            tag: t.tag.to_lowercase(),
            add: matches!(action, Action::Tag(_)),
        },
        Action::Counter(c) => Step::Counter {
            key: c.key.clone(),
            delta: Amount::compile(c.value.as_deref().unwrap_or("1")),
            window: c.reset_after.as_deref().and_then(Window::parse),
        },
        Action::SetAttribute(a) => Step::Attribute {
            key: a.key.clone(),
            value: template(&a.value),
        },
        Action::SetTier(t) => Step::Tier {
            tier: t.tier.clone(),
            level: t.level.clone(),
            expires: t.expires_at.as_deref().and_then(When::parse),
        },
        Action::ScheduleEvent(e) => Step::ScheduleEvent {
            event_name: e.event_name.clone(),
            delay: crate::duration::parse(&e.delay).unwrap_or_default(),
            payload: e.payload.clone().unwrap_or_default(),
        },
        Action::Broadcast(b) => Step::Broadcast {
            event_name: b.event_name.clone(),
            payload: b.payload.clone().unwrap_or_default(),
        },
    };
    CompiledAction {
        kind: action.kind(),
        step,
        target,
    }
}

impl CompiledRule {
    /// Compiles a rule; `prepared` is a wasm rule's module, ready to instantiate.
    pub(crate) fn compile(rule: Rule, prepared: Option<Result<wasm::Prepared, String>>) -> Self {
        let module = rule.module_id.map(|_| CompiledModule {
            prepared: prepared.unwrap_or_else(|| Err("the module could not be loaded".into())),
            config: rule
                .module_config
                .as_ref()
                .map_or(serde_json::Value::Null, |c| c.0.clone()),
            limits: rule
                .module_limits
                .map(|l| l.0.resolve())
                .unwrap_or(wasm::Limits::DEFAULT),
        });
        let actions = rule.actions.0.into_iter().map(compile_action).collect();
        let mut compiled = CompiledRule {
            id: rule.id,
            program_id: rule.program_id,
            history_id: rule.history_id,
            name: rule.name,
            stop_after_match: rule.stop_after_match,
            active_from: rule.active_from,
            active_to: rule.active_to,
            condition: cel::compile(&rule.condition),
            actions,
            module,
            reads_group: false,
        };
        compiled.reads_group = compiled.reads("group");
        compiled
    }

    /// Whether its module or a CEL expression of the rule reads the event's participant: only then does a
    /// backtest rebuild the participant's past state.
    pub fn reads_participant(&self) -> bool {
        self.module.is_some() || self.reads("participant")
    }

    /// Whether a CEL expression of the rule reads `variable`.
    fn reads(&self, variable: &str) -> bool {
        let amount = |a: &Amount| matches!(a, Amount::Expression(Ok(e)) if e.reads(variable));
        let template = |t: &Template| matches!(t, Template::Expression(e) if e.reads(variable));
        let in_step = |step: &Step| match step {
            Step::Money { amount: a, lot, .. } => {
                amount(a) || lot.reference.as_ref().is_some_and(template)
            }
            Step::Operation {
                amount: a,
                reference,
                ..
            } => a.as_ref().is_some_and(amount) || reference.as_ref().is_some_and(template),
            Step::Counter { delta, .. } => amount(delta),
            Step::Attribute { value, .. } => template(value),
            Step::Tag { .. }
            | Step::Tier { .. }
            | Step::ScheduleEvent { .. }
            | Step::Broadcast { .. } => false,
        };
        self.condition.as_ref().is_ok_and(|e| e.reads(variable))
            || self.actions.iter().any(|a| in_step(&a.step))
    }

    /// Whether `at` falls inside the rule's `active_from`/`active_to` window.
    pub fn active_at(&self, at: DateTime<Utc>) -> bool {
        self.active_from.is_none_or(|from| at >= from) && self.active_to.is_none_or(|to| at <= to)
    }
}

/// Compiled rules by rule version, the least recently used dropped first once their weight passes the
/// operator's bound (`SCRIP_WASM_CACHE_BYTES`). A version never changes, so entries never go stale. Only
/// compiled rules (and the batches running them) keep prepared wasm modules alive, so this bound is the bound
/// on their memory; a rule dropped here is compiled again when next needed.
pub struct RuleCache {
    runtime: Arc<wasm::Runtime>,
    rules: Mutex<Lru<Uuid, Arc<CompiledRule>>>,
}

/// What a compiled rule weighs besides its module: about what its compiled expressions take.
const RULE_WEIGHT: usize = 16 << 10;

impl RuleCache {
    pub fn new(runtime: Arc<wasm::Runtime>) -> Self {
        let capacity = runtime.ceiling().cache_bytes;
        RuleCache {
            runtime,
            rules: Mutex::new(Lru::new(capacity)),
        }
    }

    pub fn runtime(&self) -> &Arc<wasm::Runtime> {
        &self.runtime
    }

    pub fn get(&self, history_id: Uuid) -> Option<Arc<CompiledRule>> {
        self.rules.lock().ok()?.get(&history_id)
    }

    /// Compiles and caches a rule version; `module` is a wasm rule's prepared module.
    pub fn compile(
        &self,
        rule: Rule,
        module: Option<Result<wasm::Prepared, String>>,
    ) -> Arc<CompiledRule> {
        let history_id = rule.history_id;
        let compiled = Arc::new(CompiledRule::compile(rule, module));
        let module_weight = compiled
            .module
            .as_ref()
            .and_then(|m| m.prepared.as_ref().ok())
            .map_or(0, |pre| wasm::footprint(pre));
        if let Ok(mut rules) = self.rules.lock() {
            rules.insert(history_id, compiled.clone(), RULE_WEIGHT + module_weight);
        }
        compiled
    }
}

impl CompiledAction {
    /// An action a wasm rule returned. Its shape is checked here (an id that is not a UUID, an amount that
    /// is not a decimal, a window that is not a duration: invalid output); what it does is validated when it
    /// runs, exactly as a CEL rule's action is.
    pub fn from_wasm(action: &wasm::Action) -> Result<CompiledAction, String> {
        use wasm::Action as A;
        // Error messages quote what the module returned, but not all of a huge value.
        let quote = |text: &str| match text.char_indices().nth(64) {
            None => format!("{text:?}"),
            Some((end, _)) => format!("{:?}…", &text[..end]),
        };
        let sized = |text: &str, what: &str, max: usize| {
            if (1..=max).contains(&text.chars().count()) {
                Ok(())
            } else {
                Err(format!("{what} must be 1 to {max} characters"))
            }
        };
        let uuid = |text: &str, what: &str| {
            Uuid::parse_str(text).map_err(|_| format!("{what} {} is not a UUID", quote(text)))
        };
        let decimal = |text: &str, what: &str| {
            crate::money::parse_amount(text)
                .map(Amount::Literal)
                .map_err(|invalid| format!("{what} {} is {invalid}", quote(text)))
        };
        let target = |t: &Option<wasm::Target>| -> Result<TargetRef, String> {
            Ok(match t {
                None => TargetRef::Event,
                Some(wasm::Target::ParticipantId(id)) => {
                    TargetRef::Id(uuid(id, "target participant id")?)
                }
                Some(wasm::Target::ExternalId(external_id)) => {
                    sized(external_id, "target external id", 255)?;
                    TargetRef::ExternalId(Template::Literal(external_id.clone()))
                }
                Some(wasm::Target::Group(id)) => TargetRef::Group(match id {
                    Some(id) => Some(uuid(id, "target group id")?),
                    None => None,
                }),
            })
        };
        let described = |description: &Option<String>| match description {
            Some(text) => sized(text, "description", 500).map(|()| Some(text.clone())),
            None => Ok(None),
        };
        let reference = |reference: &Option<String>| match reference {
            Some(text) => {
                sized(text, "reference_id", 255).map(|()| Some(Template::Literal(text.clone())))
            }
            None => Ok(None),
        };
        let when = |text: &Option<String>, what: &str| match text {
            Some(text) => When::parse(text).map(Some).ok_or_else(|| {
                format!(
                    "{what} {} is neither a duration (at most 876000h) nor a timestamp",
                    quote(text)
                )
            }),
            None => Ok(None),
        };
        let money = |kind: ActionType,
                     asset: &str,
                     amount: &str,
                     description: &Option<String>,
                     allow_negative,
                     lot,
                     to|
         -> Result<CompiledAction, String> {
            Ok(CompiledAction {
                kind,
                step: Step::Money {
                    debit: kind == ActionType::Debit,
                    asset_id: uuid(asset, "asset id")?,
                    amount: decimal(amount, "amount")?,
                    description: described(description)?,
                    allow_negative,
                    lot,
                },
                target: target(to)?,
            })
        };
        let operation = |op: Operation,
                         asset: &str,
                         amount: &Option<String>,
                         description: &Option<String>,
                         reference_id: &Option<String>,
                         to|
         -> Result<CompiledAction, String> {
            Ok(CompiledAction {
                kind: match op {
                    Operation::Hold => ActionType::Hold,
                    Operation::Release => ActionType::Release,
                    Operation::Forfeit { .. } => ActionType::Forfeit,
                    Operation::VoidHold => ActionType::VoidHold,
                },
                step: Step::Operation {
                    op,
                    asset_id: uuid(asset, "asset id")?,
                    amount: match amount {
                        Some(amount) => Some(decimal(amount, "amount")?),
                        None => None,
                    },
                    description: described(description)?,
                    reference: reference(reference_id)?,
                },
                target: target(to)?,
            })
        };
        match action {
            A::Credit(c) => {
                let lot = LotFields {
                    held: matches!(c.bucket, Some(wasm::CreditBucket::Held)),
                    expires: when(&c.expires_at, "expires_at")?,
                    matures: when(&c.matures_at, "matures_at")?,
                    reference: reference(&c.reference_id)?,
                };
                money(
                    ActionType::Credit,
                    &c.asset_id,
                    &c.amount,
                    &c.description,
                    false,
                    lot,
                    &c.target,
                )
            }
            A::Debit(d) => money(
                ActionType::Debit,
                &d.asset_id,
                &d.amount,
                &d.description,
                d.allow_negative,
                LotFields::default(),
                &d.target,
            ),
            A::Hold(b) | A::Release(b) | A::VoidHold(b) => operation(
                match action {
                    A::Hold(_) => Operation::Hold,
                    A::Release(_) => Operation::Release,
                    _ => Operation::VoidHold,
                },
                &b.asset_id,
                &b.amount,
                &b.description,
                &b.reference_id,
                &b.target,
            ),
            A::Forfeit(f) => operation(
                Operation::Forfeit {
                    bucket: match f.bucket {
                        wasm::ForfeitBucket::Available => Bucket::Available,
                        wasm::ForfeitBucket::Held => Bucket::Held,
                    },
                },
                &f.asset_id,
                &f.amount,
                &f.description,
                &f.reference_id,
                &f.target,
            ),
            A::Tag(t) | A::Untag(t) => {
                sized(&t.tag, "tag", 255)?;
                let add = matches!(action, A::Tag(_));
                Ok(CompiledAction {
                    kind: if add {
                        ActionType::Tag
                    } else {
                        ActionType::Untag
                    },
                    step: Step::Tag {
                        tag: t.tag.to_lowercase(),
                        add,
                    },
                    target: target(&t.target)?,
                })
            }
            A::Counter(c) => {
                sized(&c.key, "counter key", 255)?;
                let window =
                    match c.reset_after.as_deref() {
                        Some(text) => Some(Window::parse(text).ok_or_else(|| {
                            format!("reset_after {} is not a duration", quote(text))
                        })?),
                        None => None,
                    };
                let delta = decimal(&c.value, "counter value")?;
                Ok(CompiledAction {
                    kind: ActionType::Counter,
                    step: Step::Counter {
                        key: c.key.clone(),
                        delta,
                        window,
                    },
                    target: target(&c.target)?,
                })
            }
            A::SetTier(t) => {
                sized(&t.tier, "tier", 100)?;
                sized(&t.level, "level", 100)?;
                Ok(CompiledAction {
                    kind: ActionType::SetTier,
                    step: Step::Tier {
                        tier: t.tier.clone(),
                        level: t.level.clone(),
                        expires: when(&t.expires_at, "expires_at")?,
                    },
                    target: target(&t.target)?,
                })
            }
            A::SetAttribute(a) => {
                sized(&a.key, "attribute key", 255)?;
                Ok(CompiledAction {
                    kind: ActionType::SetAttribute,
                    step: Step::Attribute {
                        key: a.key.clone(),
                        value: Template::Literal(a.value.clone()),
                    },
                    target: target(&a.target)?,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a module returns is bounded like what an API client writes, and errors quote little of it.
    #[test]
    fn module_output_is_bounded() {
        let attribute = |key: String| {
            wasm::Action::SetAttribute(wasm::AttributeChange {
                key,
                value: "v".into(),
                target: None,
            })
        };
        assert!(CompiledAction::from_wasm(&attribute("plan".into())).is_ok());
        let long = CompiledAction::from_wasm(&attribute("k".repeat(256)));
        assert_eq!(
            long.err().as_deref(),
            Some("attribute key must be 1 to 255 characters")
        );
        let credit = wasm::Action::Credit(wasm::Credit {
            asset_id: Uuid::nil().to_string(),
            amount: "9".repeat(100_000) + "x",
            description: None,
            target: None,
            bucket: None,
            expires_at: None,
            matures_at: None,
            reference_id: None,
        });
        let reason = CompiledAction::from_wasm(&credit).err().unwrap_or_default();
        assert!(reason.ends_with("\"… is not a decimal"), "{reason}");
        assert!(reason.len() < 100, "quotes 64 characters: {reason}");
    }
}
