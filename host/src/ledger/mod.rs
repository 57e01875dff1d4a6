//! The double-entry ledger. Every movement of value is one journal entry whose postings sum to zero per asset
//! (checked here, and again by a deferred constraint in the database). Entries and postings are append-only.
//!
//! Balances of participant, group and program-wallet accounts are materialised on the account row and updated
//! in the entry's transaction; the caller holds the owner's lock. System accounts (issuance, breakage,
//! redemption) are shared by every event of an organization, so their balance is never stored: it is the sum
//! of their postings. No row is updated by every entry.

pub mod chain;
pub mod lots;
mod repo;

use crate::error::{Error, Result};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page, PageParams};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

crate::vocabulary!(
    /// Where value sits in an account: spendable, held for a pending outcome, or not yet matured.
    pub enum Bucket {
        Available = "AVAILABLE",
        Held = "HELD",
        Deferred = "DEFERRED",
    }
);
pub const BUCKETS: &[&str] = Bucket::NAMES;

crate::vocabulary!(
    /// What a journal entry records.
    pub enum EntryType {
        Credit = "CREDIT",
        Debit = "DEBIT",
        Hold = "HOLD",
        Release = "RELEASE",
        Forfeit = "FORFEIT",
        VoidHold = "VOID_HOLD",
        Fund = "FUND",
        Burn = "BURN",
        Transfer = "TRANSFER",
        Maturity = "MATURITY",
        Expiration = "EXPIRATION",
        Redemption = "REDEMPTION",
        Reversal = "REVERSAL",
    }
);

/// Who owns an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    Participant(Uuid),
    Group(Uuid),
    Program(Uuid),
    /// Where a program with a LEDGER_ENTITY redemption target sends redeemed value.
    LedgerEntity(Uuid),
    Issuance,
    Breakage,
    Redemption,
}

impl Owner {
    pub fn entity_type(self) -> &'static str {
        match self {
            Owner::Participant(_) => "PARTICIPANT",
            Owner::Group(_) => "GROUP",
            Owner::Program(_) => "PROGRAM",
            Owner::LedgerEntity(_) => "LEDGER_ENTITY",
            Owner::Issuance => "SYSTEM_ISSUANCE",
            Owner::Breakage => "SYSTEM_BREAKAGE",
            Owner::Redemption => "SYSTEM_REDEMPTION",
        }
    }

    pub fn entity_id(self) -> Option<Uuid> {
        match self {
            Owner::Participant(id)
            | Owner::Group(id)
            | Owner::Program(id)
            | Owner::LedgerEntity(id) => Some(id),
            Owner::Issuance | Owner::Breakage | Owner::Redemption => None,
        }
    }

    /// The owner an account row names; `None` for kinds no code posts to by key.
    fn from_row(entity_type: &str, entity_id: Option<Uuid>) -> Option<Owner> {
        match (entity_type, entity_id) {
            ("PARTICIPANT", Some(id)) => Some(Owner::Participant(id)),
            ("GROUP", Some(id)) => Some(Owner::Group(id)),
            ("PROGRAM", Some(id)) => Some(Owner::Program(id)),
            ("LEDGER_ENTITY", Some(id)) => Some(Owner::LedgerEntity(id)),
            ("SYSTEM_ISSUANCE", None) => Some(Owner::Issuance),
            ("SYSTEM_BREAKAGE", None) => Some(Owner::Breakage),
            ("SYSTEM_REDEMPTION", None) => Some(Owner::Redemption),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountKey {
    pub owner: Owner,
    pub asset_id: Uuid,
    pub bucket: Bucket,
}

impl AccountKey {
    pub fn new(owner: Owner, asset_id: Uuid, bucket: Bucket) -> Self {
        AccountKey {
            owner,
            asset_id,
            bucket,
        }
    }
}

/// A holder's balance of one asset, per bucket.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct Snapshot {
    pub available: Decimal,
    pub held: Decimal,
    pub deferred: Decimal,
}

impl Snapshot {
    pub fn bucket(&self, bucket: Bucket) -> Decimal {
        match bucket {
            Bucket::Available => self.available,
            Bucket::Held => self.held,
            Bucket::Deferred => self.deferred,
        }
    }

    /// The balance as answers show it, in the asset's scale.
    pub fn view(&self, scale: i16) -> Balance {
        Balance {
            available: crate::money::format(self.available, scale),
            held: crate::money::format(self.held, scale),
            deferred: crate::money::format(self.deferred, scale),
        }
    }
}

/// A holder's balance of one asset, per bucket, as decimal strings.
#[derive(Debug, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Balance {
    pub available: String,
    pub held: String,
    pub deferred: String,
}

