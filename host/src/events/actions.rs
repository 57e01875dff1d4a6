//! Executing one rule action inside an event's transaction. `Ok(Err(reason))` is a business failure: the
//! caller fails the whole event with it.

use crate::assets::Asset;
use crate::balances::{self, By};
use crate::error::Error;
use crate::ledger::lots::{self, LotSpec, NewLot, Selector};
use crate::ledger::{self, AccountKey, Journal, KnownAccounts, NewEntry, Owner, PostError};
use crate::money;
use crate::participants::state::{self, Origin, WindowChange};
use crate::participants::{self, State, Wait};
use crate::rules::budgets;
use crate::rules::cel::{Template, Variables};
use crate::rules::{Amount, BLOCKED_WHEN_INACTIVE, CompiledAction, CompiledRule, Step, TargetRef};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// Everything the actions of one event share.
pub struct EventContext<'a> {
    pub event_id: Uuid,
    pub organization_id: Uuid,
    pub program_id: Uuid,
    /// Whether an unknown `external_id` in a target creates the participant (the program's policy).
    pub create_unknown: bool,
    /// Who actions apply to without a `target`: the recipient if the event has one, else its participant.
    pub default_target: Uuid,
    pub vars: &'a Variables,
    /// Participants this event has locked, with their state as the event began.
    pub participants: HashMap<Uuid, State>,
    pub batch: &'a mut Batch,
}

/// What the events of one worker batch share, read once per batch rather than once per action.
pub struct Batch {
    /// Participants the batch locked up front, with their state as last read.
    states: HashMap<Uuid, State>,
    /// Participants whose state an event may have changed (or rolled back) since it was read.
    stale: HashSet<Uuid>,
    /// Accounts that existed when the batch began.
    accounts: KnownAccounts,
    /// Writes that wait for the end of the batch, or for a later event's first other write.
    deferred: Deferred,
    /// Where the current event's deferred writes begin.
    event_start: Mark,
    /// Whether the current event has opened its savepoint, which it does before its first write.
    writing: bool,
    /// The budget slot this batch draws from first (see `rules::budgets`).
    budget_slot: i16,
    /// The (rule, asset) pairs that have a budget; credits of the others need no budget query.
    budgeted: HashSet<(Uuid, Uuid)>,
    /// Assets as linked to programs, by (program, asset); `None` when not linked. Actions never change
    /// an asset, so what the batch read first stays true for it.
    assets: HashMap<(Uuid, Uuid), Option<Asset>>,
    /// Participants the current event entered.
    entered: Vec<Uuid>,
    /// Participants whose balances events with a savepoint may have changed: what the batch read of their
    /// accounts, plus its deferred entries, no longer tells their balance.
    moved: HashSet<Uuid>,
    /// The held participants' (participant, asset)s with lots due to expire or mature; read at the batch's
    /// first LOT credit.
    due_lots: Option<HashSet<(Uuid, Uuid)>>,
    /// Participants the batch created, by (organization, external id), so it creates none twice.
    created: HashMap<(Uuid, String), Uuid>,
    /// Of those, the ones the current event created, forgotten if it fails; `true` for those whose insert
    /// the batch deferred (and so holds), `false` for those an action created itself.
    creating: Vec<((Uuid, String), bool)>,
}

impl Batch {
    pub fn new(
        budget_slot: i16,
        budgeted: impl IntoIterator<Item = (Uuid, Uuid)>,
        states: Vec<State>,
        accounts: KnownAccounts,
    ) -> Batch {
        Batch {
            states: states.into_iter().map(|s| (s.id, s)).collect(),
            stale: HashSet::new(),
            accounts,
            deferred: Deferred::default(),
            event_start: Mark::default(),
            writing: false,
            budget_slot,
            budgeted: budgeted.into_iter().collect(),
            assets: HashMap::new(),
            entered: Vec::new(),
            moved: HashSet::new(),
            due_lots: None,
            created: HashMap::new(),
            creating: Vec::new(),
        }
    }

