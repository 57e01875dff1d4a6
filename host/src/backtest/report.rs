//! A backtest's answer: what the candidate would have done over the window, and how that differs from what
//! the saved rule did.

use super::{Tally, Verdict, Window};
use crate::assets::Asset;
use crate::error::Result;
use crate::events::{EventType, PastEvent};
use crate::rules::Tried;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// What a rule would have done over a window of processed events; nothing was written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BacktestReport)]
pub struct Report {
    pub rule: TestedRule,
    pub program_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub event_type: Option<EventType>,
    /// Events the rule was run on (or skipped) in this call.
    pub events_evaluated: i64,
    /// Events it matched and acted on without an error.
    pub matched: u64,
    /// Events whose condition, module or a CREDIT/DEBIT amount failed: the event would have failed.
    pub failed: u64,
    /// Events it would not have run on: outside its active window, or stopped by an earlier rule.
    pub skipped: u64,
    /// Fuel the module burned over all events (wasm rules).
    pub fuel_consumed: u64,
    /// Whether the window is done; otherwise `next_cursor` goes on after the last event evaluated.
    pub complete: bool,
    pub next_cursor: Option<String>,
    /// Per asset, what the rule would have credited and debited, and how the credits spread over
    /// participants.
    pub assets: Vec<AssetOutcome>,
    /// Against what the saved rule did in the same events; absent for a new rule.
    pub comparison: Option<Comparison>,
    /// Events where the rule's outcome differs from what happened, in the order received.
    pub changes: Changes,
}

/// The rule a backtest ran.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TestedRule {
    /// The saved rule it stands for; absent for a new rule.
    pub id: Option<Uuid>,
    pub name: String,
    pub condition: String,
    pub module_id: Option<Uuid>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetOutcome {
    pub asset_id: Uuid,
    #[schema(example = "PTS")]
    pub symbol: String,
    #[schema(example = "1200")]
    pub credited: String,
    #[schema(example = "0")]
    pub debited: String,
    /// Over the participants the rule would have credited.
    pub participants: Distribution,
}

/// How credits spread over participants: how many, their sum, the median, the 99th percentile and the most
/// one participant received (nearest rank).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CreditDistribution)]
pub struct Distribution {
    pub count: u64,
    pub sum: String,
    pub p50: String,
    pub p99: String,
    pub max: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BacktestComparison)]
