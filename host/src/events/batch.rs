//! The unit of work of a worker batch: what its events share (locked participants and their state, accounts,
//! assets, budgets) and the writes it defers to write for many events at once.

use crate::assets::Asset;
use crate::ledger::lots::{self, NewLot};
use crate::ledger::{Journal, KnownAccounts, NewEntry, PostError};
use crate::money;
use crate::movement;
use crate::participants::{self, State, Wait};
use crate::tiers::holders::{self, Standing};
use crate::webhooks::{Notice, Subscriptions, WebhookEventType};
use rust_decimal::Decimal;
use sqlx::PgConnection;
use std::collections::{BTreeMap, HashMap, HashSet};
use uuid::Uuid;

/// What the events of one worker batch share, read once per batch rather than once per action.
pub struct Batch {
    /// Participants the batch locked up front, with their state as last read.
    states: HashMap<Uuid, State>,
    /// Whether the batch's programs have tiers: only then are participants' levels read.
    tiered: bool,
    /// The levels of the participants the batch holds, as last read, when `tiered`.
    standings: HashMap<Uuid, Vec<Standing>>,
    /// Participants whose state an event may have changed (or rolled back) since it was read.
    pub(super) stale: HashSet<Uuid>,
    /// Accounts that existed when the batch began.
    accounts: KnownAccounts,
    /// Writes that wait for the end of the batch, or for a later event's first other write.
    deferred: Deferred,
    /// Where the current event's deferred writes begin.
    event_start: Mark,
    /// Whether the current event has opened its savepoint, which it does before its first write.
    writing: bool,
    /// The budget slot this batch draws from first (see `rules::budgets`).
    pub(super) budget_slot: i16,
    /// The (rule, asset) pairs that have a budget; credits of the others need no budget query.
    pub(super) budgeted: HashSet<(Uuid, Uuid)>,
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
    /// What the organizations' webhook endpoints subscribe to, read when the batch began.
    subscriptions: Subscriptions,
    /// Notices of the batch's events, written with their outcomes; a failed event's are dropped.
    notices: Vec<Notice>,
    /// Where the current event's notices begin.
    notices_start: usize,
}

impl Batch {
    pub fn new(
        budget_slot: i16,
        budgeted: impl IntoIterator<Item = (Uuid, Uuid)>,
        states: Vec<State>,
        standings: Option<Vec<Standing>>,
        accounts: KnownAccounts,
        subscriptions: Subscriptions,
    ) -> Batch {
        let tiered = standings.is_some();
        let mut by_holder: HashMap<Uuid, Vec<Standing>> = HashMap::new();
        for standing in standings.into_iter().flatten() {
            by_holder
                .entry(standing.holder_id)
                .or_default()
                .push(standing);
        }
        Batch {
            states: states.into_iter().map(|s| (s.id, s)).collect(),
            tiered,
            standings: by_holder,
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
            subscriptions,
            notices: Vec::new(),
            notices_start: 0,
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
        if self
            .subscriptions
            .wants(organization_id, WebhookEventType::ParticipantCreated)
        {
            let created = participants::Created {
                participant_id: id,
                external_id,
            };
            self.notices.push(Notice::new(
                organization_id,
                WebhookEventType::ParticipantCreated,
                &created,
            ));
        }
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
            self.notices.truncate(self.notices_start);
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
        self.notices_start = self.notices.len();
        self.writing = false;
        Ok(())
    }

    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    /// The notices of the batch's events that stood, for the end of the batch.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.notices_start = 0;
        std::mem::take(&mut self.notices)
    }

    /// The batch's events are over: the deferred writes go out.
    pub async fn finish(&mut self, conn: &mut PgConnection) -> sqlx::Result<()> {
        self.deferred.write_all(conn, &self.accounts).await
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
    pub(super) async fn has_nothing_to_settle(
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

    /// The participant's levels in every program, as the current event began (none when no program of the
    /// batch has tiers).
    pub fn standings(&self, participant: Uuid) -> &[Standing] {
        self.standings.get(&participant).map_or(&[], Vec::as_slice)
    }

    /// Reads the participant's levels again, when the batch's programs have tiers.
    async fn read_standings(&mut self, conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
        if self.tiered {
            let fresh = holders::standings(conn, &[id]).await?;
            self.standings.insert(id, fresh);
        }
        Ok(())
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
                self.read_standings(conn, id).await?;
                fresh
            }
            Some(state) => Some(state.clone()),
            None => {
                self.begin_writes(conn).await?;
                let state = participants::lock_state(conn, organization_id, &[id])
                    .await?
                    .pop();
                self.read_standings(conn, id).await?;
                state
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
    pub(super) async fn asset(
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

/// A credit that cannot fail waits for the batch's one write, unless the event already writes (it holds a
/// savepoint, so its entries must be inside it); everything else is posted at once.
impl movement::Writer for Batch {
    async fn write(
        &mut self,
        conn: &mut PgConnection,
        organization_id: Uuid,
        entry: NewEntry,
        created: Vec<NewLot>,
    ) -> Result<Uuid, PostError> {
        if !self.writing && Journal::can_defer(&entry) {
            let id = self.deferred.journal.defer(organization_id, entry)?;
            self.deferred
                .lots
                .extend(created.into_iter().map(|lot| (id, lot)));
            return Ok(id);
        }
        self.begin_writes(conn).await?;
        movement::write_now(conn, organization_id, entry, created, &self.accounts).await
    }

    fn wants(&self, organization_id: Uuid, kind: WebhookEventType) -> bool {
        self.subscriptions.wants(organization_id, kind)
    }

    /// Kept until the batch ends, when one statement writes them all.
    async fn notify(&mut self, _: &mut PgConnection, notice: Notice) -> sqlx::Result<()> {
        self.notices.push(notice);
        Ok(())
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
