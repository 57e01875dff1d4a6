//! Reports: program activity (E119) with a chart of what was issued and redeemed per day, and the liability
//! (E120): what the organization owes its holders now. Every figure comes from the report functions the API
//! serves, so the console and the API cannot disagree.

use super::chart::{self, Series};
use super::layout::page;
use super::session::Session;
use super::{Result, pairs, read};
use crate::http::AppState;
use crate::reports::{self, ActivityRow, liability};
use axum::extract::{Query, State};
use chrono::{DurationRound, TimeDelta, Utc};
use maud::{Markup, html};
use rust_decimal::Decimal;
use std::collections::HashMap;
use uuid::Uuid;

/// Days the chart covers, today included.
const DAYS: i64 = 14;

pub async fn show(
    State(s): State<AppState>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Markup> {
    let actor = &session.actor;
    let program_id: Option<Uuid> = match query.get("program_id").filter(|v| !v.is_empty()) {
        Some(raw) => Some(read::<ProgramOnly>(pairs([("program_id", raw.clone())]))?.0),
        None => None,
    };
    let activity =
        reports::program_activity(&s.pool, actor, read(pairs([("limit", "200".into())]))?).await?;
    let owed = liability::liability(
        &s.pool,
        actor,
        read(pairs([
            (
                "program_id",
                program_id.map(|id| id.to_string()).unwrap_or_default(),
            ),
            ("limit", "200".into()),
        ]))?,
    )
    .await?;
    let today = Utc::now()
        .duration_trunc(TimeDelta::days(1))
        .unwrap_or_else(|_| Utc::now());
    let mut labels = Vec::new();
    let (mut issued, mut redeemed) = (Vec::new(), Vec::new());
    for day in (0..DAYS).rev().map(|back| today - TimeDelta::days(back)) {
        let window = pairs([
            ("from", day.to_rfc3339()),
            ("to", (day + TimeDelta::days(1)).to_rfc3339()),
            ("limit", "200".into()),
        ]);
        let rows = reports::program_activity(&s.pool, actor, read(window)?).await?;
        let chosen = rows
            .data
            .iter()
            .filter(|row| program_id.is_none_or(|id| row.program_id == id));
        let (i, r) = chosen.fold((Decimal::ZERO, Decimal::ZERO), |(i, r), row| {
            (i + row.total_issued, r + row.total_redeemed)
        });
        labels.push(day.format("%m-%d").to_string());
        issued.push(i);
        redeemed.push(r);
    }
    let series = [
        Series {
            name: "issued",
            class: "issued",
            values: issued,
        },
        Series {
            name: "redeemed",
            class: "redeemed",
            values: redeemed,
        },
    ];
    let scope = match program_id.and_then(|id| activity.data.iter().find(|r| r.program_id == id)) {
        Some(row) => row.program_name.clone(),
        None => "all programs".into(),
    };
    Ok(page(
        &session,
        "Reports",
        html! {
            form method="get" action="/console/reports" class="filters" {
                label for="r-program" { "Program" }
                select id="r-program" name="program_id" {
                    option value="" { "All programs" }
                    @for row in &activity.data {
                        option value=(row.program_id) selected[program_id == Some(row.program_id)] { (row.program_name) }
                    }
                }
                button type="submit" { "Show" }
            }
            section aria-labelledby="flow" {
                h2 id="flow" { "Issued and redeemed per day: " (scope) }
                (chart::bars(&format!("Issued vs redeemed, last {DAYS} days (UTC)"), &labels, &series))
            }
            section aria-labelledby="activity" {
                h2 id="activity" { "Program activity" }
                (activity_table(&activity.data))
            }
            section aria-labelledby="liability" {
                h2 id="liability" { "Liability" }
                p { "What holders hold, as of " (super::layout::time(owed.as_of)) "." }
                @if owed.page.data.is_empty() { p { "Nothing is owed." } } @else {
                    table {
                        thead { tr { th scope="col" { "Program" } th scope="col" { "Asset" } th scope="col" { "Balance" } } }
                        tbody {
                            @for row in &owed.page.data {
                                tr { td { (row.program_name) } td { (row.asset_name) " (" (row.asset_symbol) ")" } td class="num" { (row.balance) } }
                            }
                        }
                    }
                }
            }
        },
    ))
}

fn activity_table(rows: &[ActivityRow]) -> Markup {
    html! {
        @if rows.is_empty() { p { "No activity yet." } } @else {
            table id="activity-table" {
                thead { tr {
                    th scope="col" { "Program" } th scope="col" { "Events" } th scope="col" { "Entries" }
                    th scope="col" { "Issued" } th scope="col" { "Redeemed" } th scope="col" { "Participants" } th scope="col" { "Last activity" }
                } }
                tbody {
                    @for row in rows {
                        tr {
                            td { a href=(format!("/console/programs/{}", row.program_id)) { (row.program_name) } }
                            td class="num" { (row.event_count) } td class="num" { (row.journal_count) }
                            td class="num" { (crate::money::format(row.total_issued, row.scale)) }
                            td class="num" { (crate::money::format(row.total_redeemed, row.scale)) }
                            td class="num" { (row.unique_participants) }
                            td { (super::layout::maybe_time(row.last_activity_at)) }
                        }
                    }
                }
            }
        }
    }
}

/// The report's program filter, read as the API reads an id.
struct ProgramOnly(Uuid);

impl crate::validation::Request for ProgramOnly {
    fn read(q: &crate::validation::Fields<'_>) -> Self {
        ProgramOnly(q.req_uuid("program_id"))
    }
}
