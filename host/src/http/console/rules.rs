//! The rule editor: create a CEL or wasm rule, edit it, check a condition, simulate the saved rule against a
//! sample event (with a wasm rule's fuel and logs), backtest what the editor holds over stored events, and
//! upload a module. Bodies are read by the API's own readers ([`CreateRule`], [`UpdateRule`], [`Simulate`],
//! [`Backtest`]), so the console refuses exactly what the API does.

use super::layout::{self, page};
use super::programs::fields;
use super::session::{CSRF_HEADER, Session};
use super::{PageId, Result, Shown};
use crate::assets::Asset;
use crate::backtest::{self, Report};
use crate::error::{Error, FieldError};
use crate::http::AppState;
use crate::http::extract::read_body;
use crate::http::rules::{Backtest, CreateRule, Simulate, UpdateRule};
use crate::rules::{self, Rule, Simulation, Validity};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use maud::{Markup, html};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use uuid::Uuid;

/// What the editor's fields hold: the saved rule, or what was just submitted.
struct Draft {
    name: String,
    condition: String,
    actions: String,
    config: String,
    status: String,
    event: String,
    state: String,
    /// The backtest's window, as RFC 3339 text.
    from: String,
    to: String,
}

const SAMPLE_EVENT: &str = "{\n  \"type\": \"purchase\",\n  \"amount\": 49.99\n}";

impl Draft {
    fn of(rule: &Rule) -> Draft {
        Draft {
            name: rule.name.clone(),
            condition: rule.condition.clone(),
            actions: serde_json::to_string_pretty(&rule.actions.0).unwrap_or_default(),
            config: rule
                .module_config
                .as_ref()
                .and_then(|c| serde_json::to_string_pretty(&c.0).ok())
                .unwrap_or_else(|| "{}".into()),
            status: rule.status.to_string(),
            event: SAMPLE_EVENT.into(),
            state: String::new(),
            from: text_time(chrono::Utc::now() - chrono::Duration::days(30)),
            to: text_time(chrono::Utc::now()),
        }
    }

    fn from_form(form: &HashMap<String, String>, rule: &Rule) -> Draft {
        let saved = Draft::of(rule);
        let field = |key: &str, fallback: String| form.get(key).cloned().unwrap_or(fallback);
        Draft {
            name: field("name", saved.name),
            condition: field("condition", saved.condition),
            actions: field("actions", saved.actions),
            config: field("config", saved.config),
            status: field("status", saved.status),
            event: field("event", saved.event),
            state: field("state", saved.state),
            from: field("from", saved.from),
            to: field("to", saved.to),
        }
    }

    /// The API body of the change the editor holds: a wasm rule's config, or a CEL rule's condition and
    /// actions, with its name and status.
    fn patch(&self, rule: &Rule) -> crate::error::Result<Value> {
        let mut body = Map::new();
        body.insert("name".into(), json!(self.name));
        body.insert("status".into(), json!(self.status));
        match rule.module_id {
            Some(_) => {
                body.insert("config".into(), parse_json("config", &self.config)?);
            }
            None => {
                body.insert("condition".into(), json!(self.condition));
                body.insert("actions".into(), parse_json("actions", &self.actions)?);
            }
        }
        Ok(Value::Object(body))
    }
}

fn text_time(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// What the last button did, shown above the editor.
enum Outcome {
    Saved,
    Checked(Validity),
    Simulated(Simulation),
    Backtested(Box<Report>),
    Refused(String),
}

/// Text a user typed as JSON, parsed; `field` names it in the error.
fn parse_json(field: &str, text: &str) -> crate::error::Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::invalid(FieldError::invalid(
            field,
            "JSON",
            None,
            format!("{field} is not valid JSON: {e}"),
        ))
    })
}

