//! `scrip rules push`: uploads a component and creates a rule running it (or points an existing rule at it),
//! through the HTTP API (`client`).

use crate::client::Api;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;

pub struct Push<'a> {
    pub api: &'a Api,
    pub file: &'a Path,
    pub program_id: Option<&'a str>,
    /// An existing rule to move to the new module instead of creating one.
    pub rule_id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub config: Option<Value>,
}

/// What was pushed: the module and the rule using it.
pub struct Pushed {
    pub module: Value,
    pub rule: Value,
}

pub async fn push(p: Push<'_>) -> Result<Pushed, String> {
    let bytes = std::fs::read(p.file).map_err(|e| format!("{}: {e}", p.file.display()))?;
    let api = p.api;
    let module = api
        .send(
            api.request(Method::POST, "/modules")
                .header("Content-Type", "application/wasm")
                .body(bytes),
        )
        .await
        .map_err(|e| format!("upload: {e}"))?;
    let mut rule = json!({"module_id": module["id"]});
    if let Some(config) = p.config {
        rule["config"] = config;
    }
    if let Some(name) = p.name {
        rule["name"] = json!(name);
    }
    let rule = match (p.rule_id, p.program_id) {
        (Some(id), _) => {
            let request = api.request(Method::PATCH, &format!("/rules/{id}"));
            api.send(request.json(&rule)).await
        }
        (None, Some(program)) => {
            rule["program_id"] = json!(program);
            if p.name.is_none() {
                let stem = p.file.file_stem().map(|s| s.to_string_lossy().into_owned());
                rule["name"] = json!(stem.unwrap_or_else(|| "wasm rule".into()));
            }
            api.send(api.request(Method::POST, "/rules").json(&rule))
                .await
        }
        (None, None) => {
            Err("--program (to create a rule) or --rule (to update one) is required".into())
        }
    }
    .map_err(|e| format!("rule: {e}"))?;
    Ok(Pushed { module, rule })
}