    /// The participant to create for an unknown external id (the caller has claimed the name, see
    /// `participants::claim_names`): created at most once per batch, its insert deferred with the event's
    /// credits and enrollments, so a batch of new participants needs no savepoint and one statement. The
    /// batch holds it from the start: no other transaction can see it before the batch commits.
    pub async fn create_participant(
        &mut self,
        conn: &mut PgConnection,
        organization_id: Uuid,
        external_id: &str,
    ) -> sqlx::Result<Uuid> {
        let key = (organization_id, external_id.to_owned());
        if let Some(id) = self.created.get(&key) {
            return Ok(*id);
        }
        let id = Uuid::now_v7();
        self.deferred
            .participants
            .push((id, organization_id, external_id.to_owned()));
        self.states
            .insert(id, State::new(id, organization_id, external_id));
        self.created.insert(key.clone(), id);
        self.creating.push((key, true));
        if self.writing {
            // The event's own writes go out as they come once it has a savepoint.
            self.deferred.write_all(conn, &self.accounts).await?;
        }
        Ok(id)
    }

    /// Writes what earlier events deferred; the current event's deferred writes stay put. Needs no savepoint:
    /// those events are over.
    async fn write_earlier(&mut self, conn: &mut PgConnection) -> sqlx::Result<()> {
        self.deferred
            .write_before(conn, self.event_start, &self.accounts)
            .await?;
        self.event_start = Mark::default();
        Ok(())
    }

    /// Before the current event's first write: the deferred writes of earlier events go out, then the event's
    /// savepoint opens and its own deferred writes follow inside it, so a failure undoes this event only.
    /// Events whose only writes can be deferred never pay for a savepoint.
    pub async fn begin_writes(&mut self, conn: &mut PgConnection) -> sqlx::Result<()> {
        if self.writing {
            return Ok(());
        }
        self.write_earlier(conn).await?;
        sqlx::query("SAVEPOINT event").execute(&mut *conn).await?;
        self.writing = true;
        self.deferred.write_all(conn, &self.accounts).await
    }

    /// The current event is over: its writes stay, or are undone when it failed. The next event starts here.
    pub async fn finish_event(
        &mut self,
        conn: &mut PgConnection,
        failed: bool,
    ) -> sqlx::Result<()> {
        if failed {
            // States read since may show enrollments that will never be written.
            let undone = self.deferred.discard_after(self.event_start);
            self.stale.extend(undone);
            // Never created: a later event for the same external id creates it afresh.
            for (key, held) in self.creating.drain(..) {
                match self.created.remove(&key) {
                    Some(id) if held => self.states.remove(&id),
                    _ => None,
                };
            }
        }
        self.creating.clear();
        if self.writing {
            if failed {
                sqlx::query("ROLLBACK TO SAVEPOINT event")
                    .execute(&mut *conn)
                    .await?;
            }
            sqlx::query("RELEASE SAVEPOINT event")
                .execute(&mut *conn)
                .await?;
        }
        if self.writing {
            self.moved.extend(self.entered.drain(..));
        }
        self.entered.clear();
        self.event_start = self.deferred.mark();
        self.writing = false;
        Ok(())
    }

    /// The batch's events are over: the deferred writes go out.
    pub async fn finish(&mut self, conn: &mut PgConnection) -> sqlx::Result<()> {
        self.deferred.write_all(conn, &self.accounts).await
    }

    /// Posts an entry of the current event, with the lot it credits: deferred when it can be, otherwise written
    /// now.
    async fn post(
        &mut self,
        conn: &mut PgConnection,
        organization_id: Uuid,
        entry: NewEntry,
        lot: Option<NewLot>,
    ) -> Result<Uuid, PostError> {
        if !self.writing && Journal::can_defer(&entry) {
            let id = self.deferred.journal.defer(organization_id, entry)?;
            self.deferred.lots.extend(lot.map(|lot| (id, lot)));
            return Ok(id);
        }
        self.begin_writes(conn).await?;
        let id = ledger::post(conn, organization_id, &entry, &self.accounts).await?;
        if let Some(lot) = &lot {
            lots::create(conn, &[(id, lot)]).await?;
        }
        Ok(id)
    }

    /// A participant's AVAILABLE balance per asset, with its scale, from what the batch read and deferred;
    /// `None` when only the database can tell (a participant not held from the start, or one an event with
    /// a savepoint wrote to, including the current event).
    fn known_available(&self, participant: Uuid) -> Option<BTreeMap<Uuid, (Decimal, i16)>> {
        if self.writing || self.moved.contains(&participant) || !self.holds(participant) {
            return None;
        }
        self.accounts.available(participant, &self.deferred.journal)
    }

