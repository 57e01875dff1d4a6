//! `scrip rules push`: uploads a component and creates a rule running it (or points an existing rule at it),
//! through the HTTP API like any other client, so it works against any server the key belongs to.

use serde_json::{Value, json};
use std::path::Path;

pub struct Push<'a> {
    /// The server's base URL, e.g. `http://127.0.0.1:8080`.
    pub url: &'a str,
    pub api_key: &'a str,
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
    if !p.url.starts_with("http://") {
        return Err(format!(
            "SCRIP_URL={} must be an http:// URL (this client speaks plain HTTP)",
            p.url
        ));
    }
    let bytes = std::fs::read(p.file).map_err(|e| format!("{}: {e}", p.file.display()))?;
    let client = reqwest::Client::new();
    let base = p.url.trim_end_matches('/');
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request
            .header("Authorization", format!("Bearer {}", p.api_key))
            .send()
            .await
            .map_err(|e| format!("cannot reach {base}: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status.is_success() {
            true => Ok(body),
            false => Err(format!(
                "{status}: {}",
                body["message"].as_str().unwrap_or("no message")
            )),
        }
    };
    let module = send(
        client
            .post(format!("{base}/v1/modules"))
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
        (Some(id), _) => send(client.patch(format!("{base}/v1/rules/{id}")).json(&rule)).await,
        (None, Some(program)) => {
            rule["program_id"] = json!(program);
            if p.name.is_none() {
                let stem = p.file.file_stem().map(|s| s.to_string_lossy().into_owned());
                rule["name"] = json!(stem.unwrap_or_else(|| "wasm rule".into()));
            }
            send(client.post(format!("{base}/v1/rules")).json(&rule)).await
        }
        (None, None) => {
            Err("--program (to create a rule) or --rule (to update one) is required".into())
        }
    }
    .map_err(|e| format!("rule: {e}"))?;
    Ok(Pushed { module, rule })
}
