//! The event stream with its filters, and one event: each rule's evaluation and the journal entries, state
//! changes and balance changes it made (the API's impact view).

use super::journal::entry_table;
use super::layout::{self, page};
use super::session::Session;
use super::{ListQuery, PageId, Result, read};
use crate::events::{self, Evaluation, Event, EventFilter, EventStatus};
use crate::http::AppState;
use axum::Form;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use std::collections::HashMap;

const FILTERS: [&str; 6] = [
    "program_id",
    "status",
    "event_type",
    "external_id",
    "participant_id",
    "rule_id",
];

pub async fn stream(
    State(s): State<AppState>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Markup> {
    let ListQuery { kept, wanted } = ListQuery::of(&query, &FILTERS, 50);
    let filter: EventFilter = read(wanted)?;
    let listed = events::list(&s.pool, &session.actor, filter).await?;
    let value = |key: &str| query.get(key).cloned().unwrap_or_default();
    Ok(page(
        &session,
        "Events",
        html! {
            form method="get" action="/console/events" class="filters" role="search" {
                label for="f-status" { "Status" }
                select id="f-status" name="status" {
                    option value="" { "any" }
                    @for status in ["PENDING", "PROCESSING", "COMPLETED", "FAILED"] {
                        option value=(status) selected[value("status") == status] { (status) }
                    }
                }
                label for="f-type" { "Type" }
                select id="f-type" name="event_type" {
                    option value="" { "any" }
                    @for kind in ["EXTERNAL", "SYSTEM"] {
                        option value=(kind) selected[value("event_type") == kind] { (kind) }
                    }
                }
                label for="f-external" { "External id" }
                input id="f-external" name="external_id" value=(value("external_id"));
                label for="f-program" { "Program id" }
                input id="f-program" name="program_id" value=(value("program_id")) class="code";
                @if !value("rule_id").is_empty() { input type="hidden" name="rule_id" value=(value("rule_id")); }
                @if !value("participant_id").is_empty() { input type="hidden" name="participant_id" value=(value("participant_id")); }
                button type="submit" { "Filter" }
            }
            (event_table(&listed.data))
            (layout::next_page("/console/events", &kept, &listed.pagination))
        },
    ))
}

pub fn event_table(events: &[Event]) -> Markup {
    html! {
        @if events.is_empty() {
            p { "No events." }
        } @else {
            table {
                thead { tr {
                    th scope="col" { "Received" } th scope="col" { "Status" } th scope="col" { "Participant" }
                    th scope="col" { "Data" } th scope="col" { "Event" }
                } }
                tbody {
                    @for e in events {
                        tr {
                            td { (layout::time(e.received_at)) }
                            td { span class=(format!("status {}", e.status.as_str().to_lowercase())) { (e.status) } }
                            td {
                                @match (e.participant_id, &e.external_id) {
                                    (Some(id), Some(external)) => { a href=(format!("/console/participants/{id}")) { (external) } }
                                    (Some(id), None) => { a href=(format!("/console/participants/{id}")) { (id) } }
                                    _ => { "—" }
                                }
                            }
                            td { code class="clip" { (e.event_data.0) } }
                            td { a href=(format!("/console/events/{}", e.id)) { "Details" } }
                        }
                    }
                }
            }
        }
    }
}

pub async fn show(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> Result<Markup> {
    let impact = events::impact(&s.pool, &session.actor, id).await?;
    let event = &impact.event;
    Ok(page(
        &session,
        "Event",
        html! {
            dl class="facts" {
                dt { "Status" } dd id="event-status" { span class=(format!("status {}", event.status.as_str().to_lowercase())) { (event.status) } }
                @if let Some(message) = &event.error_message { dt { "Error" } dd class="error" { (message) } }
                dt { "Id" } dd { code { (event.id) } }
                dt { "Program" } dd { a href=(format!("/console/programs/{}", event.program_id)) { code { (event.program_id) } } }
                dt { "Participant" } dd {
                    @if let Some(participant) = event.participant_id {
                        a href=(format!("/console/participants/{participant}")) { (event.external_id.as_deref().unwrap_or("")) " " code { (participant) } }
                    } @else { "—" }
                }
                dt { "Type" } dd { (event.event_type) }
                dt { "Idempotency key" } dd { code { (event.idempotency_key) } }
                dt { "Happened" } dd { (layout::time(event.event_timestamp)) }
                dt { "Received" } dd { (layout::time(event.received_at)) }
                dt { "Processed" } dd { (layout::maybe_time(event.processed_at)) }
            }
            @if event.status == EventStatus::Failed {
                form method="post" action=(format!("/console/events/{}/retry", event.id)) {
                    (session.csrf_field())
                    button type="submit" { "Retry" }
                    " Queue it again, with a fresh set of attempts, once its cause is fixed."
                }
            }
            h2 { "Data" }
            (layout::json(&event.event_data.0))
            h2 { "Rule evaluations" }
            @if impact.rule_evaluations.is_empty() {
                p { "None yet: rules run when the event is processed." }
            }
            @for evaluation in &impact.rule_evaluations { (evaluation_view(evaluation)) }
            h2 { "Journal entries" }
            (entry_table(&impact.journal_entries))
            @if !impact.balance_impact.is_empty() {
                h2 { "Balance changes" }
                table {
                    thead { tr { th scope="col" { "Holder" } th scope="col" { "Asset" } th scope="col" { "Bucket" } th scope="col" { "Change" } } }
                    tbody {
                        @for change in &impact.balance_impact {
                            tr {
                                td { (change.entity_type) @if let Some(id) = change.entity_id { " " code { (id) } } }
                                td { (change.asset_symbol) } td { (change.bucket) }
                                td class="num" { (crate::money::format(change.amount, change.scale)) }
                            }
                        }
                    }
                }
            }
            @if !impact.state_changes.is_empty() {
                h2 { "State changes" }
                table {
                    thead { tr { th scope="col" { "Kind" } th scope="col" { "Key" } th scope="col" { "Operation" } th scope="col" { "Before" } th scope="col" { "After" } } }
                    tbody {
                        @for change in &impact.state_changes {
                            tr {
                                td { (change.state_type) } td { (change.key) } td { (change.operation) }
                                td { (change.old_value.as_deref().unwrap_or("—")) } td { (change.new_value.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn evaluation_view(evaluation: &Evaluation) -> Markup {
    html! {
        article class="evaluation" aria-label=(format!("Evaluation of {}", evaluation.rule_name)) {
            h3 {
                a href=(format!("/console/rules/{}", evaluation.rule_id)) { (evaluation.rule_name) }
                " · " span class="evaluation-status" { (evaluation.status) }
                @if let Some(reason) = &evaluation.reason { " · " (reason) }
            }
            @if let Some(message) = &evaluation.error_message { p class="error" { (message) } }
            @if let Some(fuel) = evaluation.fuel_consumed { p { "Fuel consumed: " (fuel) } }
            @if let Some(logs) = &evaluation.logs { pre { (logs) } }
            (layout::json(&evaluation.results.0))
        }
    }
}

/// Queues a FAILED event again, as `POST /v1/events/{id}/retry` does.
pub async fn retry(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response> {
    session.check(&form)?;
    events::retry(&s.pool, &s.doorbell, &session.actor, id).await?;
    Ok(Redirect::to(&format!("/console/events/{id}")).into_response())
}