/// The balances of a participant's or program wallet's accounts in one asset, read in the caller's transaction.
pub async fn snapshot(
    conn: &mut PgConnection,
    organization_id: Uuid,
    owner: Owner,
    asset_id: Uuid,
) -> sqlx::Result<Snapshot> {
    repo::snapshot(conn, organization_id, owner, asset_id).await
}

#[derive(Debug, Clone)]
pub struct NewEntry {
    pub program_id: Uuid,
    pub action_type: EntryType,
    pub description: Option<String>,
    pub event_id: Option<Uuid>,
    pub rule_id: Option<Uuid>,
    pub reference_id: Option<String>,
    pub created_by_api_key_id: Option<Uuid>,
    pub postings: Vec<(AccountKey, Decimal)>,
    /// Participant and group accounts this entry may take below zero (a DEBIT with `allow_negative`).
    pub allow_negative: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("insufficient balance")]
    InsufficientBalance,
    #[error("postings do not balance")]
    Unbalanced,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Ids of accounts known to exist, so posting to them needs no lookup. Accounts are never deleted, so an id
/// read once stays true; accounts not in here are looked up, and created if missing, when posted to.
/// Also the balances of the loaded owners' materialised accounts as they were read, which stay true while
/// the caller holds the owners' locks and knows what it posted since (see [`KnownAccounts::available`]).
#[derive(Debug, Default)]
pub struct KnownAccounts {
    ids: HashMap<AccountKey, Uuid>,
    /// Balance and asset scale of each materialised account, as read.
    opening: HashMap<Owner, Vec<(AccountKey, Decimal, i16)>>,
}

impl KnownAccounts {
    /// The accounts of these participants and program wallets, and the system accounts of these organizations.
    pub async fn load(
        conn: &mut PgConnection,
        organization_ids: &[Uuid],
        owners: &[Uuid],
    ) -> sqlx::Result<Self> {
        let mut known = KnownAccounts::default();
        for row in repo::accounts_of(conn, organization_ids, owners).await? {
            let Some(owner) = Owner::from_row(&row.entity_type, row.entity_id) else {
                continue;
            };
            let Some(bucket) = Bucket::parse(&row.bucket) else {
                continue;
            };
            let key = AccountKey::new(owner, row.asset_id, bucket);
            known.ids.insert(key, row.id);
            if let Some(balance) = row.balance {
                known
                    .opening
                    .entry(owner)
                    .or_default()
                    .push((key, balance, row.scale));
            }
        }
        Ok(known)
    }

    /// A loaded participant's AVAILABLE balance per asset, with the asset's scale: as read, plus what
    /// `journal` deferred since. The caller vouches that nothing else was posted to its accounts since.
    /// `None` when the journal credited an asset of which no account was read, whose scale is unknown here.
    pub fn available(
        &self,
        participant: Uuid,
        journal: &Journal,
    ) -> Option<BTreeMap<Uuid, (Decimal, i16)>> {
        let owner = Owner::Participant(participant);
        let opening = self.opening.get(&owner).map_or(&[][..], Vec::as_slice);
        let mut available: BTreeMap<Uuid, (Decimal, i16)> = BTreeMap::new();
        for (key, balance, scale) in opening {
            let line = available
                .entry(key.asset_id)
                .or_insert((Decimal::ZERO, *scale));
            if key.bucket == Bucket::Available {
                line.0 += *balance;
            }
        }
        let credited = journal.credited.iter();
        for (key, amount) in
            credited.filter(|(key, amount)| key.owner == owner && !amount.is_zero())
        {
            let line = available.get_mut(&key.asset_id)?;
            if key.bucket == Bucket::Available {
                line.0 += *amount;
            }
        }
        Some(available)
    }
}

/// Opens a new asset's system accounts (issuance, breakage, redemption) with it. Event batches then only ever find them:
/// two batches creating the same shared account would each wait on the other's uncommitted insert.
pub async fn open_system_accounts(
    conn: &mut PgConnection,
    organization_id: Uuid,
    asset_id: Uuid,
) -> sqlx::Result<()> {
    let keys = [Owner::Issuance, Owner::Breakage, Owner::Redemption]
        .map(|owner| AccountKey::new(owner, asset_id, Bucket::Available));
    repo::resolve_accounts(conn, organization_id, &keys).await?;
    Ok(())
}

