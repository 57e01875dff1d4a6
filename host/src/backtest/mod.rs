//! Backtests: a rule, saved or not, run over a window of a program's processed events, each event seen with
//! its participant's state, levels and balances as they were when the event was processed, rebuilt from the
//! state history and the ledger (see `events::PastEvent::state_as_of`). Everything is read in one read-only
//! transaction: a backtest cannot write.
//!
//! The history is the one that happened: what the candidate would have changed (counters, tags, balances)
//! is not fed forward to later events, and budgets are not applied.

mod report;

pub use report::{
    AssetComparison, AssetOutcome, ChangedEvent, Changes, Comparison, Distribution, Moved, Report,
    TestedRule,
};

use crate::assets::Asset;
use crate::error::{Error, FieldError, Result};
use crate::events::worker::{self, ModuleEvent};
use crate::events::{EventType, PastEvent, ProcessedWindow};
use crate::holders::state::Rebuilt;
use crate::organizations::Actor;
use crate::pagination::Cursor;
use crate::participants::State;
use crate::rules::cel::{self, Variables};
use crate::rules::evaluation::{self, Decision, EvaluationReason, EvaluationStatus};
use crate::rules::{Candidate, CompiledRule, Step};
use crate::tiers::holders::{HeldTier, ProgramLevel, Standing};
use crate::wasm;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The most events one call evaluates.
pub const MAX_EVENTS: i64 = 1_000_000;
/// Events evaluated when the request names no limit.
pub const DEFAULT_EVENTS: i64 = 10_000;
/// The most changed events one answer lists.
pub const MAX_CHANGES: usize = 100;
/// Events read, and their participants' histories rebuilt, at a time.
const CHUNK: i64 = 2_000;
/// Participants a call keeps rebuilt between chunks; past it, it forgets them all and reads them again.
const MAX_KNOWN: usize = 200_000;
/// A call stops after the chunk that passes this and answers with a cursor to go on from.
const TIME_BUDGET: Duration = Duration::from_secs(30);

/// One backtest at a time per server: it runs beside event processing, and is bounded so that it does not
/// take the machine from it.
pub struct Running(tokio::sync::Semaphore);

impl Default for Running {
    fn default() -> Self {
        Running(tokio::sync::Semaphore::new(1))
    }
}

/// What to run, over which events, and which page of the changes to list.
pub struct Request {
    pub candidate: Candidate,
    pub window: Window,
}

/// Over which events, and which page of the changes to list.
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub event_type: Option<EventType>,
    pub limit: i64,
    /// Go on after this event (a previous answer's `next_cursor`).
    pub after: Option<Cursor>,
    pub changes_limit: usize,
    pub changes_after: Option<Cursor>,
}

pub async fn backtest(
    pool: &PgPool,
    runtime: &Arc<wasm::Runtime>,
    running: &Running,
    actor: &Actor,
    request: Request,
) -> Result<Report> {
    let _running = running.0.try_acquire().map_err(|_| {
        Error::conflict("a backtest is already running on this server; try again when it ends")
    })?;
    let Request {
        candidate,
        window: request,
    } = request;
    let after = cursor_position(request.after.as_ref(), "after")?;
    let changes_after = cursor_position(request.changes_after.as_ref(), "changes_after")?;
    // The rule's own problems are named where the request gave them.
    let within = match &candidate {
        Candidate::New(_) => "rule",
        Candidate::Saved { .. } => "changes",
    };
    let tried = crate::rules::try_candidate(pool, runtime, actor, candidate)
        .await
        .map_err(|e| e.within(within))?;
    let window = ProcessedWindow {
        program_id: tried.rule.program_id,
        from: request.from,
        to: request.to,
        event_type: request.event_type,
    };
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut run = Run {
        actor,
        runtime,
        rule: &tried.compiled,
        saved: tried.saved,
        program_id: window.program_id,
        levels: crate::tiers::holders::levels_of_program(&mut tx, window.program_id).await?,
        assets: HashMap::new(),
        known: HashMap::new(),
        tally: Tally::new(request.changes_limit, changes_after),
    };
    let started = Instant::now();
    let mut position = after;
    let mut complete = false;
    loop {
        let left = request.limit - run.tally.evaluated;
        if left <= 0 {
            complete = crate::events::processed_in_window(&mut tx, &window, position, 1)
                .await?
                .is_empty();
            break;
        }
        let events =
            crate::events::processed_in_window(&mut tx, &window, position, left.min(CHUNK)).await?;
        let Some(last) = events.last() else {
            complete = true;
            break;
        };
        position = Some((last.created_at, last.id));
        run.chunk(&mut tx, &events).await?;
        if started.elapsed() >= TIME_BUDGET {
            break;
        }
    }
    tx.rollback().await?;
    let next_cursor = match complete {
        true => None,
        false => position.map(|(at, id)| Cursor::at(at, id).encode()),
    };
    report::build(
        &tried,
        &request,
        run.tally,
        &run.assets,
        complete,
        next_cursor,
    )
}

