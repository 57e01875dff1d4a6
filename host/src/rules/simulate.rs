//! E95: evaluating a rule against a sample event and participant state. Reads the rule's assets; writes
//! nothing. A wasm rule's module runs for real, in its sandbox, on the sample; it sees no balances.

use super::cel::{self, Variables};
use super::compiled::{Amount, CompiledAction, CompiledRule, Step, TargetRef};
use super::evaluation::{self, Actions, Decision, EvaluationReason};
use super::{
    Action, AttributeAction, CounterAction, CreditAction, DebitAction, ForfeitAction, HoldAction,
    Rule, TagAction, Target, TargetType, TierAction, VoidHoldAction,
};
use crate::error::Result;
use crate::ledger::Bucket;
use crate::organizations::Actor;
use crate::wasm;
use chrono::Utc;
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::{Map, Value, json};
use sqlx::PgPool;
use std::sync::Arc;
use uuid::Uuid;

/// The participant state a simulation assumes (all optional in the request).
#[derive(Debug, Default, utoipa::ToSchema)]
pub struct SampleState {
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Vec<String>,
    #[schema(value_type = Option<Object>)]
    pub counters: Map<String, Value>,
    #[schema(value_type = Option<Object>)]
    pub attributes: Map<String, Value>,
    /// Levels held in the rule's program, by tier key; rules see them as `participant.tiers`.
    #[schema(value_type = Option<std::collections::BTreeMap<String, SampleLevel>>)]
    pub tiers: std::collections::BTreeMap<String, SampleLevel>,
}

/// A level as a simulation assumes the participant holds it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SampleLevel {
    #[schema(example = "gold")]
    pub level: String,
    pub rank: i32,
    #[schema(value_type = Option<Object>)]
    pub benefits: Map<String, Value>,
}

/// What a rule would do with a sample event; nothing is written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Simulation {
    pub rule: RuleSummary,
    pub evaluation: SimulatedEvaluation,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RuleSummary {
    pub id: Uuid,
    pub name: String,
    pub condition: String,
    pub order: i32,
    pub stop_after_match: bool,
}

crate::vocabulary!(
    /// How a simulated evaluation ended.
    pub enum SimulationStatus {
        Evaluated = "evaluated",
        ConditionFailed = "condition_failed",
        ModuleFailed = "module_failed",
    }
);

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SimulatedEvaluation {
    pub matched: bool,
    /// `evaluated`, `condition_failed` or `module_failed`.
    #[schema(value_type = String)]
    pub status: SimulationStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Wasm rules that failed: why they were stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub error_code: Option<EvaluationReason>,
    /// What each action would do, next to the action as written (or as the module returned it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub results: Option<Vec<Value>>,
    /// Wasm rules only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel_consumed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<String>,
}

impl SimulatedEvaluation {
    fn new(matched: bool, status: SimulationStatus) -> Self {
        SimulatedEvaluation {
            matched,
            status,
            reason: None,
            error_code: None,
            results: None,
            fuel_consumed: None,
            logs: None,
        }
    }
}

pub async fn simulate(
    pool: &PgPool,
    runtime: &Arc<wasm::Runtime>,
    actor: &Actor,
    rule: Rule,
    module: Option<std::result::Result<wasm::Prepared, String>>,
    event: Value,
    state: SampleState,
) -> Result<Simulation> {
    let summary = RuleSummary {
        id: rule.id,
        name: rule.name.clone(),
        condition: rule.condition.clone(),
        order: rule.order,
        stop_after_match: rule.stop_after_match,
    };
    let written: Vec<Value> = rule.actions.0.iter().map(|a| json!(a)).collect();
    let program_id = rule.program_id;
    let compiled = CompiledRule::compile(rule, module);
    let now = Utc::now();
    let participant = json!({"tags": state.tags, "counters": state.counters,
                             "attributes": state.attributes, "tiers": state.tiers});
    let mut vars = Variables::new(cel::from_json(&event), cel::from_json(&participant), now);
    // A sample has no group: rules reading one see it missing.
    vars.set_group(None);
    // A module runs on the sample as it would for an event, without a participant or balances.
    let evaluated = evaluation::evaluate(&compiled, &vars, runtime, |module| wasm::Input {
        event_id: Uuid::now_v7(),
        program_id,
        timestamp: now,
        data: event,
        participant_id: Uuid::nil(),
        external_id: String::new(),
        tags: state.tags.clone(),
        attributes: wasm::pairs(&state.attributes),
        counters: wasm::pairs(&state.counters),
        tiers: state
            .tiers
            .iter()
            .map(|(tier, l)| wasm::TierLevel {
                tier: tier.clone(),
                level: l.level.clone(),
                rank: l.rank,
                benefits: Value::Object(l.benefits.clone()).to_string(),
            })
            .collect(),
        balances: Vec::new(),
        config: module.config.clone(),
    })
    .await;
    let mut evaluation = match evaluated.decision {
        Decision::ConditionFailed(reason) => SimulatedEvaluation {
            reason: Some(reason),
            ..SimulatedEvaluation::new(false, SimulationStatus::ConditionFailed)
        },
        Decision::NoMatch => SimulatedEvaluation::new(false, SimulationStatus::Evaluated),
        Decision::ModuleSkipped(skipped) => SimulatedEvaluation {
            reason: Some(skipped.message),
            error_code: Some(skipped.reason),
            ..SimulatedEvaluation::new(true, SimulationStatus::ModuleFailed)
        },
        Decision::Act(actions) => {
            let described: Vec<(Value, &CompiledAction)> = match &actions {
                Actions::Written(own) => written.into_iter().zip(own.iter()).collect(),
                Actions::Returned(returned) => returned
                    .iter()
                    .map(|(returned, action)| (json!(as_written(returned)), action))
                    .collect(),
            };
            let results = results(pool, actor, &vars, &state, described).await;
            SimulatedEvaluation {
                results: Some(results),
                ..SimulatedEvaluation::new(true, SimulationStatus::Evaluated)
            }
        }
    };
    if let Some(trace) = evaluated.module {
        evaluation.fuel_consumed = Some(trace.fuel);
        evaluation.logs = Some(trace.logs);
    }
    Ok(Simulation {
        rule: summary,
        evaluation,
    })
}

