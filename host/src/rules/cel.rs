//! CEL expressions of rules: compiled once per rule version, evaluated per event.
//!
//! Hostile input is bounded before and after parsing: a length cap and a bracket-nesting cap run before the
//! parser sees the text, the parser runs on a thread with a large stack, and the parsed tree's depth is capped
//! so evaluation (which recurses over the tree) cannot exhaust a worker's stack.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::{Context, Env, ExecutionError, Program, Value};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

pub const MAX_LENGTH: usize = 4096;
pub const MAX_NESTING: usize = 32;
const MAX_TREE_DEPTH: usize = 64;
const COMPILE_STACK_BYTES: usize = 32 * 1024 * 1024;

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled expression, shared by every evaluation of one rule version.
#[derive(Clone)]
pub struct Expression(Arc<Program>);

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Expression")
    }
}

/// Compiles `source`, or says why not in words meant for the rule author.
pub fn compile(source: &str) -> Result<Expression, String> {
    if source.trim().is_empty() {
        return Err("expression is empty".into());
    }
    if source.chars().count() > MAX_LENGTH {
        return Err(format!("expression is longer than {MAX_LENGTH} characters"));
    }
    if nesting(source) > MAX_NESTING {
        return Err(format!(
            "expression nests brackets deeper than {MAX_NESTING} levels"
        ));
    }
    let text = source.to_owned();
    let parsed = std::thread::Builder::new()
        .name("cel-compile".into())
        .stack_size(COMPILE_STACK_BYTES)
        .spawn(move || ENV.compile(&text).map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot start the compiler: {e}"))?
        .join()
        .map_err(|_| "the expression could not be parsed".to_string())??;
    if depth(parsed.expression()) > MAX_TREE_DEPTH {
        return Err(format!(
            "expression is nested deeper than {MAX_TREE_DEPTH} operations"
        ));
    }
    Ok(Expression(Arc::new(parsed)))
}

/// The variables an expression sees: `event`, `participant` and `now` (the event's timestamp).
pub struct Variables {
    pub event: Value,
    pub participant: Value,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// The expression read a field the input does not have.
    MissingField(String),
    Failed(String),
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::MissingField(key) => write!(f, "no such field: {key}"),
            EvalError::Failed(message) => f.write_str(message),
        }
    }
}

impl Expression {
    pub fn evaluate(&self, vars: &Variables) -> Result<Value, EvalError> {
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("event", vars.event.clone());
        context.add_variable_from_value("participant", vars.participant.clone());
        context.add_variable_from_value("now", Value::Timestamp(vars.now.fixed_offset()));
        self.0.execute(&context).map_err(|err| match err {
            ExecutionError::NoSuchKey(key) => EvalError::MissingField(key.to_string()),
            other => EvalError::Failed(other.to_string()),
        })
    }

    /// A condition: a missing field makes it false rather than an error, as rule authors expect.
    pub fn condition(&self, vars: &Variables) -> Result<bool, EvalError> {
        match self.evaluate(vars) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError::Failed(format!(
                "condition returned {}, not a bool",
                kind(&other)
            ))),
            Err(EvalError::MissingField(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// An amount: a number, converted to a decimal without rounding.
    pub fn amount(&self, vars: &Variables) -> Result<Decimal, EvalError> {
        match self.evaluate(vars)? {
            Value::Int(i) => Ok(Decimal::from(i)),
            Value::UInt(u) => Ok(Decimal::from(u)),
            Value::Float(f) => crate::money::from_f64(f).ok_or_else(|| {
                EvalError::Failed(format!(
                    "amount expression returned {f}, not a finite number"
                ))
            }),
            other => Err(EvalError::Failed(format!(
                "amount expression returned {}, not a number",
                kind(&other)
            ))),
        }
    }
}

/// JSON as CEL sees it. Every JSON number is a double, as in Scrip (`event.amount > 50.0`).
pub fn from_json(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(from_json).collect()))
        }
        serde_json::Value::Object(map) => {
            let entries: HashMap<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect();
            Value::from(entries)
        }
    }
}

fn kind(value: &Value) -> String {
    format!("{:?}", value.type_of())
}

/// Deepest bracket nesting in the source, ignoring brackets inside string literals.
fn nesting(source: &str) -> usize {
    let (mut depth, mut deepest, mut quote, mut escaped) = (0usize, 0usize, None::<char>, false);
    for c in source.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Depth of the parsed tree, measured without recursion.
fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(root, 1usize)];
    while let Some((node, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(children(node).into_iter().map(|child| (child, d + 1)));
    }
    deepest
}

fn children(node: &IdedExpr) -> Vec<&IdedExpr> {
    fn entry_children(entry: &EntryExpr) -> Vec<&IdedExpr> {
        match entry {
            EntryExpr::StructField(field) => vec![&field.value],
            EntryExpr::MapEntry(entry) => vec![&entry.key, &entry.value],
        }
    }
    match &node.expr {
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| &**t)
            .chain(call.args.iter())
            .collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .flat_map(|e| entry_children(&e.expr))
            .collect(),
        Expr::Struct(s) => s
            .entries
            .iter()
            .flat_map(|e| entry_children(&e.expr))
            .collect(),
        Expr::Select(select) => vec![&select.operand],
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(event: serde_json::Value) -> Variables {
        Variables {
            event: from_json(&event),
            participant: from_json(&json!({"tags": []})),
            now: Utc::now(),
        }
    }

    #[test]
    fn quickstart_condition() {
        let c = compile(r#"event.type == "purchase""#).expect("compiles");
        assert_eq!(
            c.condition(&vars(json!({"type": "purchase", "amount": 49.99}))),
            Ok(true)
        );
        assert_eq!(c.condition(&vars(json!({"type": "refund"}))), Ok(false));
    }

    #[test]
    fn missing_field_is_false() {
        let c = compile("event.amount > 50.0").expect("compiles");
        assert_eq!(c.condition(&vars(json!({"type": "purchase"}))), Ok(false));
    }

    #[test]
    fn amounts_keep_decimal_digits() {
        let a = compile("event.amount * 10.0").expect("compiles");
        assert_eq!(
            a.amount(&vars(json!({"amount": 2.5}))),
            Ok(Decimal::from(25))
        );
    }

    #[test]
    fn hostile_sources_are_refused_before_parsing() {
        assert!(compile(&"a".repeat(MAX_LENGTH + 1)).is_err());
        let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
        assert!(compile(&deep).unwrap_err().contains("nests"));
        let chain = vec!["1"; 1500].join(" + ");
        assert!(compile(&chain).is_err());
        assert!(compile("event.type = 'x'").is_err());
    }
}
