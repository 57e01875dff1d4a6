//! Participants: the end users who earn and spend, keyed by the client's `external_id`. Anything that changes
//! a participant's balances or state first locks the participant's row, so their balance rows are only ever
//! updated by one transaction at a time; several participants are locked in id order.

mod repo;

use crate::error::{Error, FieldError, OnConstraint, Result};
use crate::holders::state;
use crate::ledger::{BalanceRow, Owner};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page, PageParams};
use crate::validation::SortDir;
use crate::webhooks::{self, Notice, WebhookEventType};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

crate::vocabulary!(
    /// SUSPENDED and CLOSED participants cannot be credited, debited or counted; value still leaves by forfeit.
    pub enum ParticipantStatus {
        Active = "ACTIVE",
        Suspended = "SUSPENDED",
        Closed = "CLOSED",
    }
);

/// A participant as a client names one: by our id or by their own external id.
#[derive(Debug, Clone, PartialEq)]
pub enum Party {
    External(String),
    Id(Uuid),
}

impl Party {
    /// The party named by an external id, or else by a participant id, as the wire names one.
    pub fn named(external_id: Option<String>, id: Option<Uuid>) -> Option<Party> {
        external_id.map(Party::External).or(id.map(Party::Id))
    }
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Party::External(external_id) => write!(f, "external_id:{external_id}"),
            Party::Id(id) => write!(f, "participant_id:{id}"),
        }
    }
}

/// The id of an existing participant of the organization; `NotFound` otherwise.
pub async fn find_party(
    conn: &mut PgConnection,
    organization_id: Uuid,
    party: &Party,
) -> Result<Uuid> {
    let found = match party {
        Party::Id(id) => repo::exists(conn, organization_id, *id)
            .await?
            .then_some(*id),
        Party::External(external_id) => {
            repo::find_by_external_id(conn, organization_id, external_id).await?
        }
    };
    found.ok_or(Error::NotFound("participant"))
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Participant {
    pub id: Uuid,
    #[schema(example = "user_123")]
    pub external_id: String,
    pub status: ParticipantStatus,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What rules see of a participant (`participant.*` in CEL), read under the participant's lock. Counters are
/// numbers here, with windows applied.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct State {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub external_id: String,
    pub status: ParticipantStatus,
    pub tags: Vec<String>,
    pub attributes: sqlx::types::Json<Map<String, Value>>,
    pub counters: sqlx::types::Json<Map<String, Value>>,
    /// Programs the participant is actively enrolled in.
    pub programs: Vec<Uuid>,
}

impl State {
    /// A participant about to be created for an unknown external id: active, with nothing yet.
    pub fn new(id: Uuid, organization_id: Uuid, external_id: &str) -> Self {
        State {
            id,
            organization_id,
            external_id: external_id.to_owned(),
            status: ParticipantStatus::Active,
            tags: Vec::new(),
            attributes: sqlx::types::Json(Map::new()),
            counters: sqlx::types::Json(Map::new()),
            programs: Vec::new(),
        }
    }
}

/// The detail view: profile, inline state, balances and enrolled programs.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Detail {
    #[serde(flatten)]
    pub participant: Participant,
    /// String values by key.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub attributes: Map<String, Value>,
    pub tags: Vec<String>,
    /// Counter values (decimal strings) by key.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub counters: Map<String, Value>,
    pub balances: Vec<BalanceRow>,
    #[schema(value_type = Object)]
    pub tiers: Map<String, Value>,
    pub program_ids: Vec<Uuid>,
}

#[derive(Default)]
/// Creates the participant, or updates the one with this `external_id`.
#[derive(utoipa::ToSchema)]
#[schema(as = UpsertParticipant, example = json!({"external_id": "user_123", "email": "ada@example.com",
    "program_id": "550e8400-e29b-41d4-a716-446655440000", "tags": ["vip"]}))]
pub struct Upsert {
    #[schema(min_length = 1, max_length = 255)]
    pub external_id: String,
    /// Enrolls the participant in this program.
    pub program_id: Option<Uuid>,
    pub status: Option<ParticipantStatus>,
    #[schema(min_length = 1, max_length = 255, format = "email")]
    pub email: Option<String>,
    #[schema(min_length = 1, max_length = 50)]
    pub phone: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    pub first_name: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    pub last_name: Option<String>,
    #[schema(min_length = 1, max_length = 255)]
    pub display_name: Option<String>,
    /// At most 100, with string values of at most 1000 characters.
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    pub attributes: Vec<(String, String)>,
    /// Replaces the tags: at most 100, each at most 255 characters.
    #[schema(max_items = 100)]
    pub tags: Option<Vec<String>>,
}

