//! The CLI's HTTP client (`scrip rules …`): it talks to a running server through the API, like any other
//! client, so it works against any server the key belongs to.

use serde_json::Value;

/// A server and the API key to call it with.
pub struct Api {
    base: String,
    api_key: String,
    client: reqwest::Client,
}

impl Api {
    /// `url` is the server's base URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(url: &str, api_key: &str) -> Result<Api, String> {
        if !url.starts_with("http://") {
            return Err(format!(
                "SCRIP_URL={url} must be an http:// URL (this client speaks plain HTTP)"
            ));
        }
        Ok(Api {
            base: url.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            client: reqwest::Client::new(),
        })
    }

    /// A request to `/v1{path}`.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}/v1{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.api_key))
    }

    /// Sends it; a refusal is `Err` with the status and the API's message.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value, String> {
        let response = request
            .send()
            .await
            .map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match status.is_success() {
            true => Ok(body),
            false => Err(format!(
                "{status}: {}",
                body["message"].as_str().unwrap_or("no message")
            )),
        }
    }
}
