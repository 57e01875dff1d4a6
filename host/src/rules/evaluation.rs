//! What one rule makes of one event: its condition, then its module or its own actions. Event workers carry
//! the actions out and simulations (E95) describe them; both ask here, so a simulation decides exactly as
//! processing does.

use super::cel::Variables;
use super::compiled::{CompiledAction, CompiledModule, CompiledRule, Skipped};
use crate::wasm;
use std::sync::Arc;

crate::vocabulary!(
    /// How a rule's evaluation of an event ended, as recorded and shown (E85).
    pub enum EvaluationStatus {
        Success = "SUCCESS",
        NoMatch = "NO_MATCH",
        /// Did not run, or matched but every credit was suppressed by its budget.
        Skipped = "SKIPPED",
        /// The condition or the module failed (hidden unless `include_skipped=true`).
        SkippedError = "SKIPPED_ERROR",
        /// The module ran out of fuel (hidden unless `include_skipped=true`).
        SkippedTimeout = "SKIPPED_TIMEOUT",
        /// An action failed, which fails the event.
        Failed = "FAILED",
    }
);

crate::vocabulary!(
    /// Why an evaluation was skipped.
    pub enum EvaluationReason {
        StoppedByRule = "STOPPED_BY_RULE",
        OutsideTimeWindow = "OUTSIDE_TIME_WINDOW",
        BudgetExceeded = "BUDGET_EXCEEDED",
        ConditionError = "CONDITION_ERROR",
        FuelExhausted = "FUEL_EXHAUSTED",
        ModuleError = "MODULE_ERROR",
    }
);

/// What a rule decided, with what its module burned and printed if it has one.
pub struct Evaluation<'r> {
    pub decision: Decision<'r>,
    pub module: Option<ModuleTrace>,
}

pub enum Decision<'r> {
    /// The condition is false (or reads a field the event does not have).
    NoMatch,
    /// The condition failed when evaluated, or never compiled.
    ConditionFailed(String),
    /// The module returned nothing to run: out of fuel, a trap, an error or invalid output.
    ModuleSkipped(Skipped),
    /// The rule matched: run these.
    Act(Actions<'r>),
}

/// A matched rule's actions: its own, or those its module returned, each beside what the module said.
pub enum Actions<'r> {
    Written(&'r [CompiledAction]),
    Returned(Vec<(wasm::Action, CompiledAction)>),
}

impl Actions<'_> {
    pub fn compiled(&self) -> Vec<&CompiledAction> {
        match self {
            Actions::Written(actions) => actions.iter().collect(),
            Actions::Returned(returned) => returned.iter().map(|(_, action)| action).collect(),
        }
    }
}

/// The fuel a wasm rule burned and what it printed.
pub struct ModuleTrace {
    pub fuel: u64,
    pub logs: String,
}

/// Evaluates `rule` on the event `vars` describe; a wasm rule's module runs on `input(module)`.
pub async fn evaluate<'r>(
    rule: &'r CompiledRule,
    vars: &Variables,
    runtime: &Arc<wasm::Runtime>,
    input: impl FnOnce(&CompiledModule) -> wasm::Input,
) -> Evaluation<'r> {
    let started = std::time::Instant::now();
    let evaluation = decide(rule, vars, runtime, input).await;
    crate::metrics::rule_evaluated(started.elapsed());
    evaluation
}

async fn decide<'r>(
    rule: &'r CompiledRule,
    vars: &Variables,
    runtime: &Arc<wasm::Runtime>,
    input: impl FnOnce(&CompiledModule) -> wasm::Input,
) -> Evaluation<'r> {
    let matched = match &rule.condition {
        Ok(condition) => condition.condition(vars).map_err(|e| e.to_string()),
        Err(compile_error) => Err(format!("condition does not compile: {compile_error}")),
    };
    let decided = |decision| Evaluation {
        decision,
        module: None,
    };
    match (matched, &rule.module) {
        (Err(reason), _) => decided(Decision::ConditionFailed(reason)),
        (Ok(false), _) => decided(Decision::NoMatch),
        (Ok(true), None) => decided(Decision::Act(Actions::Written(&rule.actions))),
        (Ok(true), Some(module)) => {
            let run = module.run(runtime, input(module)).await;
            Evaluation {
                decision: match run.result {
                    Ok(returned) => Decision::Act(Actions::Returned(returned)),
                    Err(skipped) => Decision::ModuleSkipped(skipped),
                },
                module: Some(ModuleTrace {
                    fuel: run.fuel,
                    logs: run.logs,
                }),
            }
        }
    }
}