    /// What a wasm rule sees of a participant's balances (see `participants::available_balances`). Most
    /// events are answered from what the batch knows, without a query or writing earlier events' credits.
    pub async fn available_balances(
        &mut self,
        conn: &mut PgConnection,
        organization_id: Uuid,
        participant: Uuid,
    ) -> sqlx::Result<Vec<(String, String)>> {
        if let Some(known) = self.known_available(participant) {
            return Ok(known
                .into_iter()
                .map(|(asset, (amount, scale))| (asset.to_string(), money::format(amount, scale)))
                .collect());
        }
        // Earlier events' deferred credits count.
        self.write_earlier(conn).await?;
        participants::available_balances(conn, organization_id, participant).await
    }

    /// Whether a LOT credit to this participant may skip settling: the batch knows its balance is not
    /// overdrawn (so the lot is the whole credit) and none of its lots is due.
    async fn has_nothing_to_settle(
        &mut self,
        conn: &mut PgConnection,
        participant: Uuid,
        asset_id: Uuid,
    ) -> sqlx::Result<bool> {
        let Some(available) = self.known_available(participant) else {
            return Ok(false);
        };
        if available
            .get(&asset_id)
            .is_some_and(|(amount, _)| *amount < Decimal::ZERO)
        {
            return Ok(false);
        }
        if self.due_lots.is_none() {
            let held: Vec<Uuid> = self.states.keys().copied().collect();
            self.due_lots = Some(lots::due_holdings(conn, &held).await?);
        }
        let due = self.due_lots.as_ref();
        Ok(!due.is_some_and(|due| due.contains(&(participant, asset_id))))
    }

    /// A participant an action of the current event found or created by external id, which later events of
    /// the batch may name too: they must find it, not create it again.
    pub fn created_by_action(&mut self, organization_id: Uuid, external_id: &str, id: Uuid) {
        let key = (organization_id, external_id.to_owned());
        if self.created.insert(key.clone(), id).is_none() {
            self.creating.push((key, false));
        }
    }

    /// Whether the batch locked this participant up front.
    pub fn holds(&self, id: Uuid) -> bool {
        self.states.contains_key(&id)
    }

    /// Brings a participant into an event: locked (most already are, by the batch), enrolled in the event's
    /// program, and its current state. `None` when the organization has no such participant.
    pub async fn enter(
        &mut self,
        conn: &mut PgConnection,
        organization_id: Uuid,
        program_id: Uuid,
        id: Uuid,
    ) -> sqlx::Result<Option<State>> {
        let state = match self.states.get(&id) {
            Some(_) if self.stale.remove(&id) => {
                // An earlier event may have created it, with its insert still deferred.
                self.write_earlier(conn).await?;
                let fresh = participants::lock_states(conn, None, &[id], Wait::Block)
                    .await?
                    .pop();
                match &fresh {
                    Some(state) => self.states.insert(id, state.clone()),
                    None => self.states.remove(&id),
                };
                fresh
            }
            Some(state) => Some(state.clone()),
            None => {
                self.begin_writes(conn).await?;
                participants::lock_state(conn, organization_id, &[id])
                    .await?
                    .pop()
            }
        };
        let Some(mut state) = state.filter(|s| s.organization_id == organization_id) else {
            return Ok(None);
        };
        self.entered.push(id);
        if !state.programs.contains(&program_id) {
            self.deferred.enrollments.push((id, program_id));
            state.programs.push(program_id);
            if let Some(held) = self.states.get_mut(&id) {
                held.programs.push(program_id);
            }
        }
        Ok(Some(state))
    }

    /// The asset an action names, linked to the event's program; `Err` says it is not.
    async fn asset(
        &mut self,
        conn: &mut PgConnection,
        organization_id: Uuid,
        program_id: Uuid,
        asset_id: Uuid,
    ) -> sqlx::Result<Result<Asset, String>> {
        let found = match self.assets.get(&(program_id, asset_id)) {
            Some(known) => known.clone(),
            None => {
                let found =
                    crate::assets::find_linked(conn, organization_id, program_id, asset_id).await?;
                self.assets.insert((program_id, asset_id), found.clone());
                found
            }
        };
        Ok(found.ok_or_else(|| "asset not found or not linked to the program".to_string()))
    }
}