pub async fn create(
    State(s): State<AppState>,
    session: Session,
    PageId(program_id): PageId,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response> {
    session.check(&form)?;
    let form = fields(form);
    let text = |key: &str| form.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut body = Map::new();
    body.insert("program_id".into(), json!(program_id));
    body.insert("name".into(), json!(text("name").unwrap_or_default()));
    match text("module_id") {
        Some(module_id) => {
            body.insert("module_id".into(), json!(module_id));
            if let Some(config) = text("config") {
                body.insert("config".into(), parse_json("config", config)?);
            }
        }
        None => {
            body.insert(
                "condition".into(),
                json!(text("condition").unwrap_or_default()),
            );
            body.insert(
                "actions".into(),
                parse_json("actions", text("actions").unwrap_or("[]"))?,
            );
        }
    }
    let new = CreateRule::from_body(&Value::Object(body), s.runtime.ceiling().limits)?;
    let rule = rules::create(&s.pool, &session.actor, new).await?;
    Ok(Redirect::to(&format!("/console/rules/{}", rule.id)).into_response())
}

pub async fn show(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> Result<Markup> {
    let rule = rules::get(&s.pool, &session.actor, id).await?;
    Ok(editor(&session, &rule, &Draft::of(&rule), None))
}

pub async fn update(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response> {
    let (rule, draft) = posted(&s, &session, id, &form).await?;
    let saved = match draft
        .patch(&rule)
        .and_then(|body| UpdateRule::from_body(&body, s.runtime.ceiling().limits))
    {
        Ok(patch) => rules::update(&s.pool, &session.actor, id, patch).await,
        Err(refused) => Err(refused),
    };
    Ok(match saved {
        Ok(rule) => {
            editor(&session, &rule, &Draft::of(&rule), Some(Outcome::Saved)).into_response()
        }
        Err(refused) => refusal(&session, &rule, &draft, refused),
    })
}

/// The rule one of its editor's forms was posted for, and what the form holds; refused without the session's
/// token.
async fn posted(
    s: &AppState,
    session: &Session,
    id: Uuid,
    form: &HashMap<String, String>,
) -> Result<(Rule, Draft)> {
    session.check(form)?;
    let rule = rules::get(&s.pool, &session.actor, id).await?;
    let draft = Draft::from_form(form, &rule);
    Ok((rule, draft))
}

/// The editor again with what was typed kept, and why it was refused.
fn refusal(session: &Session, rule: &Rule, draft: &Draft, refused: Error) -> Response {
    let shown = Shown::from(refused);
    let status = shown.status;
    let markup = editor(session, rule, draft, Some(Outcome::Refused(shown.message)));
    (status, markup).into_response()
}

pub async fn validate(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Markup> {
    let (rule, draft) = posted(&s, &session, id, &form).await?;
    let validity = rules::validate(&draft.condition);
    Ok(editor(
        &session,
        &rule,
        &draft,
        Some(Outcome::Checked(validity)),
    ))
}

pub async fn simulate(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response> {
    let (rule, draft) = posted(&s, &session, id, &form).await?;
    let request = parse_json("event", &draft.event).and_then(|event| {
        let mut body = json!({ "event": event });
        if !draft.state.trim().is_empty() {
            body["participant_state"] = parse_json("participant_state", &draft.state)?;
        }
        read_body::<Simulate>(&body)
    });
    let simulated = match request {
        Ok(Simulate {
            event,
            participant_state,
        }) => {
            let state = participant_state.unwrap_or_default();
            rules::simulate(
                &s.pool,
                &s.runtime,
                &session.actor,
                id,
                Value::Object(event),
                state,
            )
            .await
        }
        Err(refused) => Err(refused),
    };
    Ok(answered(
        &session,
        &rule,
        &draft,
        simulated.map(Outcome::Simulated),
    ))
}

/// What the editor holds, run over the stored events of the window it gives (the API's backtest).
pub async fn backtest(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response> {
    let (rule, draft) = posted(&s, &session, id, &form).await?;
    let request = draft.patch(&rule).and_then(|changes| {
        let body = json!({"rule_id": id, "changes": changes, "from": draft.from, "to": draft.to});
        Backtest::from_body(&body, s.runtime.ceiling().limits)
    });
    let report = match request {
        Ok(request) => {
            backtest::backtest(&s.pool, &s.runtime, &s.backtests, &session.actor, request).await
        }
        Err(refused) => Err(refused),
    };
    let outcome = report.map(|report| Outcome::Backtested(Box::new(report)));
    Ok(answered(&session, &rule, &draft, outcome))
}

/// The editor with what a button did, or with why it was refused.
fn answered(
    session: &Session,
    rule: &Rule,
    draft: &Draft,
    outcome: crate::error::Result<Outcome>,
) -> Response {
    match outcome {
        Ok(outcome) => editor(session, rule, draft, Some(outcome)).into_response(),
        Err(refused) => refusal(session, rule, draft, refused),
    }
}

/// A module's bytes, sent by the console's script (a form cannot send a file as the body), answered as the
/// API answers `POST /v1/modules`.
pub async fn upload_module(
    State(s): State<AppState>,
    session: Session,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let token = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if let Err(refused) = session.check_token(token) {
        return refused.into_response();
    }
    let limit = s.runtime.ceiling().component_bytes;
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message =
                format!("the module is larger than the {limit} bytes this server accepts");
            return Error::TooLarge(message).into_response();
        }
    };
    let uploaded =
        crate::modules::upload(&s.pool, s.runtime.clone(), &session.actor, bytes.to_vec()).await;
    match uploaded {
        Ok((module, true)) => (StatusCode::CREATED, Json(module)).into_response(),
        Ok((module, false)) => Json(module).into_response(),
        Err(refused) => refused.into_response(),
    }
}

/// The program page's form for a new rule: CEL by default, wasm when a module is named.
pub fn new_rule_form(session: &Session, program_id: Uuid, assets: &[Asset]) -> Markup {
    let asset = assets
        .first()
        .map(|a| a.id.to_string())
        .unwrap_or_else(|| "ASSET_ID".into());
    let actions =
        format!("[\n  {{\"type\": \"CREDIT\", \"asset_id\": \"{asset}\", \"amount\": \"10\"}}\n]");
    html! {
        h3 { "New rule" }
        form method="post" action=(format!("/console/programs/{program_id}/rules")) class="stacked" {
            (session.csrf_field())
            label for="rule-name" { "Name" }
            input id="rule-name" name="name" required maxlength="255";
            fieldset {
                legend { "CEL rule" }
                label for="rule-condition" { "Condition (CEL)" }
                textarea id="rule-condition" name="condition" rows="2" class="code" { "event.type == \"purchase\"" }
                label for="rule-actions" { "Actions (JSON, as in the API)" }
                textarea id="rule-actions" name="actions" rows="5" class="code" { (actions) }
            }
            fieldset {
                legend { "Or a wasm rule" }
                label for="rule-module" { "Module id (upload one below)" }
                input id="rule-module" name="module_id" class="code" placeholder="leave empty for a CEL rule";
                label for="rule-config" { "Config (JSON object, handed to the module)" }
                textarea id="rule-config" name="config" rows="2" class="code" { "{}" }
            }
            button type="submit" { "Create rule" }
        }
        h3 { "Upload a wasm module" }
        form action="/console/modules" data-upload data-csrf=(session.csrf()) data-fills="rule-module" class="stacked" {
            label for="module-file" { "Component (.wasm)" }
            input id="module-file" type="file" accept=".wasm,application/wasm" required;
            button type="submit" { "Upload" }
            output aria-live="polite" {}
        }
    }
}

fn editor(session: &Session, rule: &Rule, draft: &Draft, outcome: Option<Outcome>) -> Markup {
    let id = rule.id;
    let wasm = rule.module_id.is_some();
    page(
        session,
        &format!("Rule: {}", rule.name),
        html! {
            p {
                a href=(format!("/console/programs/{}", rule.program_id)) { "← Program" } " · "
                @if let Some(module) = rule.module_id { "wasm rule, module " code { (module) } } @else { "CEL rule" }
                " · order " (rule.order) " · updated " (layout::time(rule.updated_at))
                " · " a href=(format!("/console/events?rule_id={id}")) { "Events it evaluated" }
            }
            @if let Some(outcome) = outcome { (show_outcome(outcome)) }
            form method="post" action=(format!("/console/rules/{id}")) class="stacked" {
                (session.csrf_field())
                label for="name" { "Name" }
                input id="name" name="name" value=(draft.name) required maxlength="255";
                label for="status" { "Status" }
                select id="status" name="status" {
                    @for status in ["ACTIVE", "SUSPENDED"] {
                        option value=(status) selected[draft.status == status] { (status) }
                    }
                }
                @if wasm {
                    label for="config" { "Config (JSON object, handed to the module)" }
                    textarea id="config" name="config" rows="4" class="code" { (draft.config) }
                } @else {
                    label for="condition" { "Condition (CEL)" }
                    textarea id="condition" name="condition" rows="3" class="code" { (draft.condition) }
                    label for="actions" { "Actions (JSON)" }
                    textarea id="actions" name="actions" rows="8" class="code" { (draft.actions) }
                }
                div class="buttons" {
                    button type="submit" { "Save" }
                    @if !wasm {
                        button type="submit" formaction=(format!("/console/rules/{id}/validate")) class="quiet" { "Check condition" }
                    }
                }
                fieldset {
                    legend { "Backtest what is above, unsaved, on the events received" }
                    label for="from" { "From (RFC 3339)" }
                    input id="from" name="from" value=(draft.from);
                    label for="to" { "To (RFC 3339)" }
                    input id="to" name="to" value=(draft.to);
                    button type="submit" formaction=(format!("/console/rules/{id}/backtest")) class="quiet" { "Backtest" }
                }
            }
            section aria-labelledby="simulate" {
                h2 id="simulate" { "Simulate the saved rule" }
                form method="post" action=(format!("/console/rules/{id}/simulate")) class="stacked" {
                    (session.csrf_field())
                    label for="event" { "Sample event data (JSON)" }
                    textarea id="event" name="event" rows="5" class="code" { (draft.event) }
                    label for="state" { "Participant state (JSON: tags, counters, attributes, tiers; optional)" }
                    textarea id="state" name="state" rows="3" class="code" { (draft.state) }
                    button type="submit" { "Simulate" }
                }
            }
        },
    )
}

fn show_outcome(outcome: Outcome) -> Markup {
    match outcome {
        Outcome::Backtested(report) => show_backtest(&report),
        Outcome::Saved => html! { p role="status" class="ok" { "Saved." } },
        Outcome::Refused(message) => html! { p role="alert" class="error" { (message) } },
        Outcome::Checked(validity) => html! {
            p role="status" class=(if validity.valid { "ok" } else { "error" }) id="validity" {
                (validity.message)
                @if let Some(note) = validity.note { br; small { (note) } }
            }
        },
        Outcome::Simulated(simulation) => {
            let evaluation = simulation.evaluation;
            html! {
                section role="status" id="simulation" class="result" aria-label="Simulation" {
                    p {
                        strong { @if evaluation.matched { "Matched" } @else { "Did not match" } }
                        " · " (evaluation.status)
                        @if let Some(reason) = &evaluation.reason { " · " (reason) }
                        @if let Some(code) = &evaluation.error_code { " · " (code) }
                    }
                    @if let Some(fuel) = evaluation.fuel_consumed { p { "Fuel consumed: " strong id="fuel" { (fuel) } } }
                    @if let Some(logs) = &evaluation.logs { h3 { "Module logs" } pre id="logs" { (logs) } }
                    @if let Some(results) = &evaluation.results { h3 { "Actions" } (layout::json(results)) }
                }
            }
        }
    }
}

fn show_backtest(report: &Report) -> Markup {
    html! {
        section role="status" id="backtest" class="result" aria-label="Backtest" {
            p {
                strong id="backtest-matched" { (report.matched) } " matched of "
                strong { (report.events_evaluated) } " events evaluated"
                " · " (report.failed) " would fail · " (report.skipped) " skipped"
                @if report.fuel_consumed > 0 { " · fuel " (report.fuel_consumed) }
                @if !report.complete { " · the window goes on past these (the API's next_cursor continues it)" }
            }
            @if !report.assets.is_empty() {
                table {
                    caption { "What it would move, and how credits spread over participants" }
                    thead { tr {
                        th scope="col" { "Asset" } th scope="col" { "Credited" } th scope="col" { "Debited" }
                        th scope="col" { "Participants" } th scope="col" { "Median" } th scope="col" { "99th pct" }
                        th scope="col" { "Most" }
                    } }
                    tbody { @for asset in &report.assets { tr {
                        th scope="row" { (asset.symbol) } td { (asset.credited) } td { (asset.debited) }
                        td { (asset.participants.count) } td { (asset.participants.p50) }
                        td { (asset.participants.p99) } td { (asset.participants.max) }
                    } } }
                }
            }
            @if let Some(comparison) = &report.comparison {
                p id="backtest-comparison" {
                    "Against what the saved rule did: matched then " (comparison.matched_then)
                    " · newly matched " (comparison.newly_matched)
                    " · no longer matched " (comparison.no_longer_matched)
                    " · different amounts " (comparison.amounts_changed)
                }
                table {
                    caption { "Then and now" }
                    thead { tr {
                        th scope="col" { "Asset" } th scope="col" { "Credited then" } th scope="col" { "Credited now" }
                        th scope="col" { "Debited then" } th scope="col" { "Debited now" }
                    } }
                    tbody { @for asset in &comparison.assets { tr {
                        th scope="row" { (asset.symbol) } td { (asset.credited_then) } td { (asset.credited_now) }
                        td { (asset.debited_then) } td { (asset.debited_now) }
                    } } }
                }
            }
            @if !report.changes.data.is_empty() {
                table {
                    caption { "Events where it differs" @if report.changes.has_more { " (the first " (report.changes.data.len()) ")" } }
                    thead { tr {
                        th scope="col" { "Event" } th scope="col" { "Received" } th scope="col" { "Matched then" }
                        th scope="col" { "Matched now" } th scope="col" { "Then" } th scope="col" { "Now" }
                    } }
                    tbody { @for change in &report.changes.data { tr {
                        th scope="row" { a href=(format!("/console/events/{}", change.event_id)) { code { (change.event_id) } } }
                        td { (layout::time(change.received_at)) }
                        td { (if change.matched_then { "yes" } else { "no" }) }
                        td { (if change.matched_now { "yes" } else { "no" }) @if let Some(why) = &change.failed_now { br; small { (why) } } }
                        td { @for moved in &change.then { (moved.credited) " in, " (moved.debited) " out" br; } }
                        td { @for moved in &change.now { (moved.credited) " in, " (moved.debited) " out" br; } }
                    } } }
                }
            }
        }
    }
}