/// What each action would do, next to the action as written (or as the module returned it).
async fn results(
    pool: &PgPool,
    actor: &Actor,
    vars: &Variables,
    state: &SampleState,
    actions: Vec<(Value, &CompiledAction)>,
) -> Vec<Value> {
    let mut results = Vec::with_capacity(actions.len());
    for (written, action) in actions {
        let own = matches!(action.target, TargetRef::Event);
        let result = match &action.step {
            Step::Money {
                debit,
                asset_id,
                amount,
                ..
            } => {
                let asset = crate::assets::get(pool, actor, *asset_id).await.ok();
                money_result(*debit, amount, asset.as_ref(), vars)
            }
            Step::Operation {
                op: crate::movement::Operation::VoidHold,
                ..
            } => {
                json!({"description": "VOID_HOLD cannot be simulated"})
            }
            Step::Operation {
                op,
                asset_id,
                amount,
                ..
            } => {
                match (
                    crate::assets::get(pool, actor, *asset_id).await.ok(),
                    amount.as_ref().map(|a| a.value(vars)),
                ) {
                    (None, _) => json!({"error": "asset not found"}),
                    (Some(asset), None) => json!({"asset_symbol": asset.symbol,
                        "description": format!("{} all selected {}", op.name(), asset.symbol)}),
                    (Some(asset), Some(Ok(amount))) => {
                        json!({"amount": asset.format(amount), "asset_symbol": asset.symbol,
                        "description": format!("{} {} {}", op.name(), asset.format(amount), asset.symbol)})
                    }
                    (Some(_), Some(Err(err))) => json!({"error": err}),
                }
            }
            Step::Tier { tier, level, .. } => {
                json!({"description": format!("Set tier {tier} to {level}")})
            }
            Step::ScheduleEvent {
                event_name, delay, ..
            } => {
                json!({"description": format!("Schedule event {event_name} {}s after the event", delay.num_seconds())})
            }
            Step::Broadcast { event_name, .. } => {
                json!({"description": format!("Broadcast event {event_name} to every participant of the program")})
            }
            Step::Counter { key, delta, .. } => {
                let current = number(state.counters.get(key));
                match delta.value(vars) {
                    Ok(delta) if own => match current.checked_add(delta).map(crate::money::bounded)
                    {
                        Some(Ok(projected)) => {
                            json!({"current_value": text(current), "projected_value": text(projected),
                            "value": text(delta), "description": format!("Increment {key} by {}", text(delta))})
                        }
                        _ => {
                            json!({"error": format!("counter {key} would be {}", crate::money::Invalid::TooLarge)})
                        }
                    },
                    Ok(delta) => {
                        json!({"value": text(delta), "description": format!("Increment {key} by {}", text(delta))})
                    }
                    Err(err) => json!({"error": err}),
                }
            }
            Step::Tag { tag, add } if matches!(action.target, TargetRef::Program) => {
                let verb = if *add {
                    "Add program tag"
                } else {
                    "Remove program tag"
                };
                json!({"description": format!("{verb} {tag}")})
            }
            Step::Tag { tag, add } => {
                let present = state.tags.iter().any(|t| t.to_lowercase() == *tag);
                let verb = if *add { "Add tag" } else { "Remove tag" };
                let mut result = json!({"description": format!("{verb} {tag}")});
                if own {
                    result["current_tags"] = json!(state.tags);
                    result[if *add { "would_add" } else { "would_remove" }] =
                        json!(present != *add);
                }
                result
            }
            Step::Attribute { key, value } => match value.render(vars) {
                Ok(value) if own => {
                    let current = state.attributes.get(key).and_then(Value::as_str);
                    json!({"current_value": current, "would_change": current != Some(value.as_str()),
                           "description": format!("Set {key} to {value}")})
                }
                Ok(value) => json!({"description": format!("Set {key} to {value}")}),
                Err(err) => json!({"error": err.to_string()}),
            },
        };
        results.push(json!({"action": written, "result": result}));
    }
    results
}