/// Writes a batch puts off: new participants, credits that cannot fail a balance check, the lots they create,
/// and enrollments. Written in a few statements for many events; what a failed event deferred is dropped
/// instead.
#[derive(Default)]
struct Deferred {
    /// `(id, organization, external id)`
    participants: Vec<(Uuid, Uuid, String)>,
    journal: Journal,
    /// Each with the deferred entry that credits it.
    lots: Vec<(Uuid, NewLot)>,
    enrollments: Vec<(Uuid, Uuid)>,
}

/// How many deferred writes of each kind there were at some point.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mark {
    participants: usize,
    entries: usize,
    lots: usize,
    enrollments: usize,
}

impl Deferred {
    fn mark(&self) -> Mark {
        Mark {
            participants: self.participants.len(),
            entries: self.journal.len(),
            lots: self.lots.len(),
            enrollments: self.enrollments.len(),
        }
    }

    /// Drops what was deferred after `mark`; returns the participants whose enrollments were dropped.
    fn discard_after(&mut self, mark: Mark) -> Vec<Uuid> {
        self.participants.truncate(mark.participants);
        self.journal.discard_after(mark.entries);
        self.lots.truncate(mark.lots);
        self.enrollments
            .drain(mark.enrollments.min(self.enrollments.len())..)
            .map(|(participant, _)| participant)
            .collect()
    }

    /// Writes what was deferred before `mark`.
    async fn write_before(
        &mut self,
        conn: &mut PgConnection,
        mark: Mark,
        known: &KnownAccounts,
    ) -> sqlx::Result<()> {
        // Participants first: the rest refer to them.
        let count = mark.participants.min(self.participants.len());
        if count > 0 {
            participants::create_many(conn, &self.participants[..count]).await?;
            self.participants.drain(..count);
        }
        self.journal.write_first(conn, mark.entries, known).await?;
        let count = mark.lots.min(self.lots.len());
        if count > 0 {
            let credited: Vec<(Uuid, &NewLot)> = self.lots[..count]
                .iter()
                .map(|(entry, lot)| (*entry, lot))
                .collect();
            lots::create(conn, &credited).await?;
            self.lots.drain(..count);
        }
        let count = mark.enrollments.min(self.enrollments.len());
        let enrollments: Vec<(Uuid, Uuid)> = self.enrollments.drain(..count).collect();
        participants::enroll(conn, &enrollments).await
    }

    async fn write_all(
        &mut self,
        conn: &mut PgConnection,
        known: &KnownAccounts,
    ) -> sqlx::Result<()> {
        let all = self.mark();
        self.write_before(conn, all, known).await
    }
}

type Outcome = sqlx::Result<Result<Value, String>>;

/// Marks a credit the rule's budget could not cover: the rule matched, the credit was not made.
pub const SUPPRESSED: &str = "BUDGET_EXCEEDED";