/// A cursor's (received at, id), or a 400 naming `field`.
fn cursor_position(cursor: Option<&Cursor>, field: &str) -> Result<Option<(DateTime<Utc>, Uuid)>> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    match DateTime::parse_from_rfc3339(&cursor.key) {
        Ok(at) => Ok(Some((at.with_timezone(&Utc), cursor.id))),
        Err(_) => Err(Error::invalid(FieldError::invalid(
            field,
            "a cursor a backtest answered with",
            None,
            "not a backtest cursor",
        ))),
    }
}

/// One backtest's rule, what it has read, and what it has found so far.
struct Run<'a> {
    actor: &'a Actor,
    runtime: &'a Arc<wasm::Runtime>,
    rule: &'a CompiledRule,
    saved: Option<Uuid>,
    program_id: Uuid,
    levels: Vec<ProgramLevel>,
    /// The program's assets as actions name them; `None` for an id that is not one.
    assets: HashMap<Uuid, Option<Asset>>,
    /// Participants rebuilt so far, as their last event in the window saw them.
    known: HashMap<Uuid, Known>,
    tally: Tally,
}

/// A participant rebuilt up to `at`: the state and AVAILABLE balances of everything that sorts before it.
#[derive(Default)]
struct Known {
    at: Uuid,
    state: Rebuilt,
    /// By asset: the sum and the asset's scale.
    balances: BTreeMap<Uuid, (Decimal, i16)>,
}

/// What an event's participant was as the event was processed.
#[derive(Default)]
struct Seen {
    state: Option<State>,
    standings: Vec<Standing>,
    balances: Vec<(String, String)>,
}

/// What a rule did, or would do, with one event.
#[derive(Debug, Default, Clone, PartialEq)]
struct Verdict {
    matched: bool,
    /// Why the condition, the module or an action failed.
    failed: Option<String>,
    /// Not evaluated: outside the rule's active window, or stopped by an earlier rule.
    skipped: bool,
    /// Credited and debited, by asset.
    moved: BTreeMap<Uuid, (Decimal, Decimal)>,
    fuel: u64,
}

