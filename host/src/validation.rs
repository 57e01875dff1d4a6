//! Request parsing that names every bad field. Handlers read a JSON body or the query string through
//! [`Fields`]; each getter records a [`FieldError`] instead of failing fast, so one response lists every
//! problem. Getters for required fields return a placeholder after recording the error: callers must call
//! [`Validator::finish`] before using any value.

use crate::error::{Error, FieldError, Result};
use crate::money;
use crate::pagination::{Cursor, DEFAULT_LIMIT, MAX_LIMIT, PageParams};
use crate::schema::Vocabulary;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;
use uuid::Uuid;

crate::api_enum!(pub SortDir = SORT_DIRS ["asc", "desc"]);

/// The most tags or attributes one request may set: each is a write of its own, with its history row.
pub const MAX_ENTRIES: usize = 100;

/// A typed request body or query string, filled field by field from [`Fields`]. Each getter records what
/// is wrong, so one answer names every bad field; `read` may return placeholders then, and the caller
/// (the HTTP extractors) refuses the request before anything uses them.
pub trait Request: Sized {
    fn read(f: &Fields<'_>) -> Self;
}

/// Two shapes read from the same fields, as a page and a list's filters are.
impl<A: Request, B: Request> Request for (A, B) {
    fn read(f: &Fields<'_>) -> Self {
        (A::read(f), B::read(f))
    }
}

impl Request for PageParams {
    fn read(f: &Fields<'_>) -> Self {
        let (cursor, limit) = f.page();
        PageParams { cursor, limit }
    }
}

#[derive(Default)]
pub struct Validator {
    // A Mutex, not a RefCell, so handlers holding `Fields` across an await stay `Send`.
    errors: Mutex<Vec<FieldError>>,
}

/// A field that PATCH may leave alone, clear with `null`, or set.
#[derive(Debug, Clone, PartialEq)]
pub enum Patch<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Patch<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    /// Applies the change to `field`: sets it, clears it, or leaves it.
    pub fn apply(self, field: &mut Option<T>) {
        match self {
            Patch::Set(value) => *field = Some(value),
            Patch::Null => *field = None,
            Patch::Absent => {}
        }
    }
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, error: FieldError) {
        if let Ok(mut errors) = self.errors.lock() {
            errors.push(error);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.errors.lock().is_ok_and(|errors| !errors.is_empty())
    }

    /// `Err` with every recorded problem, if there is any.
    pub fn finish(self) -> Result<()> {
        let errors = self.errors.into_inner().unwrap_or_default();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(errors))
        }
    }

    /// The fields of a JSON request body, which must be an object.
    pub fn body<'v>(&'v self, body: &'v Value) -> Result<Fields<'v>> {
        match body {
            Value::Object(map) => Ok(Fields {
                validator: self,
                map,
                prefix: String::new(),
                from_query: false,
            }),
            other => Err(Error::invalid(FieldError::invalid(
                "body",
                "object",
                Some(type_name(other).into()),
                "The request body must be a JSON object",
            ))),
        }
    }

    /// Query parameters, whose values are all strings; numeric and boolean getters parse them.
    pub fn query<'v>(&'v self, map: &'v Map<String, Value>) -> Fields<'v> {
        Fields {
            validator: self,
            map,
            prefix: String::new(),
            from_query: true,
        }
    }
}

/// Turns raw query pairs into the map [`Validator::query`] reads.
pub fn query_map(pairs: HashMap<String, String>) -> Map<String, Value> {
    pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

pub struct Fields<'v> {
    validator: &'v Validator,
    map: &'v Map<String, Value>,
    prefix: String,
    from_query: bool,
}

