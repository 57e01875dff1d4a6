//! CEL expressions of rules: compiled once per rule version, evaluated per event.
//!
//! Hostile input is bounded before and after parsing: a length cap and a bracket-nesting cap run before the
//! parser sees the text, the parser runs on a thread with a large stack, and the parsed tree's depth is capped
//! so evaluation (which recurses over the tree) cannot exhaust a worker's stack.
//!
//! Numbers: every JSON number is a double, and so is every integer literal a rule writes (they are rewritten
//! after parsing), so `event.amount > 50` and `event.amount * 10` work as rule authors expect. Only `int()`
//! and `size()` produce integers. Helpers beyond the standard library: `get(map, key, default)`,
//! `round(x)`/`round(x, digits)` (half away from zero), `sets.contains(list, sub)` (all of `sub` in `list`),
//! `sets.intersects(a, b)` (any in common), and the `math.*` extension.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue};
use cel::common::types::{CelDouble, DYN_TYPE};
use cel::common::value::{CowVal, Val};
use cel::{Context, Env, ExecutionError, Value};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use rust_decimal::RoundingStrategy;
use rust_decimal::prelude::ToPrimitive;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

pub const MAX_LENGTH: usize = 4096;
pub const MAX_NESTING: usize = 32;
const MAX_TREE_DEPTH: usize = 64;
const COMPILE_STACK_BYTES: usize = 32 * 1024 * 1024;

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(environment()));

/// A compiled expression, shared by every evaluation of one rule version.
#[derive(Clone)]
pub struct Expression {
    tree: Arc<IdedExpr>,
    /// Whether it has a macro such as `map()`: the only construct whose work grows with the input beyond
    /// one pass over it.
    loops: bool,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Expression")
    }
}

