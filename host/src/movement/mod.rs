//! Moving value. Every change to a balance is a [`Movement`]: what moves (kind, amount, lots), whose account,
//! which asset and who moves it. [`plan`] settles the holder's lots (expired and matured ones first), decides
//! which lots are taken or created and what overdraft a credit repays, and checks the balance covers it;
//! [`post`] writes the one journal entry and then the lot changes, either straight to the ledger ([`Direct`])
//! or through a worker batch, which may defer a credit that cannot fail. Rule actions, the balance API,
//! program wallets, transfers and redemptions call these two; the background expiry and maturity passes are in `due`.
//! A posted movement tells webhooks what it did (balance, wallet and transfer notices) through its writer.

pub mod due;

use crate::assets::{Asset, AssetStatus, IssuancePolicy};
use crate::error::{Error, FieldError, Result};
use crate::holders::Holder;
use crate::ledger::lots::{self, LotSpec, NewLot, Plan, Selector};
use crate::ledger::{
    self, AccountKey, Bucket, EntryType, KnownAccounts, NewEntry, Owner, PostError,
};
use crate::webhooks::{self, Notice, WebhookEventType};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgConnection;
use std::future::Future;
use uuid::Uuid;

/// HOLD moves AVAILABLE to HELD, RELEASE the reverse, FORFEIT takes `bucket` to breakage, VOID_HOLD returns
/// provisional HELD lots (credited straight into HELD) to where they came from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub enum Operation {
    Hold,
    Release,
    Forfeit { bucket: Bucket },
    VoidHold,
}

impl Operation {
    pub fn entry_type(self) -> EntryType {
        match self {
            Operation::Hold => EntryType::Hold,
            Operation::Release => EntryType::Release,
            Operation::Forfeit { .. } => EntryType::Forfeit,
            Operation::VoidHold => EntryType::VoidHold,
        }
    }

    pub fn name(self) -> &'static str {
        self.entry_type().as_str()
    }

    /// Forfeit and void-hold are how value leaves a closed account, so they work whatever the status.
    pub fn requires_active(self) -> bool {
        matches!(self, Operation::Hold | Operation::Release)
    }

    /// The bucket the value leaves, and where it goes.
    fn movement(self, holder: Owner, source: Owner) -> (Bucket, Owner, Bucket) {
        use Bucket::{Available, Held};
        match self {
            Operation::Hold => (Available, holder, Held),
            Operation::Release => (Held, holder, Available),
            Operation::Forfeit { bucket } => (bucket, Owner::Breakage, Available),
            Operation::VoidHold => (Held, source, Available),
        }
    }
}

/// What moves.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Value issued into the holder's `bucket` from the asset's source: issuance, or the program wallet of a
    /// PREFUNDED asset. On LOT assets it makes a lot (DEFERRED until `lot.matures_at`); one straight into HELD
    /// is a provisional accrual, and an AVAILABLE one with the reference of provisional lots settles them.
    Credit {
        amount: Decimal,
        bucket: Bucket,
        lot: LotSpec,
    },
    /// Value returned from the holder's `bucket` to the source, oldest lots first; `allow_negative` lets an
    /// AVAILABLE balance go below zero (an overdraft the next credit repays).
    Debit {
        amount: Decimal,
        bucket: Bucket,
        allow_negative: bool,
    },
    /// Hold, release, forfeit or void-hold of `amount`, or of everything `lots` selects when `None`.
    Operation {
        op: Operation,
        amount: Option<Decimal>,
        lots: Selector,
    },
    /// Issuance into the program wallet (PREFUNDED assets).
    Fund { amount: Decimal },
    /// The program wallet's value to breakage.
    Burn { amount: Decimal },
    /// From the holder's AVAILABLE to each recipient's, in one entry; each recipient gets a fresh lot.
    Transfer { recipients: Vec<(Holder, Decimal)> },
    /// From the holder's AVAILABLE to `target`, the program's redemption target, oldest lots first.
    Redeem { amount: Decimal, target: Owner },
    /// Back from `target` to the holder's AVAILABLE, undoing part of the redemption entry `redemption`: on LOT
    /// assets the lots it consumed get their value back, the last one it took first.
    Unredeem {
        amount: Decimal,
        target: Owner,
        redemption: Uuid,
    },
}