impl<'v> Fields<'v> {
    /// The fields of a nested object, reported as `parent.child`.
    pub fn nested(&self, map: &'v Map<String, Value>, path: String) -> Fields<'v> {
        Fields {
            validator: self.validator,
            map,
            prefix: format!("{path}."),
            from_query: false,
        }
    }

    pub fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub fn raw(&self, key: &str) -> Option<&'v Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn reject(&self, key: &str, expected: &str, message: impl Into<String>) {
        let received = self.map.get(key).map(received);
        self.validator.push(FieldError::invalid(
            self.path(key),
            expected,
            received,
            message,
        ));
    }

    /// Records a problem found by a check of its own.
    pub fn push(&self, error: FieldError) {
        self.validator.push(error);
    }

    pub fn missing(&self, key: &str) {
        self.validator.push(FieldError::required(self.path(key)));
    }

    fn wrong(&self, key: &str, expected: &str, message: String) {
        self.reject(key, expected, message);
    }

    /// A string of `min..=max` characters; `None` when absent (or invalid, which is recorded).
    pub fn opt_str(&self, key: &str, min: usize, max: usize) -> Option<String> {
        let value = self.raw(key)?;
        let Value::String(text) = value else {
            self.wrong(key, "string", format!("{key} must be a string"));
            return None;
        };
        let len = text.chars().count();
        if len < min || len > max {
            let expected = format!("string of {min} to {max} characters");
            self.wrong(
                key,
                &expected,
                format!("{key} must be {min} to {max} characters long"),
            );
            return None;
        }
        Some(text.clone())
    }

    pub fn req_str(&self, key: &str, min: usize, max: usize) -> String {
        if self.raw(key).is_none() {
            self.missing(key);
        }
        self.opt_str(key, min, max).unwrap_or_default()
    }

    pub fn opt_uuid(&self, key: &str) -> Option<Uuid> {
        let value = self.raw(key)?;
        match value.as_str().map(Uuid::parse_str) {
            Some(Ok(id)) => Some(id),
            _ => {
                self.wrong(key, "uuid", format!("{key} must be a UUID"));
                None
            }
        }
    }

    pub fn req_uuid(&self, key: &str) -> Uuid {
        if self.raw(key).is_none() {
            self.missing(key);
        }
        self.opt_uuid(key).unwrap_or_default()
    }

