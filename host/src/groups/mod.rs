//! Groups (E55–E64): households, teams and companies whose members pool value. A group belongs to the
//! organization, not to a program; its wallet is a holder's accounts like a participant's, moved by
//! `balances` and by rules, and its state is kept by `holders`. Membership changes lock the group's row, so
//! the last ADMIN stays an ADMIN however many requests race. An archived group is read-only for good.

mod repo;

use crate::error::{Error, Result};
use crate::ledger::{BalanceRow, Owner};
use crate::organizations::Actor;
use crate::pagination::{Cursor, Page, PageParams};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::collections::BTreeMap;
use uuid::Uuid;

crate::vocabulary!(
    /// ARCHIVED is for good: the group and its history stay readable, nothing changes any more.
    pub enum GroupStatus {
        Active = "ACTIVE",
        Archived = "ARCHIVED",
    }
);
crate::vocabulary!(
    /// An ADMIN manages the membership; a group always has at least one.
    pub enum Role {
        Admin = "ADMIN",
        Member = "MEMBER",
    }
);
crate::vocabulary!(
    /// A member who leaves keeps their row as LEFT; adding them again makes them ACTIVE.
    pub enum MemberStatus {
        Active = "ACTIVE",
        Left = "LEFT",
    }
);

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Group {
    pub id: Uuid,
    #[schema(example = "The Smiths")]
    pub name: String,
    pub status: GroupStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When it was archived; absent while ACTIVE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Group {
    /// An archived group cannot change.
    pub fn require_active(&self) -> Result<()> {
        match self.status {
            GroupStatus::Active => Ok(()),
            GroupStatus::Archived => Err(Error::Conflict {
                code: "group_archived",
                message: format!("group {} is archived", self.id),
            }),
        }
    }
}

/// E57: the group with its wallet's total per asset, all buckets and programs together.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupDetail {
    #[serde(flatten)]
    pub group: Group,
    /// Asset id → total balance, at the asset's scale.
    #[schema(value_type = std::collections::HashMap<String, String>)]
    pub balances: BTreeMap<Uuid, String>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct GroupMember {
    pub participant_id: Uuid,
    pub external_id: String,
    pub role: Role,
    pub status: MemberStatus,
    pub joined_at: DateTime<Utc>,
    /// Absent while ACTIVE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_at: Option<DateTime<Utc>>,
}

/// A group a participant belongs to, with their role in it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Membership {
    pub group_id: Uuid,
    pub name: String,
    pub group_status: GroupStatus,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// E64: one asset's balance of the group: the total, and per bucket.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupBalance {
    pub asset_id: Uuid,
    /// AVAILABLE + HELD + DEFERRED.
    #[schema(example = "1500")]
    pub balance: String,
    #[schema(example = "1500")]
    pub available: String,
    #[schema(example = "0")]
    pub held: String,
    #[schema(example = "0")]
    pub deferred: String,
}

impl From<BalanceRow> for GroupBalance {
    fn from(b: BalanceRow) -> Self {
        let format = |amount| crate::money::format(amount, b.scale);
        GroupBalance {
            asset_id: b.asset_id,
            balance: format(b.available + b.held + b.deferred),
            available: format(b.available),
            held: format(b.held),
            deferred: format(b.deferred),
        }
    }
}

/// One member and their role (default MEMBER), as a request lists them.
#[derive(Debug, Clone, utoipa::ToSchema)]
pub struct MemberInput {
    pub participant_id: Uuid,
    #[schema(value_type = Option<Role>)]
    pub role: Role,
}

#[derive(utoipa::ToSchema)]
#[schema(example = json!({"name": "The Smiths", "members": [
    {"participant_id": "550e8400-e29b-41d4-a716-446655440000", "role": "ADMIN"}]}))]
pub struct NewGroup {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    /// 1 to 100 distinct participants, at least one of them ADMIN.
    #[schema(min_items = 1, max_items = 100)]
    pub members: Vec<MemberInput>,
    /// The participant acting, recorded for audit.
    pub on_behalf_of_participant_id: Option<Uuid>,
}