impl Kind {
    pub fn entry_type(&self) -> EntryType {
        match self {
            Kind::Credit { .. } => EntryType::Credit,
            Kind::Debit { .. } => EntryType::Debit,
            Kind::Operation { op, .. } => op.entry_type(),
            Kind::Fund { .. } => EntryType::Fund,
            Kind::Burn { .. } => EntryType::Burn,
            Kind::Transfer { .. } => EntryType::Transfer,
            Kind::Redeem { .. } => EntryType::Redemption,
            Kind::Unredeem { .. } => EntryType::Reversal,
        }
    }
}

/// Whose account: a participant's or a group's, or the wallet of the movement's program (fund and burn).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Account {
    Holder(Holder),
    ProgramWallet,
}

/// Who moves value, as its journal entry records.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// A rule processing an event.
    Rule { event_id: Uuid, rule_id: Uuid },
    /// An API call.
    Operation { api_key_id: Uuid },
}

#[derive(Debug, Clone)]
pub struct Movement<'a> {
    pub organization_id: Uuid,
    pub program_id: Uuid,
    pub asset: &'a Asset,
    pub account: Account,
    pub kind: Kind,
    pub origin: Origin,
    pub description: Option<String>,
    /// The caller knows the holder has no lot due and no overdraft (a worker batch's fast path for credits):
    /// planning neither settles lots nor reads the balance, so a plain credit stays deferrable.
    pub known_clear: bool,
}

/// A movement ready to post: its entry, and what happens to lots once the entry exists.
#[derive(Debug)]
pub struct Planned {
    entry: NewEntry,
    amount: Decimal,
    /// Whose value moves (none for a program wallet), and of which asset: what notices name.
    holder: Option<Holder>,
    asset_id: Uuid,
    scale: i16,
    /// A transfer's recipients.
    recipients: Vec<(Holder, Decimal)>,
    /// Lots the entry takes, and whether they are spent or change bucket.
    taken: Option<(Plan, LotChange)>,
    /// Provisional HELD lots a settling credit replaces.
    settled: Option<Plan>,
    /// Lots a reversal gives value back to: the entry that consumed them, and the holder's overdraft.
    restored: Option<(Plan, Uuid, Decimal)>,
    created: Vec<NewLot>,
}

#[derive(Debug)]
enum LotChange {
    Consume,
    /// Into `to`; a hold stamps what it takes with its reference.
    Shift {
        to: Bucket,
        stamp: Option<String>,
    },
}

/// What a posted movement did.
#[derive(Debug)]
pub struct Moved {
    pub journal_entry_id: Uuid,
    /// What moved: the amount, the whole selection, or a transfer's total.
    pub amount: Decimal,
    /// The lots taken, with how much of each (LOT assets).
    pub lots: Option<Plan>,
    /// A settling credit: what the provisional hold it replaced held.
    pub settled_hold: Option<Decimal>,
}