    /// One of `allowed`, compared exactly (enum literals are upper case in this API).
    pub fn opt_enum(&self, key: &str, allowed: &[&'static str]) -> Option<&'static str> {
        let value = self.raw(key)?;
        let found = value
            .as_str()
            .and_then(|text| allowed.iter().copied().find(|a| *a == text));
        if found.is_none() {
            let expected = allowed.join("|");
            self.wrong(
                key,
                &expected,
                format!("{key} must be one of {}", allowed.join(", ")),
            );
        }
        found
    }

    pub fn req_enum(&self, key: &str, allowed: &[&'static str]) -> &'static str {
        if self.raw(key).is_none() {
            self.missing(key);
        }
        self.opt_enum(key, allowed).unwrap_or_default()
    }

    /// One word of a vocabulary.
    pub fn opt_word<T: Vocabulary>(&self, key: &str) -> Option<T> {
        self.opt_enum(key, T::NAMES).and_then(T::parse)
    }

    pub fn req_word<T: Vocabulary>(&self, key: &str) -> T {
        if self.raw(key).is_none() {
            self.missing(key);
        }
        self.opt_word(key).unwrap_or_else(T::placeholder)
    }

    pub fn opt_int(&self, key: &str, min: i64, max: i64) -> Option<i64> {
        let value = self.raw(key)?;
        let parsed = match value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) if self.from_query => s.parse().ok(),
            _ => None,
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(_) => {
                let expected = format!("integer from {min} to {max}");
                self.wrong(
                    key,
                    &expected,
                    format!("{key} must be between {min} and {max}"),
                );
                None
            }
            None => {
                self.wrong(key, "integer", format!("{key} must be an integer"));
                None
            }
        }
    }

    pub fn req_int(&self, key: &str, min: i64, max: i64) -> i64 {
        if self.raw(key).is_none() {
            self.missing(key);
        }
        self.opt_int(key, min, max).unwrap_or_default()
    }

    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        let value = self.raw(key)?;
        let parsed = match value {
            Value::Bool(b) => Some(*b),
            Value::String(s) if self.from_query => s.parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            self.wrong(key, "boolean", format!("{key} must be true or false"));
        }
        parsed
    }

    pub fn req_time(&self, key: &str) -> Option<DateTime<Utc>> {
        if self.raw(key).is_none() {
            self.missing(key);
        }
        self.opt_time(key)
    }

    pub fn opt_time(&self, key: &str) -> Option<DateTime<Utc>> {
        let value = self.raw(key)?;
        match value.as_str().map(DateTime::parse_from_rfc3339) {
            Some(Ok(t)) => Some(t.with_timezone(&Utc)),
            _ => {
                self.wrong(
                    key,
                    "RFC 3339 timestamp",
                    format!("{key} must be an RFC 3339 timestamp"),
                );
                None
            }
        }
    }

    /// A decimal string (`"10.50"`); numbers are refused so amounts never pass through a float.
    pub fn opt_decimal(&self, key: &str) -> Option<Decimal> {
        let value = self.raw(key)?;
        match value.as_str().map(money::parse_amount) {
            Some(Ok(d)) => Some(d),
            Some(Err(money::Invalid::TooLarge)) => {
                self.wrong(
                    key,
                    "decimal string",
                    format!("{key} is {}", money::Invalid::TooLarge),
                );
                None
            }
            _ => {
                self.wrong(
                    key,
                    "decimal string",
                    format!("{key} must be a decimal string such as \"10.50\""),
                );
                None
            }
        }
    }

    pub fn opt_positive_decimal(&self, key: &str) -> Option<Decimal> {
        let amount = self.opt_decimal(key)?;
        if amount <= Decimal::ZERO {
            self.wrong(
                key,
                "positive decimal string",
                format!("{key} must be greater than zero"),
            );
            return None;
        }
        Some(amount)
    }

    /// A positive decimal that must be present; a missing one is reported as `{key} is required`.
    pub fn req_positive_decimal(&self, key: &str) -> Option<Decimal> {
        if self.raw(key).is_none() {
            self.reject(key, "positive decimal string", format!("{key} is required"));
        }
        self.opt_positive_decimal(key)
    }

    /// The objects of the array `items` (read from `key`), each as the fields of `key[i]` with its map; an
    /// element that is not an object is reported and skipped.
    pub fn objects(
        &self,
        key: &str,
        items: &'v [Value],
    ) -> Vec<(Fields<'v>, &'v Map<String, Value>)> {
        let mut objects = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = self.path(&format!("{key}[{i}]"));
            match item.as_object() {
                Some(map) => objects.push((self.nested(map, path), map)),
                None => self.reject(key, "array of objects", format!("{path} must be an object")),
            }
        }
        objects
    }