/// Writes one balanced entry and applies it to the materialised balances, in the caller's transaction.
pub async fn post(
    conn: &mut PgConnection,
    organization_id: Uuid,
    entry: &NewEntry,
    known: &KnownAccounts,
) -> Result<Uuid, PostError> {
    check_balanced(entry)?;
    let id = Uuid::now_v7();
    let balances = write(conn, &[(id, organization_id, entry)], known).await?;
    let overdrawn = balances.iter().any(|(owner_type, balance)| {
        *balance < Decimal::ZERO
            && !(entry.allow_negative && matches!(owner_type.as_str(), "PARTICIPANT" | "GROUP"))
    });
    if overdrawn {
        return Err(PostError::InsufficientBalance);
    }
    Ok(id)
}

fn check_balanced(entry: &NewEntry) -> Result<(), PostError> {
    let mut per_asset: BTreeMap<Uuid, Decimal> = BTreeMap::new();
    for (key, amount) in &entry.postings {
        *per_asset.entry(key.asset_id).or_default() += *amount;
    }
    if entry.postings.len() < 2 || per_asset.values().any(|sum| !sum.is_zero()) {
        return Err(PostError::Unbalanced);
    }
    Ok(())
}

/// Writes `(id, organization, entry)`s in one statement, creating the accounts not known to exist; returns
/// `(entity_type, new balance)` of every materialised account changed. The caller has checked that each entry
/// balances (the database checks again after the statement).
pub(crate) async fn write(
    conn: &mut PgConnection,
    entries: &[(Uuid, Uuid, &NewEntry)],
    known: &KnownAccounts,
) -> sqlx::Result<Vec<(String, Decimal)>> {
    let mut unknown: BTreeMap<Uuid, Vec<AccountKey>> = BTreeMap::new();
    for (_, organization_id, entry) in entries {
        for (key, _) in &entry.postings {
            if !known.ids.contains_key(key) {
                unknown.entry(*organization_id).or_default().push(*key);
            }
        }
    }
    let mut accounts = HashMap::new();
    for (organization_id, keys) in unknown {
        accounts.extend(repo::resolve_accounts(conn, organization_id, &keys).await?);
    }
    let id_of = |key: &AccountKey| {
        known
            .ids
            .get(key)
            .or_else(|| accounts.get(key))
            .copied()
            .unwrap_or_default()
    };
    repo::insert_entries(conn, entries, id_of).await
}

/// Entries a worker batch writes together, after its events ran: ones that only credit, taking value from
/// system accounts, so no balance check can fail and nothing but their own event's outcome decides whether
/// they are written. Ids are assigned when deferred, so results can name the entry at once.
#[derive(Debug, Default)]
pub struct Journal {
    entries: Vec<(Uuid, Uuid, NewEntry)>,
    /// What every entry deferred so far, written or not, posted to participants' accounts.
    credited: HashMap<AccountKey, Decimal>,
}

impl Journal {
    /// Whether `entry` may wait: no posting takes value from a materialised (balance-checked) account.
    pub fn can_defer(entry: &NewEntry) -> bool {
        entry
            .postings
            .iter()
            .all(|(key, amount)| *amount > Decimal::ZERO || key.owner.entity_id().is_none())
    }

