//! Programs: the container for rules, participants' enrollments and linked assets.

mod repo;

use crate::error::{Error, Result};
use crate::ledger::Owner;
use crate::organizations::Actor;
use crate::pagination::{Cursor, Order, Page, PageParams};
use crate::validation::{Patch, SortDir};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

crate::vocabulary!(
    /// Only an ACTIVE program processes events; an ARCHIVED one is hidden from lists by default.
    pub enum ProgramStatus {
        Active = "ACTIVE",
        Suspended = "SUSPENDED",
        Archived = "ARCHIVED",
    }
);
crate::vocabulary!(
    /// What an event for an unknown `external_id` does: create the participant, or fail.
    pub enum UnknownParticipantPolicy {
        Create = "CREATE",
        Reject = "REJECT",
    }
);
crate::vocabulary!(
    /// Where redeemed value goes.
    pub enum RedemptionTarget {
        SystemRedemption = "SYSTEM_REDEMPTION",
        SystemBreakage = "SYSTEM_BREAKAGE",
        LedgerEntity = "LEDGER_ENTITY",
    }
);
crate::vocabulary!(
    /// The orders a program list can be in.
    pub enum ProgramSort {
        CreatedAt = "created_at",
        Name = "name",
    }
);

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Program {
    pub id: Uuid,
    #[schema(example = "Coffee Rewards")]
    pub name: String,
    pub description: Option<String>,
    pub on_unknown_participant: UnknownParticipantPolicy,
    pub status: ProgramStatus,
    pub redemption_target_type: RedemptionTarget,
    pub redemption_target_entity_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(utoipa::ToSchema)]
#[schema(as = CreateProgram, example = json!({"name": "Coffee Rewards", "description": "Earn points on every purchase"}))]
pub struct NewProgram {
    #[schema(min_length = 1, max_length = 255)]
    pub name: String,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// Default CREATE.
    #[schema(value_type = Option<UnknownParticipantPolicy>)]
    pub on_unknown_participant: UnknownParticipantPolicy,
}

#[derive(Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProgramFilter {
    /// Show archived programs too (a `status` filter does as well).
    #[param(value_type = Option<bool>)]
    pub include_archived: bool,
    #[param(inline)]
    pub status: Option<ProgramStatus>,
    /// Part of the name, case-insensitive.
    #[param(min_length = 1, max_length = 255)]
    pub search: Option<String>,
    #[param(inline)]
    pub sort_by: Option<ProgramSort>,
    #[param(rename = "sort_dir", value_type = Option<SortDir>, inline)]
    pub ascending: bool,
    #[param(ignore)]
    pub page: PageParams,
}

/// Only the fields given change; at least one is required.
#[derive(utoipa::ToSchema)]
#[schema(as = UpdateProgram, example = json!({"status": "SUSPENDED"}))]
pub struct ProgramPatch {
    #[schema(min_length = 1, max_length = 255)]
    pub name: Option<String>,
    #[schema(value_type = Option<String>, max_length = 1000)]
    pub description: Patch<String>,
    pub on_unknown_participant: Option<UnknownParticipantPolicy>,
    pub status: Option<ProgramStatus>,
    pub redemption_target_type: Option<RedemptionTarget>,
    /// Required with LEDGER_ENTITY, omitted otherwise.
    #[schema(value_type = Option<Uuid>)]
    pub redemption_target_entity_id: Patch<Uuid>,
}

pub async fn create(pool: &PgPool, actor: &Actor, new: NewProgram) -> Result<Program> {
    Ok(repo::insert(pool, actor.organization_id, Uuid::now_v7(), &new).await?)
}