#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParticipantFilter {
    #[param(min_length = 1, max_length = 255)]
    pub external_id: Option<String>,
    pub program_id: Option<Uuid>,
    #[param(inline)]
    pub status: Option<ParticipantStatus>,
    /// Part of the external id, email or a name, case-insensitive.
    #[param(min_length = 1, max_length = 255)]
    pub search: Option<String>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created at or before.
    pub to: Option<DateTime<Utc>>,
    #[param(value_type = Option<ParticipantSort>, inline)]
    pub sort_by: ParticipantSort,
    #[param(rename = "sort_dir", value_type = Option<SortDir>, inline)]
    pub ascending: bool,
    #[param(ignore)]
    pub page: PageParams,
}

crate::vocabulary!(
    /// The orders a participant list can be in.
    pub enum ParticipantSort {
        CreatedAt = "created_at",
        ExternalId = "external_id",
        Status = "status",
    }
);

/// Creates the participant, or updates the one with the same `external_id`. Returns whether it was created.
pub async fn upsert(pool: &PgPool, actor: &Actor, input: Upsert) -> Result<(Detail, bool)> {
    if let Some(program_id) = input.program_id {
        crate::programs::get(pool, actor, program_id).await?;
    }
    let mut tx = pool.begin().await?;
    let (id, created) =
        repo::upsert(&mut tx, actor.organization_id, Uuid::now_v7(), &input).await?;
    if created {
        announce(&mut tx, actor.organization_id, id, &input.external_id).await?;
    }
    let origin = state::Origin {
        organization_id: actor.organization_id,
        program_id: input.program_id,
        api_key_id: Some(actor.api_key_id),
        ..Default::default()
    };
    if let Some(tags) = &input.tags {
        state::replace_tags(&mut tx, &origin, id, &normalize_tags(tags)).await?;
    }
    for (key, value) in &input.attributes {
        state::set_attribute(&mut tx, &origin, id, key, value).await?;
    }
    if let Some(program_id) = input.program_id {
        enroll(&mut tx, &[(id, program_id)]).await?;
    }
    tx.commit().await?;
    Ok((get(pool, actor, id).await?, created))
}

/// `NotFound` unless the participant exists in the actor's organization.
pub async fn require(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<()> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound("participant"))
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Detail> {
    let participant = repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("participant"))?;
    let (tags, attributes, program_ids) = repo::inline_state(pool, id).await?;
    let mut conn = pool.acquire().await?;
    let counters = state::counters(&mut conn, id)
        .await?
        .into_iter()
        .map(|c| (c.key, Value::String(c.value.normalize().to_string())))
        .collect();
    let balances = crate::ledger::balances_of(
        pool,
        actor.organization_id,
        Owner::Participant(id),
        None,
        None,
        None,
        None,
    )
    .await?;
    Ok(Detail {
        participant,
        attributes: attributes.0,
        tags,
        counters,
        balances,
        tiers: Map::new(),
        program_ids,
    })
}

pub async fn list(
    pool: &PgPool,
    actor: &Actor,
    filter: ParticipantFilter,
) -> Result<Page<Participant>> {
    let order = Order {
        column: filter.sort_by.as_str(),
        sql_type: if filter.sort_by == ParticipantSort::CreatedAt {
            "timestamptz"
        } else {
            "text"
        },
        descending: !filter.ascending,
    };
    let rows = repo::list(pool, actor.organization_id, &filter, order).await?;
    let sort_by = filter.sort_by;
    Ok(Page::from_rows(
        rows,
        filter.page.limit,
        |p| match sort_by {
            ParticipantSort::ExternalId => Cursor::new(&p.external_id, p.id),
            ParticipantSort::Status => Cursor::new(p.status, p.id),
            ParticipantSort::CreatedAt => Cursor::at(p.created_at, p.id),
        },
    ))
}

/// What a wasm rule sees of the participant's balances: AVAILABLE per asset, at the asset's scale.
pub async fn available_balances(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Vec<(String, String)>> {
    let rows = crate::ledger::balances_of(
        conn,
        organization_id,
        Owner::Participant(id),
        None,
        None,
        None,
        None,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|b| {
            (
                b.asset_id.to_string(),
                crate::money::format(b.available, b.scale),
            )
        })
        .collect())
}