    pub fn defer(&mut self, organization_id: Uuid, entry: NewEntry) -> Result<Uuid, PostError> {
        check_balanced(&entry)?;
        let id = Uuid::now_v7();
        self.count(&entry, Decimal::ONE);
        self.entries.push((id, organization_id, entry));
        Ok(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets the entries deferred after the first `len` (a failed event's).
    pub fn discard_after(&mut self, len: usize) {
        for (_, _, entry) in self.entries.split_off(len.min(self.entries.len())) {
            self.count(&entry, Decimal::NEGATIVE_ONE);
        }
    }

    /// Adds (`sign` 1) or takes back (-1) an entry's postings to participants in `credited`.
    fn count(&mut self, entry: &NewEntry, sign: Decimal) {
        for (key, amount) in &entry.postings {
            if let Owner::Participant(_) = key.owner {
                *self.credited.entry(*key).or_default() += sign * *amount;
            }
        }
    }

    /// Writes the first `count` deferred entries, in one statement, and forgets them.
    pub async fn write_first(
        &mut self,
        conn: &mut PgConnection,
        count: usize,
        known: &KnownAccounts,
    ) -> sqlx::Result<()> {
        let count = count.min(self.entries.len());
        if count == 0 {
            return Ok(());
        }
        let batch: Vec<(Uuid, Uuid, &NewEntry)> = self.entries[..count]
            .iter()
            .map(|(id, organization_id, entry)| (*id, *organization_id, entry))
            .collect();
        write(conn, &batch, known).await?;
        self.entries.drain(..count);
        Ok(())
    }
}

#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct EntryRow {
    pub id: Uuid,
    pub program_id: Uuid,
    pub program_name: String,
    pub action_type: String,
    pub description: Option<String>,
    pub event_id: Option<Uuid>,
    pub rule_id: Option<Uuid>,
    pub reference_id: Option<String>,
    pub created_by_api_key_id: Option<Uuid>,
    pub entry_hash: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PostingRow {
    pub id: Uuid,
    pub journal_entry_id: Uuid,
    pub amount: Decimal,
    pub scale: i16,
    pub asset_id: Uuid,
    pub asset_symbol: String,
    pub bucket: String,
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub program_id: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JournalEntry {
    #[serde(flatten)]
    pub entry: EntryRow,
    pub postings: Vec<Posting>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Posting {
    pub id: Uuid,
    /// Signed: a debit of the account is negative.
    #[schema(example = "-50")]
    pub amount: String,
    pub asset_id: Uuid,
    pub asset_symbol: String,
    #[schema(value_type = Bucket)]
    pub bucket: String,
    /// PARTICIPANT, GROUP, PROGRAM, or a system account.
    pub entity_type: String,
    pub participant_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub program_id: Uuid,
    pub created_at: DateTime<Utc>,
}

impl Serialize for EntryRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "id": self.id,
            "program_id": self.program_id,
            "program_name": self.program_name,
            "action_type": self.action_type,
            "description": self.description,
            "event_id": self.event_id,
            "rule_id": self.rule_id,
            "reference_id": self.reference_id,
            "created_by_api_key_id": self.created_by_api_key_id,
            "entry_hash": self.entry_hash,
            "created_at": self.created_at,
        })
        .serialize(s)
    }
}

impl From<PostingRow> for Posting {
    fn from(p: PostingRow) -> Self {
        let owned_by = |kind: &str| p.entity_id.filter(|_| p.entity_type == kind);
        Posting {
            id: p.id,
            amount: crate::money::format(p.amount, p.scale),
            participant_id: owned_by("PARTICIPANT"),
            group_id: owned_by("GROUP"),
            asset_id: p.asset_id,
            asset_symbol: p.asset_symbol,
            bucket: p.bucket,
            entity_type: p.entity_type,
            program_id: p.program_id,
            created_at: p.created_at,
        }
    }
}

/// Filters of E116; posting-level ones (asset, entity, bucket, amount) must all hold for one posting.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntryFilter {
    pub program_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub rule_id: Option<Uuid>,
    pub asset_id: Option<Uuid>,
    /// At most one of participant_id, group_id and external_id.
    pub participant_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    #[param(min_length = 1, max_length = 255)]
    pub external_id: Option<String>,
    #[param(inline)]
    pub bucket: Option<Bucket>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Entries with a posting of at least this size.
    #[param(value_type = Option<crate::money::Amount>, inline)]
    pub min_amount: Option<Decimal>,
    #[param(value_type = Option<crate::money::Amount>, inline)]
    pub max_amount: Option<Decimal>,
    #[param(min_length = 1, max_length = 64)]
    pub action_type: Option<String>,
    #[param(min_length = 1, max_length = 255)]
    pub reference_id: Option<String>,
    #[param(ignore)]
    pub page: PageParams,
}