impl Run<'_> {
    async fn chunk(&mut self, conn: &mut PgConnection, events: &[PastEvent]) -> Result<()> {
        let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
        let mut then: HashMap<Uuid, Verdict> = HashMap::new();
        if let Some(rule_id) = self.saved {
            for recorded in crate::events::evaluations_of_rule(conn, rule_id, &ids).await? {
                let verdict = then.entry(recorded.event_id).or_default();
                verdict.matched = recorded.status == EvaluationStatus::Success
                    || (recorded.status == EvaluationStatus::Skipped
                        && recorded.reason == Some(EvaluationReason::BudgetExceeded));
                verdict.skipped = recorded.reason == Some(EvaluationReason::StoppedByRule);
            }
            for moved in crate::ledger::moved_by_rule(conn, rule_id, &ids).await? {
                self.asset(conn, moved.asset_id).await?;
                let verdict = then.entry(moved.event_id).or_default();
                verdict
                    .moved
                    .insert(moved.asset_id, (moved.credited, moved.debited));
            }
        }
        let mut seen = match self.rule.reads_participant() {
            true => self.seen(conn, events).await?,
            false => HashMap::new(),
        };
        for (i, event) in events.iter().enumerate() {
            let then = then.remove(&event.id).unwrap_or_default();
            let now = match then.skipped {
                // The saved rule never ran on it: an earlier rule stopped the event's rules.
                true => Verdict {
                    skipped: true,
                    ..Verdict::default()
                },
                false => {
                    let seen = seen.remove(&event.id).unwrap_or_default();
                    self.evaluate(conn, event, seen).await?
                }
            };
            self.tally.add(event, then, now);
            if i % 64 == 63 {
                tokio::task::yield_now().await;
            }
        }
        Ok(())
    }

    /// What each event's participant was as the event was processed: the state history and the AVAILABLE
    /// postings up to the event's `state_as_of`, replayed in order; levels as the program defines them now.
    /// A participant met in an earlier chunk goes on from where it was left, reading only what came since.
    async fn seen(
        &mut self,
        conn: &mut PgConnection,
        events: &[PastEvent],
    ) -> Result<HashMap<Uuid, Seen>> {
        let mut by_participant: BTreeMap<Uuid, Vec<&PastEvent>> = BTreeMap::new();
        for event in events {
            if let Some(participant) = event.participant_id {
                by_participant.entry(participant).or_default().push(event);
            }
        }
        if self.known.len() > MAX_KNOWN {
            self.known.clear();
        }
        let (mut participants, mut froms, mut bounds) = (Vec::new(), Vec::new(), Vec::new());
        for (participant, list) in by_participant.iter_mut() {
            list.sort_by_key(|e| e.state_as_of());
            let (first, last) = match (list.first(), list.last()) {
                (Some(first), Some(last)) => (first.state_as_of(), last.state_as_of()),
                _ => continue,
            };
            // Processed before where it was left (a retried event, received earlier): start over.
            if self.known.get(participant).is_some_and(|k| k.at > first) {
                self.known.remove(participant);
            }
            participants.push(*participant);
            froms.push(self.known.get(participant).map_or(Uuid::nil(), |k| k.at));
            bounds.push(last);
        }
        let now: HashMap<Uuid, State> = crate::participants::states(conn, &participants)
            .await?
            .into_iter()
            .map(|s| (s.id, s))
            .collect();
        let mut changes = group_by(
            crate::holders::state::changes_between(conn, &participants, &froms, &bounds).await?,
            |c| c.holder_id,
        );
        let mut postings = match self.rule.module.is_some() {
            true => group_by(
                crate::ledger::available_between(conn, &participants, &froms, &bounds).await?,
                |p| p.participant_id,
            ),
            false => HashMap::new(),
        };
        let mut seen = HashMap::new();
        for (participant, list) in by_participant {
            let Some(current) = now.get(&participant) else {
                continue;
            };
            let changes = changes.remove(&participant).unwrap_or_default();
            let postings = postings.remove(&participant).unwrap_or_default();
            let (mut next_change, mut next_posting) = (0, 0);
            let mut known = self.known.remove(&participant).unwrap_or_default();
            for event in list {
                let bound = event.state_as_of();
                while let Some(change) = changes.get(next_change).filter(|c| c.position < bound) {
                    known.state.apply(change);
                    next_change += 1;
                }
                while let Some(posting) = postings.get(next_posting).filter(|p| p.position < bound)
                {
                    let (sum, scale) = known
                        .balances
                        .entry(posting.asset_id)
                        .or_insert((Decimal::ZERO, posting.scale));
                    *sum += posting.amount;
                    *scale = posting.scale;
                    next_posting += 1;
                }
                known.at = bound;
                let state = &known.state;
                seen.insert(
                    event.id,
                    Seen {
                        state: Some(State {
                            tags: state.tags.iter().cloned().collect(),
                            attributes: sqlx::types::Json(state.attributes.clone()),
                            counters: sqlx::types::Json(state.counters.clone()),
                            ..current.clone()
                        }),
                        standings: self.standings(participant, state),
                        balances: known
                            .balances
                            .iter()
                            .map(|(asset, (sum, scale))| {
                                (asset.to_string(), crate::money::format(*sum, *scale))
                            })
                            .collect(),
                    },
                );
            }
            self.known.insert(participant, known);
        }
        Ok(seen)
    }

    /// The levels a rebuilt state holds in the program, as its tiers define them now.
    fn standings(&self, participant: Uuid, state: &Rebuilt) -> Vec<Standing> {
        state
            .levels
            .iter()
            .filter(|((program, _), _)| program.is_none_or(|p| p == self.program_id))
            .filter_map(|((_, tier), (level, acquired_at))| {
                let defined = self
                    .levels
                    .iter()
                    .find(|l| l.tier_key == *tier && l.level == *level)?;
                Some(Standing {
                    holder_id: participant,
                    program_id: self.program_id,
                    held: HeldTier {
                        key: tier.clone(),
                        level: level.clone(),
                        rank: defined.rank,
                        benefits: defined.benefits.clone(),
                        acquired_at: *acquired_at,
                        expires_at: None,
                    },
                })
            })
            .collect()
    }

    /// The candidate on one event, as the event worker would have run it then: the shared evaluator, then
    /// each CREDIT and DEBIT amount checked against its asset as the ledger would check it.
    async fn evaluate(
        &mut self,
        conn: &mut PgConnection,
        event: &PastEvent,
        seen: Seen,
    ) -> Result<Verdict> {
        let processed_at = event.processed_at.unwrap_or(event.created_at);
        if !self.rule.active_at(processed_at) {
            return Ok(Verdict {
                skipped: true,
                ..Verdict::default()
            });
        }
        let org = self.actor.organization_id;
        let state = seen
            .state
            .unwrap_or_else(|| State::new(Uuid::nil(), org, ""));
        let mut vars = Variables::new(
            cel::from_json(&event.event_data.0),
            worker::participant_value(&state, &seen.standings),
            event.event_timestamp,
        );
        if let (true, Some(participant)) = (self.rule.reads_group, event.participant_id) {
            vars.set_group(worker::group_value(conn, participant, self.program_id).await?);
        }
        let evaluated = evaluation::evaluate(self.rule, &vars, self.runtime, |module| {
            let seen_event = ModuleEvent {
                id: event.id,
                program_id: self.program_id,
                timestamp: event.event_timestamp,
                data: &event.event_data.0,
            };
            worker::module_input(module, seen_event, &state, &seen.standings, &seen.balances)
        })
        .await;
        let mut verdict = Verdict {
            fuel: evaluated.module.map_or(0, |m| m.fuel),
            ..Verdict::default()
        };
        let actions = match evaluated.decision {
            Decision::NoMatch => return Ok(verdict),
            Decision::ConditionFailed(message) => {
                verdict.failed = Some(message);
                return Ok(verdict);
            }
            Decision::ModuleSkipped(skipped) => {
                verdict.failed = Some(skipped.message);
                return Ok(verdict);
            }
            Decision::Act(actions) => actions,
        };
        verdict.matched = true;
        for action in actions.compiled() {
            let Step::Money {
                debit,
                asset_id,
                amount,
                ..
            } = &action.step
            else {
                continue;
            };
            let amount = match amount.value(&vars) {
                Ok(amount) => amount,
                Err(message) => return Ok(failed(verdict, action.kind, message)),
            };
            let asset = match self.asset(conn, *asset_id).await? {
                Some(asset) => asset,
                None => return Ok(failed(verdict, action.kind, "asset not found".into())),
            };
            if let Err(problem) = asset.check_amount("amount", amount) {
                return Ok(failed(verdict, action.kind, problem.message));
            }
            let (credited, debited) = verdict.moved.entry(*asset_id).or_default();
            match debit {
                true => *debited += amount,
                false => *credited += amount,
            }
        }
        Ok(verdict)
    }

    async fn asset(&mut self, conn: &mut PgConnection, id: Uuid) -> Result<Option<&Asset>> {
        if !self.assets.contains_key(&id) {
            let org = self.actor.organization_id;
            let asset = crate::assets::find_linked(conn, org, self.program_id, id).await?;
            self.assets.insert(id, asset);
        }
        Ok(self.assets.get(&id).and_then(Option::as_ref))
    }
}