pub async fn balances(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    asset_id: Option<Uuid>,
    page: PageParams,
) -> Result<Page<BalanceRow>> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("participant"))?;
    let (after, limit) = (page.cursor.map(|c| c.id), page.limit);
    let rows = crate::ledger::balances_of(
        pool,
        actor.organization_id,
        Owner::Participant(id),
        asset_id,
        None,
        after,
        Some(limit + 1),
    )
    .await?;
    Ok(Page::from_rows(rows, limit, |b| {
        Cursor::new("", b.asset_id)
    }))
}

/// Finds the participant by `external_id`, creating it when `create` allows. Returns `None` when it does not
/// exist and may not be created. Runs in the caller's transaction.
pub async fn resolve_external(
    conn: &mut PgConnection,
    organization_id: Uuid,
    external_id: &str,
    create: bool,
) -> Result<Option<Uuid>> {
    if let Some(id) = repo::find_by_external_id(conn, organization_id, external_id).await? {
        return Ok(Some(id));
    }
    if !create {
        return Ok(None);
    }
    let new = Uuid::now_v7();
    let id = repo::insert_if_absent(conn, organization_id, new, external_id).await?;
    if id == new {
        announce(conn, organization_id, id, external_id).await?;
    }
    Ok(Some(id))
}

/// The data of participant.created.
#[derive(Debug, Serialize)]
pub struct Created<'a> {
    pub participant_id: Uuid,
    pub external_id: &'a str,
}

/// Tells webhooks of a participant just created, in the transaction that creates it.
async fn announce(
    conn: &mut PgConnection,
    organization_id: Uuid,
    participant_id: Uuid,
    external_id: &str,
) -> sqlx::Result<()> {
    let created = Created {
        participant_id,
        external_id,
    };
    let notice = Notice::new(
        organization_id,
        WebhookEventType::ParticipantCreated,
        &created,
    );
    webhooks::emit(conn, &[notice]).await
}

/// Tags are case-insensitive: stored lower case, without duplicates.
pub fn normalize_tags(tags: &[String]) -> Vec<String> {
    let mut tags: Vec<String> = tags.iter().map(|t| t.to_lowercase()).collect();
    tags.sort();
    tags.dedup();
    tags
}

/// A deliberately loose check: one `@`, something before it, a dot in the domain, no spaces.
pub fn check_email(field: &str, email: &str) -> Result<(), FieldError> {
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(FieldError::invalid(
            field,
            "email address",
            Some(email.into()),
            "email must be a valid email address",
        ))
    }
}

/// Only the fields given change; an empty string clears a profile field. Status has its own endpoint.
#[derive(Default, utoipa::ToSchema)]
#[schema(as = UpdateParticipant)]
pub struct ProfilePatch {
    #[schema(min_length = 1, max_length = 255)]
    pub external_id: Option<String>,
    #[schema(max_length = 255)]
    pub email: Option<String>,
    #[schema(max_length = 50)]
    pub phone: Option<String>,
    #[schema(max_length = 255)]
    pub first_name: Option<String>,
    #[schema(max_length = 255)]
    pub last_name: Option<String>,
    #[schema(max_length = 255)]
    pub display_name: Option<String>,
    #[schema(value_type = Option<std::collections::HashMap<String, String>>)]
    pub attributes: Vec<(String, String)>,
    #[schema(max_items = 100)]
    pub tags: Option<Vec<String>>,
}

/// A transaction holding the participant's lock, and the origin its state changes record.
async fn locked(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, state::Origin)> {
    let mut tx = pool.begin().await?;
    if lock_state(&mut tx, actor.organization_id, &[id])
        .await?
        .is_empty()
    {
        return Err(Error::NotFound("participant"));
    }
    let origin = state::Origin {
        organization_id: actor.organization_id,
        api_key_id: Some(actor.api_key_id),
        ..Default::default()
    };
    Ok((tx, origin))
}