/// Plans a movement in the caller's transaction. The caller holds the locks of the holders involved and
/// has checked they may take part; on LOT assets (unless `known_clear`) the lots read here are locked too.
pub async fn plan(conn: &mut PgConnection, m: &Movement<'_>) -> Result<Planned> {
    let asset = m.asset;
    // Holders' value stays where it is once its asset is archived; a program wallet can still be funded and
    // burned.
    let wallet = matches!(m.kind, Kind::Fund { .. } | Kind::Burn { .. });
    if asset.status != AssetStatus::Active && !wallet {
        return Err(Error::conflict("the asset is archived"));
    }
    let holder = match (m.account, wallet) {
        (Account::ProgramWallet, true) => None,
        (Account::Holder(holder), false) => Some(holder),
        _ => {
            return Err(Error::Internal(
                "fund and burn move a program wallet; every other movement a holder's account"
                    .into(),
            ));
        }
    };
    let source = asset.source(m.program_id);
    let account = |owner, bucket| AccountKey::new(owner, asset.id, bucket);
    let settles = asset.has_lots() && !m.known_clear;
    let mut planned = Planned {
        entry: NewEntry {
            program_id: m.program_id,
            action_type: m.kind.entry_type(),
            description: m.description.clone(),
            event_id: None,
            rule_id: None,
            reference_id: None,
            created_by_api_key_id: None,
            postings: Vec::with_capacity(2),
            allow_negative: false,
        },
        amount: Decimal::ZERO,
        holder,
        asset_id: asset.id,
        scale: asset.scale,
        recipients: Vec::new(),
        taken: None,
        settled: None,
        restored: None,
        created: Vec::new(),
    };
    match m.origin {
        Origin::Rule { event_id, rule_id } => {
            planned.entry.event_id = Some(event_id);
            planned.entry.rule_id = Some(rule_id);
        }
        Origin::Operation { api_key_id } => planned.entry.created_by_api_key_id = Some(api_key_id),
    }
    if let Some(holder) = holder
        && settles
    {
        due::settle(conn, holder.id(), asset.id).await?;
    }
    let owner = holder.map_or(Owner::Program(m.program_id), Holder::owner);
    // A movement of value other than a program wallet's names its holder.
    let of_holder = || holder.ok_or_else(|| Error::Internal("no holder to move value of".into()));
    match &m.kind {
        Kind::Credit {
            amount,
            bucket: requested,
            lot,
        } => {
            check(asset, "amount", *amount)?;
            let holder = of_holder()?;
            let bucket = match asset.has_lots() {
                true => lot.bucket(*requested, chrono::Utc::now()),
                false => *requested,
            };
            planned.amount = *amount;
            planned.entry.postings = vec![
                (account(owner, bucket), *amount),
                (account(source, Bucket::Available), -*amount),
            ];
            if asset.has_lots() {
                // A provisional accrual and its settlement are found by their reference (E116's filter).
                planned.entry.reference_id = lot.reference_id.clone();
                let debt = match bucket == Bucket::Available && settles {
                    true => debt_of(conn, m.organization_id, owner, asset).await?,
                    false => Decimal::ZERO,
                };
                // Settlement: what provisional HELD lots with this reference held goes back to its source in
                // the same entry; the credit replaces it.
                if let (Bucket::Available, Some(reference), true) =
                    (bucket, &lot.reference_id, settles)
                {
                    let selector = Selector {
                        reference_id: Some(reference.clone()),
                        provisional_only: true,
                        ..Selector::default()
                    };
                    let held =
                        lots::plan(conn, holder.id(), asset.id, Bucket::Held, None, &selector)
                            .await?;
                    if held.total > Decimal::ZERO {
                        planned.entry.postings.extend([
                            (account(owner, Bucket::Held), -held.total),
                            (account(source, Bucket::Available), held.total),
                        ]);
                        planned.settled = Some(held);
                    }
                }
                planned.created.push(NewLot {
                    organization_id: m.organization_id,
                    program_id: m.program_id,
                    holder: owner,
                    asset_id: asset.id,
                    amount: *amount,
                    bucket,
                    spec: lot.clone(),
                    provisional: *requested == Bucket::Held,
                    debt,
                });
            }
        }
        Kind::Debit {
            amount,
            bucket,
            allow_negative,
        } => {
            check(asset, "amount", *amount)?;
            let overdraft = *allow_negative && *bucket == Bucket::Available;
            if let (Some(holder), true) = (holder, settles) {
                let plan = spend(conn, holder.id(), asset, *bucket, *amount, overdraft).await?;
                planned.taken = Some((plan, LotChange::Consume));
            }
            planned.amount = *amount;
            planned.entry.allow_negative = overdraft;
            planned.entry.postings = vec![
                (account(owner, *bucket), -*amount),
                (account(source, Bucket::Available), *amount),
            ];
        }
        Kind::Operation { op, amount, lots } => {
            operation(conn, m, &mut planned, of_holder()?, *op, *amount, lots).await?;
        }
        Kind::Fund { amount } | Kind::Burn { amount } => {
            if asset.issuance_policy != IssuancePolicy::Prefunded {
                return Err(Error::invalid(FieldError::invalid(
                    "asset_id",
                    "PREFUNDED asset",
                    Some(asset.id.to_string()),
                    "only PREFUNDED assets have a program wallet; UNLIMITED assets are issued without one",
                )));
            }
            check(asset, "amount", *amount)?;
            let (other, signed) = match m.kind {
                Kind::Fund { .. } => (Owner::Issuance, *amount),
                _ => (Owner::Breakage, -*amount),
            };
            planned.amount = *amount;
            planned.entry.postings = vec![
                (account(owner, Bucket::Available), signed),
                (account(other, Bucket::Available), -signed),
            ];
        }
        Kind::Transfer { recipients } => {
            let source = of_holder()?;
            let mut total = Decimal::ZERO;
            for (i, (id, amount)) in recipients.iter().enumerate() {
                check(asset, &format!("recipients[{i}].amount"), *amount)?;
                total += *amount;
                planned
                    .entry
                    .postings
                    .push((account(id.owner(), Bucket::Available), *amount));
            }
            planned
                .entry
                .postings
                .push((account(owner, Bucket::Available), -total));
            planned.amount = total;
            planned.recipients = recipients.clone();
            if settles {
                let plan = spend(conn, source.id(), asset, Bucket::Available, total, false).await?;
                planned.taken = Some((plan, LotChange::Consume));
                for (id, amount) in recipients {
                    planned.created.push(NewLot {
                        organization_id: m.organization_id,
                        program_id: m.program_id,
                        holder: id.owner(),
                        asset_id: asset.id,
                        amount: *amount,
                        bucket: Bucket::Available,
                        spec: LotSpec::default(),
                        provisional: false,
                        debt: debt_of(conn, m.organization_id, id.owner(), asset).await?,
                    });
                }
            }
        }
        Kind::Redeem { amount, target } => {
            check(asset, "amount", *amount)?;
            if settles {
                let plan = spend(
                    conn,
                    of_holder()?.id(),
                    asset,
                    Bucket::Available,
                    *amount,
                    false,
                )
                .await?;
                planned.taken = Some((plan, LotChange::Consume));
            }
            planned.amount = *amount;
            planned.entry.postings = vec![
                (account(owner, Bucket::Available), -*amount),
                (account(*target, Bucket::Available), *amount),
            ];
        }
        Kind::Unredeem {
            amount,
            target,
            redemption,
        } => {
            if asset.has_lots() {
                let plan = lots::plan_restore(conn, *redemption, *amount).await?;
                if plan.total != *amount {
                    return Err(Error::Internal(format!(
                        "redemption entry {redemption} consumed less than the {amount} to restore"
                    )));
                }
                let debt = debt_of(conn, m.organization_id, owner, asset).await?;
                planned.restored = Some((plan, *redemption, debt));
            }
            planned.amount = *amount;
            planned.entry.postings = vec![
                (account(*target, Bucket::Available), -*amount),
                (account(owner, Bucket::Available), *amount),
            ];
        }
    }
    Ok(planned)
}

