//! Members (participants): a searchable list, and one member with balances by bucket, lots with their expiry,
//! the statement of each asset, tags, attributes, counters and tiers.

use super::layout::{self, page};
use super::session::Session;
use super::{ListQuery, PageId, Result, pairs, read};
use crate::assets::InventoryMode;
use crate::balances;
use crate::holders::Holder;
use crate::http::AppState;
use crate::participants::{self, ParticipantFilter};
use axum::extract::{Query, State};
use maud::{Markup, html};
use std::collections::HashMap;

const FILTERS: [&str; 2] = ["search", "program_id"];
/// How far back a member's statements go.
const STATEMENT_DAYS: i64 = 30;

pub async fn list(
    State(s): State<AppState>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Markup> {
    let ListQuery { kept, wanted } = ListQuery::of(&query, &FILTERS, 50);
    let filter: ParticipantFilter = read(wanted)?;
    let listed = participants::list(&s.pool, &session.actor, filter).await?;
    Ok(page(
        &session,
        "Members",
        html! {
            form method="get" action="/console/participants" class="filters" role="search" {
                label for="m-search" { "Search (external id, name, email)" }
                input id="m-search" type="search" name="search" value=(query.get("search").cloned().unwrap_or_default());
                button type="submit" { "Search" }
            }
            @if listed.data.is_empty() {
                p { "No members found." }
            } @else {
                table {
                    thead { tr { th scope="col" { "External id" } th scope="col" { "Name" } th scope="col" { "Status" } th scope="col" { "Joined" } } }
                    tbody {
                        @for p in &listed.data {
                            tr {
                                td { a href=(format!("/console/participants/{}", p.id)) { (p.external_id) } }
                                td { (p.display_name.as_deref().unwrap_or("")) }
                                td { (p.status) }
                                td { (layout::time(p.created_at)) }
                            }
                        }
                    }
                }
            }
            (layout::next_page("/console/participants", &kept, &listed.pagination))
        },
    ))
}

pub async fn show(
    State(s): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> Result<Markup> {
    let actor = &session.actor;
    let member = participants::get(&s.pool, actor, id).await?;
    let mut assets = Vec::new();
    for balance in &member.balances {
        let asset = crate::assets::get(&s.pool, actor, balance.asset_id).await?;
        let holder = Holder::Participant(id);
        let lots = match asset.inventory_mode {
            InventoryMode::Lot => {
                let filter = read(pairs([("limit", "100".into())]))?;
                Some(balances::lots(&s.pool, actor, holder, asset.id, filter).await?)
            }
            InventoryMode::Simple => None,
        };
        let since = chrono::Utc::now() - chrono::TimeDelta::days(STATEMENT_DAYS);
        let filter = read(pairs([
            ("from", since.to_rfc3339()),
            ("limit", "50".into()),
        ]))?;
        let statement = balances::statement(&s.pool, actor, holder, asset.id, filter).await?;
        assets.push((balance, asset, lots, statement));
    }
    let profile = &member.participant;
    Ok(page(
        &session,
        &format!("Member {}", profile.external_id),
        html! {
            dl class="facts" {
                dt { "Id" } dd { code { (profile.id) } }
                dt { "Status" } dd { (profile.status) }
                @if let Some(name) = &profile.display_name { dt { "Name" } dd { (name) } }
                @if let Some(email) = &profile.email { dt { "Email" } dd { (email) } }
                dt { "Joined" } dd { (layout::time(profile.created_at)) }
                dt { "Tags" } dd id="tags" { @if member.tags.is_empty() { "—" } @for tag in &member.tags { span class="tag" { (tag) } " " } }
            }
            p {
                a href=(format!("/console/events?participant_id={id}")) { "Events" } " · "
                a href=(format!("/console/journal?participant_id={id}")) { "Journal entries" }
            }
            section aria-labelledby="balances" {
                h2 id="balances" { "Balances" }
                @if assets.is_empty() { p { "No balances yet." } } @else {
                    table id="balance-table" {
                        thead { tr { th scope="col" { "Asset" } th scope="col" { "Available" } th scope="col" { "Held" } th scope="col" { "Deferred" } } }
                        tbody {
                            @for (balance, asset, _, _) in &assets {
                                @let view = balance;
                                tr {
                                    th scope="row" { (asset.name) " (" (asset.symbol) ")" }
                                    td class="num" data-bucket="available" { (crate::money::format(view.available, view.scale)) }
                                    td class="num" { (crate::money::format(view.held, view.scale)) }
                                    td class="num" { (crate::money::format(view.deferred, view.scale)) }
                                }
                            }
                        }
                    }
                }
            }
            @for (_, asset, lots, statement) in &assets {
                section aria-label=(format!("{} activity", asset.symbol)) {
                    @if let Some(lots) = lots {
                        h2 { "Lots of " (asset.symbol) }
                        table {
                            thead { tr { th scope="col" { "Created" } th scope="col" { "Amount" } th scope="col" { "Remaining" } th scope="col" { "Status" } th scope="col" { "Matures" } th scope="col" { "Expires" } } }
                            tbody {
                                @for lot in &lots.data {
                                    tr {
                                        td { (layout::time(lot.created_at)) } td class="num" { (lot.amount) } td class="num" { (lot.remaining) }
                                        td { (lot.status) } td { (layout::maybe_time(lot.matures_at)) } td { (layout::maybe_time(lot.expires_at)) }
                                    }
                                }
                            }
                        }
                    }
                    h2 { "Statement of " (asset.symbol) }
                    p {
                        "Last " (STATEMENT_DAYS) " days: opening balance " (statement.opening_balance)
                        ", closing balance " strong { (statement.closing_balance) }
                        @if statement.page.pagination.has_more { " (the first 50 movements shown)" }
                    }
                    table {
                        thead { tr { th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Bucket" } th scope="col" { "Amount" } th scope="col" { "Balance after" } } }
                        tbody {
                            @for row in &statement.page.data {
                                tr {
                                    td { (layout::time(row.created_at)) }
                                    td {
                                        (row.action_type)
                                        @if let Some(event) = row.event_id { " · " a href=(format!("/console/events/{event}")) { "event" } }
                                    }
                                    td { (row.bucket) }
                                    td class="num" { (crate::money::format(row.amount, row.scale)) }
                                    td class="num" { @if let Some(after) = row.running_balance { (crate::money::format(after, row.scale)) } }
                                }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="state" {
                h2 id="state" { "State" }
                h3 { "Attributes" }
                @if member.attributes.is_empty() { p { "None." } } @else { (layout::json(&member.attributes)) }
                h3 { "Counters" }
                @if member.counters.is_empty() { p { "None." } } @else { (layout::json(&member.counters)) }
                h3 { "Tiers" }
                @if member.tiers.is_empty() { p { "None." } } @else { (layout::json(&member.tiers)) }
            }
        },
    ))
}