pub async fn list(pool: &PgPool, actor: &Actor, filter: EntryFilter) -> Result<Page<JournalEntry>> {
    let order = Order {
        column: "e.created_at",
        sql_type: "timestamptz",
        descending: true,
    };
    let rows = repo::list_entries(pool, actor.organization_id, &filter, order).await?;
    let page = Page::from_rows(rows, filter.page.limit, |e| Cursor::at(e.created_at, e.id));
    let ids: Vec<Uuid> = page.data.iter().map(|e| e.id).collect();
    let mut postings = group_postings(repo::postings_of(pool, &ids).await?);
    Ok(page.map(|entry| {
        let postings = postings.remove(&entry.id).unwrap_or_default();
        JournalEntry { entry, postings }
    }))
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<JournalEntry> {
    let entry = repo::find_entry(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("journal entry"))?;
    let postings = repo::postings_of(pool, &[id])
        .await?
        .into_iter()
        .map(Posting::from)
        .collect();
    Ok(JournalEntry { entry, postings })
}

/// The entries an event produced, oldest first.
pub async fn entries_of_event(
    pool: &PgPool,
    actor: &Actor,
    event_id: Uuid,
) -> Result<Vec<JournalEntry>> {
    let filter = EntryFilter {
        event_id: Some(event_id),
        page: PageParams {
            cursor: None,
            limit: 10_000,
        },
        ..Default::default()
    };
    let mut entries = list(pool, actor, filter).await?.data;
    entries.reverse();
    Ok(entries)
}

fn group_postings(rows: Vec<PostingRow>) -> std::collections::HashMap<Uuid, Vec<Posting>> {
    let mut grouped: std::collections::HashMap<Uuid, Vec<Posting>> =
        std::collections::HashMap::new();
    for row in rows {
        grouped
            .entry(row.journal_entry_id)
            .or_default()
            .push(Posting::from(row));
    }
    grouped
}

/// The net change an event made to one account: entities, system accounts included, per asset and bucket.
#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct BalanceImpact {
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    pub asset_symbol: String,
    #[schema(ignore)]
    pub scale: i16,
    #[schema(value_type = Bucket)]
    pub bucket: String,
    #[schema(value_type = String, example = "50")]
    pub amount: Decimal,
}

impl Serialize for BalanceImpact {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "asset_symbol": self.asset_symbol,
            "bucket": self.bucket,
            "amount": crate::money::format(self.amount, self.scale),
        })
        .serialize(s)
    }
}

/// Net changes of an event's entries; lines that net to zero are left out.
pub async fn balance_impact(
    pool: &PgPool,
    actor: &Actor,
    event_id: Uuid,
) -> Result<Vec<BalanceImpact>> {
    Ok(repo::balance_impact(pool, actor.organization_id, event_id).await?)
}

/// Filters of an account holder's activity (E11, E45) and statement (E12, E48). Either end of a window may
/// be left open; an entry without an event happened when it was posted.
#[derive(Debug, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityFilter {
    #[param(inline)]
    pub bucket: Option<Bucket>,
    /// Posted at or after; a statement's opening balance is the balance just before it (0 without it).
    pub from: Option<DateTime<Utc>>,
    /// Posted at or before; a statement's closing balance is the balance at it (the current one without it).
    pub to: Option<DateTime<Utc>>,
    /// The originating event happened at or after.
    pub event_from: Option<DateTime<Utc>>,
    /// The originating event happened at or before.
    pub event_to: Option<DateTime<Utc>>,
    #[param(ignore)]
    pub page: PageParams,
}

/// One posting on a holder's account, with its entry's context.
#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct ActivityRow {
    pub posting_id: Uuid,
    pub journal_entry_id: Uuid,
    pub action_type: String,
    #[schema(value_type = String, example = "50")]
    pub amount: Decimal,
    #[schema(ignore)]
    pub scale: i16,
    pub asset_id: Uuid,
    #[schema(value_type = Bucket)]
    pub bucket: String,
    pub description: Option<String>,
    pub event_id: Option<Uuid>,
    pub event_timestamp: Option<DateTime<Utc>>,
    pub created_by_api_key_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// Statements only: the balance after this posting, over the holder's whole history.
    #[schema(value_type = Option<String>)]
    pub running_balance: Option<Decimal>,
}

impl Serialize for ActivityRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut row = serde_json::json!({
            "posting_id": self.posting_id,
            "journal_entry_id": self.journal_entry_id,
            "action_type": self.action_type,
            "amount": crate::money::format(self.amount, self.scale),
            "asset_id": self.asset_id,
            "bucket": self.bucket,
            "description": self.description,
            "event_id": self.event_id,
            "event_timestamp": self.event_timestamp,
            "created_by_api_key_id": self.created_by_api_key_id,
            "created_at": self.created_at,
        });
        if let Some(running) = self.running_balance {
            row["running_balance"] = serde_json::json!(crate::money::format(running, self.scale));
        }
        row.serialize(s)
    }
}