pub async fn execute(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    rule: &CompiledRule,
    action: &CompiledAction,
) -> Outcome {
    // Credits and debits decide for themselves (see `money`); every other action writes.
    if !matches!(action.step, Step::Money { .. }) {
        ctx.batch.begin_writes(conn).await?;
    }
    let target = match resolve_target(conn, ctx, &action.target).await? {
        Ok(target) => target,
        Err(reason) => return Ok(Err(reason)),
    };
    let status = ctx
        .participants
        .get(&target)
        .map_or("CLOSED", |p| p.status.as_str());
    if status != "ACTIVE" && BLOCKED_WHEN_INACTIVE.contains(&action.kind.as_str()) {
        return Ok(Err(format!("participant is {status}")));
    }
    let origin = Origin {
        organization_id: ctx.organization_id,
        program_id: Some(ctx.program_id),
        event_id: Some(ctx.event_id),
        rule_id: Some(rule.id),
        api_key_id: None,
    };
    let result = match &action.step {
        Step::Money { .. } => return money(conn, ctx, rule, action, target).await,
        Step::Operation {
            op,
            asset_id,
            amount,
            description,
            reference,
        } => {
            let asset = match ctx
                .batch
                .asset(conn, ctx.organization_id, ctx.program_id, *asset_id)
                .await?
            {
                Ok(asset) => asset,
                Err(reason) => return Ok(Err(reason)),
            };
            let amount = match amount.as_ref().map(|a| evaluate(a, ctx.vars)) {
                Some(Ok(amount)) => Some(amount),
                Some(Err(reason)) => return Ok(Err(format!("amount {reason}"))),
                None => None,
            };
            let reference_id = match reference.as_ref().map(|r| r.render(ctx.vars)) {
                Some(Ok(reference)) => Some(reference),
                Some(Err(err)) => return Ok(Err(format!("reference_id expression failed: {err}"))),
                None => None,
            };
            let by = By {
                organization_id: ctx.organization_id,
                api_key_id: None,
                event_id: Some(ctx.event_id),
                rule_id: Some(rule.id),
            };
            let description = description
                .clone()
                .unwrap_or_else(|| format!("{}: {}", rule.name, op.name()));
            let selector = Selector {
                reference_id,
                ..Selector::default()
            };
            return match balances::apply(
                conn,
                by,
                ctx.program_id,
                target,
                &asset,
                *op,
                description,
                amount,
                &selector,
            )
            .await
            {
                Ok(result) => Ok(Ok(result)),
                Err(Error::Database(err)) => Err(err),
                Err(Error::Invalid(problems)) => Ok(Err(problems
                    .into_iter()
                    .map(|p| p.message)
                    .collect::<Vec<_>>()
                    .join("; "))),
                Err(other) => Ok(Err(other.to_string())),
            };
        }
        Step::Tag { tag, add } => {
            ctx.batch.stale.insert(target);
            let changed = state::set_tag(conn, &origin, target, tag, *add).await?;
            json!({"type": action.kind, "participant_id": target, "tag": tag, "changed": changed})
        }
        Step::Counter { key, delta, window } => {
            let delta = match evaluate(delta, ctx.vars) {
                Ok(delta) => delta,
                Err(reason) => return Ok(Err(format!("value {reason}"))),
            };
            let window = window.clone().map_or(WindowChange::Keep, WindowChange::Set);
            ctx.batch.stale.insert(target);
            let (old, new) =
                match state::increment_counter(conn, &origin, target, key, delta, window).await? {
                    Ok(values) => values,
                    Err(invalid) => return Ok(Err(format!("counter {key} would be {invalid}"))),
                };
            json!({"type": action.kind, "participant_id": target, "key": key,
                   "previous": old.normalize().to_string(), "value": new.normalize().to_string()})
        }
        Step::Attribute { key, value } => {
            let value = match value.render(ctx.vars) {
                Ok(value) if !value.is_empty() && value.chars().count() <= 1000 => value,
                Ok(_) => return Ok(Err("attribute values must be 1 to 1000 characters".into())),
                Err(err) => return Ok(Err(format!("value expression failed: {err}"))),
            };
            ctx.batch.stale.insert(target);
            let previous = state::set_attribute(conn, &origin, target, key, &value).await?;
            json!({"type": action.kind, "participant_id": target, "key": key, "value": value, "previous": previous})
        }
    };
    Ok(Ok(result))
}

