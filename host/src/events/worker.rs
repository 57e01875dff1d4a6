//! Event workers. A worker claims a batch of PENDING events by locking their `event_queue` rows with
//! `FOR UPDATE SKIP LOCKED` and processes them inside that same transaction, each event under its own
//! savepoint: an event's ledger entries, evaluations and status change commit together or not at all. The row
//! locks are the claim, so a process killed mid-batch loses nothing (its transaction rolls back and the events
//! are queued again) and doubles nothing;
//! any number of `scrip serve` processes can share one database.
//! Because the claim and the work share one transaction, an event is never seen committed as PROCESSING:
//! it goes from PENDING straight to COMPLETED or FAILED.
//!
//! Whole-event atomicity: when any action of any rule fails, the event's savepoint is rolled back, so a failed
//! attempt leaves no ledger entries or state changes behind and retrying it can never double-credit. Its
//! evaluations are still recorded, with the failing rule marked FAILED. A failed attempt is retried
//! automatically after 2, 4, 8, 16 and 32 s (the event stays PENDING, with the reason in `error_message`);
//! after the sixth attempt the event is FAILED. Evaluations describe the latest attempt.
//!
//! Containment: a batch runs in a task of its own, so a panic rolls back that batch, never the worker. Its
//! events are then processed one at a time, and one that panics alone has its attempt failed like any other
//! (rescheduled behind the queue, FAILED after the sixth). Workers themselves are supervised and restarted.
//! A batch stops claiming time after [`BATCH_BUDGET`], so no transaction stays open for long.

use super::actions::{self, ActionResult, EventContext};
use super::batch::Batch;
use super::repo::{self, Claimed, EvaluationColumns, EventColumns, QueueKey, Scope};
use super::{Doorbell, EventStatus};
use crate::holders::Holder;
use crate::holders::state::Origin;
use crate::ledger::KnownAccounts;
use crate::participants::{self, State, Wait};
use crate::programs;
use crate::rules::cel::{self, Variables};
use crate::rules::evaluation::{self, Decision, EvaluationReason, EvaluationStatus};
use crate::rules::{self, CompiledModule, CompiledRule, RuleCache};
use crate::tiers::holders::{self, AfterEvent, Standing, Track, Tracks};
use crate::wasm::{self, Runtime};
use crate::webhooks::{self, Notice, Subscriptions, WebhookEventType};
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

/// Most events claimed at once. A backlog drains 17-23 % faster in batches of 100 than of 50 (fewer
/// statements per event); 200 was no better (BENCHMARKS.md). A stream of single POSTs makes smaller ones.
const BATCH_SIZE: usize = 100;
const IDLE_POLL: Duration = Duration::from_millis(500);
/// The first attempt and five automatic retries; then the event is FAILED until retried by hand (E88).
const MAX_ATTEMPTS: i32 = 6;
/// How long a batch takes on new events: past it, the events not yet begun go back to the queue when the
/// batch commits. Slow rules thus hold their transaction, and the worker, for about this long plus one event.
const BATCH_BUDGET: Duration = Duration::from_millis(500);
/// How long a supervisor waits before restarting a worker that died.
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// How events are processed.
#[derive(Debug, Clone, Copy)]
pub struct Pipeline {
    /// Workers per process. With none, the process serves the API only: no lot expiry pass either.
    pub workers: usize,
    /// Delay before the first automatic retry; each next one waits twice as long (2, 4, 8, 16, 32 s).
    pub retry_backoff: Duration,
    /// The most a wasm rule may ask for, and the largest component accepted.
    pub wasm: wasm::Ceiling,
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline {
            workers: 2,
            retry_backoff: Duration::from_secs(2),
            wasm: wasm::Ceiling::DEFAULT,
        }
    }
}

/// How many of this process's workers are running, for the health check.
#[derive(Debug, Default)]
pub struct Liveness {
    configured: AtomicUsize,
    running: AtomicUsize,
}

impl Liveness {
    pub fn configured(&self) -> usize {
        self.configured.load(Ordering::Relaxed)
    }

    pub fn running(&self) -> usize {
        self.running.load(Ordering::Relaxed)
    }
}