    pub fn opt_object(&self, key: &str) -> Option<&'v Map<String, Value>> {
        let value = self.raw(key)?;
        let object = value.as_object();
        if object.is_none() {
            self.wrong(key, "object", format!("{key} must be a JSON object"));
        }
        object
    }

    pub fn req_object(&self, key: &str) -> Option<&'v Map<String, Value>> {
        if self.raw(key).is_none() {
            self.missing(key);
        }
        self.opt_object(key)
    }

    pub fn opt_array(&self, key: &str) -> Option<&'v Vec<Value>> {
        let value = self.raw(key)?;
        let array = value.as_array();
        if array.is_none() {
            self.wrong(key, "array", format!("{key} must be an array"));
        }
        array
    }

    /// A `{string: string}` map, as participant attributes are.
    pub fn opt_string_map(&self, key: &str, max_len: usize) -> Option<Vec<(String, String)>> {
        let object = self.opt_object(key)?;
        if object.len() > MAX_ENTRIES {
            self.wrong(
                key,
                &format!("at most {MAX_ENTRIES} entries"),
                format!("{key} may hold at most {MAX_ENTRIES} entries in one request"),
            );
            return None;
        }
        let mut pairs = Vec::with_capacity(object.len());
        for (name, value) in object {
            match value.as_str() {
                Some(text)
                    if !name.is_empty()
                        && name.chars().count() <= 255
                        && text.chars().count() <= max_len =>
                {
                    pairs.push((name.clone(), text.to_owned()));
                }
                _ => self.validator.push(FieldError::invalid(
                    format!("{}.{name}", self.path(key)),
                    format!("string of at most {max_len} characters"),
                    Some(received(value)),
                    format!("{key} values must be strings of at most {max_len} characters"),
                )),
            }
        }
        Some(pairs)
    }

    /// A `{string: string}` map that must be present.
    pub fn req_string_map(&self, key: &str, max_len: usize) -> Vec<(String, String)> {
        if self.raw(key).is_none() {
            self.reject(key, "object of strings", format!("{key} is required"));
        }
        self.opt_string_map(key, max_len).unwrap_or_default()
    }

    /// A list of strings that must be present (it may be empty).
    pub fn req_string_list(&self, key: &str, max_len: usize) -> Vec<String> {
        if self.raw(key).is_none() {
            self.reject(key, "array of strings", format!("{key} is required"));
        }
        self.opt_string_list(key, max_len).unwrap_or_default()
    }

    /// A list of non-empty strings of at most `max_len` characters.
    pub fn opt_string_list(&self, key: &str, max_len: usize) -> Option<Vec<String>> {
        let array = self.opt_array(key)?;
        if array.len() > MAX_ENTRIES {
            self.wrong(
                key,
                &format!("at most {MAX_ENTRIES} items"),
                format!("{key} may hold at most {MAX_ENTRIES} items in one request"),
            );
            return None;
        }
        let mut items = Vec::with_capacity(array.len());
        for (i, value) in array.iter().enumerate() {
            match value.as_str() {
                Some(text) if !text.is_empty() && text.chars().count() <= max_len => {
                    items.push(text.to_owned())
                }
                _ => self.validator.push(FieldError::invalid(
                    format!("{}[{i}]", self.path(key)),
                    format!("string of 1 to {max_len} characters"),
                    Some(received(value)),
                    format!("{key} items must be strings of 1 to {max_len} characters"),
                )),
            }
        }
        Some(items)
    }

    /// For PATCH: absent, explicit `null`, or a value read by `read`.
    pub fn patch<T>(&self, key: &str, read: impl FnOnce(&Self, &str) -> Option<T>) -> Patch<T> {
        match self.map.get(key) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(_) => read(self, key).map_or(Patch::Absent, Patch::Set),
        }
    }

    /// `cursor` and `limit` of a list.
    pub fn page(&self) -> (Option<Cursor>, i64) {
        self.page_within(DEFAULT_LIMIT, MAX_LIMIT)
    }

    /// `cursor` and `limit` of a list whose pages hold at most `max` rows.
    pub fn page_within(&self, default: i64, max: i64) -> (Option<Cursor>, i64) {
        let cursor = self.opt_cursor(
            "cursor",
            "cursor from pagination.next_cursor",
            "cursor is not a valid pagination cursor",
        );
        (cursor, self.limit(default, max))
    }

    /// A cursor an earlier answer gave; `expected` says which, `message` what is wrong with another.
    pub fn opt_cursor(&self, key: &str, expected: &str, message: &str) -> Option<Cursor> {
        self.opt_str(key, 1, 1000).and_then(|text| {
            let cursor = Cursor::decode(&text);
            if cursor.is_none() {
                self.reject(key, expected, message);
            }
            cursor
        })
    }

    /// `sort_dir`: `asc`, or `desc` (the default).
    pub fn ascending(&self) -> bool {
        self.opt_enum("sort_dir", SORT_DIRS) == Some("asc")
    }

    /// PATCH bodies must change something.
    pub fn require_any(&self) {
        if self.map.is_empty() {
            self.reject(
                "body",
                "at least one field",
                "at least one field must be given",
            );
        }
    }

    /// `limit`: 1 to `max`, `default` when absent.
    pub fn limit(&self, default: i64, max: i64) -> i64 {
        self.opt_int("limit", 1, max).unwrap_or(default)
    }

    /// Both or neither of `from` and `to`, with `from <= to` (the reports' windows).
    pub fn window(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.pair("from", "to")
    }

    /// `from` and `to`, both required, the first not after the second; the epoch when invalid (recorded).
    pub fn req_window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        for end in ["from", "to"] {
            if self.raw(end).is_none() {
                self.missing(end);
            }
        }
        self.window().unwrap_or_default()
    }

    /// A range that may be open at either end: `start`, `end`, or both with the first not after the second.
    pub fn range(&self, start: &str, end: &str) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let (from, to) = (self.opt_time(start), self.opt_time(end));
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            self.reject(
                end,
                &format!("timestamp not before {start}"),
                format!("{end} must not be before {start}"),
            );
            return (None, None);
        }
        (from, to)
    }

    /// Two timestamps bounding a range: both or neither, the first not after the second.
    pub fn pair(&self, start: &str, end: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let (from, to) = (self.opt_time(start), self.opt_time(end));
        match (self.raw(start).is_some(), self.raw(end).is_some()) {
            (true, false) => self.reject(
                end,
                "RFC 3339 timestamp",
                format!("{end} is required when {start} is given"),
            ),
            (false, true) => self.reject(
                start,
                "RFC 3339 timestamp",
                format!("{start} is required when {end} is given"),
            ),
            _ => {}
        }
        let (from, to) = (from?, to?);
        if from > to {
            self.reject(
                end,
                &format!("timestamp not before {start}"),
                format!("{end} must not be before {start}"),
            );
            return None;
        }
        Some((from, to))
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What the client sent, shortened for the error body.
fn received(value: &Value) -> String {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 100 {
        format!("{}…", text.chars().take(100).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collects_every_bad_field() {
        let body = json!({"name": "", "scale": "2", "program_id": "nope"});
        let v = Validator::new();
        let f = v.body(&body).expect("object");
        f.req_str("name", 1, 255);
        f.req_int("scale", 0, 18);
        f.req_uuid("program_id");
        f.req_enum("inventory_mode", &["SIMPLE", "LOT"]);
        let Err(Error::Invalid(errors)) = v.finish() else {
            panic!("expected errors")
        };
        let fields: Vec<_> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.reason))
            .collect();
        assert_eq!(
            fields,
            [
                ("name", "invalid"),
                ("scale", "invalid"),
                ("program_id", "invalid"),
                ("inventory_mode", "required")
            ]
        );
    }

    #[test]
    fn query_values_parse_from_strings() {
        let map = query_map(HashMap::from([
            ("limit".into(), "20".into()),
            ("flag".into(), "true".into()),
        ]));
        let v = Validator::new();
        let q = v.query(&map);
        assert_eq!(q.limit(50, 200), 20);
        assert_eq!(q.opt_bool("flag"), Some(true));
        assert!(v.finish().is_ok());
    }

    #[test]
    fn window_needs_both_ends() {
        let map = query_map(HashMap::from([(
            "from".into(),
            "2024-01-01T00:00:00Z".into(),
        )]));
        let v = Validator::new();
        assert_eq!(v.query(&map).window(), None);
        let Err(Error::Invalid(errors)) = v.finish() else {
            panic!("expected errors")
        };
        assert_eq!(errors[0].field, "to");
    }
}