/// An action failed: the event would have failed, and its rule moved nothing.
fn failed(mut verdict: Verdict, kind: crate::rules::ActionType, message: String) -> Verdict {
    verdict.failed = Some(format!("action {kind} failed: {message}"));
    verdict.moved.clear();
    verdict
}

fn group_by<T>(rows: Vec<T>, key: impl Fn(&T) -> Uuid) -> HashMap<Uuid, Vec<T>> {
    let mut grouped: HashMap<Uuid, Vec<T>> = HashMap::new();
    for row in rows {
        grouped.entry(key(&row)).or_default().push(row);
    }
    grouped
}

/// What a backtest has counted so far.
struct Tally {
    evaluated: i64,
    matched: u64,
    failed: u64,
    skipped: u64,
    fuel: u64,
    /// Credited and debited by the candidate, and by the saved rule as recorded, by asset.
    now: BTreeMap<Uuid, (Decimal, Decimal)>,
    then: BTreeMap<Uuid, (Decimal, Decimal)>,
    /// What the candidate credits each participant, by asset.
    credited: BTreeMap<Uuid, HashMap<Uuid, Decimal>>,
    matched_then: u64,
    newly_matched: u64,
    no_longer_matched: u64,
    amounts_changed: u64,
    /// Changed events after `changes_after`, up to one more than asked for (telling whether there are more).
    changes: Vec<report::Change>,
    changes_limit: usize,
    changes_after: Option<(DateTime<Utc>, Uuid)>,
}