pub async fn get(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Program> {
    repo::find(pool, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("program"))
}

pub async fn list(pool: &PgPool, actor: &Actor, filter: ProgramFilter) -> Result<Page<Program>> {
    let by_name = filter.sort_by == Some(ProgramSort::Name);
    let order = Order {
        column: if by_name { "name" } else { "created_at" },
        sql_type: if by_name { "text" } else { "timestamptz" },
        descending: !filter.ascending,
    };
    let rows = repo::list(pool, actor.organization_id, &filter, order).await?;
    Ok(Page::from_rows(rows, filter.page.limit, |p| {
        if by_name {
            Cursor::new(&p.name, p.id)
        } else {
            Cursor::at(p.created_at, p.id)
        }
    }))
}

pub async fn update(
    pool: &PgPool,
    actor: &Actor,
    id: Uuid,
    patch: ProgramPatch,
) -> Result<Program> {
    let mut tx = pool.begin().await?;
    let mut program = lock_for_update(&mut tx, actor.organization_id, id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    if let Some(name) = patch.name {
        program.name = name;
    }
    patch.description.apply(&mut program.description);
    if let Some(policy) = patch.on_unknown_participant {
        program.on_unknown_participant = policy;
    }
    if let Some(target) = patch.redemption_target_type {
        program.redemption_target_type = target;
        program.redemption_target_entity_id = match patch.redemption_target_entity_id {
            Patch::Set(entity) => Some(entity),
            _ => None,
        };
    }
    if let Some(status) = patch.status {
        program.deleted_at = match (status, program.deleted_at) {
            (ProgramStatus::Archived, Some(at)) => Some(at),
            (ProgramStatus::Archived, None) => Some(Utc::now()),
            _ => None,
        };
        program.status = status;
    }
    let program = repo::save(&mut tx, &program).await?;
    tx.commit().await?;
    Ok(program)
}

/// The program's own tags (written by TAG and UNTAG actions that target the program), in order.
pub async fn tags(pool: &PgPool, actor: &Actor, id: Uuid) -> Result<Vec<String>> {
    get(pool, actor, id).await?;
    Ok(repo::tags(pool, id).await?)
}

/// Adds or removes a tag of the program in the caller's transaction; `true` when that changed anything.
pub async fn set_tag(
    conn: &mut PgConnection,
    organization_id: Uuid,
    program_id: Uuid,
    tag: &str,
    add: bool,
) -> sqlx::Result<bool> {
    repo::set_tag(conn, organization_id, program_id, tag, add).await
}

/// Where a program sends redeemed value: a system account, or the ledger entity it names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    pub kind: RedemptionTarget,
    pub entity_id: Option<Uuid>,
}

impl Target {
    /// The account redeemed value goes to.
    pub fn owner(self) -> Result<Owner> {
        match (self.kind, self.entity_id) {
            (RedemptionTarget::SystemRedemption, _) => Ok(Owner::Redemption),
            (RedemptionTarget::SystemBreakage, _) => Ok(Owner::Breakage),
            (RedemptionTarget::LedgerEntity, Some(id)) => Ok(Owner::LedgerEntity(id)),
            (RedemptionTarget::LedgerEntity, None) => Err(Error::Internal(
                "a LEDGER_ENTITY redemption target names no entity".into(),
            )),
        }
    }
}

/// What a redemption needs of its program, read in the caller's transaction: that it is ACTIVE (409
/// `program_inactive` otherwise), and where redeemed value goes.
pub async fn redemption_target(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> Result<Target> {
    let (status, kind, entity_id) = repo::redemption_target(conn, organization_id, id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    check_active(id, status)?;
    Ok(Target { kind, entity_id })
}

/// That the organization's program exists (404) and is ACTIVE (409 `program_inactive`), read in the
/// caller's transaction.
pub async fn require_active(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> Result<()> {
    let (status, _, _) = repo::redemption_target(conn, organization_id, id)
        .await?
        .ok_or(Error::NotFound("program"))?;
    check_active(id, status)
}

fn check_active(id: Uuid, status: ProgramStatus) -> Result<()> {
    match status {
        ProgramStatus::Active => Ok(()),
        status => Err(Error::Conflict {
            code: "program_inactive",
            message: format!("program {id} is {status}: only an ACTIVE program allows this"),
        }),
    }
}

/// Whether the program exists and is ACTIVE, read in the caller's transaction.
pub async fn is_active(conn: &mut sqlx::PgConnection, id: Uuid) -> Result<bool> {
    Ok(repo::status(conn, id).await? == Some(ProgramStatus::Active))
}

/// What processing an event needs to know of its program.
#[derive(Debug, sqlx::FromRow)]
pub struct Policy {
    pub id: Uuid,
    pub status: ProgramStatus,
    pub on_unknown_participant: UnknownParticipantPolicy,
}

/// The policies of these programs, by id, read in the caller's transaction.
pub async fn policies(
    conn: &mut sqlx::PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<std::collections::HashMap<Uuid, Policy>> {
    let rows = repo::policies(conn, ids).await?;
    Ok(rows.into_iter().map(|p| (p.id, p)).collect())
}

/// The program, locked against other changes until the transaction ends; `None` when it is not the
/// organization's.
pub async fn lock_for_update(
    conn: &mut PgConnection,
    organization_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Program>> {
    repo::lock_for_update(conn, organization_id, id).await
}