pub async fn update(pool: &PgPool, actor: &Actor, id: Uuid, patch: ProfilePatch) -> Result<Detail> {
    let (mut tx, origin) = locked(pool, actor, id).await?;
    repo::update_profile(&mut tx, id, &patch)
        .await
        .on_constraint("participants_external_id_unique", || {
            Error::conflict("another participant already has this external_id")
        })?;
    if let Some(tags) = &patch.tags {
        state::replace_tags(&mut tx, &origin, id, &normalize_tags(tags)).await?;
    }
    for (key, value) in &patch.attributes {
        state::set_attribute(&mut tx, &origin, id, key, value).await?;
    }
    tx.commit().await?;
    get(pool, actor, id).await
}

pub async fn set_status(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    status: ParticipantStatus,
) -> Result<Detail> {
    let (mut tx, _) = locked(pool, actor, id).await?;
    repo::set_status(&mut tx, id, status).await?;
    tx.commit().await?;
    get(pool, actor, id).await
}

/// Of these `(organization, external id)`s, the ones this transaction may create a participant for: each is
/// held (an advisory lock, until commit) by at most one transaction at a time, and one held elsewhere is left
/// out instead of waited for. Two event batches creating the same participants in different orders would
/// otherwise each wait on the other's uncommitted insert until the deadlock detector cancels one (1 s).
pub async fn claim_names(
    conn: &mut PgConnection,
    names: &[(Uuid, String)],
) -> sqlx::Result<Vec<(Uuid, String)>> {
    repo::claim_names(conn, names).await
}

/// Creates bare participants, `(id, organization, external_id)`, in one statement. One that another
/// transaction created meanwhile fails the statement on `participants_external_id_unique`: the caller's ids
/// are already in use elsewhere in its transaction, so it starts over instead.
pub async fn create_many(
    conn: &mut PgConnection,
    rows: &[(Uuid, Uuid, String)],
) -> sqlx::Result<()> {
    repo::create_many(conn, rows).await
}

/// Enrolls `(participant, program)` pairs, reactivating inactive enrollments; repeated pairs are fine.
pub async fn enroll(conn: &mut PgConnection, pairs: &[(Uuid, Uuid)]) -> sqlx::Result<()> {
    repo::enroll(conn, pairs).await
}

/// Up to `limit` participants enrolled in the program (in any enrollment status), in id order after `after`:
/// how background passes walk a program's members.
pub async fn members(
    conn: &mut PgConnection,
    program_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Uuid>> {
    repo::members(conn, program_id, after, limit).await
}

/// Up to `limit` participants enrolled in the program (in any enrollment status) after `after`, in id order,
/// with their state, unlocked: how a fan-out reads a page of members.
pub async fn member_states(
    conn: &mut PgConnection,
    program_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<State>> {
    repo::member_states(conn, program_id, after, limit).await
}

/// How many participants are enrolled in the program, in any enrollment status.
pub async fn member_count(conn: &mut PgConnection, program_id: Uuid) -> sqlx::Result<i64> {
    repo::member_count(conn, program_id).await
}

/// The state of these participants (of any organization), unlocked.
pub async fn states(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<State>> {
    repo::read_states(conn, None, ids, "").await
}

/// `(organization, external_id, id)` of the participants these pairs name.
pub async fn find_by_external_ids(
    conn: &mut PgConnection,
    organizations: &[Uuid],
    external_ids: &[String],
) -> sqlx::Result<Vec<(Uuid, String, Uuid)>> {
    repo::find_by_external_ids(conn, organizations, external_ids).await
}

/// Locks the participants in id order, the one lock order every writer uses. `FOR NO KEY UPDATE`, not
/// `FOR UPDATE`: writers still exclude each other, but rows that merely reference a participant (an event
/// being ingested) neither wait for the lock nor get caught in a deadlock with its holders.
pub async fn lock(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<()> {
    repo::lock(conn, ids).await
}

/// Locks the participants in id order, like [`lock`], and reads their state.
pub async fn lock_state(
    conn: &mut PgConnection,
    organization_id: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<Vec<State>> {
    repo::lock_state(conn, organization_id, ids).await
}

/// What to do about participants another transaction has locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Block,
    /// Leave them out: an event worker defers their events rather than wait for another batch's commit.
    Skip,
}

/// Locks the participants (of any organization when `organization_id` is `None`) in id order and reads their
/// state, including the programs they are actively enrolled in.
pub async fn lock_states(
    conn: &mut PgConnection,
    organization_id: Option<Uuid>,
    ids: &[Uuid],
    wait: Wait,
) -> sqlx::Result<Vec<State>> {
    repo::lock_states(conn, organization_id, ids, wait).await
}
