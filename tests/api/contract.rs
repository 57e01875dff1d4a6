//! The OpenAPI document as a contract: every answer the tests receive must be documented for its operation and
//! status and validate against its schema, and every request the server accepted must be one the document
//! describes (its query parameters are documented, its JSON body validates). The document is the one the
//! server serves (`contract_is_the_served_document` checks that they are the same).

use jsonschema::Validator;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

pub struct Contract {
    document: Value,
    /// Compiled schemas by JSON pointer into the document.
    validators: Mutex<HashMap<String, std::sync::Arc<Validator>>>,
}

pub fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| Contract {
        document: serde_json::to_value(scrip::http::document()).expect("document serializes"),
        validators: Mutex::new(HashMap::new()),
    })
}

/// `~` and `/` escaped for a JSON pointer.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

impl Contract {
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// The documented path template that `path` (without query) matches, preferring literal segments.
    fn template(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let paths = self.document["paths"].as_object()?;
        paths
            .keys()
            .filter_map(|template| {
                let parts: Vec<&str> = template.split('/').collect();
                if parts.len() != segments.len() {
                    return None;
                }
                let mut literal = 0;
                for (part, segment) in parts.iter().zip(&segments) {
                    if part.starts_with('{') {
                        if segment.is_empty() {
                            return None;
                        }
                    } else if part == segment {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, template))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, template)| template.clone())
    }

    /// Validates `instance` against the schema at `pointer`; the error texts when it does not.
    fn violations(&self, pointer: &str, instance: &Value) -> Vec<String> {
        let cached = self
            .validators
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(pointer)
            .cloned();
        let validator = cached.unwrap_or_else(|| {
            // The schema sits beside `components`, so its `#/components/schemas/…` references resolve.
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "allOf": [self.document.pointer(pointer)],
                "components": self.document["components"],
            });
            let validator = std::sync::Arc::new(
                jsonschema::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("schema at {pointer} compiles: {e}")),
            );
            self.validators
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(pointer.to_owned(), validator.clone());
            validator
        });
        validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Checks one exchange; `path` is below the server root (`/v1/programs?limit=2`).
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        request: Option<&Value>,
        status: StatusCode,
        response: &Value,
    ) {
        let (route, query) = path.split_once('?').unwrap_or((path, ""));
        let exchange = format!("{method} {path} -> {status}");
        let Some(template) = self.template(route) else {
            // Unknown routes are the fallback's 404, or a method that is not served.
            assert!(
                matches!(status.as_u16(), 404 | 405),
                "{exchange}: no documented path matches, yet the server answered"
            );
            return;
        };
        let method_key = method.as_str().to_lowercase();
        let op_pointer = format!("/paths/{}/{method_key}", escape(&template));
        let Some(operation) = self.document.pointer(&op_pointer) else {
            assert_eq!(
                status.as_u16(),
                405,
                "{exchange}: {method} is not documented on {template}"
            );
            return;
        };
        let code = status.as_str();
        assert!(
            operation["responses"].get(code).is_some(),
            "{exchange}: status {code} is not documented for {method} {template}: {response}"
        );
        let content = format!("{op_pointer}/responses/{code}/content/application~1json/schema");
        if self.document.pointer(&content).is_some() {
            let problems = self.violations(&content, response);
            assert!(
                problems.is_empty(),
                "{exchange}: the answer does not match its schema: {problems:?}\n{response}"
            );
        }
        if !status.is_success() {
            return;
        }
        let parameters: Vec<&str> = operation["parameters"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter(|p| p["in"] == "query")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let name = pair.split('=').next().unwrap_or(pair);
            assert!(
                parameters.contains(&name),
                "{exchange}: the server accepted query parameter {name}, which is not documented"
            );
        }
        let body = format!("{op_pointer}/requestBody/content/application~1json/schema");
        if let Some(request) = request
            && self.document.pointer(&body).is_some()
        {
            let problems = self.violations(&body, request);
            assert!(
                problems.is_empty(),
                "{exchange}: the server accepted a body its document does not describe: {problems:?}\n{request}"
            );
        }
    }
}
