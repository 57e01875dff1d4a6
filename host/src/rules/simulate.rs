//! E95: evaluating a rule against a sample event and participant state. Reads the rule's assets; writes
//! nothing.

use super::Rule;
use super::cel::{self, EvalError, Variables};
use super::compiled::{Amount, CompiledRule, Step, TargetRef};
use crate::error::Result;
use crate::organizations::Actor;
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sqlx::PgPool;

/// The participant state a simulation assumes (all optional in the request).
#[derive(Debug, Default)]
pub struct SampleState {
    pub tags: Vec<String>,
    pub counters: Map<String, Value>,
    pub attributes: Map<String, Value>,
}

pub async fn simulate(
    pool: &PgPool,
    actor: &Actor,
    rule: Rule,
    event: Value,
    state: SampleState,
) -> Result<Value> {
    let summary = json!({"id": rule.id, "name": rule.name, "condition": rule.condition, "order": rule.order,
                         "stop_after_match": rule.stop_after_match});
    let written: Vec<Value> = rule.actions.0.iter().map(|a| json!(a)).collect();
    let compiled = CompiledRule::compile(rule);
    let vars = Variables {
        event: cel::from_json(&event),
        participant: cel::from_json(&json!({"tags": state.tags, "counters": state.counters,
                                            "attributes": state.attributes, "tiers": {}})),
        now: Utc::now(),
    };
    let matched = match &compiled.condition {
        Ok(condition) => condition.condition(&vars).map_err(|e| e.to_string()),
        Err(compile_error) => Err(compile_error.clone()),
    };
    let evaluation = match matched {
        Err(reason) => json!({"matched": false, "status": "condition_failed", "reason": reason}),
        Ok(false) => json!({"matched": false, "status": "evaluated"}),
        Ok(true) => {
            let mut results = Vec::with_capacity(compiled.actions.len());
            for (action, written) in compiled.actions.iter().zip(written) {
                let own = matches!(action.target, TargetRef::Event);
                let result = match &action.step {
                    Step::Money {
                        debit,
                        asset_id,
                        amount,
                        ..
                    } => {
                        let asset = crate::assets::get(pool, actor, *asset_id).await.ok();
                        money_result(*debit, amount, asset.as_ref(), &vars)
                    }
                    Step::Operation {
                        op: crate::balances::Operation::VoidHold,
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
                            amount.as_ref().map(|a| evaluate(a, &vars)),
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
                    Step::Counter { key, delta, .. } => {
                        let current = number(state.counters.get(key));
                        match evaluate(delta, &vars) {
                            Ok(delta) if own => {
                                json!({"current_value": text(current), "projected_value": text(current + delta),
                                "value": text(delta), "description": format!("Increment {key} by {}", text(delta))})
                            }
                            Ok(delta) => {
                                json!({"value": text(delta), "description": format!("Increment {key} by {}", text(delta))})
                            }
                            Err(err) => json!({"error": err}),
                        }
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
                    Step::Attribute { key, value } => match value.render(&vars) {
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
            json!({"matched": true, "status": "evaluated", "results": results})
        }
    };
    Ok(json!({"rule": summary, "evaluation": evaluation}))
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
    match evaluate(amount, vars) {
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

fn evaluate(amount: &Amount, vars: &Variables) -> Result<Decimal, String> {
    match amount {
        Amount::Literal(amount) => Ok(*amount),
        Amount::Expression(Ok(expression)) => expression
            .amount(vars)
            .map_err(|e: EvalError| e.to_string()),
        Amount::Expression(Err(compile_error)) => Err(compile_error.clone()),
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