impl Tally {
    fn new(changes_limit: usize, changes_after: Option<(DateTime<Utc>, Uuid)>) -> Self {
        Tally {
            evaluated: 0,
            matched: 0,
            failed: 0,
            skipped: 0,
            fuel: 0,
            now: BTreeMap::new(),
            then: BTreeMap::new(),
            credited: BTreeMap::new(),
            matched_then: 0,
            newly_matched: 0,
            no_longer_matched: 0,
            amounts_changed: 0,
            changes: Vec::new(),
            changes_limit,
            changes_after,
        }
    }

    fn add(&mut self, event: &PastEvent, then: Verdict, now: Verdict) {
        self.evaluated += 1;
        self.fuel += now.fuel;
        match (&now.failed, now.skipped, now.matched) {
            (Some(_), _, _) => self.failed += 1,
            (None, true, _) => self.skipped += 1,
            (None, false, true) => self.matched += 1,
            (None, false, false) => {}
        }
        let now_matched = now.matched && now.failed.is_none();
        for (asset, (credited, debited)) in &now.moved {
            let total = self.now.entry(*asset).or_default();
            total.0 += credited;
            total.1 += debited;
            if let (Some(participant), true) = (event.participant_id, *credited > Decimal::ZERO) {
                *self
                    .credited
                    .entry(*asset)
                    .or_default()
                    .entry(participant)
                    .or_default() += credited;
            }
        }
        for (asset, (credited, debited)) in &then.moved {
            let total = self.then.entry(*asset).or_default();
            total.0 += credited;
            total.1 += debited;
        }
        self.matched_then += u64::from(then.matched);
        let amounts_differ = then.moved != now.moved;
        match (then.matched, now_matched) {
            (false, true) => self.newly_matched += 1,
            (true, false) => self.no_longer_matched += 1,
            (true, true) if amounts_differ => self.amounts_changed += 1,
            _ => {}
        }
        let changed = then.matched != now_matched || amounts_differ;
        let listed = self
            .changes_after
            .is_none_or(|after| (event.created_at, event.id) > after);
        if changed && listed && self.changes.len() <= self.changes_limit {
            self.changes
                .push(report::Change::new(event, then, now, now_matched));
        }
    }
}