/// Plans spending `amount` of the holder's lots in `bucket`, oldest first; less than that is
/// `Insufficient` unless an overdraft may cover the rest.
async fn spend(
    conn: &mut PgConnection,
    holder: Uuid,
    asset: &Asset,
    bucket: Bucket,
    amount: Decimal,
    overdraft: bool,
) -> Result<Plan> {
    let selector = Selector::default();
    let plan = lots::plan(conn, holder, asset.id, bucket, Some(amount), &selector).await?;
    if plan.total < amount && !overdraft {
        return Err(Error::Insufficient("insufficient balance".into()));
    }
    Ok(plan)
}

/// Hold, release, forfeit or void-hold: the amount, or everything selected, from one bucket to another.
async fn operation(
    conn: &mut PgConnection,
    m: &Movement<'_>,
    planned: &mut Planned,
    holder: Holder,
    op: Operation,
    amount: Option<Decimal>,
    selector: &Selector,
) -> Result<()> {
    let asset = m.asset;
    let (from_bucket, to, to_bucket) = op.movement(holder.owner(), asset.source(m.program_id));
    if let Some(amount) = amount {
        check(asset, "amount", amount)?;
    }
    let plan = match asset.has_lots() {
        true => {
            // A hold stamps the lots it takes with its reference; the others select by it.
            let selection = match op {
                Operation::Hold => Selector {
                    reference_id: None,
                    ..selector.clone()
                },
                Operation::VoidHold => Selector {
                    provisional_only: true,
                    ..selector.clone()
                },
                _ => selector.clone(),
            };
            Some(lots::plan(conn, holder.id(), asset.id, from_bucket, amount, &selection).await?)
        }
        _ if op == Operation::VoidHold => {
            return Err(Error::invalid(FieldError::invalid(
                "asset_id",
                "LOT asset",
                Some(asset.id.to_string()),
                "void-hold cancels provisional lots, which only LOT assets have",
            )));
        }
        _ if selector.is_set() => {
            return Err(Error::invalid(FieldError::invalid(
                "reference_id",
                "absent",
                None,
                "reference_id, lot_ids, earned_from and earned_to select lots, which only LOT assets have",
            )));
        }
        _ => None,
    };
    let amount = match (&plan, amount) {
        (Some(plan), Some(amount)) if plan.total < amount => {
            return Err(Error::Insufficient(format!(
                "the selected lots hold {}",
                asset.format(plan.total)
            )));
        }
        (Some(plan), _) => plan.total,
        (None, Some(amount)) => amount,
        (None, None) => ledger::snapshot(conn, m.organization_id, holder.owner(), asset.id)
            .await?
            .bucket(from_bucket),
    };
    if amount <= Decimal::ZERO {
        return Err(Error::Insufficient(format!(
            "there is nothing in {from_bucket} to process"
        )));
    }
    planned.amount = amount;
    planned.entry.reference_id = selector.reference_id.clone();
    planned.entry.postings = vec![
        (
            AccountKey::new(holder.owner(), asset.id, from_bucket),
            -amount,
        ),
        (AccountKey::new(to, asset.id, to_bucket), amount),
    ];
    planned.taken = plan.map(|plan| {
        let change = match op {
            Operation::Hold => LotChange::Shift {
                to: Bucket::Held,
                stamp: selector.reference_id.clone(),
            },
            Operation::Release => LotChange::Shift {
                to: Bucket::Available,
                stamp: None,
            },
            Operation::Forfeit { .. } | Operation::VoidHold => LotChange::Consume,
        };
        (plan, change)
    });
    Ok(())
}