impl Expression {
    /// Whether it reads the variable `name` (`group`, `participant`, ...).
    pub fn reads(&self, name: &str) -> bool {
        mentions(&self.tree, &[name])
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
        .spawn(move || -> Result<IdedExpr, String> {
            let mut tree = ENV.parser().parse(&text).map_err(|e| e.to_string())?;
            if depth(&tree) > MAX_TREE_DEPTH {
                return Err(format!(
                    "expression is nested deeper than {MAX_TREE_DEPTH} operations"
                ));
            }
            if nested_comprehension(&tree) {
                // One loop over event data is linear in its size; a loop inside a loop is not.
                return Err("macros such as all(), exists() and map() cannot be nested".into());
            }
            if let Some(copy) = copies_input_per_step(&tree) {
                return Err(format!(
                    "inside all(), exists(), exists_one(), map() and filter(), {copy} cannot take event or \
                     participant data other than what the loop's variable reads: it would copy that data on \
                     every step"
                ));
            }
            ints_to_doubles(&mut tree);
            Ok(tree)
        })
        .map_err(|e| format!("cannot start the compiler: {e}"))?
        .join()
        .map_err(|_| "the expression could not be parsed".to_string())??;
    Ok(Expression {
        loops: has_comprehension(&parsed),
        tree: Arc::new(parsed),
    })
}

/// Compiles a rule's condition, refusing one whose form shows it can never be true or false.
pub fn compile_condition(source: &str) -> Result<Expression, String> {
    let expression = compile(source)?;
    match never_boolean(&expression.tree) {
        Some(kind) => Err(format!(
            "a condition must evaluate to true or false, and this one is {kind}"
        )),
        None => Ok(expression),
    }
}

/// What an expression certainly is when its form shows it cannot be a boolean: a literal, a list or map,
/// arithmetic, a conversion, or a conditional whose branches both are such. Whatever reads data is left to
/// run time, as are macros (`map()` makes a list, `all()` a boolean).
fn never_boolean(node: &IdedExpr) -> Option<&'static str> {
    use cel::common::ast::operators as op;
    match &node.expr {
        Expr::Literal(LiteralValue::Boolean(_)) => None,
        Expr::Literal(LiteralValue::String(_)) => Some("a string"),
        Expr::Literal(LiteralValue::Bytes(_)) => Some("bytes"),
        Expr::Literal(LiteralValue::Null) => Some("null"),
        Expr::Literal(_) => Some("a number"),
        Expr::List(_) => Some("a list"),
        Expr::Map(_) | Expr::Struct(_) => Some("a map"),
        Expr::Call(call) => match call.func_name.as_str() {
            op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO | op::NEGATE => {
                Some("the result of arithmetic")
            }
            "size" | "int" | "uint" | "double" => Some("a number"),
            "string" => Some("a string"),
            "timestamp" | "duration" => Some("a time"),
            op::CONDITIONAL => match call.args.as_slice() {
                [_, yes, no] => never_boolean(yes).and(never_boolean(no)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

fn has_comprehension(root: &IdedExpr) -> bool {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if let Expr::Comprehension(_) = node.expr {
            return true;
        }
        stack.extend(children(node));
    }
    false
}

/// Runs `work` without holding up the async runtime's other tasks (the API's requests among them): on a
/// multi-threaded runtime, as the server's is, this thread first hands them to another.
fn off_the_runtime<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|runtime| runtime.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// The variables an expression sees: `event`, `participant`, `group` and `now` (the event's timestamp). They are
/// bound once per event, not per expression: binding converts the whole event into the interpreter's
/// representation, which costs more than evaluating a typical condition.
pub struct Variables {
    pub now: DateTime<Utc>,
    context: Context<'static, 'static>,
}

impl Variables {
    pub fn new(event: Value, participant: Value, now: DateTime<Utc>) -> Variables {
        let mut context = Context::with_env(ENV.clone());
        context.add_variable_from_value("event", event);
        context.add_variable_from_value("participant", participant);
        context.add_variable_from_value("now", Value::Timestamp(now.fixed_offset()));
        Variables { now, context }
    }

    /// `group`: the state of the event's participant's group, or `None` when they are in none, so that
    /// reading it is a missing field, as for any absent input. Bound only for rules that read it.
    pub fn set_group(&mut self, group: Option<Value>) {
        let group = group.unwrap_or_else(|| from_json(&serde_json::json!({})));
        self.context.add_variable_from_value("group", group);
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// The expression read a field the input does not have.
    MissingField(String),
    Failed(String),
}

impl std::error::Error for EvalError {}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::MissingField(key) => write!(f, "no such field: {key}"),
            EvalError::Failed(message) => f.write_str(message),
        }
    }
}

impl Expression {
    /// Evaluates the expression; one that loops runs off the async runtime's threads, as it may take long.
    pub fn evaluate(&self, vars: &Variables) -> Result<Value, EvalError> {
        let resolve = || Value::resolve(&self.tree, &vars.context);
        let resolved = if self.loops {
            off_the_runtime(resolve)
        } else {
            resolve()
        };
        resolved.map_err(|err| match err {
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

    /// An amount: a number, converted to a decimal without rounding, within the amount bound.
    pub fn amount(&self, vars: &Variables) -> Result<Decimal, EvalError> {
        let amount = match self.evaluate(vars)? {
            Value::Int(i) => Decimal::from(i),
            Value::UInt(u) => Decimal::from(u),
            Value::Float(f) => crate::money::from_f64(f).ok_or_else(|| {
                EvalError::Failed(format!(
                    "amount expression returned {f}, not a finite number"
                ))
            })?,
            other => {
                return Err(EvalError::Failed(format!(
                    "amount expression returned {}, not a number",
                    kind(&other)
                )));
            }
        };
        crate::money::bounded(amount).map_err(|invalid| {
            EvalError::Failed(format!("amount expression returned {amount}, {invalid}"))
        })
    }
}

/// A field that is "static or CEL": an expression when it reads `event`, `participant` or `now` (or is a
/// quoted CEL string), literal text otherwise, so `premium` and `user-123` mean themselves.
#[derive(Debug, Clone)]
pub enum Template {
    Literal(String),
    Expression(Expression),
}

impl Template {
    pub fn parse(source: &str) -> Result<Template, String> {
        if source.chars().count() > MAX_LENGTH {
            return Err(format!("value is longer than {MAX_LENGTH} characters"));
        }
        Ok(match compile(source) {
            Ok(expression) if reads_inputs(&expression.tree) => Template::Expression(expression),
            Ok(expression) => match &expression.tree.expr {
                Expr::Literal(LiteralValue::String(text)) => {
                    Template::Literal(text.inner().to_string())
                }
                _ => Template::Literal(source.to_owned()),
            },
            Err(_) => Template::Literal(source.to_owned()),
        })
    }

    /// The text, evaluating an expression; numbers render without a trailing `.0`.
    pub fn render(&self, vars: &Variables) -> Result<String, EvalError> {
        let expression = match self {
            Template::Literal(text) => return Ok(text.clone()),
            Template::Expression(expression) => expression,
        };
        match expression.evaluate(vars)? {
            Value::String(text) => Ok(text.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Int(i) => Ok(i.to_string()),
            Value::UInt(u) => Ok(u.to_string()),
            Value::Float(f) => crate::money::from_f64(f)
                .map(|d| d.normalize().to_string())
                .ok_or_else(|| EvalError::Failed(format!("{f} is not a finite number"))),
            other => Err(EvalError::Failed(format!(
                "expected a string, got {}",
                kind(&other)
            ))),
        }
    }
}

fn reads_inputs(root: &IdedExpr) -> bool {
    mentions(root, &["event", "participant", "group", "now"])
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

/// Operations whose result is a single value however large their operands: inside a loop they may take
/// anything. Any other (`+`, which concatenates lists and strings; conversions to text) builds a value as
/// large as its operands.
const SINGLE_VALUED: &[&str] = &[
    "_==_",
    "_!=_",
    "_<_",
    "_<=_",
    "_>_",
    "_>=_",
    "_&&_",
    "_||_",
    "!_",
    "_?_:_",
    "_-_",
    "_*_",
    "_/_",
    "_%_",
    "-_",
    "_[_]",
    "_[?_]",
    "_?._",
    "@in",
    "@not_strictly_false",
    "has",
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "get",
    "round",
    "int",
    "uint",
    "double",
    "bool",
    "type",
    "timestamp",
    "duration",
    "sets.contains",
    "sets.intersects",
];

/// The first operation inside a macro's loop that builds a value from `event` or `participant` data which
/// is the same on every step: such a loop copies that data once per element, so its work and memory grow
/// with the square of the input. (What the loop's variable reads is visited once in all: linear.)
fn copies_input_per_step(root: &IdedExpr) -> Option<String> {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        stack.extend(children(node));
        let Expr::Comprehension(c) = &node.expr else {
            continue;
        };
        let loop_vars: Vec<&str> = [c.iter_var.as_str(), c.accu_var.as_str()]
            .into_iter()
            .chain(c.iter_var2.as_deref())
            .collect();
        let mut inside = vec![&c.loop_cond, &c.loop_step];
        while let Some(step) = inside.pop() {
            inside.extend(children(step));
            let Expr::Call(call) = &step.expr else {
                continue;
            };
            if SINGLE_VALUED.contains(&call.func_name.as_str())
                || call.func_name.starts_with("math.")
            {
                continue;
            }
            let copies_input = call
                .target
                .iter()
                .map(|t| &**t)
                .chain(&call.args)
                .any(|operand| {
                    mentions(operand, &["event", "participant", "group"])
                        && !mentions(operand, &loop_vars)
                });
            if copies_input {
                return Some(match call.func_name.as_str() {
                    "_+_" => "+".to_string(),
                    name => format!("{name}()"),
                });
            }
        }
    }
    None
}

/// Whether the expression reads any of these variables.
fn mentions(root: &IdedExpr, names: &[&str]) -> bool {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if let Expr::Ident(name) = &node.expr
            && names.contains(&name.as_str())
        {
            return true;
        }
        stack.extend(children(node));
    }
    false
}

fn nested_comprehension(root: &IdedExpr) -> bool {
    let mut stack = vec![(root, false)];
    while let Some((node, inside)) = stack.pop() {
        let here = matches!(node.expr, Expr::Comprehension(_));
        if here && inside {
            return true;
        }
        stack.extend(
            children(node)
                .into_iter()
                .map(|child| (child, inside || here)),
        );
    }
    false
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

/// Integer literals become doubles, so they mix with JSON numbers in arithmetic. Map keys stay as written.
/// Runs after the depth check, so the recursion is bounded.
fn ints_to_doubles(node: &mut IdedExpr) {
    match &mut node.expr {
        Expr::Literal(LiteralValue::Int(i)) => {
            node.expr = Expr::Literal(LiteralValue::Double(CelDouble::from(*i.inner() as f64)));
        }
        Expr::Call(call) => {
            call.target.iter_mut().for_each(|t| ints_to_doubles(t));
            call.args.iter_mut().for_each(ints_to_doubles);
        }
        Expr::Comprehension(c) => {
            for child in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                ints_to_doubles(child);
            }
        }
        Expr::List(list) => list.elements.iter_mut().for_each(ints_to_doubles),
        Expr::Map(map) => map.entries.iter_mut().for_each(|e| {
            if let EntryExpr::MapEntry(entry) = &mut e.expr {
                ints_to_doubles(&mut entry.value);
            }
        }),
        Expr::Struct(s) => s.entries.iter_mut().for_each(|e| {
            if let EntryExpr::StructField(field) = &mut e.expr {
                ints_to_doubles(&mut field.value);
            }
        }),
        Expr::Select(select) => ints_to_doubles(&mut select.operand),
        Expr::Unspecified | Expr::Ident(_) | Expr::Literal(_) => {}
    }
}

/// The standard library, the `math` extension, and the helpers Scrip's rule docs use.
fn environment() -> Env {
    let mut env = Env::stdlib();
    let registered = env
        .add_extension(cel::extensions::math)
        .and_then(|()| {
            env.add_overload("get", "scrip_get", vec![DYN_TYPE, DYN_TYPE, DYN_TYPE], get)
        })
        .and_then(|()| {
            env.add_overload(
                "round",
                "scrip_round_digits",
                vec![DYN_TYPE, DYN_TYPE],
                round,
            )
        })
        .and_then(|()| env.add_overload("round", "scrip_round", vec![DYN_TYPE], round))
        .and_then(|()| {
            env.add_overload(
                "sets.contains",
                "scrip_sets_contains",
                vec![DYN_TYPE, DYN_TYPE],
                sets_contains,
            )
        })
        .and_then(|()| {
            env.add_overload(
                "sets.intersects",
                "scrip_sets_intersects",
                vec![DYN_TYPE, DYN_TYPE],
                sets_intersects,
            )
        });
    if let Err(err) = registered {
        // Only a name clash with the standard library can fail here, which the unit tests rule out.
        tracing::error!(error = %err, "CEL helpers not registered");
    }
    env
}

type Args<'b, 'v> = Vec<CowVal<'b, 'v>>;
type Returned<'b, 'v> = Result<CowVal<'b, 'v>, ExecutionError>;

fn values(args: &Args<'_, '_>) -> Result<Vec<Value>, ExecutionError> {
    args.iter().map(|a| Value::try_from(a.as_ref())).collect()
}

fn returned<'b, 'v>(value: Value) -> Returned<'b, 'v> {
    let boxed: Box<dyn Val> = value.try_into()?;
    Ok(CowVal::from(boxed))
}

fn number(function: &str, value: &Value) -> Result<f64, ExecutionError> {
    match value {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::UInt(u) => Ok(*u as f64),
        other => Err(ExecutionError::function_error(
            function,
            format!("expected a number, got {other:?}"),
        )),
    }
}

/// `get(map, key, default)`: the value under `key`, or `default` when the map lacks it.
fn get<'b, 'v>(args: Args<'b, 'v>) -> Returned<'b, 'v> {
    let [map, key, default]: [Value; 3] = values(&args)?
        .try_into()
        .map_err(|_| ExecutionError::invalid_argument_count(3, args.len()))?;
    let found = match (&map, &key) {
        (Value::Map(map), Value::String(key)) => map
            .map
            .get(&cel::objects::Key::String(key.clone()))
            .cloned(),
        (Value::Null, _) => None,
        (Value::Map(_), _) => None,
        (other, _) => {
            return Err(ExecutionError::function_error(
                "get",
                format!("expected a map, got {other:?}"),
            ));
        }
    };
    returned(found.unwrap_or(default))
}

/// `round(x)` or `round(x, digits)`, half away from zero, computed in decimal so `round(2.675, 2)` is 2.68.
fn round<'b, 'v>(args: Args<'b, 'v>) -> Returned<'b, 'v> {
    let values = values(&args)?;
    let x = number("round", &values[0])?;
    let digits = match values.get(1) {
        Some(d) => number("round", d)?,
        None => 0.0,
    };
    if !(0.0..=18.0).contains(&digits) || digits.fract() != 0.0 {
        return Err(ExecutionError::function_error(
            "round",
            "digits must be a whole number from 0 to 18",
        ));
    }
    let rounded = crate::money::from_f64(x)
        .map(|d| d.round_dp_with_strategy(digits as u32, RoundingStrategy::MidpointAwayFromZero))
        .and_then(|d| d.to_f64())
        .ok_or_else(|| ExecutionError::function_error("round", format!("cannot round {x}")))?;
    returned(Value::Float(rounded))
}

fn two_lists(
    function: &str,
    args: &Args<'_, '_>,
) -> Result<(Vec<Value>, Vec<Value>), ExecutionError> {
    match <[Value; 2]>::try_from(values(args)?) {
        Ok([Value::List(a), Value::List(b)]) => Ok((a.to_vec(), b.to_vec())),
        _ => Err(ExecutionError::function_error(
            function,
            "expected two lists",
        )),
    }
}

/// `sets.contains(list, sub)`: every element of `sub` is in `list`.
fn sets_contains<'b, 'v>(args: Args<'b, 'v>) -> Returned<'b, 'v> {
    let (list, sub) = two_lists("sets.contains", &args)?;
    returned(Value::Bool(sub.iter().all(|x| list.contains(x))))
}

/// `sets.intersects(a, b)`: the lists share at least one element.
fn sets_intersects<'b, 'v>(args: Args<'b, 'v>) -> Returned<'b, 'v> {
    let (a, b) = two_lists("sets.intersects", &args)?;
    returned(Value::Bool(a.iter().any(|x| b.contains(x))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(event: serde_json::Value) -> Variables {
        Variables::new(
            from_json(&event),
            from_json(&json!({"tags": [], "counters": {"visits": 3}})),
            Utc::now(),
        )
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
    fn loops_that_copy_the_whole_input_on_every_step_are_refused() {
        for quadratic in [
            "event.l.map(x, event.l + event.l).size() > 0",
            "event.l.exists(x, event.s + 'a' == 'b')",
            "event.l.filter(x, participant.tags + [x] == []).size() > 0",
            "event.l.all(x, string(event.amount) != x)",
        ] {
            let refused = compile(quadratic).err().unwrap_or_default();
            assert!(
                refused.contains("would copy that data on every step"),
                "{quadratic}: {refused:?}"
            );
        }
        for linear in [
            "event.items.map(i, i.price + i.tax).size() > 0",
            "event.items.exists(i, i.sku in event.promo_skus && i.price * event.rate > 10)",
            "event.items.all(i, i.tags + ['x'] != [])",
            "event.l.map(x, x + 1).size() > 0 && event.l + event.l != []",
            "event.items.exists(i, i.name.startsWith(event.prefix) || size(event.l) > 3)",
        ] {
            assert!(
                compile(linear).is_ok(),
                "{linear}: {:?}",
                compile(linear).err()
            );
        }
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
    fn numbers_mix_as_rule_authors_expect() {
        let v = vars(
            json!({"amount": 49.99, "items": [{"sku": "a"}, {"sku": "b"}], "tags": ["x", "y"]}),
        );
        let eval = |src: &str| compile(src).expect(src).evaluate(&v);
        assert_eq!(eval("event.amount > 50"), Ok(Value::Bool(false)));
        assert_eq!(
            eval("event.amount * 10"),
            Ok(Value::Float(499.90000000000003))
        );
        assert_eq!(eval("round(event.amount * 0.05, 2)"), Ok(Value::Float(2.5)));
        assert_eq!(eval("round(2.675, 2)"), Ok(Value::Float(2.68)));
        assert_eq!(eval("3 / 2"), Ok(Value::Float(1.5)));
        assert_eq!(eval("event.items[1].sku"), Ok(Value::from("b")));
        assert_eq!(eval("size(event.items) == 2"), Ok(Value::Bool(true)));
        assert_eq!(
            eval("event.items.exists_one(i, i.sku == 'a')"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("get(participant.counters, 'visits', 0) + 1"),
            Ok(Value::Float(4.0))
        );
        assert_eq!(
            eval("get(participant.counters, 'missing', 0) + 1"),
            Ok(Value::Float(1.0))
        );
        assert_eq!(
            eval("sets.contains(event.tags, ['x'])"),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            eval("sets.contains(event.tags, ['x', 'z'])"),
            Ok(Value::Bool(false))
        );
        assert_eq!(
            eval("sets.intersects(event.tags, ['z', 'y'])"),
            Ok(Value::Bool(true))
        );
        assert_eq!(eval("math.greatest(1, 2.5)"), Ok(Value::Float(2.5)));
        assert_eq!(eval("{1: 'one'}[1]"), Ok(Value::from("one")));
        assert_eq!(eval("now - duration('24h') < now"), Ok(Value::Bool(true)));
    }

    #[test]
    fn templates_are_literal_unless_they_read_inputs() {
        let v = vars(json!({"referrer": "ref-9", "points": 5}));
        let render = |src: &str| Template::parse(src).expect(src).render(&v);
        assert_eq!(render("premium"), Ok("premium".into()));
        assert_eq!(render("user-123"), Ok("user-123".into()));
        assert_eq!(render("'quoted'"), Ok("quoted".into()));
        assert_eq!(render("event.referrer"), Ok("ref-9".into()));
        assert_eq!(render("event.points * 2"), Ok("10".into()));
        assert!(matches!(
            render("event.missing"),
            Err(EvalError::MissingField(_))
        ));
    }

    #[test]
    fn hostile_sources_are_refused_before_parsing() {
        assert!(compile(&"a".repeat(MAX_LENGTH + 1)).is_err());
        for never in [
            "42",
            "'yes'",
            "event.amount * 10",
            "[true]",
            "size(event.items)",
            "event.a ? 1 : 2",
        ] {
            let refused = compile_condition(never).expect_err(never);
            assert!(refused.contains("true or false"), "{never}: {refused}");
        }
        for maybe in [
            "true",
            "event.flag",
            "event.a ? event.b : false",
            "event.items.all(i, i > 1)",
        ] {
            assert!(compile_condition(maybe).is_ok(), "{maybe}");
        }
        let deep = format!("{}1{}", "(".repeat(1000), ")".repeat(1000));
        assert!(compile(&deep).unwrap_err().contains("nests"));
        let chain = vec!["1"; 1500].join(" + ");
        assert!(compile(&chain).is_err());
        assert!(compile("event.type = 'x'").is_err());
        assert!(compile("event.items.all(x, event.items.exists(y, y == x))").is_err());
        assert!(compile("event.items.all(x, x > 0) && event.tags.exists(t, t == 'a')").is_ok());
    }
}