/// Archived groups are left out unless `include_archived`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GroupFilter {
    #[param(value_type = Option<bool>)]
    pub include_archived: bool,
    /// Part of the name, case-insensitive.
    #[param(min_length = 1, max_length = 255)]
    pub search: Option<String>,
    #[param(ignore)]
    pub page: PageParams,
}

/// E55: the group and its first members.
pub async fn create(pool: &PgPool, actor: &Actor, g: NewGroup) -> Result<Group> {
    let mut tx = pool.begin().await?;
    let mut wanted: Vec<Uuid> = g.members.iter().map(|m| m.participant_id).collect();
    wanted.extend(g.on_behalf_of_participant_id);
    require_participants(&mut tx, actor, &wanted).await?;
    let id = Uuid::now_v7();
    let on_behalf_of = g.on_behalf_of_participant_id;
    repo::insert(&mut tx, actor.organization_id, id, &g.name, on_behalf_of).await?;
    repo::upsert_members(&mut tx, id, &g.members, on_behalf_of).await?;
    let group = repo::find(&mut *tx, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("group"))?;
    tx.commit().await?;
    Ok(group)
}

pub async fn list(pool: &PgPool, actor: &Actor, f: GroupFilter) -> Result<Page<Group>> {
    let rows = repo::list(pool, actor.organization_id, &f).await?;
    Ok(Page::from_rows(rows, f.page.limit, |g| {
        Cursor::at(g.created_at, g.id)
    }))
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<GroupDetail> {
    let group = repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("group"))?;
    let rows = crate::ledger::balances_of(
        pool,
        actor.organization_id,
        Owner::Group(id),
        None,
        None,
        None,
        None,
    )
    .await?;
    let balances = rows
        .into_iter()
        .map(|b| {
            let b = GroupBalance::from(b);
            (b.asset_id, b.balance)
        })
        .collect();
    Ok(GroupDetail { group, balances })
}

/// `NotFound` unless the group exists in the actor's organization.
pub async fn require(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<()> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .map(|_| ())
        .ok_or(Error::NotFound("group"))
}

/// E58.
pub async fn rename(pool: &PgPool, actor: &Actor, id: Uuid, name: &str) -> Result<Group> {
    let mut tx = pool.begin().await?;
    locked_active(&mut tx, actor, id).await?;
    repo::rename(&mut tx, id, name).await?;
    let group = repo::find(&mut *tx, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("group"))?;
    tx.commit().await?;
    Ok(group)
}