/// An amount moved in one entry must suit the asset; the error names `field`.
fn check(asset: &Asset, field: &str, amount: Decimal) -> Result<()> {
    asset.check_amount(field, amount).map_err(Error::invalid)
}

/// What a holder's AVAILABLE balance is below zero: an overdraft the next credit repays first.
async fn debt_of(
    conn: &mut PgConnection,
    organization_id: Uuid,
    holder: Owner,
    asset: &Asset,
) -> Result<Decimal> {
    let available = ledger::snapshot(conn, organization_id, holder, asset.id)
        .await?
        .available;
    Ok(-available.min(Decimal::ZERO))
}

/// Where a planned entry is written, with the lots it creates: straight to the ledger, or through a worker
/// batch that may defer it. Either way its id is known at once. Its notices go the same way.
pub trait Writer {
    fn write(
        &mut self,
        conn: &mut PgConnection,
        organization_id: Uuid,
        entry: NewEntry,
        created: Vec<NewLot>,
    ) -> impl Future<Output = Result<Uuid, PostError>> + Send;

    /// Whether a notice of `kind` would reach anyone; when not, it is not even built.
    fn wants(&self, organization_id: Uuid, kind: WebhookEventType) -> bool;

    /// Writes the notice with the movement's entry (or drops it with the entry).
    fn notify(
        &mut self,
        conn: &mut PgConnection,
        notice: Notice,
    ) -> impl Future<Output = sqlx::Result<()>> + Send;
}