/// CREDIT issues value to the participant; DEBIT takes it back. Value comes from and returns to the system
/// issuance account for UNLIMITED assets, and the program wallet for PREFUNDED ones.
async fn money(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    rule: &CompiledRule,
    action: &CompiledAction,
    participant: Uuid,
) -> Outcome {
    let Step::Money {
        debit,
        asset_id,
        amount,
        description,
        allow_negative,
        lot,
    } = &action.step
    else {
        return Ok(Err("not a money action".into()));
    };
    let asset = match ctx
        .batch
        .asset(conn, ctx.organization_id, ctx.program_id, *asset_id)
        .await?
    {
        Ok(asset) => asset,
        Err(reason) => return Ok(Err(reason)),
    };
    if asset.status != "ACTIVE" {
        return Ok(Err("asset is archived".into()));
    }
    let amount = match evaluate(amount, ctx.vars) {
        Ok(amount) => amount,
        Err(reason) => return Ok(Err(format!("amount {reason}"))),
    };
    if let Err(problem) = asset.check_amount("amount", amount) {
        return Ok(Err(problem.message));
    }
    let budgeted = ctx.batch.budgeted.contains(&(rule.id, asset.id));
    let is_lot = asset.inventory_mode == "LOT";
    // A CEL rule's lot fields were checked against its asset when it was written; a wasm rule's are here.
    if !is_lot && lot.is_set() {
        return Ok(Err(
            "bucket HELD, expires_at, matures_at and reference_id need a LOT asset".into(),
        ));
    }
    // A credit's lot: its dates count from the event's time; DEFERRED until it matures.
    let mut spec = LotSpec::default();
    let mut bucket = "AVAILABLE";
    if !*debit && is_lot {
        spec.expires_at = lot.expires.as_ref().map(|when| when.from(ctx.vars.now));
        spec.matures_at = lot.matures.as_ref().map(|when| when.from(ctx.vars.now));
        spec.reference_id = match lot.reference.as_ref().map(|r| r.render(ctx.vars)) {
            Some(Ok(reference)) => Some(reference),
            Some(Err(err)) => return Ok(Err(format!("reference_id expression failed: {err}"))),
            None => None,
        };
        bucket = spec.bucket(
            if lot.held { "HELD" } else { "AVAILABLE" },
            chrono::Utc::now(),
        );
    }
    // A plain LOT credit skips settling when the batch knows the holder has nothing to settle (no overdraft
    // to repay, no lot due), and is then deferred like any other credit its source allows. One that settles a
    // hold, or whose lot is born expired, takes the full path.
    let born_expired = spec.expires_at.is_some_and(|at| at <= chrono::Utc::now());
    let nothing_to_settle = is_lot
        && !*debit
        && !budgeted
        && spec.reference_id.is_none()
        && !born_expired
        && ctx
            .batch
            .has_nothing_to_settle(conn, participant, asset.id)
            .await?;
    let settles_lots = is_lot && !nothing_to_settle;
    if budgeted || settles_lots {
        ctx.batch.begin_writes(conn).await?;
    }
    if !debit
        && budgeted
        && !budgets::draw(conn, rule.id, asset.id, amount, ctx.batch.budget_slot).await?
    {
        return Ok(Ok(json!({
            "type": action.kind,
            "asset_id": asset.id,
            "amount": asset.format(amount),
            "participant_id": participant,
            "suppressed": SUPPRESSED,
        })));
    }
    // LOT assets: spend from lots (oldest first), credit into a new lot after repaying any overdraft.
    let holder = Owner::Participant(participant);
    let (mut plan, mut debt) = (None, Decimal::ZERO);
    if settles_lots {
        lots::settle(conn, participant, asset.id).await?;
        if *debit {
            let taken = lots::plan(
                conn,
                participant,
                asset.id,
                "AVAILABLE",
                Some(amount),
                &Selector::default(),
            )
            .await?;
            if taken.total < amount && !allow_negative {
                return Ok(Err("insufficient balance".into()));
            }
            plan = Some(taken);
        } else {
            debt = -ledger::snapshot(conn, ctx.organization_id, holder, asset.id)
                .await?
                .available
                .min(Decimal::ZERO);
        }
    }
    let mut entry = money_entry(
        ctx,
        rule,
        *debit,
        description.clone(),
        *allow_negative,
        &asset,
        participant,
        amount,
        bucket,
    );
    // Settlement: an AVAILABLE credit with the reference of provisional HELD lots replaces them. What was held
    // goes back to its source in the same entry; `delta` is what the settlement differs from the hold.
    let mut settled = None;
    if let (false, "AVAILABLE", Some(reference)) = (*debit, bucket, spec.reference_id.clone()) {
        let selector = Selector {
            reference_id: Some(reference),
            provisional_only: true,
            ..Selector::default()
        };
        let held = lots::plan(conn, participant, asset.id, "HELD", None, &selector).await?;
        if held.total > Decimal::ZERO {
            entry
                .postings
                .push((AccountKey::new(holder, asset.id, "HELD"), -held.total));
            entry.postings.push((
                AccountKey::new(asset.source(ctx.program_id), asset.id, "AVAILABLE"),
                held.total,
            ));
            settled = Some(held);
        }
    }
    let credited = (is_lot && !*debit).then_some(NewLot {
        organization_id: ctx.organization_id,
        program_id: ctx.program_id,
        participant,
        asset_id: asset.id,
        amount,
        bucket,
        spec,
        provisional: lot.held,
        debt,
    });
    match ctx
        .batch
        .post(conn, ctx.organization_id, entry, credited)
        .await
    {
        Ok(journal_entry_id) => {
            if let Some(held) = &settled {
                lots::consume(conn, journal_entry_id, held).await?;
            }
            if let Some(plan) = &plan {
                lots::consume(conn, journal_entry_id, plan).await?;
            }
            let mut result = json!({
                "type": action.kind,
                "asset_id": asset.id,
                "amount": asset.format(amount),
                "participant_id": participant,
                "journal_entry_id": journal_entry_id,
            });
            if let Some(held) = &settled {
                result["settle"] = json!({"held_amount": asset.format(held.total), "delta": asset.format(amount - held.total)});
            }
            Ok(Ok(result))
        }
        Err(PostError::InsufficientBalance) if !debit => {
            Ok(Err("insufficient program wallet balance".into()))
        }
        Err(PostError::InsufficientBalance) => Ok(Err("insufficient balance".into())),
        Err(PostError::Unbalanced) => Ok(Err("postings do not balance".into())),
        Err(PostError::Database(err)) => Err(err),
    }
}