/// E59: archives the group for good; its balances and history stay.
pub async fn archive(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Group> {
    let mut tx = pool.begin().await?;
    locked_active(&mut tx, actor, id).await?;
    repo::archive(&mut tx, id).await?;
    let group = repo::find(&mut *tx, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("group"))?;
    tx.commit().await?;
    Ok(group)
}

/// E60: ACTIVE members, and former ones too with `include_former`, in the order they joined.
pub async fn members(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    include_former: bool,
    page: PageParams,
) -> Result<Page<GroupMember>> {
    require(pool, actor, id).await?;
    let rows = repo::members(pool, id, include_former, &page).await?;
    Ok(Page::from_rows(rows, page.limit, |m| {
        Cursor::new("", m.participant_id)
    }))
}

/// E61: adds participants, or makes former members ACTIVE again with the role given. One who is already an
/// ACTIVE member fails the whole request.
pub async fn add_members(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    members: &[MemberInput],
    on_behalf_of: Option<Uuid>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    locked_active(&mut tx, actor, id).await?;
    let ids: Vec<Uuid> = members.iter().map(|m| m.participant_id).collect();
    let mut wanted = ids.clone();
    wanted.extend(on_behalf_of);
    require_participants(&mut tx, actor, &wanted).await?;
    if let Some(already) = repo::active_among(&mut tx, id, &ids).await?.first() {
        return Err(Error::Conflict {
            code: "already_member",
            message: format!("participant {already} is already an active member of the group"),
        });
    }
    repo::upsert_members(&mut tx, id, members, on_behalf_of).await?;
    tx.commit().await?;
    Ok(())
}

/// E62: changes an ACTIVE member's role; the last ADMIN cannot become a MEMBER.
pub async fn set_role(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    participant: Uuid,
    role: Role,
    on_behalf_of: Option<Uuid>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    locked_active(&mut tx, actor, id).await?;
    require_participants(&mut tx, actor, &Vec::from_iter(on_behalf_of)).await?;
    let current = active_role(&mut tx, id, participant).await?;
    if current == Role::Admin && role == Role::Member {
        keep_an_admin(&mut tx, id, participant).await?;
    }
    repo::set_role(&mut tx, id, participant, role, on_behalf_of).await?;
    tx.commit().await?;
    Ok(())
}

/// E63: the member leaves (status LEFT); the group's balance stays. The last ADMIN cannot leave.
pub async fn remove_member(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    participant: Uuid,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    locked_active(&mut tx, actor, id).await?;
    if active_role(&mut tx, id, participant).await? == Role::Admin {
        keep_an_admin(&mut tx, id, participant).await?;
    }
    repo::leave(&mut tx, id, participant).await?;
    tx.commit().await?;
    Ok(())
}

/// The groups a participant is an ACTIVE member of, oldest membership first.
pub async fn of_participant(
    pool: &PgPool,
    actor: &Actor,
    participant: Uuid,
    page: PageParams,
) -> Result<Page<Membership>> {
    crate::participants::require(pool, actor, participant).await?;
    let rows = repo::of_participant(pool, participant, &page).await?;
    Ok(Page::from_rows(rows, page.limit, |m| {
        Cursor::at(m.joined_at, m.group_id)
    }))
}

/// A group's state as rules read it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GroupState {
    pub id: Uuid,
    pub tags: Vec<String>,
    pub attributes: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
    /// Effective values (0 once a window has passed).
    pub counters: sqlx::types::Json<serde_json::Map<String, serde_json::Value>>,
}

/// The state of the ACTIVE group a participant joined first (see [`first_of`]), in one statement.
pub async fn first_state_of(
    conn: &mut PgConnection,
    participant: Uuid,
) -> sqlx::Result<Option<GroupState>> {
    repo::first_state_of(conn, participant).await
}

/// The ACTIVE group a participant joined first, which rules mean by "the participant's group".
pub async fn first_of(conn: &mut PgConnection, participant: Uuid) -> sqlx::Result<Option<Uuid>> {
    repo::first_of(conn, participant).await
}

/// Locks the group's row (`FOR NO KEY UPDATE`, like participants) and reads it; `None` when the organization
/// has no such group. Callers that also lock participants lock them first.
pub async fn lock(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Group>> {
    repo::lock(conn, organization_id, id).await
}

/// Locks whichever of these ids are groups, in id order.
pub async fn lock_many(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<()> {
    repo::lock_many(conn, ids).await
}

async fn locked_active(conn: &mut PgConnection, actor: &Actor, id: Uuid) -> Result<Group> {
    let group = lock(conn, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("group"))?;
    group.require_active()?;
    Ok(group)
}

/// `NotFound` unless the organization has all these participants.
async fn require_participants(conn: &mut PgConnection, actor: &Actor, ids: &[Uuid]) -> Result<()> {
    let known = repo::known_participants(conn, actor.organization_id, ids).await?;
    match ids.iter().all(|id| known.contains(id)) {
        true => Ok(()),
        false => Err(Error::NotFound("participant")),
    }
}

/// The role of an ACTIVE member; `NotFound` for anyone else.
async fn active_role(conn: &mut PgConnection, id: Uuid, participant: Uuid) -> Result<Role> {
    repo::active_role(conn, id, participant)
        .await?
        .ok_or(Error::NotFound("group member"))
}

/// Refuses a change that would leave the group without an ADMIN; the caller holds the group's lock.
async fn keep_an_admin(conn: &mut PgConnection, id: Uuid, leaving: Uuid) -> Result<()> {
    if repo::other_admins(conn, id, leaving).await? == 0 {
        return Err(Error::Conflict {
            code: "last_admin",
            message: "the group's last ADMIN can be neither demoted nor removed".into(),
        });
    }
    Ok(())
}
