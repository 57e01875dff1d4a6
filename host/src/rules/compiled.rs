//! Rules as workers run them: expressions compiled once per rule version and shared across events.

use super::Rule;
use super::cel::{self, Expression};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
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
}

#[derive(Debug)]
pub struct CompiledAction {
    pub kind: String,
    pub asset_id: Uuid,
    pub amount: Amount,
    pub description: Option<String>,
    pub allow_negative: bool,
}

#[derive(Debug)]
pub enum Amount {
    Literal(Decimal),
    Expression(Result<Expression, String>),
}

impl CompiledRule {
    fn compile(rule: Rule) -> Self {
        let actions = rule
            .actions
            .0
            .into_iter()
            .map(|a| CompiledAction {
                amount: match crate::money::parse(&a.amount) {
                    Some(literal) => Amount::Literal(literal),
                    None => Amount::Expression(cel::compile(&a.amount)),
                },
                kind: a.kind,
                asset_id: a.asset_id,
                description: a.description,
                allow_negative: a.allow_negative,
            })
            .collect();
        CompiledRule {
            id: rule.id,
            program_id: rule.program_id,
            history_id: rule.history_id,
            name: rule.name,
            stop_after_match: rule.stop_after_match,
            active_from: rule.active_from,
            active_to: rule.active_to,
            condition: cel::compile(&rule.condition),
            actions,
        }
    }

    /// Whether `at` falls inside the rule's `active_from`/`active_to` window.
    pub fn active_at(&self, at: DateTime<Utc>) -> bool {
        self.active_from.is_none_or(|from| at >= from) && self.active_to.is_none_or(|to| at <= to)
    }
}

/// Compiled rules by rule version. A version never changes, so entries never go stale.
#[derive(Default)]
pub struct RuleCache {
    rules: RwLock<HashMap<Uuid, Arc<CompiledRule>>>,
}

impl RuleCache {
    pub fn get_or_compile(&self, rule: Rule) -> Arc<CompiledRule> {
        let cached = self
            .rules
            .read()
            .ok()
            .and_then(|map| map.get(&rule.history_id).cloned());
        if let Some(compiled) = cached {
            return compiled;
        }
        let history_id = rule.history_id;
        let compiled = Arc::new(CompiledRule::compile(rule));
        if let Ok(mut map) = self.rules.write() {
            map.insert(history_id, compiled.clone());
        }
        compiled
    }
}
