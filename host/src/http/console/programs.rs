//! The overview (queue, throughput, programs) and a program's page: its assets and rules, and the forms that
//! add them.

use super::chart::{self, Series};
use super::layout::{self, page};
use super::session::Session;
use super::{PageId, Result, pairs, read};
use crate::assets::{self, Asset};
use crate::http::AppState;
use crate::programs::{self, Program};
use crate::rules::{self, Rule};
use axum::Form;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DurationRound, TimeDelta, Utc};
use maud::{Markup, html};
use rust_decimal::Decimal;
use std::collections::HashMap;

pub async fn overview(State(s): State<AppState>, session: Session) -> Result<Markup> {
    let actor = &session.actor;
    let queue = crate::events::organization_queue(&s.pool, actor).await?;
    let now = Utc::now()
        .duration_trunc(TimeDelta::minutes(1))
        .unwrap_or_else(|_| Utc::now());
    let since = now - TimeDelta::minutes(59);
    let finished = crate::events::finished_per_minute(&s.pool, actor, since).await?;
    let minutes: Vec<_> = (0..60).map(|m| since + TimeDelta::minutes(m)).collect();
    let per_minute = Series {
        name: "events processed",
        class: "processed",
        values: minutes
            .iter()
            .map(|minute| {
                let count = finished
                    .iter()
                    .find(|(at, _)| at == minute)
                    .map(|(_, n)| *n);
                Decimal::from(count.unwrap_or(0))
            })
            .collect(),
    };
    let labels: Vec<String> = minutes
        .iter()
        .map(|m| m.format("%H:%M").to_string())
        .collect();
    let programs = programs::list(&s.pool, actor, read(pairs([("limit", "200".into())]))?).await?;
    Ok(page(
        &session,
        "Overview",
        html! {
            section aria-labelledby="queue" {
                h2 id="queue" { "Queue" }
                dl class="figures" {
                    div { dt { "Events waiting" } dd id="queue-depth" { (queue.depth) } }
                    div { dt { "Lag" } dd id="queue-lag" { (format!("{:.1}", queue.lag_seconds)) " s" } }
                }
                (chart::bars("Events processed per minute, last hour (UTC)", &labels, &[per_minute]))
            }
            section aria-labelledby="programs" {
                h2 id="programs" { "Programs" }
                (program_table(&programs.data))
                h3 { "New program" }
                form method="post" action="/console/programs" class="stacked" {
                    (session.csrf_field())
                    label for="program-name" { "Name" }
                    input id="program-name" name="name" required maxlength="255";
                    label for="program-description" { "Description (optional)" }
                    input id="program-description" name="description" maxlength="1000";
                    button type="submit" { "Create program" }
                }
            }
        },
    ))
}

fn program_table(programs: &[Program]) -> Markup {
    html! {
        @if programs.is_empty() {
            p { "No programs yet." }
        } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Created" } } }
                tbody {
                    @for p in programs {
                        tr {
                            td { a href=(format!("/console/programs/{}", p.id)) { (p.name) } }
                            td { (p.status) }
                            td { (layout::time(p.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

/// The form's fields without its CSRF token, for the API's reader.
pub(super) fn fields(mut form: HashMap<String, String>) -> HashMap<String, String> {
    form.remove("csrf");
    form
}

pub async fn create(
    State(s): State<AppState>,
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response> {
    session.check(&form)?;
    let new = read(fields(form))?;
    let program = programs::create(&s.pool, &session.actor, new).await?;
    Ok(Redirect::to(&format!("/console/programs/{}", program.id)).into_response())
}

pub async fn create_asset(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response> {
    session.check(&form)?;
    let mut form = fields(form);
    form.insert("program_id".into(), id.to_string());
    assets::create(&s.pool, &session.actor, read(form)?).await?;
    Ok(Redirect::to(&format!("/console/programs/{id}")).into_response())
}

pub async fn show(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> Result<Markup> {
    let actor = &session.actor;
    let program = programs::get(&s.pool, actor, id).await?;
    let assets =
        assets::list_of_program(&s.pool, actor, id, read(pairs([("limit", "200".into())]))?)
            .await?;
    let rules = rules::list(
        &s.pool,
        actor,
        read(pairs([
            ("program_id", id.to_string()),
            ("limit", "200".into()),
        ]))?,
    )
    .await?;
    Ok(page(
        &session,
        &program.name,
        html! {
            p {
                "Status " strong { (program.status) } " · unknown participants: " (program.on_unknown_participant)
                " · id " code { (program.id) }
            }
            @if let Some(description) = &program.description { p { (description) } }
            p {
                a href=(format!("/console/events?program_id={id}")) { "Events" } " · "
                a href=(format!("/console/journal?program_id={id}")) { "Journal" } " · "
                a href=(format!("/console/reports?program_id={id}")) { "Reports" }
            }
            section aria-labelledby="assets" {
                h2 id="assets" { "Assets" }
                (asset_table(&assets.data))
                h3 { "New asset" }
                form method="post" action=(format!("/console/programs/{id}/assets")) class="stacked" {
                    (session.csrf_field())
                    label for="asset-name" { "Name" }
                    input id="asset-name" name="name" required maxlength="255";
                    label for="asset-symbol" { "Symbol" }
                    input id="asset-symbol" name="symbol" required maxlength="16" pattern="[A-Za-z0-9]+";
                    label for="asset-mode" { "Inventory mode" }
                    select id="asset-mode" name="inventory_mode" {
                        option value="SIMPLE" { "SIMPLE: one balance" }
                        option value="LOT" { "LOT: dated lots that can expire" }
                    }
                    label for="asset-policy" { "Issuance policy" }
                    select id="asset-policy" name="issuance_policy" {
                        option value="UNLIMITED" { "UNLIMITED: issued on demand" }
                        option value="PREFUNDED" { "PREFUNDED: drawn from the program wallet" }
                    }
                    label for="asset-scale" { "Decimal places" }
                    input id="asset-scale" name="scale" type="number" min="0" max="18" value="0" required;
                    button type="submit" { "Create asset" }
                }
            }
            section aria-labelledby="rules" {
                h2 id="rules" { "Rules" }
                (rule_table(&rules.data))
                (super::rules::new_rule_form(&session, id, &assets.data))
            }
        },
    ))
}

fn asset_table(assets: &[Asset]) -> Markup {
    html! {
        @if assets.is_empty() {
            p { "No assets yet." }
        } @else {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Symbol" } th scope="col" { "Mode" } th scope="col" { "Policy" } th scope="col" { "Scale" } th scope="col" { "Id" } } }
                tbody {
                    @for a in assets {
                        tr {
                            td { (a.name) } td { (a.symbol) } td { (a.inventory_mode) } td { (a.issuance_policy) }
                            td class="num" { (a.scale) } td { code { (a.id) } }
                        }
                    }
                }
            }
        }
    }
}

fn rule_table(rules: &[Rule]) -> Markup {
    html! {
        @if rules.is_empty() {
            p { "No rules yet." }
        } @else {
            table {
                thead { tr { th scope="col" { "Order" } th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Status" } th scope="col" { "Condition" } } }
                tbody {
                    @for r in rules {
                        tr {
                            td class="num" { (r.order) }
                            td { a href=(format!("/console/rules/{}", r.id)) { (r.name) } }
                            td { @if r.module_id.is_some() { "wasm" } @else { "CEL" } }
                            td { (r.status) }
                            td { code { (r.condition) } }
                        }
                    }
                }
            }
        }
    }
}