#[allow(clippy::too_many_arguments)]
fn money_entry(
    ctx: &EventContext<'_>,
    rule: &CompiledRule,
    debit: bool,
    description: Option<String>,
    allow_negative: bool,
    asset: &Asset,
    participant: Uuid,
    amount: Decimal,
    bucket: &'static str,
) -> NewEntry {
    let source = asset.source(ctx.program_id);
    let account = |owner, bucket| AccountKey::new(owner, asset.id, bucket);
    let signed = if debit { -amount } else { amount };
    NewEntry {
        program_id: ctx.program_id,
        action_type: if debit { "DEBIT" } else { "CREDIT" },
        description: Some(description.unwrap_or_else(|| {
            format!("{}: {} {}", rule.name, asset.format(amount), asset.symbol)
        })),
        event_id: Some(ctx.event_id),
        rule_id: Some(rule.id),
        reference_id: None,
        created_by_api_key_id: None,
        postings: vec![
            (account(Owner::Participant(participant), bucket), signed),
            (account(source, "AVAILABLE"), -signed),
        ],
        allow_negative,
    }
}

/// A number from a literal or an expression; `Err` says why not, to follow the field's name.
fn evaluate(amount: &Amount, vars: &Variables) -> Result<Decimal, String> {
    match amount {
        Amount::Literal(amount) => Ok(*amount),
        Amount::Expression(Ok(expression)) => expression
            .amount(vars)
            .map_err(|err| format!("expression failed: {err}")),
        Amount::Expression(Err(compile_error)) => Err(format!("does not compile: {compile_error}")),
    }
}

/// The participant an action applies to, locked and enrolled in the event's program.
async fn resolve_target(
    conn: &mut PgConnection,
    ctx: &mut EventContext<'_>,
    target: &TargetRef,
) -> sqlx::Result<Result<Uuid, String>> {
    let render = |template: &Template| {
        template
            .render(ctx.vars)
            .map_err(|err| format!("target expression failed: {err}"))
    };
    let id = match target {
        TargetRef::Event => return Ok(Ok(ctx.default_target)),
        TargetRef::Id(id) => *id,
        TargetRef::ParticipantId(template) => {
            match render(template).map(|text| Uuid::parse_str(&text)) {
                Ok(Ok(id)) => id,
                Ok(Err(_)) => return Ok(Err("target participant_id is not a UUID".into())),
                Err(reason) => return Ok(Err(reason)),
            }
        }
        TargetRef::ExternalId(template) => {
            let external_id = match render(template) {
                Ok(external_id) if !external_id.is_empty() => external_id,
                Ok(_) => return Ok(Err("target external_id is empty".into())),
                Err(reason) => return Ok(Err(reason)),
            };
            // It may create the participant.
            ctx.batch.begin_writes(conn).await?;
            match participants::resolve_external(
                conn,
                ctx.organization_id,
                &external_id,
                ctx.create_unknown,
            )
            .await
            {
                Ok(Some(id)) => {
                    ctx.batch
                        .created_by_action(ctx.organization_id, &external_id, id);
                    id
                }
                Ok(None) => {
                    return Ok(Err(format!(
                        "target participant with external_id {external_id} not found"
                    )));
                }
                Err(crate::error::Error::Database(err)) => return Err(err),
                Err(other) => return Ok(Err(other.to_string())),
            }
        }
    };
    if !ctx.participants.contains_key(&id) {
        let Some(state) = ctx
            .batch
            .enter(conn, ctx.organization_id, ctx.program_id, id)
            .await?
        else {
            return Ok(Err(format!("target participant {id} not found")));
        };
        ctx.participants.insert(id, state);
    }
    Ok(Ok(id))
}