/// A module's action in the shape the API writes actions in.
fn as_written(action: &wasm::Action) -> Action {
    use wasm::Action as A;
    let target = |t: &Option<wasm::Target>| {
        t.as_ref().map(|t| match t {
            wasm::Target::ParticipantId(id) => Target {
                participant_id: Some(id.clone()),
                ..Target::default()
            },
            wasm::Target::ExternalId(id) => Target {
                external_id: Some(id.clone()),
                ..Target::default()
            },
            wasm::Target::Group(id) => Target {
                kind: Some(TargetType::Group),
                id: id.as_deref().and_then(|id| id.parse().ok()),
                ..Target::default()
            },
        })
    };
    // A module's asset id that is not a UUID stays nil here; running the action says why it fails.
    let asset = |id: &str| id.parse().unwrap_or_default();
    let hold = |b: &wasm::BalanceChange| HoldAction {
        asset_id: asset(&b.asset_id),
        amount: b.amount.clone(),
        description: b.description.clone(),
        reference_id: b.reference_id.clone(),
        target: target(&b.target),
    };
    let tag = |t: &wasm::TagChange| TagAction {
        tag: t.tag.clone(),
        description: None,
        target: target(&t.target),
    };
    let bucket = |held: bool| {
        if held {
            Bucket::Held
        } else {
            Bucket::Available
        }
    };
    match action {
        A::Credit(c) => Action::Credit(CreditAction {
            asset_id: asset(&c.asset_id),
            amount: c.amount.clone(),
            description: c.description.clone(),
            bucket: c
                .bucket
                .map(|b| bucket(matches!(b, wasm::CreditBucket::Held))),
            expires_at: c.expires_at.clone(),
            matures_at: c.matures_at.clone(),
            reference_id: c.reference_id.clone(),
            target: target(&c.target),
        }),
        A::Debit(d) => Action::Debit(DebitAction {
            asset_id: asset(&d.asset_id),
            amount: d.amount.clone(),
            description: d.description.clone(),
            allow_negative: d.allow_negative,
            target: target(&d.target),
        }),
        A::Hold(b) => Action::Hold(hold(b)),
        A::Release(b) => Action::Release(hold(b)),
        A::VoidHold(b) => Action::VoidHold(VoidHoldAction {
            asset_id: asset(&b.asset_id),
            description: b.description.clone(),
            reference_id: b.reference_id.clone().unwrap_or_default(),
            target: target(&b.target),
        }),
        A::Forfeit(f) => Action::Forfeit(ForfeitAction {
            asset_id: asset(&f.asset_id),
            amount: f.amount.clone(),
            description: f.description.clone(),
            bucket: bucket(matches!(f.bucket, wasm::ForfeitBucket::Held)),
            target: target(&f.target),
        }),
        A::Tag(t) => Action::Tag(tag(t)),
        A::Untag(t) => Action::Untag(tag(t)),
        A::Counter(c) => Action::Counter(CounterAction {
            key: c.key.clone(),
            value: Some(c.value.clone()),
            reset_after: c.reset_after.clone(),
            description: None,
            target: target(&c.target),
        }),
        A::SetAttribute(a) => Action::SetAttribute(AttributeAction {
            key: a.key.clone(),
            value: a.value.clone(),
            description: None,
            target: target(&a.target),
        }),
        A::SetTier(t) => Action::SetTier(TierAction {
            tier: t.tier.clone(),
            level: t.level.clone(),
            expires_at: t.expires_at.clone(),
            description: None,
            target: target(&t.target),
        }),
    }
}

fn money_result(
    debit: bool,
    amount: &Amount,
    asset: Option<&crate::assets::Asset>,
    vars: &Variables,
) -> Value {
    let Some(asset) = asset else {
        return json!({"error": "asset not found"});
    };
    match amount.value(vars) {
        Ok(amount) => {
            let verb = if debit { "Debit" } else { "Credit" };
            let direction = if debit { "from" } else { "to" };
            let shown = asset.format(amount);
            let mut result = json!({"amount": shown, "asset_symbol": asset.symbol,
                                    "description": format!("{verb} {shown} {} {direction} participant", asset.symbol)});
            if let Err(problem) = asset.check_amount("amount", amount) {
                result["error"] = json!(problem.message);
            }
            result
        }
        Err(err) => json!({"error": err}),
    }
}

fn number(value: Option<&Value>) -> Decimal {
    match value {
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(crate::money::from_f64)
            .unwrap_or_default(),
        Some(Value::String(s)) => crate::money::parse(s).unwrap_or_default(),
        _ => Decimal::ZERO,
    }
}

fn text(value: Decimal) -> String {
    value.normalize().to_string()
}