pub struct Comparison {
    pub rule_id: Uuid,
    /// Events the saved rule matched, as recorded.
    pub matched_then: u64,
    /// Matched now and not then.
    pub newly_matched: u64,
    /// Matched then and not now.
    pub no_longer_matched: u64,
    /// Matched both times, with different amounts.
    pub amounts_changed: u64,
    pub assets: Vec<AssetComparison>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AssetComparison {
    pub asset_id: Uuid,
    pub symbol: String,
    pub credited_then: String,
    pub credited_now: String,
    pub debited_then: String,
    pub debited_now: String,
}

/// A page of changed events; `next_cursor` is `changes_after` for the next page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BacktestChanges)]
pub struct Changes {
    pub data: Vec<ChangedEvent>,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChangedEvent {
    pub event_id: Uuid,
    pub participant_id: Option<Uuid>,
    pub received_at: DateTime<Utc>,
    pub matched_then: bool,
    pub matched_now: bool,
    /// Why the rule would fail on this event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_now: Option<String>,
    pub then: Vec<Moved>,
    pub now: Vec<Moved>,
}

/// Credited and debited in one asset, at its scale.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = BacktestAmounts)]
pub struct Moved {
    pub asset_id: Uuid,
    pub credited: String,
    pub debited: String,
}

/// A changed event as the tally keeps it, with its amounts unrendered.
pub(super) struct Change {
    event_id: Uuid,
    participant_id: Option<Uuid>,
    received_at: DateTime<Utc>,
    matched_then: bool,
    matched_now: bool,
    failed_now: Option<String>,
    then: BTreeMap<Uuid, (Decimal, Decimal)>,
    now: BTreeMap<Uuid, (Decimal, Decimal)>,
}

impl Change {
    pub(super) fn new(event: &PastEvent, then: Verdict, now: Verdict, matched_now: bool) -> Self {
        Change {
            event_id: event.id,
            participant_id: event.participant_id,
            received_at: event.created_at,
            matched_then: then.matched,
            matched_now,
            failed_now: now.failed,
            then: then.moved,
            now: now.moved,
        }
    }
}

pub(super) fn build(
    tried: &Tried,
    request: &Window,
    tally: Tally,
    assets: &HashMap<Uuid, Option<Asset>>,
    complete: bool,
    next_cursor: Option<String>,
) -> Result<Report> {
    let asset = |id: &Uuid| assets.get(id).and_then(Option::as_ref);
    let shown = |id: &Uuid, amount: Decimal| match asset(id) {
        Some(asset) => asset.format(amount),
        None => amount.normalize().to_string(),
    };
    let symbol = |id: &Uuid| asset(id).map(|a| a.symbol.clone()).unwrap_or_default();
    let outcomes = tally
        .now
        .iter()
        .map(|(id, (credited, debited))| {
            let mut spread: Vec<Decimal> = tally
                .credited
                .get(id)
                .map(|per| per.values().copied().collect())
                .unwrap_or_default();
            spread.sort();
            let rank = |p: usize| {
                // Nearest rank: the smallest value with at least p % of the values at or below it.
                let index = (spread.len() * p).div_ceil(100).max(1) - 1;
                spread.get(index).copied().unwrap_or_default()
            };
            AssetOutcome {
                asset_id: *id,
                symbol: symbol(id),
                credited: shown(id, *credited),
                debited: shown(id, *debited),
                participants: Distribution {
                    count: spread.len() as u64,
                    sum: shown(id, spread.iter().sum()),
                    p50: shown(id, rank(50)),
                    p99: shown(id, rank(99)),
                    max: shown(id, spread.last().copied().unwrap_or_default()),
                },
            }
        })
        .collect();
    let comparison = tried.saved.map(|rule_id| {
        let mut ids: Vec<&Uuid> = tally.now.keys().chain(tally.then.keys()).collect();
        ids.sort();
        ids.dedup();
        let zero = (Decimal::ZERO, Decimal::ZERO);
        Comparison {
            rule_id,
            matched_then: tally.matched_then,
            newly_matched: tally.newly_matched,
            no_longer_matched: tally.no_longer_matched,
            amounts_changed: tally.amounts_changed,
            assets: ids
                .into_iter()
                .map(|id| {
                    let then = tally.then.get(id).unwrap_or(&zero);
                    let now = tally.now.get(id).unwrap_or(&zero);
                    AssetComparison {
                        asset_id: *id,
                        symbol: symbol(id),
                        credited_then: shown(id, then.0),
                        credited_now: shown(id, now.0),
                        debited_then: shown(id, then.1),
                        debited_now: shown(id, now.1),
                    }
                })
                .collect(),
        }
    });
    let mut changes = tally.changes;
    let has_more = changes.len() > request.changes_limit;
    changes.truncate(request.changes_limit);
    let next_changes = match has_more {
        true => changes
            .last()
            .map(|c| crate::pagination::Cursor::at(c.received_at, c.event_id).encode()),
        false => None,
    };
    let moved = |moved: &BTreeMap<Uuid, (Decimal, Decimal)>| -> Vec<Moved> {
        moved
            .iter()
            .map(|(id, (credited, debited))| Moved {
                asset_id: *id,
                credited: shown(id, *credited),
                debited: shown(id, *debited),
            })
            .collect()
    };
    let changes = changes
        .into_iter()
        .map(|c| ChangedEvent {
            event_id: c.event_id,
            participant_id: c.participant_id,
            received_at: c.received_at,
            matched_then: c.matched_then,
            matched_now: c.matched_now,
            then: moved(&c.then),
            now: moved(&c.now),
            failed_now: c.failed_now,
        })
        .collect();
    Ok(Report {
        rule: TestedRule {
            id: tried.saved,
            name: tried.rule.name.clone(),
            condition: tried.rule.condition.clone(),
            module_id: tried.rule.module_id,
        },
        program_id: tried.rule.program_id,
        from: request.from,
        to: request.to,
        event_type: request.event_type,
        events_evaluated: tally.evaluated,
        matched: tally.matched,
        failed: tally.failed,
        skipped: tally.skipped,
        fuel_consumed: tally.fuel,
        complete,
        next_cursor,
        assets: outcomes,
        comparison,
        changes: Changes {
            data: changes,
            has_more,
            next_cursor: next_changes,
        },
    })
}