/// Posts each entry as it comes.
pub struct Direct;

impl Writer for Direct {
    /// Asking would cost a query; the insert of the notice finds the subscribers itself.
    fn wants(&self, _: Uuid, _: WebhookEventType) -> bool {
        true
    }

    async fn notify(&mut self, conn: &mut PgConnection, notice: Notice) -> sqlx::Result<()> {
        webhooks::emit(conn, &[notice]).await
    }

    async fn write(
        &mut self,
        conn: &mut PgConnection,
        organization_id: Uuid,
        entry: NewEntry,
        created: Vec<NewLot>,
    ) -> Result<Uuid, PostError> {
        write_now(
            conn,
            organization_id,
            entry,
            created,
            &KnownAccounts::default(),
        )
        .await
    }
}

/// Posts the entry and creates its lots now; `known` saves looking up accounts the caller has read.
pub async fn write_now(
    conn: &mut PgConnection,
    organization_id: Uuid,
    entry: NewEntry,
    created: Vec<NewLot>,
    known: &KnownAccounts,
) -> Result<Uuid, PostError> {
    let id = ledger::post(conn, organization_id, &entry, known).await?;
    if !created.is_empty() {
        let created: Vec<(Uuid, &NewLot)> = created.iter().map(|lot| (id, lot)).collect();
        lots::create(conn, &created).await?;
    }
    Ok(id)
}

/// Posts a planned movement: its entry, then the lots it took or settled. An entry that would overdraw a
/// checked account is `Insufficient`, naming the program wallet when that is what falls short.
pub async fn post(
    conn: &mut PgConnection,
    organization_id: Uuid,
    planned: Planned,
    writer: &mut impl Writer,
) -> Result<Moved> {
    let told = notice_type(planned.entry.action_type);
    let (program_id, reference_id, event_id, rule_id) = (
        planned.entry.program_id,
        planned.entry.reference_id.clone(),
        planned.entry.event_id,
        planned.entry.rule_id,
    );
    let wallet_short = planned
        .entry
        .postings
        .iter()
        .any(|(key, amount)| *amount < Decimal::ZERO && matches!(key.owner, Owner::Program(_)));
    let journal_entry_id = writer
        .write(conn, organization_id, planned.entry, planned.created)
        .await
        .map_err(|err| match err {
            PostError::InsufficientBalance if wallet_short => {
                Error::Insufficient("insufficient program wallet balance".into())
            }
            PostError::InsufficientBalance => Error::Insufficient("insufficient balance".into()),
            PostError::Unbalanced => Error::Internal("postings do not balance".into()),
            PostError::Database(err) => Error::Database(err),
        })?;
    if let Some(held) = &planned.settled {
        lots::consume(conn, journal_entry_id, held).await?;
    }
    if let Some((plan, consumed_by, debt)) = &planned.restored {
        lots::restore(conn, journal_entry_id, *consumed_by, plan, *debt).await?;
    }
    if let Some((plan, change)) = &planned.taken {
        match change {
            LotChange::Consume => lots::consume(conn, journal_entry_id, plan).await?,
            LotChange::Shift { to, stamp } => {
                lots::shift(conn, journal_entry_id, plan, *to, stamp.as_deref()).await?
            }
        }
    }
    if let Some(kind) = told
        && writer.wants(organization_id, kind)
    {
        let format = |amount| crate::money::format(amount, planned.scale);
        let notice = match (kind, planned.holder) {
            (WebhookEventType::TransferCompleted, Some(source)) => Notice::new(
                organization_id,
                kind,
                &Transferred {
                    program_id,
                    asset_id: planned.asset_id,
                    journal_entry_id,
                    source,
                    recipients: planned
                        .recipients
                        .iter()
                        .map(|(holder, amount)| Recipient {
                            holder: *holder,
                            amount: format(*amount),
                        })
                        .collect(),
                    total_amount: format(planned.amount),
                },
            ),
            (_, Some(holder)) => Notice::new(
                organization_id,
                kind,
                &BalanceChanged {
                    holder,
                    program_id,
                    asset_id: planned.asset_id,
                    amount: format(planned.amount),
                    journal_entry_id,
                    reference_id,
                    settle: planned
                        .settled
                        .as_ref()
                        .map(|held| Settlement::new(planned.amount, held.total, planned.scale)),
                    event_id,
                    rule_id,
                },
            ),
            (_, None) => Notice::new(
                organization_id,
                kind,
                &WalletMoved {
                    program_id,
                    asset_id: planned.asset_id,
                    amount: format(planned.amount),
                    journal_entry_id,
                },
            ),
        };
        writer.notify(conn, notice).await?;
    }
    Ok(Moved {
        journal_entry_id,
        amount: planned.amount,
        lots: planned.taken.map(|(plan, _)| plan),
        settled_hold: planned.settled.map(|held| held.total),
    })
}

