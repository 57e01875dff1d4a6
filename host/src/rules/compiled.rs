//! Rules as workers run them: expressions compiled once per rule version and shared across events.

use super::cel::{self, Expression, Template};
use super::{Action, Rule, Target, When};
use crate::participants::state::Window;
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
    /// The action type as written (`CREDIT`, `TAG`, …), for results and messages.
    pub kind: String,
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
        op: crate::balances::Operation,
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
}

/// What a CREDIT says about the lot it creates (LOT assets).
#[derive(Debug, Default)]
pub struct LotFields {
    pub held: bool,
    pub expires: Option<When>,
    pub matures: Option<When>,
    pub reference: Option<Template>,
}

#[derive(Debug)]
pub enum TargetRef {
    /// The event's recipient if it has one, else its participant.
    Event,
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
        match crate::money::parse(source) {
            Some(literal) => Amount::Literal(literal),
            None => Amount::Expression(cel::compile(source)),
        }
    }
}

/// Builds the executable form of an action the API already validated; a field that is missing anyway
/// becomes a step that fails with a reason rather than a panic.
fn compile_action(a: Action) -> CompiledAction {
    let template = |text: Option<&str>| {
        Template::parse(text.unwrap_or_default())
            .unwrap_or_else(|_| Template::Literal(String::new()))
    };
    let target = match &a.target {
        None => TargetRef::Event,
        Some(Target { id: Some(id), .. }) => TargetRef::Id(*id),
        Some(Target {
            participant_id: Some(p),
            ..
        }) => TargetRef::ParticipantId(template(Some(p))),
        Some(Target {
            external_id: Some(x),
            ..
        }) => TargetRef::ExternalId(template(Some(x))),
        Some(_) => TargetRef::Event,
    };
    let key = a.key.clone().unwrap_or_default();
    let step = match a.kind.as_str() {
        "TAG" | "UNTAG" => Step::Tag {
            tag: a.tag.clone().unwrap_or_default().to_lowercase(),
            add: a.kind == "TAG",
        },
        "COUNTER" => Step::Counter {
            key,
            delta: Amount::compile(a.value.as_deref().unwrap_or("1")),
            window: a.reset_after.as_deref().and_then(Window::parse),
        },
        "HOLD" | "RELEASE" | "FORFEIT" | "VOID_HOLD" => Step::Operation {
            op: match a.kind.as_str() {
                "HOLD" => crate::balances::Operation::Hold,
                "RELEASE" => crate::balances::Operation::Release,
                "VOID_HOLD" => crate::balances::Operation::VoidHold,
                _ => crate::balances::Operation::Forfeit {
                    bucket: if a.bucket.as_deref() == Some("HELD") {
                        "HELD"
                    } else {
                        "AVAILABLE"
                    },
                },
            },
            asset_id: a.asset_id.unwrap_or_default(),
            amount: a.amount.as_deref().map(Amount::compile),
            description: a.description.clone(),
            reference: a.reference_id.as_deref().map(|r| template(Some(r))),
        },
        "SET_ATTRIBUTE" => Step::Attribute {
            key,
            value: template(a.value.as_deref()),
        },
        _ => Step::Money {
            debit: a.kind == "DEBIT",
            asset_id: a.asset_id.unwrap_or_default(),
            amount: Amount::compile(a.amount.as_deref().unwrap_or_default()),
            description: a.description.clone(),
            allow_negative: a.allow_negative,
            lot: LotFields {
                held: a.bucket.as_deref() == Some("HELD"),
                expires: a.expires_at.as_deref().and_then(When::parse),
                matures: a.matures_at.as_deref().and_then(When::parse),
                reference: a.reference_id.as_deref().map(|r| template(Some(r))),
            },
        },
    };
    CompiledAction {
        kind: a.kind,
        step,
        target,
    }
}

impl CompiledRule {
    pub(crate) fn compile(rule: Rule) -> Self {
        let actions = rule.actions.0.into_iter().map(compile_action).collect();
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
