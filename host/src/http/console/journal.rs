//! The journal, newest first, and the state of the organization's hash chain: how much is sealed, and, on
//! request, whether every sealed entry still hashes to what was sealed.

use super::layout::{self, page};
use super::session::Session;
use super::{ListQuery, Result, read};
use crate::http::AppState;
use crate::ledger::chain::{self, ChainReport};
use crate::ledger::{self, EntryFilter, JournalEntry};
use axum::Form;
use axum::extract::{Query, State};
use maud::{Markup, html};
use std::collections::HashMap;

const FILTERS: [&str; 3] = ["program_id", "participant_id", "event_id"];

pub async fn list(
    State(s): State<AppState>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Markup> {
    journal_page(&s, &session, &query, None).await
}

/// Recomputes the organization's chain; reads the whole journal, so it runs when asked, not on every view.
pub async fn verify(
    State(s): State<AppState>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Markup> {
    session.check(&form)?;
    let report = chain::verify_organization(&s.pool, session.actor.organization_id)
        .await
        .map_err(crate::error::Error::from)?;
    journal_page(&s, &session, &query, Some(report)).await
}

async fn journal_page(
    s: &AppState,
    session: &Session,
    query: &HashMap<String, String>,
    report: Option<ChainReport>,
) -> Result<Markup> {
    let ListQuery { kept, wanted } = ListQuery::of(query, &FILTERS, 50);
    let filter: EntryFilter = read(wanted)?;
    let entries = ledger::list(&s.pool, &session.actor, filter).await?;
    let sealed_here = entries
        .data
        .iter()
        .filter(|e| e.entry.entry_hash.is_some())
        .count();
    Ok(page(
        session,
        "Journal",
        html! {
            section aria-labelledby="chain" {
                h2 id="chain" { "Hash chain" }
                p {
                    "Entries are sealed into the chain shortly after they are written. On this page "
                    (sealed_here) " of " (entries.data.len()) " entries are sealed."
                }
                @if let Some(report) = report {
                    @if report.breaks.is_empty() {
                        p role="status" class="ok" id="chain-state" {
                            "Intact: " (report.sealed_entries) " sealed entries recomputed, no break; "
                            (report.unsealed_entries) " not sealed yet."
                        }
                    } @else {
                        div role="alert" class="error" id="chain-state" {
                            p { (report.breaks.len()) " breaks in " (report.sealed_entries) " sealed entries:" }
                            ul { @for b in &report.breaks { li { "#" (b.chain_seq) " " code { (b.journal_entry_id) } ": " (b.problem) } } }
                        }
                    }
                }
                form method="post" action="/console/journal/verify" {
                    (session.csrf_field())
                    button type="submit" { "Verify the chain" }
                }
            }
            section aria-labelledby="entries" {
                h2 id="entries" { "Entries" }
                form method="get" action="/console/journal" class="filters" role="search" {
                    label for="j-program" { "Program id" }
                    input id="j-program" name="program_id" value=(query.get("program_id").cloned().unwrap_or_default()) class="code";
                    label for="j-participant" { "Participant id" }
                    input id="j-participant" name="participant_id" value=(query.get("participant_id").cloned().unwrap_or_default()) class="code";
                    button type="submit" { "Filter" }
                }
                (entry_table(&entries.data))
                (layout::next_page("/console/journal", &kept, &entries.pagination))
            }
        },
    ))
}

/// Entries with their postings, one row per posting.
pub fn entry_table(entries: &[JournalEntry]) -> Markup {
    html! {
        @if entries.is_empty() {
            p { "No journal entries." }
        } @else {
            table class="entries" {
                thead { tr {
                    th scope="col" { "Written" } th scope="col" { "Action" } th scope="col" { "Holder" }
                    th scope="col" { "Asset" } th scope="col" { "Bucket" } th scope="col" { "Amount" } th scope="col" { "Sealed" }
                } }
                @for e in entries {
                    tbody {
                        @for (i, p) in e.postings.iter().enumerate() {
                            tr {
                                @if i == 0 {
                                    td rowspan=(e.postings.len()) { (layout::time(e.entry.created_at)) }
                                    td rowspan=(e.postings.len()) {
                                        (e.entry.action_type)
                                        @if let Some(event) = e.entry.event_id { br; a href=(format!("/console/events/{event}")) { "event" } }
                                        @if let Some(rule) = e.entry.rule_id { " · " a href=(format!("/console/rules/{rule}")) { "rule" } }
                                    }
                                }
                                td {
                                    (p.entity_type)
                                    @if let Some(participant) = p.participant_id { " " a href=(format!("/console/participants/{participant}")) { "member" } }
                                }
                                td { (p.asset_symbol) } td { (p.bucket) } td class="num" { (p.amount) }
                                @if i == 0 {
                                    td rowspan=(e.postings.len()) {
                                        @match &e.entry.entry_hash {
                                            Some(hash) => { code title=(hash) { (hash.get(..12).unwrap_or(hash)) "…" } }
                                            None => { "not yet" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