/// Plans and posts straight to the ledger: what an API call does.
pub async fn apply(conn: &mut PgConnection, m: &Movement<'_>) -> Result<Moved> {
    let planned = plan(conn, m).await?;
    post(conn, m.organization_id, planned, &mut Direct).await
}

/// The webhook event a posted entry of this type reports. Redemptions are reported by `redemptions`, with
/// the redemption.
fn notice_type(entry: EntryType) -> Option<WebhookEventType> {
    match entry {
        // A reversal refunds what a redemption took.
        EntryType::Credit | EntryType::Reversal => Some(WebhookEventType::BalanceCredited),
        EntryType::Debit | EntryType::Forfeit | EntryType::VoidHold => {
            Some(WebhookEventType::BalanceDebited)
        }
        EntryType::Hold => Some(WebhookEventType::BalanceHeld),
        EntryType::Release => Some(WebhookEventType::BalanceReleased),
        EntryType::Fund => Some(WebhookEventType::ProgramFunded),
        EntryType::Burn => Some(WebhookEventType::ProgramBurned),
        EntryType::Transfer => Some(WebhookEventType::TransferCompleted),
        // `due` reports expiries itself; a maturity moves value within the holder's own balance.
        EntryType::Maturity | EntryType::Expiration | EntryType::Redemption => None,
    }
}

/// The data of balance.credited, .debited, .held, .released and .expired: whose balance, of what, how much.
#[derive(Debug, Serialize)]
pub struct BalanceChanged {
    #[serde(flatten)]
    pub holder: Holder,
    pub program_id: Uuid,
    pub asset_id: Uuid,
    pub amount: String,
    pub journal_entry_id: Uuid,
    /// The hold reference the movement is correlated with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_id: Option<String>,
    /// A credit that settled a provisional hold of the same reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settle: Option<Settlement>,
    /// The event and rule that moved it, for rule actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<Uuid>,
}

/// A settling credit against the provisional hold it replaced.
#[derive(Debug, Serialize)]
pub struct Settlement {
    pub held_amount: String,
    /// What the settlement differs from the hold: settled − held, may be negative.
    pub delta: String,
}

impl Settlement {
    pub fn new(settled: Decimal, held: Decimal, scale: i16) -> Settlement {
        Settlement {
            held_amount: crate::money::format(held, scale),
            delta: crate::money::format(settled - held, scale),
        }
    }
}

/// The data of program.funded and program.burned.
#[derive(Debug, Serialize)]
struct WalletMoved {
    program_id: Uuid,
    asset_id: Uuid,
    amount: String,
    journal_entry_id: Uuid,
}

/// The data of transfer.completed.
#[derive(Debug, Serialize)]
struct Transferred {
    program_id: Uuid,
    asset_id: Uuid,
    journal_entry_id: Uuid,
    source: Holder,
    recipients: Vec<Recipient>,
    total_amount: String,
}

#[derive(Debug, Serialize)]
struct Recipient {
    #[serde(flatten)]
    holder: Holder,
    amount: String,
}