/// Runs a worker until `shutdown` turns true, restarting it whenever it dies.
pub async fn supervise(
    pool: PgPool,
    cache: Arc<RuleCache>,
    doorbell: Doorbell,
    retry_backoff: Duration,
    mut shutdown: watch::Receiver<bool>,
    liveness: Arc<Liveness>,
) {
    liveness.configured.fetch_add(1, Ordering::Relaxed);
    loop {
        liveness.running.fetch_add(1, Ordering::Relaxed);
        let worker = tokio::spawn(run(
            pool.clone(),
            cache.clone(),
            doorbell.clone(),
            retry_backoff,
            shutdown.clone(),
        ));
        let ended = worker.await;
        liveness.running.fetch_sub(1, Ordering::Relaxed);
        match ended {
            Ok(()) => return,
            Err(err) => {
                tracing::error!(error = %panic_message(err), "an event worker died; restarting it");
                tokio::select! {
                    _ = tokio::time::sleep(RESTART_AFTER) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

/// Runs until `shutdown` turns true, finishing the batch in hand.
pub async fn run(
    pool: PgPool,
    cache: Arc<RuleCache>,
    doorbell: Doorbell,
    retry_backoff: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        match contained_batch(&pool, &cache, retry_backoff).await {
            Ok(Progress { claimed: 0, .. }) => {
                // Waits only when idle: a worker that listened while busy would take rings meant for an idle
                // one and leave their events queued behind its batch. A ring between the empty claim and
                // here is not lost: it woke another idle worker, or it is kept for the next listener.
                let notified = doorbell.wakeups().notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                // Sleep until woken, or until the earliest scheduled retry if that comes sooner.
                let nap = repo::next_retry_in(&pool)
                    .await
                    .unwrap_or(IDLE_POLL)
                    .min(IDLE_POLL);
                tokio::select! {
                    _ = notified => {}
                    _ = tokio::time::sleep(nap) => {}
                    _ = shutdown.changed() => {}
                }
            }
            // Every event waits on participants another batch holds: let that batch finish first.
            Ok(Progress { finished: 0, .. }) => {
                tokio::time::sleep(Duration::from_millis(jitter_ms(2, 20))).await;
            }
            // A full batch: more may be waiting, so another idle worker joins in.
            Ok(Progress { claimed, .. }) if claimed == BATCH_SIZE => {
                doorbell.wakeups().notify_one()
            }
            Ok(_) => {}
            Err(err) if is_contention(&err) => {
                tracing::debug!(error = %err, "batch rolled back on lock contention; retrying");
                tokio::time::sleep(Duration::from_millis(jitter_ms(10, 100))).await;
            }
            Err(err) => {
                tracing::error!(error = %err, "event batch failed; its events stay pending");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Claims and processes a batch in a task of its own, so that a panic fails the batch, not the worker. The
/// events of a batch that panicked are then processed one at a time; an event that panics alone has its
/// attempt failed, which reschedules it behind the others.
async fn contained_batch(
    pool: &PgPool,
    cache: &Arc<RuleCache>,
    retry_backoff: Duration,
) -> sqlx::Result<Progress> {
    let claimed = Arc::new(Mutex::new(Vec::new()));
    let panic = match in_task(pool, cache, retry_backoff, Scope::Queue, &claimed).await {
        Ok(progress) => return progress,
        Err(panic) => panic,
    };
    let suspects = std::mem::take(&mut *claimed.lock().unwrap_or_else(PoisonError::into_inner));
    tracing::error!(events = suspects.len(), %panic, "an event batch panicked; processing its events one at a time");
    for key in &suspects {
        let alone = in_task(
            pool,
            cache,
            retry_backoff,
            Scope::One(*key),
            &Arc::default(),
        )
        .await;
        match alone {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => {
                tracing::warn!(event_id = %key.event_id, error = %err, "event stays pending");
            }
            Err(panic) => {
                tracing::error!(event_id = %key.event_id, %panic, "event processing panicked; the attempt fails");
                fail_attempt(pool, *key, &panic, retry_backoff).await?;
            }
        }
    }
    Ok(Progress {
        claimed: suspects.len(),
        finished: suspects.len(),
    })
}

/// One batch in a task of its own; `Err` is what it panicked with.
async fn in_task(
    pool: &PgPool,
    cache: &Arc<RuleCache>,
    retry_backoff: Duration,
    scope: Scope,
    claimed: &Arc<Mutex<Vec<QueueKey>>>,
) -> Result<sqlx::Result<Progress>, String> {
    let (pool, cache, claimed) = (pool.clone(), cache.clone(), claimed.clone());
    tokio::spawn(async move { process(&pool, &cache, retry_backoff, scope, &claimed).await })
        .await
        .map_err(panic_message)
}

fn panic_message(err: tokio::task::JoinError) -> String {
    match err.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into()),
        Err(err) => err.to_string(),
    }
}

/// Records a failed attempt of the event at `key`, if it is still queued there and free.
async fn fail_attempt(
    pool: &PgPool,
    key: QueueKey,
    panic: &str,
    retry_backoff: Duration,
) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    let events = repo::claim(&mut tx, Scope::One(key), 1).await?;
    let message = format!("internal error: processing the event panicked ({panic})");
    let failed: Vec<(&Claimed, Uuid, Outcome)> = events
        .iter()
        .map(|event| {
            let outcome = Outcome::failed(message.clone(), Vec::new());
            (event, Uuid::now_v7(), outcome)
        })
        .collect();
    let organizations: Vec<Uuid> = events.iter().map(|e| e.organization_id).collect();
    let subscriptions = Subscriptions::load(&mut tx, &organizations).await?;
    record(&mut tx, &failed, retry_backoff, &subscriptions, Vec::new()).await?;
    tx.commit().await
}

/// What one [`process_batch`] did: events claimed, and of those finished (completed, failed or rescheduled);
/// the others wait on participants another batch holds and are claimed again once it commits.
#[derive(Debug, Default)]
pub struct Progress {
    pub claimed: usize,
    pub finished: usize,
}

/// Claims and processes one batch. Everything that can be read or written once for the whole batch is: the
/// programs and rules, participants named by external id, the participants' locks and state, their accounts,
/// and at the end every event's evaluations and status.
pub async fn process_batch(
    pool: &PgPool,
    cache: &RuleCache,
    retry_backoff: Duration,
) -> sqlx::Result<Progress> {
    process(pool, cache, retry_backoff, Scope::Queue, &Mutex::default()).await
}

/// [`process_batch`] of the events `scope` claims, telling `claimed` which they are as soon as it knows.
async fn process(
    pool: &PgPool,
    cache: &RuleCache,
    retry_backoff: Duration,
    scope: Scope,
    claimed: &Mutex<Vec<QueueKey>>,
) -> sqlx::Result<Progress> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let events = in_turn(repo::claim(&mut tx, scope, BATCH_SIZE).await?);
    if events.is_empty() {
        tx.commit().await?;
        return Ok(Progress::default());
    }
    *claimed.lock().unwrap_or_else(PoisonError::into_inner) =
        events.iter().map(Claimed::key).collect();
    let program_ids = sorted(events.iter().map(|e| e.program_id));
    let programs = programs::policies(&mut tx, &program_ids).await?;
    let rules = rules::active_rules(&mut tx, cache, &program_ids)
        .await
        .map_err(into_sqlx)?;
    let named = resolve_external_ids(&mut tx, &events).await?;
    let parties: Vec<Result<Parties, String>> = events
        .iter()
        .map(|event| parties(event, programs.get(&event.program_id), &named))
        .collect();
    // Participants another batch holds, or is creating, are skipped, not waited for: their events wait for
    // the next claim.
    let wanted = sorted(parties.iter().flatten().flat_map(Parties::existing));
    let states = participants::lock_states(&mut tx, None, &wanted, Wait::Skip).await?;
    let tracks = Tracks::load(&mut tx, &program_ids).await?;
    let standings = match tracks.any() {
        true => {
            let held: Vec<Uuid> = states.iter().map(|s| s.id).collect();
            Some(holders::standings(&mut tx, &held).await?)
        }
        false => None,
    };
    let mut new_names: Vec<(Uuid, String)> = events
        .iter()
        .zip(&parties)
        .filter_map(|(event, parties)| Some((event.organization_id, parties.as_ref().ok()?)))
        .flat_map(|(organization_id, parties)| {
            parties
                .to_create()
                .map(move |name| (organization_id, name.to_owned()))
        })
        .collect();
    new_names.sort();
    new_names.dedup();
    let creatable: HashSet<(Uuid, String)> = participants::claim_names(&mut tx, &new_names)
        .await?
        .into_iter()
        .collect();
    let owners: Vec<Uuid> = states.iter().map(|s| s.id).chain(program_ids).collect();
    let organizations = sorted(events.iter().map(|e| e.organization_id));
    let accounts = KnownAccounts::load(&mut tx, &organizations, &owners).await?;
    let now = Utc::now();
    let rule_ids: Vec<Uuid> = rules.iter().map(|r| r.id).collect();
    let budgeted = rules::budgets::of_rules(&mut tx, &rule_ids).await?;
    let subscriptions = Subscriptions::load(&mut tx, &organizations).await?;
    // One preferred budget slot per batch: concurrent batches then mostly draw from different rows.
    let budget_slot = i16::try_from(jitter_ms(0, 1 << 15)).unwrap_or(0);
    let mut batch = Batch::new(
        budget_slot,
        budgeted.into_iter().map(|b| (b.rule_id, b.asset_id)),
        states,
        standings,
        accounts,
        subscriptions,
    );
    let mut finished = Vec::with_capacity(events.len());
    for (event, parties) in events.iter().zip(parties) {
        if !finished.is_empty() && started.elapsed() >= BATCH_BUDGET {
            break;
        }
        let held = |parties: &Parties| {
            parties.existing().all(|id| batch.holds(id))
                && parties
                    .to_create()
                    .all(|name| creatable.contains(&(event.organization_id, name.to_owned())))
        };
        // Taken before the event reads anything: what has a smaller id is what its rules saw.
        let began = Uuid::now_v7();
        let parties = match parties {
            Ok(parties) if held(&parties) => parties,
            Ok(_) => continue,
            Err(message) => {
                finished.push((event, began, Outcome::failed(message, Vec::new())));
                continue;
            }
        };
        let program_rules: Vec<&CompiledRule> = rules
            .iter()
            .filter(|r| r.program_id == event.program_id)
            .map(|r| &**r)
            .collect();
        let program = ProgramRules {
            reads_group: program_rules.iter().any(|r| r.reads_group),
            rules: program_rules,
            tracks: tracks.of(event.program_id),
        };
        #[cfg(debug_assertions)]
        panic_when_asked(event);
        let outcome = match process_event(
            &mut tx,
            event,
            parties,
            &program,
            now,
            &mut batch,
            cache.runtime(),
        )
        .await
        {
            Ok(outcome) => outcome,
            Err(err) if is_contention(&err) || is_connection(&err) => return Err(err),
            Err(err) => {
                tracing::error!(event_id = %event.id, error = %err, "event failed on a database error");
                Outcome::failed(format!("internal error: {err}"), Vec::new())
            }
        };
        batch.finish_event(&mut tx, outcome.is_failed()).await?;
        finished.push((event, began, outcome));
    }
    batch.finish(&mut tx).await?;
    let notices = batch.take_notices();
    record(
        &mut tx,
        &finished,
        retry_backoff,
        batch.subscriptions(),
        notices,
    )
    .await?;
    tx.commit().await?;
    Ok(Progress {
        claimed: events.len(),
        finished: finished.len(),
    })
}

/// Orders a claimed batch so that organizations take turns: each one's oldest event, then each one's second,
/// and so on, organizations with fewer events in the batch first. A batch cut short by its time budget has
/// then made progress for every organization in it, the lightest first.
fn in_turn(mut events: Vec<Claimed>) -> Vec<Claimed> {
    events.sort_by_key(|e| (e.organization_id, e.next_attempt_at, e.id));
    let mut counts: HashMap<Uuid, usize> = HashMap::new();
    let turns: Vec<usize> = events
        .iter()
        .map(|e| {
            let seen = counts.entry(e.organization_id).or_default();
            *seen += 1;
            *seen
        })
        .collect();
    let mut ordered: Vec<(usize, usize, Claimed)> = turns
        .into_iter()
        .zip(events)
        .map(|(turn, e)| {
            (
                turn,
                counts.get(&e.organization_id).copied().unwrap_or(0),
                e,
            )
        })
        .collect();
    ordered.sort_by_key(|(turn, count, e)| (*turn, *count, e.organization_id));
    ordered.into_iter().map(|(_, _, e)| e).collect()
}

/// Debug builds only (the tests'): an event whose data holds [`PANIC_FOR_TESTS`] panics its batch, standing
/// in for a bug, so the containment of panics can be tested. Release builds never look.
#[cfg(debug_assertions)]
fn panic_when_asked(event: &Claimed) {
    if event.event_data.0.get(PANIC_FOR_TESTS).is_some() {
        panic!("{PANIC_FOR_TESTS} in event {}", event.id);
    }
}

#[cfg(debug_assertions)]
pub const PANIC_FOR_TESTS: &str = "__scrip_debug_panic__";

fn sorted(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut ids: Vec<Uuid> = ids.collect();
    ids.sort();
    ids.dedup();
    ids
}

/// Who an event is about: its participant (none for a program-wide SYSTEM event), and the recipient it
/// names, if any.
struct Parties {
    participant: Option<Who>,
    recipient: Option<Who>,
    /// The program's policy for participants that actions name by an unknown external id.
    create_unknown: bool,
}

enum Who {
    Existing(Uuid),
    /// Named by an external id no participant has yet, in a program that creates them: created with the
    /// event's other writes, so an event that fails leaves no participant behind.
    New(String),
}

impl Parties {
    /// The existing participants, which the batch locks up front.
    fn existing(&self) -> impl Iterator<Item = Uuid> + use<'_> {
        self.both().filter_map(|who| match who {
            Who::Existing(id) => Some(*id),
            Who::New(_) => None,
        })
    }

    /// The external ids of participants to create, which the batch claims up front.
    fn to_create(&self) -> impl Iterator<Item = &str> {
        self.both().filter_map(|who| match who {
            Who::Existing(_) => None,
            Who::New(external_id) => Some(external_id.as_str()),
        })
    }

    fn both(&self) -> impl Iterator<Item = &Who> {
        self.participant.iter().chain(&self.recipient)
    }
}

type Named = HashMap<(Uuid, String), Uuid>;

/// The ids of the participants that the batch's events name only by external id, for those that exist.
async fn resolve_external_ids(conn: &mut PgConnection, events: &[Claimed]) -> sqlx::Result<Named> {
    let (organizations, external_ids): (Vec<Uuid>, Vec<String>) = events
        .iter()
        .flat_map(|e| {
            [
                (e.participant_id, &e.external_id),
                (e.recipient_id, &e.recipient_external_id),
            ]
            .into_iter()
            .filter_map(|(id, external_id)| match (id, external_id) {
                (None, Some(external_id)) => Some((e.organization_id, external_id.clone())),
                _ => None,
            })
        })
        .unzip();
    if external_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let found = participants::find_by_external_ids(conn, &organizations, &external_ids).await?;
    Ok(found
        .into_iter()
        .map(|(organization_id, external_id, id)| ((organization_id, external_id), id))
        .collect())
}

/// The event's participant and recipient, or why the event cannot be processed.
fn parties(
    event: &Claimed,
    program: Option<&programs::Policy>,
    named: &Named,
) -> Result<Parties, String> {
    let program = program.ok_or("program not found")?;
    if program.status != programs::ProgramStatus::Active {
        return Err(format!("program is {}", program.status));
    }
    let create_unknown =
        program.on_unknown_participant == crate::programs::UnknownParticipantPolicy::Create;
    let find = |id: Option<Uuid>, external_id: &Option<String>| {
        let external_id = external_id.as_deref().unwrap_or_default();
        match id.or_else(|| {
            named
                .get(&(event.organization_id, external_id.to_owned()))
                .copied()
        }) {
            Some(id) => Ok(Who::Existing(id)),
            None if create_unknown => Ok(Who::New(external_id.to_owned())),
            None => Err(format!(
                "participant with external_id {external_id} not found and the program rejects unknown participants"
            )),
        }
    };
    // Only an automation's program-wide event names nobody; a client's always names a participant.
    let participant = match (event.participant_id, &event.external_id) {
        (None, None) => None,
        (id, external_id) => Some(find(id, external_id)?),
    };
    let recipient = match (event.recipient_id, &event.recipient_external_id) {
        (None, None) => None,
        (id, external_id) => Some(find(id, external_id).map_err(|m| format!("recipient: {m}"))?),
    };
    Ok(Parties {
        participant,
        recipient,
        create_unknown,
    })
}

/// What processing decided; written after the event's savepoint is released or rolled back.
struct Outcome {
    error: Option<String>,
    participant_id: Option<Uuid>,
    evaluations: Vec<EvaluationRecord>,
}

impl Outcome {
    /// The event's savepoint is rolled back: its results keep what was computed, not links to entries that no
    /// longer exist.
    fn failed(message: String, mut evaluations: Vec<EvaluationRecord>) -> Self {
        for result in evaluations.iter_mut().flat_map(|e| e.results.iter_mut()) {
            result.forget_entry();
        }
        Outcome {
            error: Some(message),
            participant_id: None,
            evaluations,
        }
    }

    fn is_failed(&self) -> bool {
        self.error.is_some()
    }
}

struct EvaluationRecord {
    rule_id: Uuid,
    rule_history_id: Uuid,
    status: EvaluationStatus,
    reason: Option<EvaluationReason>,
    stopped_by_rule_id: Option<Uuid>,
    error_message: Option<String>,
    results: Vec<ActionResult>,
    /// Wasm rules: fuel burned and what the module printed.
    fuel: Option<i64>,
    logs: Option<String>,
}

impl EvaluationRecord {
    fn new(rule: &CompiledRule, status: EvaluationStatus) -> Self {
        EvaluationRecord {
            rule_id: rule.id,
            rule_history_id: rule.history_id,
            status,
            reason: None,
            stopped_by_rule_id: None,
            error_message: None,
            results: Vec::new(),
            fuel: None,
            logs: None,
        }
    }
}

/// What a program does with each of its events: its active rules in order, then its tiers.
struct ProgramRules<'a> {
    rules: Vec<&'a CompiledRule>,
    tracks: &'a [Track],
    /// Whether a rule's CEL reads `group`: only then is the participant's group read.
    reads_group: bool,
}

async fn process_event(
    conn: &mut PgConnection,
    event: &Claimed,
    parties: Parties,
    program: &ProgramRules<'_>,
    now: DateTime<Utc>,
    batch: &mut Batch,
    runtime: &Arc<Runtime>,
) -> sqlx::Result<Outcome> {
    let org = event.organization_id;
    let participant = match &parties.participant {
        Some(participant) => Some(who(conn, batch, org, participant).await?),
        None => None,
    };
    let recipient = match &parties.recipient {
        Some(recipient) => Some(who(conn, batch, org, recipient).await?),
        None => None,
    };
    let mut states = HashMap::new();
    for id in participant.into_iter().chain(recipient) {
        match batch.enter(conn, org, event.program_id, id).await? {
            Some(state) => states.insert(id, state),
            None => return Ok(Outcome::failed("participant not found".into(), Vec::new())),
        };
    }
    // A program-wide event's rules see a participant with nothing: no id, tags, attributes or counters.
    let state = match participant {
        Some(id) => match states.get(&id) {
            Some(state) => state.clone(),
            None => return Ok(Outcome::failed("participant not found".into(), Vec::new())),
        },
        None => State::new(Uuid::nil(), org, ""),
    };
    let standings: Vec<Standing> = participant
        .map(|id| {
            batch
                .standings(id)
                .iter()
                .filter(|s| s.program_id == event.program_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut vars = Variables::new(
        cel::from_json(&event.event_data.0),
        participant_value(&state, &standings),
        event.event_timestamp,
    );
    if let (true, Some(participant)) = (program.reads_group, participant) {
        vars.set_group(group_value(conn, participant, event.program_id).await?);
    }
    let mut ctx = EventContext {
        event_id: event.id,
        organization_id: org,
        program_id: event.program_id,
        create_unknown: parties.create_unknown,
        default_target: recipient.or(participant),
        vars: &vars,
        participants: states,
        batch,
    };
    // Only modules see balances; CEL rules do not pay for the query.
    let rules = &program.rules;
    let balances = match (rules.iter().any(|r| r.module.is_some()), participant) {
        (true, Some(participant)) => ctx.batch.available_balances(conn, org, participant).await?,
        _ => Vec::new(),
    };
    let mut evaluations = Vec::with_capacity(rules.len());
    let mut stopped_by = None;
    for rule in rules {
        if let Some(stopper) = stopped_by {
            let mut record = EvaluationRecord::new(rule, EvaluationStatus::Skipped);
            record.reason = Some(EvaluationReason::StoppedByRule);
            record.stopped_by_rule_id = Some(stopper);
            evaluations.push(record);
            continue;
        }
        if !rule.active_at(now) {
            let mut record = EvaluationRecord::new(rule, EvaluationStatus::Skipped);
            record.reason = Some(EvaluationReason::OutsideTimeWindow);
            evaluations.push(record);
            continue;
        }
        // Modules see the participant as the event began, as CEL conditions do.
        let evaluation = evaluation::evaluate(rule, &vars, runtime, |module| {
            let seen = ModuleEvent {
                id: event.id,
                program_id: event.program_id,
                timestamp: event.event_timestamp,
                data: &event.event_data.0,
            };
            module_input(module, seen, &state, &standings, &balances)
        })
        .await;
        let mut record = EvaluationRecord::new(rule, EvaluationStatus::Success);
        if let Some(trace) = evaluation.module {
            record.fuel = Some(i64::try_from(trace.fuel).unwrap_or(i64::MAX));
            record.logs = (!trace.logs.is_empty()).then_some(trace.logs);
        }
        let actions = match evaluation.decision {
            Decision::NoMatch => {
                record.status = EvaluationStatus::NoMatch;
                evaluations.push(record);
                continue;
            }
            Decision::ConditionFailed(message) => {
                (record.status, record.reason) = (
                    EvaluationStatus::SkippedError,
                    Some(EvaluationReason::ConditionError),
                );
                record.error_message = Some(message);
                evaluations.push(record);
                continue;
            }
            Decision::ModuleSkipped(skipped) => {
                (record.status, record.reason, record.error_message) =
                    (skipped.status, Some(skipped.reason), Some(skipped.message));
                evaluations.push(record);
                continue;
            }
            Decision::Act(actions) => actions,
        };
        for action in actions.compiled() {
            match actions::execute(conn, &mut ctx, rule, action).await? {
                Ok(result) => record.results.push(result),
                Err(message) => {
                    let message = format!("action {} failed: {message}", action.kind);
                    record.status = EvaluationStatus::Failed;
                    record.error_message = Some(message.clone());
                    evaluations.push(record);
                    return Ok(Outcome::failed(message, evaluations));
                }
            }
        }
        let suppressed = record.results.iter().filter(|r| r.suppressed()).count();
        if suppressed > 0 {
            record.reason = Some(EvaluationReason::BudgetExceeded);
            if suppressed == record.results.len() {
                record.status = EvaluationStatus::Skipped;
            }
        }
        evaluations.push(record);
        if rule.stop_after_match {
            stopped_by = Some(rule.id);
        }
    }
    if !program.tracks.is_empty() {
        after_rules(conn, &mut ctx, program.tracks, participant, &evaluations).await?;
    }
    Ok(Outcome {
        error: None,
        participant_id: participant,
        evaluations,
    })
}

/// After an event's rules, in its savepoint: its participant, and every holder (participant or group) whose
/// counters its rules changed, count activity and qualify for levels of the program's tiers (see
/// `tiers::holders::AfterEvent`).
async fn after_rules(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    tracks: &[Track],
    participant: Option<Uuid>,
    evaluations: &[EvaluationRecord],
) -> sqlx::Result<()> {
    let results = || evaluations.iter().flat_map(|e| &e.results);
    // Participants are locked before groups: the batch's lock order.
    let mut who: Vec<Holder> = participant.map(Holder::Participant).into_iter().collect();
    who.extend(results().filter_map(|r| match r {
        ActionResult::Counter { holder, .. } => Some(*holder),
        _ => None,
    }));
    who.sort();
    who.dedup();
    let origin = Origin {
        organization_id: ctx.organization_id,
        program_id: Some(ctx.program_id),
        event_id: Some(ctx.event_id),
        ..Origin::default()
    };
    for holder in who {
        let set_by_rule: Vec<&str> = results()
            .filter_map(|r| match r {
                ActionResult::Tier {
                    holder: set,
                    tier,
                    skipped: false,
                    ..
                } if *set == holder => Some(tier.as_str()),
                _ => None,
            })
            .collect();
        let plan = AfterEvent::plan(conn, tracks, holder, &set_by_rule).await?;
        if !plan.writes() {
            continue;
        }
        ctx.batch.begin_writes(conn).await?;
        if let (true, Holder::Participant(id)) = (plan.moves(), holder) {
            ctx.batch.stale.insert(id);
        }
        plan.apply(conn, &origin).await?;
    }
    Ok(())
}

/// The event a wasm rule runs on.
pub(crate) struct ModuleEvent<'a> {
    pub id: Uuid,
    pub program_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub data: &'a serde_json::Value,
}

/// What a wasm rule receives of the event and its participant.
pub(crate) fn module_input(
    module: &CompiledModule,
    event: ModuleEvent<'_>,
    state: &State,
    standings: &[Standing],
    balances: &[(String, String)],
) -> wasm::Input {
    wasm::Input {
        event_id: event.id,
        program_id: event.program_id,
        timestamp: event.timestamp,
        data: event.data.clone(),
        participant_id: state.id,
        external_id: state.external_id.clone(),
        tags: state.tags.clone(),
        attributes: wasm::pairs(&state.attributes.0),
        counters: wasm::pairs(&state.counters.0),
        tiers: standings
            .iter()
            .map(|s| wasm::TierLevel {
                tier: s.held.key.clone(),
                level: s.held.level.clone(),
                rank: s.held.rank,
                benefits: s.held.benefits.0.to_string(),
            })
            .collect(),
        balances: balances.to_vec(),
        config: module.config.clone(),
    }
}

/// The participant's id, creating a new one.
async fn who(
    conn: &mut PgConnection,
    batch: &mut Batch,
    organization_id: Uuid,
    who: &Who,
) -> sqlx::Result<Uuid> {
    match who {
        Who::Existing(id) => Ok(*id),
        Who::New(external_id) => {
            batch
                .create_participant(conn, organization_id, external_id)
                .await
        }
    }
}

/// A level as CEL sees it in `participant.tiers` and `group.tiers`.
fn tier_value(held: &holders::HeldTier) -> serde_json::Value {
    json!({"level": held.level, "rank": held.rank, "benefits": held.benefits.0})
}

/// `participant` in CEL; `tiers` holds its levels in the event's program by tier key.
pub(crate) fn participant_value(state: &State, standings: &[Standing]) -> ::cel::Value {
    let tiers: serde_json::Map<String, serde_json::Value> = standings
        .iter()
        .map(|s| (s.held.key.clone(), tier_value(&s.held)))
        .collect();
    cel::from_json(&json!({
        "id": state.id,
        "external_id": state.external_id,
        "status": state.status,
        "tags": state.tags,
        "attributes": state.attributes.0,
        "counters": state.counters.0,
        "tiers": tiers,
    }))
}

/// `group` in CEL: the state of the ACTIVE group the participant joined first, if any, with its levels in the
/// event's program. Read as the event begins, like `participant`; the group is not locked, so it may change
/// under a concurrent event.
pub(crate) async fn group_value(
    conn: &mut PgConnection,
    participant: Uuid,
    program_id: Uuid,
) -> sqlx::Result<Option<::cel::Value>> {
    let Some(group) = crate::groups::first_state_of(conn, participant).await? else {
        return Ok(None);
    };
    let tiers: serde_json::Map<String, serde_json::Value> =
        holders::group_standings(conn, group.id, program_id)
            .await?
            .into_iter()
            .map(|s| (s.held.key.clone(), tier_value(&s.held)))
            .collect();
    Ok(Some(cel::from_json(&json!({
        "id": group.id, "tags": group.tags, "attributes": group.attributes.0,
        "counters": group.counters.0, "tiers": tiers,
    }))))
}

/// Writes the batch's evaluations (replacing an earlier attempt's) and each event's new status: COMPLETED,
/// PENDING again after a backoff while attempts remain (queued anew for then), or FAILED; a finished event
/// leaves the queue. One statement for the whole batch.
/// The data of event.completed and event.failed.
#[derive(serde::Serialize)]
struct Processed<'a> {
    event_id: Uuid,
    program_id: Uuid,
    participant_id: Option<Uuid>,
    external_id: Option<&'a str>,
    status: EventStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
    rules_evaluated: usize,
    rules_matched: usize,
}

/// Writes every finished event's status and evaluations, and with them the batch's `notices` and each
/// completed or finally failed event's own.
async fn record(
    conn: &mut PgConnection,
    finished: &[(&Claimed, Uuid, Outcome)],
    retry_backoff: Duration,
    subscriptions: &Subscriptions,
    mut notices: Vec<Notice>,
) -> sqlx::Result<()> {
    let mut events = EventColumns::default();
    let mut evaluations = EvaluationColumns::default();
    for (event, began, outcome) in finished {
        let attempt = event.attempts + 1;
        let (status, retry_in) = match &outcome.error {
            None => (EventStatus::Completed, None),
            Some(_) if attempt < MAX_ATTEMPTS => (
                EventStatus::Pending,
                Some(retry_backoff * 2u32.pow(attempt.unsigned_abs() - 1)),
            ),
            Some(_) => (EventStatus::Failed, None),
        };
        crate::metrics::event_finished(match status {
            EventStatus::Completed => "completed",
            EventStatus::Failed => "failed",
            _ => "retried",
        });
        events.ids.push(event.id);
        events.queued_at.push(event.next_attempt_at);
        events.began.push(*began);
        events.statuses.push(status);
        events.errors.push(outcome.error.clone());
        events.participants.push(outcome.participant_id);
        events
            .retry_in_ms
            .push(retry_in.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        for e in &outcome.evaluations {
            evaluations.push(event, e);
        }
        let kind = match status {
            EventStatus::Completed => WebhookEventType::EventCompleted,
            EventStatus::Failed => WebhookEventType::EventFailed,
            _ => continue,
        };
        if subscriptions.wants(event.organization_id, kind) {
            let processed = Processed {
                event_id: event.id,
                program_id: event.program_id,
                participant_id: outcome.participant_id.or(event.participant_id),
                external_id: event.external_id.as_deref(),
                status,
                error_message: outcome.error.as_deref(),
                rules_evaluated: outcome.evaluations.len(),
                rules_matched: outcome
                    .evaluations
                    .iter()
                    .filter(|e| e.status == EvaluationStatus::Success)
                    .count(),
            };
            notices.push(Notice::new(event.organization_id, kind, &processed));
        }
    }
    repo::record(conn, &events, &evaluations).await?;
    webhooks::emit(conn, &notices).await
}

impl EvaluationColumns {
    fn push(&mut self, event: &Claimed, e: &EvaluationRecord) {
        self.ids.push(Uuid::now_v7());
        self.organizations.push(event.organization_id);
        self.events.push(event.id);
        self.rule_ids.push(e.rule_id);
        self.history_ids.push(e.rule_history_id);
        self.statuses.push(e.status);
        self.reasons.push(e.reason);
        self.stoppers.push(e.stopped_by_rule_id);
        self.messages.push(e.error_message.clone());
        self.fuels.push(e.fuel);
        self.logs.push(e.logs.clone());
        self.results
            .push(serde_json::to_value(&e.results).unwrap_or_default());
    }
}

fn into_sqlx(err: crate::error::Error) -> sqlx::Error {
    match err {
        crate::error::Error::Database(err) => err,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// Deadlock, serialization failure, or a participant the batch was creating that another transaction created
/// first: the whole batch is retried.
fn is_contention(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if matches!(db.code().as_deref(), Some("40P01" | "40001"))
            || db.constraint() == Some("participants_external_id_unique"))
}

fn is_connection(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

fn jitter_ms(min: u64, max: u64) -> u64 {
    let mut byte = [0u8; 2];
    let spread = if getrandom::fill(&mut byte).is_ok() {
        u64::from(u16::from_le_bytes(byte))
    } else {
        0
    };
    min + spread % (max - min)
}