/// A holder's postings, newest first.
pub async fn history(
    pool: &PgPool,
    actor: &Actor,
    owner: Owner,
    asset_id: Option<Uuid>,
    filter: ActivityFilter,
) -> Result<Page<ActivityRow>> {
    let rows = repo::history(pool, actor.organization_id, owner, asset_id, &filter).await?;
    Ok(Page::from_rows(rows, filter.page.limit, |r| {
        Cursor::at(r.created_at, r.posting_id)
    }))
}

/// A statement: the holder's postings of one asset in the window, oldest first, with running balances and the
/// balances at the window's ends computed over the full history.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Statement {
    pub asset_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<Bucket>,
    pub opening_balance: String,
    pub closing_balance: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub page: Page<ActivityRow>,
}

/// The statement of `owner`'s account in the asset `asset_id`, amounts shown with `scale` decimals.
pub async fn statement(
    pool: &PgPool,
    actor: &Actor,
    owner: Owner,
    (asset_id, scale): (Uuid, i16),
    filter: ActivityFilter,
) -> Result<Statement> {
    let (opening, closing) =
        repo::statement_bounds(pool, actor.organization_id, owner, asset_id, &filter).await?;
    let rows = repo::statement_lines(pool, actor.organization_id, owner, asset_id, &filter).await?;
    Ok(Statement {
        asset_id,
        bucket: filter.bucket,
        opening_balance: crate::money::format(opening, scale),
        closing_balance: crate::money::format(closing, scale),
        from: filter.from,
        to: filter.to,
        page: Page::from_rows(rows, filter.page.limit, |r| {
            Cursor::at(r.created_at, r.posting_id)
        }),
    })
}

/// One asset's balance of a holder, in decimal strings at the asset's scale.
#[derive(Debug, Clone, sqlx::FromRow, utoipa::ToSchema)]
pub struct BalanceRow {
    pub asset_id: Uuid,
    #[schema(ignore)]
    pub scale: i16,
    #[schema(value_type = String, example = "150")]
    pub available: Decimal,
    #[schema(value_type = String, example = "0")]
    pub held: Decimal,
    #[schema(value_type = String, example = "0")]
    pub deferred: Decimal,
}

impl Serialize for BalanceRow {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        serde_json::json!({
            "asset_id": self.asset_id,
            "available": crate::money::format(self.available, self.scale),
            "held": crate::money::format(self.held, self.scale),
            "deferred": crate::money::format(self.deferred, self.scale),
        })
        .serialize(s)
    }
}

/// A holder's balances per asset (see [`repo::balances_of`]).
pub async fn balances_of(
    db: impl sqlx::PgExecutor<'_>,
    organization_id: Uuid,
    holder: Owner,
    asset_id: Option<Uuid>,
    program_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: Option<i64>,
) -> sqlx::Result<Vec<BalanceRow>> {
    repo::balances_of(
        db,
        organization_id,
        holder,
        asset_id,
        program_id,
        after,
        limit,
    )
    .await
}

/// A posting to a participant's AVAILABLE balance, placed in the order things happened: at the
/// `state_as_of` of the event whose entry it belongs to (a worker batch may write an event's entries after
/// later events began), or at its own id when no event made it.
#[derive(Debug, sqlx::FromRow)]
pub struct PastPosting {
    pub participant_id: Uuid,
    pub position: Uuid,
    pub asset_id: Uuid,
    pub scale: i16,
    pub amount: Decimal,
}

/// Each participant's AVAILABLE postings from its `from` to its bound, by participant, in order.
pub async fn available_between(
    conn: &mut PgConnection,
    participants: &[Uuid],
    froms: &[Uuid],
    bounds: &[Uuid],
) -> sqlx::Result<Vec<PastPosting>> {
    repo::available_between(conn, participants, froms, bounds).await
}

/// What one rule credited to and debited from holders for one event, in one asset.
#[derive(Debug, sqlx::FromRow)]
pub struct RuleMovement {
    pub event_id: Uuid,
    pub asset_id: Uuid,
    pub credited: Decimal,
    pub debited: Decimal,
}

/// What `rule_id` credited and debited for each of these events.
pub async fn moved_by_rule(
    conn: &mut PgConnection,
    rule_id: Uuid,
    events: &[Uuid],
) -> sqlx::Result<Vec<RuleMovement>> {
    repo::moved_by_rule(conn, rule_id, events).await
}
